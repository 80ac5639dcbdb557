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
// image, written at out[row * out_row + c * out_c + col] (the rows-of-channels
// layout below; `out` already points at the first unpadded element).
template <typename Dtype>
void normalize_cpu(const Dtype* f, int channels, int height, int width,
    Dtype eps, Dtype* inv_norm, Dtype* out, int out_row, int out_c) {
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
      Dtype* o = out + i * out_row + c * out_c;
      for (int j = 0; j < width; ++j) { o[j] = f_row[j] * inv_row[j]; }
    }
  }
}

// Zeroes the padding of one image of b_hat (rows of channels); the
// normalisation writes the interior. Cheaper than clearing the whole blob
// (4 MB at C=64, 112x112, d=7) on every forward.
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

#if DCD_X86_DISPATCH
// The same block with GCC/Clang vector extensions: NV native vectors of VB
// bytes (64 bytes of columns per row in the blocks, one vector in column
// tails), so the compiler keeps the sums in registers. VB is the variant's register width (16 SSE2, 32 AVX2, 64
// AVX-512; docs/ASSUMPTIONS.md, "CPU vector width").
template <typename Dtype, int VB> struct VecOf {
  typedef Dtype type __attribute__((vector_size(VB)));
};

// acc[r] = sum over o < n of x(o) * y(o)[r * y_step], NV vectors of columns
// each, written to out + r * out_stride, o in ascending order. The vector
// block of the correlation (o = channel, r = horizontal offset, y(o) at
// o * b_plane) and of its gradient to F_a (o = displacement, r = channel,
// y(o) at the displacement's shift in the padded plane).
template <typename Dtype, int R, int VB, int NV, typename YOffset>
DCD_INLINE void vec_block(int n, const Dtype* x, int x_stride, const Dtype* y,
    YOffset y_offset, int y_step, Dtype* out, int out_stride) {
  typedef typename VecOf<Dtype, VB>::type V;
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

// vec_block with R (1..5) picked at run time.
template <typename Dtype, int VB, int NV, typename YOffset>
DCD_INLINE void vec_block_r(int r, int n, const Dtype* x, int x_stride,
    const Dtype* y, YOffset y_offset, int y_step, Dtype* out,
    int out_stride) {
  switch (r) {
#define DCD_BLOCK(R) vec_block<Dtype, R, VB, NV>( \
        n, x, x_stride, y, y_offset, y_step, out, out_stride)
    case 5: DCD_BLOCK(5); break;
    case 4: DCD_BLOCK(4); break;
    case 3: DCD_BLOCK(3); break;
    case 2: DCD_BLOCK(2); break;
    default: DCD_BLOCK(1); break;
#undef DCD_BLOCK
  }
}
#endif

// A block narrower than 64 bytes of columns (the right edge of a row whose
// width is not a multiple of 16 floats, e.g. 56): whole vectors first, then
// columns one by one.
template <typename Dtype, int VB>
DCD_INLINE void correlate_tail(const Dtype* a, int a_plane, const Dtype* b,
    int b_plane, int s, int channels, Dtype* out, int out_plane, int nd,
    int jb) {
  int jt = 0;
#if DCD_X86_DISPATCH
  const int L = VB / sizeof(Dtype);
  for (; jt + L <= jb; jt += L) {
    vec_block_r<Dtype, VB, 1>(nd, channels, a + jt, a_plane, b + jt,
        StridedOffset{b_plane}, s, out + jt, out_plane);
  }
#endif
  if (jt < jb) {
    correlate_block_any(a + jt, a_plane, b + jt, b_plane, s, channels,
                        out + jt, out_plane, nd, jb - jt);
  }
}

// Cost volume of one image from normalised features in rows of channels
// (a_hat H x C x W, b_hat zero-padded by (dh s, dw s), Hp x C x pw). Loop
// layout: output row i, blocks of 64 bytes of columns, then every
// displacement row di and groups of horizontal offsets, channels innermost
// with the block's sums held in registers. The block of F_a (C x 64 bytes)
// stays in L1 for all D displacements, the 2 dh + 1 rows of F_b that row i
// reads stay in L2 for the next row, and a channel step is one padded row
// (not a plane), so the inner loop touches a few pages, not 2 C
// (docs/ASSUMPTIONS.md, "CPU kernel figures").
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
  const int nd_row = 2 * dw + 1;
  // Strips of columns whose 2 dh + 1 rows of F_b (all channels) take about
  // 192 KiB, so that they stay in L2 while the strip's rows go by.
  const int strip_cols = (192 << 10) /
      ((2 * dh + 1) * channels * static_cast<int>(sizeof(Dtype))) - 2 * pad_w;
  const int strip = std::max(kJB, strip_cols / kJB * kJB);
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
    for (int i = row_begin; i < row_end; ++i) {
      const Dtype* a_row = a_hat + i * channels * width;
      for (int j0 = strip0; j0 < strip_end; j0 += kJB) {
        const int jb = std::min(kJB, strip_end - j0);
        const Dtype* a = a_row + j0;
        for (int di = -dh; di <= dh; ++di) {
          if (i + di * s < 0 || i + di * s >= height) { continue; }
          const Dtype* b_row = b_hat + (i + di * s + pad_h) * channels * pw +
              (pad_w - dw * s) + j0;
          Dtype* out_row = top + dcd::window_channel(di, -dw, dh, dw) * hw +
              i * width + j0;
          for (int dj0 = 0; dj0 < nd_row; dj0 += kND) {
            const int nd = std::min(kND, nd_row - dj0);
            const Dtype* b = b_row + dj0 * s;
            Dtype* out = out_row + dj0 * hw;
            if (jb < kJB) {
              correlate_tail<Dtype, VB>(a, width, b, pw, s, channels, out, hw,
                                        nd, jb);
              continue;
            }
#if DCD_X86_DISPATCH
            vec_block_r<Dtype, VB, 64 / VB>(nd, channels, a, width, b,
                StridedOffset{pw}, s, out, hw);
#else
            switch (nd) {
#define DCD_BLOCK(ND) correlate_block<Dtype, ND, kJB>( \
                a, width, b, pw, s, channels, out, hw)
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
    vec_block_r<Dtype, VB, NV>(std::min(kCB, channels - c0), D, g + pix, hw,
        bp, TableOffset{koff}, pw, dp, hw);
  }
}
#endif

// dL/da_hat(c, i, j) = sum_k g(k, i, j) b_hat(c, i + di s, j + dj s) for one
// image (overwrites da; b_hat in rows of channels, as the forward reads it).
// Every element is a sum over k in ascending order.
template <typename Dtype, int VB>
DCD_INLINE void correlate_backward_a(const Dtype* g, const Dtype* b_hat,
    int channels, int height, int width, int dh, int dw, int s, Dtype* da,
    int row_begin, int row_end) {
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
  // Blocks of 64 bytes of columns, then single vectors (e.g. the last 8
  // columns of a 56-wide map), then columns one by one.
  for (int i = row_begin; i < row_end; ++i) {
    int j0 = 0;
    for (; j0 + kJB <= width; j0 += kJB) {
      grad_a_columns<Dtype, VB, 64 / VB>(g, b_hat, channels, hw, pw,
          (i + pad_h) * b_row + j0 + pad_w, i * width + j0, D, &koff[0], da);
    }
    for (; j0 + kL <= width; j0 += kL) {
      grad_a_columns<Dtype, VB, 1>(g, b_hat, channels, hw, pw,
          (i + pad_h) * b_row + j0 + pad_w, i * width + j0, D, &koff[0], da);
    }
    for (; j0 < width; ++j0) {  // column tail
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
        const Dtype* b_ij = b_hat + (i + di * s + pad_h) * b_row + c * pw +
            dj * s + pad_w;
        Dtype* da_row = da_c + i * width;
        for (int j = 0; j < width; ++j) {
          da_row[j] += g_row[j] * b_ij[j];
        }
      }
    }
  }
#endif
}

// dL/db_hat(c, q) = sum_k g(k, q - shift_k) a_hat(c, q - shift_k) for one
// image (a_hat in rows of channels; db in the blob's C x H x W), accumulated serially (deterministic: over rows of g, then k) into
// padded scratch planes whose border collects the terms of out-of-map
// positions and is dropped. Works on channels [c_begin, c_end), so threads
// can split the channels, kCB channels at a time: each row of g (D rows of
// the map) is read once per block of channels, not once per channel.
template <typename Dtype>
DCD_INLINE void correlate_backward_b(const Dtype* g, const Dtype* a_hat,
    int channels, int height, int width, int dh, int dw, int s, Dtype* db,
    int c_begin, int c_end) {
  const int kCB = 8;
  const int hw = height * width;
  const int pad_h = dh * s, pad_w = dw * s;
  const int pw = width + 2 * pad_w;
  const int pplane = (height + 2 * pad_h) * pw;
  const int D = dcd::window_size(dh, dw);
  vector<Dtype> scratch_planes(static_cast<size_t>(kCB) * pplane);
  vector<int> koff(D);
  for (int k = 0; k < D; ++k) {
    koff[k] = dcd::window_di(k, dh, dw) * s * pw + dcd::window_dj(k, dw) * s;
  }
  for (int c0 = c_begin; c0 < c_end; c0 += kCB) {
    const int cb = std::min(kCB, c_end - c0);
    Dtype* scratch = &scratch_planes[0];
    for (size_t p = 0; p < static_cast<size_t>(cb) * pplane; ++p) {
      scratch[p] = 0;
    }
    for (int i = 0; i < height; ++i) {
      const int base = dcd::padded_offset(i, 0, pad_h, pad_w, pw);
      for (int k = 0; k < D; ++k) {
        const Dtype* g_row = g + k * hw + i * width;
        for (int c = 0; c < cb; ++c) {
          const Dtype* a_row = a_hat + (i * channels + c0 + c) * width;
          Dtype* s_row = scratch + c * pplane + base + koff[k];
          for (int j = 0; j < width; ++j) {
            s_row[j] += g_row[j] * a_row[j];
          }
        }
      }
    }
    for (int c = 0; c < cb; ++c) {
      for (int i = 0; i < height; ++i) {
        const Dtype* s_row = scratch + c * pplane +
            dcd::padded_offset(i, 0, pad_h, pad_w, pw);
        Dtype* db_row = db + (c0 + c) * hw + i * width;
        for (int j = 0; j < width; ++j) { db_row[j] = s_row[j]; }
      }
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
    int channels, int height, int width, int dh, int dw, int s, Dtype* db,    \
    int begin, int end) {                                                     \
  correlate_backward_b(g, a_hat, channels, height, width, dh, dw, s, db,      \
                       begin, end);                                           \
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
    DCD_DISPATCH(backward_b, (g, a_hat, channels, height, width, dh, dw, s, db,
                              begin, end))
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
  Dtype* top_data = top[0]->mutable_cpu_data();
  for (int n = 0; n < num; ++n) {
    const int off = n * channels * hw;
    const int poff = n * channels * pplane;
    // Rows of channels: a_hat H x C x W, b_hat (H + 2 pad_h) x C x pw.
    normalize_cpu(bottom[0]->cpu_data() + off, channels, height, width, eps_,
        inv_norm_a_.mutable_cpu_data() + n * hw, a_hat + off,
        channels * width, width);
    normalize_cpu(bottom[1]->cpu_data() + off, channels, height, width, eps_,
        inv_norm_b_.mutable_cpu_data() + n * hw,
        b_hat + poff + pad_h_ * channels * pw + pad_w_, channels * pw, pw);
    zero_border_cpu(b_hat + poff, channels, height, width, pad_h_, pad_w_);
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
