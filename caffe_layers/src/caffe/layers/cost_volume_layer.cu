#include <vector>

#include "caffe/layers/cost_volume_layer.hpp"
#include "caffe/util/dcd_kernels.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

// The kernel bodies are in dcd_kernels.hpp (tested on the CPU by
// test_dcd_kernels.cpp); each kernel is a grid-stride loop over them.

template <typename Dtype>
__global__ void CostVolumeNormalize(const int nthreads, const Dtype* f,
    const int channels, const int height, const int width, const Dtype eps,
    Dtype* inv_norm, Dtype* out, const int pad_h, const int pad_w,
    const int out_w, const int out_plane) {
  CUDA_KERNEL_LOOP(index, nthreads) {
    dcd::cost_volume_normalize_pixel(index, f, channels, height, width, eps,
        inv_norm, out, pad_h, pad_w, out_w, out_plane);
  }
}

template <typename Dtype>
__global__ void CostVolumeForward(const int nthreads, const Dtype* a_hat,
    const Dtype* b_hat_pad, const int channels, const int height,
    const int width, const int dh, const int dw, const int s, Dtype* top) {
  CUDA_KERNEL_LOOP(index, nthreads) {
    dcd::cost_volume_forward_block(index, a_hat, b_hat_pad, channels, height,
                                   width, dh, dw, s, top);
  }
}

template <typename Dtype>
void CostVolumeLayer<Dtype>::Forward_gpu(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  const int num = bottom[0]->num();
  const int channels = bottom[0]->channels();
  const int height = bottom[0]->height();
  const int width = bottom[0]->width();
  const int hw = height * width;
  const int npix = num * hw;
  if (top[0]->count() == 0) { return; }
  const int pw = width + 2 * pad_w_;
  const int pplane = (height + 2 * pad_h_) * pw;
  Dtype* b_hat = b_hat_pad_.mutable_gpu_data();
  // The padding must be zero; the interior is overwritten below.
  caffe_gpu_set(b_hat_pad_.count(), Dtype(0), b_hat);
  // NOLINT_NEXT_LINE(whitespace/operators)
  CostVolumeNormalize<Dtype><<<CAFFE_GET_BLOCKS(npix),
      CAFFE_CUDA_NUM_THREADS>>>(
      npix, bottom[0]->gpu_data(), channels, height, width, eps_,
      inv_norm_a_.mutable_gpu_data(), a_hat_.mutable_gpu_data(), 0, 0, width,
      hw);
  CUDA_POST_KERNEL_CHECK;
  // NOLINT_NEXT_LINE(whitespace/operators)
  CostVolumeNormalize<Dtype><<<CAFFE_GET_BLOCKS(npix),
      CAFFE_CUDA_NUM_THREADS>>>(
      npix, bottom[1]->gpu_data(), channels, height, width, eps_,
      inv_norm_b_.mutable_gpu_data(), b_hat, pad_h_, pad_w_, pw, pplane);
  CUDA_POST_KERNEL_CHECK;
  const int count = dcd::cost_volume_forward_count(num, height, width,
      max_displacement_h_, max_displacement_w_);
  // NOLINT_NEXT_LINE(whitespace/operators)
  CostVolumeForward<Dtype><<<CAFFE_GET_BLOCKS(count), CAFFE_CUDA_NUM_THREADS>>>(
      count, a_hat_.gpu_data(), b_hat, channels, height, width,
      max_displacement_h_, max_displacement_w_, dilation_,
      top[0]->mutable_gpu_data());
  CUDA_POST_KERNEL_CHECK;
}

template <typename Dtype>
__global__ void CostVolumeBackwardA(const int nthreads, const Dtype* top_diff,
    const Dtype* b_hat_pad, const int channels, const int height,
    const int width, const int dh, const int dw, const int s, Dtype* a_diff) {
  CUDA_KERNEL_LOOP(index, nthreads) {
    dcd::cost_volume_backward_a_block(index, top_diff, b_hat_pad, channels,
                                      height, width, dh, dw, s, a_diff);
  }
}

template <typename Dtype>
__global__ void CostVolumeBackwardB(const int nthreads, const Dtype* top_diff,
    const Dtype* a_hat, const int channels, const int height,
    const int width, const int dh, const int dw, const int s, Dtype* b_diff) {
  CUDA_KERNEL_LOOP(index, nthreads) {
    dcd::cost_volume_backward_b_block(index, top_diff, a_hat, channels,
                                      height, width, dh, dw, s, b_diff);
  }
}

template <typename Dtype>
__global__ void CostVolumeNormalizeBackward(const int nthreads, const Dtype* f,
    const Dtype* inv_norm, const int channels, const int hw, Dtype* diff) {
  CUDA_KERNEL_LOOP(index, nthreads) {
    dcd::cost_volume_normalize_backward_pixel(index, f, inv_norm, channels, hw,
                                              diff);
  }
}

// One input's gradient: the correlation's part (`correlation`, from the
// other input's normalised features), then through the normalisation.
template <typename Dtype>
void CostVolumeInputBackward(
    void (*correlation)(int, const Dtype*, const Dtype*, int, int, int, int,
                        int, int, Dtype*),
    const int count, const Dtype* top_diff, const Dtype* other_hat,
    const Blob<Dtype>& input, const Blob<Dtype>& inv_norm, const int dh,
    const int dw, const int s, Dtype* diff) {
  const int channels = input.channels();
  const int height = input.height();
  const int width = input.width();
  const int npix = input.num() * height * width;
  // NOLINT_NEXT_LINE(whitespace/operators)
  correlation<<<CAFFE_GET_BLOCKS(count), CAFFE_CUDA_NUM_THREADS>>>(
      count, top_diff, other_hat, channels, height, width, dh, dw, s, diff);
  CUDA_POST_KERNEL_CHECK;
  // NOLINT_NEXT_LINE(whitespace/operators)
  CostVolumeNormalizeBackward<Dtype><<<CAFFE_GET_BLOCKS(npix),
      CAFFE_CUDA_NUM_THREADS>>>(
      npix, input.gpu_data(), inv_norm.gpu_data(), channels, height * width,
      diff);
  CUDA_POST_KERNEL_CHECK;
}

template <typename Dtype>
void CostVolumeLayer<Dtype>::Backward_gpu(const vector<Blob<Dtype>*>& top,
    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {
  if (bottom[0]->count() == 0) { return; }
  const int count = dcd::cost_volume_backward_count(bottom[0]->num(),
      bottom[0]->channels(), bottom[0]->height(), bottom[0]->width());
  const Dtype* top_diff = top[0]->gpu_diff();
  if (propagate_down[0]) {
    CostVolumeInputBackward<Dtype>(CostVolumeBackwardA<Dtype>, count, top_diff,
        b_hat_pad_.gpu_data(), *bottom[0], inv_norm_a_, max_displacement_h_,
        max_displacement_w_, dilation_, bottom[0]->mutable_gpu_diff());
  }
  if (propagate_down[1]) {
    CostVolumeInputBackward<Dtype>(CostVolumeBackwardB<Dtype>, count, top_diff,
        a_hat_.gpu_data(), *bottom[1], inv_norm_b_, max_displacement_h_,
        max_displacement_w_, dilation_, bottom[1]->mutable_gpu_diff());
  }
}

INSTANTIATE_LAYER_GPU_FUNCS(CostVolumeLayer);

}  // namespace caffe
