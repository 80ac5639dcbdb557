#include <string>
#include <vector>

#include "caffe/layers/soft_displacement_layer.hpp"
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
// contiguous memory and vectorise (the CUDA kernel does the same arithmetic
// per pixel through dcd::soft_displacement). Rows split over threads.
namespace {

// DCD_ROW_KERNEL (dcd_kernels.hpp): also compiled for AVX2 and AVX-512.
// Per-row running max, partition sum and first moments of the softmax.
template <typename Dtype>
DCD_ROW_KERNEL void softmax_row_moments(const Dtype* c, int D, int hw,
    int width, int dh, int dw, int s, Dtype inv_tau, Dtype* max_c, Dtype* z,
    Dtype* sy, Dtype* sx) {
  for (int j = 0; j < width; ++j) { max_c[j] = c[j]; }
  for (int k = 1; k < D; ++k) {
    const Dtype* ck = c + k * hw;
    for (int j = 0; j < width; ++j) {
      max_c[j] = ck[j] > max_c[j] ? ck[j] : max_c[j];
    }
  }
  for (int j = 0; j < width; ++j) { z[j] = sy[j] = sx[j] = 0; }
  for (int k = 0; k < D; ++k) {
    const Dtype* ck = c + k * hw;
    const Dtype dy = Dtype(dcd::window_di(k, dh, dw) * s);
    const Dtype dx = Dtype(dcd::window_dj(k, dw) * s);
    for (int j = 0; j < width; ++j) {
      const Dtype e = dcd::softmax_weight(ck[j], max_c[j], inv_tau);
      z[j] += e;
      sy[j] += e * dy;
      sx[j] += e * dx;
    }
  }
}

// dL/dc_k for one row in one pass over the cost volume, given the forward's
// max, 1 / z and displacement (v_y, v_x): each weight is computed again as
// the forward computed it.
template <typename Dtype>
DCD_ROW_KERNEL void soft_displacement_row_grad(const Dtype* c, int D, int hw,
    int width, int dh, int dw, int s, Dtype inv_tau, const Dtype* max_c,
    const Dtype* inv_z, const Dtype* v_y, const Dtype* v_x, const Dtype* g_y,
    const Dtype* g_x, Dtype* dc) {
  for (int k = 0; k < D; ++k) {
    const Dtype* ck = c + k * hw;
    Dtype* dck = dc + k * hw;
    const Dtype dy = Dtype(dcd::window_di(k, dh, dw) * s);
    const Dtype dx = Dtype(dcd::window_dj(k, dw) * s);
    for (int j = 0; j < width; ++j) {
      const Dtype p_k = dcd::softmax_weight(ck[j], max_c[j], inv_tau) *
          inv_z[j];
      dck[j] = dcd::soft_displacement_grad(p_k, inv_tau, g_y[j], g_x[j], dy,
                                           dx, v_y[j], v_x[j]);
    }
  }
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
      softmax_row_moments(c, D, hw, width, dh, dw, s, inv_tau, max_c, z, sy,
                          sx);
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
#pragma omp parallel
  {
  vector<Dtype> buf(3 * width);  // 1 / z, v_y, v_x of a row
  Dtype* inv_z = &buf[0];
  Dtype* v_y = inv_z + width;
  Dtype* v_x = v_y + width;
#pragma omp for collapse(2) schedule(static)
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
      soft_displacement_row_grad(c, D, hw, width, dh, dw, s, inv_tau, max_c,
                                 inv_z, v_y, v_x, g_y, g_x, dc);
    }
  }
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
