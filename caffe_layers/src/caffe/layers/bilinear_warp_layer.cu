#include <vector>

#include "cub/device/device_radix_sort.cuh"

#include "caffe/layers/bilinear_warp_layer.hpp"
#include "caffe/util/dcd_kernels.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

// The kernel bodies are in dcd_kernels.hpp (tested on the CPU by
// test_dcd_kernels.cpp); each kernel is a grid-stride loop over them.

template <typename Dtype>
__global__ void BilinearWarpForward(const int nthreads, const Dtype* f,
    const Dtype* v, const int channels, const int height, const int width,
    const Dtype s, Dtype* top) {
  CUDA_KERNEL_LOOP(index, nthreads) {
    dcd::bilinear_warp_forward_elem(index, f, v, channels, height, width, s,
                                    top);
  }
}

template <typename Dtype>
void BilinearWarpLayer<Dtype>::Forward_gpu(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  const int count = top[0]->count();
  if (count == 0) { return; }
  // NOLINT_NEXT_LINE(whitespace/operators)
  BilinearWarpForward<Dtype><<<CAFFE_GET_BLOCKS(count),
      CAFFE_CUDA_NUM_THREADS>>>(
      count, bottom[0]->gpu_data(), bottom[1]->gpu_data(),
      bottom[0]->channels(), bottom[0]->height(), bottom[0]->width(),
      displacement_scale_, top[0]->mutable_gpu_data());
  CUDA_POST_KERNEL_CHECK;
}

// Gradient to F in four steps (see dcd_kernels.hpp): emit the taps, stable
// radix sort by target pixel, find each target's run, sum each run in order.
template <typename Dtype>
__global__ void BilinearWarpEmitTaps(const int nthreads, const Dtype* v,
    const int num, const int height, const int width, const Dtype s,
    int* keys, int* values) {
  CUDA_KERNEL_LOOP(index, nthreads) {
    dcd::bilinear_warp_emit_taps(index, v, num, height, width, s, keys,
                                 values);
  }
}

__global__ void BilinearWarpRunStarts(const int nthreads,
    const int* sorted_keys, const int m, int* starts) {
  CUDA_KERNEL_LOOP(index, nthreads) {
    dcd::bilinear_warp_run_start(index, sorted_keys, m, starts);
  }
}

template <typename Dtype>
__global__ void BilinearWarpBackwardF(const int nthreads,
    const int* sorted_values, const int* starts, const Dtype* v,
    const Dtype* top_diff, const int channels, const int height,
    const int width, const Dtype s, Dtype* f_diff) {
  CUDA_KERNEL_LOOP(index, nthreads) {
    dcd::bilinear_warp_backward_f_elem(index, sorted_values, starts, v,
        top_diff, channels, height, width, s, f_diff);
  }
}

template <typename Dtype>
__global__ void BilinearWarpBackwardV(const int nthreads, const Dtype* f,
    const Dtype* v, const Dtype* top_diff, const int channels,
    const int height, const int width, const Dtype s, Dtype* v_diff) {
  CUDA_KERNEL_LOOP(index, nthreads) {
    dcd::bilinear_warp_backward_v_pixel(index, f, v, top_diff, channels,
                                        height, width, s, v_diff);
  }
}

template <typename Dtype>
void BilinearWarpLayer<Dtype>::Backward_gpu(const vector<Blob<Dtype>*>& top,
    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {
  const int num = bottom[0]->num();
  const int channels = bottom[0]->channels();
  const int height = bottom[0]->height();
  const int width = bottom[0]->width();
  const int npix = num * height * width;
  if (bottom[0]->count() == 0) { return; }
  const Dtype* v = bottom[1]->gpu_data();
  if (propagate_down[0]) {
    const int m = 4 * npix;
    tap_keys_.Reshape(1, 1, 1, m);
    tap_values_.Reshape(1, 1, 1, m);
    sorted_keys_.Reshape(1, 1, 1, m);
    sorted_values_.Reshape(1, 1, 1, m);
    run_starts_.Reshape(1, 1, 1, npix + 1);
    // NOLINT_NEXT_LINE(whitespace/operators)
    BilinearWarpEmitTaps<Dtype><<<CAFFE_GET_BLOCKS(npix),
        CAFFE_CUDA_NUM_THREADS>>>(
        npix, v, num, height, width, displacement_scale_,
        tap_keys_.mutable_gpu_data(), tap_values_.mutable_gpu_data());
    CUDA_POST_KERNEL_CHECK;
    const int end_bit = dcd::bit_width(static_cast<unsigned int>(npix));
    size_t temp_bytes = 0;
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(NULL, temp_bytes,
        tap_keys_.gpu_data(), sorted_keys_.mutable_gpu_data(),
        tap_values_.gpu_data(), sorted_values_.mutable_gpu_data(), m, 0,
        end_bit));
    sort_temp_.Reshape(1, 1, 1,
        static_cast<int>((temp_bytes + sizeof(int) - 1) / sizeof(int)) + 1);
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
        sort_temp_.mutable_gpu_data(), temp_bytes,
        tap_keys_.gpu_data(), sorted_keys_.mutable_gpu_data(),
        tap_values_.gpu_data(), sorted_values_.mutable_gpu_data(), m, 0,
        end_bit));
    // NOLINT_NEXT_LINE(whitespace/operators)
    BilinearWarpRunStarts<<<CAFFE_GET_BLOCKS(npix + 1),
        CAFFE_CUDA_NUM_THREADS>>>(
        npix + 1, sorted_keys_.gpu_data(), m, run_starts_.mutable_gpu_data());
    CUDA_POST_KERNEL_CHECK;
    const int count = bottom[0]->count();
    // NOLINT_NEXT_LINE(whitespace/operators)
    BilinearWarpBackwardF<Dtype><<<CAFFE_GET_BLOCKS(count),
        CAFFE_CUDA_NUM_THREADS>>>(
        count, sorted_values_.gpu_data(), run_starts_.gpu_data(), v,
        top[0]->gpu_diff(), channels, height, width, displacement_scale_,
        bottom[0]->mutable_gpu_diff());
    CUDA_POST_KERNEL_CHECK;
  }
  if (propagate_down[1]) {
    // NOLINT_NEXT_LINE(whitespace/operators)
    BilinearWarpBackwardV<Dtype><<<CAFFE_GET_BLOCKS(npix),
        CAFFE_CUDA_NUM_THREADS>>>(
        npix, bottom[0]->gpu_data(), v, top[0]->gpu_diff(), channels, height,
        width, displacement_scale_, bottom[1]->mutable_gpu_diff());
    CUDA_POST_KERNEL_CHECK;
  }
}

INSTANTIATE_LAYER_GPU_FUNCS(BilinearWarpLayer);

}  // namespace caffe
