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
#include "caffe/util/linear_resize.hpp"
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

  // Threads decoding each batch (decode_threads, 0 resolved).
  int num_decode_threads() const { return workers_.size(); }

 protected:
  // What one decode thread owns: its readers (an LMDB reader holds its own
  // read transaction) and its image buffers.
  struct Worker {
    shared_ptr<VideoFrameReader> reader;
    shared_ptr<VideoFrameReader> flow_reader;  // reader when flow is there too
    cv::Mat frame_buf, resized_buf;
    // cv::resize's INTER_LINEAR, faster (LinearResize): the frame to
    // new_height x new_width, the crop to the output size.
    LinearResize frame_resize, crop_resize;
    cv::Mat rgb, flow_x, flow_y;  // the current frame's cropped images
    vector<Dtype> row_buf;  // one row of the three planes, and reversed
  };
  // One clip of a batch, drawn on the prefetch thread in list order: the
  // video, its frame numbers (1-based), its mirror decision and the seed
  // of its crop box (the box depends only on the seed and the image size,
  // so every frame task finds the same box on its own).
  struct ClipPlan {
    VideoRecord video;
    vector<int> frames;
    bool mirror;
    unsigned int box_seed;
  };
  // What a frame task leaves: its first image's size (after new_height /
  // new_width) and, if it failed, why.
  struct FrameResult {
    cv::Size size;
    std::string error;
  };

  virtual void load_batch(Batch<Dtype>* batch);
  void ShuffleVideos();
  // Draws the next clip from the list (advancing and reshuffling it).
  ClipPlan NextClip();
  // Reads, crops, resizes, mirrors and normalises frame f of `clip` into
  // `out` (channels_ x out_h_ x out_w_). False (with result->error) on a
  // bad image.
  bool LoadFrame(Worker* worker, const ClipPlan& clip, int f, Dtype* out,
                 FrameResult* result);
  // Reads image (kind, frame), resizes it to new_height x new_width if set,
  // crops the clip's box and leaves it resized to out_h_ x out_w_ in *out.
  // *size: the image size the box was placed in (all images of a clip must
  // share it). *scale_x/y: output pixels per stored pixel (flow in pixels).
  bool ReadCropped(Worker* worker, const ClipPlan& clip, FrameKind kind,
                   int frame, cv::Size* size, cv::Mat* out, float* scale_x,
                   float* scale_y, std::string* error);
  // Checks the frame size a crop is taken from; "" or the reason.
  std::string CheckCropFits(int width, int height) const;
  // The clip's crop box in an image of width x height that passes
  // CheckCropFits (TRAIN: its multi-scale box, TEST: the centre).
  CropBox ClipBox(const ClipPlan& clip, int width, int height) const;

  vector<VideoRecord> lines_;
  int lines_id_;
  vector<Worker> workers_;
  shared_ptr<Caffe::RNG> rng_;
  int frames_per_clip_;
  VideoDataParameter_Modality modality_;
  int channels_;                // data channels per sampled frame: 3, 2, 5
  int out_h_, out_w_;           // output frame size
  vector<float> mean_;          // one per channel
  vector<float> scale_ratios_;  // TRAIN scale jittering
  // Written by the prefetch thread, read by the solver's.
  std::atomic<int> num_skipped_;
};

}  // namespace caffe

#endif  // USE_OPENCV
#endif  // CAFFE_VIDEO_DATA_LAYER_HPP_
