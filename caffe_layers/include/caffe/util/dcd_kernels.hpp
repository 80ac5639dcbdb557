#ifndef CAFFE_UTIL_DCD_KERNELS_HPP_
#define CAFFE_UTIL_DCD_KERNELS_HPP_

// Arithmetic shared by the CPU loops (.cpp) and the CUDA kernels (.cu) of the
// DCD layers (CostVolume, SoftDisplacement, BilinearWarp). Everything here is
// a small inline function with no Caffe dependency, so the same index math,
// bilinear tap weights and softmax pieces run on both devices, and the
// kernels can be built with nvcc alone.

#include <float.h>
#include <math.h>
#include <string.h>

#ifdef __CUDACC__
#define DCD_HOST_DEVICE __host__ __device__
#else
#define DCD_HOST_DEVICE
#endif

// Unrolls the fixed-size loops over a thread's block of outputs so their
// sums stay in registers on the GPU (host compilers unroll by themselves).
#ifdef __CUDA_ARCH__
#define DCD_UNROLL _Pragma("unroll")
#else
#define DCD_UNROLL
#endif

// CPU row kernels (loops over one row of a map, called inside the layers'
// OpenMP loops) are also compiled for AVX2 and AVX-512 and picked at load
// time: Caffe itself is built for the baseline ISA.
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__CUDACC__)
#define DCD_ROW_KERNEL \
    __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define DCD_ROW_KERNEL
#endif

namespace caffe {
namespace dcd {

// ---------------------------------------------------------------- scalars --

DCD_HOST_DEVICE inline float dcd_sqrt(float x) { return sqrtf(x); }
DCD_HOST_DEVICE inline double dcd_sqrt(double x) { return sqrt(x); }
DCD_HOST_DEVICE inline float dcd_floor(float x) { return floorf(x); }
DCD_HOST_DEVICE inline double dcd_floor(double x) { return floor(x); }

DCD_HOST_DEVICE inline int dcd_min(int a, int b) { return a < b ? a : b; }
DCD_HOST_DEVICE inline int dcd_max(int a, int b) { return a > b ? a : b; }

// ------------------------------------------------------ displacement window --
// A window of half sizes (dh, dw) has D = (2 dh + 1)(2 dw + 1) displacements;
// channel k = (di + dh)(2 dw + 1) + (dj + dw), -dh <= di <= dh,
// -dw <= dj <= dw. In pixels the displacement is (di * s, dj * s), s the
// dilation.

DCD_HOST_DEVICE inline int window_size(int dh, int dw) {
  return (2 * dh + 1) * (2 * dw + 1);
}

DCD_HOST_DEVICE inline int window_channel(int di, int dj, int dh, int dw) {
  return (di + dh) * (2 * dw + 1) + (dj + dw);
}

DCD_HOST_DEVICE inline int window_di(int k, int dh, int dw) {
  return k / (2 * dw + 1) - dh;
}

DCD_HOST_DEVICE inline int window_dj(int k, int dw) {
  return k % (2 * dw + 1) - dw;
}

// --------------------------------------------------------------- CostVolume --

// 1 / sqrt(|f|^2 + eps). Returns 0 when |f|^2 + eps == 0 (only possible with
// eps == 0 and f == 0): the normalised vector is then 0, so every similarity
// with it is 0 and it receives no gradient.
template <typename Dtype>
DCD_HOST_DEVICE inline Dtype inverse_norm(Dtype sum_sq, Dtype eps) {
  const Dtype s = sum_sq + eps;
  return s > Dtype(0) ? Dtype(1) / dcd_sqrt(s) : Dtype(0);
}

// Chain rule through f_hat = f / n, n = sqrt(|f|^2 + eps):
// d f_hat / d f = I / n - f f^T / n^3, so
// dL/df = (dL/df_hat - f_hat * <f_hat, dL/df_hat>) / n.
// `dot` is <f_hat, dL/df_hat> over the channels of the pixel.
template <typename Dtype>
DCD_HOST_DEVICE inline Dtype normalize_backward(Dtype g_hat, Dtype f_hat,
    Dtype dot, Dtype inv_norm) {
  return (g_hat - f_hat * dot) * inv_norm;
}

// Offset of (row, col) of an H x W map inside the zero-padded copy of size
// (H + 2 pad_h) x (W + 2 pad_w) that the CostVolume keeps of normalised F_b.
DCD_HOST_DEVICE inline int padded_offset(int row, int col, int pad_h,
    int pad_w, int padded_w) {
  return (row + pad_h) * padded_w + (col + pad_w);
}

// True when (i + di * s, j + dj * s) lies inside an H x W map.
DCD_HOST_DEVICE inline bool shifted_inside(int i, int j, int di, int dj,
    int s, int H, int W) {
  const int y = i + di * s;
  const int x = j + dj * s;
  return y >= 0 && y < H && x >= 0 && x < W;
}

// --------------------------------------------------------- SoftDisplacement --
// Cost entries of one pixel sit at c[k * stride], k = 0 .. D - 1.

// Largest entry (used to stabilise the softmax).
template <typename Dtype>
DCD_HOST_DEVICE inline Dtype softmax_max(const Dtype* c, int D, int stride) {
  Dtype m = c[0];
  for (int k = 1; k < D; ++k) {
    const Dtype v = c[k * stride];
    if (v > m) { m = v; }
  }
  return m;
}

// exp(x) for the softmax's x <= 0, in plain arithmetic that compilers
// vectorise (docs/ASSUMPTIONS.md, "Softmax exponential", "Tiny temperatures"):
// x = n ln2 + r with |r| <= ln2 / 2 (Cody-Waite split of ln2), exp(r) by
// Cephes' degree-7 polynomial (relative error ~1e-7), 2^n by writing the
// float's exponent bits. Below 2^-126 the result is 0 (far below the float
// resolution of a sum that contains exp(0) = 1). Only selects, no branches,
// so the loop vectorises without -ffast-math. x is first raised to -88 (the
// result is 0 from there down), so a tiny temperature gives no inf * 0 = NaN.
// NaN stays NaN. The raise works on the float's bits with masks: written as
// a float select, GCC turned it into a branch around the polynomial (it may
// not speculate float arithmetic that could trap) and the loop ran scalar,
// 5x slower (docs/ASSUMPTIONS.md, "Tiny temperatures").
DCD_HOST_DEVICE inline float softmax_exp(float x) {
  unsigned u;
  memcpy(&u, &x, sizeof(u));
  // Below -88 (sign set, magnitude above 88's bits; -inf too), not NaN.
  const unsigned below = (u > 0xC2B00000u) & ((u & 0x7FFFFFFFu) <= 0x7F800000u);
  u += (0xC2B00000u - u) & (0u - below);
  memcpy(&x, &u, sizeof(x));
  int n = static_cast<int>(x * 1.44269504088896341f - 0.5f);  // round, x <= 0
  const int underflow = n < -126;
  n = underflow ? -126 : n;
  const float fn = static_cast<float>(n);
  const float r = (x - fn * 0.693359375f) + fn * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const int bits = underflow ? 0 : (n + 127) << 23;
  float scale;
  memcpy(&scale, &bits, sizeof(scale));
  return y * scale;
}
// Double precision keeps libm's exp (used by the gradient checks).
DCD_HOST_DEVICE inline double softmax_exp(double x) { return exp(x); }

// 1 / tau for any tau > 0: a subnormal tau's reciprocal overflows, and
// (c_k - max) * inf is NaN at the maximum; the largest finite value keeps
// that entry at exp(0) = 1 and sends the others to 0 (winner takes all).
DCD_HOST_DEVICE inline float inverse_temperature(float tau) {
  const float r = 1.0f / tau;
  return r < FLT_MAX ? r : FLT_MAX;
}
DCD_HOST_DEVICE inline double inverse_temperature(double tau) {
  const double r = 1.0 / tau;
  return r < DBL_MAX ? r : DBL_MAX;
}

// Unnormalised softmax weight exp((c_k - max) / tau).
template <typename Dtype>
DCD_HOST_DEVICE inline Dtype softmax_weight(Dtype c_k, Dtype max_c,
    Dtype inv_tau) {
  return softmax_exp((c_k - max_c) * inv_tau);
}

// Max, partition sum z and first moments (sy, sx) of the unnormalised
// softmax weights of one pixel, summed over k in ascending order.
template <typename Dtype>
DCD_HOST_DEVICE inline void softmax_moments(const Dtype* c, int stride,
    int dh, int dw, int s, Dtype inv_tau, Dtype* max_c, Dtype* z, Dtype* sy,
    Dtype* sx) {
  const int D = window_size(dh, dw);
  const Dtype m = softmax_max(c, D, stride);
  Dtype zz = 0, yy = 0, xx = 0;
  for (int k = 0; k < D; ++k) {
    const Dtype e = softmax_weight(c[k * stride], m, inv_tau);
    zz += e;
    yy += e * Dtype(window_di(k, dh, dw) * s);
    xx += e * Dtype(window_dj(k, dw) * s);
  }
  *max_c = m;
  *z = zz;
  *sy = yy;
  *sx = xx;
}

// Expected displacement (v_y, v_x) in pixels under p = softmax(c / tau):
// v_y = sum_k p_k di_k s, v_x = sum_k p_k dj_k s. Summing over the whole
// window equals the paper's Eq. (1)-(2), whose marginals rho^y, rho^x are
// the row and column sums of p. Returns max_c and the partition sum too.
template <typename Dtype>
DCD_HOST_DEVICE inline void soft_displacement(const Dtype* c, int stride,
    int dh, int dw, int s, Dtype inv_tau, Dtype* v_y, Dtype* v_x,
    Dtype* max_c, Dtype* sum) {
  Dtype sy, sx;
  softmax_moments(c, stride, dh, dw, s, inv_tau, max_c, sum, &sy, &sx);
  *v_y = sy / *sum;
  *v_x = sx / *sum;
}

// dL/dc_k = p_k / tau * (g_y (dy_k - v_y) + g_x (dx_k - v_x)).
template <typename Dtype>
DCD_HOST_DEVICE inline Dtype soft_displacement_grad(Dtype p_k, Dtype inv_tau,
    Dtype g_y, Dtype g_x, Dtype dy_k, Dtype dx_k, Dtype v_y, Dtype v_x) {
  return p_k * inv_tau * (g_y * (dy_k - v_y) + g_x * (dx_k - v_x));
}

// Index of the largest entry; the first one on ties.
template <typename Dtype>
DCD_HOST_DEVICE inline int argmax_first(const Dtype* c, int D, int stride) {
  int best = 0;
  Dtype m = c[0];
  for (int k = 1; k < D; ++k) {
    if (c[k * stride] > m) { m = c[k * stride]; best = k; }
  }
  return best;
}

// ------------------------------------------------------------ BilinearWarp --
// Sampling position (y, x) of an H x W map. The taps are
// (y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1) with y0 = floor(y),
// x0 = floor(x); fractional parts ay = y - y0, ax = x - x0. Taps outside the
// map count as zero, each one on its own. Because of floor(), at an integer
// position the derivative with respect to the position is the one-sided
// right derivative (difference towards the next row / column).

template <typename Dtype>
struct BilinearTaps {
  int y0;
  int x0;
  Dtype ay;
  Dtype ax;
};

// Positions are clamped to [-2, H + 1] x [-2, W + 1] before floor() so the
// integer conversion is always defined; beyond that range every tap is
// outside the map, so value and derivatives are 0 either way.
template <typename Dtype>
DCD_HOST_DEVICE inline BilinearTaps<Dtype> bilinear_taps(Dtype y, Dtype x,
    int H, int W) {
  const Dtype lo_y = -2, hi_y = Dtype(H + 1);
  const Dtype lo_x = -2, hi_x = Dtype(W + 1);
  y = y > lo_y ? (y < hi_y ? y : hi_y) : lo_y;
  x = x > lo_x ? (x < hi_x ? x : hi_x) : lo_x;
  const Dtype fy = dcd_floor(y);
  const Dtype fx = dcd_floor(x);
  BilinearTaps<Dtype> t;
  t.y0 = static_cast<int>(fy);
  t.x0 = static_cast<int>(fx);
  t.ay = y - fy;
  t.ax = x - fx;
  return t;
}

// Taps of position (i + s v_y, j + s v_x). A NaN or infinite v_y or v_x
// makes ay and ax NaN (v - v is NaN exactly then, 0 otherwise), so the
// sample and its gradient to V are NaN: a broken displacement shows in the
// output instead of reading as a zero sample. The clamp still gives such a
// pixel fixed tap indices outside the map, so it scatters nothing into F's
// gradient. A huge finite v (even when s v overflows) is outside the map:
// the sample and the gradients are 0.
template <typename Dtype>
DCD_HOST_DEVICE inline BilinearTaps<Dtype> warp_position_taps(int i, int j,
    Dtype v_y, Dtype v_x, Dtype s, int H, int W) {
  const Dtype poison = (v_y - v_y) + (v_x - v_x);
  BilinearTaps<Dtype> t = bilinear_taps(i + s * v_y, j + s * v_x, H, W);
  t.ay += poison;
  t.ax += poison;
  return t;
}

// Tap t in 0..3: dy = t / 2, dx = t % 2.
template <typename Dtype>
DCD_HOST_DEVICE inline Dtype bilinear_weight(int t, Dtype ay, Dtype ax) {
  const Dtype wy = (t >> 1) ? ay : Dtype(1) - ay;
  const Dtype wx = (t & 1) ? ax : Dtype(1) - ax;
  return wy * wx;
}

// All four taps inside the H x W map: the values can be read unchecked.
template <typename Dtype>
DCD_HOST_DEVICE inline bool taps_inside(const BilinearTaps<Dtype>& t, int H,
    int W) {
  return t.y0 >= 0 && t.y0 + 1 < H && t.x0 >= 0 && t.x0 + 1 < W;
}

// Index row * W + col of tap k (0..3) in its plane, or -1 outside the map.
template <typename Dtype>
DCD_HOST_DEVICE inline int tap_index(const BilinearTaps<Dtype>& t, int k,
    int H, int W) {
  const int row = t.y0 + (k >> 1);
  const int col = t.x0 + (k & 1);
  return (row >= 0 && row < H && col >= 0 && col < W) ? row * W + col : -1;
}

// The four tap values of one sample, in tap order.
template <typename Dtype>
struct TapValues {
  Dtype v00;
  Dtype v01;
  Dtype v10;
  Dtype v11;
};

// Value of a plane at (row, col), 0 outside.
template <typename Dtype>
DCD_HOST_DEVICE inline Dtype plane_at(const Dtype* plane, int row, int col,
    int H, int W) {
  return (row >= 0 && row < H && col >= 0 && col < W) ?
      plane[row * W + col] : Dtype(0);
}

template <typename Dtype>
DCD_HOST_DEVICE inline TapValues<Dtype> tap_values(const Dtype* plane, int H,
    int W, const BilinearTaps<Dtype>& t) {
  TapValues<Dtype> v;
  v.v00 = plane_at(plane, t.y0, t.x0, H, W);
  v.v01 = plane_at(plane, t.y0, t.x0 + 1, H, W);
  v.v10 = plane_at(plane, t.y0 + 1, t.x0, H, W);
  v.v11 = plane_at(plane, t.y0 + 1, t.x0 + 1, H, W);
  return v;
}

// The same for taps_inside(t): `at` points at tap (y0, x0) of a plane with
// rows of W.
template <typename Dtype>
DCD_HOST_DEVICE inline TapValues<Dtype> tap_values_inside(const Dtype* at,
    int W) {
  TapValues<Dtype> v;
  v.v00 = at[0];
  v.v01 = at[1];
  v.v10 = at[W];
  v.v11 = at[W + 1];
  return v;
}

// Bilinear sample from its tap values.
template <typename Dtype>
DCD_HOST_DEVICE inline Dtype bilinear_mix(const TapValues<Dtype>& v,
    const BilinearTaps<Dtype>& t) {
  return bilinear_weight(0, t.ay, t.ax) * v.v00
      + bilinear_weight(1, t.ay, t.ax) * v.v01
      + bilinear_weight(2, t.ay, t.ax) * v.v10
      + bilinear_weight(3, t.ay, t.ax) * v.v11;
}

// Derivatives of the sample with respect to y and x, from its tap values.
template <typename Dtype>
DCD_HOST_DEVICE inline void bilinear_mix_grad(const TapValues<Dtype>& v,
    const BilinearTaps<Dtype>& t, Dtype* d_y, Dtype* d_x) {
  *d_y = (Dtype(1) - t.ax) * (v.v10 - v.v00) + t.ax * (v.v11 - v.v01);
  *d_x = (Dtype(1) - t.ay) * (v.v01 - v.v00) + t.ay * (v.v11 - v.v10);
}

// Bilinear sample of an H x W plane.
template <typename Dtype>
DCD_HOST_DEVICE inline Dtype bilinear_sample(const Dtype* plane, int H, int W,
    const BilinearTaps<Dtype>& t) {
  return bilinear_mix(tap_values(plane, H, W, t), t);
}

// Derivatives of the sample with respect to y and x.
template <typename Dtype>
DCD_HOST_DEVICE inline void bilinear_sample_grad(const Dtype* plane, int H,
    int W, const BilinearTaps<Dtype>& t, Dtype* d_y, Dtype* d_x) {
  bilinear_mix_grad(tap_values(plane, H, W, t), t, d_y, d_x);
}

// ====================================================== GPU kernel bodies ==
// Each CUDA kernel of the DCD layers is a grid-stride loop over `index` that
// calls one of the functions below and nothing else. Keeping the bodies here
// lets test_dcd_kernels.cpp run them on the CPU over every index, in launch
// order, and compare with the CPU layers: the GPU's index decoding and
// arithmetic are tested without a GPU. Launch sizes come from the *_count
// functions.

// --- CostVolume --------------------------------------------------------------
// Blocking: a forward thread computes kCostVolumeBlockD horizontal
// displacements of one pixel (one load of a_hat(c) serves them all, and the
// b_hat loads of neighbouring displacements share cache lines); a backward
// thread computes kCostVolumeBlockC channels of one pixel (one load of the
// top gradient serves them all).
const int kCostVolumeBlockD = 8;
const int kCostVolumeBlockC = 4;

DCD_HOST_DEVICE inline int ceil_div(int a, int b) { return (a + b - 1) / b; }

// One pixel (n, p): 1 / norm and the normalised vector, written into `out`,
// which may be padded (rows of out_w, offset by pad_h rows and pad_w
// columns, planes of out_plane). Count: N H W.
template <typename Dtype>
DCD_HOST_DEVICE inline void cost_volume_normalize_pixel(int index,
    const Dtype* f, int channels, int height, int width, Dtype eps,
    Dtype* inv_norm, Dtype* out, int pad_h, int pad_w, int out_w,
    int out_plane) {
  const int hw = height * width;
  const int n = index / hw;
  const int p = index % hw;
  const Dtype* fp = f + n * channels * hw + p;
  Dtype sum_sq = 0;
  for (int c = 0; c < channels; ++c) {
    sum_sq += fp[c * hw] * fp[c * hw];
  }
  const Dtype inv = inverse_norm(sum_sq, eps);
  inv_norm[index] = inv;
  Dtype* op = out + n * channels * out_plane +
      padded_offset(p / width, p % width, pad_h, pad_w, out_w);
  for (int c = 0; c < channels; ++c) {
    op[c * out_plane] = fp[c * hw] * inv;
  }
}

// Forward: thread (n, di, block of horizontal offsets, i, j), j fastest.
DCD_HOST_DEVICE inline int cost_volume_forward_count(int num, int height,
    int width, int dh, int dw) {
  return num * (2 * dh + 1) * ceil_div(2 * dw + 1, kCostVolumeBlockD) *
      height * width;
}

// top(n, k, i, j) = <a_hat(n, :, i, j), b_hat(n, :, i + di s, j + dj s)>
// for the block's offsets dj, summed over c in ascending order; b_hat is
// zero-padded by (dh s, dw s), so partners outside the map give exactly 0.
template <typename Dtype>
DCD_HOST_DEVICE inline void cost_volume_forward_block(int index,
    const Dtype* a_hat, const Dtype* b_hat_pad, int channels, int height,
    int width, int dh, int dw, int s, Dtype* top) {
  const int KB = kCostVolumeBlockD;
  const int hw = height * width;
  const int nblocks = ceil_div(2 * dw + 1, KB);
  const int j = index % width;
  const int i = (index / width) % height;
  const int block = (index / hw) % nblocks;
  const int di = (index / (hw * nblocks)) % (2 * dh + 1) - dh;
  const int n = index / (hw * nblocks * (2 * dh + 1));
  const int dj0 = block * KB - dw;
  const int nd = dcd_min(KB, dw - dj0 + 1);
  Dtype acc[KB];
  DCD_UNROLL
  for (int d = 0; d < KB; ++d) { acc[d] = 0; }
  const int y = i + di * s;
  if (y >= 0 && y < height) {
    const int pad_h = dh * s, pad_w = dw * s;
    const int pw = width + 2 * pad_w;
    const int pplane = (height + 2 * pad_h) * pw;
    const Dtype* a = a_hat + n * channels * hw + i * width + j;
    const Dtype* b = b_hat_pad + n * channels * pplane +
        padded_offset(y, j + dj0 * s, pad_h, pad_w, pw);
    for (int c = 0; c < channels; ++c) {
      const Dtype ac = a[c * hw];
      const Dtype* bc = b + c * pplane;
      DCD_UNROLL
      for (int d = 0; d < KB; ++d) {
        if (d < nd) { acc[d] += ac * bc[d * s]; }
      }
    }
  }
  Dtype* out = top + (n * window_size(dh, dw) + window_channel(di, dj0, dh,
      dw)) * hw + i * width + j;
  DCD_UNROLL
  for (int d = 0; d < KB; ++d) {
    if (d < nd) { out[d * hw] = acc[d]; }
  }
}

// Backward to F_a and F_b: thread (n, block of channels, i, j), j fastest.
DCD_HOST_DEVICE inline int cost_volume_backward_count(int num, int channels,
    int height, int width) {
  return num * ceil_div(channels, kCostVolumeBlockC) * height * width;
}

// A backward thread's outputs: image n, channels [c0, c0 + nc), pixel (i, j).
struct ChannelBlock {
  int n, c0, nc, i, j;
};

DCD_HOST_DEVICE inline ChannelBlock channel_block(int index, int channels,
    int height, int width) {
  const int CB = kCostVolumeBlockC;
  const int hw = height * width;
  const int nblocks = ceil_div(channels, CB);
  ChannelBlock b;
  b.j = index % width;
  b.i = (index / width) % height;
  b.c0 = (index / hw) % nblocks * CB;
  b.n = index / (hw * nblocks);
  b.nc = dcd_min(CB, channels - b.c0);
  return b;
}

// acc[cb] += g x[cb * stride] for the block's channels cb < nc.
template <typename Dtype>
DCD_HOST_DEVICE inline void accumulate_channel_block(Dtype g, const Dtype* x,
    int stride, int nc, Dtype* acc) {
  DCD_UNROLL
  for (int cb = 0; cb < kCostVolumeBlockC; ++cb) {
    if (cb < nc) { acc[cb] += g * x[cb * stride]; }
  }
}

// Writes a block's sums to its channels: out[cb * hw], cb < nc.
template <typename Dtype>
DCD_HOST_DEVICE inline void store_channel_block(const Dtype* acc, int nc,
    int hw, Dtype* out) {
  DCD_UNROLL
  for (int cb = 0; cb < kCostVolumeBlockC; ++cb) {
    if (cb < nc) { out[cb * hw] = acc[cb]; }
  }
}

// dL/da_hat(n, c, i, j) = sum_k g(n, k, i, j) b_hat(n, c, i + di s, j + dj s)
// over k in ascending order, for the block's channels.
template <typename Dtype>
DCD_HOST_DEVICE inline void cost_volume_backward_a_block(int index,
    const Dtype* top_diff, const Dtype* b_hat_pad, int channels, int height,
    int width, int dh, int dw, int s, Dtype* a_diff) {
  const int CB = kCostVolumeBlockC;
  const int hw = height * width;
  const int D = window_size(dh, dw);
  const ChannelBlock blk = channel_block(index, channels, height, width);
  const int n = blk.n, c0 = blk.c0, nc = blk.nc, i = blk.i, j = blk.j;
  const int pad_h = dh * s, pad_w = dw * s;
  const int pw = width + 2 * pad_w;
  const int pplane = (height + 2 * pad_h) * pw;
  const Dtype* g = top_diff + n * D * hw + i * width + j;
  const Dtype* b = b_hat_pad + (n * channels + c0) * pplane +
      padded_offset(i, j, pad_h, pad_w, pw);
  Dtype acc[CB];
  DCD_UNROLL
  for (int cb = 0; cb < CB; ++cb) { acc[cb] = 0; }
  for (int k = 0; k < D; ++k) {
    const int di = window_di(k, dh, dw);
    const int dj = window_dj(k, dw);
    if (!shifted_inside(i, j, di, dj, s, height, width)) { continue; }
    accumulate_channel_block(g[k * hw], b + di * s * pw + dj * s, pplane, nc,
                             acc);
  }
  store_channel_block(acc, nc, hw,
                      a_diff + (n * channels + c0) * hw + i * width + j);
}

// dL/db_hat(n, c, q) = sum_k g(n, k, q - shift_k) a_hat(n, c, q - shift_k)
// over k in ascending order (the CPU's scatter order), for the block's
// channels.
template <typename Dtype>
DCD_HOST_DEVICE inline void cost_volume_backward_b_block(int index,
    const Dtype* top_diff, const Dtype* a_hat, int channels, int height,
    int width, int dh, int dw, int s, Dtype* b_diff) {
  const int CB = kCostVolumeBlockC;
  const int hw = height * width;
  const int D = window_size(dh, dw);
  const ChannelBlock blk = channel_block(index, channels, height, width);
  const int n = blk.n, c0 = blk.c0, nc = blk.nc, y = blk.i, x = blk.j;
  const Dtype* g = top_diff + n * D * hw;
  const Dtype* a = a_hat + (n * channels + c0) * hw;
  Dtype acc[CB];
  DCD_UNROLL
  for (int cb = 0; cb < CB; ++cb) { acc[cb] = 0; }
  for (int k = 0; k < D; ++k) {
    const int di = window_di(k, dh, dw);
    const int dj = window_dj(k, dw);
    // (y - di s, x - dj s) is the F_a position matched with q.
    if (!shifted_inside(y, x, -di, -dj, s, height, width)) { continue; }
    const int p = (y - di * s) * width + (x - dj * s);
    accumulate_channel_block(g[k * hw + p], a + p, hw, nc, acc);
  }
  store_channel_block(acc, nc, hw,
                      b_diff + (n * channels + c0) * hw + y * width + x);
}

// One pixel, in place: diff = (diff - f_hat <f_hat, diff>) / n, channels
// in ascending order. Count: N H W.
template <typename Dtype>
DCD_HOST_DEVICE inline void cost_volume_normalize_backward_pixel(int index,
    const Dtype* f, const Dtype* inv_norm, int channels, int hw,
    Dtype* diff) {
  const int n = index / hw;
  const int p = index % hw;
  const Dtype inv = inv_norm[index];
  const Dtype* fp = f + n * channels * hw + p;
  Dtype* gp = diff + n * channels * hw + p;
  Dtype dot = 0;
  for (int c = 0; c < channels; ++c) {
    dot += fp[c * hw] * inv * gp[c * hw];
  }
  for (int c = 0; c < channels; ++c) {
    gp[c * hw] = normalize_backward(gp[c * hw], fp[c * hw] * inv, dot, inv);
  }
}

// --- CostVolume in shared-memory tiles (Forward_gpu) -------------------------
// A thread block owns a tile of th x tw pixels of one image and all of its
// displacements: thread (x, y, z) computes pixel (i0 + y, j0 + x) for the
// displacement row di = z - dh, all 2 dw + 1 columns in registers. Channels
// go in chunks of cc: the block loads the chunk's a_hat tile and the b_hat
// tile with the window's halo ((th + 2 dh s) x (tw + 2 dw s), from the
// zero-padded b_hat) into shared memory, then each thread adds the chunk's
// products. Every sum runs over c in ascending order from 0, as in
// cost_volume_forward_block, so both give the same bits (test_dcd_kernels).
// Windows wider than kCostVolumeTileMaxW, or taller than the block allows,
// keep the per-index kernel.
const int kCostVolumeTileW = 16;
const int kCostVolumeTileMaxW = 16;
const int kCostVolumeTileMaxThreads = 1024;
const int kCostVolumeTileMaxChunk = 16;

struct CostVolumeTile {
  int th, tw, rows;   // tile rows and columns; rows = 2 dh + 1 = blockDim.z
  int hh, hw;         // the b_hat tile with its halo
  int cc;             // channels per chunk
  int tiles_y, tiles_x;
  bool ok;            // false: use cost_volume_forward_block
  DCD_HOST_DEVICE int threads() const { return tw * th * rows; }
  DCD_HOST_DEVICE int a_size() const { return cc * th * tw; }
  DCD_HOST_DEVICE int b_size() const { return cc * hh * hw; }
  DCD_HOST_DEVICE int blocks(int num) const { return num * tiles_y * tiles_x; }
};

// The tiling of a (channels, height, width, dh, dw, s) problem for
// `smem_bytes` of shared memory and elements of `dtype_size` bytes.
DCD_HOST_DEVICE inline CostVolumeTile cost_volume_tile(int channels,
    int height, int width, int dh, int dw, int s, int dtype_size,
    int smem_bytes) {
  CostVolumeTile t;
  t.rows = 2 * dh + 1;
  t.tw = kCostVolumeTileW;
  t.th = dcd_max(1, dcd_min(8, kCostVolumeTileMaxThreads / (t.tw * t.rows)));
  t.hh = t.th + 2 * dh * s;
  t.hw = t.tw + 2 * dw * s;
  const int per_channel = (t.th * t.tw + t.hh * t.hw) * dtype_size;
  t.cc = dcd_min(dcd_min(channels, kCostVolumeTileMaxChunk),
                 smem_bytes / per_channel);
  t.tiles_y = ceil_div(height, t.th);
  t.tiles_x = ceil_div(width, t.tw);
  t.ok = t.tw * t.rows <= kCostVolumeTileMaxThreads &&
      2 * dw + 1 <= kCostVolumeTileMaxW && t.cc >= 1;
  return t;
}

// Thread t of the block loads its share (elements t, t + threads, ...) of
// the chunk starting at channel c0: a_s[c][y][x] and b_s[c][y][x], zero
// beyond the map (a) or the padded map (b).
template <typename Dtype>
DCD_HOST_DEVICE inline void cost_volume_tile_load(int t,
    const CostVolumeTile& T, int block, int c0, const Dtype* a_hat,
    const Dtype* b_hat_pad, int channels, int height, int width, int dh,
    int dw, int s, Dtype* a_s, Dtype* b_s) {
  const int tiles = T.tiles_y * T.tiles_x;
  const int n = block / tiles;
  const int i0 = (block % tiles) / T.tiles_x * T.th;
  const int j0 = (block % tiles) % T.tiles_x * T.tw;
  const int nc = dcd_min(T.cc, channels - c0);
  const int nthreads = T.threads();
  const int tile = T.th * T.tw;
  for (int e = t; e < T.a_size(); e += nthreads) {
    const int c = e / tile, i = i0 + e % tile / T.tw, j = j0 + e % T.tw;
    a_s[e] = (c < nc && i < height && j < width) ?
        a_hat[((n * channels + c0 + c) * height + i) * width + j] : Dtype(0);
  }
  const int ph = height + 2 * dh * s, pw = width + 2 * dw * s;
  const int halo = T.hh * T.hw;
  for (int e = t; e < T.b_size(); e += nthreads) {
    // padded row i0 + r holds b_hat row i0 + r - dh s: the partner of
    // tile row r' at offset di is r = r' + (di + dh) s
    const int c = e / halo, r = i0 + e % halo / T.hw, q = j0 + e % T.hw;
    b_s[e] = (c < nc && r < ph && q < pw) ?
        b_hat_pad[((n * channels + c0 + c) * ph + r) * pw + q] : Dtype(0);
  }
}

// Thread (x, y, z) adds the chunk's nc channels to acc[0 .. 2 dw].
template <typename Dtype>
DCD_HOST_DEVICE inline void cost_volume_tile_accumulate(int x, int y, int z,
    const CostVolumeTile& T, int nc, int dw, int s, const Dtype* a_s,
    const Dtype* b_s, Dtype* acc) {
  const int wd = 2 * dw + 1;
  for (int c = 0; c < nc; ++c) {
    const Dtype ac = a_s[(c * T.th + y) * T.tw + x];
    const Dtype* bc = b_s + (c * T.hh + y + z * s) * T.hw + x;
    DCD_UNROLL
    for (int d = 0; d < kCostVolumeTileMaxW; ++d) {
      if (d < wd) { acc[d] += ac * bc[d * s]; }
    }
  }
}

// Thread (x, y, z) writes its 2 dw + 1 sums; 0 where the partner row is
// outside the map (as cost_volume_forward_block, which skips it).
template <typename Dtype>
DCD_HOST_DEVICE inline void cost_volume_tile_store(int x, int y, int z,
    const CostVolumeTile& T, int block, int height, int width, int dh,
    int dw, int s, const Dtype* acc, Dtype* top) {
  const int tiles = T.tiles_y * T.tiles_x;
  const int n = block / tiles;
  const int i = (block % tiles) / T.tiles_x * T.th + y;
  const int j = (block % tiles) % T.tiles_x * T.tw + x;
  if (i >= height || j >= width) { return; }
  const int hw = height * width, wd = 2 * dw + 1;
  const int row = i + (z - dh) * s;
  const bool inside = row >= 0 && row < height;
  Dtype* out = top + (n * window_size(dh, dw) + z * wd) * hw + i * width + j;
  DCD_UNROLL  // constant indices keep acc in registers
  for (int d = 0; d < kCostVolumeTileMaxW; ++d) {
    if (d < wd) { out[d * hw] = inside ? acc[d] : Dtype(0); }
  }
}

// Backward, both inputs in one launch: indices [0, count_a) are
// cost_volume_backward_a_block's, [count_a, count_a + count_b) those of
// cost_volume_backward_b_block (count 0: that input is skipped). Each output
// is still owned by one thread that sums in a fixed order.
template <typename Dtype>
DCD_HOST_DEVICE inline void cost_volume_backward_both(int index, int count_a,
    const Dtype* top_diff, const Dtype* a_hat, const Dtype* b_hat_pad,
    int channels, int height, int width, int dh, int dw, int s, Dtype* a_diff,
    Dtype* b_diff) {
  if (index < count_a) {
    cost_volume_backward_a_block(index, top_diff, b_hat_pad, channels, height,
                                 width, dh, dw, s, a_diff);
  } else {
    cost_volume_backward_b_block(index - count_a, top_diff, a_hat, channels,
                                 height, width, dh, dw, s, b_diff);
  }
}

// The normalisation's backward for both inputs in one launch: indices
// [0, npix_a) for F_a, then F_b's.
template <typename Dtype>
DCD_HOST_DEVICE inline void cost_volume_normalize_backward_both(int index,
    int npix_a, const Dtype* fa, const Dtype* inv_a, const Dtype* fb,
    const Dtype* inv_b, int channels, int hw, Dtype* a_diff, Dtype* b_diff) {
  if (index < npix_a) {
    cost_volume_normalize_backward_pixel(index, fa, inv_a, channels, hw,
                                         a_diff);
  } else {
    cost_volume_normalize_backward_pixel(index - npix_a, fb, inv_b, channels,
                                         hw, b_diff);
  }
}

// --- SoftDisplacement ---------------------------------------------------------
// One pixel (n, p) each, count N H W; the same arithmetic as the CPU's row
// loops (v = moment / z in the forward pass, times 1 / z in the backward).

template <typename Dtype>
DCD_HOST_DEVICE inline void soft_displacement_forward_pixel(int index,
    const Dtype* cost, int hw, int dh, int dw, int s, Dtype inv_tau,
    bool wta, Dtype* top) {
  const int n = index / hw;
  const int p = index % hw;
  const int D = window_size(dh, dw);
  const Dtype* c = cost + n * D * hw + p;
  Dtype* v = top + n * 2 * hw + p;
  if (wta) {
    const int k = argmax_first(c, D, hw);
    v[0] = Dtype(window_di(k, dh, dw) * s);
    v[hw] = Dtype(window_dj(k, dw) * s);
    return;
  }
  Dtype max_c, z, sy, sx;
  softmax_moments(c, hw, dh, dw, s, inv_tau, &max_c, &z, &sy, &sx);
  v[0] = sy / z;
  v[hw] = sx / z;
}

template <typename Dtype>
DCD_HOST_DEVICE inline void soft_displacement_backward_pixel(int index,
    const Dtype* cost, const Dtype* top_diff, int hw, int dh, int dw, int s,
    Dtype inv_tau, Dtype* cost_diff) {
  const int n = index / hw;
  const int p = index % hw;
  const int D = window_size(dh, dw);
  const Dtype* c = cost + n * D * hw + p;
  const Dtype* g = top_diff + n * 2 * hw + p;
  Dtype* dc = cost_diff + n * D * hw + p;
  Dtype max_c, z, sy, sx;
  softmax_moments(c, hw, dh, dw, s, inv_tau, &max_c, &z, &sy, &sx);
  const Dtype inv_z = Dtype(1) / z;
  const Dtype v_y = sy * inv_z;
  const Dtype v_x = sx * inv_z;
  for (int k = 0; k < D; ++k) {
    const Dtype p_k = softmax_weight(c[k * hw], max_c, inv_tau) * inv_z;
    dc[k * hw] = soft_displacement_grad(p_k, inv_tau, g[0], g[hw],
        Dtype(window_di(k, dh, dw) * s), Dtype(window_dj(k, dw) * s), v_y,
        v_x);
  }
}

// --- BilinearWarp --------------------------------------------------------------

// Taps of output pixel p of image n: position (i, j) + s V(n, :, i, j).
template <typename Dtype>
DCD_HOST_DEVICE inline BilinearTaps<Dtype> warp_taps(const Dtype* v, int n,
    int p, int height, int width, Dtype s) {
  const int hw = height * width;
  return warp_position_taps(p / width, p % width, v[(n * 2) * hw + p],
                            v[(n * 2 + 1) * hw + p], s, height, width);
}

// Forward: one output (n, c, p) each, count N C H W.
template <typename Dtype>
DCD_HOST_DEVICE inline void bilinear_warp_forward_elem(int index,
    const Dtype* f, const Dtype* v, int channels, int height, int width,
    Dtype s, Dtype* top) {
  const int hw = height * width;
  const int nc = index / hw;
  const BilinearTaps<Dtype> t =
      warp_taps(v, nc / channels, index % hw, height, width, s);
  top[index] = bilinear_sample(f + nc * hw, height, width, t);
}

// Gradient to V: one pixel (n, p) each, summing over c in ascending order.
// Count N H W.
template <typename Dtype>
DCD_HOST_DEVICE inline void bilinear_warp_backward_v_pixel(int index,
    const Dtype* f, const Dtype* v, const Dtype* top_diff, int channels,
    int height, int width, Dtype s, Dtype* v_diff) {
  const int hw = height * width;
  const int n = index / hw;
  const int p = index % hw;
  const BilinearTaps<Dtype> t = warp_taps(v, n, p, height, width, s);
  Dtype gy = 0, gx = 0;
  for (int c = 0; c < channels; ++c) {
    Dtype d_y, d_x;
    bilinear_sample_grad(f + (n * channels + c) * hw, height, width, t, &d_y,
                         &d_x);
    const Dtype g = top_diff[(n * channels + c) * hw + p];
    gy += g * d_y;
    gx += g * d_x;
  }
  v_diff[(n * 2) * hw + p] = gy * s;
  v_diff[(n * 2 + 1) * hw + p] = gx * s;
}

// Gradient to F without atomics: f_diff(n, c, q) sums g(n, c, p) w_t(p)
// over the taps t of pixels p that land on q, in ascending p (and t), from
// 0, on both devices. The taps depend on (n, p) only, so the CPU builds
// each q's run once per image with a counting sort and gathers every
// channel through it (bilinear_warp_layer.cpp); the GPU
//   1. emits one (key, value) entry per tap: key n HW + q (or N HW when the
//      tap lies outside the map), value 4 (n HW + p) + t; count N H W;
//   2. sorts the entries by key with a stable radix sort: entries of one key
//      keep ascending values, i.e. ascending p;
//   3. finds where each key's run starts (a binary search per key,
//      count N H W + 1, so the last start is the end of the in-map taps);
//   4. sums each (n, c, q)'s run in order and writes it; count N C H W.
// Every element of f_diff is written once: no zero fill, no atomics.
template <typename Dtype>
DCD_HOST_DEVICE inline void bilinear_warp_emit_taps(int index, const Dtype* v,
    int num, int height, int width, Dtype s, int* keys, int* values) {
  const int hw = height * width;
  const int n = index / hw;
  const BilinearTaps<Dtype> t = warp_taps(v, n, index % hw, height, width, s);
  for (int k = 0; k < 4; ++k) {
    const int q = tap_index(t, k, height, width);
    keys[4 * index + k] = q >= 0 ? n * hw + q : num * hw;
    values[4 * index + k] = 4 * index + k;
  }
}

// First position of `key` in the ascending array keys[0 .. m).
DCD_HOST_DEVICE inline int lower_bound(const int* keys, int m, int key) {
  int lo = 0, hi = m;
  while (lo < hi) {
    const int mid = lo + (hi - lo) / 2;
    if (keys[mid] < key) { lo = mid + 1; } else { hi = mid; }
  }
  return lo;
}

DCD_HOST_DEVICE inline void bilinear_warp_run_start(int index,
    const int* sorted_keys, int m, int* starts) {
  starts[index] = lower_bound(sorted_keys, m, index);
}

template <typename Dtype>
DCD_HOST_DEVICE inline void bilinear_warp_backward_f_elem(int index,
    const int* sorted_values, const int* starts, const Dtype* v,
    const Dtype* top_diff, int channels, int height, int width, Dtype s,
    Dtype* f_diff) {
  const int hw = height * width;
  const int nc = index / hw;
  const int n = nc / channels;
  const int key = n * hw + index % hw;
  const Dtype* g = top_diff + nc * hw;
  Dtype acc = 0;
  for (int e = starts[key]; e < starts[key + 1]; ++e) {
    const int tap = sorted_values[e];
    const int p = tap / 4 - n * hw;
    const BilinearTaps<Dtype> t = warp_taps(v, n, p, height, width, s);
    acc += g[p] * bilinear_weight(tap % 4, t.ay, t.ax);
  }
  f_diff[index] = acc;
}

// Bits of the sort keys 0 .. num HW (the sort skips the rest).
DCD_HOST_DEVICE inline int bit_width(unsigned int x) {
  int b = 0;
  while (x) { ++b; x >>= 1; }
  return b;
}

// --- FrozenBN ------------------------------------------------------------------
// BatchNorm (use_global_stats) + Scale as one per-channel affine:
// y = (x - m_c) s_c + beta_c with m_c = mean_c / f and
// s_c = gamma_c / sqrt(var_c / f + eps); f = 0 gives m = 0 and var 0, as in
// Caffe's BatchNorm. Elements are (n, c, i) of an N x C x S blob
// (S = spatial size), index (n C + c) S + i.

template <typename Dtype>
struct FrozenBNChannel {
  Dtype mean;     // m_c
  Dtype inv_std;  // 1 / sqrt(var_c / f + eps)
  Dtype scale;    // s_c = gamma_c inv_std
};

// 1 / f, or 0 for f = 0 (BatchNorm's reading of an empty moving average).
template <typename Dtype>
DCD_HOST_DEVICE inline Dtype frozen_bn_stat_scale(Dtype factor) {
  return factor == Dtype(0) ? Dtype(0) : Dtype(1) / factor;
}

template <typename Dtype>
DCD_HOST_DEVICE inline FrozenBNChannel<Dtype> frozen_bn_channel(int c,
    const Dtype* mean, const Dtype* var, Dtype stat_scale,
    const Dtype* gamma, Dtype eps) {
  FrozenBNChannel<Dtype> ch;
  ch.mean = mean[c] * stat_scale;
  ch.inv_std = Dtype(1) / dcd_sqrt(var[c] * stat_scale + eps);
  ch.scale = gamma[c] * ch.inv_std;
  return ch;
}

template <typename Dtype>
DCD_HOST_DEVICE inline Dtype frozen_bn_apply(Dtype x,
    const FrozenBNChannel<Dtype>& ch, Dtype beta) {
  return (x - ch.mean) * ch.scale + beta;
}

// Forward: one element each, count N C S; `factor` points at blob 2.
template <typename Dtype>
DCD_HOST_DEVICE inline void frozen_bn_forward_elem(int index, const Dtype* x,
    int channels, int spatial, const Dtype* mean, const Dtype* var,
    const Dtype* factor, const Dtype* gamma, const Dtype* beta, Dtype eps,
    Dtype* y) {
  const int c = (index / spatial) % channels;
  const FrozenBNChannel<Dtype> ch = frozen_bn_channel(c, mean, var,
      frozen_bn_stat_scale(factor[0]), gamma, eps);
  y[index] = frozen_bn_apply(x[index], ch, beta[c]);
}

// Backward to the bottom only (gamma and beta frozen): dx = dy s_c; one
// element each, count N C S. In place (dx == dy) is fine.
template <typename Dtype>
DCD_HOST_DEVICE inline void frozen_bn_backward_elem(int index,
    const Dtype* top_diff, int channels, int spatial, const Dtype* var,
    const Dtype* factor, const Dtype* gamma, Dtype eps, Dtype* bottom_diff) {
  const int c = (index / spatial) % channels;
  const Dtype inv_std = Dtype(1) /
      dcd_sqrt(var[c] * frozen_bn_stat_scale(factor[0]) + eps);
  bottom_diff[index] = top_diff[index] * (gamma[c] * inv_std);
}

// Backward with gamma or beta learned: one GPU block of kFrozenBNThreads
// threads per channel. Thread t of channel c takes the channel's elements
// t, t + T, t + 2T, ... (n-major, coalesced along S), writes dx = dy s_c
// when bottom_diff is not NULL, and sums dy (x - m_c) inv_std and dy in that
// order; the block then adds its T partial sums pairwise
// (frozen_bn_tree_step for s = T/2, T/4, ..., 1), so the result does not
// depend on scheduling. `x` is the bottom data; in place, a saved copy.
const int kFrozenBNThreads = 256;  // a power of 2 (the pairwise sum)

template <typename Dtype>
DCD_HOST_DEVICE inline void frozen_bn_backward_thread(int c, int t, int T,
    int num, int channels, int spatial, const Dtype* x, const Dtype* top_diff,
    const FrozenBNChannel<Dtype>& ch, Dtype* bottom_diff, Dtype* gamma_sum,
    Dtype* beta_sum) {
  Dtype sg = 0, sb = 0;
  const int per_channel = num * spatial;
  for (int j = t; j < per_channel; j += T) {
    const int index = ((j / spatial) * channels + c) * spatial + j % spatial;
    const Dtype g = top_diff[index];
    sg += g * ((x[index] - ch.mean) * ch.inv_std);
    sb += g;
    if (bottom_diff) { bottom_diff[index] = g * ch.scale; }
  }
  *gamma_sum = sg;
  *beta_sum = sb;
}

// One level of the pairwise sum over a block's partial sums: threads t < s
// add element t + s to element t.
template <typename Dtype>
DCD_HOST_DEVICE inline void frozen_bn_tree_step(int t, int s, Dtype* sums) {
  if (t < s) { sums[t] += sums[t + s]; }
}

}  // namespace dcd
}  // namespace caffe

#endif  // CAFFE_UTIL_DCD_KERNELS_HPP_
