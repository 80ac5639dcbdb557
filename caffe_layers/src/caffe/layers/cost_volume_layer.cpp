#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "caffe/layers/cost_volume_layer.hpp"
#include "caffe/util/dcd_cpu_cap.hpp"
#include "caffe/util/dcd_kernels.hpp"
#include "caffe/util/dcd_row_chunks.hpp"
#include "caffe/util/dcd_window.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

template <typename Dtype>
void CostVolumeLayer<Dtype>::LayerSetUp(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  const CostVolumeParameter& param = this->layer_param_.cost_volume_param();
  const dcd::DisplacementWindow window = dcd::ReadDisplacementWindow(
      param, std::string(this->type()) + " layer " + this->layer_param_.name());
  max_displacement_h_ = window.dh;
  max_displacement_w_ = window.dw;
  dilation_ = window.dilation;
  eps_ = param.eps();
  CHECK_GE(eps_, 0) << "CostVolume layer " << this->layer_param_.name()
      << ": eps must be >= 0.";
  num_displacements_ =
      dcd::window_size(max_displacement_h_, max_displacement_w_);
  pad_h_ = max_displacement_h_ * dilation_;
  pad_w_ = max_displacement_w_ * dilation_;
}

template <typename Dtype>
void CostVolumeLayer<Dtype>::Reshape(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  CHECK_EQ(bottom[0]->num_axes(), 4) << "CostVolume layer "
      << this->layer_param_.name() << ": F_a must be N x C x H x W, got "
      << bottom[0]->shape_string();
  CHECK(bottom[0]->shape() == bottom[1]->shape()) << "CostVolume layer "
      << this->layer_param_.name() << ": F_a and F_b must have the same "
      << "shape, got F_a " << bottom[0]->shape_string() << " and F_b "
      << bottom[1]->shape_string();
  const int num = bottom[0]->num();
  const int channels = bottom[0]->channels();
  const int height = bottom[0]->height();
  const int width = bottom[0]->width();
  // Named here, before Blob::Reshape's "blob size exceeds INT_MAX".
  const long long top_count = static_cast<long long>(num) *  // NOLINT
      num_displacements_ * height * width;
  CHECK_LE(top_count, INT_MAX) << "CostVolume layer "
      << this->layer_param_.name() << ": the cost volume " << num << " x "
      << num_displacements_ << " x " << height << " x " << width << " = "
      << top_count << " elements exceeds a blob's INT_MAX; lower "
      << "max_displacement (" << num_displacements_ << " displacements) or "
      << "the batch or map size.";
  const long long pad_count = static_cast<long long>(num) * channels *  // NOLINT
      (height + 2LL * pad_h_) * (width + 2LL * pad_w_);
  CHECK_LE(pad_count, INT_MAX) << "CostVolume layer "
      << this->layer_param_.name() << ": the padded copy of F_b, " << num
      << " x " << channels << " x " << height + 2LL * pad_h_ << " x "
      << width + 2LL * pad_w_ << " = " << pad_count << " elements, exceeds "
      << "a blob's INT_MAX; lower max_displacement or dilation.";
  // The CPU path pads a_hat's columns too (zeros, at least dw s, rounded
  // to 64 bytes so its rows stay aligned): the F_b gradient reads it at
  // shifted columns without bounds checks.
  const int align = 64 / sizeof(Dtype);
  a_pad_w_ = (pad_w_ + align - 1) / align * align;
  const long long a_count = static_cast<long long>(num) * channels *  // NOLINT
      height * (width + 2LL * a_pad_w_);
  CHECK_LE(a_count, INT_MAX) << "CostVolume layer "
      << this->layer_param_.name() << ": the column-padded copy of F_a, "
      << num << " x " << channels << " x " << height << " x "
      << width + 2LL * a_pad_w_ << " = " << a_count << " elements, exceeds "
      << "a blob's INT_MAX; lower max_displacement or dilation.";
  top[0]->Reshape(num, num_displacements_, height, width);
  a_hat_.Reshape(num, channels, height, width + 2 * a_pad_w_);
  b_hat_pad_.Reshape(num, channels, height + 2 * pad_h_, width + 2 * pad_w_);
  inv_norm_a_.Reshape(num, 1, height, width);
  inv_norm_b_.Reshape(num, 1, height, width);
  dot_.Reshape(num, 1, height, width);
}

// The loops below are plain C++. Caffe is built for the baseline ISA, so on
// x86-64 with GCC or Clang the three hot loops are also compiled for AVX2+FMA
// and AVX-512+FMA and one is picked at run time from the CPU's features
// (dcd_cpu_cap.hpp). Results may differ in the last bits between machines
// (FMA), never between runs on one machine.

namespace {

// Rows of a group: the forward's (correlate_shared_rows) and the
// gradients' (correlate_gradient_rows), and the unit in which the threads
// share out an image's rows (dcd::RowChunks).
const int kSharedRows = 4;

// The calling thread's next chunk of rows [*begin, *end) from `rows`;
// false once every row is taken.
inline bool claim_rows(dcd::RowChunks* rows, int* begin, int* end) {
#ifdef _OPENMP
  return rows->Claim(omp_get_thread_num(), begin, end);
#else
  return rows->Claim(0, begin, end);
#endif
}

// One row of normalize_cpu: inv_row = 1 / norm of the row's pixels, o (the
// row's output, channels out_c apart) = f / norm.
template <typename Dtype>
DCD_ROW_KERNEL void normalize_row(const Dtype* f, int channels, int hw,
    int width, Dtype eps, Dtype* inv_row, Dtype* o, int out_c) {
  for (int j = 0; j < width; ++j) { inv_row[j] = 0; }
  for (int c = 0; c < channels; ++c) {
    const Dtype* f_row = f + c * hw;
    for (int j = 0; j < width; ++j) { inv_row[j] += f_row[j] * f_row[j]; }
  }
  for (int j = 0; j < width; ++j) {
    inv_row[j] = dcd::inverse_norm(inv_row[j], eps);
  }
  for (int c = 0; c < channels; ++c) {
    const Dtype* f_row = f + c * hw;
    Dtype* o_c = o + c * out_c;
    for (int j = 0; j < width; ++j) { o_c[j] = f_row[j] * inv_row[j]; }
  }
}

// out(c, row, col) = f(c, row, col) / sqrt(|f(:, row, col)|^2 + eps) for one
// image, written at out[row * out_row + c * out_c + col] (the rows-of-channels
// layout below; `out` already points at the first unpadded element).
template <typename Dtype>
void normalize_cpu(const Dtype* f, int channels, int height, int width,
    Dtype eps, Dtype* inv_norm, Dtype* out, int out_row, int out_c) {
  // Rows split over threads; within a row channels are summed in order.
#pragma omp parallel for schedule(static)
  for (int i = 0; i < height; ++i) {
    normalize_row(f + i * width, channels, height * width, width, eps,
                  inv_norm + i * width, out + i * out_row, out_c);
  }
}

// Zeroes the padding of one image of b_hat or a_hat (rows of channels); the
// normalisation writes the interior, so Forward_cpu does this once per shape
// (0.9 MB each at C=64, 112x112, d=7).
template <typename Dtype>
void zero_border_cpu(Dtype* b, int channels, int height, int width, int pad_h,
    int pad_w) {
  const int pw = width + 2 * pad_w;
  const int row = channels * pw;
  caffe_set(pad_h * row, Dtype(0), b);
  caffe_set(pad_h * row, Dtype(0), b + (height + pad_h) * row);
  if (pad_w == 0) { return; }
  for (int r = pad_h; r < height + pad_h; ++r) {
    for (int c = 0; c < channels; ++c) {
      Dtype* p = b + r * row + c * pw;
      for (int j = 0; j < pad_w; ++j) { p[j] = 0; p[pad_w + width + j] = 0; }
    }
  }
}

// One span of NormalizeBackwardRows (f, inv, dot and diff at the span; its
// `width` pixels contiguous, every plane hw apart).
template <typename Dtype>
DCD_ROW_KERNEL void normalize_backward_row(const Dtype* f, const Dtype* inv,
    int channels, int hw, int width, Dtype* dot, Dtype* diff) {
  for (int j = 0; j < width; ++j) { dot[j] = 0; }
  for (int c = 0; c < channels; ++c) {
    const Dtype* fc = f + c * hw;
    const Dtype* gc = diff + c * hw;
    for (int j = 0; j < width; ++j) { dot[j] += fc[j] * inv[j] * gc[j]; }
  }
  for (int c = 0; c < channels; ++c) {
    const Dtype* fc = f + c * hw;
    Dtype* gc = diff + c * hw;
    for (int j = 0; j < width; ++j) {
      gc[j] = dcd::normalize_backward(gc[j], fc[j] * inv[j], dot[j], inv[j]);
    }
  }
}

// The normalisation's backward, in place (diff: dL/df_hat in, dL/df out),
// for rows [begin, end) of one image that a gradient kernel has just
// finished: they are still in the caches, where a pass of its own over the
// whole image read them back from memory (docs/ASSUMPTIONS.md, "CPU kernel
// figures"). begin is a multiple of kSharedRows (the threads claim groups
// of rows), and normalize_backward_row takes spans of kSharedRows rows from
// there: the compiled loop's vector and scalar parts may round a pixel
// differently, so the spans must not depend on the thread count.
template <typename Dtype>
struct NormalizeBackwardRows {
  const Dtype* f;         // the layer's input, C x H x W
  const Dtype* inv_norm;  // 1 / norm, H x W
  Dtype* dot;             // scratch, H x W
  int channels, hw, width;
  void operator()(Dtype* diff, int begin, int end) const {
    for (int r = begin; r < end; r += kSharedRows) {
      const int p = r * width;
      normalize_backward_row(f + p, inv_norm + p, channels, hw,
          std::min(kSharedRows, end - r) * width, dot + p, diff + p);
    }
  }
};

// Register-blocked correlation of one output row segment: for ND consecutive
// horizontal offsets and JB consecutive columns,
// out[d][jj] = sum_c a(c, jj) * b(c, jj + d * s). `a` and `b` point at
// channel 0; b already includes the row shift and the first offset. Padded
// zeros in b make out-of-map positions contribute exactly 0.
template <typename Dtype, int ND, int JB>
DCD_INLINE void correlate_block(const Dtype* a, int a_plane, const Dtype* b,
    int b_plane, int s, int channels, Dtype* out, int out_plane) {
  Dtype acc[ND][JB];
  for (int d = 0; d < ND; ++d) {
    for (int jj = 0; jj < JB; ++jj) { acc[d][jj] = 0; }
  }
  for (int c = 0; c < channels; ++c) {
    const Dtype* ac = a + c * a_plane;
    const Dtype* bc = b + c * b_plane;
    for (int d = 0; d < ND; ++d) {
      const Dtype* bd = bc + d * s;
      for (int jj = 0; jj < JB; ++jj) {
        acc[d][jj] += ac[jj] * bd[jj];
      }
    }
  }
  for (int d = 0; d < ND; ++d) {
    for (int jj = 0; jj < JB; ++jj) { out[d * out_plane + jj] = acc[d][jj]; }
  }
}

// Same with run-time sizes nd <= 5, jb <= 16 (column tails). Channels
// stay outermost, as in the blocks, so each step reads contiguous columns.
template <typename Dtype>
DCD_INLINE void correlate_block_any(const Dtype* a, int a_plane, const Dtype* b,
    int b_plane, int s, int channels, Dtype* out, int out_plane, int nd,
    int jb) {
  Dtype acc[5][16] = {};
  for (int c = 0; c < channels; ++c) {
    const Dtype* ac = a + c * a_plane;
    const Dtype* bc = b + c * b_plane;
    for (int d = 0; d < nd; ++d) {
      for (int jj = 0; jj < jb; ++jj) { acc[d][jj] += ac[jj] * bc[d * s + jj]; }
    }
  }
  for (int d = 0; d < nd; ++d) {
    for (int jj = 0; jj < jb; ++jj) { out[d * out_plane + jj] = acc[d][jj]; }
  }
}

// correlate_block for the last 1-3 columns of a row (after its vectors),
// nd <= 5: compile-time sizes keep the sums in registers, where
// correlate_block_any's waited on each multiply-add through memory (a 63-wide
// map's forward took 4x a 64-wide one's). The same sums in the same order.
template <typename Dtype>
DCD_INLINE void correlate_block_few(const Dtype* a, int a_plane,
    const Dtype* b, int b_plane, int s, int channels, Dtype* out,
    int out_plane, int nd, int jb) {
  switch (nd * 4 + jb) {
#define DCD_BLOCK(ND, JB) case ND * 4 + JB: correlate_block<Dtype, ND, JB>( \
        a, a_plane, b, b_plane, s, channels, out, out_plane); break
#define DCD_BLOCKS(ND) DCD_BLOCK(ND, 1); DCD_BLOCK(ND, 2); DCD_BLOCK(ND, 3)
    DCD_BLOCKS(1); DCD_BLOCKS(2); DCD_BLOCKS(3); DCD_BLOCKS(4); DCD_BLOCKS(5);
#undef DCD_BLOCKS
#undef DCD_BLOCK
    default:
      correlate_block_any(a, a_plane, b, b_plane, s, channels, out,
                          out_plane, nd, jb);
  }
}

#if DCD_X86_DISPATCH
// The same block with GCC/Clang vector extensions (dcd::VecOf): NV native
// vectors of VB bytes (64 bytes of columns per row in the blocks, one
// vector in column tails), so the compiler keeps the sums in registers. VB
// is the variant's register width (16 SSE2, 32 AVX2, 64 AVX-512;
// docs/ASSUMPTIONS.md, "CPU vector width").
using dcd::VecOf;
using dcd::NarrowVec;

using dcd::VecStore;
using dcd::stream_line;

// The vector at p, held in a register: without the empty asm, GCC folds the
// load into each FMA that uses the vector, one load per use.
template <typename V, typename Dtype>
DCD_INLINE V register_load(const Dtype* p) {
  V v;
  __builtin_memcpy(&v, p, sizeof(V));
  __asm__("" : "+v"(v));
  return v;
}

// One step of the vector blocks: acc[r][v] += x[v] * y[r * y_step][v] for
// R rows of NV vectors each.
template <typename Dtype, int VB, int R, int NV>
DCD_INLINE void fma_rows(typename VecOf<Dtype, VB>::type (&acc)[R][NV],
    const Dtype* x, const Dtype* y, int y_step) {
  typedef typename VecOf<Dtype, VB>::type V;
  const int L = VB / sizeof(Dtype);
  V xv[NV];
  for (int v = 0; v < NV; ++v) {
    __builtin_memcpy(&xv[v], x + v * L, sizeof(V));
  }
  for (int r = 0; r < R; ++r) {
    for (int v = 0; v < NV; ++v) {
      V yv;
      __builtin_memcpy(&yv, y + r * y_step + v * L, sizeof(V));
      acc[r][v] += xv[v] * yv;
    }
  }
}

// acc[r] = sum over o < n of x(o) * y(o)[r * y_step], NV vectors of columns
// each, written to out + r * out_stride, o in ascending order. The vector
// block of the correlation (o = channel, r = horizontal offset, y(o) at
// o * b_plane) and of its gradient to F_a (o = displacement, r = channel,
// y(o) at the displacement's shift in the padded plane).
template <typename Dtype, int R, int VB, int NV, typename XOffset,
          typename YOffset>
DCD_INLINE void vec_block(int n, const Dtype* x, XOffset x_offset,
    const Dtype* y, YOffset y_offset, int y_step, Dtype* out,
    int out_stride, bool stream) {
  typedef typename VecOf<Dtype, VB>::type V;
  const int L = VB / sizeof(Dtype);
  V acc[R][NV];
  for (int r = 0; r < R; ++r) {
    for (int v = 0; v < NV; ++v) { acc[r][v] = V{}; }
  }
  for (int o = 0; o < n; ++o) {
    fma_rows<Dtype, VB, R, NV>(acc, x + x_offset(o), y + y_offset(o), y_step);
  }
  for (int r = 0; r < R; ++r) {
    const bool nt = NV * VB == 64 && stream_line(stream, out + r * out_stride);
    for (int v = 0; v < NV; ++v) {
      VecStore<VB>::put(out + r * out_stride + v * L, acc[r][v], nt);
    }
  }
}

struct StridedOffset {
  int stride;
  DCD_INLINE int operator()(int o) const { return o * stride; }
};

struct TableOffset {
  const int* offset;
  DCD_INLINE int operator()(int o) const { return offset[o]; }
};

// vec_block with R (1..5) picked at run time.
template <typename Dtype, int VB, int NV, typename XOffset, typename YOffset>
DCD_INLINE void vec_block_r(int r, int n, const Dtype* x, XOffset x_offset,
    const Dtype* y, YOffset y_offset, int y_step, Dtype* out,
    int out_stride, bool stream = false) {
  switch (r) {
#define DCD_BLOCK(R) vec_block<Dtype, R, VB, NV>( \
        n, x, x_offset, y, y_offset, y_step, out, out_stride, stream)
    case 5: DCD_BLOCK(5); break;
    case 4: DCD_BLOCK(4); break;
    case 3: DCD_BLOCK(3); break;
    case 2: DCD_BLOCK(2); break;
    default: DCD_BLOCK(1); break;
#undef DCD_BLOCK
  }
}

// Two vectors of L columns share F_b loads: vector 1 at offset o reads the
// columns that vector 0 reads at offset o + K (K s = L). One block computes
// offsets {0 .. M-1} and {K .. K+M2-1} of a group (y and out at the group's
// first offset): 2 M + M2 + 2 loads for 2 (M + M2) vector FMAs, against
// 2 R + 2 for 2 R in vec_block.
template <typename Dtype, int VB, int M, int M2>
DCD_INLINE void vec_pair_block(int n, const Dtype* x, int x_stride,
    const Dtype* y, int y_stride, int s, int K, Dtype* out, int out_stride,
    bool stream) {
  typedef typename VecOf<Dtype, VB>::type V;
  const int L = VB / sizeof(Dtype);
  V lo[M + M2], hi[M + M2];
  for (int m = 0; m < M + M2; ++m) { lo[m] = V{}; hi[m] = V{}; }
  for (int o = 0; o < n; ++o) {
    V x0, x1;
    __builtin_memcpy(&x0, x + o * x_stride, sizeof(V));
    __builtin_memcpy(&x1, x + o * x_stride + L, sizeof(V));
    const Dtype* yo = y + o * y_stride;
    for (int m = 0; m < M; ++m) {
      V y0, y1;
      __builtin_memcpy(&y0, yo + m * s, sizeof(V));
      __builtin_memcpy(&y1, yo + m * s + L, sizeof(V));
      // Held in a register: the compiler would otherwise fold the shared
      // vector into both FMAs as a memory operand, two loads again.
      __asm__("" : "+x"(y1));
      lo[m] += x0 * y0;
      hi[m] += x1 * y1;
      if (m < M2) {
        V y2;
        __builtin_memcpy(&y2, yo + m * s + 2 * L, sizeof(V));
        lo[M + m] += x0 * y1;
        hi[M + m] += x1 * y2;
      }
    }
  }
  for (int m = 0; m < M + M2; ++m) {
    Dtype* o = out + (m < M ? m : K + m - M) * out_stride;
    const bool nt = stream_line(stream, o);
    VecStore<VB>::put(o, lo[m], nt);
    VecStore<VB>::put(o + L, hi[m], nt);
  }
}

// Only where a block is two vectors (AVX2: 32-byte vectors, 64-byte blocks);
// elsewhere the plan below is empty and this is never called.
template <int VB> struct PairBlock {
  template <typename Dtype, int M, int M2>
  static DCD_INLINE void run(int, const Dtype*, int, const Dtype*, int, int,
                             int, Dtype*, int, bool) {}
};
template <> struct PairBlock<32> {
  template <typename Dtype, int M, int M2>
  static DCD_INLINE void run(int n, const Dtype* x, int x_stride,
      const Dtype* y, int y_stride, int s, int K, Dtype* out,
      int out_stride, bool stream) {
    vec_pair_block<Dtype, 32, M, M2>(n, x, x_stride, y, y_stride, s, K, out,
                                     out_stride, stream);
  }
};

// Groups (first offset, M, M2) of a row's nd horizontal offsets for
// vec_pair_block, pairs K apart; M2 = 0 marks a plain vec_block of M <= 5
// offsets (no partner offset K further on).
inline vector<int> pair_plan(int nd, int K) {
  vector<int> plan;
  vector<bool> done(nd, false);
  for (int d = 0; d < nd; ++d) {
    if (done[d]) { continue; }
    const bool paired = d + K < nd;
    const int cap = paired ? std::min(3, K) : 5;
    int m = 0, m2 = 0;
    while (m < cap && d + m < nd && !done[d + m]) { done[d + m++] = true; }
    while (paired && m2 < m && d + K + m2 < nd && !done[d + K + m2]) {
      done[d + K + m2++] = true;
    }
    plan.push_back(d);
    plan.push_back(m);
    plan.push_back(m2);
  }
  return plan;
}

// The first element of `buf` on a 64-byte line (buf holds a line's worth
// of elements more than its user needs).
template <typename Dtype>
inline Dtype* first_line(vector<Dtype>* buf) {
  Dtype* p = &(*buf)[0];
  return p + (-reinterpret_cast<uintptr_t>(p) & 63) / sizeof(Dtype);
}

// NR output rows that read the same row of F_b (each at its own
// displacement row) x ND horizontal offsets, one vector of columns: the ND
// shifted loads of b serve NR rows, NR + ND loads for NR ND FMAs, where
// vec_block takes 1 + ND for ND. a: the first row's channel 0, rows
// a_step apart; out: its first offset, rows out_step apart. Each sum is over
// channels in ascending order, as in vec_block.
template <typename Dtype, int VB, int NR, int ND>
DCD_INLINE void shared_row_block(int channels, const Dtype* a, int a_step,
    int a_plane, const Dtype* b, int b_plane, int s, Dtype* out,
    int out_step, int out_plane, bool stream) {
  typedef typename VecOf<Dtype, VB>::type V;
  V acc[NR][ND];
  for (int r = 0; r < NR; ++r) {
    for (int d = 0; d < ND; ++d) { acc[r][d] = V{}; }
  }
  for (int c = 0; c < channels; ++c) {
    V av[NR];
    for (int r = 0; r < NR; ++r) {
      __builtin_memcpy(&av[r], a + r * a_step + c * a_plane, sizeof(V));
    }
    // Unrolled by request: GCC's own limit left the 4 x 5 block a loop,
    // its sums on the stack, stored and loaded at every step.
#pragma GCC unroll 8
    for (int d = 0; d < ND; ++d) {
      const V bv = register_load<V>(b + c * b_plane + d * s);
#pragma GCC unroll 8
      for (int r = 0; r < NR; ++r) { acc[r][d] += av[r] * bv; }
    }
  }
  for (int r = 0; r < NR; ++r) {
    for (int d = 0; d < ND; ++d) {
      Dtype* o = out + r * out_step + d * out_plane;
      VecStore<VB>::put(o, acc[r][d], stream_line(stream, o));
    }
  }
}

// shared_row_block with NR (1..kSharedRows) and ND (1..5) picked at run
// time.
template <typename Dtype, int VB>
DCD_INLINE void shared_row_block_any(int nr, int nd, int channels,
    const Dtype* a, int a_step, int a_plane, const Dtype* b, int b_plane,
    int s, Dtype* out, int out_step, int out_plane, bool stream) {
  switch (nr * 8 + nd) {
#define DCD_SHARED(NR, ND) case NR * 8 + ND: \
    shared_row_block<Dtype, VB, NR, ND>(channels, a, a_step, a_plane, b, \
        b_plane, s, out, out_step, out_plane, stream); break
#define DCD_SHARED_ROWS(NR) DCD_SHARED(NR, 5); DCD_SHARED(NR, 4); \
    DCD_SHARED(NR, 3); DCD_SHARED(NR, 2); DCD_SHARED(NR, 1)
    DCD_SHARED_ROWS(4); DCD_SHARED_ROWS(3); DCD_SHARED_ROWS(2);
    DCD_SHARED_ROWS(1);
#undef DCD_SHARED_ROWS
#undef DCD_SHARED
  }
}
#endif

// A block narrower than 64 bytes of columns (the right edge of a row whose
// width is not a multiple of 16 floats, e.g. 56): whole vectors first, then
// narrower ones (NarrowVec), then the smallest vector again ending at the
// block's last column, or, in rows narrower than that vector,
// correlate_block_few.
template <typename Dtype, int VB>
DCD_INLINE void correlate_tail(const Dtype* a, int a_plane, const Dtype* b,
    int b_plane, int s, int channels, Dtype* out, int out_plane, int nd,
    int jb, int back) {
  int jt = 0;
#if DCD_X86_DISPATCH
  const int L = VB / sizeof(Dtype);
  for (; jt + L <= jb; jt += L) {
    vec_block_r<Dtype, VB, 1>(nd, channels, a + jt, StridedOffset{a_plane},
        b + jt, StridedOffset{b_plane}, s, out + jt, out_plane);
  }
  const int kH = NarrowVec<VB>::kHalf, kQ = NarrowVec<VB>::kQuarter;
  if (kH < VB && jt + kH / static_cast<int>(sizeof(Dtype)) <= jb) {
    vec_block_r<Dtype, kH, 1>(nd, channels, a + jt, StridedOffset{a_plane},
        b + jt, StridedOffset{b_plane}, s, out + jt, out_plane);
    jt += kH / sizeof(Dtype);
  }
  if (kQ < kH && jt + kQ / static_cast<int>(sizeof(Dtype)) <= jb) {
    vec_block_r<Dtype, kQ, 1>(nd, channels, a + jt, StridedOffset{a_plane},
        b + jt, StridedOffset{b_plane}, s, out + jt, out_plane);
    jt += kQ / sizeof(Dtype);
  }
  // The last 1-3 columns: the smallest vector once more, ending at the
  // block's last column, where the row has that many columns before it
  // (`back` of them lie before the block). It writes again up to 3 columns
  // already written, each the same sum in the same order.
  const int kLQ = kQ / sizeof(Dtype);
  if (jt < jb && jb + back >= kLQ) {
    vec_block_r<Dtype, kQ, 1>(nd, channels, a + jb - kLQ,
        StridedOffset{a_plane}, b + jb - kLQ, StridedOffset{b_plane}, s,
        out + jb - kLQ, out_plane);
    jt = jb;
  }
#endif
  if (jt < jb) {
    correlate_block_few(a + jt, a_plane, b + jt, b_plane, s, channels,
                        out + jt, out_plane, nd, jb - jt);
  }
}

#if DCD_X86_DISPATCH
// The full vector blocks of columns [col_begin, col_end) of output rows
// [row_begin, row_end) (VB = 64: one vector is a block): rows in groups of
// kSharedRows; each row r of F_b that a group reads is loaded once for every
// row of the group whose window holds it, at the displacement row
// (r - i) / s of each (shared_row_block).
template <typename Dtype, int VB>
DCD_INLINE void correlate_shared_rows(const Dtype* a_hat, int aw,
    const Dtype* b_hat, int channels, int height, int width, int dh, int dw,
    int s, Dtype* top, int row_begin, int row_end, int col_begin,
    int col_end, bool stream) {
  const int kJB = VB / sizeof(Dtype);
  const int hw = height * width;
  const int pad_h = dh * s, pad_w = dw * s;
  const int pw = width + 2 * pad_w;
  const int nd_row = 2 * dw + 1;
  for (int i0 = row_begin; i0 < row_end; i0 += kSharedRows) {
    const int rows = std::min(kSharedRows, row_end - i0);
    const int r_end = std::min(height, i0 + rows + pad_h);
    for (int j0 = col_begin; j0 < col_end; j0 += kJB) {
      for (int r = std::max(0, i0 - pad_h); r < r_end; ++r) {
        // The group's rows i0 + rho that read r: r - i0 - rho = di s with
        // |di| <= dh, every s-th row from the first.
        const int lo = std::max(0, r - i0 - pad_h);
        const int rho = lo + ((r - i0 - lo) % s + s) % s;
        const int hi = std::min(rows - 1, r - i0 + pad_h);
        if (rho > hi) { continue; }
        const int di = (r - i0 - rho) / s;
        const Dtype* a = a_hat + (i0 + rho) * channels * aw + j0;
        const Dtype* b_row = b_hat + (r + pad_h) * channels * pw +
            (pad_w - dw * s) + j0;
        // The next row of the group is one displacement row lower.
        Dtype* out_row = top + dcd::window_channel(di, -dw, dh, dw) * hw +
            (i0 + rho) * width + j0;
        for (int dj0 = 0; dj0 < nd_row; dj0 += 5) {
          shared_row_block_any<Dtype, VB>((hi - rho) / s + 1,
              std::min(5, nd_row - dj0), channels, a, s * channels * aw, aw,
              b_row + dj0 * s, pw, s, out_row + dj0 * hw,
              s * width - nd_row * hw, hw, stream);
        }
      }
    }
  }
}
#endif

#if DCD_X86_DISPATCH
// The two gradients with the forward's groups of rows (AVX2 and AVX-512,
// dilation 1; docs/ASSUMPTIONS.md, "CPU kernel figures"). A gradient
// element of group row rho sums, over the map rows r within dh of it and
// the nd horizontal shifts t, p(c, r, t) g(r, rho, t): p is F_b (d a_hat)
// or a_hat (d b_hat) at row r shifted by t, g the matching displacement's
// top diff. A block holds CB channels x the group's rows in registers; each
// load of p serves the group's rows, each load of g the CB channels. The g
// vectors are packed beforehand in the order the block reads them, so a
// block streams them from L2 in sequence (the planes of g are 49 KiB apart
// and shared a few L1 sets).

// The rows rho of a group of `rows` from i0 within dh of map row r.
struct RowSpan {
  int lo, hi;
};
inline RowSpan row_span(int r, int i0, int rows, int dh) {
  const RowSpan span = {std::max(0, r - i0 - dh),
                        std::min(rows - 1, r - i0 + dh)};
  return span;
}

// The lines of p that the next column block reads and this one does not
// (each map row's L columns past this block's reach: from column nd - 1 + L
// of p when the shifts move right, pt = 1, from L when they move left),
// asked into L1 while this block runs, by each map row's step for its own
// row. p's map rows are a whole row of channels apart (32 KiB at C = 64),
// too far for the hardware prefetchers, and on Zen 3 (AVX2) and Zen 4
// (AVX-512) cores the blocks waited for them. All of them at once at a
// block's start (216 at AVX-512, 108 at AVX2) filled a Xeon core's fill
// buffers, and the block then waited for room (docs/ASSUMPTIONS.md, "CPU
// kernel figures").
inline int next_block_column(int nd, int L, int pt) {
  return L + (pt > 0 ? nd - 1 : 0);
}

// One map row's lines of them (p at the row's channel 0, column 0).
template <typename Dtype, int CB>
DCD_INLINE void prefetch_next_block_row(const Dtype* p, int next, int L,
                                        int pc) {
  for (int c = 0; c < CB; ++c) {
    __builtin_prefetch(p + next + c * pc, 0, 3);
    __builtin_prefetch(p + next + c * pc + L - 1, 0, 3);
  }
}

// A step's next vector of g, held in a register (else GCC folds it into
// each channel's FMA, CB loads), and gp one vector on. With kFill it is
// read from the top diff at g0[at] and written to gp (the first channel
// block packs g as it goes, GradFill); else read from gp.
template <typename Dtype, int VB, bool kFill>
DCD_INLINE typename VecOf<Dtype, VB>::type next_g(const Dtype* g0,
                                                  ptrdiff_t at, Dtype*& gp) {
  typename VecOf<Dtype, VB>::type gv;
  if (kFill) {
    __builtin_memcpy(&gv, g0 + at, VB);
    __builtin_memcpy(gp, &gv, VB);
  } else {
    __builtin_memcpy(&gv, gp, VB);
  }
  gp += VB / sizeof(Dtype);
  __asm__("" : "+v"(gv));
  return gv;
}

// Before the fill reads a map row's vectors of g (next_g), the line two
// lines on of each, which a later column block reads, is asked into L2.
// Each vector is of its own plane and row (the planes 49 KiB apart), which
// the hardware prefetchers do not see coming: on a Zen 4 core the fill's
// loads waited on memory (an eleventh of the FMAs, a sixth of the time).
// The next line was too close to gain (it arrives with this one), and the
// prefetches placed beside the loads made GCC spill (docs/ASSUMPTIONS.md,
// "CPU kernel figures").
template <typename Dtype, int LO, int HI>
DCD_INLINE void fill_prefetch(int nd, const Dtype* g0, ptrdiff_t off,
                              ptrdiff_t g_t, ptrdiff_t g_rho) {
  const Dtype* ahead = g0 + off + 128 / sizeof(Dtype);
  for (int t = 0; t < nd; ++t) {
    for (int rho = LO; rho <= HI; ++rho) {
      __builtin_prefetch(ahead + t * g_t + rho * g_rho, 0, 2);
    }
  }
}

// One map row of gradient_rows_block: acc[c][rho] += p(c, t) g(rho, t) for
// rho in [LO, HI], t < nd (p at c pc + t pt; g read in order from gp).
// With kFill, g is read from the top diff instead, at g0[off + t g_t + rho
// g_rho], and written to gp in the order the other blocks read it: the first
// channel block packs g as it goes (GradFill). With kGFirst, each shift's g
// vectors are loaded first and then each p once for all the rows (the
// partial steps of gradient_rows_phased, where the registers allow it);
// otherwise p is loaded first, and GCC folds it into every FMA where fewer
// than all the rows use it. It first asks for the map row's lines of p
// that the next column block reads (prefetch_next_block_row).
template <typename Dtype, int VB, int CB, int LO, int HI, bool kFill,
          bool kGFirst = false>
DCD_INLINE void gradient_rows_step(
    typename VecOf<Dtype, VB>::type (&acc)[CB][kSharedRows], int nd,
    const Dtype* p, int pc, int pt, Dtype*& gp, const Dtype* g0,
    ptrdiff_t off, ptrdiff_t g_t, ptrdiff_t g_rho, int next) {
  typedef typename VecOf<Dtype, VB>::type V;
  prefetch_next_block_row<Dtype, CB>(p, next, VB / sizeof(Dtype), pc);
  if (kFill) { fill_prefetch<Dtype, LO, HI>(nd, g0, off, g_t, g_rho); }
  if (kGFirst) {
    for (int t = 0; t < nd; ++t) {
      V gv[kSharedRows];
#pragma GCC unroll 4
      for (int rho = LO; rho <= HI; ++rho) {
        gv[rho] = next_g<Dtype, VB, kFill>(g0, off + t * g_t + rho * g_rho,
                                           gp);
      }
#pragma GCC unroll 8
      for (int c = 0; c < CB; ++c) {
        const V pv = register_load<V>(p + c * pc + t * pt);
#pragma GCC unroll 4
        for (int rho = LO; rho <= HI; ++rho) { acc[c][rho] += pv * gv[rho]; }
      }
    }
    return;
  }
  for (int t = 0; t < nd; ++t) {
    V pv[CB];
#pragma GCC unroll 8
    for (int c = 0; c < CB; ++c) {
      __builtin_memcpy(&pv[c], p + c * pc + t * pt, sizeof(V));
    }
#pragma GCC unroll 4
    for (int rho = LO; rho <= HI; ++rho) {
      const V gv = next_g<Dtype, VB, kFill>(g0,
                                            off + t * g_t + rho * g_rho, gp);
#pragma GCC unroll 8
      for (int c = 0; c < CB; ++c) { acc[c][rho] += pv[c] * gv; }
    }
  }
}

// A zero vector made where it is needed. A plain V{} is one constant that
// GCC keeps in a register across the loops of the AVX2 gradients, and the
// block then has 15 of the 16 ymm registers for its 16 values: it reads
// one of its p vectors from memory in each FMA that uses it
// (docs/ASSUMPTIONS.md, "CPU kernel figures"). In gradient_rows_phased
// (AVX-512), GCC made the late row's zeros at the block's start, holding
// 24 sums through the first partial steps instead of 18.
template <int VB> struct FreshZero {
  template <typename V> static DCD_INLINE V get() { return V{}; }
};
template <> struct FreshZero<32> {
  template <typename V> static DCD_INLINE V get() {
    V z;
    __asm__ volatile("vxorps %x0, %x0, %x0" : "=x"(z));
    return z;
  }
};
template <> struct FreshZero<64> {
  template <typename V> static DCD_INLINE V get() {
    V z;
    __asm__ volatile("vpxord %0, %0, %0" : "=v"(z));
    return z;
  }
};

// gradient_rows_block (AVX-512) for a group of kSharedRows rows (kUp: map
// rows ascending). Unclipped, a group meets 2 dh + 4 map rows: the first
// three and last three reach only some of its rows (partial steps), the
// rest all of them; at the map's top and bottom edges the group meets a
// run of that sequence, steps `first` to `last`. The row that starts last
// gets its sums only at the first full step, and the row that ends first is
// written out before the last partial steps, so that the partial steps
// hold 3 x CB sums, not 4 x CB, and have the registers to load each p once
// per shift (kGFirst). In one loop over the map rows with a switch per row,
// GCC folded p into each of their FMAs: one unaligned load per FMA, and the
// partial steps (a fifth of the FMAs) took a third of the time
// (docs/ASSUMPTIONS.md, "CPU kernel figures"). The same sums in the same
// order.
template <typename Dtype, int VB, int CB, bool kFill, bool kUp>
DCD_INLINE void gradient_rows_phased(int dh, int first, int last,
    int r0, int nd, const Dtype* p0, int p_row, int pc, int pt,
    Dtype* gp, Dtype* out, int out_c, int out_row, const Dtype* g0,
    ptrdiff_t g_off, ptrdiff_t g_r, ptrdiff_t g_t, ptrdiff_t g_rho) {
  typedef typename VecOf<Dtype, VB>::type V;
  const int next = next_block_column(nd, VB / sizeof(Dtype), pt);
  const int kLate = kUp ? kSharedRows - 1 : 0;
  const int kEarly = kSharedRows - 1 - kLate;
  const int r_dir = kUp ? 1 : -1;
  const int n_steps = kSharedRows + 2 * dh;
  V acc[CB][kSharedRows];
  for (int c = 0; c < CB; ++c) {
    for (int rho = 0; rho < kSharedRows; ++rho) {
      if (rho != kLate) { acc[c][rho] = FreshZero<VB>::template get<V>(); }
    }
  }
  // Step k of the sequence reads map row r0 + k r_dir.
  int k = first;
#define DCD_STEP(K, LO, HI, G_FIRST) if (k == (K) && k <= last) { \
      const int r = r0 + k * r_dir; \
      gradient_rows_step<Dtype, VB, CB, LO, HI, kFill, G_FIRST>(acc, nd, \
          p0 + r * p_row, pc, pt, gp, g0, g_off + r * g_r, g_t, g_rho, \
          next); \
      ++k; }
  if (kUp) {
    DCD_STEP(0, 0, 0, false) DCD_STEP(1, 0, 1, true) DCD_STEP(2, 0, 2, true)
  } else {
    DCD_STEP(0, 3, 3, false) DCD_STEP(1, 2, 3, true) DCD_STEP(2, 1, 3, true)
  }
  for (int c = 0; c < CB; ++c) {
    acc[c][kLate] = FreshZero<VB>::template get<V>();
  }
  for (; k < n_steps - 3 && k <= last; ++k) {
    const int r = r0 + k * r_dir;
    gradient_rows_step<Dtype, VB, CB, 0, 3, kFill>(acc, nd, p0 + r * p_row,
        pc, pt, gp, g0, g_off + r * g_r, g_t, g_rho, next);
  }
  for (int c = 0; c < CB; ++c) {
    VecStore<VB>::put(out + c * out_c + kEarly * out_row, acc[c][kEarly],
                      false);
  }
  k = std::max(k, n_steps - 3);
  if (kUp) {
    DCD_STEP(n_steps - 3, 1, 3, true) DCD_STEP(n_steps - 2, 2, 3, true)
    DCD_STEP(n_steps - 1, 3, 3, false)
  } else {
    DCD_STEP(n_steps - 3, 0, 2, true) DCD_STEP(n_steps - 2, 0, 1, true)
    DCD_STEP(n_steps - 1, 0, 0, false)
  }
#undef DCD_STEP
  for (int c = 0; c < CB; ++c) {
    for (int rho = 0; rho < kSharedRows; ++rho) {
      if (rho != kEarly) {
        VecStore<VB>::put(out + c * out_c + rho * out_row, acc[c][rho],
                          false);
      }
    }
  }
}

// CB channels x a group's rows, one vector of columns: sums over the map
// rows r_first, r_first + r_dir, ... (before r_end) and their shifts, p(c,
// r, t) at p0 + r p_row + c pc + t pt; written to out + c out_c + rho
// out_row for rho < rows.
template <typename Dtype, int VB, int CB, bool kFill>
DCD_INLINE void gradient_rows_block(int i0, int rows, int dh, int r_first,
    int r_end, int r_dir, int nd, const Dtype* p0, int p_row, int pc, int pt,
    Dtype* gp, Dtype* out, int out_c, int out_row, const Dtype* g0,
    ptrdiff_t g_off, ptrdiff_t g_r, ptrdiff_t g_t, ptrdiff_t g_rho) {
  typedef typename VecOf<Dtype, VB>::type V;
  if (VB == 64 && rows == kSharedRows && dh >= 1) {
    // The unclipped sequence's first map row, and where this group's run
    // of it starts and ends.
    const int r0 = r_dir > 0 ? i0 - dh : i0 + kSharedRows - 1 + dh;
    const int first = (r_first - r0) * r_dir;
    const int last = first + (r_end - r_first) * r_dir - 1;
    if (r_dir > 0) {
      gradient_rows_phased<Dtype, VB, CB, kFill, true>(dh, first, last, r0,
          nd, p0, p_row, pc, pt, gp, out, out_c, out_row, g0, g_off, g_r,
          g_t, g_rho);
    } else {
      gradient_rows_phased<Dtype, VB, CB, kFill, false>(dh, first, last, r0,
          nd, p0, p_row, pc, pt, gp, out, out_c, out_row, g0, g_off, g_r,
          g_t, g_rho);
    }
    return;
  }
  const int next = next_block_column(nd, VB / sizeof(Dtype), pt);
  V acc[CB][kSharedRows];
  const V zero = FreshZero<VB>::template get<V>();
  for (int c = 0; c < CB; ++c) {
    for (int rho = 0; rho < kSharedRows; ++rho) { acc[c][rho] = zero; }
  }
  for (int r = r_first; r != r_end; r += r_dir) {
    const RowSpan span = row_span(r, i0, rows, dh);
    const Dtype* p = p0 + r * p_row;
    switch (span.lo * kSharedRows + span.hi) {
#define DCD_STEP(LO, HI) case LO * kSharedRows + HI: \
      gradient_rows_step<Dtype, VB, CB, LO, HI, kFill>(acc, nd, p, pc, pt, \
          gp, g0, g_off + r * g_r, g_t, g_rho, next); \
      break
      DCD_STEP(0, 0); DCD_STEP(0, 1); DCD_STEP(0, 2); DCD_STEP(0, 3);
      DCD_STEP(1, 1); DCD_STEP(1, 2); DCD_STEP(1, 3);
      DCD_STEP(2, 2); DCD_STEP(2, 3);
      DCD_STEP(3, 3);
#undef DCD_STEP
    }
  }
  for (int c = 0; c < CB; ++c) {
    for (int rho = 0; rho < rows; ++rho) {
      VecStore<VB>::put(out + c * out_c + rho * out_row, acc[c][rho], false);
    }
  }
}

// Channels per block of the grouped gradients: CB x kSharedRows sums, CB
// vectors of p and one of g in registers (AVX-512: 24 + 6 + 1 of 32; AVX2:
// 12 + 3 + 1 of 16).
template <int VB> struct GradChannels {
  static const int value = VB == 64 ? 6 : 3;
};

// Where the first channel block reads g from the top diff (g non-null, the
// packed buffer not yet written): map row r's vector of shift t for group
// row rho is at g[off + r * this->r + t * this->t + rho * this->rho] for the
// first block of columns, each next block L further.
template <typename Dtype> struct GradFill {
  const Dtype* g;
  ptrdiff_t off, r, t, rho;
  int jb_begin, jb_end;  // the column blocks filled so; the rest are packed
};

// The group's channel blocks (the last one shorter) over packed g (which
// the first one writes where `fill` says so), each over the col_blocks
// vectors of columns in turn (p, out one vector further and gp one
// block_stride further each): a channel block's lines of p stay in L1 from
// one column block to the next, which shares most of them.
template <typename Dtype, int VB>
DCD_INLINE void gradient_rows_channels(int channels, int i0, int rows,
    int dh, int r_first, int r_end, int r_dir, int nd, const Dtype* p0,
    int p_row, int pc, int pt, Dtype* gp0, Dtype* out, int out_c,
    int out_row, int col_blocks, int block_stride,
    const GradFill<Dtype>& fill) {
  const int kCB = GradChannels<VB>::value;
  const int L = VB / sizeof(Dtype);
  for (int c0 = 0; c0 < channels; c0 += kCB) {
    for (int jb = 0; jb < col_blocks; ++jb) {
      const Dtype* p = p0 + c0 * pc + jb * L;
      Dtype* gp = gp0 + jb * block_stride;
      Dtype* o = out + c0 * out_c + jb * L;
      if (c0 == 0 && fill.g && jb >= fill.jb_begin && jb < fill.jb_end) {
        gradient_rows_block<Dtype, VB, GradChannels<VB>::value, true>(
            i0, rows, dh, r_first, r_end, r_dir, nd, p, p_row, pc, pt, gp, o,
            out_c, out_row, fill.g, fill.off + jb * L, fill.r, fill.t,
            fill.rho);
        continue;
      }
      // Cases above kCB never run; they name kCB's block so that no wider
      // one is compiled.
      switch (std::min(kCB, channels - c0)) {
#define DCD_BLOCK(CB) case CB: gradient_rows_block<Dtype, VB, \
          (CB < GradChannels<VB>::value ? CB : GradChannels<VB>::value), \
          false>(i0, rows, dh, r_first, r_end, r_dir, nd, p, p_row, pc, pt, \
          gp, o, out_c, out_row, NULL, 0, 0, 0, 0); break
        DCD_BLOCK(6); DCD_BLOCK(5); DCD_BLOCK(4); DCD_BLOCK(3); DCD_BLOCK(2);
        DCD_BLOCK(1);
#undef DCD_BLOCK
      }
    }
  }
}

// The first column the per-row gradient loops still do: the grouped path
// takes whole vectors of columns at dilation 1 (AVX2 and AVX-512).
template <typename Dtype, int VB>
inline int grouped_columns(int width, int s) {
  const int L = VB / sizeof(Dtype);
  return VB >= 32 && s == 1 ? width / L * L : 0;
}

// The rows of plane k of g that a group reads (for_b: map rows i0 - di ..
// of plane k's displacement row di; else the group's own rows), asked into
// the caches while the packing is a few planes behind. The planes are 49
// KiB apart, so the hardware prefetchers do not see the next one coming,
// and each plane's first lines stalled the copy (docs/ASSUMPTIONS.md, "CPU
// kernel figures"). The columns that the first channel block fills come
// along.
const int kPackAhead = 4;  // planes
template <typename Dtype>
DCD_INLINE void prefetch_group_plane(const Dtype* g, int k, int dh, int dw,
    int height, int width, int i0, int rows, bool for_b) {
  if (k >= dcd::window_size(dh, dw)) { return; }
  const int row0 = for_b ? i0 - dcd::window_di(k, dh, dw) : i0;
  const int first = std::max(0, row0);
  const int last = std::min(height, row0 + rows);
  const char* p = reinterpret_cast<const char*>(
      g + static_cast<ptrdiff_t>(k) * height * width + first * width);
  const int bytes = (last - first) * width * static_cast<int>(sizeof(Dtype));
  for (int o = 0; o < bytes; o += 64) { __builtin_prefetch(p + o, 0, 2); }
}

// dst[j] = src[j] for j in [begin, end): L at a time, then one by one.
template <typename Dtype, int L>
DCD_INLINE void copy_columns(const Dtype* src, int begin, int end,
                             Dtype* dst) {
  int j = begin;
  for (; j + L <= end; j += L) {
    __builtin_memcpy(dst + j, src + j, sizeof(Dtype) * L);  // inlined
  }
  for (; j < end; ++j) { dst[j] = src[j]; }
}

// The g vectors of one group (rows i0 .. i0 + rows - 1) for every block of
// L columns of [0, col_end) but those in [skip_begin, skip_end) (which the
// first channel block fills), each block's block_stride apart, in the order
// gradient_rows_block reads them: map rows r_first, r_first + r_dir, ...
// (before r_end), shifts t, rows rho of the span. For d a_hat (for_b false)
// group row rho meets map row r = i0 + rho + di and reads g at row i0 + rho;
// for d b_hat it meets r = i0 + rho - di and reads g at row r, shifted
// with a_hat by -dj (zero where that leaves the map): the row is copied to
// `row_buf` first, whose padding of dw zeros each side (pack_row_size)
// gives the shifted vectors' zeros, so no column is copied one by one (and
// only the columns that the packed blocks read). g is read plane by plane,
// the group's rows of a plane in one contiguous run.
template <typename Dtype, int L>
inline int pack_row_pad(int dw) { return (dw + L - 1) / L * L; }
template <typename Dtype, int L>
inline int pack_row_size(int width, int dw) {
  return 2 * pack_row_pad<Dtype, L>(dw) + (width + L - 1) / L * L;
}

template <typename Dtype, int L>
inline void pack_group_g(const Dtype* g, int height, int width, int dh,
    int dw, int i0, int rows, int r_first, int r_end, int r_dir, bool for_b,
    int col_end, int skip_begin, int skip_end, int block_stride,
    vector<int>* start, Dtype* packed, Dtype* row_buf) {
  const int nd = 2 * dw + 1;
  const int hw = height * width;
  // (*start)[n nd + t]: a block's first vector of the n-th map row, shift t.
  start->clear();
  int n_vec = 0;
  for (int r = r_first; r != r_end; r += r_dir) {
    const RowSpan span = row_span(r, i0, rows, dh);
    for (int t = 0; t < nd; ++t) {
      start->push_back(n_vec);
      n_vec += span.hi - span.lo + 1;
    }
  }
  CHECK_LE(n_vec * L, block_stride);
  Dtype* row = row_buf + pack_row_pad<Dtype, L>(dw);
  for (int di = -dh; di <= dh; ++di) {
    for (int t = 0; t < nd; ++t) {
      const int k = dcd::window_channel(di, t - dw, dh, dw);
      prefetch_group_plane(g, k + kPackAhead, dh, dw, height, width, i0, rows,
                           for_b);
      const Dtype* plane = g + k * hw;
      // g's column for column j: j + shift.
      const int shift = for_b ? dw - t : 0;
      for (int rho = 0; rho < rows; ++rho) {
        const int r = for_b ? i0 + rho - di : i0 + rho + di;
        if (r < 0 || r >= height) { continue; }
        const RowSpan span = row_span(r, i0, rows, dh);
        Dtype* dst = packed +
            ((*start)[(r - r_first) * r_dir * nd + t] + rho - span.lo) * L;
        const Dtype* src = plane + (for_b ? r : i0 + rho) * width;
        if (shift != 0) {
          // The columns that the packed blocks' shifted vectors read.
          const int left = std::min(width, skip_begin + dw);
          copy_columns<Dtype, L>(src, 0, left, row);
          copy_columns<Dtype, L>(src, std::max(left, skip_end - dw), width,
                                 row);
          src = row + shift;
        }
        for (int j0 = 0; j0 < col_end; j0 += L, dst += block_stride) {
          if (j0 >= skip_begin && j0 < skip_end) { continue; }
          __builtin_memcpy(dst, src + j0, sizeof(Dtype) * L);  // inlined
        }
      }
    }
  }
}

// A thread's buffers for correlate_gradient_rows, kept over its chunks of
// rows: a group's packed g and one row of g with its zero padding
// (pack_group_g writes the row, never its padding).
template <typename Dtype, int VB>
struct PackBuffers {
  static const int L = VB / sizeof(Dtype);
  PackBuffers(int width, int dh, int dw)
      : block_stride(kSharedRows * (2 * dh + 1) * (2 * dw + 1) * L),
        buf(static_cast<size_t>(grouped_columns<Dtype, VB>(width, 1) / L) *
            block_stride + 64 / sizeof(Dtype)),
        row_buf(pack_row_size<Dtype, L>(width, dw)) {}
  const int block_stride;
  vector<Dtype> buf, row_buf;
  vector<int> start;
};

// One gradient of the rows [row_begin, row_end), columns [0,
// grouped_columns): d a_hat (for_b false; p = F_b, map rows ascending) or
// d b_hat (p = a_hat shifted with g, map rows descending: displacement row
// ascending). Both sum each element in ascending k, as the per-row loops
// below. p0: p's row 0, channel 0, at the shift t = 0 of column 0. norm
// (unless NULL) finishes each group of rows.
template <typename Dtype, int VB>
DCD_INLINE void correlate_gradient_rows(const Dtype* g, const Dtype* p0,
    int p_row, int pc, bool for_b, int channels, int height, int width,
    int dh, int dw, Dtype* out, int row_begin, int row_end,
    PackBuffers<Dtype, VB>* bufs, const NormalizeBackwardRows<Dtype>* norm) {
  const int L = VB / sizeof(Dtype);
  const int hw = height * width;
  const int nd = 2 * dw + 1;
  const int col_end = grouped_columns<Dtype, VB>(width, 1);
  const int col_blocks = col_end / L;
  const int block_stride = bufs->block_stride;
  Dtype* packed = first_line(&bufs->buf);
  for (int i0 = row_begin; i0 < row_end; i0 += kSharedRows) {
    const int rows = std::min(kSharedRows, row_end - i0);
    const int r_low = std::max(0, i0 - dh);
    const int r_high = std::min(height, i0 + rows + dh) - 1;
    const int r_first = for_b ? r_high : r_low;
    const int r_end = for_b ? r_low - 1 : r_high + 1;
    const int r_dir = for_b ? -1 : 1;
    // The first channel block reads g from the top diff and packs it as it
    // goes, so that g's reads from memory overlap its multiply-adds
    // (docs/ASSUMPTIONS.md, "CPU kernel figures"). d a_hat: group row rho
    // meets map row r at plane (r - i0 - rho + dh) nd + t, g's row i0 + rho.
    // d b_hat: at plane (i0 + rho - r + dh) nd + t, g's row r, column j +
    // dw - t; the column blocks whose shifted vectors reach past the map's
    // edge are packed beforehand instead, through the zero-padded row (and
    // all of them where the channels are fewer than a block's).
    GradFill<Dtype> fill = {NULL, 0, 0, 0, 0, 0, 0};
    if (channels >= GradChannels<VB>::value) {
      fill.g = g;
      if (for_b) {
        fill.off = static_cast<ptrdiff_t>(i0 + dh) * nd * hw + dw;
        fill.r = width - static_cast<ptrdiff_t>(nd) * hw;
        fill.t = hw - 1;
        fill.rho = static_cast<ptrdiff_t>(nd) * hw;
        fill.jb_begin = (dw + L - 1) / L;
        fill.jb_end = std::max(fill.jb_begin,
                               std::min(col_blocks, (width - dw) / L));
      } else {
        fill.off = static_cast<ptrdiff_t>(dh - i0) * nd * hw +
            static_cast<ptrdiff_t>(i0) * width;
        fill.r = static_cast<ptrdiff_t>(nd) * hw;
        fill.t = hw;
        fill.rho = width - static_cast<ptrdiff_t>(nd) * hw;
        fill.jb_begin = 0;
        fill.jb_end = col_blocks;
      }
    }
    if (fill.jb_end - fill.jb_begin < col_blocks) {
      pack_group_g<Dtype, L>(g, height, width, dh, dw, i0, rows, r_first,
          r_end, r_dir, for_b, col_end, fill.jb_begin * L, fill.jb_end * L,
          block_stride, &bufs->start, packed, &bufs->row_buf[0]);
    }
    gradient_rows_channels<Dtype, VB>(channels, i0, rows, dh, r_first,
        r_end, r_dir, nd, p0, p_row, pc, for_b ? -1 : 1, packed,
        out + i0 * width, hw, width, col_blocks, block_stride, fill);
    if (norm) { (*norm)(out, i0, i0 + rows); }
  }
}
#endif

// Cost volume of one image from normalised features in rows of channels
// (a_hat H x C x aw, pointing at column 0; b_hat zero-padded by (dh s,
// dw s), Hp x C x pw). Loop layout: output row i, blocks of 64 bytes of
// columns, then every displacement row di and groups of horizontal offsets
// (pairs of offsets sharing loads where the block is two vectors),
// channels innermost with the block's sums held in registers. The block of
// F_a (C x 64 bytes) stays in L1 for all D displacements, the 2 dh + 1 rows
// of F_b that row i reads stay in L2 for the next row, and a channel step
// is one padded row (not a plane), so the inner loop touches a few pages,
// not 2 C (docs/ASSUMPTIONS.md, "CPU kernel figures").
template <typename Dtype, int VB>
DCD_INLINE void correlate_image(const Dtype* a_hat, int aw,
    const Dtype* b_hat, int channels, int height, int width, int dh, int dw,
    int s, Dtype* top, int row_begin, int row_end, bool stream) {
#if DCD_X86_DISPATCH
  // Sums held: kND x 64 bytes, within 16 registers from AVX2 up.
  const int kND = VB >= 32 ? 5 : 3;
  const int kJB = 64 / sizeof(Dtype);
#else
  const int kND = 3;
  const int kJB = 16;
#endif
  const int hw = height * width;
  const int pad_h = dh * s, pad_w = dw * s;
  const int pw = width + 2 * pad_w;
  const int nd_row = 2 * dw + 1;
  // Strips of columns whose 2 dh + 1 rows of F_b (all channels) take about
  // 192 KiB, so that they stay in L2 while the strip's rows go by.
  const int strip_cols = (192 << 10) /
      ((2 * dh + 1) * channels * static_cast<int>(sizeof(Dtype))) - 2 * pad_w;
  const int strip = std::max(kJB, strip_cols / kJB * kJB);
#if DCD_X86_DISPATCH
  const int kL = VB / sizeof(Dtype);
  const int pair_k = kL % s == 0 ? kL / s : 0;
  const vector<int> plan = VB == 32 && pair_k > 0 ?
      pair_plan(nd_row, pair_k) : vector<int>();
#endif
  for (int i = row_begin; i < row_end; ++i) {
    // Rows whose displaced row leaves the map: all zero.
    for (int di = -dh; di <= dh; ++di) {
      if (i + di * s >= 0 && i + di * s < height) { continue; }
      Dtype* out_row =
          top + dcd::window_channel(di, -dw, dh, dw) * hw + i * width;
      for (int d = 0; d < nd_row; ++d) {
        for (int j = 0; j < width; ++j) { out_row[d * hw + j] = 0; }
      }
    }
  }
  for (int strip0 = 0; strip0 < width; strip0 += strip) {
    const int strip_end = std::min(width, strip0 + strip);
    // Columns from j_first on go block by block below, row by row.
    int j_first = strip0;
#if DCD_X86_DISPATCH
    if (VB == 64) {
      j_first = strip0 + (strip_end - strip0) / kJB * kJB;
      correlate_shared_rows<Dtype, VB>(a_hat, aw, b_hat, channels, height,
          width, dh, dw, s, top, row_begin, row_end, strip0, j_first,
          stream);
    }
#endif
    for (int i = row_begin; i < row_end; ++i) {
      const Dtype* a_row = a_hat + i * channels * aw;
      for (int di = -dh; di <= dh; ++di) {
        if (i + di * s < 0 || i + di * s >= height) { continue; }
        for (int j0 = j_first; j0 < strip_end; j0 += kJB) {
          const int jb = std::min(kJB, strip_end - j0);
          const Dtype* a = a_row + j0;
          const Dtype* b_row = b_hat + (i + di * s + pad_h) * channels * pw +
              (pad_w - dw * s) + j0;
          Dtype* out_row = top + dcd::window_channel(di, -dw, dh, dw) * hw +
              i * width + j0;
#if DCD_X86_DISPATCH
          if (jb == kJB && !plan.empty()) {
            for (size_t g = 0; g < plan.size(); g += 3) {
              const Dtype* b = b_row + plan[g] * s;
              Dtype* out = out_row + plan[g] * hw;
              switch (plan[g + 1] * 4 + plan[g + 2]) {
#define DCD_PAIR(M, M2) case M * 4 + M2: \
                PairBlock<VB>::template run<Dtype, M, M2>( \
                    channels, a, aw, b, pw, s, pair_k, out, hw, stream); \
                break
                DCD_PAIR(3, 3); DCD_PAIR(3, 2); DCD_PAIR(3, 1);
                DCD_PAIR(2, 2); DCD_PAIR(2, 1); DCD_PAIR(1, 1);
#undef DCD_PAIR
                default:  // M2 = 0
                  vec_block_r<Dtype, VB, 64 / VB>(plan[g + 1], channels, a,
                      StridedOffset{aw}, b, StridedOffset{pw}, s, out, hw,
                      stream);
              }
            }
            continue;
          }
#endif
          for (int dj0 = 0; dj0 < nd_row; dj0 += kND) {
            const int nd = std::min(kND, nd_row - dj0);
            const Dtype* b = b_row + dj0 * s;
            Dtype* out = out_row + dj0 * hw;
            if (jb < kJB) {
              correlate_tail<Dtype, VB>(a, aw, b, pw, s, channels, out, hw,
                                        nd, jb, j0);
              continue;
            }
#if DCD_X86_DISPATCH
            vec_block_r<Dtype, VB, 64 / VB>(nd, channels, a,
                StridedOffset{aw}, b, StridedOffset{pw}, s, out, hw, stream);
#else
            switch (nd) {
#define DCD_BLOCK(ND) correlate_block<Dtype, ND, kJB>( \
                a, aw, b, pw, s, channels, out, hw)
              case 3: DCD_BLOCK(3); break;
              case 2: DCD_BLOCK(2); break;
              default: DCD_BLOCK(1); break;
#undef DCD_BLOCK
            }
#endif
          }
        }
      }
    }
  }
}


#if DCD_X86_DISPATCH
// A run of m horizontal offsets t0 .. t0 + m - 1 of one displacement row
// for grad_b_block; paired: each t also with its partner t + K (K s = one
// vector), so that the two read three vectors of a_hat, not four.
struct ShiftRun {
  int x, y, m;  // first offset's row in gs, its column in a_hat; count
  bool paired;
};

// R channels x NV vectors of columns of dL/db_hat: acc(r) = sum over the
// runs, t in order, of gs(t) a_hat(r, t), gs rows gw apart (aligned) and
// a_hat one dilation s further left per t. Strides, not an offset table:
// the compiler keeps the addresses in registers. A partner is kx rows
// further in gs and one vector left in a_hat: its second vector is t's
// first.
template <typename Dtype, int VB, int R, int NV>
DCD_INLINE void grad_b_block(const ShiftRun* runs, int n_runs, int kx,
    const Dtype* gs, int gw, const Dtype* a, int aw, int s, Dtype* out,
    int out_stride, const Dtype* a_next) {
  typedef typename VecOf<Dtype, VB>::type V;
  const int L = VB / sizeof(Dtype);
  // The next block's lines of a_hat, asked into L1 now: each is read by one
  // displacement row of one block only, and waiting for it from L2 or L3
  // stalled the FMAs (docs/ASSUMPTIONS.md, "CPU kernel figures").
  if (a_next) {
    for (int u = 0; u < n_runs; ++u) {
      const int left = (runs[u].m - 1) * s + (runs[u].paired ? L : 0);
      const Dtype* y0 = a_next + runs[u].y - left;
      const int n = left + NV * L;
      for (int r = 0; r < R; ++r) {
        for (int o = 0; o < n; o += 64 / sizeof(Dtype)) {
          __builtin_prefetch(y0 + r * aw + o, 0, 3);
        }
        __builtin_prefetch(y0 + r * aw + n - 1, 0, 3);
      }
    }
  }
  V acc[R][NV];
  for (int r = 0; r < R; ++r) {
    for (int v = 0; v < NV; ++v) { acc[r][v] = V{}; }
  }
  for (int u = 0; u < n_runs; ++u) {
    const Dtype* x = gs + runs[u].x * gw;
    const Dtype* y = a + runs[u].y;
    const int m = runs[u].m;
    if (NV == 2 && runs[u].paired) {
      for (int t = 0; t < m; ++t) {
        V x0, x1, x2, x3;  // t's two vectors, then the partner's
        __builtin_memcpy(&x0, x + t * gw, sizeof(V));
        __builtin_memcpy(&x1, x + t * gw + L, sizeof(V));
        __builtin_memcpy(&x2, x + t * gw + kx, sizeof(V));
        __builtin_memcpy(&x3, x + t * gw + kx + L, sizeof(V));
        const Dtype* yt = y - t * s;
        for (int r = 0; r < R; ++r) {
          V y_lo, y_mid, y_hi;  // the partner's first, shared, t's second
          __builtin_memcpy(&y_lo, yt + r * aw - L, sizeof(V));
          __builtin_memcpy(&y_mid, yt + r * aw, sizeof(V));
          __builtin_memcpy(&y_hi, yt + r * aw + L, sizeof(V));
          // In a register: else folded into both FMAs, two loads again.
          __asm__("" : "+x"(y_mid));
          acc[r][0] += x0 * y_mid;
          acc[r][NV - 1] += x1 * y_hi;
          acc[r][0] += x2 * y_lo;
          acc[r][NV - 1] += x3 * y_mid;
        }
      }
      continue;
    }
    for (int t = 0; t < m; ++t) {
      fma_rows<Dtype, VB, R, NV>(acc, x + t * gw, y - t * s, aw);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int v = 0; v < NV; ++v) {
      __builtin_memcpy(out + r * out_stride + v * L, &acc[r][v], sizeof(V));
    }
  }
}

// grad_b_block with R (1..8) picked at run time.
template <typename Dtype, int VB, int NV>
DCD_INLINE void grad_b_block_r(int r, const ShiftRun* runs, int n_runs,
    int kx, const Dtype* gs, int gw, const Dtype* a, int aw, int s,
    Dtype* out, int out_stride, const Dtype* a_next) {
  switch (r) {
#define DCD_BLOCK(R) grad_b_block<Dtype, VB, R, NV>( \
        runs, n_runs, kx, gs, gw, a, aw, s, out, out_stride, a_next)
    case 8: DCD_BLOCK(8); break;
    case 7: DCD_BLOCK(7); break;
    case 6: DCD_BLOCK(6); break;
    case 5: DCD_BLOCK(5); break;
    case 4: DCD_BLOCK(4); break;
    case 3: DCD_BLOCK(3); break;
    case 2: DCD_BLOCK(2); break;
    default: DCD_BLOCK(1); break;
#undef DCD_BLOCK
  }
}

// dL/db_hat of one vector of VB bytes of columns of a row, every channel
// in blocks of cb, over unpaired runs (gs, a_hat and db at the vector's
// first column).
template <typename Dtype, int VB>
DCD_INLINE void grad_b_vector(int cb, const vector<ShiftRun>& runs,
    const Dtype* gs, int gw, const Dtype* a_hat, int aw, int s, int channels,
    Dtype* db, int hw) {
  for (int c0 = 0; c0 < channels; c0 += cb) {
    grad_b_block_r<Dtype, VB, 1>(std::min(cb, channels - c0), &runs[0],
        runs.size(), 0, gs, gw, a_hat + c0 * aw, aw, s, db + c0 * hw, hw,
        NULL);
  }
}

// Runs (t0, m, paired) of a row of nd offsets: t paired with t + K where
// both are free, greedily from t = 0; K = 0: one unpaired run.
inline vector<ShiftRun> shift_run_plan(int nd, int K) {
  vector<ShiftRun> plan;
  vector<bool> done(nd, false);
  for (int t = 0; t < nd; ++t) {
    if (done[t]) { continue; }
    const bool paired = K > 0 && t + K < nd;
    if (!plan.empty() && plan.back().paired == paired &&
        plan.back().x + plan.back().m == t) {
      ++plan.back().m;
    } else {
      ShiftRun run = {t, 0, 1, paired};
      plan.push_back(run);
    }
    done[t] = true;
    if (paired) { done[t + K] = true; }
  }
  return plan;
}

// Appends a row's plan with each run's t0 turned into its row in x
// (x0 + t0) and its column in y (y0 + t0 y_step).
inline void place_runs(const vector<ShiftRun>& plan, int x0, int y0,
                       int y_step, vector<ShiftRun>* runs) {
  for (size_t u = 0; u < plan.size(); ++u) {
    ShiftRun run = plan[u];
    run.y = y0 + run.x * y_step;
    run.x += x0;
    runs->push_back(run);
  }
}

#endif


#if DCD_X86_DISPATCH
// d b_hat's last 1-3 columns of a row where the smallest vector cannot end
// there over unpaired per-row columns (a 113-wide map: 112 grouped, 1
// left) go one column at a time, CN channels together: CN sums in
// registers side by side, where one channel's sum at a time waited on each
// multiply-add in turn. Each sum takes its terms in the same order as
// before.
const int kTailChannels = 8;

// dL/db_hat of one column, CN channels: over the runs as grad_b_block, t in
// order, gs(t) a_hat(c, t); a_hat's channels aw apart, db's hw apart.
template <typename Dtype, int CN>
DCD_INLINE void grad_b_column(const ShiftRun* runs, int n_runs,
    const Dtype* gs, int gw, const Dtype* a, int aw, int s, Dtype* db,
    int hw) {
  Dtype acc[CN] = {};
  for (int u = 0; u < n_runs; ++u) {
    const Dtype* x = gs + runs[u].x * gw;
    const Dtype* y = a + runs[u].y;
    for (int t = 0; t < runs[u].m; ++t) {
      const Dtype xt = x[t * gw];
      const Dtype* yt = y - t * s;
      for (int c = 0; c < CN; ++c) { acc[c] += xt * yt[c * aw]; }
    }
  }
  for (int c = 0; c < CN; ++c) { db[c * hw] = acc[c]; }
}

// dL/da_hat of NV vectors of columns of one row, every channel: blocks of
// CB channels whose sums stay in registers over the D displacements. `base`
// is the columns' offset in b_hat (rows of channels), `pix` in g and da.
template <typename Dtype, int VB, int NV>
DCD_INLINE void grad_a_columns(const Dtype* g, const Dtype* b_hat,
    int channels, int hw, int pw, int base, int pix, int D, const int* koff,
    Dtype* da) {
  const int kCB = VB >= 32 ? 4 : 2;
  for (int c0 = 0; c0 < channels; c0 += kCB) {
    const Dtype* bp = b_hat + c0 * pw + base;
    Dtype* dp = da + c0 * hw + pix;
    vec_block_r<Dtype, VB, NV>(std::min(kCB, channels - c0), D, g + pix,
        StridedOffset{hw}, bp, TableOffset{koff}, pw, dp, hw);
  }
}
#endif

// dL/da_hat(c, i, j) = sum_k g(k, i, j) b_hat(c, i + di s, j + dj s) for
// the rows of one image that `rows` hands this thread (overwrites da; b_hat
// in rows of channels, as the forward reads it). Every element is a sum
// over k in ascending order.
template <typename Dtype, int VB>
DCD_INLINE void correlate_backward_a(const Dtype* g, const Dtype* b_hat,
    int channels, int height, int width, int dh, int dw, int s, Dtype* da,
    const NormalizeBackwardRows<Dtype>& norm, dcd::RowChunks* rows) {
  const int hw = height * width;
  const int pad_h = dh * s, pad_w = dw * s;
  const int pw = width + 2 * pad_w;
  const int b_row = channels * pw;  // one padded row of every channel
  const int D = dcd::window_size(dh, dw);
#if DCD_X86_DISPATCH
  const int kJB = 64 / sizeof(Dtype);
  const int kL = VB / sizeof(Dtype);
  vector<int> koff(D);
  for (int k = 0; k < D; ++k) {
    koff[k] = dcd::window_di(k, dh, dw) * s * b_row + dcd::window_dj(k, dw) * s;
  }
  // Whole vectors of columns in groups of rows where that path applies;
  // the rest blocks of 64 bytes of columns, then single vectors, then
  // narrower ones (NarrowVec: e.g. the last 8 columns of a 56-wide map
  // under AVX-512), then the smallest vector again for the last 1-3
  // columns; column by column only in rows narrower than that vector.
  const int kH = NarrowVec<VB>::kHalf, kQ = NarrowVec<VB>::kQuarter;
  const int kLQ = kQ / sizeof(Dtype);
  const int j_first = grouped_columns<Dtype, VB>(width, s);
  PackBuffers<Dtype, VB> bufs(j_first > 0 ? width : 0, dh, dw);
  // Rows are finished group by group where the groups take every column.
  const NormalizeBackwardRows<Dtype>* group_norm =
      j_first == width ? &norm : NULL;
  int row_begin, row_end;
  while (claim_rows(rows, &row_begin, &row_end)) {
    if (j_first > 0) {
      // F_b at row r + dh of the padded map, column j + t.
      correlate_gradient_rows<Dtype, VB>(g, b_hat + pad_h * b_row, b_row, pw,
          false, channels, height, width, dh, dw, da, row_begin, row_end,
          &bufs, group_norm);
    }
    for (int i = row_begin; i < row_end; ++i) {
      int j0 = j_first;
      for (; j0 + kJB <= width; j0 += kJB) {
        grad_a_columns<Dtype, VB, 64 / VB>(g, b_hat, channels, hw, pw,
            (i + pad_h) * b_row + j0 + pad_w, i * width + j0, D, &koff[0], da);
      }
      for (; j0 + kL <= width; j0 += kL) {
        grad_a_columns<Dtype, VB, 1>(g, b_hat, channels, hw, pw,
            (i + pad_h) * b_row + j0 + pad_w, i * width + j0, D, &koff[0], da);
      }
      if (kH < VB && j0 + kH / static_cast<int>(sizeof(Dtype)) <= width) {
        grad_a_columns<Dtype, kH, 1>(g, b_hat, channels, hw, pw,
            (i + pad_h) * b_row + j0 + pad_w, i * width + j0, D, &koff[0], da);
        j0 += kH / sizeof(Dtype);
      }
      if (kQ < kH && j0 + kQ / static_cast<int>(sizeof(Dtype)) <= width) {
        grad_a_columns<Dtype, kQ, 1>(g, b_hat, channels, hw, pw,
            (i + pad_h) * b_row + j0 + pad_w, i * width + j0, D, &koff[0], da);
        j0 += kQ / sizeof(Dtype);
      }
      // The last 1-3 columns: the smallest vector once more, ending at the
      // row's last column. It writes again up to 3 columns already
      // written, each the same sum in ascending k (every path's order).
      if (j0 < width && width >= kLQ) {
        const int jq = width - kLQ;
        grad_a_columns<Dtype, kQ, 1>(g, b_hat, channels, hw, pw,
            (i + pad_h) * b_row + jq + pad_w, i * width + jq, D, &koff[0], da);
        j0 = width;
      }
      for (; j0 < width; ++j0) {  // a row of fewer columns than a vector
        const int base = (i + pad_h) * b_row + j0 + pad_w;
        for (int c = 0; c < channels; ++c) {
          Dtype acc = 0;
          for (int k = 0; k < D; ++k) {
            acc += g[k * hw + i * width + j0] * b_hat[c * pw + base + koff[k]];
          }
          da[c * hw + i * width + j0] = acc;
        }
      }
    }
    if (!group_norm) { norm(da, row_begin, row_end); }
  }
#else
  int row_begin, row_end;
  while (claim_rows(rows, &row_begin, &row_end)) {
    for (int c = 0; c < channels; ++c) {
      Dtype* da_c = da + c * hw;
      for (int p = row_begin * width; p < row_end * width; ++p) { da_c[p] = 0; }
      for (int k = 0; k < D; ++k) {
        const int di = dcd::window_di(k, dh, dw);
        const int dj = dcd::window_dj(k, dw);
        const int i_begin = std::max(row_begin, -di * s);
        const int i_end = std::min(row_end, height - di * s);
        for (int i = i_begin; i < i_end; ++i) {
          const Dtype* g_row = g + k * hw + i * width;
          const Dtype* b_ij = b_hat + (i + di * s + pad_h) * b_row + c * pw +
              dj * s + pad_w;
          Dtype* da_row = da_c + i * width;
          for (int j = 0; j < width; ++j) {
            da_row[j] += g_row[j] * b_ij[j];
          }
        }
      }
    }
    norm(da, row_begin, row_end);
  }
#endif
}

// dL/db_hat(c, q) = sum_k g(k, q - shift_k) a_hat(c, q - shift_k) for the
// output rows of one image that `rows` hands this thread (a_hat in rows of
// channels, H x C x aw pointing at column 0, its columns zero out to aw; db
// in the blob's C x H x W). A gather, nothing written twice. Every element
// sums its valid displacements in a fixed order: the base build and the
// grouped columns of the vector builds in ascending k (the GPU kernel's,
// dcd::cost_volume_backward_b_block), the vector builds' other columns
// displacement row by row in shift_run_plan's order.
template <typename Dtype, int VB>
DCD_INLINE void correlate_backward_b(const Dtype* g, const Dtype* a_hat,
    int aw, int channels, int height, int width, int dh, int dw, int s,
    Dtype* db, const NormalizeBackwardRows<Dtype>& norm, dcd::RowChunks* rows) {
  const int hw = height * width;
  const int D = dcd::window_size(dh, dw);
#if DCD_X86_DISPATCH
  const int kJB = 64 / sizeof(Dtype);
  const int kL = VB / sizeof(Dtype);
  // Channels per block: sums in 8 registers (AVX2, AVX-512) or 8 of SSE's
  // 16, enough in flight for the FMA latency.
  const int kCB = VB == 64 ? 8 : VB == 32 ? 4 : 2;
  const int kH = NarrowVec<VB>::kHalf, kQ = NarrowVec<VB>::kQuarter;
  const int kLQ = kQ / sizeof(Dtype);
  const int nd = 2 * dw + 1;
  // The rows of g that row q reads, one per valid displacement, copied
  // already shifted (gs(o, q') = g(k, i, q' - dj_k s), zero where that
  // leaves the row) into rows of whole 64-byte lines: a block of columns
  // then reads g as one aligned line, not two at an offset, and the rows of
  // a displacement row are gw apart (docs/ASSUMPTIONS.md, "CPU kernel
  // figures").
  const int gw = (width + kJB - 1) / kJB * kJB;
  vector<Dtype> gs_buf(static_cast<size_t>(D) * gw + kJB);
  Dtype* gs = first_line(&gs_buf);
  // Pairs where a block is two vectors and K = L / s offsets fit in a row.
  const int K = VB == 32 && kL % s == 0 && kL / s < nd ? kL / s : 0;
  const vector<ShiftRun> row_plan = shift_run_plan(nd, K);
  const vector<ShiftRun> single_plan = shift_run_plan(nd, 0);
  vector<ShiftRun> runs, single_runs;
  // Whole vectors of columns in groups of rows where that path applies;
  // the rows below then do the rest.
  const int j_first = grouped_columns<Dtype, VB>(width, s);
  PackBuffers<Dtype, VB> bufs(j_first > 0 ? width : 0, dh, dw);
  const NormalizeBackwardRows<Dtype>* group_norm =
      j_first == width ? &norm : NULL;
  int row_begin, row_end;
  while (claim_rows(rows, &row_begin, &row_end)) {
    if (j_first > 0) {
      // a_hat at column j + dw - t (its zero columns reach dw further out).
      correlate_gradient_rows<Dtype, VB>(g, a_hat + dw, channels * aw, aw,
          true, channels, height, width, dh, dw, db, row_begin, row_end,
          &bufs, group_norm);
    }
    for (int q = row_begin; q < row_end && j_first < width; ++q) {
      int n = 0;
      runs.clear();
      single_runs.clear();
      for (int di = -dh; di <= dh; ++di) {
        const int i = q - di * s;
        if (i < 0 || i >= height) { continue; }
        // Runs of this displacement row: gs rows from n, a_hat at row i and
        // the run's first offset's shift (dw - t0) s.
        place_runs(row_plan, n, i * channels * aw + dw * s, -s, &runs);
        place_runs(single_plan, n, i * channels * aw + dw * s, -s,
                   &single_runs);
        for (int t = 0; t < nd; ++t, ++n) {
          const int shift = (dw - t) * s;
          Dtype* row = gs + static_cast<size_t>(n) * gw;
          const Dtype* src = g + dcd::window_channel(di, t - dw, dh, dw) * hw +
              i * width + shift;
          const int j_begin = std::min(width, std::max(0, -shift));
          const int j_end = std::max(j_begin, std::min(width, width - shift));
          for (int j = 0; j < j_begin; ++j) { row[j] = 0; }
          for (int j = j_begin; j < j_end; ++j) { row[j] = src[j]; }
          for (int j = j_end; j < width; ++j) { row[j] = 0; }
        }
      }
      Dtype* db_row = db + q * width;
      int j0 = j_first;
      for (; j0 + kJB <= width; j0 += kJB) {
        for (int c0 = 0; c0 < channels; c0 += kCB) {
          grad_b_block_r<Dtype, VB, 64 / VB>(std::min(kCB, channels - c0),
              &runs[0], runs.size(), K * gw, gs + j0, gw,
              a_hat + c0 * aw + j0, aw, s, db_row + c0 * hw + j0, hw,
              c0 + kCB < channels ? a_hat + (c0 + kCB) * aw + j0 : NULL);
        }
      }
      const int j_single = j0;  // from here on, unpaired runs
      for (; j0 + kL <= width; j0 += kL) {
        grad_b_vector<Dtype, VB>(kCB, single_runs, gs + j0, gw, a_hat + j0,
                                 aw, s, channels, db_row + j0, hw);
      }
      if (kH < VB && j0 + kH / static_cast<int>(sizeof(Dtype)) <= width) {
        grad_b_vector<Dtype, kH>(kCB, single_runs, gs + j0, gw, a_hat + j0,
                                 aw, s, channels, db_row + j0, hw);
        j0 += kH / sizeof(Dtype);
      }
      if (kQ < kH && j0 + kQ / static_cast<int>(sizeof(Dtype)) <= width) {
        grad_b_vector<Dtype, kQ>(kCB, single_runs, gs + j0, gw, a_hat + j0,
                                 aw, s, channels, db_row + j0, hw);
        j0 += kQ / sizeof(Dtype);
      }
      // The last 1-3 columns: the smallest vector once more, ending at the
      // row's last column, where the columns it writes again came from the
      // unpaired steps above (the same sums in the same order; the grouped
      // columns and AVX2's paired blocks sum in others).
      if (j0 < width && width - kLQ >= j_single) {
        const int jq = width - kLQ;
        grad_b_vector<Dtype, kQ>(kCB, single_runs, gs + jq, gw, a_hat + jq,
                                 aw, s, channels, db_row + jq, hw);
        j0 = width;
      }
      for (; j0 < width; ++j0) {  // column tail
        int c0 = 0;
        for (; c0 + kTailChannels <= channels; c0 += kTailChannels) {
          grad_b_column<Dtype, kTailChannels>(&single_runs[0],
              single_runs.size(), gs + j0, gw, a_hat + c0 * aw + j0, aw, s,
              db_row + c0 * hw + j0, hw);
        }
        for (; c0 < channels; ++c0) {
          grad_b_column<Dtype, 1>(&single_runs[0], single_runs.size(),
              gs + j0, gw, a_hat + c0 * aw + j0, aw, s, db_row + c0 * hw + j0,
              hw);
        }
      }
    }
    if (!group_norm) { norm(db, row_begin, row_end); }
  }
#else
  int row_begin, row_end;
  while (claim_rows(rows, &row_begin, &row_end)) {
    for (int q = row_begin; q < row_end; ++q) {
      for (int c = 0; c < channels; ++c) {
        for (int j = 0; j < width; ++j) { db[c * hw + q * width + j] = 0; }
      }
      for (int k = 0; k < D; ++k) {
        const int i = q - dcd::window_di(k, dh, dw) * s;
        if (i < 0 || i >= height) { continue; }
        const int shift = -dcd::window_dj(k, dw) * s;
        const int j_begin = std::max(0, -shift);
        const int j_end = std::min(width, width - shift);
        const Dtype* g_row = g + k * hw + i * width + shift;
        for (int c = 0; c < channels; ++c) {
          const Dtype* a_row = a_hat + (i * channels + c) * aw + shift;
          Dtype* db_row = db + c * hw + q * width;
          for (int j = j_begin; j < j_end; ++j) {
            db_row[j] += g_row[j] * a_row[j];
          }
        }
      }
    }
    norm(db, row_begin, row_end);
  }
#endif
}

}  // namespace

namespace dcd_cpu {

#define DCD_CPU_KERNELS(SUFFIX, ATTR, VB)                                     \
template <typename Dtype>                                                     \
ATTR void forward_##SUFFIX(const Dtype* a_hat, int aw, const Dtype* b_hat,    \
    int channels, int height, int width, int dh, int dw, int s, Dtype* top,   \
    dcd::RowChunks* rows, bool stream) {                                      \
  int begin, end;                                                             \
  while (claim_rows(rows, &begin, &end)) {                                    \
    correlate_image<Dtype, VB>(a_hat, aw, b_hat, channels, height, width,     \
                               dh, dw, s, top, begin, end, stream);           \
  }                                                                           \
  if (stream) { dcd::stream_fence(); }                                        \
}                                                                             \
template <typename Dtype>                                                     \
ATTR void backward_a_##SUFFIX(const Dtype* g, const Dtype* b_hat,             \
    int channels, int height, int width, int dh, int dw, int s, Dtype* da,    \
    const NormalizeBackwardRows<Dtype>& norm, dcd::RowChunks* rows) {         \
  correlate_backward_a<Dtype, VB>(g, b_hat, channels, height, width, dh,      \
                                  dw, s, da, norm, rows);                     \
}                                                                             \
template <typename Dtype>                                                     \
ATTR void backward_b_##SUFFIX(const Dtype* g, const Dtype* a_hat, int aw,     \
    int channels, int height, int width, int dh, int dw, int s, Dtype* db,    \
    const NormalizeBackwardRows<Dtype>& norm, dcd::RowChunks* rows) {         \
  correlate_backward_b<Dtype, VB>(g, a_hat, aw, channels, height, width, dh,  \
                                  dw, s, db, norm, rows);                     \
}

// VB: the variant's vector register width in bytes.
DCD_CPU_KERNELS(base, , 16)
#if DCD_X86_DISPATCH
DCD_CPU_KERNELS(avx2, __attribute__((target("avx2,fma"))), 32)
DCD_CPU_KERNELS(avx512, __attribute__((target("avx512f,avx2,fma"))), 64)
#endif
#undef DCD_CPU_KERNELS

// The threads of the parallel regions below (1 without OpenMP). The
// regions sit outside the ISA-specific kernels (docs/ASSUMPTIONS.md, "CPU
// threading").
inline int region_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

#if DCD_X86_DISPATCH
#define DCD_DISPATCH(NAME, ARGS)                                              \
  switch (dcd::CpuIsaLevel()) {                                               \
    case 2: NAME##_avx512 ARGS; break;                                        \
    case 1: NAME##_avx2 ARGS; break;                                          \
    default: NAME##_base ARGS; break;                                         \
  }
#else
#define DCD_DISPATCH(NAME, ARGS) NAME##_base ARGS;
#endif

// Each thread computes whole rows of the output (forward, d a_hat, d b_hat),
// in chunks it claims from `rows`, each element in a fixed order: results
// depend neither on the number of threads nor on which thread took a row.
// a_hat points at column 0 of rows of aw columns.
template <typename Dtype>
void cost_volume_forward(const Dtype* a_hat, int aw, const Dtype* b_hat,
    int channels, int height, int width, int dh, int dw, int s, Dtype* top,
    bool stream) {
  dcd::RowChunks rows(height, kSharedRows, region_threads());
#pragma omp parallel
  DCD_DISPATCH(forward, (a_hat, aw, b_hat, channels, height, width, dh, dw,
                         s, top, &rows, stream))
}

// The gradients end with the normalisation's backward (norm), row by row:
// da and db are dL/df_a and dL/df_b.
template <typename Dtype>
void cost_volume_backward_a(const Dtype* g, const Dtype* b_hat,
    int channels, int height, int width, int dh, int dw, int s,
    const NormalizeBackwardRows<Dtype>& norm, Dtype* da) {
  dcd::RowChunks rows(height, kSharedRows, region_threads());
#pragma omp parallel
  DCD_DISPATCH(backward_a, (g, b_hat, channels, height, width, dh, dw, s, da,
                            norm, &rows))
}

template <typename Dtype>
void cost_volume_backward_b(const Dtype* g, const Dtype* a_hat, int aw,
    int channels, int height, int width, int dh, int dw, int s,
    const NormalizeBackwardRows<Dtype>& norm, Dtype* db) {
  dcd::RowChunks rows(height, kSharedRows, region_threads());
#pragma omp parallel
  DCD_DISPATCH(backward_b, (g, a_hat, aw, channels, height, width, dh, dw, s,
                            db, norm, &rows))
}
#undef DCD_DISPATCH

}  // namespace dcd_cpu

template <typename Dtype>
void CostVolumeLayer<Dtype>::Forward_cpu(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  const int num = bottom[0]->num();
  const int channels = bottom[0]->channels();
  const int height = bottom[0]->height();
  const int width = bottom[0]->width();
  const int hw = height * width;
  const int pw = width + 2 * pad_w_;
  const int pplane = (height + 2 * pad_h_) * pw;
  const int dh = max_displacement_h_, dw = max_displacement_w_;
  const int s = dilation_;
  const int D = num_displacements_;
  const int aw = width + 2 * a_pad_w_;
  // The padding of a_hat_ and b_hat_pad_ stays zero (the normalisation
  // writes the interior only): zeroed once per shape, and again whenever the
  // device may have written the buffers.
  const bool stale = b_hat_pad_.shape() != cpu_zeroed_shape_ ||
      a_hat_.data()->head() != SyncedMemory::HEAD_AT_CPU ||
      b_hat_pad_.data()->head() != SyncedMemory::HEAD_AT_CPU;
  Dtype* a_hat = a_hat_.mutable_cpu_data();
  Dtype* b_hat = b_hat_pad_.mutable_cpu_data();
  Dtype* top_data = top[0]->mutable_cpu_data();
  // A cost volume larger than the caches is written with streaming stores
  // (dcd::VecStore); a smaller one stays in cache for the next layer.
  const bool stream = dcd::streams_output(top[0]->count() * sizeof(Dtype));
  for (int n = 0; n < num; ++n) {
    const int off = n * channels * hw;
    const int aoff = n * channels * height * aw;
    const int poff = n * channels * pplane;
    // Rows of channels: a_hat H x C x aw, b_hat (H + 2 pad_h) x C x pw.
    normalize_cpu(bottom[0]->cpu_data() + off, channels, height, width, eps_,
        inv_norm_a_.mutable_cpu_data() + n * hw, a_hat + aoff + a_pad_w_,
        channels * aw, aw);
    if (stale) {
      zero_border_cpu(a_hat + aoff, channels, height, width, 0, a_pad_w_);
    }
    normalize_cpu(bottom[1]->cpu_data() + off, channels, height, width, eps_,
        inv_norm_b_.mutable_cpu_data() + n * hw,
        b_hat + poff + pad_h_ * channels * pw + pad_w_, channels * pw, pw);
    if (stale) {
      zero_border_cpu(b_hat + poff, channels, height, width, pad_h_, pad_w_);
    }
    dcd_cpu::cost_volume_forward(a_hat + aoff + a_pad_w_, aw, b_hat + poff,
        channels, height, width, dh, dw, s, top_data + n * D * hw, stream);
  }
  cpu_zeroed_shape_ = b_hat_pad_.shape();
}

template <typename Dtype>
void CostVolumeLayer<Dtype>::Backward_cpu(const vector<Blob<Dtype>*>& top,
    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {
  if (!propagate_down[0] && !propagate_down[1]) { return; }
  const int num = bottom[0]->num();
  const int channels = bottom[0]->channels();
  const int height = bottom[0]->height();
  const int width = bottom[0]->width();
  const int hw = height * width;
  const int pw = width + 2 * pad_w_;
  const int pplane = (height + 2 * pad_h_) * pw;
  const int dh = max_displacement_h_, dw = max_displacement_w_;
  const int s = dilation_;
  const int D = num_displacements_;
  const Dtype* top_diff = top[0]->cpu_diff();
  const int aw = width + 2 * a_pad_w_;
  const Dtype* a_hat = a_hat_.cpu_data();
  const Dtype* b_hat = b_hat_pad_.cpu_data();
  Dtype* dot = dot_.mutable_cpu_data();
  for (int n = 0; n < num; ++n) {
    const int off = n * channels * hw;
    const int aoff = n * channels * height * aw;
    const int poff = n * channels * pplane;
    const Dtype* g_n = top_diff + n * D * hw;
    if (propagate_down[0]) {
      const NormalizeBackwardRows<Dtype> norm = {bottom[0]->cpu_data() + off,
          inv_norm_a_.cpu_data() + n * hw, dot + n * hw, channels, hw, width};
      dcd_cpu::cost_volume_backward_a(g_n, b_hat + poff, channels, height,
          width, dh, dw, s, norm, bottom[0]->mutable_cpu_diff() + off);
    }
    if (propagate_down[1]) {
      const NormalizeBackwardRows<Dtype> norm = {bottom[1]->cpu_data() + off,
          inv_norm_b_.cpu_data() + n * hw, dot + n * hw, channels, hw, width};
      dcd_cpu::cost_volume_backward_b(g_n, a_hat + aoff + a_pad_w_, aw,
          channels, height, width, dh, dw, s, norm,
          bottom[1]->mutable_cpu_diff() + off);
    }
  }
}

#ifdef CPU_ONLY
STUB_GPU(CostVolumeLayer);
#endif

INSTANTIATE_CLASS(CostVolumeLayer);
REGISTER_LAYER_CLASS(CostVolume);

}  // namespace caffe
