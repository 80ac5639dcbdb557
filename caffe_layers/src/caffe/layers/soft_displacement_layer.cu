#include <vector>

#include "caffe/layers/soft_displacement_layer.hpp"
#include "caffe/util/dcd_kernels.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

// The kernel bodies are in dcd_kernels.hpp (tested on the CPU by
// test_dcd_kernels.cpp); each kernel is a grid-stride loop over them.

template <typename Dtype>
__global__ void SoftDisplacementForward(const int nthreads, const Dtype* cost,
    const int hw, const int dh, const int dw, const int s,
    const Dtype inv_tau, const bool wta, Dtype* top) {
  CUDA_KERNEL_LOOP(index, nthreads) {
    dcd::soft_displacement_forward_pixel(index, cost, hw, dh, dw, s, inv_tau,
                                         wta, top);
  }
}

template <typename Dtype>
void SoftDisplacementLayer<Dtype>::Forward_gpu(
    const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top) {
  const int hw = bottom[0]->height() * bottom[0]->width();
  const int npix = bottom[0]->num() * hw;
  if (npix == 0) { return; }
  // NOLINT_NEXT_LINE(whitespace/operators)
  SoftDisplacementForward<Dtype><<<CAFFE_GET_BLOCKS(npix),
      CAFFE_CUDA_NUM_THREADS>>>(
      npix, bottom[0]->gpu_data(), hw, max_displacement_h_,
      max_displacement_w_, dilation_, dcd::inverse_temperature(temperature()),
      method_ == SoftDisplacementParameter_Method_WTA,
      top[0]->mutable_gpu_data());
  CUDA_POST_KERNEL_CHECK;
}

template <typename Dtype>
__global__ void SoftDisplacementBackward(const int nthreads, const Dtype* cost,
    const Dtype* top_diff, const int hw, const int dh, const int dw,
    const int s, const Dtype inv_tau, Dtype* cost_diff) {
  CUDA_KERNEL_LOOP(index, nthreads) {
    dcd::soft_displacement_backward_pixel(index, cost, top_diff, hw, dh, dw,
                                          s, inv_tau, cost_diff);
  }
}

template <typename Dtype>
void SoftDisplacementLayer<Dtype>::Backward_gpu(
    const vector<Blob<Dtype>*>& top, const vector<bool>& propagate_down,
    const vector<Blob<Dtype>*>& bottom) {
  const bool tau_grad = learn_temperature_ && this->param_propagate_down(0);
  if (!propagate_down[0] && !tau_grad) { return; }
  if (method_ == SoftDisplacementParameter_Method_WTA) {
    // WTA passes no gradient (and has no temperature to learn).
    caffe_gpu_set(bottom[0]->count(), Dtype(0), bottom[0]->mutable_gpu_diff());
    return;
  }
  // dL/dc goes to the bottom, or to a buffer when only tau needs it.
  if (!propagate_down[0]) { cost_diff_buffer_.ReshapeLike(*bottom[0]); }
  Dtype* bottom_diff = propagate_down[0] ? bottom[0]->mutable_gpu_diff()
                                         : cost_diff_buffer_.mutable_gpu_diff();
  const int hw = bottom[0]->height() * bottom[0]->width();
  const int npix = bottom[0]->num() * hw;
  if (npix == 0) { return; }
  // NOLINT_NEXT_LINE(whitespace/operators)
  SoftDisplacementBackward<Dtype><<<CAFFE_GET_BLOCKS(npix),
      CAFFE_CUDA_NUM_THREADS>>>(
      npix, bottom[0]->gpu_data(), top[0]->gpu_diff(), hw,
      max_displacement_h_, max_displacement_w_, dilation_,
      dcd::inverse_temperature(temperature()), bottom_diff);
  CUDA_POST_KERNEL_CHECK;
  if (tau_grad) {
    AccumulateTemperatureGradient(*bottom[0], bottom_diff, true);
  }
}

INSTANTIATE_LAYER_GPU_FUNCS(SoftDisplacementLayer);

}  // namespace caffe
