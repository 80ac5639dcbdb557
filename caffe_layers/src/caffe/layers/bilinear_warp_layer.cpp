#include <string>
#include <vector>

#include "caffe/layers/bilinear_warp_layer.hpp"
#include "caffe/util/dcd_kernels.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

template <typename Dtype>
void BilinearWarpLayer<Dtype>::LayerSetUp(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  displacement_scale_ =
      this->layer_param_.bilinear_warp_param().displacement_scale();
  CHECK(displacement_scale_ - displacement_scale_ == 0) << "BilinearWarp "
      << "layer " << this->layer_param_.name() << ": displacement_scale must "
      << "be finite, got " << displacement_scale_;
}

template <typename Dtype>
void BilinearWarpLayer<Dtype>::Reshape(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  const string& name = this->layer_param_.name();
  CHECK_EQ(bottom[0]->num_axes(), 4) << "BilinearWarp layer " << name
      << ": F must be N x C x H x W, got " << bottom[0]->shape_string();
  CHECK_EQ(bottom[1]->num_axes(), 4) << "BilinearWarp layer " << name
      << ": V must be N x 2 x H x W, got " << bottom[1]->shape_string();
  CHECK_EQ(bottom[1]->channels(), 2) << "BilinearWarp layer " << name
      << ": V must have 2 channels (v_y, v_x), got V "
      << bottom[1]->shape_string();
  CHECK_EQ(bottom[0]->num(), bottom[1]->num()) << "BilinearWarp layer "
      << name << ": F and V must have the same num, got F "
      << bottom[0]->shape_string() << " and V " << bottom[1]->shape_string();
  CHECK_EQ(bottom[0]->height(), bottom[1]->height()) << "BilinearWarp layer "
      << name << ": F and V must have the same height, got F "
      << bottom[0]->shape_string() << " and V " << bottom[1]->shape_string();
  CHECK_EQ(bottom[0]->width(), bottom[1]->width()) << "BilinearWarp layer "
      << name << ": F and V must have the same width, got F "
      << bottom[0]->shape_string() << " and V " << bottom[1]->shape_string();
  top[0]->ReshapeLike(*bottom[0]);
}

namespace {

// Taps of every pixel of image n, computed once and shared by the channels
// (they depend on V only). Rows split over the threads.
template <typename Dtype>
void image_taps(const Dtype* v, int n, int height, int width, Dtype s,
    vector<dcd::BilinearTaps<Dtype> >* taps) {
  const int hw = height * width;
  taps->resize(hw);
  dcd::BilinearTaps<Dtype>* t = taps->data();
#pragma omp parallel for schedule(static)
  for (int i = 0; i < height; ++i) {
    for (int j = 0; j < width; ++j) {
      const int p = i * width + j;
      t[p] = dcd::warp_position_taps(i, j, v[(n * 2) * hw + p],
                                     v[(n * 2 + 1) * hw + p], s, height, width);
    }
  }
}

}  // namespace

template <typename Dtype>
void BilinearWarpLayer<Dtype>::Forward_cpu(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  const int num = bottom[0]->num();
  const int channels = bottom[0]->channels();
  const int height = bottom[0]->height();
  const int width = bottom[0]->width();
  const int hw = height * width;
  const Dtype* f = bottom[0]->cpu_data();
  const Dtype* v = bottom[1]->cpu_data();
  Dtype* top_data = top[0]->mutable_cpu_data();
  // Pixel by pixel: the taps once, then every channel (the planes' rows
  // around the taps stay in cache from one pixel to the next).
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < num; ++n) {
    for (int p = 0; p < hw; ++p) {
      const int i = p / width, j = p % width;
      const dcd::BilinearTaps<Dtype> t = dcd::warp_position_taps(
          i, j, v[(n * 2) * hw + p], v[(n * 2 + 1) * hw + p],
          displacement_scale_, height, width);
      for (int c = 0; c < channels; ++c) {
        top_data[(n * channels + c) * hw + p] = dcd::bilinear_sample(
            f + (n * channels + c) * hw, height, width, t);
      }
    }
  }
}

template <typename Dtype>
void BilinearWarpLayer<Dtype>::Backward_cpu(const vector<Blob<Dtype>*>& top,
    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {
  if (!propagate_down[0] && !propagate_down[1]) { return; }
  const int num = bottom[0]->num();
  const int channels = bottom[0]->channels();
  const int height = bottom[0]->height();
  const int width = bottom[0]->width();
  const int hw = height * width;
  const Dtype s = displacement_scale_;
  const Dtype* f = bottom[0]->cpu_data();
  const Dtype* v = bottom[1]->cpu_data();
  const Dtype* top_diff = top[0]->cpu_diff();
  vector<dcd::BilinearTaps<Dtype> > taps;
  for (int n = 0; n < num; ++n) {
    image_taps(v, n, height, width, s, &taps);
    const dcd::BilinearTaps<Dtype>* t = taps.data();
    if (propagate_down[0]) {
      // Serial scatter within each plane, pixels in raster order:
      // deterministic; the GPU sums each target's taps in the same order
      // (dcd::bilinear_warp_backward_f_elem). Planes split over CPU threads.
      Dtype* f_diff = bottom[0]->mutable_cpu_diff() + n * channels * hw;
#pragma omp parallel for schedule(static)
      for (int c = 0; c < channels; ++c) {
        Dtype* plane = f_diff + c * hw;
        const Dtype* g = top_diff + (n * channels + c) * hw;
        for (int p = 0; p < hw; ++p) { plane[p] = 0; }
        for (int p = 0; p < hw; ++p) {
          dcd::bilinear_scatter(plane, height, width, t[p], g[p]);
        }
      }
    }
    if (propagate_down[1]) {
      // dL/dV(n, 0, p) = s sum_c g(n, c, p) dSample/dy, likewise x; each
      // pixel sums its channels in ascending order.
      Dtype* gy = bottom[1]->mutable_cpu_diff() + (n * 2) * hw;
      Dtype* gx = gy + hw;
#pragma omp parallel for schedule(static)
      for (int p = 0; p < hw; ++p) {
        Dtype sy = 0, sx = 0;
        for (int c = 0; c < channels; ++c) {
          Dtype d_y, d_x;
          dcd::bilinear_sample_grad(f + (n * channels + c) * hw, height,
                                    width, t[p], &d_y, &d_x);
          const Dtype g = top_diff[(n * channels + c) * hw + p];
          sy += g * d_y;
          sx += g * d_x;
        }
        gy[p] = sy * s;
        gx[p] = sx * s;
      }
    }
  }
}

#ifdef CPU_ONLY
STUB_GPU(BilinearWarpLayer);
#endif

INSTANTIATE_CLASS(BilinearWarpLayer);
REGISTER_LAYER_CLASS(BilinearWarp);

}  // namespace caffe
