#ifndef CAFFE_UTIL_DCD_ROW_CHUNKS_HPP_
#define CAFFE_UTIL_DCD_ROW_CHUNKS_HPP_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>

#include "glog/logging.h"

namespace caffe {
namespace dcd {

// The rows of one image in groups of `group` rows, shared out to the
// `threads` threads of a parallel region (CostVolume's CPU kernels). Each
// thread starts on its own contiguous share, taking half of what is left
// of it at a time, so that the windows of rows the kernels reuse from row
// to row stay warm; a thread whose share is done takes single groups from
// the end of another's. A thread that the machine slows down so leaves its
// last rows to the others. Every row is handed out once; which thread
// takes it is up to timing, so callers compute each row in a way that does
// not depend on that (docs/ASSUMPTIONS.md, "CPU threading").
class RowChunks {
 public:
  RowChunks(int rows, int group, int threads)
      : rows_(rows), group_(group), threads_(std::max(1, threads)),
        shares_(new std::atomic<uint64_t>[threads_]) {
    CHECK_GE(rows, 0) << "RowChunks: negative row count";
    CHECK_GT(group, 0) << "RowChunks: rows per group must be positive";
    const int64_t groups = (rows + group - 1) / group;
    for (int t = 0; t < threads_; ++t) {
      shares_[t].store(Pack(groups * t / threads_,
                            groups * (t + 1) / threads_));
    }
  }

  // The next chunk [*begin, *end) of rows for thread `thread` (0 ..
  // threads - 1); false once every row is taken. Safe to call from all the
  // threads at once.
  bool Claim(int thread, int* begin, int* end) {
    const int own = ((thread % threads_) + threads_) % threads_;
    int first, last;
    bool found = Take(own, true, &first, &last);
    for (int k = 1; k < threads_ && !found; ++k) {
      found = Take((own + k) % threads_, false, &first, &last);
    }
    if (!found) { return false; }
    *begin = first * group_;
    *end = std::min(rows_, last * group_);
    return true;
  }

 private:
  // A share's next and end groups, in one word so that the owner (taking
  // from the front) and others (from the back) never both take a group.
  static uint64_t Pack(uint64_t front, uint64_t back) {
    return front | back << 32;
  }

  // Groups [*first, *last) of share u: the front half of what is left of it
  // (owner) or its last group (another thread); false if it is empty.
  bool Take(int u, bool owner, int* first, int* last) {
    uint64_t v = shares_[u].load(std::memory_order_relaxed);
    for (;;) {
      const int front = static_cast<int>(v & 0xffffffffu);
      const int back = static_cast<int>(v >> 32);
      if (front >= back) { return false; }
      const int n = owner ? std::max(1, (back - front) / 2) : 1;
      const uint64_t next = owner ? Pack(front + n, back)
                                  : Pack(front, back - 1);
      // Relaxed: the rows' results are published by the region's join.
      if (shares_[u].compare_exchange_weak(v, next,
                                           std::memory_order_relaxed)) {
        *first = owner ? front : back - 1;
        *last = owner ? front + n : back;
        return true;
      }
    }
  }

  const int rows_, group_, threads_;
  std::unique_ptr<std::atomic<uint64_t>[]> shares_;
};

}  // namespace dcd
}  // namespace caffe

#endif  // CAFFE_UTIL_DCD_ROW_CHUNKS_HPP_
