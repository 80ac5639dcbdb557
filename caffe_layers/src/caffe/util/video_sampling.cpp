#include "caffe/util/video_sampling.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace caffe {

namespace {

bool ParseInt(const std::string& s, int* value) {
  if (s.empty()) return false;
  errno = 0;
  char* end = NULL;
  const long v = strtol(s.c_str(), &end, 10);  // NOLINT(runtime/int)
  if (errno != 0 || *end != '\0' || v < -2147483647L || v > 2147483647L) {
    return false;
  }
  *value = static_cast<int>(v);
  return true;
}

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' ||
         c == '\f';
}

}  // namespace

bool ParseVideoListLine(const std::string& text, int line_number,
                        VideoRecord* record, std::string* error) {
  std::ostringstream msg;
  msg << "line " << line_number << ": ";
  // Split off the last two whitespace-separated fields from the right.
  int end = static_cast<int>(text.size());
  std::string fields[2];
  for (int f = 1; f >= 0; --f) {
    while (end > 0 && IsSpace(text[end - 1])) --end;
    int begin = end;
    while (begin > 0 && !IsSpace(text[begin - 1])) --begin;
    fields[f] = text.substr(begin, end - begin);
    end = begin;
  }
  while (end > 0 && IsSpace(text[end - 1])) --end;
  int begin = 0;
  while (begin < end && IsSpace(text[begin])) ++begin;
  const std::string id = text.substr(begin, end - begin);
  if (id.empty() || fields[0].empty() || fields[1].empty()) {
    msg << "expected \"video_id num_frames label\", got \"" << text << "\"";
    *error = msg.str();
    return false;
  }
  int num_frames = 0, label = 0;
  if (!ParseInt(fields[0], &num_frames) || num_frames <= 0) {
    msg << "num_frames must be a positive integer, got \"" << fields[0]
        << "\"";
    *error = msg.str();
    return false;
  }
  if (!ParseInt(fields[1], &label) || label < 0) {
    msg << "label must be a non-negative integer, got \"" << fields[1]
        << "\"";
    *error = msg.str();
    return false;
  }
  record->id = id;
  record->num_frames = num_frames;
  record->label = label;
  record->line = line_number;
  return true;
}

std::string ParseVideoList(const std::string& contents,
                           const std::string& source,
                           std::vector<VideoRecord>* records) {
  records->clear();
  std::istringstream in(contents);
  std::string text;
  int line_number = 0;
  while (std::getline(in, text)) {
    ++line_number;
    bool blank = true;
    for (size_t i = 0; i < text.size() && blank; ++i) {
      blank = IsSpace(text[i]);
    }
    if (blank) continue;
    VideoRecord record;
    std::string error;
    if (!ParseVideoListLine(text, line_number, &record, &error)) {
      return source + ":" + error;
    }
    records->push_back(record);
  }
  if (records->empty()) {
    return source + ": the video list is empty";
  }
  return "";
}

std::vector<int> TsnTrainOffsets(int num_frames, int num_segments,
                                 int new_length, IntSampler* rand) {
  std::vector<int> offsets(num_segments, 0);
  const int span = num_frames - new_length + 1;
  const int average_duration = span > 0 ? span / num_segments : 0;
  if (average_duration > 0) {
    for (int k = 0; k < num_segments; ++k) {
      offsets[k] = k * average_duration + (*rand)(average_duration);
    }
  } else if (num_frames > num_segments && span > 0) {
    // Fewer start positions than segments: draw with replacement, in order.
    for (int k = 0; k < num_segments; ++k) offsets[k] = (*rand)(span);
    std::sort(offsets.begin(), offsets.end());
  }
  return offsets;
}

std::vector<int> TsnTestOffsets(int num_frames, int num_segments,
                                int new_length) {
  std::vector<int> offsets(num_segments, 0);
  if (num_frames > num_segments + new_length - 1) {
    const double tick =
        static_cast<double>(num_frames - new_length + 1) / num_segments;
    for (int k = 0; k < num_segments; ++k) {
      offsets[k] = static_cast<int>(tick / 2.0 + tick * k);
    }
  }
  return offsets;
}

std::vector<int> ClipFrameIndices(const std::vector<int>& offsets,
                                  int new_length, int num_frames) {
  std::vector<int> frames;
  frames.reserve(offsets.size() * new_length);
  for (size_t k = 0; k < offsets.size(); ++k) {
    for (int j = 0; j < new_length; ++j) {
      frames.push_back(std::min(offsets[k] + 1 + j, num_frames));
    }
  }
  return frames;
}

std::vector<int> MultiScaleCropSides(int base_size,
                                     const std::vector<float>& ratios,
                                     int crop_size) {
  std::vector<int> sides;
  for (size_t i = 0; i < ratios.size(); ++i) {
    int side = static_cast<int>(base_size * ratios[i]);
    // Sides within 3 px of the output size are taken as the output size, so
    // the common 256 -> 224 (.875) case needs no resize.
    if (std::abs(side - crop_size) < 3) side = crop_size;
    sides.push_back(side);
  }
  return sides;
}

std::vector<std::pair<int, int> > MultiScaleCropPairs(
    const std::vector<int>& sides, int max_distort) {
  std::vector<std::pair<int, int> > pairs;
  const int n = static_cast<int>(sides.size());
  for (int i = 0; i < n; ++i) {      // height index
    for (int j = 0; j < n; ++j) {    // width index
      if (std::abs(i - j) <= max_distort) {
        pairs.push_back(std::make_pair(sides[j], sides[i]));
      }
    }
  }
  return pairs;
}

std::vector<std::pair<int, int> > FixCropOffsets(bool more_fix_crop,
                                                 int image_w, int image_h,
                                                 int crop_w, int crop_h) {
  const int ws = (image_w - crop_w) / 4;
  const int hs = (image_h - crop_h) / 4;
  std::vector<std::pair<int, int> > ret;
  ret.push_back(std::make_pair(0, 0));            // upper left
  ret.push_back(std::make_pair(4 * ws, 0));       // upper right
  ret.push_back(std::make_pair(0, 4 * hs));       // lower left
  ret.push_back(std::make_pair(4 * ws, 4 * hs));  // lower right
  ret.push_back(std::make_pair(2 * ws, 2 * hs));  // centre
  if (more_fix_crop) {
    ret.push_back(std::make_pair(0, 2 * hs));       // centre left
    ret.push_back(std::make_pair(4 * ws, 2 * hs));  // centre right
    ret.push_back(std::make_pair(2 * ws, 4 * hs));  // lower centre
    ret.push_back(std::make_pair(2 * ws, 0));       // upper centre
    ret.push_back(std::make_pair(1 * ws, 1 * hs));  // upper left quarter
    ret.push_back(std::make_pair(3 * ws, 1 * hs));  // upper right quarter
    ret.push_back(std::make_pair(1 * ws, 3 * hs));  // lower left quarter
    ret.push_back(std::make_pair(3 * ws, 3 * hs));  // lower right quarter
  }
  return ret;
}

CropBox SampleMultiScaleCrop(int image_w, int image_h, int crop_size,
                             const std::vector<float>& ratios,
                             int max_distort, bool fix_crop,
                             bool more_fix_crop, IntSampler* rand) {
  std::pair<int, int> size(crop_size, crop_size);
  if (!ratios.empty()) {
    const std::vector<std::pair<int, int> > pairs = MultiScaleCropPairs(
        MultiScaleCropSides(std::min(image_w, image_h), ratios, crop_size),
        max_distort);
    size = pairs[(*rand)(static_cast<int>(pairs.size()))];
  }
  // A snapped side may exceed a small image; never crop outside it.
  CropBox box;
  box.w = std::min(size.first, image_w);
  box.h = std::min(size.second, image_h);
  if (fix_crop) {
    const std::vector<std::pair<int, int> > offsets =
        FixCropOffsets(more_fix_crop, image_w, image_h, box.w, box.h);
    const std::pair<int, int>& o =
        offsets[(*rand)(static_cast<int>(offsets.size()))];
    box.x = o.first;
    box.y = o.second;
  } else {
    box.x = (*rand)(image_w - box.w + 1);
    box.y = (*rand)(image_h - box.h + 1);
  }
  return box;
}

CropBox CenterCrop(int image_w, int image_h, int crop_size) {
  CropBox box;
  box.w = std::min(crop_size, image_w);
  box.h = std::min(crop_size, image_h);
  box.x = (image_w - box.w) / 2;
  box.y = (image_h - box.h) / 2;
  return box;
}

}  // namespace caffe
