#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

#include "caffe/blob.hpp"
#include "caffe/common.hpp"
#include "caffe/filler.hpp"
#include "caffe/layers/batch_norm_layer.hpp"
#include "caffe/layers/frozen_bn_layer.hpp"
#include "caffe/layers/scale_layer.hpp"
#include "caffe/util/dcd_kernels.hpp"
#include "caffe/util/math_functions.hpp"

#include "caffe/test/test_caffe_main.hpp"
#include "caffe/test/test_dcd_util.hpp"
#include "caffe/test/test_gradient_check_util.hpp"

namespace caffe {

// GradientChecker checks every parameter blob of a layer, but FrozenBN's
// statistics (blobs 0-2) are constants with no gradient by design. This view
// runs a FrozenBN layer and exposes only its gamma and beta as parameters,
// so the checker compares the bottom's and their gradients.
template <typename Dtype>
class FrozenBNAffineView : public Layer<Dtype> {
 public:
  explicit FrozenBNAffineView(const LayerParameter& param)
      : Layer<Dtype>(param), inner_(param) {}
  virtual void LayerSetUp(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top) {
    inner_.SetUp(bottom, top);
    this->blobs_.resize(2);
    this->blobs_[0] = inner_.blobs()[3];
    this->blobs_[1] = inner_.blobs()[4];
  }
  virtual void Reshape(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top) {
    inner_.Reshape(bottom, top);
  }
  virtual inline const char* type() const { return "FrozenBNAffineView"; }

 protected:
  // Layer's Forward_gpu / Backward_gpu call these; inner_ picks the device.
  virtual void Forward_cpu(const vector<Blob<Dtype>*>& bottom,
      const vector<Blob<Dtype>*>& top) {
    inner_.Forward(bottom, top);
  }
  virtual void Backward_cpu(const vector<Blob<Dtype>*>& top,
      const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {
    inner_.Backward(top, propagate_down, bottom);
  }

  FrozenBNLayer<Dtype> inner_;
};

template <typename TypeParam>
class FrozenBNLayerTest : public MultiDeviceTest<TypeParam> {
  typedef typename TypeParam::Dtype Dtype;

 protected:
  FrozenBNLayerTest()
      : blob_bottom_(new Blob<Dtype>(2, 3, 4, 5)),
        blob_top_(new Blob<Dtype>()),
        mean_(vector<int>(1, 3)), var_(vector<int>(1, 3)),
        factor_(vector<int>(1, 1)), gamma_(vector<int>(1, 3)),
        beta_(vector<int>(1, 3)) {
    Caffe::set_random_seed(1701);
    FillUniform(blob_bottom_, Dtype(-2), Dtype(2));
    blob_bottom_vec_.push_back(blob_bottom_);
    blob_top_vec_.push_back(blob_top_);
    // Statistics as BatchNorm stores them: sums scaled by the factor.
    SetStatistics(Dtype(2.5));
    FillUniform(&gamma_, Dtype(-1.5), Dtype(1.5));
    FillUniform(&beta_, Dtype(-1), Dtype(1));
  }
  virtual ~FrozenBNLayerTest() {
    delete blob_bottom_;
    delete blob_top_;
  }

  void SetStatistics(Dtype factor) {
    FillUniform(&mean_, Dtype(-1), Dtype(1));
    FillUniform(&var_, Dtype(0.2), Dtype(2));
    caffe_scal(3, factor, mean_.mutable_cpu_data());
    caffe_scal(3, factor, var_.mutable_cpu_data());
    factor_.mutable_cpu_data()[0] = factor;
  }

  // A FrozenBN layer parameter holding the fixture's five blobs.
  LayerParameter MakeParam(float eps = 1e-5) {
    LayerParameter p;
    p.set_name("conv_bn");
    p.mutable_frozen_bn_param()->set_eps(eps);
    const Blob<Dtype>* blobs[5] = {&mean_, &var_, &factor_, &gamma_, &beta_};
    for (int i = 0; i < 5; ++i) { blobs[i]->ToProto(p.add_blobs()); }
    return p;
  }

  void FillTopDiff(Blob<Dtype>* top) {
    Blob<Dtype> tmp;
    tmp.ReshapeLike(*top);
    FillUniform(&tmp, Dtype(-1), Dtype(1));
    caffe_copy(tmp.count(), tmp.cpu_data(), top->mutable_cpu_diff());
  }

  // The reference: Caffe's BatchNorm (use_global_stats) then Scale (bias) on
  // the same blobs, forward and backward with the top diff already in
  // blob_top_. Fills ref_top (data), ref_bottom_diff, ref_gamma_diff and
  // ref_beta_diff.
  void RunReference(float eps, Blob<Dtype>* ref_top,
      Blob<Dtype>* ref_bottom_diff, Blob<Dtype>* ref_gamma_diff,
      Blob<Dtype>* ref_beta_diff) {
    LayerParameter bn_param;
    bn_param.mutable_batch_norm_param()->set_use_global_stats(true);
    bn_param.mutable_batch_norm_param()->set_eps(eps);
    BatchNormLayer<Dtype> bn(bn_param);
    LayerParameter scale_param;
    scale_param.mutable_scale_param()->set_bias_term(true);
    ScaleLayer<Dtype> scale(scale_param);
    Blob<Dtype> bottom, normalized, top;
    bottom.CopyFrom(*blob_bottom_, false, true);
    vector<Blob<Dtype>*> bn_bottom(1, &bottom), bn_top(1, &normalized),
        scale_top(1, &top);
    bn.SetUp(bn_bottom, bn_top);
    scale.SetUp(bn_top, scale_top);
    bn.blobs()[0]->CopyFrom(mean_);
    bn.blobs()[1]->CopyFrom(var_);
    bn.blobs()[2]->CopyFrom(factor_);
    scale.blobs()[0]->CopyFrom(gamma_);
    scale.blobs()[1]->CopyFrom(beta_);
    bn.Forward(bn_bottom, bn_top);
    scale.Forward(bn_top, scale_top);
    caffe_copy(top.count(), blob_top_->cpu_diff(), top.mutable_cpu_diff());
    for (int i = 0; i < 2; ++i) {
      caffe_set(scale.blobs()[i]->count(), Dtype(0),
                scale.blobs()[i]->mutable_cpu_diff());
    }
    scale.Backward(scale_top, vector<bool>(1, true), bn_top);
    bn.Backward(bn_top, vector<bool>(1, true), bn_bottom);
    ref_top->CopyFrom(top, false, true);
    ref_bottom_diff->ReshapeLike(bottom);
    caffe_copy(bottom.count(), bottom.cpu_diff(),
               ref_bottom_diff->mutable_cpu_data());
    ref_gamma_diff->ReshapeLike(*scale.blobs()[0]);
    caffe_copy(3, scale.blobs()[0]->cpu_diff(),
               ref_gamma_diff->mutable_cpu_data());
    ref_beta_diff->ReshapeLike(*scale.blobs()[1]);
    caffe_copy(3, scale.blobs()[1]->cpu_diff(),
               ref_beta_diff->mutable_cpu_data());
  }

  // SetUp, Forward, then Backward from a random top diff with gamma's and
  // beta's diffs zeroed first.
  void ForwardBackward(FrozenBNLayer<Dtype>* layer) {
    layer->SetUp(blob_bottom_vec_, blob_top_vec_);
    layer->Forward(blob_bottom_vec_, blob_top_vec_);
    FillTopDiff(blob_top_);
    for (int i = 3; i < 5; ++i) {
      caffe_set(3, Dtype(0), layer->blobs()[i]->mutable_cpu_diff());
    }
    layer->Backward(blob_top_vec_, vector<bool>(1, true), blob_bottom_vec_);
  }

  // FrozenBN against the reference, forward and backward.
  void CheckAgainstBatchNormScale(float eps) {
    FrozenBNLayer<Dtype> layer(MakeParam(eps));
    ForwardBackward(&layer);
    Blob<Dtype> top, bottom_diff, gamma_diff, beta_diff;
    RunReference(eps, &top, &bottom_diff, &gamma_diff, &beta_diff);
    const Dtype tol = sizeof(Dtype) == 4 ? 1e-5 : 1e-12;
    for (int i = 0; i < top.count(); ++i) {
      EXPECT_NEAR(top.cpu_data()[i], blob_top_->cpu_data()[i],
                  tol * (1 + std::fabs(top.cpu_data()[i]))) << "top " << i;
      EXPECT_NEAR(bottom_diff.cpu_data()[i], blob_bottom_->cpu_diff()[i],
                  tol * (1 + std::fabs(bottom_diff.cpu_data()[i])))
          << "bottom diff " << i;
    }
    for (int c = 0; c < 3; ++c) {
      EXPECT_NEAR(gamma_diff.cpu_data()[c], layer.blobs()[3]->cpu_diff()[c],
                  tol * 40) << "gamma diff " << c;
      EXPECT_NEAR(beta_diff.cpu_data()[c], layer.blobs()[4]->cpu_diff()[c],
                  tol * 40) << "beta diff " << c;
    }
  }

  Blob<Dtype>* const blob_bottom_;
  Blob<Dtype>* const blob_top_;
  vector<Blob<Dtype>*> blob_bottom_vec_;
  vector<Blob<Dtype>*> blob_top_vec_;
  Blob<Dtype> mean_, var_, factor_, gamma_, beta_;
};

TYPED_TEST_CASE(FrozenBNLayerTest, TestDtypesAndDevices);

TYPED_TEST(FrozenBNLayerTest, TestSetUpFreshLayer) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter param;
  param.set_name("conv_bn");
  FrozenBNLayer<Dtype> layer(param);
  layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  EXPECT_TRUE(this->blob_top_->shape() == this->blob_bottom_->shape());
  ASSERT_EQ(layer.blobs().size(), 5);
  // BatchNorm's fresh statistics, Scale's fresh affine.
  const int counts[5] = {3, 3, 1, 3, 3};
  const Dtype values[5] = {0, 0, 0, 1, 0};
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(layer.blobs()[i]->num_axes(), 1) << "blob " << i;
    ASSERT_EQ(layer.blobs()[i]->count(), counts[i]) << "blob " << i;
    for (int k = 0; k < counts[i]; ++k) {
      EXPECT_EQ(layer.blobs()[i]->cpu_data()[k], values[i]) << "blob " << i;
    }
  }
  // The statistics are masked from the solver; gamma and beta are not.
  ASSERT_EQ(layer.layer_param().param_size(), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(layer.layer_param().param(i).lr_mult(), 0);
    EXPECT_EQ(layer.layer_param().param(i).decay_mult(), 0);
  }
  EXPECT_FALSE(layer.param_propagate_down(0));
  EXPECT_TRUE(layer.param_propagate_down(3));
  EXPECT_TRUE(layer.param_propagate_down(4));
}

TYPED_TEST(FrozenBNLayerTest, TestMatchesBatchNormScale) {
  this->CheckAgainstBatchNormScale(1e-5);
  this->CheckAgainstBatchNormScale(0.3);  // eps is used, not assumed
}

TYPED_TEST(FrozenBNLayerTest, TestZeroFactorReadsZeroStatistics) {
  typedef typename TypeParam::Dtype Dtype;
  // BatchNorm with an empty moving average: mean 0, variance 0.
  this->factor_.mutable_cpu_data()[0] = 0;
  this->CheckAgainstBatchNormScale(1e-2);
  FrozenBNLayer<Dtype> layer(this->MakeParam(1e-2));
  layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
  const Dtype inv_std = 1 / std::sqrt(Dtype(1e-2));
  for (int i = 0; i < this->blob_top_->count(); ++i) {
    const int c = (i / 20) % 3;
    const Dtype want = this->gamma_.cpu_data()[c] * this->blob_bottom_->
        cpu_data()[i] * inv_std + this->beta_.cpu_data()[c];
    EXPECT_NEAR(this->blob_top_->cpu_data()[i], want,
                1e-5 * (1 + std::fabs(want)));
  }
}

TYPED_TEST(FrozenBNLayerTest, TestMatrixBottom) {
  // N x C (after an InnerProduct): spatial size 1.
  this->blob_bottom_->Reshape(5, 3, 1, 1);
  FillUniform(this->blob_bottom_, typename TypeParam::Dtype(-2),
              typename TypeParam::Dtype(2));
  vector<int> shape(2, 5);
  shape[1] = 3;
  this->blob_bottom_->Reshape(shape);
  this->CheckAgainstBatchNormScale(1e-5);
}

TYPED_TEST(FrozenBNLayerTest, TestGradient) {
  typedef typename TypeParam::Dtype Dtype;
  FrozenBNAffineView<Dtype> layer(this->MakeParam());
  GradientChecker<Dtype> checker(1e-2, 1e-3);
  checker.CheckGradientExhaustive(&layer, this->blob_bottom_vec_,
                                  this->blob_top_vec_);
}

// Partial BN: gamma and beta frozen (lr_mult 0). Backward writes every
// element of the bottom diff and no parameter diff; statistics never change.
TYPED_TEST(FrozenBNLayerTest, TestFrozenAffineWritesOnlyTheBottomDiff) {
  typedef typename TypeParam::Dtype Dtype;
  FrozenBNLayer<Dtype> layer(this->MakeParam());
  layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  layer.set_param_propagate_down(3, false);
  layer.set_param_propagate_down(4, false);
  layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
  this->FillTopDiff(this->blob_top_);
  const Dtype nan = std::numeric_limits<Dtype>::quiet_NaN();
  for (int i = 0; i < 5; ++i) {
    caffe_set(layer.blobs()[i]->count(), nan,
              layer.blobs()[i]->mutable_cpu_diff());
  }
  ExpectBackwardWritesEveryDiff(&layer, this->blob_top_vec_,
                                this->blob_bottom_vec_);
  for (int i = 0; i < 5; ++i) {
    for (int k = 0; k < layer.blobs()[i]->count(); ++k) {
      EXPECT_TRUE(std::isnan(layer.blobs()[i]->cpu_diff()[k])) << "blob " << i;
    }
  }
  // dx = dy gamma / sqrt(var / f + eps)
  const Dtype f = this->factor_.cpu_data()[0];
  for (int i = 0; i < this->blob_bottom_->count(); ++i) {
    const int c = (i / 20) % 3;
    const Dtype want = this->blob_top_->cpu_diff()[i] *
        this->gamma_.cpu_data()[c] /
        std::sqrt(this->var_.cpu_data()[c] / f + Dtype(1e-5));
    EXPECT_NEAR(this->blob_bottom_->cpu_diff()[i], want,
                1e-5 * (1 + std::fabs(want)));
  }
  const Blob<Dtype>* given[5] = {&this->mean_, &this->var_, &this->factor_,
                                 &this->gamma_, &this->beta_};
  for (int i = 0; i < 5; ++i) {
    for (int k = 0; k < given[i]->count(); ++k) {
      EXPECT_EQ(layer.blobs()[i]->cpu_data()[k], given[i]->cpu_data()[k]);
    }
  }
}

// Only beta learned: gamma's diff stays untouched, beta's is the sum of dy.
TYPED_TEST(FrozenBNLayerTest, TestOnlyBetaLearned) {
  typedef typename TypeParam::Dtype Dtype;
  FrozenBNLayer<Dtype> layer(this->MakeParam());
  layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  layer.set_param_propagate_down(3, false);
  layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
  this->FillTopDiff(this->blob_top_);
  const Dtype nan = std::numeric_limits<Dtype>::quiet_NaN();
  caffe_set(3, nan, layer.blobs()[3]->mutable_cpu_diff());
  caffe_set(3, Dtype(0), layer.blobs()[4]->mutable_cpu_diff());
  layer.Backward(this->blob_top_vec_, vector<bool>(1, false),
                 this->blob_bottom_vec_);
  for (int c = 0; c < 3; ++c) {
    EXPECT_TRUE(std::isnan(layer.blobs()[3]->cpu_diff()[c]));
    double sum = 0;
    for (int n = 0; n < 2; ++n) {
      for (int i = 0; i < 20; ++i) {
        sum += this->blob_top_->cpu_diff()[(n * 3 + c) * 20 + i];
      }
    }
    EXPECT_NEAR(layer.blobs()[4]->cpu_diff()[c], sum, 1e-5);
  }
}

// Parameter diffs accumulate over Backward calls (iter_size), as Scale's.
TYPED_TEST(FrozenBNLayerTest, TestParameterDiffsAccumulate) {
  typedef typename TypeParam::Dtype Dtype;
  FrozenBNLayer<Dtype> layer(this->MakeParam());
  this->ForwardBackward(&layer);
  vector<Dtype> once(layer.blobs()[3]->cpu_diff(),
                     layer.blobs()[3]->cpu_diff() + 3);
  once.insert(once.end(), layer.blobs()[4]->cpu_diff(),
              layer.blobs()[4]->cpu_diff() + 3);
  layer.Backward(this->blob_top_vec_, vector<bool>(1, true),
                 this->blob_bottom_vec_);
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(layer.blobs()[3]->cpu_diff()[c], 2 * once[c],
                1e-5 * (1 + std::fabs(once[c])));
    EXPECT_NEAR(layer.blobs()[4]->cpu_diff()[c], 2 * once[3 + c],
                1e-5 * (1 + std::fabs(once[3 + c])));
    EXPECT_NE(once[c], 0);
  }
}

TYPED_TEST(FrozenBNLayerTest, TestInPlaceEqualsOutOfPlace) {
  typedef typename TypeParam::Dtype Dtype;
  FrozenBNLayer<Dtype> layer(this->MakeParam());
  this->ForwardBackward(&layer);
  Blob<Dtype> in_place;
  in_place.CopyFrom(*this->blob_bottom_, false, true);
  caffe_copy(in_place.count(), this->blob_top_->cpu_diff(),
             in_place.mutable_cpu_diff());
  vector<Blob<Dtype>*> vec(1, &in_place);
  FrozenBNLayer<Dtype> layer2(this->MakeParam());
  layer2.SetUp(vec, vec);
  for (int i = 3; i < 5; ++i) {
    caffe_set(3, Dtype(0), layer2.blobs()[i]->mutable_cpu_diff());
  }
  layer2.Forward(vec, vec);
  for (int i = 0; i < in_place.count(); ++i) {
    EXPECT_EQ(in_place.cpu_data()[i], this->blob_top_->cpu_data()[i]);
  }
  caffe_copy(in_place.count(), this->blob_top_->cpu_diff(),
             in_place.mutable_cpu_diff());
  layer2.Backward(vec, vector<bool>(1, true), vec);
  for (int i = 0; i < in_place.count(); ++i) {
    EXPECT_EQ(in_place.cpu_diff()[i], this->blob_bottom_->cpu_diff()[i]);
  }
  for (int i = 3; i < 5; ++i) {
    for (int c = 0; c < 3; ++c) {
      EXPECT_EQ(layer2.blobs()[i]->cpu_diff()[c],
                layer.blobs()[i]->cpu_diff()[c]) << "blob " << i;
    }
  }
}

TYPED_TEST(FrozenBNLayerTest, TestBadInputDies) {
  typedef typename TypeParam::Dtype Dtype;
  // Blobs for 3 channels, a bottom with 4.
  this->blob_bottom_->Reshape(2, 4, 4, 5);
  ExpectSetUpDies<FrozenBNLayer<Dtype> >(this->MakeParam(),
      this->blob_bottom_vec_, this->blob_top_vec_,
      "FrozenBN layer conv_bn: the bottom has 4 channels, the layer's blobs "
      "3 \\(bottom 2 4 4 5");
  this->blob_bottom_->Reshape(vector<int>(1, 6));
  ExpectSetUpDies<FrozenBNLayer<Dtype> >(this->MakeParam(),
      this->blob_bottom_vec_, this->blob_top_vec_,
      "FrozenBN layer conv_bn: the bottom must be N x C x ..., got 6");
  this->blob_bottom_->Reshape(2, 3, 4, 5);
  LayerParameter learned = this->MakeParam();
  learned.add_param()->set_lr_mult(0);
  learned.add_param()->set_lr_mult(1);
  ExpectSetUpDies<FrozenBNLayer<Dtype> >(learned, this->blob_bottom_vec_,
      this->blob_top_vec_, "FrozenBN layer conv_bn: blob 1 holds statistics, "
      "which are never learned; give it lr_mult 0");
}

// ------------------------------------------------------------ kernel bodies --
// The CUDA kernels are grid-stride loops (one block per channel for the
// parameter gradients) over the bodies in dcd_kernels.hpp; run here on the
// CPU over every index, in launch order, against the CPU layer.

template <typename Dtype>
class FrozenBNKernelsTest : public ::testing::Test {
 protected:
  FrozenBNKernelsTest() {
    Caffe::set_mode(Caffe::CPU);
    Caffe::set_random_seed(1701);
  }
};

TYPED_TEST_CASE(FrozenBNKernelsTest, TestDtypes);

TYPED_TEST(FrozenBNKernelsTest, TestBodiesMatchTheCpuLayer) {
  typedef TypeParam Dtype;
  // 3 x 5 x 9 x 11: 297 elements per channel, more than one block's worth
  // of threads (each thread takes one or two).
  const int N = 3, C = 5, S = 9 * 11, count = N * C * S;
  Blob<Dtype> bottom(N, C, 9, 11), top, mean(vector<int>(1, C)),
      var(vector<int>(1, C)), factor(vector<int>(1, 1)),
      gamma(vector<int>(1, C)), beta(vector<int>(1, C));
  FillUniform(&bottom, Dtype(-2), Dtype(2));
  FillUniform(&mean, Dtype(-3), Dtype(3));
  FillUniform(&var, Dtype(0.1), Dtype(5));
  FillUniform(&gamma, Dtype(-2), Dtype(2));
  FillUniform(&beta, Dtype(-1), Dtype(1));
  factor.mutable_cpu_data()[0] = Dtype(1.7);
  LayerParameter p;
  p.set_name("conv_bn");
  const Blob<Dtype>* blobs[5] = {&mean, &var, &factor, &gamma, &beta};
  for (int i = 0; i < 5; ++i) { blobs[i]->ToProto(p.add_blobs()); }
  FrozenBNLayer<Dtype> layer(p);
  vector<Blob<Dtype>*> bottom_vec(1, &bottom), top_vec(1, &top);
  layer.SetUp(bottom_vec, top_vec);
  layer.Forward(bottom_vec, top_vec);
  FillUniform(&top, Dtype(-1), Dtype(1));  // data overwritten below
  caffe_copy(count, top.cpu_data(), top.mutable_cpu_diff());
  layer.Forward(bottom_vec, top_vec);
  for (int i = 3; i < 5; ++i) {
    caffe_set(C, Dtype(0), layer.blobs()[i]->mutable_cpu_diff());
  }
  layer.Backward(top_vec, vector<bool>(1, true), bottom_vec);
  // The layer's eps: the float parameter, as the layer reads it.
  const Dtype eps = layer.layer_param().frozen_bn_param().eps();

  vector<Dtype> y(count), dx(count), dx_channels(count);
  for (int index = 0; index < count; ++index) {
    dcd::frozen_bn_forward_elem(index, bottom.cpu_data(), C, S,
        mean.cpu_data(), var.cpu_data(), factor.cpu_data(), gamma.cpu_data(),
        beta.cpu_data(), eps, &y[0]);
    dcd::frozen_bn_backward_elem(index, top.cpu_diff(), C, S, var.cpu_data(),
        factor.cpu_data(), gamma.cpu_data(), eps, &dx[0]);
  }
  // The same operations in the same order: equal but for a compiler's
  // choice of fused multiply-adds.
  const Dtype same = sizeof(Dtype) == 4 ? 1e-6 : 1e-14;
  for (int i = 0; i < count; ++i) {
    const Dtype want_y = top.cpu_data()[i], want_dx = bottom.cpu_diff()[i];
    EXPECT_NEAR(y[i], want_y, same * (1 + std::fabs(want_y))) << "forward " << i;
    EXPECT_NEAR(dx[i], want_dx, same * (1 + std::fabs(want_dx)))
        << "backward " << i;
  }
  // The per-channel kernel: block c, threads t = 0 .. T - 1, then the
  // pairwise sum, level by level as the block's __syncthreads() order it.
  const int T = dcd::kFrozenBNThreads;
  for (int c = 0; c < C; ++c) {
    const dcd::FrozenBNChannel<Dtype> ch = dcd::frozen_bn_channel(c,
        mean.cpu_data(), var.cpu_data(),
        dcd::frozen_bn_stat_scale(factor.cpu_data()[0]), gamma.cpu_data(),
        eps);
    vector<Dtype> gs(T), bs(T);
    for (int t = 0; t < T; ++t) {
      dcd::frozen_bn_backward_thread(c, t, T, N, C, S, bottom.cpu_data(),
          top.cpu_diff(), ch, &dx_channels[0], &gs[t], &bs[t]);
    }
    for (int s = T / 2; s > 0; s >>= 1) {
      for (int t = 0; t < T; ++t) {
        dcd::frozen_bn_tree_step(t, s, &gs[0]);
        dcd::frozen_bn_tree_step(t, s, &bs[0]);
      }
    }
    const Dtype tol = sizeof(Dtype) == 4 ? 1e-4 : 1e-11;
    const Dtype g_cpu = layer.blobs()[3]->cpu_diff()[c];
    const Dtype b_cpu = layer.blobs()[4]->cpu_diff()[c];
    EXPECT_NEAR(gs[0], g_cpu, tol * (1 + std::fabs(g_cpu))) << "gamma " << c;
    EXPECT_NEAR(bs[0], b_cpu, tol * (1 + std::fabs(b_cpu))) << "beta " << c;
  }
  for (int i = 0; i < count; ++i) {
    const Dtype want = bottom.cpu_diff()[i];
    EXPECT_NEAR(dx_channels[i], want, same * (1 + std::fabs(want)))
        << "channels " << i;
  }
}

}  // namespace caffe
