#include <vector>

#include "caffe/layers/bilinear_warp_layer.hpp"
#include "caffe/util/dcd_kernels.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

// One thread per output (n, c, i, j).
template <typename Dtype>
__global__ void BilinearWarpForward(const int nthreads, const Dtype* f,
    const Dtype* v, const int channels, const int height, const int width,
    const Dtype s, Dtype* top) {
  CUDA_KERNEL_LOOP(index, nthreads) {
    const int hw = height * width;
    const int n = index / (channels * hw);
    const int nc = index / hw;
    const int p = index % hw;
    const dcd::BilinearTaps<Dtype> t = dcd::bilinear_taps(
        p / width + s * v[(n * 2) * hw + p],
        p % width + s * v[(n * 2 + 1) * hw + p], height, width);
    top[index] = dcd::bilinear_sample(f + nc * hw, height, width, t);
  }
}

template <typename Dtype>
void BilinearWarpLayer<Dtype>::Forward_gpu(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  const int count = top[0]->count();
  // NOLINT_NEXT_LINE(whitespace/operators)
  BilinearWarpForward<Dtype><<<CAFFE_GET_BLOCKS(count),
      CAFFE_CUDA_NUM_THREADS>>>(
      count, bottom[0]->gpu_data(), bottom[1]->gpu_data(),
      bottom[0]->channels(), bottom[0]->height(), bottom[0]->width(),
      displacement_scale_, top[0]->mutable_gpu_data());
  CUDA_POST_KERNEL_CHECK;
}

// Deterministic gradient to F without atomics: one thread owns one (n, c)
// plane, zeroes it and scatters the plane's top gradient serially, pixel by
// pixel in raster order (the CPU order). Parallelism is N * C threads.
template <typename Dtype>
__global__ void BilinearWarpBackwardF(const int nplanes, const Dtype* v,
    const Dtype* top_diff, const int channels, const int height,
    const int width, const Dtype s, Dtype* f_diff) {
  CUDA_KERNEL_LOOP(nc, nplanes) {
    const int hw = height * width;
    const int n = nc / channels;
    Dtype* plane = f_diff + nc * hw;
    const Dtype* g = top_diff + nc * hw;
    for (int p = 0; p < hw; ++p) {
      plane[p] = 0;
    }
    for (int p = 0; p < hw; ++p) {
      const dcd::BilinearTaps<Dtype> t = dcd::bilinear_taps(
          p / width + s * v[(n * 2) * hw + p],
          p % width + s * v[(n * 2 + 1) * hw + p], height, width);
      dcd::bilinear_scatter(plane, height, width, t, g[p]);
    }
  }
}

// Gradient to V: one thread per pixel (n, p), gathering over the channels.
template <typename Dtype>
__global__ void BilinearWarpBackwardV(const int nthreads, const Dtype* f,
    const Dtype* v, const Dtype* top_diff, const int channels,
    const int height, const int width, const Dtype s, Dtype* v_diff) {
  CUDA_KERNEL_LOOP(index, nthreads) {
    const int hw = height * width;
    const int n = index / hw;
    const int p = index % hw;
    const dcd::BilinearTaps<Dtype> t = dcd::bilinear_taps(
        p / width + s * v[(n * 2) * hw + p],
        p % width + s * v[(n * 2 + 1) * hw + p], height, width);
    Dtype gy = 0, gx = 0;
    for (int c = 0; c < channels; ++c) {
      Dtype d_y, d_x;
      dcd::bilinear_sample_grad(f + (n * channels + c) * hw, height, width, t,
                                &d_y, &d_x);
      const Dtype g = top_diff[(n * channels + c) * hw + p];
      gy += g * d_y;
      gx += g * d_x;
    }
    v_diff[(n * 2) * hw + p] = gy * s;
    v_diff[(n * 2 + 1) * hw + p] = gx * s;
  }
}

template <typename Dtype>
void BilinearWarpLayer<Dtype>::Backward_gpu(const vector<Blob<Dtype>*>& top,
    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {
  const int num = bottom[0]->num();
  const int channels = bottom[0]->channels();
  const int height = bottom[0]->height();
  const int width = bottom[0]->width();
  if (propagate_down[0]) {
    const int nplanes = num * channels;
    // NOLINT_NEXT_LINE(whitespace/operators)
    BilinearWarpBackwardF<Dtype><<<CAFFE_GET_BLOCKS(nplanes),
        CAFFE_CUDA_NUM_THREADS>>>(
        nplanes, bottom[1]->gpu_data(), top[0]->gpu_diff(), channels, height,
        width, displacement_scale_, bottom[0]->mutable_gpu_diff());
    CUDA_POST_KERNEL_CHECK;
  }
  if (propagate_down[1]) {
    const int npix = num * height * width;
    // NOLINT_NEXT_LINE(whitespace/operators)
    BilinearWarpBackwardV<Dtype><<<CAFFE_GET_BLOCKS(npix),
        CAFFE_CUDA_NUM_THREADS>>>(
        npix, bottom[0]->gpu_data(), bottom[1]->gpu_data(),
        top[0]->gpu_diff(), channels, height, width, displacement_scale_,
        bottom[1]->mutable_gpu_diff());
    CUDA_POST_KERNEL_CHECK;
  }
}

INSTANTIATE_LAYER_GPU_FUNCS(BilinearWarpLayer);

}  // namespace caffe
