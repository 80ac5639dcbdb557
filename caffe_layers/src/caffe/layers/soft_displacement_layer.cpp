#include <string>
#include <vector>

#include "caffe/layers/soft_displacement_layer.hpp"
#include "caffe/util/dcd_cpu_cap.hpp"
#include "caffe/util/dcd_kernels.hpp"
#include "caffe/util/dcd_window.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

template <typename Dtype>
void SoftDisplacementLayer<Dtype>::LayerSetUp(
    const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top) {
  const SoftDisplacementParameter& param =
      this->layer_param_.soft_displacement_param();
  const dcd::DisplacementWindow window = dcd::ReadDisplacementWindow(
      param, std::string(this->type()) + " layer " + this->layer_param_.name());
  max_displacement_h_ = window.dh;
  max_displacement_w_ = window.dw;
  dilation_ = window.dilation;
  temperature_ = param.temperature();
  CHECK_GT(temperature_, 0) << "SoftDisplacement layer "
      << this->layer_param_.name() << ": temperature must be > 0.";
  method_ = param.method();
  learn_temperature_ = param.learn_temperature();
  if (!learn_temperature_) { return; }
  CHECK(method_ == SoftDisplacementParameter_Method_SOFT)
      << "SoftDisplacement layer " << this->layer_param_.name()
      << ": learn_temperature needs method SOFT (WTA has no temperature).";
  if (this->blobs_.size() > 0) {
    CHECK_EQ(this->blobs_.size(), 1) << "SoftDisplacement layer "
        << this->layer_param_.name() << ": expected one parameter blob (tau).";
    CHECK_EQ(this->blobs_[0]->count(), 1) << "SoftDisplacement layer "
        << this->layer_param_.name() << ": the temperature blob must hold "
        << "one value, got " << this->blobs_[0]->shape_string();
  } else {
    this->blobs_.resize(1);
    this->blobs_[0].reset(new Blob<Dtype>(vector<int>(1, 1)));
    this->blobs_[0]->mutable_cpu_data()[0] = temperature_;
  }
  this->param_propagate_down_.resize(this->blobs_.size(), true);
}

template <typename Dtype>
Dtype SoftDisplacementLayer<Dtype>::temperature() const {
  if (!learn_temperature_) { return temperature_; }
  const Dtype tau = this->blobs_[0]->cpu_data()[0];
  CHECK_GT(tau, 0) << "SoftDisplacement layer " << this->layer_param_.name()
      << ": the learned temperature became <= 0; lower its lr_mult.";
  return tau;
}

template <typename Dtype>
void SoftDisplacementLayer<Dtype>::AccumulateTemperatureGradient(
    const Blob<Dtype>& cost, const Dtype* cost_diff, bool on_gpu) {
  // c / tau enters the softmax, so dL/dtau = -(1 / tau) sum_k c_k dL/dc_k.
  Dtype dot = 0;
  if (on_gpu) {
#ifndef CPU_ONLY
    caffe_gpu_dot(cost.count(), cost.gpu_data(), cost_diff, &dot);
#else
    NO_GPU;
#endif
  } else {
    dot = caffe_cpu_dot(cost.count(), cost.cpu_data(), cost_diff);
  }
  this->blobs_[0]->mutable_cpu_diff()[0] -= dot / temperature();
}

template <typename Dtype>
void SoftDisplacementLayer<Dtype>::Reshape(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  CHECK_EQ(bottom[0]->num_axes(), 4) << "SoftDisplacement layer "
      << this->layer_param_.name() << ": the cost volume must be "
      << "N x D x H x W, got " << bottom[0]->shape_string();
  const int expected =
      dcd::window_size(max_displacement_h_, max_displacement_w_);
  CHECK_EQ(bottom[0]->channels(), expected) << "SoftDisplacement layer "
      << this->layer_param_.name() << ": the cost volume must have "
      << "(2 max_displacement_h + 1)(2 max_displacement_w + 1) = " << expected
      << " channels, got " << bottom[0]->channels() << " (bottom "
      << bottom[0]->shape_string() << ")";
  top[0]->Reshape(bottom[0]->num(), 2, bottom[0]->height(),
                  bottom[0]->width());
  moments_.Reshape(bottom[0]->num(), bottom[0]->height(), 4,
                   bottom[0]->width());
}

// The CPU loops run over one image row at a time with the window index k
// outside and the pixels of the row inside, so the inner loops stream
// contiguous memory (the CUDA kernel does the same arithmetic per pixel
// through dcd::soft_displacement). Rows split over threads. For float on
// x86-64 the row kernels run on blocks of pixels in vector registers,
// compiled for the baseline ISA, AVX2+FMA and AVX-512+FMA
// (dcd_cpu_cap.hpp); the plain loops below do double, rows narrower than
// 4 pixels, and other machines.
namespace {

// Displacement (dy, dx) in pixels of every window index k (whole numbers,
// exact in float).
struct WindowSteps {
  WindowSteps(int dh, int dw, int s) {
    const int D = dcd::window_size(dh, dw);
    dy.resize(D);
    dx.resize(D);
    for (int k = 0; k < D; ++k) {
      dy[k] = static_cast<float>(dcd::window_di(k, dh, dw) * s);
      dx[k] = static_cast<float>(dcd::window_dj(k, dw) * s);
    }
  }
  vector<float> dy;
  vector<float> dx;
};

// Per-row running max, partition sum and first moments of the softmax, for
// the pixels j_begin .. width of the row.
template <typename Dtype>
DCD_INLINE void softmax_row_moments(const Dtype* c, int D, int hw,
    int j_begin, int width, const float* dys, const float* dxs, Dtype inv_tau,
    Dtype* max_c, Dtype* z, Dtype* sy, Dtype* sx) {
  for (int j = j_begin; j < width; ++j) { max_c[j] = c[j]; }
  for (int k = 1; k < D; ++k) {
    const Dtype* ck = c + k * hw;
    for (int j = j_begin; j < width; ++j) {
      max_c[j] = ck[j] > max_c[j] ? ck[j] : max_c[j];
    }
  }
  for (int j = j_begin; j < width; ++j) { z[j] = sy[j] = sx[j] = 0; }
  for (int k = 0; k < D; ++k) {
    const Dtype* ck = c + k * hw;
    const Dtype dy = Dtype(dys[k]);
    const Dtype dx = Dtype(dxs[k]);
    for (int j = j_begin; j < width; ++j) {
      const Dtype e = dcd::softmax_weight(ck[j], max_c[j], inv_tau);
      z[j] += e;
      sy[j] += e * dy;
      sx[j] += e * dx;
    }
  }
}

// dL/dc_k for the pixels j_begin .. width of one row in one pass over the
// cost volume, given the forward's max, 1 / z and displacement (v_y, v_x):
// each weight is computed again as the forward computed it.
template <typename Dtype>
DCD_INLINE void soft_displacement_row_grad(const Dtype* c, int D, int hw,
    int j_begin, int width, const float* dys, const float* dxs, Dtype inv_tau,
    const Dtype* max_c, const Dtype* inv_z, const Dtype* v_y,
    const Dtype* v_x, const Dtype* g_y, const Dtype* g_x, Dtype* dc) {
  for (int k = 0; k < D; ++k) {
    const Dtype* ck = c + k * hw;
    Dtype* dck = dc + k * hw;
    const Dtype dy = Dtype(dys[k]);
    const Dtype dx = Dtype(dxs[k]);
    for (int j = j_begin; j < width; ++j) {
      const Dtype p_k = dcd::softmax_weight(ck[j], max_c[j], inv_tau) *
          inv_z[j];
      dck[j] = dcd::soft_displacement_grad(p_k, inv_tau, g_y[j], g_x[j], dy,
                                           dx, v_y[j], v_x[j]);
    }
  }
}

#if DCD_X86_DISPATCH
// dcd::softmax_exp on a vector, lane by lane with the same results, in
// fewer dependent steps: the raise to -88 is one max (-88 > x ? -88 : x
// keeps NaN, as the bit masks do), n's floor at -126 another. The exp is
// a long chain of dependent steps, and how many of them the core keeps in
// flight limits how fast the row kernels run (docs/ASSUMPTIONS.md,
// "SoftDisplacement on the CPU").
template <int VB>
DCD_INLINE typename dcd::VecOf<float, VB>::type softmax_exp_vec(
    typename dcd::VecOf<float, VB>::type x) {
  typedef typename dcd::VecOf<float, VB>::type V;
  typedef typename dcd::VecOf<int, VB>::type VI;
  x = -88.0f > x ? -88.0f : x;
  VI n = __builtin_convertvector(x * 1.44269504088896341f - 0.5f, VI);
  const VI underflow = n < -126;  // -1 (all bits) where true
  n = n < -126 ? -126 : n;
  const V fn = __builtin_convertvector(n, V);
  const V r = (x - fn * 0.693359375f) + fn * 2.12194440e-4f;
  V p = r * 1.9875691500e-4f + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const V y = p * r * r + r + 1.0f;
  const VI bits = ((n + 127) << 23) & ~underflow;
  return y * reinterpret_cast<V>(bits);
}

template <typename V>
DCD_INLINE V load_vec(const float* p) {
  V v;
  __builtin_memcpy(&v, p, sizeof(V));
  return v;
}

template <typename V>
DCD_INLINE void store_vec(float* p, V v) {
  __builtin_memcpy(p, &v, sizeof(V));
}

// Window step k of the B vectors of pixels from j: their unnormalised
// weights exp((c_k - max) / tau). While the row's second pass runs, the
// same pixels of the next row (next_row floats on; 0: none) are asked into
// the caches, every 64-byte line of them: the first pass over them then
// finds them there (with one request per block, AVX-512's two-line blocks
// waited on their second line: a third of the forward's time).
template <int VB, int B>
DCD_INLINE void block_weights(const float* c, int hw, int j, int k,
    const typename dcd::VecOf<float, VB>::type (&m)[B], float inv_tau,
    int next_row, typename dcd::VecOf<float, VB>::type (&e)[B]) {
  typedef typename dcd::VecOf<float, VB>::type V;
  const int L = VB / sizeof(float);
  const float* ck = c + k * hw + j;
  if (next_row) {
    for (int line = 0; line < (B * VB + 63) / 64; ++line) {
      __builtin_prefetch(ck + next_row + line * (64 / sizeof(float)));
    }
  }
  for (int b = 0; b < B; ++b) {
    e[b] = softmax_exp_vec<VB>((load_vec<V>(ck + b * L) - m[b]) * inv_tau);
  }
}

// softmax_row_moments for the B vectors of pixels from j: the max and the
// sums stay in registers over the whole window.
template <int VB, int B>
DCD_INLINE void softmax_block_moments(const float* c, int D, int hw, int j,
    const float* dys, const float* dxs, float inv_tau, int next_row,
    float* max_c, float* z, float* sy, float* sx) {
  typedef typename dcd::VecOf<float, VB>::type V;
  const int L = VB / sizeof(float);
  V m[B], zz[B], yy[B], xx[B];
  for (int b = 0; b < B; ++b) { m[b] = load_vec<V>(c + j + b * L); }
  for (int k = 1; k < D; ++k) {
    const float* ck = c + k * hw + j;
    for (int b = 0; b < B; ++b) {
      const V x = load_vec<V>(ck + b * L);
      m[b] = x > m[b] ? x : m[b];
    }
  }
  for (int b = 0; b < B; ++b) { zz[b] = yy[b] = xx[b] = V{}; }
  for (int k = 0; k < D; ++k) {
    V e[B];
    block_weights<VB, B>(c, hw, j, k, m, inv_tau, next_row, e);
    for (int b = 0; b < B; ++b) {
      zz[b] += e[b];
      yy[b] += e[b] * dys[k];
      xx[b] += e[b] * dxs[k];
    }
  }
  for (int b = 0; b < B; ++b) {
    store_vec(max_c + j + b * L, m[b]);
    store_vec(z + j + b * L, zz[b]);
    store_vec(sy + j + b * L, yy[b]);
    store_vec(sx + j + b * L, xx[b]);
  }
}

// soft_displacement_row_grad for the B vectors of pixels from j.
template <int VB, int B>
DCD_INLINE void softmax_block_grad(const float* c, int D, int hw, int j,
    const float* dys, const float* dxs, float inv_tau, int next_row,
    const float* max_c, const float* inv_z, const float* v_y,
    const float* v_x, const float* g_y, const float* g_x, float* dc,
    bool stream) {
  typedef typename dcd::VecOf<float, VB>::type V;
  const int L = VB / sizeof(float);
  V m[B], iz[B], vy[B], vx[B], gy[B], gx[B];
  for (int b = 0; b < B; ++b) {
    m[b] = load_vec<V>(max_c + j + b * L);
    iz[b] = load_vec<V>(inv_z + j + b * L);
    vy[b] = load_vec<V>(v_y + j + b * L);
    vx[b] = load_vec<V>(v_x + j + b * L);
    gy[b] = load_vec<V>(g_y + j + b * L);
    gx[b] = load_vec<V>(g_x + j + b * L);
  }
  for (int k = 0; k < D; ++k) {
    V e[B];
    block_weights<VB, B>(c, hw, j, k, m, inv_tau, next_row, e);
    float* out = dc + k * hw + j;
    // Whole lines stream (a block of one line or more, from a line's start).
    const bool nt = B * VB % 64 == 0 && dcd::stream_line(stream, out);
    for (int b = 0; b < B; ++b) {
      const V p = e[b] * iz[b];
      dcd::VecStore<VB>::put(out + b * L, p * inv_tau *
          (gy[b] * (dys[k] - vy[b]) + gx[b] * (dxs[k] - vx[b])), nt);
    }
  }
}

// A row: blocks of B vectors, then single vectors, then narrower ones
// (NarrowVec), then the smallest vector again for the last 1-3 pixels; the
// plain loop only for rows narrower than that vector.
template <int VB, int B>
DCD_INLINE void softmax_row_moments_vec(const float* c, int D, int hw,
    int width, const float* dys, const float* dxs, float inv_tau, int next_row,
    float* max_c, float* z, float* sy, float* sx) {
  const int L = VB / sizeof(float);
  int j = 0;
  for (; j + B * L <= width; j += B * L) {
    softmax_block_moments<VB, B>(c, D, hw, j, dys, dxs, inv_tau, next_row,
                                 max_c, z, sy, sx);
  }
  for (; j + L <= width; j += L) {
    softmax_block_moments<VB, 1>(c, D, hw, j, dys, dxs, inv_tau, next_row,
                                 max_c, z, sy, sx);
  }
  const int kH = dcd::NarrowVec<VB>::kHalf, kQ = dcd::NarrowVec<VB>::kQuarter;
  const int LH = kH / sizeof(float), LQ = kQ / sizeof(float);
  if (kH < VB && j + LH <= width) {
    softmax_block_moments<kH, 1>(c, D, hw, j, dys, dxs, inv_tau, next_row,
                                 max_c, z, sy, sx);
    j += LH;
  }
  if (kQ < kH && j + LQ <= width) {
    softmax_block_moments<kQ, 1>(c, D, hw, j, dys, dxs, inv_tau, next_row,
                                 max_c, z, sy, sx);
    j += LQ;
  }
  // The last 1-3 pixels: the smallest vector once more, ending at the row's
  // last pixel (it writes up to 3 pixels again, the same values).
  if (j < width && width >= LQ) {
    softmax_block_moments<kQ, 1>(c, D, hw, width - LQ, dys, dxs, inv_tau,
                                 next_row, max_c, z, sy, sx);
    j = width;
  }
  softmax_row_moments(c, D, hw, j, width, dys, dxs, inv_tau, max_c, z, sy,
                      sx);
}

template <int VB, int B>
DCD_INLINE void soft_displacement_row_grad_vec(const float* c, int D, int hw,
    int width, const float* dys, const float* dxs, float inv_tau, int next_row,
    const float* max_c, const float* inv_z, const float* v_y,
    const float* v_x, const float* g_y, const float* g_x, float* dc,
    bool stream) {
  const int L = VB / sizeof(float);
  int j = 0;
  for (; j + B * L <= width; j += B * L) {
    softmax_block_grad<VB, B>(c, D, hw, j, dys, dxs, inv_tau, next_row,
                              max_c, inv_z, v_y, v_x, g_y, g_x, dc, stream);
  }
  for (; j + L <= width; j += L) {
    softmax_block_grad<VB, 1>(c, D, hw, j, dys, dxs, inv_tau, next_row,
                              max_c, inv_z, v_y, v_x, g_y, g_x, dc, stream);
  }
  const int kH = dcd::NarrowVec<VB>::kHalf, kQ = dcd::NarrowVec<VB>::kQuarter;
  const int LH = kH / sizeof(float), LQ = kQ / sizeof(float);
  if (kH < VB && j + LH <= width) {
    softmax_block_grad<kH, 1>(c, D, hw, j, dys, dxs, inv_tau, next_row,
                              max_c, inv_z, v_y, v_x, g_y, g_x, dc, stream);
    j += LH;
  }
  if (kQ < kH && j + LQ <= width) {
    softmax_block_grad<kQ, 1>(c, D, hw, j, dys, dxs, inv_tau, next_row,
                              max_c, inv_z, v_y, v_x, g_y, g_x, dc, stream);
    j += LQ;
  }
  if (j < width && width >= LQ) {  // the last 1-3 pixels, as above
    softmax_block_grad<kQ, 1>(c, D, hw, width - LQ, dys, dxs, inv_tau,
        next_row, max_c, inv_z, v_y, v_x, g_y, g_x, dc, stream);
    j = width;
  }
  soft_displacement_row_grad(c, D, hw, j, width, dys, dxs, inv_tau, max_c,
                             inv_z, v_y, v_x, g_y, g_x, dc);
}

#define DCD_SOFTMAX_ROWS(SUFFIX, ATTR, VB, B)                                 \
ATTR void softmax_row_moments_##SUFFIX(const float* c, int D, int hw,         \
    int width, const float* dys, const float* dxs, float inv_tau,             \
    int next_row, float* max_c, float* z, float* sy, float* sx) {             \
  softmax_row_moments_vec<VB, B>(c, D, hw, width, dys, dxs, inv_tau,          \
                                 next_row, max_c, z, sy, sx);                 \
}                                                                             \
ATTR void soft_displacement_row_grad_##SUFFIX(const float* c, int D, int hw,  \
    int width, const float* dys, const float* dxs, float inv_tau,             \
    int next_row, const float* max_c, const float* inv_z, const float* v_y,   \
    const float* v_x, const float* g_y, const float* g_x, float* dc,          \
    bool stream) {                                                            \
  soft_displacement_row_grad_vec<VB, B>(c, D, hw, width, dys, dxs, inv_tau,   \
      next_row, max_c, inv_z, v_y, v_x, g_y, g_x, dc, stream);                \
}

// Two vectors of pixels per block: one left the core idle between the
// steps of each exp, four ran out of registers (docs/ASSUMPTIONS.md).
DCD_SOFTMAX_ROWS(base, , 16, 2)
DCD_SOFTMAX_ROWS(avx2, __attribute__((target("avx2,fma"))), 32, 2)
DCD_SOFTMAX_ROWS(avx512, __attribute__((target("avx512f,avx2,fma"))), 64, 2)
#undef DCD_SOFTMAX_ROWS
#endif  // DCD_X86_DISPATCH

// One row, by the CPU's variant (`level`, dcd::CpuIsaLevel) for float.
void moments_row(int level, const float* c, int D, int hw, int width,
    const float* dys, const float* dxs, float inv_tau, int next_row,
    float* max_c, float* z, float* sy, float* sx) {
#if DCD_X86_DISPATCH
  switch (level) {
    case 2: softmax_row_moments_avx512(c, D, hw, width, dys, dxs, inv_tau,
                next_row, max_c, z, sy, sx); return;
    case 1: softmax_row_moments_avx2(c, D, hw, width, dys, dxs, inv_tau,
                next_row, max_c, z, sy, sx); return;
    default: softmax_row_moments_base(c, D, hw, width, dys, dxs, inv_tau,
                 next_row, max_c, z, sy, sx); return;
  }
#else
  softmax_row_moments(c, D, hw, 0, width, dys, dxs, inv_tau, max_c, z, sy,
                      sx);
#endif
}

void moments_row(int, const double* c, int D, int hw, int width,
    const float* dys, const float* dxs, double inv_tau, int, double* max_c,
    double* z, double* sy, double* sx) {
  softmax_row_moments(c, D, hw, 0, width, dys, dxs, inv_tau, max_c, z, sy,
                      sx);
}

// stream: write dc's whole lines with streaming stores (dcd::VecStore).
void grad_row(int level, const float* c, int D, int hw, int width,
    const float* dys, const float* dxs, float inv_tau, int next_row,
    const float* max_c, const float* inv_z, const float* v_y,
    const float* v_x, const float* g_y, const float* g_x, float* dc,
    bool stream) {
#if DCD_X86_DISPATCH
  switch (level) {
    case 2: soft_displacement_row_grad_avx512(c, D, hw, width, dys, dxs,
                inv_tau, next_row, max_c, inv_z, v_y, v_x, g_y, g_x, dc,
                stream);
            return;
    case 1: soft_displacement_row_grad_avx2(c, D, hw, width, dys, dxs,
                inv_tau, next_row, max_c, inv_z, v_y, v_x, g_y, g_x, dc,
                stream);
            return;
    default: soft_displacement_row_grad_base(c, D, hw, width, dys, dxs,
                 inv_tau, next_row, max_c, inv_z, v_y, v_x, g_y, g_x, dc,
                 stream);
             return;
  }
#else
  soft_displacement_row_grad(c, D, hw, 0, width, dys, dxs, inv_tau, max_c,
                             inv_z, v_y, v_x, g_y, g_x, dc);
#endif
}

void grad_row(int, const double* c, int D, int hw, int width,
    const float* dys, const float* dxs, double inv_tau, int,
    const double* max_c, const double* inv_z, const double* v_y,
    const double* v_x, const double* g_y, const double* g_x, double* dc,
    bool) {
  soft_displacement_row_grad(c, D, hw, 0, width, dys, dxs, inv_tau, max_c,
                             inv_z, v_y, v_x, g_y, g_x, dc);
}

}  // namespace

template <typename Dtype>
void SoftDisplacementLayer<Dtype>::Forward_cpu(
    const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top) {
  const int num = bottom[0]->num();
  const int D = bottom[0]->channels();
  const int height = bottom[0]->height();
  const int width = bottom[0]->width();
  const int hw = height * width;
  const int dh = max_displacement_h_, dw = max_displacement_w_;
  const int s = dilation_;
  const Dtype inv_tau = dcd::inverse_temperature(temperature());
  const bool wta = method_ == SoftDisplacementParameter_Method_WTA;
  const Dtype* cost = bottom[0]->cpu_data();
  Dtype* top_data = top[0]->mutable_cpu_data();
  Dtype* moments = moments_.mutable_cpu_data();
  const WindowSteps steps(dh, dw, s);
  const int level = dcd::CpuIsaLevel();
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < num; ++n) {
    for (int i = 0; i < height; ++i) {
      const Dtype* c = cost + n * D * hw + i * width;
      Dtype* max_c = moments + (n * height + i) * 4 * width;
      Dtype* z = max_c + width;
      Dtype* sy = z + width;
      Dtype* sx = sy + width;
      Dtype* v_y = top_data + n * 2 * hw + i * width;
      Dtype* v_x = v_y + hw;
      if (wta) {
        for (int j = 0; j < width; ++j) {
          const int k = dcd::argmax_first(c + j, D, hw);
          v_y[j] = Dtype(dcd::window_di(k, dh, dw) * s);
          v_x[j] = Dtype(dcd::window_dj(k, dw) * s);
        }
        continue;
      }
      moments_row(level, c, D, hw, width, steps.dy.data(), steps.dx.data(),
                  inv_tau, i + 1 < height ? width : 0, max_c, z, sy, sx);
      for (int j = 0; j < width; ++j) {
        v_y[j] = sy[j] / z[j];
        v_x[j] = sx[j] / z[j];
      }
    }
  }
}

template <typename Dtype>
void SoftDisplacementLayer<Dtype>::Backward_cpu(
    const vector<Blob<Dtype>*>& top, const vector<bool>& propagate_down,
    const vector<Blob<Dtype>*>& bottom) {
  const bool tau_grad = learn_temperature_ && this->param_propagate_down(0);
  if (!propagate_down[0] && !tau_grad) { return; }
  if (method_ == SoftDisplacementParameter_Method_WTA) {
    // WTA passes no gradient (and has no temperature to learn).
    caffe_set(bottom[0]->count(), Dtype(0), bottom[0]->mutable_cpu_diff());
    return;
  }
  // dL/dc goes to the bottom, or to a buffer when only tau needs it.
  if (!propagate_down[0]) { cost_diff_buffer_.ReshapeLike(*bottom[0]); }
  Dtype* bottom_diff = propagate_down[0] ? bottom[0]->mutable_cpu_diff()
                                         : cost_diff_buffer_.mutable_cpu_diff();
  const int num = bottom[0]->num();
  const int D = bottom[0]->channels();
  const int height = bottom[0]->height();
  const int width = bottom[0]->width();
  const int hw = height * width;
  const int dh = max_displacement_h_, dw = max_displacement_w_;
  const int s = dilation_;
  const Dtype inv_tau = dcd::inverse_temperature(temperature());
  const Dtype* cost = bottom[0]->cpu_data();
  const Dtype* top_diff = top[0]->cpu_diff();
  const Dtype* moments = moments_.cpu_data();
  const WindowSteps steps(dh, dw, s);
  const int level = dcd::CpuIsaLevel();
  // A gradient of 4 MiB or more (as large as the cost volume) is written
  // with streaming stores, as CostVolume writes the cost volume
  // (dcd::VecStore): through the caches, each of its lines was first read
  // from memory only to be overwritten.
  const bool stream = dcd::streams_output(bottom[0]->count() * sizeof(Dtype));
#pragma omp parallel
  {
  vector<Dtype> buf(3 * width);  // 1 / z, v_y, v_x of a row
  Dtype* inv_z = &buf[0];
  Dtype* v_y = inv_z + width;
  Dtype* v_x = v_y + width;
#pragma omp for collapse(2) schedule(static) nowait
  for (int n = 0; n < num; ++n) {
    for (int i = 0; i < height; ++i) {
      const Dtype* c = cost + n * D * hw + i * width;
      const Dtype* max_c = moments + (n * height + i) * 4 * width;
      const Dtype* z = max_c + width;
      const Dtype* sy = z + width;
      const Dtype* sx = sy + width;
      const Dtype* g_y = top_diff + n * 2 * hw + i * width;
      const Dtype* g_x = g_y + hw;
      Dtype* dc = bottom_diff + n * D * hw + i * width;
      for (int j = 0; j < width; ++j) {
        inv_z[j] = Dtype(1) / z[j];
        v_y[j] = sy[j] * inv_z[j];
        v_x[j] = sx[j] * inv_z[j];
      }
      grad_row(level, c, D, hw, width, steps.dy.data(), steps.dx.data(),
               inv_tau, i + 1 < height ? width : 0, max_c, inv_z, v_y, v_x,
               g_y, g_x, dc, stream);
    }
  }
  if (stream) { dcd::stream_fence(); }
  }  // omp parallel
  if (tau_grad) {
    AccumulateTemperatureGradient(*bottom[0], bottom_diff, false);
  }
}

#ifdef CPU_ONLY
STUB_GPU(SoftDisplacementLayer);
#endif

INSTANTIATE_CLASS(SoftDisplacementLayer);
REGISTER_LAYER_CLASS(SoftDisplacement);

}  // namespace caffe
