#include <vector>

#include "caffe/layers/cost_volume_layer.hpp"
#include "caffe/util/dcd_kernels.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

// One thread per pixel (n, row, col): inverse norm and normalised vector,
// written into a (possibly padded) output.
template <typename Dtype>
__global__ void CostVolumeNormalize(const int nthreads, const Dtype* f,
    const int channels, const int height, const int width, const Dtype eps,
    Dtype* inv_norm, Dtype* out, const int pad_h, const int pad_w,
    const int out_w, const int out_plane) {
  CUDA_KERNEL_LOOP(index, nthreads) {
    const int hw = height * width;
    const int n = index / hw;
    const int p = index % hw;
    const int row = p / width;
    const int col = p % width;
    const Dtype* fp = f + n * channels * hw + p;
    Dtype sum_sq = 0;
    for (int c = 0; c < channels; ++c) {
      sum_sq += fp[c * hw] * fp[c * hw];
    }
    const Dtype inv = dcd::inverse_norm(sum_sq, eps);
    inv_norm[index] = inv;
    Dtype* op = out + n * channels * out_plane +
        dcd::padded_offset(row, col, pad_h, pad_w, out_w);
    for (int c = 0; c < channels; ++c) {
      op[c * out_plane] = fp[c * hw] * inv;
    }
  }
}

// One thread per output (n, k, i, j).
template <typename Dtype>
__global__ void CostVolumeForward(const int nthreads, const Dtype* a_hat,
    const Dtype* b_hat_pad, const int channels, const int height,
    const int width, const int dh, const int dw, const int s,
    const int pad_h, const int pad_w, Dtype* top) {
  CUDA_KERNEL_LOOP(index, nthreads) {
    const int hw = height * width;
    const int D = dcd::window_size(dh, dw);
    const int n = index / (D * hw);
    const int k = (index / hw) % D;
    const int i = (index % hw) / width;
    const int j = index % width;
    const int di = dcd::window_di(k, dh, dw);
    const int dj = dcd::window_dj(k, dw);
    Dtype acc = 0;
    if (dcd::shifted_inside(i, j, di, dj, s, height, width)) {
      const int pw = width + 2 * pad_w;
      const int pplane = (height + 2 * pad_h) * pw;
      const Dtype* a = a_hat + n * channels * hw + i * width + j;
      const Dtype* b = b_hat_pad + n * channels * pplane +
          dcd::padded_offset(i + di * s, j + dj * s, pad_h, pad_w, pw);
      for (int c = 0; c < channels; ++c) {
        acc += a[c * hw] * b[c * pplane];
      }
    }
    top[index] = acc;
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
  const int pw = width + 2 * pad_w_;
  const int pplane = (height + 2 * pad_h_) * pw;
  Dtype* b_hat = b_hat_pad_.mutable_gpu_data();
  caffe_gpu_set(b_hat_pad_.count(), Dtype(0), b_hat);
  const int npix = num * hw;
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
  const int count = top[0]->count();
  // NOLINT_NEXT_LINE(whitespace/operators)
  CostVolumeForward<Dtype><<<CAFFE_GET_BLOCKS(count), CAFFE_CUDA_NUM_THREADS>>>(
      count, a_hat_.gpu_data(), b_hat, channels, height, width,
      max_displacement_h_, max_displacement_w_, dilation_, pad_h_, pad_w_,
      top[0]->mutable_gpu_data());
  CUDA_POST_KERNEL_CHECK;
}

// Gather: one thread per (n, c, i, j) of F_a,
// dL/da_hat = sum_k g(n, k, i, j) b_hat(n, c, i + di s, j + dj s).
template <typename Dtype>
__global__ void CostVolumeBackwardA(const int nthreads, const Dtype* top_diff,
    const Dtype* b_hat_pad, const int channels, const int height,
    const int width, const int dh, const int dw, const int s,
    const int pad_h, const int pad_w, Dtype* a_diff) {
  CUDA_KERNEL_LOOP(index, nthreads) {
    const int hw = height * width;
    const int D = dcd::window_size(dh, dw);
    const int n = index / (channels * hw);
    const int c = (index / hw) % channels;
    const int i = (index % hw) / width;
    const int j = index % width;
    const int pw = width + 2 * pad_w;
    const int pplane = (height + 2 * pad_h) * pw;
    const Dtype* g = top_diff + n * D * hw + i * width + j;
    const Dtype* b = b_hat_pad + (n * channels + c) * pplane;
    Dtype acc = 0;
    for (int k = 0; k < D; ++k) {
      const int di = dcd::window_di(k, dh, dw);
      const int dj = dcd::window_dj(k, dw);
      if (dcd::shifted_inside(i, j, di, dj, s, height, width)) {
        acc += g[k * hw] *
            b[dcd::padded_offset(i + di * s, j + dj * s, pad_h, pad_w, pw)];
      }
    }
    a_diff[index] = acc;
  }
}

// Gather: one thread per (n, c, y, x) of F_b,
// dL/db_hat(q) = sum_k g(n, k, q - shift_k) a_hat(n, c, q - shift_k).
template <typename Dtype>
__global__ void CostVolumeBackwardB(const int nthreads, const Dtype* top_diff,
    const Dtype* a_hat, const int channels, const int height,
    const int width, const int dh, const int dw, const int s,
    Dtype* b_diff) {
  CUDA_KERNEL_LOOP(index, nthreads) {
    const int hw = height * width;
    const int D = dcd::window_size(dh, dw);
    const int n = index / (channels * hw);
    const int c = (index / hw) % channels;
    const int y = (index % hw) / width;
    const int x = index % width;
    const Dtype* g = top_diff + n * D * hw;
    const Dtype* a = a_hat + (n * channels + c) * hw;
    Dtype acc = 0;
    for (int k = 0; k < D; ++k) {
      const int di = dcd::window_di(k, dh, dw);
      const int dj = dcd::window_dj(k, dw);
      // (i, j) = (y - di s, x - dj s) is the F_a position matched with q.
      if (dcd::shifted_inside(y, x, -di, -dj, s, height, width)) {
        const int p = (y - di * s) * width + (x - dj * s);
        acc += g[k * hw + p] * a[p];
      }
    }
    b_diff[index] = acc;
  }
}

// One thread per pixel: in place, diff = (diff - f_hat <f_hat, diff>) / n.
template <typename Dtype>
__global__ void CostVolumeNormalizeBackward(const int nthreads, const Dtype* f,
    const Dtype* inv_norm, const int channels, const int hw, Dtype* diff) {
  CUDA_KERNEL_LOOP(index, nthreads) {
    const int n = index / hw;
    const int p = index % hw;
    const Dtype inv = inv_norm[index];
    const Dtype* fp = f + n * channels * hw + p;
    Dtype* gp = diff + n * channels * hw + p;
    Dtype dot = 0;
    for (int c = 0; c < channels; ++c) {
      dot += fp[c * hw] * inv * gp[c * hw];
    }
    for (int c = 0; c < channels; ++c) {
      gp[c * hw] = dcd::normalize_backward(gp[c * hw], fp[c * hw] * inv, dot,
                                           inv);
    }
  }
}

template <typename Dtype>
void CostVolumeLayer<Dtype>::Backward_gpu(const vector<Blob<Dtype>*>& top,
    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {
  const int num = bottom[0]->num();
  const int channels = bottom[0]->channels();
  const int height = bottom[0]->height();
  const int width = bottom[0]->width();
  const int hw = height * width;
  const int count = bottom[0]->count();
  const int npix = num * hw;
  const Dtype* top_diff = top[0]->gpu_diff();
  if (propagate_down[0]) {
    Dtype* a_diff = bottom[0]->mutable_gpu_diff();
    // NOLINT_NEXT_LINE(whitespace/operators)
    CostVolumeBackwardA<Dtype><<<CAFFE_GET_BLOCKS(count),
        CAFFE_CUDA_NUM_THREADS>>>(
        count, top_diff, b_hat_pad_.gpu_data(), channels, height, width,
        max_displacement_h_, max_displacement_w_, dilation_, pad_h_, pad_w_,
        a_diff);
    CUDA_POST_KERNEL_CHECK;
    // NOLINT_NEXT_LINE(whitespace/operators)
    CostVolumeNormalizeBackward<Dtype><<<CAFFE_GET_BLOCKS(npix),
        CAFFE_CUDA_NUM_THREADS>>>(
        npix, bottom[0]->gpu_data(), inv_norm_a_.gpu_data(), channels, hw,
        a_diff);
    CUDA_POST_KERNEL_CHECK;
  }
  if (propagate_down[1]) {
    Dtype* b_diff = bottom[1]->mutable_gpu_diff();
    // NOLINT_NEXT_LINE(whitespace/operators)
    CostVolumeBackwardB<Dtype><<<CAFFE_GET_BLOCKS(count),
        CAFFE_CUDA_NUM_THREADS>>>(
        count, top_diff, a_hat_.gpu_data(), channels, height, width,
        max_displacement_h_, max_displacement_w_, dilation_, b_diff);
    CUDA_POST_KERNEL_CHECK;
    // NOLINT_NEXT_LINE(whitespace/operators)
    CostVolumeNormalizeBackward<Dtype><<<CAFFE_GET_BLOCKS(npix),
        CAFFE_CUDA_NUM_THREADS>>>(
        npix, bottom[1]->gpu_data(), inv_norm_b_.gpu_data(), channels, hw,
        b_diff);
    CUDA_POST_KERNEL_CHECK;
  }
}

INSTANTIATE_LAYER_GPU_FUNCS(CostVolumeLayer);

}  // namespace caffe
