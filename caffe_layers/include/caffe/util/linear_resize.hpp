#ifndef CAFFE_UTIL_LINEAR_RESIZE_HPP_
#define CAFFE_UTIL_LINEAR_RESIZE_HPP_
#ifdef USE_OPENCV

#include <opencv2/core/core.hpp>

#include <cstdint>
#include <vector>

namespace caffe {

// cv::resize(src, *dst, size, 0, 0, cv::INTER_LINEAR) for 8-bit images of
// 1-4 channels, byte for byte: OpenCV's 11-bit fixed-point weights (the
// float arithmetic that derives them included), its integer row sums and
// its rounding, so frames come out exactly as TSN's cv::resize made them.
// Where the CPU has AVX-512 VBMI or AVX2 it runs vector code faster than
// OpenCV 4.6's (docs/DATA.md has the figures); elsewhere, and for the
// shapes it does not take (rows under the vector's window of 64 or 16
// bytes, shrinking by more than about 3x, OpenCV's exact-halving case),
// it calls cv::resize. One object per thread: it keeps the last plan (the
// taps and weights of one source and output size), which a clip's frames
// share.
class LinearResize {
 public:
  LinearResize() : src_w_(0), src_h_(0), dst_w_(0), dst_h_(0), cn_(0),
                   level_(0), vector_(false), last_vector_(false),
                   blocks_(0) {}
  void Run(const cv::Mat& src, const cv::Size& size, cv::Mat* dst);
  // Whether the last Run took the vector path (the tests check it does
  // where it should).
  bool last_was_vector() const { return last_vector_; }
  // The vector path this CPU runs: 2 AVX-512 VBMI, 1 AVX2, 0 none (then
  // every Run calls cv::resize). DCD_CPU_KERNELS=avx2 or =baseline in the
  // environment caps it, as it caps CostVolume's kernels.
  static int VectorLevel();

 private:
  void Plan(int src_w, int src_h, int dst_w, int dst_h, int cn);

  int src_w_, src_h_, dst_w_, dst_h_, cn_;
  int level_;
  bool vector_;
  bool last_vector_;
  // Per group of output bytes of a row (16 with AVX-512 VBMI, 4 with
  // AVX2): the first source byte of its window (64 or 16 bytes), the
  // window positions of each output's two taps (as byte indices for a
  // byte shuffle into 16-bit pairs) and the taps' weights.
  int blocks_;
  std::vector<int> block_base_;
  std::vector<uint8_t> block_index_;
  std::vector<int16_t> block_weight_;
  // Per output row: its two source rows and their weights.
  std::vector<int> row_source_;
  std::vector<int16_t> row_weight_;
  // Two source rows after the horizontal pass (OpenCV's int row buffers).
  std::vector<int32_t> rows_;
};

}  // namespace caffe

#endif  // USE_OPENCV
#endif  // CAFFE_UTIL_LINEAR_RESIZE_HPP_
