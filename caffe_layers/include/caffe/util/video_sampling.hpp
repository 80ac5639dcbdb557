// TSN-style clip sampling and crop geometry for the VideoData layer.
//
// Pure functions (no I/O, randomness passed in) so the exact index and
// geometry rules can be unit-tested apart from the layer. Conventions follow
// the TSN repository: frames are numbered from 1, offsets are 0-based.
#ifndef CAFFE_UTIL_VIDEO_SAMPLING_HPP_
#define CAFFE_UTIL_VIDEO_SAMPLING_HPP_

#include <string>
#include <utility>
#include <vector>

namespace caffe {

// One line of a TSN file list: "video_id num_frames label".
struct VideoRecord {
  std::string id;
  int num_frames;
  int label;
  int line;  // 1-based line number in the list file, for error messages
};

// Parses one list line. Returns false and fills *error (naming the line)
// for malformed lines. The id is everything before the last two fields, so
// ids containing spaces survive.
bool ParseVideoListLine(const std::string& text, int line_number,
                        VideoRecord* record, std::string* error);

// Parses a whole list; blank lines are skipped. Returns "" on success,
// otherwise the first error (with its line number); an empty list is an
// error too. `source` only names the file in messages.
std::string ParseVideoList(const std::string& contents,
                           const std::string& source,
                           std::vector<VideoRecord>* records);

// Uniform integer in [0, n); n > 0. The layer binds this to its own RNG.
class IntSampler {
 public:
  virtual ~IntSampler() {}
  virtual int operator()(int n) = 0;
};

// TSN training offsets (0-based start of each segment's snippet):
// avg = (n - L + 1) / K (integer); if avg > 0: offset_k = k*avg + U[0, avg);
// elif n > K and n - L + 1 > 0: K sorted draws from U[0, n - L + 1);
// else zeros.
std::vector<int> TsnTrainOffsets(int num_frames, int num_segments,
                                 int new_length, IntSampler* rand);

// TSN test offsets: if n > K + L - 1: tick = (n - L + 1) / K (real);
// offset_k = int(tick / 2 + tick * k); else zeros. Deterministic.
std::vector<int> TsnTestOffsets(int num_frames, int num_segments,
                                int new_length);

// 1-based frame numbers of a clip, segment-major: for each offset, L
// consecutive frames offset+1 .. offset+L, clamped at num_frames (TSN
// repeats the last frame when a video is shorter than the snippet).
std::vector<int> ClipFrameIndices(const std::vector<int>& offsets,
                                  int new_length, int num_frames);

struct CropBox {
  int x, y, w, h;  // top-left corner and size, in pixels
};

// Crop sides for multi-scale cropping: int(base * ratio) for each ratio,
// snapped to crop_size when within 3 pixels of it (as TSN does).
std::vector<int> MultiScaleCropSides(int base_size,
                                     const std::vector<float>& ratios,
                                     int crop_size);

// Candidate (w, h) pairs: sides[j] x sides[i] with |i - j| <= max_distort.
std::vector<std::pair<int, int> > MultiScaleCropPairs(
    const std::vector<int>& sides, int max_distort);

// TSN's fixed crop positions (x, y) for a crop_w x crop_h crop in an
// image_w x image_h image, with steps (image - crop) / 4: the 4 corners and
// the centre; more_fix_crop adds centre-left, centre-right, lower-centre,
// upper-centre and the four quarter points (steps 1 and 3).
std::vector<std::pair<int, int> > FixCropOffsets(bool more_fix_crop,
                                                 int image_w, int image_h,
                                                 int crop_w, int crop_h);

// One TRAIN crop for a clip: a (w, h) pair drawn from the multi-scale
// candidates (ratios empty: crop_size x crop_size, no scale jitter), placed
// at a random fixed position (fix_crop) or anywhere. The caller resizes the
// box to crop_size x crop_size.
CropBox SampleMultiScaleCrop(int image_w, int image_h, int crop_size,
                             const std::vector<float>& ratios,
                             int max_distort, bool fix_crop,
                             bool more_fix_crop, IntSampler* rand);

// TEST crop: crop_size x crop_size at ((W - c) / 2, (H - c) / 2), like
// Caffe's DataTransformer.
CropBox CenterCrop(int image_w, int image_h, int crop_size);

}  // namespace caffe

#endif  // CAFFE_UTIL_VIDEO_SAMPLING_HPP_
