// Where the VideoData layer's frames come from: frame folders of JPEGs
// (tools/extract_frames.py, tools/extract_flow.py) or an LMDB of encoded
// Datums (tools/build_lmdb.py), behind one reader interface.
//
// Errors are returned as text that names the list line, the video, the frame
// and the file or key, so the layer can stop or skip the video with a
// message a user can act on.
#ifndef CAFFE_UTIL_VIDEO_FRAMES_HPP_
#define CAFFE_UTIL_VIDEO_FRAMES_HPP_

#ifdef USE_OPENCV
#include <opencv2/core/core.hpp>

#include <functional>
#include <string>

#include "caffe/util/video_sampling.hpp"

namespace caffe {

// The images a VideoData layer reads for frame t: the RGB frame, or the x or
// y component of the flow from frame t to t + 1 (tools/extract_flow.py).
enum FrameKind { FRAME_RGB = 0, FRAME_FLOW_X = 1, FRAME_FLOW_Y = 2 };

// Checks a printf-style file name pattern before it is used: its %
// conversions, in order, must be `conversions` ("d": one integer, the RGB
// name_pattern; "cd": a character then an integer, flow_name_pattern).
// Returns "" or the reason; %% is a literal percent sign.
std::string CheckNamePattern(const std::string& pattern,
                             const std::string& conversions);

// The name of image `frame` of `kind`: name_pattern % frame, or
// flow_name_pattern % ('x' or 'y', frame). Patterns must pass
// CheckNamePattern ("d" and "cd").
std::string FrameFileName(const std::string& name_pattern,
                          const std::string& flow_name_pattern,
                          FrameKind kind, int frame);

// "line 3: video 'v_1'" and "line 3: video 'v_1' flow_x 7", for messages.
std::string VideoWhere(const VideoRecord& video);
std::string FrameWhere(const VideoRecord& video, int frame,
                       FrameKind kind = FRAME_RGB);

// The box of an image that its reader will use, given the image's size
// (read from the file's header before decoding); the whole image for all.
// A JPEG decoder then leaves the pixels outside it undefined, and those
// inside are the pixels of a whole decode (DecodeFrameBytes).
typedef std::function<cv::Rect(const cv::Size&)> RegionNeeded;

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
  // frame) when missing or corrupt. `region`, when given, says which
  // pixels the caller reads (RegionNeeded).
  virtual bool ReadImage(const VideoRecord& video, FrameKind kind, int frame,
                         cv::Mat* image, std::string* error,
                         const RegionNeeded* region = NULL) = 0;
  bool ReadFrame(const VideoRecord& video, int frame, cv::Mat* image,
                 std::string* error) {
    return ReadImage(video, FRAME_RGB, frame, image, error);
  }
  // Called around each batch so readers can hold per-batch resources.
  virtual void BeginBatch() {}
  virtual void EndBatch() {}
};

// Both readers name image `frame` of a video FrameFileName(name_pattern,
// flow_name_pattern, kind, frame) (VideoDataParameter's defaults:
// img_%05d.jpg, flow_%c_%05d.jpg) and stop if a pattern fails
// CheckNamePattern.
//
// Frames as files: root_folder/video_id/<name>.
VideoFrameReader* NewFolderFrameReader(const std::string& root_folder,
                                       const std::string& name_pattern,
                                       const std::string& flow_name_pattern);
// Frames in an LMDB written by tools/build_lmdb.py: key "video_id/<name>"
// -> encoded Datum (flow: 1-channel); "__video__/video_id" -> frame count,
// "__flow__/video_id" -> flow pair count (ASCII decimal). One LMDB
// environment per path and process, shared by all readers of that path.
VideoFrameReader* NewLMDBFrameReader(const std::string& path,
                                     const std::string& name_pattern,
                                     const std::string& flow_name_pattern);

// Decodes encoded image bytes to BGR (grey: 8-bit single channel). JPEGs
// are decoded by libjpeg(-turbo) with its warnings treated as errors: a
// truncated file or corrupt entropy data (which libjpeg only warns about,
// filling the rest grey, and cv::imdecode hides) is a failed decode. Other
// formats go to cv::imdecode. On failure *image is left empty, never
// holding a previous frame. With `region`, a JPEG's IDCT, upsampling and
// colour conversion run only on the needed columns and rows and a margin
// (libjpeg-turbo's jpeg_crop_scanline and jpeg_skip_scanlines); every row
// is still entropy-decoded, so damage anywhere in the file fails the decode
// as before.
bool DecodeFrameBytes(const char* data, size_t size, cv::Mat* image,
                      bool grey = false, const RegionNeeded* region = NULL);

}  // namespace caffe

#endif  // USE_OPENCV
#endif  // CAFFE_UTIL_VIDEO_FRAMES_HPP_
