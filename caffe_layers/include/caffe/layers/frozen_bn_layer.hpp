#ifndef CAFFE_FROZEN_BN_LAYER_HPP_
#define CAFFE_FROZEN_BN_LAYER_HPP_

#include <vector>

#include "caffe/blob.hpp"
#include "caffe/layer.hpp"
#include "caffe/proto/caffe.pb.h"

namespace caffe {

/**
 * @brief Batch normalisation with frozen statistics and its affine, as one
 *        per-channel layer: BatchNorm (use_global_stats) + Scale (bias_term)
 *        in one forward and one backward pass (partial BN, TSN).
 *
 * y = gamma_c (x - mean_c / f) / sqrt(var_c / f + eps) + beta_c over the
 * channel axis (1) of an N x C x ... bottom.
 *
 * Blobs: 0 mean, 1 variance, 2 moving-average factor f (Caffe BatchNorm's
 * three, same storage: sums scaled by f; f = 0 reads as statistics 0),
 * 3 gamma, 4 beta (Scale's two). The statistics never change: their lr_mult
 * must be 0 (0 when not given) and Backward never writes their diffs. gamma
 * and beta get (accumulated) diffs only when their param_propagate_down is
 * set, i.e. their lr_mult is not 0. A new layer starts at mean 0, variance 0,
 * f 0, gamma 1, beta 0. In place (top == bottom) is allowed; with gamma or
 * beta learned the layer then keeps a copy of its bottom.
 */
template <typename Dtype>
class FrozenBNLayer : public Layer<Dtype> {
 public:
  /**
   * @param param provides FrozenBNParameter frozen_bn_param:
   *   - eps (default 1e-5, BatchNorm's)
   */
  explicit FrozenBNLayer(const LayerParameter& param)
      : Layer<Dtype>(param) {}
  virtual void LayerSetUp(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Reshape(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);

  virtual inline const char* type() const { return "FrozenBN"; }
  virtual inline int ExactNumBottomBlobs() const { return 1; }
  virtual inline int ExactNumTopBlobs() const { return 1; }

 protected:
  virtual void Forward_cpu(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Forward_gpu(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Backward_cpu(const vector<Blob<Dtype>*>& top,
      const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom);
  virtual void Backward_gpu(const vector<Blob<Dtype>*>& top,
      const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom);

  /// Whether gamma or beta wants a gradient (then in place keeps bottom_copy_).
  bool affine_learned() {
    return this->param_propagate_down(3) || this->param_propagate_down(4);
  }

  Dtype eps_;
  int channels_;
  /// The bottom before an in-place forward (for gamma's gradient).
  Blob<Dtype> bottom_copy_;
};

}  // namespace caffe

#endif  // CAFFE_FROZEN_BN_LAYER_HPP_
