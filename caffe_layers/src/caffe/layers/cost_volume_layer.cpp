#include <algorithm>
#include <climits>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "caffe/layers/cost_volume_layer.hpp"
#include "caffe/util/dcd_kernels.hpp"
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
  top[0]->Reshape(num, num_displacements_, height, width);
  a_hat_.Reshape(num, channels, height, width);
  b_hat_pad_.Reshape(num, channels, height + 2 * pad_h_, width + 2 * pad_w_);
  inv_norm_a_.Reshape(num, 1, height, width);
  inv_norm_b_.Reshape(num, 1, height, width);
  dot_.Reshape(num, 1, height, width);
}

// The loops below are plain C++. Caffe is built for the baseline ISA, so on
// x86-64 with GCC or Clang the three hot loops are also compiled for AVX2+FMA
// and AVX-512+FMA and one is picked at run time from the CPU's features.
// Results may differ in the last bits between machines (FMA), never between
// runs on one machine.
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && \
    !defined(__CUDACC__) && !defined(__INTEL_COMPILER)
#define DCD_X86_DISPATCH 1
#define DCD_INLINE inline __attribute__((always_inline))
#else
#define DCD_X86_DISPATCH 0
#define DCD_INLINE inline
#endif

namespace {

// out(c, row, col) = f(c, row, col) / sqrt(|f(:, row, col)|^2 + eps) for one
// image; `out` may be padded (rows of out_w elements, offset by pad_h rows
// and pad_w columns, planes of out_plane elements).
template <typename Dtype>
void normalize_cpu(const Dtype* f, int channels, int height, int width,
    Dtype eps, Dtype* inv_norm, Dtype* out, int pad_h, int pad_w, int out_w,
    int out_plane) {
  const int hw = height * width;
  // Rows split over threads; within a row channels are summed in order.
#pragma omp parallel for schedule(static)
  for (int i = 0; i < height; ++i) {
    Dtype* inv_row = inv_norm + i * width;
    for (int j = 0; j < width; ++j) { inv_row[j] = 0; }
    for (int c = 0; c < channels; ++c) {
      const Dtype* f_row = f + c * hw + i * width;
      for (int j = 0; j < width; ++j) { inv_row[j] += f_row[j] * f_row[j]; }
    }
    for (int j = 0; j < width; ++j) {
      inv_row[j] = dcd::inverse_norm(inv_row[j], eps);
    }
    for (int c = 0; c < channels; ++c) {
      const Dtype* f_row = f + c * hw + i * width;
      Dtype* out_row = out + c * out_plane +
          dcd::padded_offset(i, 0, pad_h, pad_w, out_w);
      for (int j = 0; j < width; ++j) {
        out_row[j] = f_row[j] * inv_row[j];
      }
    }
  }
}

// In place: diff holds dL/df_hat on entry and dL/df on exit, for one image
// of `rows` rows of `width` pixels.
template <typename Dtype>
void normalize_backward_cpu(const Dtype* f, const Dtype* inv_norm,
    int channels, int rows, int width, Dtype* dot, Dtype* diff) {
  const int hw = rows * width;
#pragma omp parallel for schedule(static)
  for (int i = 0; i < rows; ++i) {
    const int r = i * width;
    for (int j = 0; j < width; ++j) { dot[r + j] = 0; }
    for (int c = 0; c < channels; ++c) {
      const Dtype* fc = f + c * hw + r;
      const Dtype* gc = diff + c * hw + r;
      for (int j = 0; j < width; ++j) {
        dot[r + j] += fc[j] * inv_norm[r + j] * gc[j];
      }
    }
    for (int c = 0; c < channels; ++c) {
      const Dtype* fc = f + c * hw + r;
      Dtype* gc = diff + c * hw + r;
      for (int j = 0; j < width; ++j) {
        gc[j] = dcd::normalize_backward(gc[j], fc[j] * inv_norm[r + j],
                                        dot[r + j], inv_norm[r + j]);
      }
    }
  }
}

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

// Same with run-time sizes (tails).
template <typename Dtype>
DCD_INLINE void correlate_block_any(const Dtype* a, int a_plane, const Dtype* b,
    int b_plane, int s, int channels, Dtype* out, int out_plane, int nd,
    int jb) {
  for (int d = 0; d < nd; ++d) {
    for (int jj = 0; jj < jb; ++jj) {
      Dtype acc = 0;
      for (int c = 0; c < channels; ++c) {
        acc += a[c * a_plane + jj] * b[c * b_plane + d * s + jj];
      }
      out[d * out_plane + jj] = acc;
    }
  }
}

#if DCD_X86_DISPATCH
// The same block with GCC/Clang vector extensions: NV native vectors of VB
// bytes cover 64 bytes of columns per row, so the compiler keeps the sums in
// registers. VB is the variant's register width (16 SSE2, 32 AVX2, 64
// AVX-512; docs/ASSUMPTIONS.md, "CPU vector width").
template <typename Dtype, int VB> struct VecOf {
  typedef Dtype type __attribute__((vector_size(VB)));
};

// acc[r] = sum over o < n of x(o) * y(o)[r * y_step], 64 bytes of columns
// each, written to out + r * out_stride, o in ascending order. The vector
// block of the correlation (o = channel, r = horizontal offset, y(o) at
// o * b_plane) and of its gradient to F_a (o = displacement, r = channel,
// y(o) at the displacement's shift in the padded plane).
template <typename Dtype, int R, int VB, typename YOffset>
DCD_INLINE void vec_block(int n, const Dtype* x, int x_stride, const Dtype* y,
    YOffset y_offset, int y_step, Dtype* out, int out_stride) {
  typedef typename VecOf<Dtype, VB>::type V;
  const int NV = 64 / VB;
  const int L = VB / sizeof(Dtype);
  V acc[R][NV];
  for (int r = 0; r < R; ++r) {
    for (int v = 0; v < NV; ++v) { acc[r][v] = V{}; }
  }
  for (int o = 0; o < n; ++o) {
    V xv[NV];
    for (int v = 0; v < NV; ++v) {
      __builtin_memcpy(&xv[v], x + o * x_stride + v * L, sizeof(V));
    }
    const Dtype* yo = y + y_offset(o);
    for (int r = 0; r < R; ++r) {
      for (int v = 0; v < NV; ++v) {
        V yv;
        __builtin_memcpy(&yv, yo + r * y_step + v * L, sizeof(V));
        acc[r][v] += xv[v] * yv;
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int v = 0; v < NV; ++v) {
      __builtin_memcpy(out + r * out_stride + v * L, &acc[r][v], sizeof(V));
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
#endif

// Cost volume of one image from normalised features (b_hat zero-padded by
// (dh s, dw s)). Loop layout: displacement row di, output row i, blocks of
// 16 columns, groups of three horizontal offsets, channels innermost with the
// block's sums held in registers (the block's inputs stay in L1 across the
// offset groups); each access streams 16 contiguous elements.
template <typename Dtype, int VB>
DCD_INLINE void correlate_image(const Dtype* a_hat, const Dtype* b_hat,
    int channels, int height, int width, int dh, int dw, int s, Dtype* top,
    int row_begin, int row_end) {
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
  const int pplane = (height + 2 * pad_h) * pw;
  for (int di = -dh; di <= dh; ++di) {
    for (int i = row_begin; i < row_end; ++i) {
      Dtype* out_row =
          top + dcd::window_channel(di, -dw, dh, dw) * hw + i * width;
      if (i + di * s < 0 || i + di * s >= height) {
        for (int d = 0; d < 2 * dw + 1; ++d) {
          for (int j = 0; j < width; ++j) { out_row[d * hw + j] = 0; }
        }
        continue;
      }
      const Dtype* a_row = a_hat + i * width;
      const Dtype* b_row = b_hat +
          dcd::padded_offset(i + di * s, -dw * s, pad_h, pad_w, pw);
      for (int j0 = 0; j0 < width; j0 += kJB) {
        const int jb = std::min(kJB, width - j0);
        for (int dj0 = 0; dj0 < 2 * dw + 1; dj0 += kND) {
          const int nd = std::min(kND, 2 * dw + 1 - dj0);
          const Dtype* a = a_row + j0;
          const Dtype* b = b_row + dj0 * s + j0;
          Dtype* out = out_row + dj0 * hw + j0;
          if (jb < kJB) {
            correlate_block_any(a, hw, b, pplane, s, channels, out, hw, nd,
                                jb);
            continue;
          }
          switch (nd) {
#if DCD_X86_DISPATCH
#define DCD_BLOCK(ND) vec_block<Dtype, ND, VB>( \
              channels, a, hw, b, StridedOffset{pplane}, s, out, hw)
          case 5: DCD_BLOCK(5); break;
          case 4: DCD_BLOCK(4); break;
#else
#define DCD_BLOCK(ND) correlate_block<Dtype, ND, kJB>( \
              a, hw, b, pplane, s, channels, out, hw)
#endif
          case 3: DCD_BLOCK(3); break;
          case 2: DCD_BLOCK(2); break;
          default: DCD_BLOCK(1); break;
#undef DCD_BLOCK
          }
        }
      }
    }
  }
}


// dL/da_hat(c, i, j) = sum_k g(k, i, j) b_hat(c, i + di s, j + dj s) for one
// image (overwrites da). Every element is a sum over k in ascending order.
template <typename Dtype, int VB>
DCD_INLINE void correlate_backward_a(const Dtype* g, const Dtype* b_hat,
    int channels, int height, int width, int dh, int dw, int s, Dtype* da,
    int row_begin, int row_end) {
  const int hw = height * width;
  const int pad_h = dh * s, pad_w = dw * s;
  const int pw = width + 2 * pad_w;
  const int pplane = (height + 2 * pad_h) * pw;
  const int D = dcd::window_size(dh, dw);
#if DCD_X86_DISPATCH
  const int kJB = 64 / sizeof(Dtype);
  const int kCB = VB >= 32 ? 4 : 2;
  vector<int> koff(D);
  for (int k = 0; k < D; ++k) {
    koff[k] = dcd::window_di(k, dh, dw) * s * pw + dcd::window_dj(k, dw) * s;
  }
  for (int i = row_begin; i < row_end; ++i) {
    int j0 = 0;
    for (; j0 + kJB <= width; j0 += kJB) {
      const int base = dcd::padded_offset(i, j0, pad_h, pad_w, pw);
      for (int c0 = 0; c0 < channels; c0 += kCB) {
        const Dtype* gp = g + i * width + j0;
        const Dtype* bp = b_hat + c0 * pplane + base;
        Dtype* dp = da + c0 * hw + i * width + j0;
        switch (std::min(kCB, channels - c0)) {
#define DCD_BLOCK(CB) vec_block<Dtype, CB, VB>( \
              D, gp, hw, bp, TableOffset{&koff[0]}, pplane, dp, hw)
          case 4: DCD_BLOCK(4); break;
          case 3: DCD_BLOCK(3); break;
          case 2: DCD_BLOCK(2); break;
          default: DCD_BLOCK(1); break;
#undef DCD_BLOCK
        }
      }
    }
    for (; j0 < width; ++j0) {  // column tail
      const int base = dcd::padded_offset(i, j0, pad_h, pad_w, pw);
      for (int c = 0; c < channels; ++c) {
        Dtype acc = 0;
        for (int k = 0; k < D; ++k) {
          acc += g[k * hw + i * width + j0] *
              b_hat[c * pplane + base + koff[k]];
        }
        da[c * hw + i * width + j0] = acc;
      }
    }
  }
#else
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
        const Dtype* b_row = b_hat + c * pplane +
            dcd::padded_offset(i + di * s, dj * s, pad_h, pad_w, pw);
        Dtype* da_row = da_c + i * width;
        for (int j = 0; j < width; ++j) {
          da_row[j] += g_row[j] * b_row[j];
        }
      }
    }
  }
#endif
}

// dL/db_hat(c, q) = sum_k g(k, q - shift_k) a_hat(c, q - shift_k) for one
// image, accumulated serially (deterministic) into a padded scratch plane
// whose border collects the terms of out-of-map positions and is dropped.
// Works on channels [c_begin, c_end), so threads can split the channels.
template <typename Dtype>
DCD_INLINE void correlate_backward_b(const Dtype* g, const Dtype* a_hat,
    int height, int width, int dh, int dw, int s, Dtype* db, int c_begin,
    int c_end) {
  const int hw = height * width;
  const int pad_h = dh * s, pad_w = dw * s;
  const int pw = width + 2 * pad_w;
  const int pplane = (height + 2 * pad_h) * pw;
  const int D = dcd::window_size(dh, dw);
  vector<Dtype> scratch_plane(pplane);
  Dtype* scratch = &scratch_plane[0];
  for (int c = c_begin; c < c_end; ++c) {
    for (int p = 0; p < pplane; ++p) { scratch[p] = 0; }
    for (int k = 0; k < D; ++k) {
      const int di = dcd::window_di(k, dh, dw);
      const int dj = dcd::window_dj(k, dw);
      const int i_begin = std::max(0, -di * s);
      const int i_end = std::min(height, height - di * s);
      for (int i = i_begin; i < i_end; ++i) {
        const Dtype* g_row = g + k * hw + i * width;
        const Dtype* a_row = a_hat + c * hw + i * width;
        Dtype* s_row = scratch +
            dcd::padded_offset(i + di * s, dj * s, pad_h, pad_w, pw);
        for (int j = 0; j < width; ++j) {
          s_row[j] += g_row[j] * a_row[j];
        }
      }
    }
    for (int i = 0; i < height; ++i) {
      const Dtype* s_row =
          scratch + dcd::padded_offset(i, 0, pad_h, pad_w, pw);
      Dtype* db_row = db + c * hw + i * width;
      for (int j = 0; j < width; ++j) { db_row[j] = s_row[j]; }
    }
  }
}

}  // namespace

namespace dcd_cpu {

#define DCD_CPU_KERNELS(SUFFIX, ATTR, VB)                                     \
template <typename Dtype>                                                     \
ATTR void forward_##SUFFIX(const Dtype* a_hat, const Dtype* b_hat,            \
    int channels, int height, int width, int dh, int dw, int s, Dtype* top,   \
    int begin, int end) {                                                     \
  correlate_image<Dtype, VB>(a_hat, b_hat, channels, height, width, dh, dw,  \
                             s, top, begin, end);                             \
}                                                                             \
template <typename Dtype>                                                     \
ATTR void backward_a_##SUFFIX(const Dtype* g, const Dtype* b_hat,             \
    int channels, int height, int width, int dh, int dw, int s, Dtype* da,    \
    int begin, int end) {                                                     \
  correlate_backward_a<Dtype, VB>(g, b_hat, channels, height, width, dh,    \
                                  dw, s, da, begin, end);                     \
}                                                                             \
template <typename Dtype>                                                     \
ATTR void backward_b_##SUFFIX(const Dtype* g, const Dtype* a_hat,             \
    int height, int width, int dh, int dw, int s, Dtype* db, int begin,       \
    int end) {                                                                \
  correlate_backward_b(g, a_hat, height, width, dh, dw, s, db, begin, end);   \
}

// VB: the variant's vector register width in bytes.
DCD_CPU_KERNELS(base, , 16)
#if DCD_X86_DISPATCH
DCD_CPU_KERNELS(avx2, __attribute__((target("avx2,fma"))), 32)
DCD_CPU_KERNELS(avx512, __attribute__((target("avx512f,avx2,fma"))), 64)
#endif
#undef DCD_CPU_KERNELS

// 2 = AVX-512 + FMA, 1 = AVX2 + FMA, 0 = baseline.
inline int isa_level() {
#if DCD_X86_DISPATCH
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma")) {
    return 2;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    return 1;
  }
#endif
  return 0;
}

// Splits [0, total) evenly over the threads of the enclosing OpenMP
// parallel region (the whole range without OpenMP). The parallel regions sit
// outside the ISA-specific kernels (docs/ASSUMPTIONS.md, "CPU threading").
inline void thread_range(int total, int* begin, int* end) {
#ifdef _OPENMP
  const int threads = omp_get_num_threads(), t = omp_get_thread_num();
#else
  const int threads = 1, t = 0;
#endif
  *begin = static_cast<int>(static_cast<long long>(total) * t / threads);
  *end = static_cast<int>(static_cast<long long>(total) * (t + 1) / threads);
}

#if DCD_X86_DISPATCH
#define DCD_DISPATCH(NAME, ARGS)                                              \
  switch (isa_level()) {                                                      \
    case 2: NAME##_avx512 ARGS; break;                                        \
    case 1: NAME##_avx2 ARGS; break;                                          \
    default: NAME##_base ARGS; break;                                         \
  }
#else
#define DCD_DISPATCH(NAME, ARGS) NAME##_base ARGS;
#endif

// Each thread computes whole output rows (forward, d a_hat) or channel
// planes (d b_hat), each element in a fixed order: results do not depend on
// the number of threads.
template <typename Dtype>
void cost_volume_forward(const Dtype* a_hat, const Dtype* b_hat,
    int channels, int height, int width, int dh, int dw, int s, Dtype* top) {
#pragma omp parallel
  {
    int begin, end;
    thread_range(height, &begin, &end);
    DCD_DISPATCH(forward, (a_hat, b_hat, channels, height, width, dh, dw, s,
                           top, begin, end))
  }
}

template <typename Dtype>
void cost_volume_backward_a(const Dtype* g, const Dtype* b_hat,
    int channels, int height, int width, int dh, int dw, int s, Dtype* da) {
#pragma omp parallel
  {
    int begin, end;
    thread_range(height, &begin, &end);
    DCD_DISPATCH(backward_a, (g, b_hat, channels, height, width, dh, dw, s, da,
                              begin, end))
  }
}

template <typename Dtype>
void cost_volume_backward_b(const Dtype* g, const Dtype* a_hat,
    int channels, int height, int width, int dh, int dw, int s, Dtype* db) {
#pragma omp parallel
  {
    int begin, end;
    thread_range(channels, &begin, &end);
    DCD_DISPATCH(backward_b, (g, a_hat, height, width, dh, dw, s, db, begin,
                              end))
  }
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
  Dtype* a_hat = a_hat_.mutable_cpu_data();
  Dtype* b_hat = b_hat_pad_.mutable_cpu_data();
  caffe_set(b_hat_pad_.count(), Dtype(0), b_hat);
  Dtype* top_data = top[0]->mutable_cpu_data();
  for (int n = 0; n < num; ++n) {
    const int off = n * channels * hw;
    const int poff = n * channels * pplane;
    normalize_cpu(bottom[0]->cpu_data() + off, channels, height, width, eps_,
        inv_norm_a_.mutable_cpu_data() + n * hw, a_hat + off, 0, 0, width,
        hw);
    normalize_cpu(bottom[1]->cpu_data() + off, channels, height, width, eps_,
        inv_norm_b_.mutable_cpu_data() + n * hw, b_hat + poff, pad_h_, pad_w_,
        pw, pplane);
    dcd_cpu::cost_volume_forward(a_hat + off, b_hat + poff, channels, height,
        width, dh, dw, s, top_data + n * D * hw);
  }
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
  const Dtype* a_hat = a_hat_.cpu_data();
  const Dtype* b_hat = b_hat_pad_.cpu_data();
  Dtype* dot = dot_.mutable_cpu_data();
  for (int n = 0; n < num; ++n) {
    const int off = n * channels * hw;
    const int poff = n * channels * pplane;
    const Dtype* g_n = top_diff + n * D * hw;
    if (propagate_down[0]) {
      Dtype* da = bottom[0]->mutable_cpu_diff() + off;
      dcd_cpu::cost_volume_backward_a(g_n, b_hat + poff, channels, height,
          width, dh, dw, s, da);
      normalize_backward_cpu(bottom[0]->cpu_data() + off,
          inv_norm_a_.cpu_data() + n * hw, channels, height, width,
          dot + n * hw, da);
    }
    if (propagate_down[1]) {
      Dtype* db = bottom[1]->mutable_cpu_diff() + off;
      dcd_cpu::cost_volume_backward_b(g_n, a_hat + off, channels, height,
          width, dh, dw, s, db);
      normalize_backward_cpu(bottom[1]->cpu_data() + off,
          inv_norm_b_.cpu_data() + n * hw, channels, height, width,
          dot + n * hw, db);
    }
  }
}

#ifdef CPU_ONLY
STUB_GPU(CostVolumeLayer);
#endif

INSTANTIATE_CLASS(CostVolumeLayer);
REGISTER_LAYER_CLASS(CostVolume);

}  // namespace caffe
