#ifndef CAFFE_UTIL_DCD_KERNELS_HPP_
#define CAFFE_UTIL_DCD_KERNELS_HPP_

// Arithmetic shared by the CPU loops (.cpp) and the CUDA kernels (.cu) of the
// DCD layers (CostVolume, SoftDisplacement, BilinearWarp). Everything here is
// a small inline function with no Caffe dependency, so the same index math,
// bilinear tap weights and softmax pieces run on both devices, and the
// kernels can be built with nvcc alone.

#include <math.h>
#include <string.h>

#ifdef __CUDACC__
#define DCD_HOST_DEVICE __host__ __device__
#else
#define DCD_HOST_DEVICE
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
// vectorise (libm's expf is not, and dominated the CPU layer's time):
// x = n ln2 + r with |r| <= ln2 / 2 (Cody-Waite split of ln2), exp(r) by
// Cephes' degree-7 polynomial (relative error ~1e-7), 2^n by writing the
// float's exponent bits. Below 2^-126 the result is 0 (far below the float
// resolution of a sum that contains exp(0) = 1). Only integer selects, no
// float branches, so the loop vectorises without -ffast-math.
DCD_HOST_DEVICE inline float softmax_exp(float x) {
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

// Unnormalised softmax weight exp((c_k - max) / tau).
template <typename Dtype>
DCD_HOST_DEVICE inline Dtype softmax_weight(Dtype c_k, Dtype max_c,
    Dtype inv_tau) {
  return softmax_exp((c_k - max_c) * inv_tau);
}

// Expected displacement (v_y, v_x) in pixels under p = softmax(c / tau):
// v_y = sum_k p_k di_k s, v_x = sum_k p_k dj_k s. Summing over the whole
// window equals the paper's Eq. (1)-(2), whose marginals rho^y, rho^x are
// the row and column sums of p. Returns max_c and the partition sum too.
template <typename Dtype>
DCD_HOST_DEVICE inline void soft_displacement(const Dtype* c, int stride,
    int dh, int dw, int s, Dtype inv_tau, Dtype* v_y, Dtype* v_x,
    Dtype* max_c, Dtype* sum) {
  const int D = window_size(dh, dw);
  const Dtype m = softmax_max(c, D, stride);
  Dtype z = 0, sy = 0, sx = 0;
  for (int k = 0; k < D; ++k) {
    const Dtype e = softmax_weight(c[k * stride], m, inv_tau);
    z += e;
    sy += e * Dtype(window_di(k, dh, dw) * s);
    sx += e * Dtype(window_dj(k, dw) * s);
  }
  *v_y = sy / z;
  *v_x = sx / z;
  *max_c = m;
  *sum = z;
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

// Tap t in 0..3: dy = t / 2, dx = t % 2.
template <typename Dtype>
DCD_HOST_DEVICE inline Dtype bilinear_weight(int t, Dtype ay, Dtype ax) {
  const Dtype wy = (t >> 1) ? ay : Dtype(1) - ay;
  const Dtype wx = (t & 1) ? ax : Dtype(1) - ax;
  return wy * wx;
}

// Value of a plane at (row, col), 0 outside.
template <typename Dtype>
DCD_HOST_DEVICE inline Dtype plane_at(const Dtype* plane, int row, int col,
    int H, int W) {
  return (row >= 0 && row < H && col >= 0 && col < W) ?
      plane[row * W + col] : Dtype(0);
}

// Bilinear sample of an H x W plane.
template <typename Dtype>
DCD_HOST_DEVICE inline Dtype bilinear_sample(const Dtype* plane, int H, int W,
    const BilinearTaps<Dtype>& t) {
  const Dtype v00 = plane_at(plane, t.y0, t.x0, H, W);
  const Dtype v01 = plane_at(plane, t.y0, t.x0 + 1, H, W);
  const Dtype v10 = plane_at(plane, t.y0 + 1, t.x0, H, W);
  const Dtype v11 = plane_at(plane, t.y0 + 1, t.x0 + 1, H, W);
  return bilinear_weight(0, t.ay, t.ax) * v00
      + bilinear_weight(1, t.ay, t.ax) * v01
      + bilinear_weight(2, t.ay, t.ax) * v10
      + bilinear_weight(3, t.ay, t.ax) * v11;
}

// Derivatives of the sample with respect to y and x.
template <typename Dtype>
DCD_HOST_DEVICE inline void bilinear_sample_grad(const Dtype* plane, int H,
    int W, const BilinearTaps<Dtype>& t, Dtype* d_y, Dtype* d_x) {
  const Dtype v00 = plane_at(plane, t.y0, t.x0, H, W);
  const Dtype v01 = plane_at(plane, t.y0, t.x0 + 1, H, W);
  const Dtype v10 = plane_at(plane, t.y0 + 1, t.x0, H, W);
  const Dtype v11 = plane_at(plane, t.y0 + 1, t.x0 + 1, H, W);
  *d_y = (Dtype(1) - t.ax) * (v10 - v00) + t.ax * (v11 - v01);
  *d_x = (Dtype(1) - t.ay) * (v01 - v00) + t.ay * (v11 - v10);
}

// Adds g * weight to each tap that lies inside the plane (serial; the caller
// orders the calls so the result is deterministic).
template <typename Dtype>
DCD_HOST_DEVICE inline void bilinear_scatter(Dtype* plane, int H, int W,
    const BilinearTaps<Dtype>& t, Dtype g) {
  for (int k = 0; k < 4; ++k) {
    const int row = t.y0 + (k >> 1);
    const int col = t.x0 + (k & 1);
    if (row >= 0 && row < H && col >= 0 && col < W) {
      plane[row * W + col] += g * bilinear_weight(k, t.ay, t.ax);
    }
  }
}

}  // namespace dcd
}  // namespace caffe

#endif  // CAFFE_UTIL_DCD_KERNELS_HPP_
