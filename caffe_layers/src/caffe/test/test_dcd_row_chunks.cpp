// dcd::RowChunks, which shares an image's rows out to CostVolume's CPU
// threads: every row handed out exactly once, in whole groups, each thread
// starting on its own share, also when threads claim at the same time.
#include <thread>  // NOLINT(build/c++11)
#include <utility>
#include <vector>

#include "gtest/gtest.h"

#include "caffe/util/dcd_row_chunks.hpp"

namespace caffe {

namespace {

typedef std::vector<std::pair<int, int> > Chunks;

// Fails unless `chunks` cover [0, rows) exactly once, each non-empty, from a
// group boundary to the next group boundary (or the last row).
void ExpectEveryRowOnce(const Chunks& chunks, int rows, int group,
                        const char* what) {
  std::vector<int> seen(rows, 0);
  for (size_t i = 0; i < chunks.size(); ++i) {
    const int begin = chunks[i].first, end = chunks[i].second;
    ASSERT_LT(begin, end) << what << ": empty chunk " << begin;
    ASSERT_EQ(0, begin % group) << what << ": chunk starts mid-group";
    ASSERT_TRUE(end == rows || end % group == 0)
        << what << ": chunk [" << begin << ", " << end << ") ends mid-group";
    ASSERT_LE(end, rows) << what;
    for (int r = begin; r < end; ++r) { ++seen[r]; }
  }
  for (int r = 0; r < rows; ++r) {
    EXPECT_EQ(1, seen[r]) << what << ": row " << r << " of " << rows;
  }
}

}  // namespace

TEST(RowChunksTest, TestEveryRowOnceTakingTurns) {
  const int rows_list[] = {0, 1, 3, 4, 5, 13, 112, 1001};
  const int groups[] = {1, 4};
  const int threads_list[] = {1, 2, 3, 5, 8};
  for (int rows : rows_list) {
    for (int group : groups) {
      for (int threads : threads_list) {
        dcd::RowChunks chunks(rows, group, threads);
        Chunks got;
        // Threads in turn; one that finds nothing left stops.
        std::vector<bool> done(threads, false);
        for (int live = threads, t = 0; live > 0; t = (t + 1) % threads) {
          if (done[t]) { continue; }
          int begin, end;
          if (chunks.Claim(t, &begin, &end)) {
            got.push_back(std::make_pair(begin, end));
          } else {
            done[t] = true;
            --live;
          }
        }
        ExpectEveryRowOnce(got, rows, group, "taking turns");
      }
    }
  }
}

TEST(RowChunksTest, TestOwnShareFirstThenOthersLastGroups) {
  // 112 rows in 28 groups of 4, two threads: shares [0, 56) and [56, 112).
  dcd::RowChunks chunks(112, 4, 2);
  int begin, end;
  // The owner takes half of what is left of its share: 7, 3, 2, 1, 1 groups.
  const int own0[][2] = {{0, 28}, {28, 40}, {40, 48}, {48, 52}, {52, 56}};
  for (const int* want : own0) {
    ASSERT_TRUE(chunks.Claim(0, &begin, &end));
    EXPECT_EQ(want[0], begin);
    EXPECT_EQ(want[1], end);
  }
  // Thread 0's share is done: it takes thread 1's groups from the end.
  ASSERT_TRUE(chunks.Claim(0, &begin, &end));
  EXPECT_EQ(108, begin);
  EXPECT_EQ(112, end);
  // Thread 1 still starts at the front of what is left of its own share.
  ASSERT_TRUE(chunks.Claim(1, &begin, &end));
  EXPECT_EQ(56, begin);
  EXPECT_EQ(80, end);  // 6 of the 13 groups left
}

TEST(RowChunksTest, TestEveryRowOnceConcurrently) {
  // Threads claiming at once (more threads than cores, and more than
  // groups, so that shares are stolen from while their owners take them).
  const int configs[][3] = {{112, 4, 2}, {112, 4, 3}, {112, 4, 8},
                            {13, 4, 5}, {1001, 1, 6}};
  for (const int* c : configs) {
    const int rows = c[0], group = c[1], threads = c[2];
    for (int round = 0; round < 50; ++round) {
      dcd::RowChunks chunks(rows, group, threads);
      std::vector<Chunks> got(threads);
      std::vector<std::thread> workers;
      for (int t = 0; t < threads; ++t) {
        workers.push_back(std::thread([&chunks, &got, t]() {
          int begin, end;
          while (chunks.Claim(t, &begin, &end)) {
            got[t].push_back(std::make_pair(begin, end));
          }
        }));
      }
      for (size_t t = 0; t < workers.size(); ++t) { workers[t].join(); }
      Chunks all;
      for (int t = 0; t < threads; ++t) {
        all.insert(all.end(), got[t].begin(), got[t].end());
      }
      ExpectEveryRowOnce(all, rows, group, "concurrent");
      if (HasFailure()) { return; }
    }
  }
}

TEST(RowChunksDeathTest, TestRefusesEmptyGroups) {
  EXPECT_DEATH(dcd::RowChunks(10, 0, 2), "rows per group must be positive");
  EXPECT_DEATH(dcd::RowChunks(-1, 4, 2), "negative row count");
}

}  // namespace caffe
