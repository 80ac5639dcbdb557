#ifndef CAFFE_SOFT_DISPLACEMENT_LAYER_HPP_
#define CAFFE_SOFT_DISPLACEMENT_LAYER_HPP_

#include <vector>

#include "caffe/blob.hpp"
#include "caffe/layer.hpp"
#include "caffe/proto/caffe.pb.h"

namespace caffe {

/**
 * @brief Displacement map from a cost volume (DCD, Eq. (1)-(2)).
 *
 * The bottom is a CostVolume top, N x D x H x W with
 * D = (2 dh + 1)(2 dw + 1) and channel k = (di + dh)(2 dw + 1) + (dj + dw).
 * SOFT: p = softmax over the D entries of c / tau, top channel 0 is
 * v_y = sum_k p_k di_k s, channel 1 is v_x = sum_k p_k dj_k s (pixels,
 * s = dilation). Summing over the whole window is the same as the paper's
 * marginal form, rho^y and rho^x being the row and column sums of p.
 * Backward: dL/dc_k = p_k / tau (g_y (dy_k - v_y) + g_x (dx_k - v_x)).
 * WTA: the displacement of the largest entry (the first one on ties); it
 * passes no gradient (Backward writes zeros).
 * learn_temperature: tau is the layer's parameter blob 0 (one value), with
 * dL/dtau = -(1/tau) sum_k c_k dL/dc_k, a dot product of the cost volume
 * with its gradient (computed even when the bottom needs none).
 */
template <typename Dtype>
class SoftDisplacementLayer : public Layer<Dtype> {
 public:
  /**
   * @param param provides SoftDisplacementParameter soft_displacement_param:
   *   - max_displacement, or both max_displacement_h and max_displacement_w
   *     (must match the bottom's channels)
   *   - dilation (default 1)
   *   - temperature (default 0.05, > 0)
   *   - method (SOFT or WTA)
   *   - learn_temperature (default false): tau becomes parameter blob 0
   */
  explicit SoftDisplacementLayer(const LayerParameter& param)
      : Layer<Dtype>(param) {}
  virtual void LayerSetUp(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Reshape(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);

  virtual inline const char* type() const { return "SoftDisplacement"; }
  virtual inline int ExactNumBottomBlobs() const { return 1; }
  virtual inline int ExactNumTopBlobs() const { return 1; }

 protected:
  /**
   * @param bottom input Blob vector (length 1)
   *   -# @f$ (N \times D \times H \times W) @f$ the cost volume
   * @param top output Blob vector (length 1)
   *   -# @f$ (N \times 2 \times H \times W) @f$ (v_y, v_x)
   */
  virtual void Forward_cpu(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Forward_gpu(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Backward_cpu(const vector<Blob<Dtype>*>& top,
      const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom);
  virtual void Backward_gpu(const vector<Blob<Dtype>*>& top,
      const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom);

  /// tau: the parameter blob's value when learned, else the fixed one.
  Dtype temperature() const;
  /// Adds dL/dtau to the parameter's diff, given dL/dc (learned tau only).
  void AccumulateTemperatureGradient(const Blob<Dtype>& cost,
      const Dtype* cost_diff, bool on_gpu);

  int max_displacement_h_;
  int max_displacement_w_;
  int dilation_;
  Dtype temperature_;
  SoftDisplacementParameter_Method method_;
  bool learn_temperature_;
  /// dL/dc when tau is learned but the bottom needs no gradient.
  Blob<Dtype> cost_diff_buffer_;
  /// Forward_cpu's per-pixel max, partition sum z and first moments
  /// (N x H x 4 x W: the four rows of an image row together), which
  /// Backward_cpu reads instead of passing over the cost volume twice more.
  Blob<Dtype> moments_;
};

}  // namespace caffe

#endif  // CAFFE_SOFT_DISPLACEMENT_LAYER_HPP_
