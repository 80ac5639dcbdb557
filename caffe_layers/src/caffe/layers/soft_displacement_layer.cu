#include <vector>

#include "caffe/layers/soft_displacement_layer.hpp"
#include "caffe/util/dcd_kernels.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

// One thread per pixel (n, p).
template <typename Dtype>
__global__ void SoftDisplacementForward(const int nthreads, const Dtype* cost,
    const int hw, const int dh, const int dw, const int s,
    const Dtype inv_tau, const bool wta, Dtype* top) {
  CUDA_KERNEL_LOOP(index, nthreads) {
    const int n = index / hw;
    const int p = index % hw;
    const int D = dcd::window_size(dh, dw);
    const Dtype* c = cost + n * D * hw + p;
    Dtype* v = top + n * 2 * hw + p;
    if (wta) {
      const int k = dcd::argmax_first(c, D, hw);
      v[0] = Dtype(dcd::window_di(k, dh, dw) * s);
      v[hw] = Dtype(dcd::window_dj(k, dw) * s);
    } else {
      Dtype v_y, v_x, max_c, sum;
      dcd::soft_displacement(c, hw, dh, dw, s, inv_tau, &v_y, &v_x, &max_c,
                             &sum);
      v[0] = v_y;
      v[hw] = v_x;
    }
  }
}

template <typename Dtype>
void SoftDisplacementLayer<Dtype>::Forward_gpu(
    const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top) {
  const int hw = bottom[0]->height() * bottom[0]->width();
  const int npix = bottom[0]->num() * hw;
  // NOLINT_NEXT_LINE(whitespace/operators)
  SoftDisplacementForward<Dtype><<<CAFFE_GET_BLOCKS(npix),
      CAFFE_CUDA_NUM_THREADS>>>(
      npix, bottom[0]->gpu_data(), hw, max_displacement_h_,
      max_displacement_w_, dilation_, Dtype(1) / temperature(),
      method_ == SoftDisplacementParameter_Method_WTA,
      top[0]->mutable_gpu_data());
  CUDA_POST_KERNEL_CHECK;
}

// One thread per pixel (n, p): writes dL/dc_k for all k of the pixel.
template <typename Dtype>
__global__ void SoftDisplacementBackward(const int nthreads, const Dtype* cost,
    const Dtype* top_diff, const int hw, const int dh, const int dw,
    const int s, const Dtype inv_tau, Dtype* cost_diff) {
  CUDA_KERNEL_LOOP(index, nthreads) {
    const int n = index / hw;
    const int p = index % hw;
    const int D = dcd::window_size(dh, dw);
    const Dtype* c = cost + n * D * hw + p;
    const Dtype* g = top_diff + n * 2 * hw + p;
    Dtype* dc = cost_diff + n * D * hw + p;
    Dtype v_y, v_x, max_c, sum;
    dcd::soft_displacement(c, hw, dh, dw, s, inv_tau, &v_y, &v_x, &max_c,
                           &sum);
    for (int k = 0; k < D; ++k) {
      const Dtype p_k = dcd::softmax_weight(c[k * hw], max_c, inv_tau) / sum;
      dc[k * hw] = dcd::soft_displacement_grad(p_k, inv_tau, g[0], g[hw],
          Dtype(dcd::window_di(k, dh, dw) * s),
          Dtype(dcd::window_dj(k, dw) * s), v_y, v_x);
    }
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
  // NOLINT_NEXT_LINE(whitespace/operators)
  SoftDisplacementBackward<Dtype><<<CAFFE_GET_BLOCKS(npix),
      CAFFE_CUDA_NUM_THREADS>>>(
      npix, bottom[0]->gpu_data(), top[0]->gpu_diff(), hw,
      max_displacement_h_, max_displacement_w_, dilation_,
      Dtype(1) / temperature(), bottom_diff);
  CUDA_POST_KERNEL_CHECK;
  if (tau_grad) {
    AccumulateTemperatureGradient(*bottom[0], bottom_diff, true);
  }
}

INSTANTIATE_LAYER_GPU_FUNCS(SoftDisplacementLayer);

}  // namespace caffe
