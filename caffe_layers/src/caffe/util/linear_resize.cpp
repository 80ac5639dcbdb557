#ifdef USE_OPENCV
#include "caffe/util/linear_resize.hpp"

#include <opencv2/imgproc/imgproc.hpp>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <utility>

#include "glog/logging.h"

#include "caffe/util/dcd_cpu_cap.hpp"

// The intrinsic rows where the layers' x86 dispatch is built
// (dcd_cpu_cap.hpp).
#if DCD_X86_DISPATCH
#define DCD_RESIZE_VECTOR 1
#include <immintrin.h>
#else
#define DCD_RESIZE_VECTOR 0
#endif

namespace caffe {

namespace {

// OpenCV's INTER_RESIZE_COEF_SCALE: weights are fractions of 2048.
const int kWeightOne = 2048;

// One output coordinate's two source taps and weights, as OpenCV computes
// them: the centre (d + 0.5) scale - 0.5 in double, rounded to float, split
// into floor and fraction in float; weights (1 - f) and f times 2048,
// rounded to nearest (even on ties) as saturate_cast<short> does.
struct Taps {
  int first;
  float fraction;
};
Taps TapsOf(int d, double scale) {
  Taps t;
  float f = static_cast<float>((d + 0.5) * scale - 0.5);
  t.first = static_cast<int>(std::floor(f));
  t.fraction = f - t.first;
  return t;
}
int16_t WeightOf(float w) {
  return cv::saturate_cast<int16_t>(w * kWeightOne);
}

#if DCD_RESIZE_VECTOR
#define DCD_RESIZE_TARGET __attribute__((target("avx512f,avx512bw,avx512vbmi")))

// One source row through the horizontal pass: out[j] = s[t0] w0 + s[t1] w1
// for each output byte j, 16 at a time (a 64-byte load, a byte permutation
// into zero-extended 16-bit pairs, one multiply-add of pairs).
DCD_RESIZE_TARGET void HorizontalRow(const uint8_t* src, int blocks,
    const int* base, const uint8_t* index, const int16_t* weight,
    int32_t* out) {
  const __mmask64 low_bytes = 0x5555555555555555ULL;
  for (int b = 0; b < blocks; ++b) {
    const __m512i s = _mm512_loadu_si512(src + base[b]);
    const __m512i pairs = _mm512_maskz_permutexvar_epi8(low_bytes,
        _mm512_loadu_si512(index + 64 * b), s);
    _mm512_storeu_si512(out + 16 * b, _mm512_madd_epi16(pairs,
        _mm512_loadu_si512(weight + 32 * b)));
  }
}

// One output row from two horizontal rows: ((w0 (h0 >> 4)) >> 16) + ((w1
// (h1 >> 4)) >> 16) + 2 >> 2, OpenCV's vertical rounding (h >> 4 fits 16
// bits, so the products are 16-bit high halves), 64 bytes at a time.
DCD_RESIZE_TARGET void VerticalRow(const int32_t* h0, const int32_t* h1,
    int16_t w0, int16_t w1, int n, uint8_t* dst) {
  const __m512i v0 = _mm512_set1_epi16(w0), v1 = _mm512_set1_epi16(w1);
  const __m512i two = _mm512_set1_epi16(2);
  // The two packs interleave 16-byte lanes; this puts them back in order.
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6,
                                          10, 14, 3, 7, 11, 15);
  for (int x = 0; x < n; x += 64) {
    __m512i half[2];
    for (int h = 0; h < 2; ++h) {
      const int32_t* a = h0 + x + 32 * h;
      const int32_t* b = h1 + x + 32 * h;
      const __m512i s0 = _mm512_packs_epi32(
          _mm512_srai_epi32(_mm512_loadu_si512(a), 4),
          _mm512_srai_epi32(_mm512_loadu_si512(a + 16), 4));
      const __m512i s1 = _mm512_packs_epi32(
          _mm512_srai_epi32(_mm512_loadu_si512(b), 4),
          _mm512_srai_epi32(_mm512_loadu_si512(b + 16), 4));
      half[h] = _mm512_srai_epi16(_mm512_add_epi16(_mm512_add_epi16(
          _mm512_mulhi_epi16(s0, v0), _mm512_mulhi_epi16(s1, v1)), two), 2);
    }
    const __m512i bytes = _mm512_permutexvar_epi32(order,
        _mm512_packus_epi16(half[0], half[1]));
    if (n - x >= 64) {
      _mm512_storeu_si512(dst + x, bytes);
    } else {
      _mm512_mask_storeu_epi8(dst + x, (1ULL << (n - x)) - 1, bytes);
    }
  }
}
#undef DCD_RESIZE_TARGET

#define DCD_RESIZE_TARGET __attribute__((target("avx2")))

// HorizontalRow with 128-bit byte shuffles: 8 output bytes per step, each
// half of the 256-bit vector from its own 16-byte window (groups of 4).
DCD_RESIZE_TARGET void HorizontalRowAvx2(const uint8_t* src, int groups,
    const int* base, const uint8_t* index, const int16_t* weight,
    int32_t* out) {
  for (int g = 0; g < groups; g += 2) {
    const __m256i s = _mm256_inserti128_si256(_mm256_castsi128_si256(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + base[g]))),
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + base[g + 1])),
        1);
    const __m256i pairs = _mm256_shuffle_epi8(s, _mm256_loadu_si256(
        reinterpret_cast<const __m256i*>(index + 16 * g)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 4 * g),
        _mm256_madd_epi16(pairs, _mm256_loadu_si256(
            reinterpret_cast<const __m256i*>(weight + 8 * g))));
  }
}

// VerticalRow, 32 bytes at a time.
DCD_RESIZE_TARGET void VerticalRowAvx2(const int32_t* h0, const int32_t* h1,
    int16_t w0, int16_t w1, int n, uint8_t* dst) {
  const __m256i v0 = _mm256_set1_epi16(w0), v1 = _mm256_set1_epi16(w1);
  const __m256i two = _mm256_set1_epi16(2);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int x = 0; x < n; x += 32) {
    __m256i half[2];
    for (int h = 0; h < 2; ++h) {
      const __m256i* a = reinterpret_cast<const __m256i*>(h0 + x + 16 * h);
      const __m256i* b = reinterpret_cast<const __m256i*>(h1 + x + 16 * h);
      const __m256i s0 = _mm256_packs_epi32(
          _mm256_srai_epi32(_mm256_loadu_si256(a), 4),
          _mm256_srai_epi32(_mm256_loadu_si256(a + 1), 4));
      const __m256i s1 = _mm256_packs_epi32(
          _mm256_srai_epi32(_mm256_loadu_si256(b), 4),
          _mm256_srai_epi32(_mm256_loadu_si256(b + 1), 4));
      half[h] = _mm256_srai_epi16(_mm256_add_epi16(_mm256_add_epi16(
          _mm256_mulhi_epi16(s0, v0), _mm256_mulhi_epi16(s1, v1)), two), 2);
    }
    const __m256i bytes = _mm256_permutevar8x32_epi32(
        _mm256_packus_epi16(half[0], half[1]), order);
    if (n - x >= 32) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + x), bytes);
    } else {
      uint8_t last[32];
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(last), bytes);
      std::memcpy(dst + x, last, n - x);
    }
  }
}
#undef DCD_RESIZE_TARGET
#endif  // DCD_RESIZE_VECTOR

}  // namespace

int LinearResize::VectorLevel() {
#if DCD_RESIZE_VECTOR
  static const int cpu = __builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vbmi") ? 2 :
      __builtin_cpu_supports("avx2") ? 1 : 0;
  return dcd::CapCpuLevel(cpu);
#else
  return 0;
#endif
}

void LinearResize::Plan(int src_w, int src_h, int dst_w, int dst_h,
                        int cn) {
  src_w_ = src_w;
  src_h_ = src_h;
  dst_w_ = dst_w;
  dst_h_ = dst_h;
  cn_ = cn;
  // cv::resize's scales, and its special cases: same size (a copy) and
  // exact halving in both directions (its INTER_AREA path).
  const double scale_x = 1. / (static_cast<double>(dst_w) / src_w);
  const double scale_y = 1. / (static_cast<double>(dst_h) / src_h);
  const int whole_x = cv::saturate_cast<int>(scale_x);
  const int whole_y = cv::saturate_cast<int>(scale_y);
  const bool halving = whole_x == 2 && whole_y == 2 &&
      std::abs(scale_x - whole_x) < DBL_EPSILON &&
      std::abs(scale_y - whole_y) < DBL_EPSILON;
  const int row_bytes = src_w * cn;
  level_ = VectorLevel();
  // Output bytes per window and the window's bytes: one 64-byte load per
  // 16 outputs (AVX-512 VBMI), one 16-byte load per 4 (AVX2).
  const int group = level_ == 2 ? 16 : 4;
  const int window = level_ == 2 ? 64 : 16;
  vector_ = level_ > 0 && cn >= 1 && cn <= 4 && !halving &&
            row_bytes >= window && !(src_w == dst_w && src_h == dst_h);
  if (!vector_) return;
  // Each output byte's taps: a left edge clamps to pixel 0 (weight 2048 on
  // it); at the right edge (no pixel right of the tap) OpenCV takes the
  // last pixel times 2048 alone, here as that pixel twice, weights 2048 and
  // 0, so no tap leaves the row.
  const int n = dst_w * cn;
  std::vector<int> tap0(n), tap1(n);
  std::vector<int16_t> weight0(n), weight1(n);
  for (int dx = 0; dx < dst_w; ++dx) {
    Taps t = TapsOf(dx, scale_x);
    if (t.first < 0) {
      t.first = 0;
      t.fraction = 0;
    }
    const bool last = t.first + 1 >= src_w;
    if (last) t.first = src_w - 1;
    for (int k = 0; k < cn; ++k) {
      const int j = dx * cn + k;
      tap0[j] = t.first * cn + k;
      tap1[j] = last ? tap0[j] : tap0[j] + cn;
      weight0[j] = last ? kWeightOne : WeightOf(1.f - t.fraction);
      weight1[j] = last ? 0 : WeightOf(t.fraction);
    }
  }
  // Groups rounded up to 64 output bytes, so that the AVX2 path runs
  // whole pairs of groups and the vertical pass whole steps.
  blocks_ = (n + 63) / 64 * 64 / group;
  block_base_.assign(blocks_, 0);
  // Each output's index bytes: tap 0, a zero byte, tap 1, a zero byte
  // (0x80: the shuffle zeroes it; the permutation's mask does).
  block_index_.assign(4 * group * blocks_, 0x80);
  block_weight_.assign(2 * group * blocks_, 0);
  for (int b = 0; b < blocks_; ++b) {
    const int first = std::min(group * b, n - 1);
    const int end = std::min(n, group * b + group);
    int lo = tap0[first], hi = tap1[first];
    for (int j = group * b; j < end; ++j) {
      lo = std::min(lo, tap0[j]);
      hi = std::max(hi, tap1[j]);
    }
    // The window ends inside the row (row_bytes >= window).
    const int base = std::min(lo, row_bytes - window);
    if (hi - base >= window) {  // shrinking a lot: taps too far apart
      vector_ = false;
      return;
    }
    block_base_[b] = base;
    for (int j = group * b; j < group * b + group; ++j) {
      const bool past = j >= end;  // past n: byte 0 of the window, weights 0
      block_index_[4 * j] = past ? 0 : static_cast<uint8_t>(tap0[j] - base);
      block_index_[4 * j + 2] =
          past ? 0 : static_cast<uint8_t>(tap1[j] - base);
      block_weight_[2 * j] = past ? 0 : weight0[j];
      block_weight_[2 * j + 1] = past ? 0 : weight1[j];
    }
  }
  // Rows: OpenCV clamps the two source rows into the image but keeps the
  // weights (both taps on row 0 above it, on the last row below it).
  row_source_.resize(2 * dst_h);
  row_weight_.resize(2 * dst_h);
  for (int dy = 0; dy < dst_h; ++dy) {
    const Taps t = TapsOf(dy, scale_y);
    row_source_[2 * dy] = std::min(std::max(t.first, 0), src_h - 1);
    row_source_[2 * dy + 1] = std::min(std::max(t.first + 1, 0), src_h - 1);
    row_weight_[2 * dy] = WeightOf(1.f - t.fraction);
    row_weight_[2 * dy + 1] = WeightOf(t.fraction);
  }
  rows_.assign(2 * group * blocks_, 0);
}

void LinearResize::Run(const cv::Mat& src, const cv::Size& size,
                       cv::Mat* dst) {
  CHECK_EQ(src.depth(), CV_8U) << "LinearResize: 8-bit images only";
  if (src.cols != src_w_ || src.rows != src_h_ || size.width != dst_w_ ||
      size.height != dst_h_ || src.channels() != cn_) {
    Plan(src.cols, src.rows, size.width, size.height, src.channels());
  }
  last_vector_ = vector_;
  if (!vector_) {
    cv::resize(src, *dst, size, 0, 0, cv::INTER_LINEAR);
    return;
  }
#if DCD_RESIZE_VECTOR
  CHECK(dst->data != src.data) << "LinearResize: in place";
  dst->create(size, src.type());
  const int n = dst_w_ * cn_;
  const size_t stride = rows_.size() / 2;
  int32_t* row[2] = {&rows_[0], &rows_[stride]};
  int held[2] = {-1, -1};  // the source row in each buffer
  for (int dy = 0; dy < dst_h_; ++dy) {
    const int y0 = row_source_[2 * dy], y1 = row_source_[2 * dy + 1];
    // Source rows only move down: reuse what the last output row made.
    if (held[0] != y0 && held[1] == y0) {
      std::swap(row[0], row[1]);
      std::swap(held[0], held[1]);
    }
    for (int k = 0; k < 2; ++k) {
      const int y = k == 0 ? y0 : y1;
      if (held[k] == y) continue;
      (level_ == 2 ? HorizontalRow : HorizontalRowAvx2)(src.ptr<uint8_t>(y),
          blocks_, &block_base_[0], &block_index_[0], &block_weight_[0],
          row[k]);
      held[k] = y;
    }
    (level_ == 2 ? VerticalRow : VerticalRowAvx2)(row[0], row[1],
        row_weight_[2 * dy], row_weight_[2 * dy + 1], n,
        dst->ptr<uint8_t>(dy));
  }
#endif
}

}  // namespace caffe

#endif  // USE_OPENCV
