#ifndef CAFFE_VIDEO_DATA_LAYER_HPP_
#define CAFFE_VIDEO_DATA_LAYER_HPP_

#ifdef USE_OPENCV
#include <opencv2/core/core.hpp>

#include <atomic>
#include <string>
#include <vector>

#include "caffe/blob.hpp"
#include "caffe/data_transformer.hpp"
#include "caffe/internal_thread.hpp"
#include "caffe/layer.hpp"
#include "caffe/layers/base_data_layer.hpp"
#include "caffe/proto/caffe.pb.h"
#include "caffe/util/rng.hpp"
#include "caffe/util/video_frames.hpp"
#include "caffe/util/video_sampling.hpp"

namespace caffe {

/**
 * @brief TSN-style video clips: num_segments segments per video,
 *        new_length consecutive frames from each, one crop geometry and one
 *        mirror decision per clip.
 *
 * Tops: data ((batch_size * num_segments * new_length) x 3 x H x W, clip
 * major, then segment, then frame) and label (batch_size). Pixel values are
 * (BGR - mean_value) * scale, as in Caffe's DataTransformer. The FLOW and
 * RGB_FLOW modalities (VideoDataParameter.modality) read optical flow:
 * (batch_size * num_segments) x (2 * new_length) channels x1, y1, x2, ...,
 * or 5 channels per frame, BGR then the frame's flow (v_y, v_x) in pixels.
 */
template <typename Dtype>
class VideoDataLayer : public BasePrefetchingDataLayer<Dtype> {
 public:
  explicit VideoDataLayer(const LayerParameter& param)
      : BasePrefetchingDataLayer<Dtype>(param), lines_id_(0),
        num_skipped_(0) {}
  virtual ~VideoDataLayer();
  virtual void DataLayerSetUp(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top);

  virtual inline const char* type() const { return "VideoData"; }
  virtual inline int ExactNumBottomBlobs() const { return 0; }
  virtual inline int MinTopBlobs() const { return 1; }
  virtual inline int MaxTopBlobs() const { return 2; }

  // Videos skipped so far because of bad frames (skip_bad_videos).
  int num_skipped() const { return num_skipped_.load(); }

 protected:
  virtual void load_batch(Batch<Dtype>* batch);
  void ShuffleVideos();
  // Frame numbers (1-based) of the next clip of `video`.
  vector<int> SampleFrames(const VideoRecord& video);
  // Reads, crops, resizes, mirrors and normalises the clip's frames into
  // `out` (frames x channels_ x out_h_ x out_w_). False (with *error) on a
  // bad frame.
  bool LoadClip(const VideoRecord& video, const vector<int>& frames,
                Dtype* out, std::string* error);
  // Reads image (kind, frame), resizes it to new_height x new_width if set,
  // fixes the clip's crop box on the clip's first image (*first), checks its
  // size against that, and leaves the crop resized to out_h_ x out_w_ in
  // *out. *scale_x/y: output pixels per stored pixel (for flow in pixels).
  bool ReadCropped(const VideoRecord& video, FrameKind kind, int frame,
                   bool* first, cv::Rect* box, cv::Size* image_size,
                   cv::Mat* out, float* scale_x, float* scale_y,
                   std::string* error);
  int Rand(int n);

  vector<VideoRecord> lines_;
  int lines_id_;
  shared_ptr<VideoFrameReader> reader_;
  shared_ptr<VideoFrameReader> flow_reader_;  // reader_ when flow is there too
  shared_ptr<Caffe::RNG> rng_;
  int frames_per_clip_;
  VideoDataParameter_Modality modality_;
  int channels_;                // data channels per sampled frame: 3, 2, 5
  int out_h_, out_w_;           // output frame size
  vector<float> mean_;          // one per channel
  vector<float> scale_ratios_;  // TRAIN scale jittering
  // Written by the prefetch thread, read by the solver's.
  std::atomic<int> num_skipped_;
  cv::Mat frame_buf_, resized_buf_, crop_buf_;
  cv::Mat rgb_, flow_x_, flow_y_;  // the current frame's cropped images
};

}  // namespace caffe

#endif  // USE_OPENCV
#endif  // CAFFE_VIDEO_DATA_LAYER_HPP_
