#ifdef USE_OPENCV
#include <opencv2/core/core.hpp>
#include <opencv2/imgproc/imgproc.hpp>

#include <omp.h>
#include <sched.h>
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define DCD_STREAM_STORES 1
#else
#define DCD_STREAM_STORES 0
#endif

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>  // NOLINT(readability/streams)
#include <iomanip>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "caffe/layers/video_data_layer.hpp"
#include "caffe/util/dcd_kernels.hpp"
#include "caffe/util/benchmark.hpp"
#include "caffe/util/math_functions.hpp"
#include "caffe/util/rng.hpp"

namespace caffe {

namespace {

// (pixel - mean) * scale of one row of BGR bytes into three planes' rows;
// a row kernel, so the de-interleave is vectorised.
template <typename Dtype>
DCD_ROW_KERNEL void BgrRowToPlanes(const uchar* row, int width,
    const Dtype* mean, Dtype scale, Dtype* d0, Dtype* d1, Dtype* d2) {
  for (int w = 0; w < width; ++w) {
    const uchar* px = row + 3 * w;
    d0[w] = (px[0] - mean[0]) * scale;
    d1[w] = (px[1] - mean[1]) * scale;
    d2[w] = (px[2] - mean[2]) * scale;
  }
}

// Copies `bytes` from src to dst with non-temporal stores on dst's whole
// vectors (plain copies for an unaligned head and the tail). A batch is
// tens of MB, far beyond the caches: stored through them, every line of it
// was first read (for ownership), then written back, and converting a 224 x
// 224 frame took 64 us against 18 us with its output in cache; streamed,
// 38 us (docs/DATA.md). Callers end with StreamFence().
typedef void (*StreamFn)(const char* src, size_t bytes, char* dst);

template <int kBytes>
inline size_t StreamHead(const char* src, size_t bytes, char* dst) {
  const size_t head = std::min(bytes,
      (kBytes - reinterpret_cast<uintptr_t>(dst) % kBytes) % kBytes);
  memcpy(dst, src, head);
  return head;
}

#if DCD_STREAM_STORES
// One variant per vector width: whole aligned vectors streamed.
#define DCD_STREAM_BYTES(NAME, ATTR, BYTES, VEC, LOAD, STORE)             \
  ATTR void NAME(const char* src, size_t bytes, char* dst) {                \
    size_t i = StreamHead<BYTES>(src, bytes, dst);                          \
    for (; i + BYTES <= bytes; i += BYTES) {                                \
      STORE(reinterpret_cast<VEC*>(dst + i),                                \
            LOAD(reinterpret_cast<const VEC*>(src + i)));                   \
    }                                                                       \
    memcpy(dst + i, src + i, bytes - i);                                    \
  }
DCD_STREAM_BYTES(StreamBytes512, __attribute__((target("avx512f"))), 64,
                 __m512i, _mm512_loadu_si512, _mm512_stream_si512)
DCD_STREAM_BYTES(StreamBytes256, __attribute__((target("avx"))), 32,
                 __m256i, _mm256_loadu_si256, _mm256_stream_si256)
DCD_STREAM_BYTES(StreamBytes128, , 16, __m128i, _mm_loadu_si128,
                 _mm_stream_si128)
#undef DCD_STREAM_BYTES

StreamFn PickStream() {
  if (__builtin_cpu_supports("avx512f")) return StreamBytes512;
  if (__builtin_cpu_supports("avx")) return StreamBytes256;
  return StreamBytes128;
}
#else
void CopyBytes(const char* src, size_t bytes, char* dst) {
  memcpy(dst, src, bytes);
}
StreamFn PickStream() { return CopyBytes; }
#endif

template <typename Dtype>
void StreamOut(const Dtype* src, int n, Dtype* dst) {
  static const StreamFn stream = PickStream();
  stream(reinterpret_cast<const char*>(src), n * sizeof(Dtype),
         reinterpret_cast<char*>(dst));
}

// Orders the streamed stores before the batch is handed on (they are weakly
// ordered).
inline void StreamFence() {
#if DCD_STREAM_STORES
  _mm_sfence();
#endif
}

// out's rows (n of them, `width` long, one after another) are in's, each
// reversed; a row kernel, so the reversal is vectorised.
template <typename Dtype>
DCD_ROW_KERNEL void ReverseRows(const Dtype* in, int n, int width,
                                Dtype* out) {
  for (int r = 0; r < n; ++r) {
    const Dtype* src = in + r * width;
    Dtype* dst = out + r * width;
    for (int w = 0; w < width; ++w) dst[w] = src[width - 1 - w];
  }
}

}  // namespace

namespace {

// Binds the sampling functions to the layer's RNG.
class RngSampler : public IntSampler {
 public:
  explicit RngSampler(caffe::rng_t* rng) : rng_(rng) {}
  virtual int operator()(int n) { return (*rng_)() % n; }
 private:
  caffe::rng_t* rng_;
};

// decode_threads 0: one per core this process may run on, at most 8
// (docs/ASSUMPTIONS.md, "VideoData's decode threads").
int AutoDecodeThreads() {
  cpu_set_t set;
  int cores = 0;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) cores = CPU_COUNT(&set);
  if (cores < 1) cores = omp_get_num_procs();
  return std::max(1, std::min(cores, 8));
}

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
  CHECK(p.batch_size() > 0) << "VideoData " << name
      << ": batch_size must be at least 1, got 0";
  CHECK(p.num_segments() > 0) << "VideoData " << name
      << ": num_segments must be at least 1 (segments per video), got 0";
  CHECK(p.new_length() > 0) << "VideoData " << name
      << ": new_length must be at least 1 (frames per segment), got 0";
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

  if (p.num_classes() > 0) {
    for (size_t i = 0; i < lines_.size(); ++i) {
      CHECK_LT(lines_[i].label, static_cast<int>(p.num_classes()))
          << "VideoData " << name << ": " << source << ":"
          << VideoWhere(lines_[i]) << ": label " << lines_[i].label
          << " is not below num_classes " << p.num_classes()
          << " (labels are 0-based class indices)";
    }
  }

  // One pair of readers per decode thread. Every listed video must exist
  // with at least num_frames frames (FLOW: flow pairs; RGB_FLOW: frames,
  // and the flow of all but the last frame).
  const bool lmdb = p.backend() == VideoDataParameter_Backend_LMDB;
  const int threads = p.decode_threads() > 0 ?
      std::min<int>(p.decode_threads(), 256) : AutoDecodeThreads();
  workers_.resize(threads);
  for (int t = 0; t < threads; ++t) {
    for (int r = 0; r < 2; ++r) {
      const string& root = r == 0 || p.flow_root_folder().empty() ?
                           p.root_folder() : p.flow_root_folder();
      shared_ptr<VideoFrameReader>& reader =
          r == 0 ? workers_[t].reader : workers_[t].flow_reader;
      if (r == 1 && root == p.root_folder()) {
        reader = workers_[t].reader;
      } else if (lmdb) {
        reader.reset(NewLMDBFrameReader(root, p.name_pattern(),
                                        p.flow_name_pattern()));
      } else {
        reader.reset(NewFolderFrameReader(root, p.name_pattern(),
                                          p.flow_name_pattern()));
      }
    }
  }
  VideoFrameReader* reader = workers_[0].reader.get();
  VideoFrameReader* flow_reader = workers_[0].flow_reader.get();
  for (size_t i = 0; i < lines_.size(); ++i) {
    const VideoRecord& v = lines_[i];
    if (modality_ == VideoDataParameter_Modality_FLOW) {
      e = flow_reader->CheckFrames(v, true, v.num_frames);
    } else {
      e = reader->CheckFrames(v, false, v.num_frames);
      if (e.empty() && modality_ == VideoDataParameter_Modality_RGB_FLOW) {
        e = flow_reader->CheckFrames(v, true, v.num_frames - 1);
      }
    }
    CHECK(e.empty()) << "VideoData " << name << ": " << source << ":" << e;
  }
  LOG(INFO) << "VideoData " << name << ": " << lines_.size() << " videos";

  rng_.reset(new Caffe::RNG(caffe_rng_rand()));
  lines_id_ = 0;
  if (p.shuffle()) ShuffleVideos();

  // Output frame size: the crop, else the resize, else the first frame.
  // A crop must fit in the frames: checked here on the resize or the first
  // video's first image, and on every clip's images as they are read.
  cv::Size frame_size(p.new_width(), p.new_height());
  if (p.new_height() == 0) {
    cv::Mat first;
    const FrameKind kind = modality_ == VideoDataParameter_Modality_FLOW ?
                           FRAME_FLOW_X : FRAME_RGB;
    CHECK((kind == FRAME_RGB ? reader : flow_reader)->ReadImage(
              lines_[lines_id_], kind, 1, &first, &e))
        << "VideoData " << name << ": " << source << ":" << e;
    frame_size = cv::Size(first.cols, first.rows);
  }
  e = CheckCropFits(frame_size.width, frame_size.height);
  CHECK(e.empty()) << "VideoData " << name << ": " << e
      << (p.new_height() > 0 ? " (new_height x new_width)" : "")
      << (p.new_height() > 0 ? "" : " (" + source + ":" +
          VideoWhere(lines_[lines_id_]) + ")");
  if (tp.crop_size() > 0) {
    out_h_ = out_w_ = tp.crop_size();
  } else {
    out_h_ = frame_size.height;
    out_w_ = frame_size.width;
  }
  for (int t = 0; t < threads; ++t) {  // readers hold no snapshot between batches
    workers_[t].reader->EndBatch();
    workers_[t].flow_reader->EndBatch();
  }
  // Checked in floating point: the product of these uint32s can overflow
  // any integer type, and Blob::Reshape would only say "exceeds INT_MAX".
  const double top_count = static_cast<double>(p.batch_size()) *
      p.num_segments() * p.new_length() * channels_ * out_h_ * out_w_;
  CHECK_LE(top_count, std::numeric_limits<int>::max())
      << "VideoData " << name << ": the data top would hold "
      << std::fixed << std::setprecision(0) << top_count
      << " values (batch_size " << p.batch_size() << " x num_segments "
      << p.num_segments() << " x new_length " << p.new_length() << " x "
      << channels_ << " x " << out_h_ << " x " << out_w_
      << "), more than a blob can (INT_MAX)";
  LOG(INFO) << "VideoData " << name << ": " << threads << " decode threads";

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
void VideoDataLayer<Dtype>::ShuffleVideos() {
  shuffle(lines_.begin(), lines_.end(),
          static_cast<caffe::rng_t*>(rng_->generator()));
}

template <typename Dtype>
std::string VideoDataLayer<Dtype>::CheckCropFits(int width,
                                                 int height) const {
  const int crop = this->transform_param_.crop_size();
  if (crop <= width && crop <= height) return "";
  std::ostringstream s;
  s << "crop_size " << crop << " is larger than the " << width << "x"
    << height << " frames (crops are cut from a frame, not stretched; "
    << "lower crop_size or set new_height/new_width)";
  return s.str();
}

template <typename Dtype>
CropBox VideoDataLayer<Dtype>::ClipBox(const ClipPlan& clip, int width,
                                       int height) const {
  const VideoDataParameter& p = this->layer_param_.video_data_param();
  const int crop_size = this->transform_param_.crop_size();
  if (this->phase_ != TRAIN) {
    return CenterCrop(width, height, crop_size);
  }
  caffe::rng_t rng(clip.box_seed);
  RngSampler rand(&rng);
  return SampleMultiScaleCrop(width, height, crop_size, scale_ratios_,
                              p.max_distort(), p.fix_crop(),
                              p.more_fix_crop(), &rand);
}

template <typename Dtype>
typename VideoDataLayer<Dtype>::ClipPlan VideoDataLayer<Dtype>::NextClip() {
  const VideoDataParameter& p = this->layer_param_.video_data_param();
  ClipPlan clip;
  clip.video = lines_[lines_id_];
  if (++lines_id_ >= static_cast<int>(lines_.size())) {
    lines_id_ = 0;
    if (p.shuffle()) ShuffleVideos();
  }
  // One draw from the layer's stream per clip; the clip's own draws come
  // from a generator seeded with it, so no thread count changes them.
  caffe::rng_t rng((*static_cast<caffe::rng_t*>(rng_->generator()))());
  vector<int> offsets;
  if (this->phase_ == TRAIN) {
    RngSampler rand(&rng);
    offsets = TsnTrainOffsets(clip.video.num_frames, p.num_segments(),
                              p.new_length(), &rand);
  } else {
    offsets = TsnTestOffsets(clip.video.num_frames, p.num_segments(),
                             p.new_length());
  }
  clip.frames = ClipFrameIndices(offsets, p.new_length(),
                                 clip.video.num_frames);
  // Caffe's DataTransformer draws a mirror in any phase when mirror is set.
  clip.mirror = this->transform_param_.mirror() && rng() % 2;
  clip.box_seed = rng();
  return clip;
}

template <typename Dtype>
bool VideoDataLayer<Dtype>::ReadCropped(Worker* worker, const ClipPlan& clip,
    FrameKind kind, int frame, cv::Size* size, cv::Mat* out, float* scale_x,
    float* scale_y, std::string* error) {
  const VideoDataParameter& p = this->layer_param_.video_data_param();
  const int crop_size = this->transform_param_.crop_size();
  const VideoRecord& video = clip.video;
  VideoFrameReader* reader = kind == FRAME_RGB ? worker->reader.get() :
                             worker->flow_reader.get();
  cv::Mat& frame_buf = worker->frame_buf;
  const int new_h = p.new_height(), new_w = p.new_width();
  // An image cropped as stored needs only the box decoded (the box is known
  // from the image size: a JPEG's header). TRAIN's boxes are 168-256 of 340
  // columns and 256 rows, TEST's the centre 224 x 224.
  const RegionNeeded region = [&](const cv::Size& s) {
    if (crop_size == 0 || (new_h > 0 && s != cv::Size(new_w, new_h)) ||
        !CheckCropFits(s.width, s.height).empty()) {
      return cv::Rect(cv::Point(0, 0), s);
    }
    const CropBox b = ClipBox(clip, s.width, s.height);
    return cv::Rect(b.x, b.y, b.w, b.h);
  };
  if (!reader->ReadImage(video, kind, frame, &frame_buf, error, &region)) {
    return false;
  }
  const cv::Mat* img = &frame_buf;
  if (new_h > 0 && (frame_buf.rows != new_h || frame_buf.cols != new_w)) {
    worker->frame_resize.Run(frame_buf, cv::Size(new_w, new_h),
                             &worker->resized_buf);
    img = &worker->resized_buf;
  }
  const cv::Size image_size(img->cols, img->rows);
  if (size->width > 0 && image_size != *size) {
    std::ostringstream s;
    s << FrameWhere(video, frame, kind) << ": image is " << img->cols << "x"
      << img->rows << ", expected " << size->width << "x" << size->height
      << " like the frame's first image (set new_height/new_width)";
    *error = s.str();
    return false;
  }
  *size = image_size;
  // The clip's box: a function of its seed and the image size only.
  CropBox b;
  if (crop_size == 0) {
    if (img->cols != out_w_ || img->rows != out_h_) {
      std::ostringstream s;
      s << FrameWhere(video, frame, kind) << ": image is " << img->cols
        << "x" << img->rows << ", expected " << out_w_ << "x" << out_h_
        << " (set new_height/new_width or crop_size)";
      *error = s.str();
      return false;
    }
    b.x = b.y = 0;
    b.w = img->cols;
    b.h = img->rows;
  } else {
    const std::string fits = CheckCropFits(img->cols, img->rows);
    if (!fits.empty()) {
      *error = FrameWhere(video, frame, kind) + ": " + fits;
      return false;
    }
    b = ClipBox(clip, img->cols, img->rows);
  }
  const cv::Rect box(b.x, b.y, b.w, b.h);
  cv::Mat src = (*img)(box);
  if (box.width != out_w_ || box.height != out_h_) {
    worker->crop_resize.Run(src, cv::Size(out_w_, out_h_), out);
  } else {
    src.copyTo(*out);
  }
  *scale_x = static_cast<float>(img->cols) / frame_buf.cols * out_w_ /
             box.width;
  *scale_y = static_cast<float>(img->rows) / frame_buf.rows * out_h_ /
             box.height;
  return true;
}

template <typename Dtype>
bool VideoDataLayer<Dtype>::LoadFrame(Worker* worker, const ClipPlan& clip,
    int f, Dtype* dst, FrameResult* result) {
  const TransformationParameter& tp = this->transform_param_;
  const Dtype scale = tp.scale();
  const bool do_mirror = clip.mirror;
  const VideoRecord& video = clip.video;
  const int frame = clip.frames[f];
  const int plane = out_h_ * out_w_;
  const Dtype mean[3] = {mean_[0], mean_[1], mean_[2]};
  const bool want_rgb = modality_ != VideoDataParameter_Modality_FLOW;
  const bool want_flow = modality_ != VideoDataParameter_Modality_RGB;
  const bool flow_in_pixels =
      modality_ == VideoDataParameter_Modality_RGB_FLOW;
  // Quantised flow q -> pixels: q * step - bound.
  const float bound = this->layer_param_.video_data_param().flow_bound();
  const float step = 2 * bound / 255;
  cv::Size* size = &result->size;
  std::string* error = &result->error;
  *size = cv::Size(0, 0);
  float sx = 1, sy = 1;
  if (want_rgb) {
    if (!ReadCropped(worker, clip, FRAME_RGB, frame, size, &worker->rgb,
                     &sx, &sy, error)) {
      return false;
    }
    const cv::Mat& rgb = worker->rgb;
    // Each row converted in the worker's buffer (in L1), then streamed out;
    // a mirrored clip's row is reversed there, plane by plane (cv::flip of
    // the 3-byte pixels took 31 us per 224 x 224 frame, the reversal of the
    // float rows a few).
    vector<Dtype>& row = worker->row_buf;
    row.resize(6 * out_w_);
    Dtype* converted = &row[0];
    Dtype* out = do_mirror ? &row[3 * out_w_] : converted;
    for (int h = 0; h < out_h_; ++h) {
      BgrRowToPlanes(rgb.ptr<uchar>(h), out_w_, mean, scale, converted,
                     converted + out_w_, converted + 2 * out_w_);
      if (do_mirror) ReverseRows(converted, 3, out_w_, out);
      for (int c = 0; c < 3; ++c) {
        StreamOut(out + c * out_w_, out_w_, dst + c * plane + h * out_w_);
      }
    }
    StreamFence();
  }
  if (!want_flow) return true;
  // The frame's x and y flow images, cropped like the frame.
  auto read_flow_pair = [&]() {
    return ReadCropped(worker, clip, FRAME_FLOW_X, frame, size,
                       &worker->flow_x, &sx, &sy, error) &&
           ReadCropped(worker, clip, FRAME_FLOW_Y, frame, size,
                       &worker->flow_y, &sx, &sy, error);
  };
  const cv::Mat& flow_x = worker->flow_x;
  const cv::Mat& flow_y = worker->flow_y;
  if (flow_in_pixels) {
    Dtype* vy = dst + 3 * plane;
    Dtype* vx = vy + plane;
    if (frame >= video.num_frames) {
      // The last frame has no next frame (repeated frames: no motion).
      caffe_set(2 * plane, Dtype(0), vy);
      return true;
    }
    if (!read_flow_pair()) return false;
    const Dtype x_sign = do_mirror ? -1 : 1;
    for (int h = 0; h < out_h_; ++h) {
      const uchar* qx = flow_x.ptr<uchar>(h);
      const uchar* qy = flow_y.ptr<uchar>(h);
      for (int w = 0; w < out_w_; ++w) {
        const int src_w = do_mirror ? out_w_ - 1 - w : w;
        vy[h * out_w_ + w] = (qy[src_w] * step - bound) * sy;
        vx[h * out_w_ + w] = x_sign * (qx[src_w] * step - bound) * sx;
      }
    }
  } else {
    // TSN's flow stream: x then y of each pair, 255 - x when mirrored.
    if (!read_flow_pair()) return false;
    Dtype* dx = dst;
    Dtype* dy = dst + plane;
    for (int h = 0; h < out_h_; ++h) {
      const uchar* qx = flow_x.ptr<uchar>(h);
      const uchar* qy = flow_y.ptr<uchar>(h);
      for (int w = 0; w < out_w_; ++w) {
        const int src_w = do_mirror ? out_w_ - 1 - w : w;
        const int x = do_mirror ? 255 - qx[src_w] : qx[src_w];
        dx[h * out_w_ + w] = (x - mean[0]) * scale;
        dy[h * out_w_ + w] = (qy[src_w] - mean[0]) * scale;
      }
    }
  }
  return true;
}

// This function is called on the prefetch thread. Clips are drawn here in
// list order; their frames are decoded by workers_.size() threads, one
// frame per task; a clip with a bad frame is refused, or (skip_bad_videos)
// counted and replaced by the next video in the list in another round.
template <typename Dtype>
void VideoDataLayer<Dtype>::load_batch(Batch<Dtype>* batch) {
  CPUTimer batch_timer;
  batch_timer.Start();
  const VideoDataParameter& p = this->layer_param_.video_data_param();
  const string& name = this->layer_param_.name();
  const int batch_size = p.batch_size();
  const int frame_count = channels_ * out_h_ * out_w_;
  const int clip_count = frames_per_clip_ * frame_count;
  Dtype* data = batch->data_.mutable_cpu_data();
  Dtype* label = batch->label_.mutable_cpu_data();
  const int num_lines = lines_.size();
  int bad_in_a_row = 0;
  int filled = 0;  // items 0 .. filled-1 hold good clips, in list order
  vector<ClipPlan> clips;
  vector<FrameResult> results;
  while (filled < batch_size) {
    clips.resize(batch_size - filled);
    for (size_t c = 0; c < clips.size(); ++c) clips[c] = NextClip();
    const int tasks = clips.size() * frames_per_clip_;
    results.assign(tasks, FrameResult());
    const int threads = std::min<int>(workers_.size(), tasks);
    Dtype* first = data + filled * clip_count;
    #pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (int t = 0; t < tasks; ++t) {
      const int c = t / frames_per_clip_, f = t % frames_per_clip_;
      LoadFrame(&workers_[omp_get_thread_num()], clips[c], f,
                first + c * clip_count + f * frame_count, &results[t]);
    }
    for (size_t c = 0; c < clips.size(); ++c) {
      // The clip's first failure in frame order, or a frame whose size
      // differs from the clip's first.
      std::string error;
      const FrameResult* r = &results[c * frames_per_clip_];
      for (int f = 0; f < frames_per_clip_ && error.empty(); ++f) {
        if (!r[f].error.empty()) {
          error = r[f].error;
        } else if (r[f].size != r[0].size) {
          std::ostringstream s;
          s << FrameWhere(clips[c].video, clips[c].frames[f]) << ": image is "
            << r[f].size.width << "x" << r[f].size.height << ", expected "
            << r[0].size.width << "x" << r[0].size.height
            << " like the clip's first image (set new_height/new_width)";
          error = s.str();
        }
      }
      if (error.empty()) {
        // Good clips move up over skipped ones: the batch is the next
        // batch_size good clips in list order, as one thread would make it.
        Dtype* slot = first + c * clip_count;
        if (slot != data + filled * clip_count) {
          caffe_copy(clip_count, slot, data + filled * clip_count);
        }
        label[filled++] = clips[c].video.label;
        bad_in_a_row = 0;
        continue;
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
  for (size_t t = 0; t < workers_.size(); ++t) {
    workers_[t].reader->EndBatch();
    workers_[t].flow_reader->EndBatch();
  }
  batch_timer.Stop();
  DLOG(INFO) << "Prefetch batch: " << batch_timer.MilliSeconds() << " ms.";
}

INSTANTIATE_CLASS(VideoDataLayer);
REGISTER_LAYER_CLASS(VideoData);

}  // namespace caffe
#endif  // USE_OPENCV
