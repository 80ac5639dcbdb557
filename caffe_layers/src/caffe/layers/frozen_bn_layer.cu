#include <vector>

#include "caffe/layers/frozen_bn_layer.hpp"
#include "caffe/util/dcd_kernels.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

// The kernel bodies are in dcd_kernels.hpp (run on the CPU by
// test_frozen_bn_layer.cpp). The per-channel constants are recomputed per
// element from the blobs on the device: a few cached loads and a sqrt,
// against a host round trip per layer.

template <typename Dtype>
__global__ void FrozenBNForward(const int nthreads, const Dtype* x,
    const int channels, const int spatial, const Dtype* mean,
    const Dtype* var, const Dtype* factor, const Dtype* gamma,
    const Dtype* beta, const Dtype eps, Dtype* y) {
  CUDA_KERNEL_LOOP(index, nthreads) {
    dcd::frozen_bn_forward_elem(index, x, channels, spatial, mean, var,
                                factor, gamma, beta, eps, y);
  }
}

template <typename Dtype>
void FrozenBNLayer<Dtype>::Forward_gpu(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  const int count = bottom[0]->count();
  if (count == 0) { return; }
  if (bottom[0] == top[0] && affine_learned()) {
    bottom_copy_.ReshapeLike(*bottom[0]);
    caffe_copy(count, bottom[0]->gpu_data(), bottom_copy_.mutable_gpu_data());
  }
  // NOLINT_NEXT_LINE(whitespace/operators)
  FrozenBNForward<Dtype><<<CAFFE_GET_BLOCKS(count), CAFFE_CUDA_NUM_THREADS>>>(
      count, bottom[0]->gpu_data(), channels_, bottom[0]->count(2),
      this->blobs_[0]->gpu_data(), this->blobs_[1]->gpu_data(),
      this->blobs_[2]->gpu_data(), this->blobs_[3]->gpu_data(),
      this->blobs_[4]->gpu_data(), eps_, top[0]->mutable_gpu_data());
  CUDA_POST_KERNEL_CHECK;
}

// Gamma and beta frozen (partial BN): dx = dy s_c, one thread per element.
template <typename Dtype>
__global__ void FrozenBNBackwardBottom(const int nthreads,
    const Dtype* top_diff, const int channels, const int spatial,
    const Dtype* var, const Dtype* factor, const Dtype* gamma,
    const Dtype eps, Dtype* bottom_diff) {
  CUDA_KERNEL_LOOP(index, nthreads) {
    dcd::frozen_bn_backward_elem(index, top_diff, channels, spatial, var,
                                 factor, gamma, eps, bottom_diff);
  }
}

// Gamma or beta learned: block c sums channel c's gradients (each thread a
// fixed stride of elements, then a pairwise sum in shared memory: the same
// result on every run) and writes dx on the way when bottom_diff is set.
template <typename Dtype>
__global__ void FrozenBNBackwardChannels(const int num, const int channels,
    const int spatial, const Dtype* x, const Dtype* top_diff,
    const Dtype* mean, const Dtype* var, const Dtype* factor,
    const Dtype* gamma, const Dtype eps, Dtype* bottom_diff,
    Dtype* gamma_diff, Dtype* beta_diff) {
  const int T = dcd::kFrozenBNThreads;
  __shared__ Dtype gamma_sums[dcd::kFrozenBNThreads];
  __shared__ Dtype beta_sums[dcd::kFrozenBNThreads];
  const int c = blockIdx.x;
  const int t = threadIdx.x;
  const dcd::FrozenBNChannel<Dtype> ch = dcd::frozen_bn_channel(c, mean, var,
      dcd::frozen_bn_stat_scale(factor[0]), gamma, eps);
  dcd::frozen_bn_backward_thread(c, t, T, num, channels, spatial, x,
      top_diff, ch, bottom_diff, &gamma_sums[t], &beta_sums[t]);
  __syncthreads();
  for (int s = T / 2; s > 0; s >>= 1) {
    dcd::frozen_bn_tree_step(t, s, gamma_sums);
    dcd::frozen_bn_tree_step(t, s, beta_sums);
    __syncthreads();
  }
  if (t == 0) {
    // Accumulate, as the CPU path and Caffe's Scale do.
    if (gamma_diff) { gamma_diff[c] += gamma_sums[0]; }
    if (beta_diff) { beta_diff[c] += beta_sums[0]; }
  }
}

template <typename Dtype>
void FrozenBNLayer<Dtype>::Backward_gpu(const vector<Blob<Dtype>*>& top,
    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {
  const bool learn_gamma = this->param_propagate_down(3);
  const bool learn_beta = this->param_propagate_down(4);
  const int count = bottom[0]->count();
  if (count == 0 || (!propagate_down[0] && !learn_gamma && !learn_beta)) {
    return;
  }
  const int spatial = bottom[0]->count(2);
  Dtype* bottom_diff =
      propagate_down[0] ? bottom[0]->mutable_gpu_diff() : NULL;
  if (!learn_gamma && !learn_beta) {
    // NOLINT_NEXT_LINE(whitespace/operators)
    FrozenBNBackwardBottom<Dtype><<<CAFFE_GET_BLOCKS(count),
        CAFFE_CUDA_NUM_THREADS>>>(
        count, top[0]->gpu_diff(), channels_, spatial,
        this->blobs_[1]->gpu_data(), this->blobs_[2]->gpu_data(),
        this->blobs_[3]->gpu_data(), eps_, bottom_diff);
    CUDA_POST_KERNEL_CHECK;
    return;
  }
  const Dtype* x = (learn_gamma && bottom[0] == top[0]) ?
      bottom_copy_.gpu_data() : bottom[0]->gpu_data();
  // NOLINT_NEXT_LINE(whitespace/operators)
  FrozenBNBackwardChannels<Dtype><<<channels_, dcd::kFrozenBNThreads>>>(
      bottom[0]->shape(0), channels_, spatial, x, top[0]->gpu_diff(),
      this->blobs_[0]->gpu_data(), this->blobs_[1]->gpu_data(),
      this->blobs_[2]->gpu_data(), this->blobs_[3]->gpu_data(), eps_,
      bottom_diff, learn_gamma ? this->blobs_[3]->mutable_gpu_diff() : NULL,
      learn_beta ? this->blobs_[4]->mutable_gpu_diff() : NULL);
  CUDA_POST_KERNEL_CHECK;
}

INSTANTIATE_LAYER_GPU_FUNCS(FrozenBNLayer);

}  // namespace caffe
