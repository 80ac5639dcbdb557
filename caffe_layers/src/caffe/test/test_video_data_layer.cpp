#ifdef USE_OPENCV
#include <boost/filesystem.hpp>
#include <opencv2/core/core.hpp>
#include <opencv2/imgcodecs/imgcodecs.hpp>
#include <opencv2/imgproc/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <fstream>  // NOLINT(readability/streams)
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

// After <cstdio>: jpeglib.h needs FILE and size_t first.
#include <jpeglib.h>

#include "gtest/gtest.h"

#include "caffe/blob.hpp"
#include "caffe/common.hpp"
#include "caffe/layers/video_data_layer.hpp"
#include "caffe/proto/caffe.pb.h"
#include "caffe/util/db.hpp"
#include "caffe/util/io.hpp"
#include "caffe/util/video_sampling.hpp"

#include "caffe/test/test_caffe_main.hpp"
#include "caffe/test/test_dcd_util.hpp"

namespace caffe {

namespace {

// Deterministic sampler for the pure-function tests.
class MtSampler : public IntSampler {
 public:
  explicit MtSampler(unsigned int seed) : rng_(seed) {}
  virtual int operator()(int n) { return rng_() % n; }
 private:
  caffe::rng_t rng_;
};

// Synthetic frames, W x H = 48 x 32: blue = 10 * frame, green =
// 40 * (video + 1), red = 30 on the left half and 220 on the right half
// (edge on a JPEG block boundary, so pixels 8+ away decode nearly exactly).
const int kW = 48, kH = 32, kCrop = 24;

cv::Mat FrameImage(int video, int frame) {
  cv::Mat img(kH, kW, CV_8UC3, cv::Scalar(10 * frame, 40 * (video + 1), 30));
  img(cv::Rect(kW / 2, 0, kW / 2, kH)).setTo(
      cv::Scalar(10 * frame, 40 * (video + 1), 220));
  return img;
}

// Synthetic flow pair `frame` of `video`, grey: x = 40 + 3 * frame on the
// left half and 200 on the right half; y = 30 + 40 * video everywhere.
cv::Mat FlowImage(int video, int frame, char component) {
  if (component == 'y') {
    return cv::Mat(kH, kW, CV_8UC1, cv::Scalar(30 + 40 * video));
  }
  cv::Mat img(kH, kW, CV_8UC1, cv::Scalar(40 + 3 * frame));
  img(cv::Rect(kW / 2, 0, kW / 2, kH)).setTo(cv::Scalar(200));
  return img;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path.c_str(), std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Formats a test file name on its own (not with the code under test).
std::string Name(const std::string& pattern, int a, int b = 0) {
  char name[256];
  snprintf(name, sizeof(name), pattern.c_str(), a, b);
  return name;
}

// VideoDataParameter's defaults, img_%05d.jpg and flow_%c_%05d.jpg
// (functions: no protobuf message before main).
std::string DefaultNamePattern() {
  return VideoDataParameter().name_pattern();
}
std::string DefaultFlowNamePattern() {
  return VideoDataParameter().flow_name_pattern();
}

void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream out(path.c_str(), std::ios::binary);
  out.write(bytes.data(), bytes.size());
}

}  // namespace

// ---------------------------------------------------------------------------
// Pure sampling and geometry functions.

TEST(VideoSamplingTest, TestOffsetsFollowTsn) {
  // tick = 20 / 3: int(3.33), int(10), int(16.67).
  std::vector<int> o = TsnTestOffsets(20, 3, 1);
  ASSERT_EQ(3, o.size());
  EXPECT_EQ(3, o[0]);
  EXPECT_EQ(10, o[1]);
  EXPECT_EQ(16, o[2]);
  // new_length 5: tick = 16 / 3 -> 2, 8, 13.
  o = TsnTestOffsets(20, 3, 5);
  EXPECT_EQ(2, o[0]);
  EXPECT_EQ(8, o[1]);
  EXPECT_EQ(13, o[2]);
  // Too short: zeros.
  o = TsnTestOffsets(3, 3, 1);
  EXPECT_EQ(0, o[0]);
  EXPECT_EQ(0, o[2]);
}

TEST(VideoSamplingTest, TrainOffsetsCoverEachSegment) {
  MtSampler rand(1701);
  const int n = 20, K = 3, L = 2;
  const int avg = (n - L + 1) / K;  // 6
  std::vector<std::set<int> > seen(K);
  for (int draw = 0; draw < 2000; ++draw) {
    const std::vector<int> o = TsnTrainOffsets(n, K, L, &rand);
    ASSERT_EQ(K, o.size());
    for (int k = 0; k < K; ++k) {
      ASSERT_GE(o[k], k * avg);
      ASSERT_LT(o[k], (k + 1) * avg);
      ASSERT_LE(o[k] + L, n);  // snippet stays inside the video
      seen[k].insert(o[k]);
    }
  }
  for (int k = 0; k < K; ++k) EXPECT_EQ(avg, seen[k].size());
}

TEST(VideoSamplingTest, TrainOffsetsShortVideos) {
  MtSampler rand(3);
  // avg = 0 but n > K: sorted draws from [0, n - L + 1).
  for (int draw = 0; draw < 200; ++draw) {
    const std::vector<int> o = TsnTrainOffsets(5, 3, 4, &rand);
    for (int k = 0; k < 3; ++k) {
      EXPECT_GE(o[k], 0);
      EXPECT_LT(o[k], 2);
      if (k > 0) {
        EXPECT_LE(o[k - 1], o[k]);
      }
    }
  }
  // n <= K, or n < L: zeros.
  std::vector<int> o = TsnTrainOffsets(2, 3, 1, &rand);
  EXPECT_EQ(0, o[0] + o[1] + o[2]);
  o = TsnTrainOffsets(3, 3, 5, &rand);
  EXPECT_EQ(0, o[0] + o[1] + o[2]);
}

TEST(VideoSamplingTest, ClipFramesAreOneBasedAndClamped) {
  std::vector<int> offsets(2);
  offsets[0] = 0;
  offsets[1] = 4;
  const std::vector<int> f = ClipFrameIndices(offsets, 3, 6);
  const int expected[] = {1, 2, 3, 5, 6, 6};
  ASSERT_EQ(6, f.size());
  for (int i = 0; i < 6; ++i) EXPECT_EQ(expected[i], f[i]);
}

TEST(VideoSamplingTest, MultiScaleSidesAndPairs) {
  std::vector<float> ratios;
  ratios.push_back(1.f);
  ratios.push_back(.875f);
  ratios.push_back(.75f);
  ratios.push_back(.66f);
  std::vector<int> s = MultiScaleCropSides(256, ratios, 224);
  ASSERT_EQ(4, s.size());
  EXPECT_EQ(256, s[0]);
  EXPECT_EQ(224, s[1]);
  EXPECT_EQ(192, s[2]);
  EXPECT_EQ(168, s[3]);
  // 258 * .875 = 225.75 -> 225, within 3 of 224: snapped.
  s = MultiScaleCropSides(258, ratios, 224);
  EXPECT_EQ(224, s[1]);
  s = MultiScaleCropSides(256, ratios, 224);
  const std::vector<std::pair<int, int> > pairs = MultiScaleCropPairs(s, 1);
  EXPECT_EQ(10, pairs.size());  // 4 + 3 + 3 pairs with |i - j| <= 1
  for (size_t i = 0; i < pairs.size(); ++i) {
    int a = -1, b = -1;
    for (int j = 0; j < 4; ++j) {
      if (s[j] == pairs[i].first) a = j;
      if (s[j] == pairs[i].second) b = j;
    }
    ASSERT_GE(a, 0);
    ASSERT_GE(b, 0);
    EXPECT_LE(std::abs(a - b), 1);
  }
  EXPECT_EQ(4, MultiScaleCropPairs(s, 0).size());
  EXPECT_EQ(16, MultiScaleCropPairs(s, 3).size());
}

TEST(VideoSamplingTest, FixCropOffsets) {
  // 340 x 256 image, 224 crop: steps 29 and 8.
  std::vector<std::pair<int, int> > o = FixCropOffsets(false, 340, 256,
                                                       224, 224);
  ASSERT_EQ(5, o.size());
  EXPECT_EQ(std::make_pair(0, 0), o[0]);
  EXPECT_EQ(std::make_pair(116, 0), o[1]);
  EXPECT_EQ(std::make_pair(0, 32), o[2]);
  EXPECT_EQ(std::make_pair(116, 32), o[3]);
  EXPECT_EQ(std::make_pair(58, 16), o[4]);
  o = FixCropOffsets(true, 340, 256, 224, 224);
  ASSERT_EQ(13, o.size());
  std::set<std::pair<int, int> > unique(o.begin(), o.end());
  EXPECT_EQ(13, unique.size());
  EXPECT_TRUE(unique.count(std::make_pair(29, 8)));   // upper-left quarter
  EXPECT_TRUE(unique.count(std::make_pair(87, 24)));  // lower-right quarter
  EXPECT_TRUE(unique.count(std::make_pair(58, 0)));   // upper centre
  EXPECT_TRUE(unique.count(std::make_pair(0, 16)));   // centre left
}

TEST(VideoSamplingTest, SampledCropsComeFromTheAllowedSet) {
  std::vector<float> ratios;
  ratios.push_back(1.f);
  ratios.push_back(.875f);
  ratios.push_back(.75f);
  ratios.push_back(.66f);
  const std::vector<std::pair<int, int> > pairs =
      MultiScaleCropPairs(MultiScaleCropSides(256, ratios, 224), 1);
  const std::set<std::pair<int, int> > allowed(pairs.begin(), pairs.end());
  MtSampler rand(7);
  std::set<std::pair<int, int> > sizes, positions_of_224;
  for (int draw = 0; draw < 5000; ++draw) {
    const CropBox b = SampleMultiScaleCrop(340, 256, 224, ratios, 1, true,
                                           true, &rand);
    const std::pair<int, int> wh(b.w, b.h);
    ASSERT_TRUE(allowed.count(wh)) << b.w << "x" << b.h;
    ASSERT_GE(b.x, 0);
    ASSERT_GE(b.y, 0);
    ASSERT_LE(b.x + b.w, 340);
    ASSERT_LE(b.y + b.h, 256);
    const std::vector<std::pair<int, int> > fixed =
        FixCropOffsets(true, 340, 256, b.w, b.h);
    ASSERT_TRUE(std::find(fixed.begin(), fixed.end(),
                          std::make_pair(b.x, b.y)) != fixed.end());
    sizes.insert(wh);
    if (b.w == 224 && b.h == 224) {
      positions_of_224.insert(std::make_pair(b.x, b.y));
    }
  }
  EXPECT_EQ(allowed.size(), sizes.size());
  EXPECT_EQ(13, positions_of_224.size());
  // Random placement stays inside the image too.
  for (int draw = 0; draw < 500; ++draw) {
    const CropBox b = SampleMultiScaleCrop(340, 256, 224, ratios, 1, false,
                                           false, &rand);
    ASSERT_LE(b.x + b.w, 340);
    ASSERT_LE(b.y + b.h, 256);
  }
  // No ratios: a crop_size crop, no scale jitter.
  const CropBox b = SampleMultiScaleCrop(340, 256, 224,
                                         std::vector<float>(), 1, true,
                                         false, &rand);
  EXPECT_EQ(224, b.w);
  EXPECT_EQ(224, b.h);
  const CropBox c = CenterCrop(340, 256, 224);
  EXPECT_EQ(58, c.x);
  EXPECT_EQ(16, c.y);
}

TEST(VideoSamplingTest, ParseList) {
  std::vector<VideoRecord> r;
  EXPECT_EQ("", ParseVideoList("a 10 0\n\nb/c 5 3\n", "l.txt", &r));
  ASSERT_EQ(2, r.size());
  EXPECT_EQ("b/c", r[1].id);
  EXPECT_EQ(5, r[1].num_frames);
  EXPECT_EQ(3, r[1].label);
  EXPECT_EQ(3, r[1].line);
  // Ids may contain spaces.
  EXPECT_EQ("", ParseVideoList("my video 7 1\n", "l.txt", &r));
  EXPECT_EQ("my video", r[0].id);
  std::string e = ParseVideoList("a 10 0\nb 5\n", "l.txt", &r);
  EXPECT_NE(std::string::npos, e.find("l.txt:line 2")) << e;
  e = ParseVideoList("a 10 0\nb x 1\n", "l.txt", &r);
  EXPECT_NE(std::string::npos, e.find("line 2")) << e;
  e = ParseVideoList("a 0 0\n", "l.txt", &r);
  EXPECT_NE(std::string::npos, e.find("line 1")) << e;
  e = ParseVideoList("a 4 -1\n", "l.txt", &r);
  EXPECT_NE(std::string::npos, e.find("line 1")) << e;
  e = ParseVideoList("\n  \n", "l.txt", &r);
  EXPECT_NE(std::string::npos, e.find("empty")) << e;
}

TEST(VideoSamplingTest, NamePatterns) {
  EXPECT_EQ("", CheckNamePattern("img_%05d.jpg", "d"));
  EXPECT_EQ("", CheckNamePattern("frame%d_100%%.png", "d"));
  EXPECT_EQ("", CheckNamePattern("flow_%c_%05d.jpg", "cd"));
  EXPECT_EQ("", CheckNamePattern("%c/%i.jpg", "cd"));
  // Wrong count, order or kind of conversion, or one that reads a length.
  EXPECT_NE("", CheckNamePattern("img.jpg", "d"));
  EXPECT_NE("", CheckNamePattern("img_%05d_%d.jpg", "d"));
  EXPECT_NE("", CheckNamePattern("flow_x_%05d.jpg", "cd"));
  EXPECT_NE("", CheckNamePattern("flow_%05d_%c.jpg", "cd"));
  EXPECT_NE("", CheckNamePattern("img_%s.jpg", "d"));
  EXPECT_NE("", CheckNamePattern("img_%ld.jpg", "d"));
  EXPECT_NE("", CheckNamePattern("img_%*d.jpg", "d"));
  EXPECT_NE("", CheckNamePattern("img_%05", "d"));
  EXPECT_NE("", CheckNamePattern("img_%%05d.jpg", "d"));  // no conversion
  const std::string e = CheckNamePattern("flow_x_%05d.jpg", "cd");
  EXPECT_NE(std::string::npos, e.find("flow_x_%05d.jpg")) << e;
}

TEST(VideoFramesTest, FrameFileNames) {
  EXPECT_EQ("img_00007.jpg",
            FrameFileName("img_%05d.jpg", "flow_%c_%05d.jpg", FRAME_RGB, 7));
  EXPECT_EQ("flow_x_00012.jpg", FrameFileName("img_%05d.jpg",
            "flow_%c_%05d.jpg", FRAME_FLOW_X, 12));
  EXPECT_EQ("y/3.png", FrameFileName("%d.png", "%c/%i.png", FRAME_FLOW_Y, 3));
  EXPECT_EQ("100%_123456.jpg",
            FrameFileName("100%%_%d.jpg", "%c%d", FRAME_RGB, 123456));
  // Long names are not cut at a fixed buffer size.
  const std::string dir(300, 'a');
  EXPECT_EQ(dir + "/00001.jpg",
            FrameFileName(dir + "/%05d.jpg", "%c%d", FRAME_RGB, 1));
  // A reader refuses a pattern that would read a missing argument.
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  EXPECT_DEATH(delete NewFolderFrameReader("/", "img_%s.jpg", "%c_%d"),
               "VideoData name_pattern: name pattern 'img_%s.jpg'");
}

// ---------------------------------------------------------------------------
// The layer, on a tiny frame tree written here.

template <typename TypeParam>
class VideoDataLayerTest : public MultiDeviceTest<TypeParam> {
  typedef typename TypeParam::Dtype Dtype;

 protected:
  VideoDataLayerTest()
      : name_pattern_(DefaultNamePattern()),
        flow_name_pattern_(DefaultFlowNamePattern()),
        blob_top_data_(new Blob<Dtype>()),
        blob_top_label_(new Blob<Dtype>()) {}

  virtual void SetUp() {
    blob_top_vec_.push_back(blob_top_data_);
    blob_top_vec_.push_back(blob_top_label_);
    Caffe::set_random_seed(1701);
    MakeTempDir(&root_);
    num_frames_.push_back(12);
    num_frames_.push_back(20);
    num_frames_.push_back(7);
    for (int v = 0; v < num_frames_.size(); ++v) {
      WriteVideo(v, num_frames_[v]);
      WriteFlow(v, num_frames_[v] - 1);
    }
    list_ = root_ + "/list.txt";
    std::ofstream list(list_.c_str());
    // The flow list counts flow pairs, as build_file_list.py --modality flow.
    flow_list_ = root_ + "/flow_list.txt";
    std::ofstream flow_list(flow_list_.c_str());
    for (int v = 0; v < num_frames_.size(); ++v) {
      list << VideoId(v) << " " << num_frames_[v] << " " << v << "\n";
      flow_list << VideoId(v) << " " << num_frames_[v] - 1 << " " << v << "\n";
    }
  }

  virtual ~VideoDataLayerTest() {
    delete blob_top_data_;
    delete blob_top_label_;
    boost::filesystem::remove_all(root_);
  }

  std::string VideoId(int v) const {
    std::ostringstream s;
    s << "v_" << v;
    return s.str();
  }

  // Files and LMDB keys are named with name_pattern_ / flow_name_pattern_.
  std::string FrameName(int frame) const {
    return Name(name_pattern_, frame);
  }
  std::string FlowName(char component, int frame) const {
    return Name(flow_name_pattern_, component, frame);
  }
  std::string FramePath(const std::string& id, int frame) const {
    return root_ + "/" + id + "/" + FrameName(frame);
  }
  std::string FlowPath(const std::string& id, char component,
                       int frame) const {
    return root_ + "/" + id + "/" + FlowName(component, frame);
  }

  void WriteFlow(int v, int pairs) {
    const std::string id = VideoId(v);
    boost::filesystem::create_directories(root_ + "/" + id);
    std::vector<int> params;
    params.push_back(cv::IMWRITE_JPEG_QUALITY);
    params.push_back(100);
    for (int i = 1; i <= pairs; ++i) {
      ASSERT_TRUE(cv::imwrite(FlowPath(id, 'x', i), FlowImage(v, i, 'x'),
                              params));
      ASSERT_TRUE(cv::imwrite(FlowPath(id, 'y', i), FlowImage(v, i, 'y'),
                              params));
    }
  }

  LayerParameter FlowParam(Phase phase, int batch_size, int segments,
                           int length) {
    LayerParameter param = Param(phase, batch_size, segments, length);
    param.mutable_video_data_param()->set_source(flow_list_);
    param.mutable_video_data_param()->set_modality(
        VideoDataParameter_Modality_FLOW);
    return param;
  }

  void WriteVideo(int v, int frames) {
    const std::string id = VideoId(v);
    boost::filesystem::create_directories(root_ + "/" + id);
    std::vector<int> params;
    params.push_back(cv::IMWRITE_JPEG_QUALITY);
    params.push_back(100);
    for (int i = 1; i <= frames; ++i) {
      ASSERT_TRUE(cv::imwrite(FramePath(id, i), FrameImage(v, i), params));
    }
  }

  LayerParameter Param(Phase phase, int batch_size, int segments,
                       int length) {
    LayerParameter param;
    param.set_phase(phase);
    VideoDataParameter* p = param.mutable_video_data_param();
    p->set_source(list_);
    p->set_root_folder(root_);
    p->set_batch_size(batch_size);
    p->set_num_segments(segments);
    p->set_new_length(length);
    param.mutable_transform_param()->set_crop_size(kCrop);
    return param;
  }

  // Copies into `data` the data top of one forward pass of a fresh layer
  // (the top keeps it too).
  // SetUp of a layer with `param` stops with a message matching `regex`.
  void ExpectSetUpDies(const LayerParameter& param, const std::string& regex) {
    caffe::ExpectSetUpDies<VideoDataLayer<Dtype> >(param, blob_bottom_vec_,
                                                    blob_top_vec_, regex);
  }

  void ForwardOnce(const LayerParameter& param, Blob<Dtype>* data) {
    VideoDataLayer<Dtype> layer(param);
    layer.SetUp(blob_bottom_vec_, blob_top_vec_);
    layer.Forward(blob_bottom_vec_, blob_top_vec_);
    data->CopyFrom(*blob_top_data_, false, true);
    // In GPU mode the tops point into the layer's prefetch buffers
    // (BasePrefetchingDataLayer::Forward_gpu lends them with set_gpu_data),
    // which die with the layer: bring the tops to the CPU while it lives,
    // for the reads that follow.
    blob_top_data_->cpu_data();
    blob_top_label_->cpu_data();
  }
  // Value at (image n, channel c, row h, column w) of the data top.
  Dtype At(int n, int c, int h, int w) const {
    return blob_top_data_->cpu_data()[blob_top_data_->offset(n, c, h, w)];
  }
  // Frame number and video encoded in a frame's pixels (away from edges).
  int FrameOf(int n) const { return std::floor(At(n, 0, 12, 2) / 10 + .5); }
  int VideoOf(int n) const {
    return std::floor(At(n, 1, 12, 2) / 40 + .5) - 1;
  }

  // Builds an LMDB with tools/build_lmdb.py's key scheme; `count_delta`
  // changes the stored frame count of every video.
  std::string BuildLMDB(int count_delta) {
    const std::string path = root_ + "/lmdb";
    boost::filesystem::remove_all(path);
    shared_ptr<db::DB> lmdb(db::GetDB("lmdb"));
    lmdb->Open(path, db::NEW);
    shared_ptr<db::Transaction> txn(lmdb->NewTransaction());
    for (int v = 0; v < num_frames_.size(); ++v) {
      const std::string id = VideoId(v);
      for (int i = 1; i <= num_frames_[v]; ++i) {
        Datum datum;
        datum.set_encoded(true);
        datum.set_channels(3);
        datum.set_height(kH);
        datum.set_width(kW);
        datum.set_label(v);
        datum.set_data(ReadAll(FramePath(id, i)));
        const std::string key = id + "/" + FrameName(i);
        std::string value;
        datum.SerializeToString(&value);
        txn->Put(key, value);
      }
      std::ostringstream count;
      count << num_frames_[v] + count_delta;
      txn->Put("__video__/" + id, count.str());
      // Flow: grey Datums under flow_x/flow_y keys, marker __flow__/.
      for (int i = 1; i < num_frames_[v]; ++i) {
        for (int c = 0; c < 2; ++c) {
          const char component = c == 0 ? 'x' : 'y';
          Datum datum;
          datum.set_encoded(true);
          datum.set_channels(1);
          datum.set_height(kH);
          datum.set_width(kW);
          datum.set_label(v);
          datum.set_data(ReadAll(FlowPath(id, component, i)));
          const std::string key = id + "/" + FlowName(component, i);
          std::string value;
          datum.SerializeToString(&value);
          txn->Put(key, value);
        }
      }
      std::ostringstream pairs;
      pairs << num_frames_[v] - 1 + count_delta;
      txn->Put("__flow__/" + id, pairs.str());
    }
    txn->Commit();
    lmdb->Close();
    return path;
  }

  std::string root_, list_, flow_list_;
  std::string name_pattern_, flow_name_pattern_;
  std::vector<int> num_frames_;
  Blob<Dtype>* const blob_top_data_;
  Blob<Dtype>* const blob_top_label_;
  vector<Blob<Dtype>*> blob_bottom_vec_;
  vector<Blob<Dtype>*> blob_top_vec_;
};

TYPED_TEST_CASE(VideoDataLayerTest, TestDtypesAndDevices);

TYPED_TEST(VideoDataLayerTest, TestShapesAndLabels) {
  typedef typename TypeParam::Dtype Dtype;
  VideoDataLayer<Dtype> layer(this->Param(TEST, 2, 3, 2));
  layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  EXPECT_EQ(12, this->blob_top_data_->num());  // 2 clips x 3 x 2 frames
  EXPECT_EQ(3, this->blob_top_data_->channels());
  EXPECT_EQ(kCrop, this->blob_top_data_->height());
  EXPECT_EQ(kCrop, this->blob_top_data_->width());
  EXPECT_EQ(2, this->blob_top_label_->num());
  const int expected_labels[] = {0, 1, 2, 0, 1, 2};
  for (int iter = 0; iter < 3; ++iter) {
    layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
    for (int i = 0; i < 2; ++i) {
      const int label = expected_labels[iter * 2 + i];
      EXPECT_EQ(label, this->blob_top_label_->cpu_data()[i]);
      // Clip-major: frames i*6 .. i*6+5 all come from clip i's video.
      for (int f = 0; f < 6; ++f) EXPECT_EQ(label, this->VideoOf(i * 6 + f));
    }
  }
}

TYPED_TEST(VideoDataLayerTest, TestTestSamplingIsCentredAndDeterministic) {
  typedef typename TypeParam::Dtype Dtype;
  const int K = 3, L = 2;
  std::vector<std::vector<int> > runs;
  for (int run = 0; run < 2; ++run) {
    Caffe::set_random_seed(100 + run);  // TEST sampling must not depend on it
    VideoDataLayer<Dtype> layer(this->Param(TEST, 1, K, L));
    layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
    std::vector<int> frames;
    for (int v = 0; v < 3; ++v) {
      layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
      const std::vector<int> expected = ClipFrameIndices(
          TsnTestOffsets(this->num_frames_[v], K, L), L, this->num_frames_[v]);
      for (int f = 0; f < K * L; ++f) {
        EXPECT_EQ(expected[f], this->FrameOf(f)) << "video " << v;
        frames.push_back(this->FrameOf(f));
      }
    }
    runs.push_back(frames);
  }
  EXPECT_TRUE(runs[0] == runs[1]);
  // Centred: video 1 (20 frames), tick = 19 / 3 -> offsets 3, 9, 15.
  EXPECT_EQ(10, runs[0][6 + 2]);
}

TYPED_TEST(VideoDataLayerTest, TestTrainSamplingStaysInSegments) {
  typedef typename TypeParam::Dtype Dtype;
  const int K = 3, L = 2;
  // Only video 1 (20 frames): avg = (20 - 2 + 1) / 3 = 6.
  std::ofstream list(this->list_.c_str());
  list << this->VideoId(1) << " 20 1\n";
  list.close();
  VideoDataLayer<Dtype> layer(this->Param(TRAIN, 2, K, L));
  layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  std::vector<std::set<int> > starts(K);
  for (int iter = 0; iter < 60; ++iter) {
    layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
    for (int clip = 0; clip < 2; ++clip) {
      for (int k = 0; k < K; ++k) {
        const int first = this->FrameOf(clip * K * L + k * L);
        const int second = this->FrameOf(clip * K * L + k * L + 1);
        EXPECT_EQ(first + 1, second);  // consecutive frames
        EXPECT_GE(first - 1, k * 6);
        EXPECT_LT(first - 1, (k + 1) * 6);
        starts[k].insert(first);
      }
    }
  }
  for (int k = 0; k < K; ++k) EXPECT_EQ(6, starts[k].size()) << k;
}

TYPED_TEST(VideoDataLayerTest, TestMirrorIsPerClip) {
  typedef typename TypeParam::Dtype Dtype;
  // Caffe's transform_param.mirror draws in any phase; TEST's centre crop
  // (x = 12..35) spans the red edge, so each frame shows its orientation.
  LayerParameter param = this->Param(TEST, 2, 3, 2);
  param.mutable_transform_param()->set_mirror(true);
  VideoDataLayer<Dtype> layer(param);
  layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  int mirrored = 0, plain = 0;
  for (int iter = 0; iter < 20; ++iter) {
    layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
    for (int clip = 0; clip < 2; ++clip) {
      const bool flipped = this->At(clip * 6, 2, 12, 0) > 125;
      for (int f = 0; f < 6; ++f) {
        const int n = clip * 6 + f;
        EXPECT_EQ(flipped, this->At(n, 2, 12, 0) > 125);
        EXPECT_EQ(flipped, this->At(n, 2, 12, kCrop - 1) < 125);
      }
      (flipped ? mirrored : plain) += 1;
    }
  }
  EXPECT_GT(mirrored, 5);
  EXPECT_GT(plain, 5);
}

TYPED_TEST(VideoDataLayerTest, TestMirrorFlipsColumns) {
  typedef typename TypeParam::Dtype Dtype;
  // TEST phase, centre crop x = 12..35: left half dark, right half bright.
  LayerParameter param = this->Param(TEST, 1, 3, 1);
  Blob<Dtype> reference;
  this->ForwardOnce(param, &reference);
  EXPECT_NEAR(30, this->At(0, 2, 12, 0), 6);
  EXPECT_NEAR(220, this->At(0, 2, 12, kCrop - 1), 6);
  param.mutable_transform_param()->set_mirror(true);
  bool seen_mirror = false;
  for (int seed = 0; seed < 8 && !seen_mirror; ++seed) {
    Caffe::set_random_seed(seed);
    VideoDataLayer<Dtype> layer(param);
    layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
    layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
    if (this->At(0, 2, 12, 0) > 125) {
      seen_mirror = true;
      for (int n = 0; n < 3; ++n) {
        for (int c = 0; c < 3; ++c) {
          for (int h = 0; h < kCrop; ++h) {
            for (int w = 0; w < kCrop; ++w) {
              ASSERT_EQ(reference.data_at(n, c, h, kCrop - 1 - w),
                        this->At(n, c, h, w));
            }
          }
        }
      }
    }
  }
  EXPECT_TRUE(seen_mirror);
}

TYPED_TEST(VideoDataLayerTest, TestMeanAndScale) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter param = this->Param(TEST, 1, 3, 1);
  Blob<Dtype> reference;
  this->ForwardOnce(param, &reference);
  param.mutable_transform_param()->add_mean_value(104);
  param.mutable_transform_param()->add_mean_value(117);
  param.mutable_transform_param()->add_mean_value(123);
  param.mutable_transform_param()->set_scale(0.5);
  VideoDataLayer<Dtype> layer(param);
  layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
  const Dtype mean[] = {104, 117, 123};
  for (int n = 0; n < 3; ++n) {
    for (int c = 0; c < 3; ++c) {
      for (int h = 0; h < kCrop; h += 5) {
        for (int w = 0; w < kCrop; w += 5) {
          EXPECT_NEAR((reference.data_at(n, c, h, w) - mean[c]) * 0.5,
                      this->At(n, c, h, w), 1e-5);
        }
      }
    }
  }
}

TYPED_TEST(VideoDataLayerTest, TestMultiScaleTrain) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter param = this->Param(TRAIN, 3, 3, 1);
  VideoDataParameter* p = param.mutable_video_data_param();
  p->add_scale_ratios(1);
  p->add_scale_ratios(.875);
  p->add_scale_ratios(.75);
  p->add_scale_ratios(.66);
  VideoDataLayer<Dtype> layer(param);
  layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  std::set<int> red_edge_columns;
  for (int iter = 0; iter < 20; ++iter) {
    layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
    EXPECT_EQ(9, this->blob_top_data_->num());
    EXPECT_EQ(kCrop, this->blob_top_data_->height());
    for (int clip = 0; clip < 3; ++clip) {
      // Frames still carry their own flat blue/green values after resizing.
      for (int k = 0; k < 3; ++k) {
        const int n = clip * 3 + k;
        EXPECT_EQ(this->blob_top_label_->cpu_data()[clip], this->VideoOf(n));
        const int frame = this->FrameOf(n);
        EXPECT_GE(frame, 1);
        EXPECT_LE(frame, this->num_frames_[this->VideoOf(n)]);
      }
      // Where red jumps tells the crop scale and position apart.
      int edge = -1;
      for (int w = 0; w < kCrop && edge < 0; ++w) {
        if (this->At(clip * 3, 2, 12, w) > 125) edge = w;
      }
      red_edge_columns.insert(edge);
    }
  }
  // Several distinct geometries were used.
  EXPECT_GT(red_edge_columns.size(), 2);
}

TYPED_TEST(VideoDataLayerTest, TestLMDBMatchesFolder) {
  typedef typename TypeParam::Dtype Dtype;
  const std::string lmdb = this->BuildLMDB(0);
  LayerParameter param = this->Param(TEST, 3, 3, 2);
  param.mutable_transform_param()->add_mean_value(100);
  Blob<Dtype> reference;
  this->ForwardOnce(param, &reference);
  param.mutable_video_data_param()->set_backend(
      VideoDataParameter_Backend_LMDB);
  param.mutable_video_data_param()->set_root_folder(lmdb);
  VideoDataLayer<Dtype> layer(param);
  layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  for (int iter = 0; iter < 2; ++iter) {  // twice: the txn is renewed
    layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
    ASSERT_EQ(reference.count(), this->blob_top_data_->count());
    for (int i = 0; i < reference.count(); ++i) {
      ASSERT_EQ(reference.cpu_data()[i], this->blob_top_data_->cpu_data()[i]);
    }
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(i, this->blob_top_label_->cpu_data()[i]);
    }
  }
}

// name_pattern and flow_name_pattern name the files of the FOLDER backend
// and, after "video_id/", the keys of the LMDB backend.
TYPED_TEST(VideoDataLayerTest, TestNamePatternsOnBothBackends) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter param = this->Param(TEST, 3, 3, 2);
  VideoDataParameter* p = param.mutable_video_data_param();
  p->set_modality(VideoDataParameter_Modality_RGB_FLOW);  // frames and flow
  Blob<Dtype> reference;
  this->ForwardOnce(param, &reference);
  // The same tree under other names.
  this->name_pattern_ = "frame-%03i.jpg";
  this->flow_name_pattern_ = "of%c.%u.jpg";
  for (int v = 0; v < 3; ++v) {
    boost::filesystem::remove_all(this->root_ + "/" + this->VideoId(v));
    this->WriteVideo(v, this->num_frames_[v]);
    this->WriteFlow(v, this->num_frames_[v] - 1);
  }
  ASSERT_TRUE(boost::filesystem::exists(this->root_ + "/v_1/frame-020.jpg"));
  ASSERT_TRUE(boost::filesystem::exists(this->root_ + "/v_1/ofy.19.jpg"));
  const std::string lmdb = this->BuildLMDB(0);
  const VideoRecord video = {this->VideoId(1), 20, 1, 2};
  for (int b = 0; b < 2; ++b) {
    const bool use_lmdb = b == 1;
    const std::string root = use_lmdb ? lmdb : this->root_;
    p->set_backend(use_lmdb ? VideoDataParameter_Backend_LMDB :
                   VideoDataParameter_Backend_FOLDER);
    p->set_root_folder(root);
    // The default names are gone.
    shared_ptr<VideoFrameReader> defaults(use_lmdb ?
        NewLMDBFrameReader(root, DefaultNamePattern(),
                           DefaultFlowNamePattern()) :
        NewFolderFrameReader(root, DefaultNamePattern(),
                             DefaultFlowNamePattern()));
    cv::Mat img;
    std::string error;
    EXPECT_FALSE(defaults->ReadFrame(video, 1, &img, &error));
    EXPECT_NE(std::string::npos, error.find("v_1/img_00001.jpg")) << error;
    defaults.reset();
    // Readers with the patterns find every frame and flow image.
    shared_ptr<VideoFrameReader> reader(use_lmdb ?
        NewLMDBFrameReader(root, this->name_pattern_,
                           this->flow_name_pattern_) :
        NewFolderFrameReader(root, this->name_pattern_,
                             this->flow_name_pattern_));
    EXPECT_EQ("", reader->CheckFrames(video, false, 20));
    EXPECT_EQ("", reader->CheckFrames(video, true, 19));
    // ASSERT: a failed read would stop the layer's prefetch thread below.
    ASSERT_TRUE(reader->ReadFrame(video, 20, &img, &error)) << error;
    ASSERT_TRUE(reader->ReadImage(video, FRAME_FLOW_Y, 19, &img, &error))
        << error;
    EXPECT_FALSE(reader->ReadImage(video, FRAME_FLOW_X, 20, &img, &error));
    EXPECT_NE(std::string::npos, error.find("v_1/ofx.20.jpg")) << error;
    EXPECT_NE(std::string::npos, error.find("flow_x 20")) << error;
    reader.reset();
    // The layer gives the batch it gave under the default names.
    p->set_name_pattern(this->name_pattern_);
    p->set_flow_name_pattern(this->flow_name_pattern_);
    VideoDataLayer<Dtype> layer(param);
    layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
    layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
    ASSERT_EQ(reference.count(), this->blob_top_data_->count());
    for (int i = 0; i < reference.count(); ++i) {
      ASSERT_EQ(reference.cpu_data()[i], this->blob_top_data_->cpu_data()[i])
          << (use_lmdb ? "LMDB" : "FOLDER") << " " << i;
    }
  }
}

// A train_val net opens the same LMDB twice in one process (TRAIN and TEST
// data layers). LMDB must not be opened twice per process: a second open
// re-initialises the lock table and the first reader's next renew fails
// (MDB_BAD_RSLOT). The readers share one environment per path.
TYPED_TEST(VideoDataLayerTest, TestTwoLayersOnOneLMDB) {
  typedef typename TypeParam::Dtype Dtype;
  const std::string lmdb = this->BuildLMDB(0);
  LayerParameter param = this->Param(TEST, 3, 3, 2);
  param.mutable_video_data_param()->set_backend(
      VideoDataParameter_Backend_LMDB);
  param.mutable_video_data_param()->set_root_folder(lmdb);
  VideoDataLayer<Dtype> first(param);
  first.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  first.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
  Blob<Dtype> reference;
  reference.CopyFrom(*this->blob_top_data_, false, true);
  {
    Blob<Dtype> data, label;
    vector<Blob<Dtype>*> tops;
    tops.push_back(&data);
    tops.push_back(&label);
    VideoDataLayer<Dtype> second(param);
    second.SetUp(this->blob_bottom_vec_, tops);
    for (int iter = 0; iter < 3; ++iter) {
      second.Forward(this->blob_bottom_vec_, tops);
      first.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
    }
  }  // the second layer and its reader are gone
  for (int iter = 0; iter < 3; ++iter) {
    first.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
  }
  for (int i = 0; i < reference.count(); ++i) {
    ASSERT_EQ(reference.cpu_data()[i], this->blob_top_data_->cpu_data()[i]);
  }
}

TYPED_TEST(VideoDataLayerTest, TestLMDBCountTooSmall) {
  const std::string lmdb = this->BuildLMDB(-1);
  shared_ptr<VideoFrameReader> reader(NewLMDBFrameReader(
      lmdb, DefaultNamePattern(), DefaultFlowNamePattern()));
  VideoRecord video = {this->VideoId(1), 20, 1, 2};
  std::string e = reader->CheckVideo(video);
  EXPECT_NE(std::string::npos, e.find("line 2")) << e;
  EXPECT_NE(std::string::npos, e.find("holds 19")) << e;
  video.num_frames = 19;
  EXPECT_EQ("", reader->CheckVideo(video));
  video.id = "absent";
  e = reader->CheckVideo(video);
  EXPECT_NE(std::string::npos, e.find("__video__/absent")) << e;
  std::string error;
  cv::Mat img;
  EXPECT_FALSE(reader->ReadFrame(video, 1, &img, &error));
  EXPECT_NE(std::string::npos, error.find("absent")) << error;
}

TYPED_TEST(VideoDataLayerTest, TestFolderFrameCountBeyondFrames) {
  shared_ptr<VideoFrameReader> reader(
      NewFolderFrameReader(this->root_, DefaultNamePattern(),
                           DefaultFlowNamePattern()));
  VideoRecord video = {this->VideoId(2), 8, 2, 3};  // only 7 frames exist
  const std::string e = reader->CheckVideo(video);
  EXPECT_NE(std::string::npos, e.find("line 3")) << e;
  EXPECT_NE(std::string::npos, e.find("img_00008.jpg")) << e;
  video.num_frames = 7;
  EXPECT_EQ("", reader->CheckVideo(video));
  // The layer stops at setup naming the list line.
  std::ofstream list(this->list_.c_str());
  list << this->VideoId(0) << " 12 0\n" << this->VideoId(2) << " 9 2\n";
  list.close();
  this->ExpectSetUpDies(this->Param(TEST, 1, 3, 1),
                        "list.txt:line 2: video 'v_2': num_frames is 9");
}

TYPED_TEST(VideoDataLayerTest, TestMalformedAndEmptyListsDie) {
  {
    std::ofstream list(this->list_.c_str());
    list << this->VideoId(0) << " 12 0\n" << this->VideoId(1) << " 20\n";
  }
  this->ExpectSetUpDies(this->Param(TEST, 1, 3, 1), "list.txt:line 2");
  { std::ofstream list(this->list_.c_str()); }
  this->ExpectSetUpDies(this->Param(TEST, 1, 3, 1), "empty");
}

TYPED_TEST(VideoDataLayerTest, TestBadFrames) {
  typedef typename TypeParam::Dtype Dtype;
  // Video "bad": 12 frames; TEST picks frames 3, 7, 11 (tick 4).
  this->WriteVideo(3, 12);
  boost::filesystem::rename(this->root_ + "/" + this->VideoId(3),
                            this->root_ + "/bad");
  const std::string frame7 = this->FramePath("bad", 7);
  const std::string bytes = ReadAll(frame7);
  WriteAll(frame7, bytes.substr(0, bytes.size() / 2));  // truncated JPEG
  shared_ptr<VideoFrameReader> reader(
      NewFolderFrameReader(this->root_, DefaultNamePattern(),
                           DefaultFlowNamePattern()));
  VideoRecord video = {"bad", 12, 5, 2};
  cv::Mat img;
  std::string error;
  EXPECT_TRUE(reader->ReadFrame(video, 6, &img, &error)) << error;
  EXPECT_FALSE(reader->ReadFrame(video, 7, &img, &error));
  EXPECT_NE(std::string::npos, error.find("video 'bad' frame 7")) << error;
  EXPECT_NE(std::string::npos, error.find("line 2")) << error;
  EXPECT_FALSE(DecodeFrameBytes(bytes.data(), bytes.size() / 2, &img));
  EXPECT_TRUE(DecodeFrameBytes(bytes.data(), bytes.size(), &img));
  // A missing middle frame is reported the same way.
  boost::filesystem::remove(this->FramePath("bad", 3));
  EXPECT_FALSE(reader->ReadFrame(video, 3, &img, &error));
  EXPECT_NE(std::string::npos, error.find("video 'bad' frame 3")) << error;

  // skip_bad_videos: the bad clip is skipped and counted.
  {
    std::ofstream list(this->list_.c_str());
    list << this->VideoId(0) << " 12 0\nbad 12 5\n"
         << this->VideoId(1) << " 20 1\n";
  }
  LayerParameter param = this->Param(TEST, 2, 3, 1);
  param.mutable_video_data_param()->set_skip_bad_videos(true);
  VideoDataLayer<Dtype> layer(param);
  layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
  EXPECT_EQ(0, this->blob_top_label_->cpu_data()[0]);
  EXPECT_EQ(1, this->blob_top_label_->cpu_data()[1]);
  EXPECT_EQ(1, this->VideoOf(3));
  EXPECT_GE(layer.num_skipped(), 1);
  // Without it, the prefetch thread stops the program naming the frame.
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  param.mutable_video_data_param()->set_skip_bad_videos(false);
  EXPECT_DEATH({
    VideoDataLayer<Dtype> bad(param);
    bad.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
    bad.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
  }, "video 'bad' frame 3");
}

// ---------------------------------------------------------------------------
// Optical flow: modality FLOW (TSN's flow stream) and RGB_FLOW.

TYPED_TEST(VideoDataLayerTest, TestFlowShapeAndChannelOrder) {
  typedef typename TypeParam::Dtype Dtype;
  const int K = 3, L = 2;
  VideoDataLayer<Dtype> layer(this->FlowParam(TEST, 2, K, L));
  layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  // (batch * segments) x (2 * new_length): a snippet's pairs as channels.
  EXPECT_EQ(2 * K, this->blob_top_data_->num());
  EXPECT_EQ(2 * L, this->blob_top_data_->channels());
  EXPECT_EQ(kCrop, this->blob_top_data_->height());
  EXPECT_EQ(kCrop, this->blob_top_data_->width());
  for (int iter = 0; iter < 2; ++iter) {
    layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
    for (int clip = 0; clip < 2; ++clip) {
      const int v = (iter * 2 + clip) % 3;
      const int pairs = this->num_frames_[v] - 1;
      EXPECT_EQ(v, this->blob_top_label_->cpu_data()[clip]);
      const std::vector<int> expected =
          ClipFrameIndices(TsnTestOffsets(pairs, K, L), L, pairs);
      for (int k = 0; k < K; ++k) {
        for (int l = 0; l < L; ++l) {
          // Centre crop x = 12..35: columns 0..11 show the left half.
          const int n = clip * K + k;
          const Dtype x = this->At(n, 2 * l, 12, 2);
          const Dtype y = this->At(n, 2 * l + 1, 12, 2);
          EXPECT_NEAR(40 + 3 * expected[k * L + l], x, 1) << k << " " << l;
          EXPECT_NEAR(200, this->At(n, 2 * l, 12, kCrop - 1), 1);
          EXPECT_NEAR(30 + 40 * v, y, 1);
        }
      }
    }
  }
}

TYPED_TEST(VideoDataLayerTest, TestFlowMeanAndMirrorInvertX) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter param = this->FlowParam(TEST, 1, 3, 2);
  param.mutable_transform_param()->add_mean_value(128);
  Blob<Dtype> reference;
  this->ForwardOnce(param, &reference);
  EXPECT_NEAR(200 - 128, reference.data_at(0, 0, 12, kCrop - 1), 1);
  EXPECT_NEAR(30 - 128, reference.data_at(0, 1, 12, 0), 1);
  param.mutable_transform_param()->set_mirror(true);
  bool seen_mirror = false;
  for (int seed = 0; seed < 8 && !seen_mirror; ++seed) {
    Caffe::set_random_seed(seed);
    VideoDataLayer<Dtype> layer(param);
    layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
    layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
    // TEST sampling is deterministic: any change is the mirror.
    if (this->At(0, 0, 12, 0) != reference.data_at(0, 0, 12, 0)) {
      seen_mirror = true;
      for (int n = 0; n < 3; ++n) {
        for (int c = 0; c < 4; ++c) {
          for (int h = 0; h < kCrop; ++h) {
            for (int w = 0; w < kCrop; ++w) {
              const Dtype ref = reference.data_at(n, c, h, kCrop - 1 - w);
              // x: 255 - q before the mean: (255 - q) - 128 = -ref - 1.
              const Dtype want = c % 2 == 0 ? -ref - 1 : ref;
              ASSERT_EQ(want, this->At(n, c, h, w)) << n << c << h << w;
            }
          }
        }
      }
    }
  }
  EXPECT_TRUE(seen_mirror);
}

TYPED_TEST(VideoDataLayerTest, TestFlowLMDBMatchesFolder) {
  typedef typename TypeParam::Dtype Dtype;
  const std::string lmdb = this->BuildLMDB(0);
  LayerParameter param = this->FlowParam(TRAIN, 3, 3, 2);
  param.mutable_transform_param()->add_mean_value(128);
  param.mutable_transform_param()->set_mirror(true);
  VideoDataParameter* p = param.mutable_video_data_param();
  p->add_scale_ratios(1);
  p->add_scale_ratios(.75);
  Caffe::set_random_seed(55);
  Blob<Dtype> reference;
  this->ForwardOnce(param, &reference);
  p->set_backend(VideoDataParameter_Backend_LMDB);
  p->set_root_folder(lmdb);
  Caffe::set_random_seed(55);  // the same samples, crops and mirrors
  VideoDataLayer<Dtype> layer(param);
  layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
  ASSERT_EQ(reference.count(), this->blob_top_data_->count());
  for (int i = 0; i < reference.count(); ++i) {
    ASSERT_EQ(reference.cpu_data()[i], this->blob_top_data_->cpu_data()[i]);
  }
}

TYPED_TEST(VideoDataLayerTest, TestFlowSetupChecksBothComponents) {
  shared_ptr<VideoFrameReader> reader(
      NewFolderFrameReader(this->root_, DefaultNamePattern(),
                           DefaultFlowNamePattern()));
  VideoRecord video = {this->VideoId(2), 6, 2, 3};  // 7 frames, 6 pairs
  EXPECT_EQ("", reader->CheckFrames(video, true, 6));
  EXPECT_NE("", reader->CheckFrames(video, true, 7));
  boost::filesystem::remove(this->FlowPath(this->VideoId(2), 'y', 6));
  const std::string e = reader->CheckFrames(video, true, 6);
  EXPECT_NE(std::string::npos, e.find("flow_y_00006.jpg")) << e;
  EXPECT_NE(std::string::npos, e.find("line 3")) << e;
  cv::Mat img;
  std::string error;
  EXPECT_TRUE(reader->ReadImage(video, FRAME_FLOW_X, 6, &img, &error));
  EXPECT_EQ(CV_8UC1, img.type());
  EXPECT_FALSE(reader->ReadImage(video, FRAME_FLOW_Y, 6, &img, &error));
  EXPECT_NE(std::string::npos, error.find("flow_y 6")) << error;
  // LMDB: the __flow__ marker is checked apart from __video__.
  boost::filesystem::remove_all(this->root_ + "/lmdb");
  const std::string lmdb = this->BuildLMDB(-1);
  shared_ptr<VideoFrameReader> db(NewLMDBFrameReader(
      lmdb, DefaultNamePattern(), DefaultFlowNamePattern()));
  video.num_frames = 6;
  EXPECT_EQ("", db->CheckFrames(video, true, 5));
  EXPECT_NE(std::string::npos, db->CheckFrames(video, true, 6).find(
      "holds 5 flow pairs"));
  EXPECT_TRUE(db->ReadImage(video, FRAME_FLOW_Y, 3, &img, &error)) << error;
  EXPECT_EQ(CV_8UC1, img.type());
  EXPECT_NEAR(30 + 40 * 2, img.at<uchar>(5, 5), 1);
  // Bad patterns stop the layer at setup.
  LayerParameter param = this->FlowParam(TEST, 1, 3, 1);
  param.mutable_video_data_param()->set_flow_name_pattern("flow_x_%05d.jpg");
  this->ExpectSetUpDies(param, "flow_name_pattern");
}

TYPED_TEST(VideoDataLayerTest, TestRGBFlowChannelsInPixels) {
  typedef typename TypeParam::Dtype Dtype;
  // One snippet of 7 frames: all of video 2, last frame included.
  const int K = 1, L = 7;
  const Dtype step = 40. / 255;
  LayerParameter param = this->Param(TEST, 1, K, L);
  param.mutable_video_data_param()->set_modality(
      VideoDataParameter_Modality_RGB_FLOW);
  // Frames (and flow) resized 2x before the crop: 1 stored pixel = 2 output
  // pixels, so the flow comes out doubled.
  param.mutable_video_data_param()->set_new_height(2 * kH);
  param.mutable_video_data_param()->set_new_width(2 * kW);
  VideoDataLayer<Dtype> layer(param);
  layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  EXPECT_EQ(K * L, this->blob_top_data_->num());
  EXPECT_EQ(5, this->blob_top_data_->channels());
  // Video 2 (7 frames) is the third.
  for (int i = 0; i < 3; ++i) {
    layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
  }
  EXPECT_EQ(2, this->blob_top_label_->cpu_data()[0]);
  const std::vector<int> frames =
      ClipFrameIndices(TsnTestOffsets(7, K, L), L, 7);
  // Centre crop of the 96 x 64 frame: x = 36..59, the left half before
  // column 12 (edge at 48), the right half from it on.
  for (int n = 0; n < K * L; ++n) {
    EXPECT_EQ(frames[n], this->FrameOf(n)) << n;  // RGB as in RGB mode
    if (frames[n] == 7) {
      EXPECT_EQ(0, this->At(n, 3, 12, 2));
      EXPECT_EQ(0, this->At(n, 4, 12, 2));
      continue;
    }
    const Dtype vy = ((30 + 40 * 2) * step - 20) * 2;
    const Dtype vx_left = ((40 + 3 * frames[n]) * step - 20) * 2;
    const Dtype vx_right = (200 * step - 20) * 2;
    EXPECT_NEAR(vy, this->At(n, 3, 12, 2), 2 * step);
    EXPECT_NEAR(vx_left, this->At(n, 4, 12, 2), 2 * step);
    EXPECT_NEAR(vx_right, this->At(n, 4, 12, kCrop - 2), 2 * step);
  }
  EXPECT_EQ(7, frames[K * L - 1]);  // the last frame was checked
}

TYPED_TEST(VideoDataLayerTest, TestRGBFlowMirrorNegatesVx) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter param = this->Param(TEST, 1, 3, 2);
  param.mutable_video_data_param()->set_modality(
      VideoDataParameter_Modality_RGB_FLOW);
  Blob<Dtype> reference;
  this->ForwardOnce(param, &reference);
  // The RGB channels equal the RGB modality's.
  LayerParameter rgb = this->Param(TEST, 1, 3, 2);
  Blob<Dtype> rgb_reference;
  this->ForwardOnce(rgb, &rgb_reference);
  for (int n = 0; n < 6; ++n) {
    for (int c = 0; c < 3; ++c) {
      for (int h = 0; h < kCrop; h += 3) {
        for (int w = 0; w < kCrop; ++w) {
          ASSERT_EQ(rgb_reference.data_at(n, c, h, w),
                    reference.data_at(n, c, h, w));
        }
      }
    }
  }
  param.mutable_transform_param()->set_mirror(true);
  bool seen_mirror = false;
  for (int seed = 0; seed < 8 && !seen_mirror; ++seed) {
    Caffe::set_random_seed(seed);
    VideoDataLayer<Dtype> layer(param);
    layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
    layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
    if (this->At(0, 2, 12, 0) > 125) {  // red edge flipped
      seen_mirror = true;
      for (int n = 0; n < 6; ++n) {
        for (int h = 0; h < kCrop; ++h) {
          for (int w = 0; w < kCrop; ++w) {
            const int m = kCrop - 1 - w;
            ASSERT_EQ(reference.data_at(n, 3, h, m), this->At(n, 3, h, w));
            ASSERT_EQ(-reference.data_at(n, 4, h, m), this->At(n, 4, h, w));
          }
        }
      }
    }
  }
  EXPECT_TRUE(seen_mirror);
}

TYPED_TEST(VideoDataLayerTest, TestFlowRootFolderApart) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter param = this->Param(TEST, 3, 2, 2);
  param.mutable_video_data_param()->set_modality(
      VideoDataParameter_Modality_RGB_FLOW);
  Blob<Dtype> reference;
  this->ForwardOnce(param, &reference);
  // Move every flow image to <root>/flow/<video>/: frames and flow apart,
  // as extract_frames and extract_flow write them.
  const std::string flow_root = this->root_ + "/flow";
  for (int v = 0; v < 3; ++v) {
    const std::string id = this->VideoId(v);
    boost::filesystem::create_directories(flow_root + "/" + id);
    for (int i = 1; i < this->num_frames_[v]; ++i) {
      for (int c = 0; c < 2; ++c) {
        const std::string from = this->FlowPath(id, c ? 'y' : 'x', i);
        boost::filesystem::rename(
            from, flow_root + "/" + id + "/" +
                  boost::filesystem::path(from).filename().string());
      }
    }
  }
  this->ExpectSetUpDies(param, "flow_x_00011.jpg does not exist");
  param.mutable_video_data_param()->set_flow_root_folder(flow_root);
  VideoDataLayer<Dtype> layer(param);
  layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
  for (int i = 0; i < reference.count(); ++i) {
    ASSERT_EQ(reference.cpu_data()[i], this->blob_top_data_->cpu_data()[i]);
  }
}

// ---------------------------------------------------------------------------
// Decode threads, bad input.

// A batch is bit-identical for any decode_threads, FOLDER and LMDB alike:
// TRAIN with shuffling, multi-scale crops and mirroring (every random draw
// the layer makes), RGB_FLOW (frames and flow).
TYPED_TEST(VideoDataLayerTest, TestBatchesSameForAnyThreadCount) {
  typedef typename TypeParam::Dtype Dtype;
  const std::string lmdb = this->BuildLMDB(0);
  for (int backend = 0; backend < 2; ++backend) {
    std::vector<std::vector<Dtype> > runs;
    const int threads[] = {1, 2, 3, 7, 0};
    for (int i = 0; i < 5; ++i) {
      Caffe::set_random_seed(1234);
      LayerParameter param = this->Param(TRAIN, 3, 3, 2);
      VideoDataParameter* p = param.mutable_video_data_param();
      p->set_modality(VideoDataParameter_Modality_RGB_FLOW);
      p->set_shuffle(true);
      p->add_scale_ratios(1);
      p->add_scale_ratios(.875);
      p->add_scale_ratios(.75);
      p->set_decode_threads(threads[i]);
      if (backend == 1) {
        p->set_backend(VideoDataParameter_Backend_LMDB);
        p->set_root_folder(lmdb);
      }
      param.mutable_transform_param()->set_mirror(true);
      VideoDataLayer<Dtype> layer(param);
      layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
      if (threads[i] > 0) {
        EXPECT_EQ(threads[i], layer.num_decode_threads());
      }
      EXPECT_GE(layer.num_decode_threads(), 1);
      EXPECT_LE(layer.num_decode_threads(), 8);
      std::vector<Dtype> run;
      for (int iter = 0; iter < 4; ++iter) {
        layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
        const Dtype* d = this->blob_top_data_->cpu_data();
        run.insert(run.end(), d, d + this->blob_top_data_->count());
        const Dtype* l = this->blob_top_label_->cpu_data();
        run.insert(run.end(), l, l + this->blob_top_label_->count());
      }
      runs.push_back(run);
    }
    for (int i = 1; i < runs.size(); ++i) {
      ASSERT_EQ(runs[0].size(), runs[i].size());
      for (int j = 0; j < runs[0].size(); ++j) {
        ASSERT_EQ(runs[0][j], runs[i][j])
            << "backend " << backend << ", threads " << threads[i] << ", " << j;
      }
    }
  }
}

namespace {

// A JPEG whose entropy-coded data (after the SOS header) is overwritten in
// its middle half with pseudo-random bytes (never 0xFF, so no marker).
std::string ScrambleEntropy(const std::string& jpeg, unsigned int seed) {
  const size_t sos = jpeg.find("\xFF\xDA");
  CHECK_NE(std::string::npos, sos);
  const size_t start = sos + 2 + ((static_cast<unsigned char>(jpeg[sos + 2])
                                   << 8) | static_cast<unsigned char>(jpeg[sos + 3]));
  const size_t end = jpeg.size() - 2;  // before EOI
  std::string out = jpeg;
  MtSampler rand(seed);
  for (size_t i = start + (end - start) / 4; i < start + 3 * (end - start) / 4;
       ++i) {
    out[i] = static_cast<char>(rand(255));
  }
  return out;
}

// `image` (BGR or grey) as a baseline or progressive JPEG whose chroma is
// sampled h_samp x v_samp times more coarsely than luma (2, 2: 4:2:0).
std::string EncodeJpeg(const cv::Mat& image, int h_samp, int v_samp,
                       bool progressive) {
  jpeg_compress_struct cinfo;
  jpeg_error_mgr err;
  cinfo.err = jpeg_std_error(&err);
  jpeg_create_compress(&cinfo);
  unsigned char* out = NULL;
  unsigned long out_size = 0;  // NOLINT(runtime/int)
  jpeg_mem_dest(&cinfo, &out, &out_size);
  cinfo.image_width = image.cols;
  cinfo.image_height = image.rows;
  cinfo.input_components = image.channels();
  cinfo.in_color_space = image.channels() == 3 ? JCS_EXT_BGR : JCS_GRAYSCALE;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, 90, TRUE);
  if (image.channels() == 3) {
    cinfo.comp_info[0].h_samp_factor = h_samp;
    cinfo.comp_info[0].v_samp_factor = v_samp;
    for (int c = 1; c < 3; ++c) {
      cinfo.comp_info[c].h_samp_factor = cinfo.comp_info[c].v_samp_factor = 1;
    }
  }
  if (progressive) jpeg_simple_progression(&cinfo);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<uchar*>(image.ptr<uchar>(cinfo.next_scanline));
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  const std::string bytes(reinterpret_cast<char*>(out), out_size);
  jpeg_destroy_compress(&cinfo);
  free(out);
  return bytes;
}

}  // namespace

// A decode of a region (some columns, some rows) gives, in it, exactly the
// pixels of a whole decode, for every chroma subsampling libjpeg writes,
// progressive files and grey, at ranges touching either edge, iMCU
// boundaries or neither; damage outside the region still fails the decode.
TEST(VideoFramesTest, RegionDecodeMatchesWholeDecode) {
  // Smooth colour (so that chroma upsampling matters) plus noise; 70 rows
  // hold several iMCU rows to skip.
  cv::Mat image(70, 173, CV_8UC3);
  cv::randu(image, cv::Scalar::all(0), cv::Scalar::all(255));
  cv::GaussianBlur(image, image, cv::Size(9, 9), 3);
  const int samplings[][2] = {{2, 2}, {2, 1}, {1, 1}, {4, 1}, {1, 2}};
  std::vector<std::string> jpegs;
  for (int i = 0; i < 5; ++i) {
    jpegs.push_back(EncodeJpeg(image, samplings[i][0], samplings[i][1],
                               false));
  }
  jpegs.push_back(EncodeJpeg(image, 2, 2, true));
  cv::Mat grey;
  cv::cvtColor(image, grey, cv::COLOR_BGR2GRAY);
  jpegs.push_back(EncodeJpeg(grey, 1, 1, false));
  // Row ranges (first, count): whole, either edge, inside, on and off the
  // 16-row iMCU boundaries.
  const int row_ranges[][2] = {{0, 70}, {0, 9}, {17, 20}, {32, 16},
                               {33, 37}, {50, 20}, {61, 9}};
  for (size_t j = 0; j < jpegs.size(); ++j) {
    for (int as_grey = 0; as_grey < 2; ++as_grey) {
      cv::Mat whole, part;
      ASSERT_TRUE(DecodeFrameBytes(jpegs[j].data(), jpegs[j].size(), &whole,
                                   as_grey)) << j;
      int calls = 0, decodes = 0;
      for (const int* rows : row_ranges) {
        for (int start = 0; start < image.cols; start += 5) {
          for (int w = 1; start + w <= image.cols; w += 19, ++decodes) {
            const cv::Rect box(start, rows[0], w, rows[1]);
            const RegionNeeded region = [&](const cv::Size& s) {
              EXPECT_EQ(whole.size(), s);  // the header's, before decoding
              ++calls;
              return box;
            };
            ASSERT_TRUE(DecodeFrameBytes(jpegs[j].data(), jpegs[j].size(),
                                         &part, as_grey, &region));
            ASSERT_EQ(0, cv::norm(whole(box), part(box), cv::NORM_INF))
                << "jpeg " << j << (as_grey ? " as grey" : "") << ", columns "
                << start << " to " << start + w << ", rows " << rows[0]
                << " to " << rows[0] + rows[1];
          }
        }
      }
      EXPECT_EQ(decodes, calls);  // once per decode
    }
  }
  // Damage outside the region: the last rows cut off or the middle half
  // scrambled, with only the first or the last rows and columns needed.
  const cv::Rect corners[] = {cv::Rect(0, 0, 16, 16), cv::Rect(0, 54, 16, 16)};
  const std::string jpeg = jpegs[0];
  const std::string damaged[] = {jpeg.substr(0, jpeg.size() * 9 / 10),
                                 ScrambleEntropy(jpeg, 3)};
  for (const cv::Rect& corner : corners) {
    const RegionNeeded region = [&](const cv::Size&) { return corner; };
    for (int i = 0; i < 2; ++i) {
      cv::Mat out;
      EXPECT_FALSE(DecodeFrameBytes(damaged[i].data(), damaged[i].size(),
                                    &out, false, &region))
          << i << ", rows from " << corner.y;
      EXPECT_TRUE(out.empty()) << i;
    }
  }
}

// libjpeg only warns on truncated files and corrupt entropy data (and
// cv::imdecode then returns an image with grey or garbled blocks): both are
// failed decodes, and a failed decode never leaves the previous frame.
TEST(VideoFramesTest, CorruptJpegsAreFailedDecodes) {
  cv::Mat big(96, 128, CV_8UC3);
  cv::randu(big, cv::Scalar::all(0), cv::Scalar::all(255));
  std::vector<uchar> encoded;
  ASSERT_TRUE(cv::imencode(".jpg", big, encoded));
  const std::string jpeg(encoded.begin(), encoded.end());
  cv::Mat image;
  ASSERT_TRUE(DecodeFrameBytes(jpeg.data(), jpeg.size(), &image));
  // The same pixels as cv::imdecode.
  cv::Mat reference = cv::imdecode(encoded, cv::IMREAD_COLOR);
  ASSERT_EQ(0, cv::norm(image, reference, cv::NORM_INF));
  cv::Mat grey;
  ASSERT_TRUE(DecodeFrameBytes(jpeg.data(), jpeg.size(), &grey, true));
  ASSERT_EQ(0, cv::norm(grey, cv::imdecode(encoded, cv::IMREAD_GRAYSCALE),
                        cv::NORM_INF));

  const std::string truncated = jpeg.substr(0, jpeg.size() * 2 / 3);
  const std::string scrambled = ScrambleEntropy(jpeg, 7);
  const std::string cases[] = {truncated, scrambled,
                               std::string("not an image at all"),
                               jpeg.substr(0, 2) + "junk"};
  for (int i = 0; i < 4; ++i) {
    // cv::imdecode hides the first two: it returns an image.
    const cv::Mat buf(1, cases[i].size(), CV_8UC1,
                      const_cast<char*>(cases[i].data()));
    if (i < 2) {
      EXPECT_FALSE(cv::imdecode(buf, cv::IMREAD_COLOR).empty()) << i;
    }
    cv::Mat previous = reference.clone();
    EXPECT_FALSE(DecodeFrameBytes(cases[i].data(), cases[i].size(),
                                  &previous)) << i;
    EXPECT_TRUE(previous.empty()) << i;  // not the previous frame
    cv::Mat previous_grey = grey.clone();
    EXPECT_FALSE(DecodeFrameBytes(cases[i].data(), cases[i].size(),
                                  &previous_grey, true)) << i;
    EXPECT_TRUE(previous_grey.empty()) << i;
  }
}

// A frame that does not decode (scrambled or not an image, in a folder or
// an LMDB) is refused naming list line, video and frame, or skipped and
// counted: never replaced by the frame decoded before it.
TYPED_TEST(VideoDataLayerTest, TestCorruptFrameRefusedOnBothBackends) {
  typedef typename TypeParam::Dtype Dtype;
  // v_1 has 20 frames; TEST, 3 segments: frames 4, 11, 17. Frame 11 is
  // not an image, frame 17 a JPEG with scrambled entropy data.
  const std::string id = this->VideoId(1);
  WriteAll(this->FramePath(id, 11), "GIF89a not really");
  std::vector<uchar> encoded;
  cv::Mat noisy(kH, kW, CV_8UC3);
  cv::randu(noisy, cv::Scalar::all(0), cv::Scalar::all(255));
  ASSERT_TRUE(cv::imencode(".jpg", noisy, encoded));
  WriteAll(this->FramePath(id, 17),
           ScrambleEntropy(std::string(encoded.begin(), encoded.end()), 3));
  const std::string lmdb = this->BuildLMDB(0);
  for (int backend = 0; backend < 2; ++backend) {
    LayerParameter param = this->Param(TEST, 3, 3, 1);
    if (backend == 1) {
      param.mutable_video_data_param()->set_backend(
          VideoDataParameter_Backend_LMDB);
      param.mutable_video_data_param()->set_root_folder(lmdb);
    }
    ::testing::FLAGS_gtest_death_test_style = "threadsafe";
    EXPECT_DEATH({
      VideoDataLayer<Dtype> bad(param);
      bad.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
      bad.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
    }, "list.txt:line 2: video 'v_1' frame 11: cannot decode");
    // Only frame 17 bad: still refused (libjpeg's warning is an error).
    if (backend == 0) {
      std::vector<uchar> good;
      ASSERT_TRUE(cv::imencode(".jpg", FrameImage(1, 11), good));
      WriteAll(this->FramePath(id, 11), std::string(good.begin(), good.end()));
      EXPECT_DEATH({
        VideoDataLayer<Dtype> bad(param);
        bad.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
        bad.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
      }, "line 2: video 'v_1' frame 17: cannot decode");
    }
    // skip_bad_videos: v_1 is skipped and counted; its slot gets v_2.
    param.mutable_video_data_param()->set_skip_bad_videos(true);
    VideoDataLayer<Dtype> layer(param);
    layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
    layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
    // At least once: the prefetch thread may already be loading later
    // batches, which meet v_1 again (as in TestBadFrames).
    EXPECT_GE(layer.num_skipped(), 1);
    const int labels[] = {0, 2, 0};
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(labels[i], this->blob_top_label_->cpu_data()[i]);
      for (int k = 0; k < 3; ++k) EXPECT_EQ(labels[i], this->VideoOf(3 * i + k));
    }
  }
}

TYPED_TEST(VideoDataLayerTest, TestLabelBeyondNumClassesDies) {
  LayerParameter param = this->Param(TEST, 1, 3, 1);
  param.set_name("data");
  param.mutable_video_data_param()->set_num_classes(3);
  {
    typedef typename TypeParam::Dtype Dtype;
    VideoDataLayer<Dtype> layer(param);  // labels 0, 1, 2: fine
    layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  }
  param.mutable_video_data_param()->set_num_classes(2);
  this->ExpectSetUpDies(param, "VideoData data: .*list.txt:line 3: video "
                        "'v_2': label 2 is not below num_classes 2");
}

TYPED_TEST(VideoDataLayerTest, TestCropLargerThanFrameDies) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter param = this->Param(TRAIN, 1, 3, 1);
  param.set_name("data");
  // Frames are 48x32.
  param.mutable_transform_param()->set_crop_size(40);
  this->ExpectSetUpDies(param, "VideoData data: crop_size 40 is larger than "
                        "the 48x32 frames .*line 1: video 'v_0'");
  param.mutable_video_data_param()->set_new_height(30);
  param.mutable_video_data_param()->set_new_width(60);
  this->ExpectSetUpDies(param, "VideoData data: crop_size 40 is larger than "
                        "the 60x30 frames");
  // A later video with smaller frames: refused at its first batch.
  param = this->Param(TEST, 3, 3, 1);
  param.set_name("data");
  param.mutable_transform_param()->set_crop_size(30);
  boost::filesystem::remove_all(this->root_ + "/" + this->VideoId(2));
  boost::filesystem::create_directories(this->root_ + "/" + this->VideoId(2));
  for (int i = 1; i <= this->num_frames_[2]; ++i) {
    cv::Mat small;
    cv::resize(FrameImage(2, i), small, cv::Size(40, 28));
    ASSERT_TRUE(cv::imwrite(this->FramePath(this->VideoId(2), i), small));
  }
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  EXPECT_DEATH({
    VideoDataLayer<Dtype> layer(param);
    layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
    layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
  }, "video 'v_2' frame [0-9]+: crop_size 30 is larger than the 40x28");
}

TYPED_TEST(VideoDataLayerTest, TestSegmentCountsNamed) {
  LayerParameter param = this->Param(TEST, 1, 0, 1);
  param.set_name("data");
  this->ExpectSetUpDies(param, "VideoData data: num_segments must be at "
                        "least 1 .*got 0");
  param.mutable_video_data_param()->set_num_segments(100000000);
  this->ExpectSetUpDies(param, "VideoData data: the data top would hold "
                        "172800000000 values .*num_segments 100000000");
}

}  // namespace caffe
#endif  // USE_OPENCV
