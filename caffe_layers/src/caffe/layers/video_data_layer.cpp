#ifdef USE_OPENCV
#include <opencv2/core/core.hpp>
#include <opencv2/imgproc/imgproc.hpp>

#include <fstream>  // NOLINT(readability/streams)
#include <sstream>
#include <string>
#include <vector>

#include "caffe/layers/video_data_layer.hpp"
#include "caffe/util/benchmark.hpp"
#include "caffe/util/math_functions.hpp"
#include "caffe/util/rng.hpp"

namespace caffe {

namespace {

// Binds the sampling functions to the layer's RNG.
class RngSampler : public IntSampler {
 public:
  explicit RngSampler(caffe::rng_t* rng) : rng_(rng) {}
  virtual int operator()(int n) { return (*rng_)() % n; }
 private:
  caffe::rng_t* rng_;
};

}  // namespace

template <typename Dtype>
VideoDataLayer<Dtype>::~VideoDataLayer<Dtype>() {
  this->StopInternalThread();
}

template <typename Dtype>
void VideoDataLayer<Dtype>::DataLayerSetUp(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top) {
  const VideoDataParameter& p = this->layer_param_.video_data_param();
  const TransformationParameter& tp = this->transform_param_;
  const string& name = this->layer_param_.name();
  CHECK_GT(p.batch_size(), 0) << "VideoData " << name << ": batch_size > 0";
  CHECK_GT(p.num_segments(), 0) << "VideoData " << name
                                << ": num_segments > 0";
  CHECK_GT(p.new_length(), 0) << "VideoData " << name << ": new_length > 0";
  CHECK((p.new_height() == 0) == (p.new_width() == 0))
      << "VideoData " << name << ": set new_height and new_width together";
  CHECK(!tp.has_mean_file()) << "VideoData " << name
      << ": mean_file is not supported, use mean_value";
  modality_ = p.modality();
  channels_ = modality_ == VideoDataParameter_Modality_RGB ? 3 :
              (modality_ == VideoDataParameter_Modality_FLOW ? 2 : 5);
  if (modality_ == VideoDataParameter_Modality_FLOW) {
    CHECK_LE(tp.mean_value_size(), 1) << "VideoData " << name
        << ": modality FLOW takes 0 or 1 mean_value (one for all channels, "
        << "TSN: 128)";
  } else {
    CHECK(tp.mean_value_size() == 0 || tp.mean_value_size() == 1 ||
          tp.mean_value_size() == 3)
        << "VideoData " << name << ": give 0, 1 or 3 mean_value entries";
  }
  CHECK_GT(p.flow_bound(), 0) << "VideoData " << name
                              << ": flow_bound must be positive";
  mean_.assign(3, 0.f);
  for (int c = 0; c < 3 && tp.mean_value_size() > 0; ++c) {
    mean_[c] = tp.mean_value(tp.mean_value_size() == 1 ? 0 : c);
  }
  string e = CheckNamePattern(p.name_pattern(), "d");
  CHECK(e.empty()) << "VideoData " << name << ": name_pattern: " << e;
  e = CheckNamePattern(p.flow_name_pattern(), "cd");
  CHECK(e.empty()) << "VideoData " << name << ": flow_name_pattern: " << e;
  scale_ratios_.assign(p.scale_ratios().begin(), p.scale_ratios().end());
  for (size_t i = 0; i < scale_ratios_.size(); ++i) {
    CHECK(scale_ratios_[i] > 0 && scale_ratios_[i] <= 1)
        << "VideoData " << name << ": scale_ratios must lie in (0, 1]";
  }
  CHECK(scale_ratios_.empty() || tp.crop_size() > 0)
      << "VideoData " << name
      << ": scale_ratios need transform_param.crop_size";
  frames_per_clip_ = p.num_segments() * p.new_length();

  // The list.
  const string& source = p.source();
  LOG(INFO) << "VideoData " << name << ": opening list " << source;
  std::ifstream infile(source.c_str());
  CHECK(infile.good()) << "VideoData " << name << ": cannot open list "
                       << source;
  std::stringstream contents;
  contents << infile.rdbuf();
  const string error = ParseVideoList(contents.str(), source, &lines_);
  CHECK(error.empty()) << "VideoData " << name << ": " << error;

  // Every listed video must exist with at least num_frames frames (FLOW:
  // flow pairs; RGB_FLOW: frames, and the flow of all but the last frame).
  const bool lmdb = p.backend() == VideoDataParameter_Backend_LMDB;
  for (int r = 0; r < 2; ++r) {
    const string& root = r == 0 || p.flow_root_folder().empty() ?
                         p.root_folder() : p.flow_root_folder();
    shared_ptr<VideoFrameReader>& reader = r == 0 ? reader_ : flow_reader_;
    if (r == 1 && root == p.root_folder()) {
      flow_reader_ = reader_;
    } else if (lmdb) {
      reader.reset(NewLMDBFrameReader(root, p.name_pattern(),
                                      p.flow_name_pattern()));
    } else {
      reader.reset(NewFolderFrameReader(root, p.name_pattern(),
                                        p.flow_name_pattern()));
    }
  }
  for (size_t i = 0; i < lines_.size(); ++i) {
    const VideoRecord& v = lines_[i];
    if (modality_ == VideoDataParameter_Modality_FLOW) {
      e = flow_reader_->CheckFrames(v, true, v.num_frames);
    } else {
      e = reader_->CheckFrames(v, false, v.num_frames);
      if (e.empty() && modality_ == VideoDataParameter_Modality_RGB_FLOW) {
        e = flow_reader_->CheckFrames(v, true, v.num_frames - 1);
      }
    }
    CHECK(e.empty()) << "VideoData " << name << ": " << source << ":" << e;
  }
  LOG(INFO) << "VideoData " << name << ": " << lines_.size() << " videos";

  rng_.reset(new Caffe::RNG(caffe_rng_rand()));
  lines_id_ = 0;
  if (p.shuffle()) ShuffleVideos();

  // Output frame size: the crop, else the resize, else the first frame.
  if (tp.crop_size() > 0) {
    out_h_ = out_w_ = tp.crop_size();
  } else if (p.new_height() > 0) {
    out_h_ = p.new_height();
    out_w_ = p.new_width();
  } else {
    cv::Mat first;
    const FrameKind kind = modality_ == VideoDataParameter_Modality_FLOW ?
                           FRAME_FLOW_X : FRAME_RGB;
    CHECK((kind == FRAME_RGB ? reader_ : flow_reader_)->ReadImage(
              lines_[lines_id_], kind, 1, &first, &e))
        << "VideoData " << name << ": " << source << ":" << e;
    out_h_ = first.rows;
    out_w_ = first.cols;
  }
  reader_->EndBatch();
  flow_reader_->EndBatch();

  vector<int> top_shape(4);
  if (modality_ == VideoDataParameter_Modality_FLOW) {
    // A snippet's pairs as channels: the same memory as (frames x 2).
    top_shape[0] = p.batch_size() * p.num_segments();
    top_shape[1] = 2 * p.new_length();
  } else {
    top_shape[0] = p.batch_size() * frames_per_clip_;
    top_shape[1] = channels_;
  }
  top_shape[2] = out_h_;
  top_shape[3] = out_w_;
  top[0]->Reshape(top_shape);
  for (int i = 0; i < this->prefetch_.size(); ++i) {
    this->prefetch_[i]->data_.Reshape(top_shape);
  }
  LOG(INFO) << "VideoData " << name << ": output data size " << top_shape[0]
            << "," << top_shape[1] << "," << top_shape[2] << ","
            << top_shape[3];
  vector<int> label_shape(1, p.batch_size());
  if (this->output_labels_) {
    top[1]->Reshape(label_shape);
  }
  for (int i = 0; i < this->prefetch_.size(); ++i) {
    this->prefetch_[i]->label_.Reshape(label_shape);
  }
}

template <typename Dtype>
int VideoDataLayer<Dtype>::Rand(int n) {
  CHECK_GT(n, 0);
  return (*static_cast<caffe::rng_t*>(rng_->generator()))() % n;
}

template <typename Dtype>
void VideoDataLayer<Dtype>::ShuffleVideos() {
  shuffle(lines_.begin(), lines_.end(),
          static_cast<caffe::rng_t*>(rng_->generator()));
}

template <typename Dtype>
vector<int> VideoDataLayer<Dtype>::SampleFrames(const VideoRecord& video) {
  const VideoDataParameter& p = this->layer_param_.video_data_param();
  vector<int> offsets;
  if (this->phase_ == TRAIN) {
    RngSampler rand(static_cast<caffe::rng_t*>(rng_->generator()));
    offsets = TsnTrainOffsets(video.num_frames, p.num_segments(),
                              p.new_length(), &rand);
  } else {
    offsets = TsnTestOffsets(video.num_frames, p.num_segments(),
                             p.new_length());
  }
  return ClipFrameIndices(offsets, p.new_length(), video.num_frames);
}

template <typename Dtype>
bool VideoDataLayer<Dtype>::ReadCropped(const VideoRecord& video,
    FrameKind kind, int frame, bool* first, cv::Rect* box,
    cv::Size* image_size, cv::Mat* out, float* scale_x, float* scale_y,
    std::string* error) {
  const VideoDataParameter& p = this->layer_param_.video_data_param();
  const int crop_size = this->transform_param_.crop_size();
  VideoFrameReader* reader =
      kind == FRAME_RGB ? reader_.get() : flow_reader_.get();
  if (!reader->ReadImage(video, kind, frame, &frame_buf_, error)) {
    return false;
  }
  const cv::Mat* img = &frame_buf_;
  const int new_h = p.new_height(), new_w = p.new_width();
  if (new_h > 0 && (frame_buf_.rows != new_h || frame_buf_.cols != new_w)) {
    cv::resize(frame_buf_, resized_buf_, cv::Size(new_w, new_h));
    img = &resized_buf_;
  }
  if (*first) {
    // One geometry per clip, fixed by its first image.
    *first = false;
    *image_size = cv::Size(img->cols, img->rows);
    CropBox b;
    if (crop_size == 0) {
      b.x = b.y = 0;
      b.w = img->cols;
      b.h = img->rows;
    } else if (this->phase_ == TRAIN) {
      RngSampler rand(static_cast<caffe::rng_t*>(rng_->generator()));
      b = SampleMultiScaleCrop(img->cols, img->rows, crop_size,
                               scale_ratios_, p.max_distort(), p.fix_crop(),
                               p.more_fix_crop(), &rand);
    } else {
      b = CenterCrop(img->cols, img->rows, crop_size);
    }
    *box = cv::Rect(b.x, b.y, b.w, b.h);
    if (crop_size == 0 && (img->cols != out_w_ || img->rows != out_h_)) {
      std::ostringstream s;
      s << FrameWhere(video, frame, kind) << ": image is " << img->cols << "x"
        << img->rows << ", expected " << out_w_ << "x" << out_h_
        << " (set new_height/new_width or crop_size)";
      *error = s.str();
      return false;
    }
  } else if (img->cols != image_size->width ||
             img->rows != image_size->height) {
    std::ostringstream s;
    s << FrameWhere(video, frame, kind) << ": image is " << img->cols << "x"
      << img->rows << ", expected " << image_size->width << "x"
      << image_size->height << " like the clip's first image"
      << " (set new_height/new_width)";
    *error = s.str();
    return false;
  }
  cv::Mat src = (*img)(*box);
  if (box->width != out_w_ || box->height != out_h_) {
    cv::resize(src, *out, cv::Size(out_w_, out_h_), 0, 0, cv::INTER_LINEAR);
  } else {
    src.copyTo(*out);
  }
  *scale_x = static_cast<float>(img->cols) / frame_buf_.cols * out_w_ /
             box->width;
  *scale_y = static_cast<float>(img->rows) / frame_buf_.rows * out_h_ /
             box->height;
  return true;
}

template <typename Dtype>
bool VideoDataLayer<Dtype>::LoadClip(const VideoRecord& video,
    const vector<int>& frames, Dtype* out, std::string* error) {
  const TransformationParameter& tp = this->transform_param_;
  const Dtype scale = tp.scale();
  // Caffe's DataTransformer draws a mirror in any phase when mirror is set.
  const bool do_mirror = tp.mirror() && Rand(2);
  const int plane = out_h_ * out_w_;
  const Dtype mean[3] = {mean_[0], mean_[1], mean_[2]};
  const bool want_rgb = modality_ != VideoDataParameter_Modality_FLOW;
  const bool want_flow = modality_ != VideoDataParameter_Modality_RGB;
  const bool flow_in_pixels =
      modality_ == VideoDataParameter_Modality_RGB_FLOW;
  // Quantised flow q -> pixels: q * step - bound.
  const float bound = this->layer_param_.video_data_param().flow_bound();
  const float step = 2 * bound / 255;
  bool first = true;
  cv::Rect box;
  cv::Size image_size;
  float sx = 1, sy = 1;
  for (size_t f = 0; f < frames.size(); ++f) {
    Dtype* dst = out + f * channels_ * plane;
    if (want_rgb) {
      if (!ReadCropped(video, FRAME_RGB, frames[f], &first, &box, &image_size,
                       &rgb_, &sx, &sy, error)) {
        return false;
      }
      for (int h = 0; h < out_h_; ++h) {
        const uchar* row = rgb_.ptr<uchar>(h);
        Dtype* d0 = dst + h * out_w_;
        Dtype* d1 = d0 + plane;
        Dtype* d2 = d1 + plane;
        for (int w = 0; w < out_w_; ++w) {
          const uchar* px = row + 3 * (do_mirror ? out_w_ - 1 - w : w);
          d0[w] = (px[0] - mean[0]) * scale;
          d1[w] = (px[1] - mean[1]) * scale;
          d2[w] = (px[2] - mean[2]) * scale;
        }
      }
    }
    if (!want_flow) continue;
    if (flow_in_pixels) {
      Dtype* vy = dst + 3 * plane;
      Dtype* vx = vy + plane;
      if (frames[f] >= video.num_frames) {
        // The last frame has no next frame (repeated frames: no motion).
        caffe_set(2 * plane, Dtype(0), vy);
        continue;
      }
      if (!ReadCropped(video, FRAME_FLOW_X, frames[f], &first, &box,
                       &image_size, &flow_x_, &sx, &sy, error) ||
          !ReadCropped(video, FRAME_FLOW_Y, frames[f], &first, &box,
                       &image_size, &flow_y_, &sx, &sy, error)) {
        return false;
      }
      const Dtype x_sign = do_mirror ? -1 : 1;
      for (int h = 0; h < out_h_; ++h) {
        const uchar* qx = flow_x_.ptr<uchar>(h);
        const uchar* qy = flow_y_.ptr<uchar>(h);
        for (int w = 0; w < out_w_; ++w) {
          const int src_w = do_mirror ? out_w_ - 1 - w : w;
          vy[h * out_w_ + w] = (qy[src_w] * step - bound) * sy;
          vx[h * out_w_ + w] = x_sign * (qx[src_w] * step - bound) * sx;
        }
      }
    } else {
      // TSN's flow stream: x then y of each pair, 255 - x when mirrored.
      if (!ReadCropped(video, FRAME_FLOW_X, frames[f], &first, &box,
                       &image_size, &flow_x_, &sx, &sy, error) ||
          !ReadCropped(video, FRAME_FLOW_Y, frames[f], &first, &box,
                       &image_size, &flow_y_, &sx, &sy, error)) {
        return false;
      }
      Dtype* dx = dst;
      Dtype* dy = dst + plane;
      for (int h = 0; h < out_h_; ++h) {
        const uchar* qx = flow_x_.ptr<uchar>(h);
        const uchar* qy = flow_y_.ptr<uchar>(h);
        for (int w = 0; w < out_w_; ++w) {
          const int src_w = do_mirror ? out_w_ - 1 - w : w;
          const int x = do_mirror ? 255 - qx[src_w] : qx[src_w];
          dx[h * out_w_ + w] = (x - mean[0]) * scale;
          dy[h * out_w_ + w] = (qy[src_w] - mean[0]) * scale;
        }
      }
    }
  }
  return true;
}

// This function is called on the prefetch thread.
template <typename Dtype>
void VideoDataLayer<Dtype>::load_batch(Batch<Dtype>* batch) {
  CPUTimer batch_timer;
  batch_timer.Start();
  const VideoDataParameter& p = this->layer_param_.video_data_param();
  const string& name = this->layer_param_.name();
  const int batch_size = p.batch_size();
  const int clip_count = frames_per_clip_ * channels_ * out_h_ * out_w_;
  Dtype* data = batch->data_.mutable_cpu_data();
  Dtype* label = batch->label_.mutable_cpu_data();
  const int num_lines = lines_.size();
  int bad_in_a_row = 0;
  reader_->BeginBatch();
  flow_reader_->BeginBatch();
  for (int item = 0; item < batch_size; ++item) {
    for (;;) {
      const VideoRecord& video = lines_[lines_id_];
      const vector<int> frames = SampleFrames(video);
      string error;
      const bool ok = LoadClip(video, frames, data + item * clip_count,
                               &error);
      const int label_value = video.label;
      if (++lines_id_ >= num_lines) {
        lines_id_ = 0;
        if (p.shuffle()) ShuffleVideos();
      }
      if (ok) {
        label[item] = label_value;
        bad_in_a_row = 0;
        break;
      }
      CHECK(p.skip_bad_videos()) << "VideoData " << name << ": "
          << p.source() << ":" << error;
      const int skipped = ++num_skipped_;
      LOG(WARNING) << "VideoData " << name << ": skipping " << p.source()
                   << ":" << error << " (" << skipped << " skipped)";
      CHECK_LT(++bad_in_a_row, num_lines)
          << "VideoData " << name << ": every video in " << p.source()
          << " is bad";
    }
  }
  reader_->EndBatch();
  flow_reader_->EndBatch();
  batch_timer.Stop();
  DLOG(INFO) << "Prefetch batch: " << batch_timer.MilliSeconds() << " ms.";
}

INSTANTIATE_CLASS(VideoDataLayer);
REGISTER_LAYER_CLASS(VideoData);

}  // namespace caffe
#endif  // USE_OPENCV
