#ifndef CAFFE_BILINEAR_WARP_LAYER_HPP_
#define CAFFE_BILINEAR_WARP_LAYER_HPP_

#include <vector>

#include "caffe/blob.hpp"
#include "caffe/layer.hpp"
#include "caffe/proto/caffe.pb.h"
#include "caffe/util/dcd_kernels.hpp"

namespace caffe {

/**
 * @brief Bilinear warp of a feature map by a displacement map (DCD,
 *        Sec. 3.4).
 *
 * top(n, c, i, j) = F(n, c) sampled bilinearly at
 * (i + s V(n, 0, i, j), j + s V(n, 1, i, j)), s = displacement_scale; each
 * of the four taps outside the map counts as zero. Taps are chosen with
 * floor(), so at integer positions the derivative with respect to V is the
 * one-sided right derivative (difference towards the next row / column).
 *
 * With V the SoftDisplacement of CostVolume(F_t, F_{t+1}) (the displacement
 * from F_t to F_{t+1}), W(F_t, V) with s = -1 samples F_t(p - V(p)), which
 * matches F_{t+1}(p); the appearance-change branch uses F_{t+1} - W.
 *
 * Backward to F is deterministic without atomics: each element sums the
 * taps that land on it in raster order of their pixels, the same order on
 * both devices (runs found by a counting sort on the CPU, a radix sort on
 * the GPU). Backward to V gathers over the channels per pixel.
 */
template <typename Dtype>
class BilinearWarpLayer : public Layer<Dtype> {
 public:
  /**
   * @param param provides BilinearWarpParameter bilinear_warp_param:
   *   - displacement_scale (default 1)
   */
  explicit BilinearWarpLayer(const LayerParameter& param)
      : Layer<Dtype>(param) {}
  virtual void LayerSetUp(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Reshape(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);

  virtual inline const char* type() const { return "BilinearWarp"; }
  virtual inline int ExactNumBottomBlobs() const { return 2; }
  virtual inline int ExactNumTopBlobs() const { return 1; }

 protected:
  /**
   * @param bottom input Blob vector (length 2)
   *   -# @f$ (N \times C \times H \times W) @f$ the features F
   *   -# @f$ (N \times 2 \times H \times W) @f$ the displacements V
   *      (channel 0 = v_y, channel 1 = v_x, pixels)
   * @param top output Blob vector (length 1)
   *   -# @f$ (N \times C \times H \times W) @f$ the warped features
   */
  virtual void Forward_cpu(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Forward_gpu(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);
  virtual void Backward_cpu(const vector<Blob<Dtype>*>& top,
      const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom);
  virtual void Backward_gpu(const vector<Blob<Dtype>*>& top,
      const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom);

  Dtype displacement_scale_;
  /// GPU backward scratch (gradient to F, see dcd_kernels.hpp): one entry
  /// per bilinear tap, 4 N H W, before and after the sort by target pixel,
  /// where each target's run starts (N H W + 1), and CUB's sort storage.
  Blob<int> tap_keys_;
  Blob<int> tap_values_;
  Blob<int> sorted_keys_;
  Blob<int> sorted_values_;
  Blob<int> run_starts_;
  Blob<int> sort_temp_;
  /// CPU backward scratch, one image at a time: each pixel's taps and their
  /// four weights; for each target pixel q the run cpu_run_starts_[q] ..
  /// [q + 1] of the (source pixel, weight) pairs of the taps that land on
  /// q, in raster order; per group of 8 targets, the first source pixel
  /// where their runs are regular (vectorised), else -1; per thread, the
  /// counting sort's counts.
  vector<dcd::BilinearTaps<Dtype> > cpu_taps_;
  vector<Dtype> cpu_tap_weights_;
  vector<int> cpu_run_starts_;
  vector<int> cpu_run_sources_;
  vector<Dtype> cpu_run_weights_;
  vector<int> cpu_regular_;
  vector<int> cpu_run_counts_;
};

}  // namespace caffe

#endif  // CAFFE_BILINEAR_WARP_LAYER_HPP_
