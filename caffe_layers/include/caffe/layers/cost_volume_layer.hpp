#ifndef CAFFE_COST_VOLUME_LAYER_HPP_
#define CAFFE_COST_VOLUME_LAYER_HPP_

#include <vector>

#include "caffe/blob.hpp"
#include "caffe/layer.hpp"
#include "caffe/proto/caffe.pb.h"

namespace caffe {

/**
 * @brief Cost volume of cosine similarities between two feature maps
 *        (DCD, Sec. 3.3).
 *
 * top(n, k, i, j) = < f_a(i, j), f_b(i + di s, j + dj s) > / (n_a n_b),
 * k = (di + dh)(2 dw + 1) + (dj + dw), |di| <= dh, |dj| <= dw,
 * n = sqrt(|f|^2 + eps), s = dilation. Positions outside F_b give 0 and
 * pass no gradient.
 *
 * The layer keeps the normalised features (F_b zero-padded by (dh s, dw s)
 * so the inner loops need no bounds test) and the per-pixel inverse norms.
 */
template <typename Dtype>
class CostVolumeLayer : public Layer<Dtype> {
 public:
  /**
   * @param param provides CostVolumeParameter cost_volume_param:
   *   - max_displacement, or both max_displacement_h and max_displacement_w
   *   - dilation (default 1)
   *   - eps (default 1e-6)
   */
  explicit CostVolumeLayer(const LayerParameter& param)
      : Layer<Dtype>(param) {}
  virtual void LayerSetUp(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Reshape(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);

  virtual inline const char* type() const { return "CostVolume"; }
  virtual inline int ExactNumBottomBlobs() const { return 2; }
  virtual inline int ExactNumTopBlobs() const { return 1; }

 protected:
  /**
   * @param bottom input Blob vector (length 2)
   *   -# @f$ (N \times C \times H \times W) @f$ F_a
   *   -# @f$ (N \times C \times H \times W) @f$ F_b
   * @param top output Blob vector (length 1)
   *   -# @f$ (N \times D \times H \times W) @f$,
   *      @f$ D = (2 d_h + 1)(2 d_w + 1) @f$
   */
  virtual void Forward_cpu(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Forward_gpu(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  /// Gradients to F_a and F_b, each only where propagate_down says so.
  virtual void Backward_cpu(const vector<Blob<Dtype>*>& top,
      const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom);
  virtual void Backward_gpu(const vector<Blob<Dtype>*>& top,
      const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom);

  int max_displacement_h_;
  int max_displacement_w_;
  int dilation_;
  Dtype eps_;
  int num_displacements_;
  int pad_h_;  // max_displacement_h_ * dilation_
  int pad_w_;  // max_displacement_w_ * dilation_
  /// f_a / n_a, N x C x H x W on the GPU. The CPU path holds each image as
  /// rows of channels, H x C x (W + 2 a_pad_w_): a channel step is a row,
  /// not a plane, and the columns are zero-padded.
  Blob<Dtype> a_hat_;
  int a_pad_w_;  // pad_w_ rounded up to 64 bytes (CPU a_hat_ columns)
  /// f_b / n_b zero-padded, N x C x (H + 2 pad_h) x (W + 2 pad_w) (CPU:
  /// rows of channels, (H + 2 pad_h) x C x (W + 2 pad_w)).
  Blob<Dtype> b_hat_pad_;
  /// 1 / n_a and 1 / n_b, N x 1 x H x W.
  Blob<Dtype> inv_norm_a_;
  Blob<Dtype> inv_norm_b_;
  /// Backward scratch: per-pixel <f_hat, dL/df_hat>, N x 1 x H x W.
  Blob<Dtype> dot_;
  /// Shape of b_hat_pad_ when Forward_gpu last zeroed it: the padding stays
  /// zero (the normalisation writes the interior only) until it changes.
  vector<int> gpu_zeroed_shape_;
  /// The same for Forward_cpu, a_hat_'s column padding included.
  vector<int> cpu_zeroed_shape_;
};

}  // namespace caffe

#endif  // CAFFE_COST_VOLUME_LAYER_HPP_
