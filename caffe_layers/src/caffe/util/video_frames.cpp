#ifdef USE_OPENCV
#include "caffe/util/video_frames.hpp"

#include <setjmp.h>
#include <sys/stat.h>

#include <opencv2/imgcodecs/imgcodecs.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "caffe/common.hpp"
#include "caffe/proto/caffe.pb.h"

// libjpeg(-turbo) directly, for its warnings (module comment of
// DecodeFrameBytes); jpeglib.h needs stdio's FILE and size_t first.
#include <jpeglib.h>

#ifdef USE_LMDB
#include <boost/thread/mutex.hpp>
#include <boost/weak_ptr.hpp>
#include <map>

#include "lmdb.h"
#endif

namespace caffe {

std::string CheckNamePattern(const std::string& pattern,
                             const std::string& conversions) {
  std::string found;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != '%') continue;
    size_t j = i + 1;
    if (j < pattern.size() && pattern[j] == '%') {
      i = j;
      continue;
    }
    // Flags and width only: no precision, length or '*' (they could read
    // arguments that are not passed).
    while (j < pattern.size() && std::string("-+ #0").find(pattern[j]) !=
           std::string::npos) {
      ++j;
    }
    while (j < pattern.size() && pattern[j] >= '0' && pattern[j] <= '9') ++j;
    if (j >= pattern.size()) {
      return "name pattern '" + pattern + "' ends inside a % conversion";
    }
    const char c = pattern[j];
    if (c == 'i' || c == 'u') {
      found += 'd';
    } else if (c == 'd' || c == 'c') {
      found += c;
    } else {
      return "name pattern '" + pattern + "' has an unsupported conversion %" +
             std::string(1, c);
    }
    i = j;
  }
  if (found != conversions) {
    std::ostringstream s;
    s << "name pattern '" << pattern << "' must hold ";
    if (conversions == "d") {
      s << "one integer conversion (e.g. %05d) for the frame number";
    } else {
      s << "a %c (x or y) followed by one integer conversion (e.g. %05d)";
    }
    return s.str();
  }
  return "";
}

namespace {

// snprintf into a buffer as long as the name needs (no silent truncation).
// The RGB pattern has one conversion: C ignores the surplus argument.
std::string Format(const std::string& pattern, int a, int b) {
  std::vector<char> buf(64);
  for (;;) {
    const int n = snprintf(&buf[0], buf.size(), pattern.c_str(), a, b);
    CHECK_GE(n, 0) << "cannot format name pattern '" << pattern << "'";
    if (static_cast<size_t>(n) < buf.size()) return std::string(&buf[0], n);
    buf.resize(n + 1);
  }
}

const char* KindName(FrameKind kind) {
  return kind == FRAME_RGB ? "frame" :
         (kind == FRAME_FLOW_X ? "flow_x" : "flow_y");
}

// The readers' patterns, checked once when a reader is made.
class FrameNames {
 public:
  FrameNames(const std::string& pattern, const std::string& flow_pattern)
      : pattern_(pattern), flow_pattern_(flow_pattern) {
    std::string e = CheckNamePattern(pattern_, "d");
    CHECK(e.empty()) << "VideoData name_pattern: " << e;
    e = CheckNamePattern(flow_pattern_, "cd");
    CHECK(e.empty()) << "VideoData flow_name_pattern: " << e;
  }
  std::string operator()(FrameKind kind, int frame) const {
    return FrameFileName(pattern_, flow_pattern_, kind, frame);
  }

 private:
  std::string pattern_, flow_pattern_;
};

class FolderFrameReader : public VideoFrameReader {
 public:
  FolderFrameReader(const std::string& root, const std::string& pattern,
                    const std::string& flow_pattern)
      : root_(root), names_(pattern, flow_pattern) {
    if (!root_.empty() && root_[root_.size() - 1] != '/') root_ += '/';
  }

  virtual std::string CheckFrames(const VideoRecord& video, bool flow,
                                  int count) {
    // Stat only the last image: cheap, and catches lists whose frame counts
    // do not match the extracted frames.
    if (count < 1) return "";
    const FrameKind kinds[] = {flow ? FRAME_FLOW_X : FRAME_RGB, FRAME_FLOW_Y};
    for (int k = 0; k < (flow ? 2 : 1); ++k) {
      const std::string path = Path(video, kinds[k], count);
      struct stat st;
      if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
        std::ostringstream s;
        s << VideoWhere(video) << ": num_frames is " << video.num_frames
          << " but " << path << " does not exist";
        return s.str();
      }
    }
    return "";
  }

  virtual bool ReadImage(const VideoRecord& video, FrameKind kind, int frame,
                         cv::Mat* image, std::string* error,
                         const RegionNeeded* region = NULL) {
    const std::string path = Path(video, kind, frame);
    FILE* f = fopen(path.c_str(), "rb");
    if (f == NULL) {
      *error = FrameWhere(video, frame, kind) + ": cannot open " + path;
      return false;
    }
    fseek(f, 0, SEEK_END);
    const long size = ftell(f);  // NOLINT(runtime/int)
    fseek(f, 0, SEEK_SET);
    bytes_.resize(size > 0 ? size : 0);
    const size_t got = size > 0 ? fread(&bytes_[0], 1, size, f) : 0;
    fclose(f);
    if (size <= 0 || got != static_cast<size_t>(size) ||
        !DecodeFrameBytes(&bytes_[0], got, image, kind != FRAME_RGB,
                          region)) {
      *error = FrameWhere(video, frame, kind) + ": cannot decode " + path +
               " (empty, truncated or not an image)";
      return false;
    }
    return true;
  }

 private:
  std::string Path(const VideoRecord& video, FrameKind kind,
                   int frame) const {
    return root_ + video.id + "/" + names_(kind, frame);
  }

  std::string root_;
  FrameNames names_;
  std::vector<char> bytes_;  // reused file buffer
};

#ifdef USE_LMDB
void CheckLMDB(int rc, const std::string& path, const char* what) {
  CHECK_EQ(rc, MDB_SUCCESS) << "VideoData: LMDB " << path << ": " << what
                            << ": " << mdb_strerror(rc);
}

// One read-only environment per LMDB path and process, shared by every
// reader of that path. LMDB must not be opened twice in one process: the
// second open re-initialises the lock table and the first environment's
// readers then fail (MDB_BAD_RSLOT), and a train_val net opens the same
// LMDB from its TRAIN and its TEST data layer.
class SharedLMDBEnv {
 public:
  static shared_ptr<SharedLMDBEnv> Open(const std::string& path) {
    static boost::mutex mutex;
    static std::map<std::string, boost::weak_ptr<SharedLMDBEnv> > open;
    boost::mutex::scoped_lock lock(mutex);
    shared_ptr<SharedLMDBEnv> env = open[path].lock();
    if (!env) {
      env.reset(new SharedLMDBEnv(path));
      open[path] = env;
    }
    return env;
  }
  ~SharedLMDBEnv() { mdb_env_close(env_); }
  MDB_env* get() const { return env_; }

 private:
  explicit SharedLMDBEnv(const std::string& path) : env_(NULL) {
    CheckLMDB(mdb_env_create(&env_), path, "mdb_env_create");
    // NOTLS: a read transaction is made on the setup thread and used on
    // the prefetch thread. NORDAHEAD: access is random by key.
    CheckLMDB(mdb_env_open(env_, path.c_str(),
                           MDB_RDONLY | MDB_NOTLS | MDB_NORDAHEAD, 0664),
              path, "mdb_env_open");
  }
  MDB_env* env_;
};

class LMDBFrameReader : public VideoFrameReader {
 public:
  LMDBFrameReader(const std::string& path, const std::string& pattern,
                  const std::string& flow_pattern)
      : path_(path), names_(pattern, flow_pattern),
        env_(SharedLMDBEnv::Open(path)), txn_(NULL), active_(false) {
    Check(mdb_txn_begin(env_->get(), NULL, MDB_RDONLY, &txn_),
          "mdb_txn_begin");
    Check(mdb_dbi_open(txn_, NULL, 0, &dbi_), "mdb_dbi_open");
    active_ = true;
  }
  virtual ~LMDBFrameReader() {
    if (txn_ != NULL) mdb_txn_abort(txn_);
  }

  virtual std::string CheckFrames(const VideoRecord& video, bool flow,
                                  int count) {
    if (count < 1) return "";
    BeginBatch();
    MDB_val value;
    std::ostringstream s;
    const std::string marker = (flow ? "__flow__/" : "__video__/") + video.id;
    if (!Get(marker, &value)) {
      s << VideoWhere(video) << ": " << (flow ? "flow " : "")
        << "not in LMDB " << path_ << " (no " << marker << " marker)";
      return s.str();
    }
    const std::string text(static_cast<const char*>(value.mv_data),
                           value.mv_size);
    const int stored = atoi(text.c_str());
    if (stored < count) {
      s << VideoWhere(video) << ": num_frames is " << video.num_frames
        << " but LMDB " << path_ << " holds " << stored
        << (flow ? " flow pairs" : " frames");
      if (flow && count != video.num_frames) {
        s << " (RGB_FLOW needs num_frames - 1)";
      }
      return s.str();
    }
    return "";
  }

  virtual bool ReadImage(const VideoRecord& video, FrameKind kind, int frame,
                         cv::Mat* image, std::string* error,
                         const RegionNeeded* region = NULL) {
    BeginBatch();
    MDB_val value;
    const std::string key = video.id + "/" + names_(kind, frame);
    if (!Get(key, &value)) {
      *error = FrameWhere(video, frame, kind) + ": key " + key +
               " not in LMDB " + path_;
      return false;
    }
    // Values are mapped memory, valid until the transaction is reset.
    if (!datum_.ParseFromArray(value.mv_data, value.mv_size) ||
        !datum_.encoded()) {
      *error = FrameWhere(video, frame, kind) + ": value of " + key +
               " is not an encoded Datum";
      return false;
    }
    if (!DecodeFrameBytes(datum_.data().data(), datum_.data().size(),
                          image, kind != FRAME_RGB, region)) {
      *error = FrameWhere(video, frame, kind) + ": cannot decode " + key +
               " (truncated or not an image)";
      return false;
    }
    return true;
  }

  // Keep the reader slot between batches; reset releases the snapshot.
  virtual void BeginBatch() {
    if (!active_) {
      Check(mdb_txn_renew(txn_), "mdb_txn_renew");
      active_ = true;
    }
  }
  virtual void EndBatch() {
    if (active_) {
      mdb_txn_reset(txn_);
      active_ = false;
    }
  }

 private:
  void Check(int rc, const char* what) { CheckLMDB(rc, path_, what); }
  bool Get(const std::string& key, MDB_val* value) {
    MDB_val k;
    k.mv_size = key.size();
    k.mv_data = const_cast<char*>(key.data());
    const int rc = mdb_get(txn_, dbi_, &k, value);
    if (rc == MDB_NOTFOUND) return false;
    Check(rc, "mdb_get");
    return true;
  }

  std::string path_;
  FrameNames names_;
  shared_ptr<SharedLMDBEnv> env_;  // outlives txn_ (declared before it)
  MDB_txn* txn_;
  MDB_dbi dbi_;
  bool active_;
  Datum datum_;  // reused to keep its buffer
};
#endif  // USE_LMDB

}  // namespace

std::string FrameFileName(const std::string& name_pattern,
                          const std::string& flow_name_pattern,
                          FrameKind kind, int frame) {
  if (kind == FRAME_RGB) return Format(name_pattern, frame, 0);
  return Format(flow_name_pattern, kind == FRAME_FLOW_X ? 'x' : 'y', frame);
}

std::string VideoWhere(const VideoRecord& video) {
  std::ostringstream s;
  s << "line " << video.line << ": video '" << video.id << "'";
  return s.str();
}

std::string FrameWhere(const VideoRecord& video, int frame, FrameKind kind) {
  std::ostringstream s;
  s << VideoWhere(video) << " " << KindName(kind) << " " << frame;
  return s.str();
}

VideoFrameReader* NewFolderFrameReader(const std::string& root_folder,
                                       const std::string& name_pattern,
                                       const std::string& flow_name_pattern) {
  return new FolderFrameReader(root_folder, name_pattern, flow_name_pattern);
}

VideoFrameReader* NewLMDBFrameReader(const std::string& path,
                                     const std::string& name_pattern,
                                     const std::string& flow_name_pattern) {
#ifdef USE_LMDB
  return new LMDBFrameReader(path, name_pattern, flow_name_pattern);
#else
  LOG(FATAL) << "VideoData: LMDB backend needs Caffe built with USE_LMDB";
  return NULL;
#endif
}

namespace {

// libjpeg error manager for DecodeJpeg: errors and warnings (libjpeg's
// "corrupt data" messages: truncated file, bad Huffman codes, extraneous
// bytes) both end the decode through longjmp.
struct StrictJpegErrors {
  jpeg_error_mgr mgr;
  jmp_buf jump;
};

void JpegFail(j_common_ptr cinfo) {
  longjmp(reinterpret_cast<StrictJpegErrors*>(cinfo->err)->jump, 1);
}

void JpegMessage(j_common_ptr cinfo, int level) {
  if (level < 0) JpegFail(cinfo);  // a warning: the data are corrupt
}

// Columns and rows decoded beyond each side of the needed ones. Fancy
// upsampling (libjpeg's default) reads one chroma sample to each side, at
// most 4 pixels across (4:1:1) and 2 down (4:2:0), and treats a cropped
// region's edge as the image's edge; with twice that margin across, and a
// whole iMCU row (16) down, the needed pixels are those of a whole decode
// (gtest VideoFramesTest.RegionDecodeMatchesWholeDecode).
const int kColumnMargin = 8;
const int kRowMargin = 16;

// 0: decoded; 1: corrupt; -1: a JPEG this path leaves to OpenCV (CMYK).
int DecodeJpeg(const unsigned char* data, size_t size, cv::Mat* image,
               bool grey, const RegionNeeded* region) {
  jpeg_decompress_struct cinfo;
  StrictJpegErrors err;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = JpegFail;
  err.mgr.emit_message = JpegMessage;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    image->release();
    return 1;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, const_cast<unsigned char*>(data),
               static_cast<unsigned long>(size));  // NOLINT(runtime/int)
  jpeg_read_header(&cinfo, TRUE);
  if (cinfo.jpeg_color_space == JCS_CMYK ||
      cinfo.jpeg_color_space == JCS_YCCK) {
    jpeg_destroy_decompress(&cinfo);
    return -1;
  }
  // BGR straight from libjpeg-turbo (no conversion copy); the other
  // settings are libjpeg's defaults, as in cv::imdecode.
  cinfo.out_color_space = grey ? JCS_GRAYSCALE : JCS_EXT_BGR;
  jpeg_start_decompress(&cinfo);
  image->create(cinfo.output_height, cinfo.output_width,
                grey ? CV_8UC1 : CV_8UC3);
  // The decoded columns [x0, x0 + w) and rows [y0, y1): the needed ones and
  // the margins; libjpeg-turbo widens the columns to whole iMCU columns.
  const int width = cinfo.output_width, height = cinfo.output_height;
  JDIMENSION x0 = 0, w = width;
  int y0 = 0, y1 = height;
  if (region != NULL) {
    const cv::Rect need = (*region)(cv::Size(width, height)) &
                          cv::Rect(0, 0, width, height);
    const int c0 = std::max(0, need.x - kColumnMargin);
    const int c1 = std::min(width, need.x + need.width + kColumnMargin);
    if (c0 > 0 || c1 < width) {
      x0 = c0;
      w = c1 - c0;
      jpeg_crop_scanline(&cinfo, &x0, &w);
    }
    y0 = std::max(0, need.y - kRowMargin);
    y1 = std::min(height, need.y + need.height + kRowMargin);
  }
  const int channels = grey ? 1 : 3;
  // Skipped rows are still entropy-decoded (jpeg_skip_scanlines), so damage
  // in them still warns; but a skip to the very end jumps there without
  // reading, so the last row is always decoded.
  const int last = height - 1;
  y0 = std::min(y0, last);
  y1 = std::max(y1, y0);
  if (y0 > 0) jpeg_skip_scanlines(&cinfo, y0);
  if (y1 < last) {
    while (static_cast<int>(cinfo.output_scanline) < y1) {
      JSAMPROW row = image->ptr<unsigned char>(cinfo.output_scanline) +
                     x0 * channels;
      jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_skip_scanlines(&cinfo, last - y1);
  }
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = image->ptr<unsigned char>(cinfo.output_scanline) +
                   x0 * channels;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);  // reads to EOI: truncation warns here
  jpeg_destroy_decompress(&cinfo);
  return 0;
}

}  // namespace

bool DecodeFrameBytes(const char* data, size_t size, cv::Mat* image,
                      bool grey, const RegionNeeded* region) {
  const unsigned char* b = reinterpret_cast<const unsigned char*>(data);
  if (size >= 2 && b[0] == 0xFF && b[1] == 0xD8) {
    const int rc = DecodeJpeg(b, size, image, grey, region);
    if (rc >= 0) return rc == 0;
  }
  // Never leave the previous image in *image: imdecode keeps it on failure.
  image->release();
  if (size == 0) return false;
  const cv::Mat buf(1, static_cast<int>(size), CV_8UC1,
                    const_cast<unsigned char*>(b));
  cv::imdecode(buf, grey ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR, image);
  return !image->empty() && image->type() == (grey ? CV_8UC1 : CV_8UC3);
}

}  // namespace caffe
#endif  // USE_OPENCV
