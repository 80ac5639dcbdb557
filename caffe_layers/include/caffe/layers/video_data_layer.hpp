#ifndef CAFFE_VIDEO_DATA_LAYER_HPP_
#define CAFFE_VIDEO_DATA_LAYER_HPP_

#ifdef USE_OPENCV
#include <opencv2/core/core.hpp>

#include <string>
#include <vector>

#include "caffe/blob.hpp"
#include "caffe/data_transformer.hpp"
#include "caffe/internal_thread.hpp"
#include "caffe/layer.hpp"
#include "caffe/layers/base_data_layer.hpp"
#include "caffe/proto/caffe.pb.h"
#include "caffe/util/rng.hpp"
#include "caffe/util/video_sampling.hpp"

namespace caffe {

// The images a VideoData layer reads for frame t: the RGB frame, or the x or
// y component of the flow from frame t to t + 1 (tools/extract_flow.py).
enum FrameKind { FRAME_RGB = 0, FRAME_FLOW_X = 1, FRAME_FLOW_Y = 2 };

// Where a VideoData layer reads its frames from. One reader per prefetch
// thread: the LMDB reader keeps a read transaction open across a batch.
class VideoFrameReader {
 public:
  virtual ~VideoFrameReader() {}
  // Setup-time check that images 1..count exist: RGB frames, or (flow) both
  // flow components. "" when fine, else an error that names the list line.
  virtual std::string CheckFrames(const VideoRecord& video, bool flow,
                                  int count) = 0;
  std::string CheckVideo(const VideoRecord& video) {
    return CheckFrames(video, false, video.num_frames);
  }
  // Decodes image `frame` (1-based) of `kind`: 8-bit BGR for FRAME_RGB,
  // 8-bit grey for flow. Returns false and fills *error (naming video and
  // frame) when missing or corrupt.
  virtual bool ReadImage(const VideoRecord& video, FrameKind kind, int frame,
                         cv::Mat* image, std::string* error) = 0;
  bool ReadFrame(const VideoRecord& video, int frame, cv::Mat* image,
                 std::string* error) {
    return ReadImage(video, FRAME_RGB, frame, image, error);
  }
  // Called around each batch so readers can hold per-batch resources.
  virtual void BeginBatch() {}
  virtual void EndBatch() {}
};

// Frames as files: root_folder/video_id/(name_pattern % frame), flow as
// root_folder/video_id/(flow_name_pattern % ('x' or 'y', frame)).
VideoFrameReader* NewFolderFrameReader(
    const std::string& root_folder, const std::string& name_pattern,
    const std::string& flow_name_pattern = "flow_%c_%05d.jpg");
// Frames in an LMDB written by tools/build_lmdb.py: key
// "video_id/img_%05d.jpg" -> encoded Datum; "__video__/video_id" -> count;
// flow "video_id/flow_x_%05d.jpg", "video_id/flow_y_%05d.jpg";
// "__flow__/video_id" -> pair count.
VideoFrameReader* NewLMDBFrameReader(const std::string& path);

// Decodes encoded image bytes to BGR (grey: 8-bit single channel),
// rejecting truncated JPEGs (libjpeg only warns on a missing end-of-image
// marker and fills the rest grey).
bool DecodeFrameBytes(const char* data, size_t size, cv::Mat* image,
                      bool grey = false);

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
  int num_skipped() const { return num_skipped_; }

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
  volatile int num_skipped_;
  cv::Mat frame_buf_, resized_buf_, crop_buf_;
  cv::Mat rgb_, flow_x_, flow_y_;  // the current frame's cropped images
};

}  // namespace caffe

#endif  // USE_OPENCV
#endif  // CAFFE_VIDEO_DATA_LAYER_HPP_
