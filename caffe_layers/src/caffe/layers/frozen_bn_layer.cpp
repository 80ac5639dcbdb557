#include <string>
#include <vector>

#include "caffe/layers/frozen_bn_layer.hpp"
#include "caffe/util/dcd_kernels.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

template <typename Dtype>
void FrozenBNLayer<Dtype>::LayerSetUp(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  const string& name = this->layer_param_.name();
  CHECK_GE(bottom[0]->num_axes(), 2) << "FrozenBN layer " << name
      << ": the bottom must be N x C x ..., got "
      << bottom[0]->shape_string();
  eps_ = this->layer_param_.frozen_bn_param().eps();
  CHECK_GT(eps_, 0) << "FrozenBN layer " << name << ": eps must be > 0";
  if (this->blobs_.size() > 0) {
    // Given blobs (a caffemodel) fix the channels; Reshape checks the bottom.
    CHECK_EQ(this->blobs_.size(), 5) << "FrozenBN layer " << name
        << ": needs 5 blobs (mean, variance, factor, gamma, beta), got "
        << this->blobs_.size();
    channels_ = this->blobs_[0]->count();
  } else {
    channels_ = bottom[0]->shape(1);
    // BatchNorm's fresh statistics (0) and Scale's fresh affine (1, 0).
    this->blobs_.resize(5);
    const vector<int> per_channel(1, channels_);
    const vector<int> one(1, 1);
    for (int i = 0; i < 5; ++i) {
      this->blobs_[i].reset(new Blob<Dtype>(i == 2 ? one : per_channel));
      caffe_set(this->blobs_[i]->count(), Dtype(i == 3 ? 1 : 0),
                this->blobs_[i]->mutable_cpu_data());
    }
  }
  // The statistics are not parameters: lr_mult 0 (added when not given).
  for (int i = 0; i < 3; ++i) {
    if (this->layer_param_.param_size() == i) {
      ParamSpec* spec = this->layer_param_.add_param();
      spec->set_lr_mult(0.f);
      spec->set_decay_mult(0.f);
    } else {
      CHECK_EQ(this->layer_param_.param(i).lr_mult(), 0.f) << "FrozenBN layer "
          << name << ": blob " << i << " holds statistics, which are never "
          << "learned; give it lr_mult 0";
    }
  }
  // The Net sets these from lr_mult; a bare layer (tests) learns gamma and
  // beta.
  this->param_propagate_down_.assign(5, false);
  this->param_propagate_down_[3] = this->param_propagate_down_[4] = true;
}

template <typename Dtype>
void FrozenBNLayer<Dtype>::Reshape(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  const string& name = this->layer_param_.name();
  CHECK_GE(bottom[0]->num_axes(), 2) << "FrozenBN layer " << name
      << ": the bottom must be N x C x ..., got "
      << bottom[0]->shape_string();
  CHECK_EQ(bottom[0]->shape(1), channels_) << "FrozenBN layer " << name
      << ": the bottom has " << bottom[0]->shape(1) << " channels, the "
      << "layer's blobs " << channels_ << " (bottom "
      << bottom[0]->shape_string() << ")";
  const int sizes[5] = {channels_, channels_, 1, channels_, channels_};
  for (int i = 0; i < 5; ++i) {
    CHECK_EQ(this->blobs_[i]->count(), sizes[i]) << "FrozenBN layer " << name
        << ": blob " << i << " must hold " << sizes[i] << " values, got "
        << this->blobs_[i]->shape_string();
  }
  top[0]->ReshapeLike(*bottom[0]);
}

template <typename Dtype>
void FrozenBNLayer<Dtype>::Forward_cpu(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  const int num = bottom[0]->shape(0);
  const int spatial = bottom[0]->count(2);
  const Dtype* x = bottom[0]->cpu_data();
  if (bottom[0] == top[0] && affine_learned()) {
    bottom_copy_.ReshapeLike(*bottom[0]);
    caffe_copy(bottom[0]->count(), x, bottom_copy_.mutable_cpu_data());
  }
  const Dtype stat_scale =
      dcd::frozen_bn_stat_scale(this->blobs_[2]->cpu_data()[0]);
  const Dtype* mean = this->blobs_[0]->cpu_data();
  const Dtype* var = this->blobs_[1]->cpu_data();
  const Dtype* gamma = this->blobs_[3]->cpu_data();
  const Dtype* beta = this->blobs_[4]->cpu_data();
  Dtype* y = top[0]->mutable_cpu_data();
  for (int n = 0; n < num; ++n) {
    for (int c = 0; c < channels_; ++c) {
      const dcd::FrozenBNChannel<Dtype> ch =
          dcd::frozen_bn_channel(c, mean, var, stat_scale, gamma, eps_);
      const int offset = (n * channels_ + c) * spatial;
      for (int i = 0; i < spatial; ++i) {
        y[offset + i] = dcd::frozen_bn_apply(x[offset + i], ch, beta[c]);
      }
    }
  }
}

template <typename Dtype>
void FrozenBNLayer<Dtype>::Backward_cpu(const vector<Blob<Dtype>*>& top,
    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {
  const bool learn_gamma = this->param_propagate_down(3);
  const bool learn_beta = this->param_propagate_down(4);
  if (!propagate_down[0] && !learn_gamma && !learn_beta) { return; }
  const int num = bottom[0]->shape(0);
  const int spatial = bottom[0]->count(2);
  const Dtype stat_scale =
      dcd::frozen_bn_stat_scale(this->blobs_[2]->cpu_data()[0]);
  const Dtype* mean = this->blobs_[0]->cpu_data();
  const Dtype* var = this->blobs_[1]->cpu_data();
  const Dtype* gamma = this->blobs_[3]->cpu_data();
  const Dtype* top_diff = top[0]->cpu_diff();
  // In place, bottom's data holds y: the input is the copy from Forward.
  const Dtype* x = (learn_gamma && bottom[0] == top[0]) ?
      bottom_copy_.cpu_data() : bottom[0]->cpu_data();
  Dtype* bottom_diff = propagate_down[0] ? bottom[0]->mutable_cpu_diff() : NULL;
  Dtype* gamma_diff = learn_gamma ? this->blobs_[3]->mutable_cpu_diff() : NULL;
  Dtype* beta_diff = learn_beta ? this->blobs_[4]->mutable_cpu_diff() : NULL;
  for (int c = 0; c < channels_; ++c) {
    const dcd::FrozenBNChannel<Dtype> ch =
        dcd::frozen_bn_channel(c, mean, var, stat_scale, gamma, eps_);
    Dtype sg = 0, sb = 0;
    for (int n = 0; n < num; ++n) {
      const int offset = (n * channels_ + c) * spatial;
      for (int i = 0; i < spatial; ++i) {
        const Dtype g = top_diff[offset + i];
        if (learn_gamma) { sg += g * ((x[offset + i] - ch.mean) * ch.inv_std); }
        sb += g;
        if (bottom_diff) { bottom_diff[offset + i] = g * ch.scale; }
      }
    }
    // Parameter gradients accumulate (iter_size), as Caffe's Scale's do.
    if (gamma_diff) { gamma_diff[c] += sg; }
    if (beta_diff) { beta_diff[c] += sb; }
  }
}

#ifdef CPU_ONLY
STUB_GPU(FrozenBNLayer);
#endif

INSTANTIATE_CLASS(FrozenBNLayer);
REGISTER_LAYER_CLASS(FrozenBN);

}  // namespace caffe
