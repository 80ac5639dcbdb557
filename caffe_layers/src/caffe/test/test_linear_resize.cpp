// LinearResize: the same bytes as cv::resize(..., cv::INTER_LINEAR) for
// every size pair, channel count and image view it is given, and the
// vector path taken where it should be (TSN's crops to 224 x 224 among
// them) on CPUs that have it: each test runs on the CPU's own path and
// again capped at AVX2 (DCD_CPU_KERNELS), so an AVX-512 machine checks
// both vector paths.
#ifdef USE_OPENCV
#include <opencv2/core/core.hpp>
#include <opencv2/imgproc/imgproc.hpp>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

#include "caffe/util/linear_resize.hpp"

namespace caffe {

namespace {

// Resizes `src` both ways; fails with the sizes on any differing byte.
void ExpectSameAsOpenCV(LinearResize* resize, const cv::Mat& src,
                        const cv::Size& size) {
  cv::Mat ours, theirs;
  resize->Run(src, size, &ours);
  cv::resize(src, theirs, size, 0, 0, cv::INTER_LINEAR);
  std::ostringstream what;
  what << src.cols << "x" << src.rows << "x" << src.channels() << " -> "
       << size.width << "x" << size.height
       << (resize->last_was_vector() ? " (vector)" : " (cv::resize)");
  ASSERT_EQ(theirs.size(), ours.size()) << what.str();
  ASSERT_EQ(theirs.type(), ours.type()) << what.str();
  ASSERT_EQ(0, cv::norm(ours, theirs, cv::NORM_INF)) << what.str();
}

cv::Mat RandomImage(std::mt19937* rng, int rows, int cols, int cn) {
  cv::Mat image(rows, cols, CV_8UC(cn));
  for (int r = 0; r < rows; ++r) {
    uchar* p = image.ptr<uchar>(r);
    for (int i = 0; i < cols * cn; ++i) p[i] = (*rng)() & 255;
  }
  return image;
}

// Runs `body` once per vector path this CPU has (its own, then capped at
// AVX2 if that is a different one), with `level` the path expected.
template <typename Body>
void ForEachVectorPath(Body body) {
  const int own = LinearResize::VectorLevel();
  if (own == 0) {
    std::printf("LinearResize: no vector path on this CPU, only the "
                "cv::resize path was compared\n");
  }
  body(own);
  if (own == 2) {
    setenv("DCD_CPU_KERNELS", "avx2", 1);
    EXPECT_EQ(1, LinearResize::VectorLevel());
    body(1);
    unsetenv("DCD_CPU_KERNELS");
  }
}

}  // namespace

TEST(LinearResizeTest, TestCapTurnsTheVectorPathOff) {
  setenv("DCD_CPU_KERNELS", "baseline", 1);
  EXPECT_EQ(0, LinearResize::VectorLevel());
  std::mt19937 rng(4);
  LinearResize resize;
  ExpectSameAsOpenCV(&resize, RandomImage(&rng, 256, 340, 3),
                     cv::Size(224, 224));
  EXPECT_FALSE(resize.last_was_vector());
  unsetenv("DCD_CPU_KERNELS");
}

TEST(LinearResizeTest, TestTrainCropsMatchOpenCV) {
  ForEachVectorPath([](int level) {
  // TSN's multi-scale crops of 340 x 256 frames (sides 256, 224, 192, 168
  // in any pairing) to 224 x 224, cut out of the frame as views.
  std::mt19937 rng(1);
  const cv::Mat frame = RandomImage(&rng, 256, 340, 3);
  const int sides[] = {256, 224, 192, 168};
  LinearResize resize;
  int vector_runs = 0;
  for (int w = 0; w < 4; ++w) {
    for (int h = 0; h < 4; ++h) {
      const cv::Rect box(340 - sides[w] - 3, 256 - sides[h], sides[w],
                         sides[h]);
      ExpectSameAsOpenCV(&resize, frame(box), cv::Size(224, 224));
      vector_runs += resize.last_was_vector();
    }
  }
  // 224 x 224 itself is a copy in both.
  EXPECT_EQ(level > 0 ? 15 : 0, vector_runs) << "vector path " << level;
  });
}

TEST(LinearResizeTest, TestRandomSizesMatchOpenCV) {
  // Growing and shrinking, 1-4 channels, views with row padding, edge
  // rows and columns that clamp: 600 random pairs.
  ForEachVectorPath([](int level) {
  std::mt19937 rng(2);
  const cv::Mat big[4] = {RandomImage(&rng, 420, 520, 1),
                          RandomImage(&rng, 420, 520, 2),
                          RandomImage(&rng, 420, 520, 3),
                          RandomImage(&rng, 420, 520, 4)};
  LinearResize resize;
  int vector_runs = 0;
  for (int trial = 0; trial < 600; ++trial) {
    const int cn = 1 + trial % 4;
    const int w = 1 + rng() % 500, h = 1 + rng() % 400;
    const cv::Rect box(rng() % (520 - w + 1), rng() % (420 - h + 1), w, h);
    const cv::Size size(1 + rng() % 400, 1 + rng() % 400);
    ExpectSameAsOpenCV(&resize, big[cn - 1](box), size);
    if (::testing::Test::HasFatalFailure()) return;
    vector_runs += resize.last_was_vector();
  }
  if (level > 0) {
    EXPECT_GT(vector_runs, 300) << "vector path " << level
                                << " should take most pairs";
  }
  });
}

TEST(LinearResizeTest, TestPlanFollowsTheSizes) {
  // One object over changing sizes (a new plan each time) and back.
  std::mt19937 rng(3);
  const cv::Mat a = RandomImage(&rng, 256, 340, 3);
  const cv::Mat b = RandomImage(&rng, 200, 100, 1);
  LinearResize resize;
  ExpectSameAsOpenCV(&resize, a, cv::Size(224, 224));
  ExpectSameAsOpenCV(&resize, b, cv::Size(224, 224));
  ExpectSameAsOpenCV(&resize, a, cv::Size(171, 128));
  ExpectSameAsOpenCV(&resize, a, cv::Size(224, 224));
  // Exact halving (OpenCV's INTER_AREA case) and the same size (a copy).
  ExpectSameAsOpenCV(&resize, a, cv::Size(170, 128));
  EXPECT_FALSE(resize.last_was_vector());
  ExpectSameAsOpenCV(&resize, a, cv::Size(340, 256));
  EXPECT_FALSE(resize.last_was_vector());
}

}  // namespace caffe
#endif  // USE_OPENCV
