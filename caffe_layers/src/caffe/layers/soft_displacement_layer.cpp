#include <vector>

#include "caffe/layers/soft_displacement_layer.hpp"
#include "caffe/util/dcd_kernels.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

template <typename Dtype>
void SoftDisplacementLayer<Dtype>::LayerSetUp(
    const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top) {
  const SoftDisplacementParameter& param =
      this->layer_param_.soft_displacement_param();
  if (param.has_max_displacement()) {
    CHECK(!param.has_max_displacement_h() && !param.has_max_displacement_w())
        << "SoftDisplacement layer " << this->layer_param_.name()
        << ": give either max_displacement or both max_displacement_h and "
        << "max_displacement_w, not both forms.";
    max_displacement_h_ = param.max_displacement();
    max_displacement_w_ = param.max_displacement();
  } else {
    CHECK(param.has_max_displacement_h() && param.has_max_displacement_w())
        << "SoftDisplacement layer " << this->layer_param_.name() << ": "
        << "max_displacement, or both max_displacement_h and "
        << "max_displacement_w, are required.";
    max_displacement_h_ = param.max_displacement_h();
    max_displacement_w_ = param.max_displacement_w();
  }
  dilation_ = param.dilation();
  CHECK_GE(dilation_, 1) << "SoftDisplacement layer "
      << this->layer_param_.name() << ": dilation must be >= 1.";
  temperature_ = param.temperature();
  CHECK_GT(temperature_, 0) << "SoftDisplacement layer "
      << this->layer_param_.name() << ": temperature must be > 0.";
  method_ = param.method();
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
}

template <typename Dtype>
void SoftDisplacementLayer<Dtype>::Forward_cpu(
    const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top) {
  const int num = bottom[0]->num();
  const int D = bottom[0]->channels();
  const int hw = bottom[0]->height() * bottom[0]->width();
  const int dh = max_displacement_h_, dw = max_displacement_w_;
  const int s = dilation_;
  const Dtype inv_tau = Dtype(1) / temperature_;
  const Dtype* cost = bottom[0]->cpu_data();
  Dtype* top_data = top[0]->mutable_cpu_data();
  for (int n = 0; n < num; ++n) {
    for (int p = 0; p < hw; ++p) {
      const Dtype* c = cost + n * D * hw + p;
      Dtype* v = top_data + n * 2 * hw + p;
      if (method_ == SoftDisplacementParameter_Method_WTA) {
        const int k = dcd::argmax_first(c, D, hw);
        v[0] = Dtype(dcd::window_di(k, dh, dw) * s);
        v[hw] = Dtype(dcd::window_dj(k, dw) * s);
      } else {
        Dtype max_c, sum;
        dcd::soft_displacement(c, hw, dh, dw, s, inv_tau, &v[0], &v[hw],
                               &max_c, &sum);
      }
    }
  }
}

template <typename Dtype>
void SoftDisplacementLayer<Dtype>::Backward_cpu(
    const vector<Blob<Dtype>*>& top, const vector<bool>& propagate_down,
    const vector<Blob<Dtype>*>& bottom) {
  if (!propagate_down[0]) { return; }
  Dtype* bottom_diff = bottom[0]->mutable_cpu_diff();
  if (method_ == SoftDisplacementParameter_Method_WTA) {
    // WTA passes no gradient.
    caffe_set(bottom[0]->count(), Dtype(0), bottom_diff);
    return;
  }
  const int num = bottom[0]->num();
  const int D = bottom[0]->channels();
  const int hw = bottom[0]->height() * bottom[0]->width();
  const int dh = max_displacement_h_, dw = max_displacement_w_;
  const int s = dilation_;
  const Dtype inv_tau = Dtype(1) / temperature_;
  const Dtype* cost = bottom[0]->cpu_data();
  const Dtype* top_diff = top[0]->cpu_diff();
  for (int n = 0; n < num; ++n) {
    for (int p = 0; p < hw; ++p) {
      const Dtype* c = cost + n * D * hw + p;
      const Dtype* g = top_diff + n * 2 * hw + p;
      Dtype* dc = bottom_diff + n * D * hw + p;
      Dtype v_y, v_x, max_c, sum;
      dcd::soft_displacement(c, hw, dh, dw, s, inv_tau, &v_y, &v_x, &max_c,
                             &sum);
      for (int k = 0; k < D; ++k) {
        const Dtype p_k =
            dcd::softmax_weight(c[k * hw], max_c, inv_tau) / sum;
        dc[k * hw] = dcd::soft_displacement_grad(p_k, inv_tau, g[0], g[hw],
            Dtype(dcd::window_di(k, dh, dw) * s),
            Dtype(dcd::window_dj(k, dw) * s), v_y, v_x);
      }
    }
  }
}

#ifdef CPU_ONLY
STUB_GPU(SoftDisplacementLayer);
#endif

INSTANTIATE_CLASS(SoftDisplacementLayer);
REGISTER_LAYER_CLASS(SoftDisplacement);

}  // namespace caffe
