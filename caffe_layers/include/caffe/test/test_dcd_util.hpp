#ifndef CAFFE_TEST_TEST_DCD_UTIL_HPP_
#define CAFFE_TEST_TEST_DCD_UTIL_HPP_

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"

#include "caffe/blob.hpp"
#include "caffe/filler.hpp"
#include "caffe/layer.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

// SetUp of a LayerT made from `param` on these blobs stops the program with
// a message matching `regex` (the layers' shape and parameter checks).
template <typename LayerT, typename Dtype>
void ExpectSetUpDies(const LayerParameter& param,
    const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top,
    const std::string& regex) {
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  EXPECT_DEATH({
    LayerT layer(param);
    layer.SetUp(bottom, top);
  }, regex);
}

// Fills a blob from U(lo, hi) with Caffe's RNG (Caffe::set_random_seed).
template <typename Dtype>
void FillUniform(Blob<Dtype>* blob, Dtype lo, Dtype hi) {
  FillerParameter filler_param;
  filler_param.set_min(lo);
  filler_param.set_max(hi);
  UniformFiller<Dtype> filler(filler_param);
  filler.Fill(blob);
}

// Runs Backward once per propagate_down mask (all 2^B of them) with every
// bottom diff pre-filled with NaN: a propagated bottom's diff must come back
// entirely finite (every element written, none stale), the others untouched.
// The layer must have run Forward and its top diffs must be filled.
template <typename Dtype>
void ExpectBackwardWritesEveryDiff(Layer<Dtype>* layer,
    const vector<Blob<Dtype>*>& top, const vector<Blob<Dtype>*>& bottom) {
  const Dtype nan = std::numeric_limits<Dtype>::quiet_NaN();
  const int num_bottoms = bottom.size();
  for (int mask = 0; mask < (1 << num_bottoms); ++mask) {
    vector<bool> propagate_down(num_bottoms);
    for (int b = 0; b < num_bottoms; ++b) {
      propagate_down[b] = (mask >> b) & 1;
      caffe_set(bottom[b]->count(), nan, bottom[b]->mutable_cpu_diff());
    }
    layer->Backward(top, propagate_down, bottom);
    for (int b = 0; b < num_bottoms; ++b) {
      const Dtype* diff = bottom[b]->cpu_diff();
      for (int i = 0; i < bottom[b]->count(); ++i) {
        if (propagate_down[b]) {
          EXPECT_TRUE(std::isfinite(diff[i])) << "bottom " << b << " " << i;
        } else {
          EXPECT_TRUE(std::isnan(diff[i])) << "bottom " << b << " " << i;
        }
      }
    }
  }
}

}  // namespace caffe

#endif  // CAFFE_TEST_TEST_DCD_UTIL_HPP_
