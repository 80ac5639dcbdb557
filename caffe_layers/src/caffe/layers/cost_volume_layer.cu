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

// One block per tile (dcd::cost_volume_tile_*): shared-memory chunks of the
// feature tile and its halo, all displacements of the tile.
// Bounded for the largest block, so its registers always fit (64 K per block).
template <typename Dtype>
__global__ void __launch_bounds__(dcd::kCostVolumeTileMaxThreads)
CostVolumeForwardTiled(const dcd::CostVolumeTile tile,
    const Dtype* a_hat, const Dtype* b_hat_pad, const int channels,
    const int height, const int width, const int dh, const int dw,
    const int s, Dtype* top) {
  extern __shared__ __align__(16) unsigned char cost_volume_smem[];
  Dtype* a_s = reinterpret_cast<Dtype*>(cost_volume_smem);
  Dtype* b_s = a_s + tile.a_size();
  const int t = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x +
      threadIdx.x;
  Dtype acc[dcd::kCostVolumeTileMaxW];
  for (int d = 0; d < dcd::kCostVolumeTileMaxW; ++d) { acc[d] = 0; }
  for (int c0 = 0; c0 < channels; c0 += tile.cc) {
    __syncthreads();  // the previous chunk is used up
    dcd::cost_volume_tile_load(t, tile, blockIdx.x, c0, a_hat, b_hat_pad,
                               channels, height, width, dh, dw, s, a_s, b_s);
    __syncthreads();
    dcd::cost_volume_tile_accumulate(threadIdx.x, threadIdx.y, threadIdx.z,
        tile, dcd::dcd_min(tile.cc, channels - c0), dw, s, a_s, b_s, acc);
  }
  dcd::cost_volume_tile_store(threadIdx.x, threadIdx.y, threadIdx.z, tile,
      blockIdx.x, height, width, dh, dw, s, acc, top);
}

// Shared memory the tiles may use: the default 48 KiB per block.
const int kCostVolumeSmemBytes = 48 * 1024;

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
  // The padding must be zero; the interior is overwritten below. Zeroed
  // once per shape, and again whenever the host may have written the buffer.
  const bool stale = b_hat_pad_.shape() != gpu_zeroed_shape_ ||
      b_hat_pad_.data()->head() != SyncedMemory::HEAD_AT_GPU;
  Dtype* b_hat = b_hat_pad_.mutable_gpu_data();
  if (stale) {
    caffe_gpu_set(b_hat_pad_.count(), Dtype(0), b_hat);
    gpu_zeroed_shape_ = b_hat_pad_.shape();
  }
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
  const dcd::CostVolumeTile tile = dcd::cost_volume_tile(channels, height,
      width, max_displacement_h_, max_displacement_w_, dilation_,
      sizeof(Dtype), kCostVolumeSmemBytes);
  if (tile.ok) {
    const dim3 threads(tile.tw, tile.th, tile.rows);
    const size_t smem = (tile.a_size() + tile.b_size()) * sizeof(Dtype);
    // NOLINT_NEXT_LINE(whitespace/operators)
    CostVolumeForwardTiled<Dtype><<<tile.blocks(num), threads, smem>>>(
        tile, a_hat_.gpu_data(), b_hat, channels, height, width,
        max_displacement_h_, max_displacement_w_, dilation_,
        top[0]->mutable_gpu_data());
    CUDA_POST_KERNEL_CHECK;
    return;
  }
  const int count = dcd::cost_volume_forward_count(num, height, width,
      max_displacement_h_, max_displacement_w_);
  // NOLINT_NEXT_LINE(whitespace/operators)
  CostVolumeForward<Dtype><<<CAFFE_GET_BLOCKS(count), CAFFE_CUDA_NUM_THREADS>>>(
      count, a_hat_.gpu_data(), b_hat, channels, height, width,
      max_displacement_h_, max_displacement_w_, dilation_,
      top[0]->mutable_gpu_data());
  CUDA_POST_KERNEL_CHECK;
}

// Both inputs' correlation gradients in one launch, then both
// normalisation backwards in one (dcd::cost_volume_*_both); an input that
// needs no gradient has count 0.
template <typename Dtype>
__global__ void CostVolumeBackward(const int nthreads, const int count_a,
    const Dtype* top_diff, const Dtype* a_hat, const Dtype* b_hat_pad,
    const int channels, const int height, const int width, const int dh,
    const int dw, const int s, Dtype* a_diff, Dtype* b_diff) {
  CUDA_KERNEL_LOOP(index, nthreads) {
    dcd::cost_volume_backward_both(index, count_a, top_diff, a_hat, b_hat_pad,
        channels, height, width, dh, dw, s, a_diff, b_diff);
  }
}

template <typename Dtype>
__global__ void CostVolumeNormalizeBackward(const int nthreads,
    const int npix_a, const Dtype* fa, const Dtype* inv_a, const Dtype* fb,
    const Dtype* inv_b, const int channels, const int hw, Dtype* a_diff,
    Dtype* b_diff) {
  CUDA_KERNEL_LOOP(index, nthreads) {
    dcd::cost_volume_normalize_backward_both(index, npix_a, fa, inv_a, fb,
        inv_b, channels, hw, a_diff, b_diff);
  }
}

template <typename Dtype>
void CostVolumeLayer<Dtype>::Backward_gpu(const vector<Blob<Dtype>*>& top,
    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {
  if (bottom[0]->count() == 0) { return; }
  if (!propagate_down[0] && !propagate_down[1]) { return; }
  const int channels = bottom[0]->channels();
  const int height = bottom[0]->height();
  const int width = bottom[0]->width();
  const int count = dcd::cost_volume_backward_count(bottom[0]->num(),
      channels, height, width);
  const int count_a = propagate_down[0] ? count : 0;
  const int count_b = propagate_down[1] ? count : 0;
  Dtype* a_diff = propagate_down[0] ? bottom[0]->mutable_gpu_diff() : NULL;
  Dtype* b_diff = propagate_down[1] ? bottom[1]->mutable_gpu_diff() : NULL;
  // NOLINT_NEXT_LINE(whitespace/operators)
  CostVolumeBackward<Dtype><<<CAFFE_GET_BLOCKS(count_a + count_b),
      CAFFE_CUDA_NUM_THREADS>>>(
      count_a + count_b, count_a, top[0]->gpu_diff(), a_hat_.gpu_data(),
      b_hat_pad_.gpu_data(), channels, height, width, max_displacement_h_,
      max_displacement_w_, dilation_, a_diff, b_diff);
  CUDA_POST_KERNEL_CHECK;
  const int npix = bottom[0]->num() * height * width;
  const int npix_a = propagate_down[0] ? npix : 0;
  const int npix_b = propagate_down[1] ? npix : 0;
  // NOLINT_NEXT_LINE(whitespace/operators)
  CostVolumeNormalizeBackward<Dtype><<<CAFFE_GET_BLOCKS(npix_a + npix_b),
      CAFFE_CUDA_NUM_THREADS>>>(
      npix_a + npix_b, npix_a, bottom[0]->gpu_data(), inv_norm_a_.gpu_data(),
      bottom[1]->gpu_data(), inv_norm_b_.gpu_data(), channels,
      height * width, a_diff, b_diff);
  CUDA_POST_KERNEL_CHECK;
}

INSTANTIATE_LAYER_GPU_FUNCS(CostVolumeLayer);

}  // namespace caffe
