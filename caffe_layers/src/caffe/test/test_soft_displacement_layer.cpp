#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"

#include "caffe/blob.hpp"
#include "caffe/common.hpp"
#include "caffe/filler.hpp"
#include "caffe/layers/soft_displacement_layer.hpp"
#include "caffe/util/dcd_kernels.hpp"
#include "caffe/util/math_functions.hpp"

#include "caffe/test/test_caffe_main.hpp"
#include "caffe/test/test_dcd_util.hpp"
#include "caffe/test/test_gradient_check_util.hpp"

namespace caffe {

// Plain-loop reference written as the paper's Eq. (1)-(2): marginal
// distributions rho^y, rho^x (row / column sums of the softmax), then the
// expected offsets, times the dilation. WTA: first largest entry.
template <typename Dtype>
void ReferenceSoftDisplacement(const Blob<Dtype>& cost, int dh, int dw, int s,
    double tau, bool wta, Blob<Dtype>* out) {
  const int N = cost.num(), H = cost.height(), W = cost.width();
  out->Reshape(N, 2, H, W);
  for (int n = 0; n < N; ++n) {
    for (int i = 0; i < H; ++i) {
      for (int j = 0; j < W; ++j) {
        double vy = 0, vx = 0;
        if (wta) {
          int best = 0;
          for (int k = 1; k < cost.channels(); ++k) {
            if (cost.data_at(n, k, i, j) > cost.data_at(n, best, i, j)) {
              best = k;
            }
          }
          vy = (best / (2 * dw + 1) - dh) * s;
          vx = (best % (2 * dw + 1) - dw) * s;
        } else {
          double m = -std::numeric_limits<double>::infinity();
          for (int k = 0; k < cost.channels(); ++k) {
            m = std::max(m, static_cast<double>(cost.data_at(n, k, i, j)));
          }
          double z = 0;
          vector<double> rho_y(2 * dh + 1, 0), rho_x(2 * dw + 1, 0);
          for (int di = -dh; di <= dh; ++di) {
            for (int dj = -dw; dj <= dw; ++dj) {
              const int k = (di + dh) * (2 * dw + 1) + (dj + dw);
              const double e = std::exp((cost.data_at(n, k, i, j) - m) / tau);
              rho_y[di + dh] += e;
              rho_x[dj + dw] += e;
              z += e;
            }
          }
          for (int di = -dh; di <= dh; ++di) {
            vy += rho_y[di + dh] / z * di;
          }
          for (int dj = -dw; dj <= dw; ++dj) {
            vx += rho_x[dj + dw] / z * dj;
          }
          vy *= s;
          vx *= s;
        }
        out->mutable_cpu_data()[out->offset(n, 0, i, j)] = vy;
        out->mutable_cpu_data()[out->offset(n, 1, i, j)] = vx;
      }
    }
  }
}

template <typename TypeParam>
class SoftDisplacementLayerTest : public MultiDeviceTest<TypeParam> {
  typedef typename TypeParam::Dtype Dtype;

 protected:
  SoftDisplacementLayerTest()
      : blob_bottom_(new Blob<Dtype>(2, 15, 5, 7)),
        blob_top_(new Blob<Dtype>()) {
    Caffe::set_random_seed(1701);
    FillUniform(blob_bottom_);
    blob_bottom_vec_.push_back(blob_bottom_);
    blob_top_vec_.push_back(blob_top_);
  }
  virtual ~SoftDisplacementLayerTest() {
    delete blob_bottom_;
    delete blob_top_;
  }

  void FillUniform(Blob<Dtype>* blob) {
    FillerParameter filler_param;
    filler_param.set_min(-1);
    filler_param.set_max(1);
    UniformFiller<Dtype> filler(filler_param);
    filler.Fill(blob);
  }

  LayerParameter MakeParam(int dh, int dw, int dilation, float tau,
      bool wta) {
    LayerParameter layer_param;
    layer_param.set_name("sd_test");
    SoftDisplacementParameter* p =
        layer_param.mutable_soft_displacement_param();
    p->set_max_displacement_h(dh);
    p->set_max_displacement_w(dw);
    p->set_dilation(dilation);
    p->set_temperature(tau);
    if (wta) { p->set_method(SoftDisplacementParameter_Method_WTA); }
    return layer_param;
  }

  void CheckForward(int dilation, float tau, bool wta, Dtype tol) {
    LayerParameter layer_param = MakeParam(1, 2, dilation, tau, wta);
    SoftDisplacementLayer<Dtype> layer(layer_param);
    layer.SetUp(blob_bottom_vec_, blob_top_vec_);
    layer.Forward(blob_bottom_vec_, blob_top_vec_);
    Blob<Dtype> expected;
    ReferenceSoftDisplacement(*blob_bottom_, 1, 2, dilation, tau, wta,
                              &expected);
    ASSERT_TRUE(expected.shape() == blob_top_->shape());
    for (int i = 0; i < expected.count(); ++i) {
      EXPECT_NEAR(expected.cpu_data()[i], blob_top_->cpu_data()[i], tol)
          << "index " << i;
    }
  }

  void FillTopDiff() {
    FillerParameter filler_param;
    filler_param.set_min(-1);
    filler_param.set_max(1);
    UniformFiller<Dtype> filler(filler_param);
    Blob<Dtype> tmp;
    tmp.ReshapeLike(*blob_top_);
    filler.Fill(&tmp);
    caffe_copy(tmp.count(), tmp.cpu_data(), blob_top_->mutable_cpu_diff());
  }

  Blob<Dtype>* const blob_bottom_;
  Blob<Dtype>* const blob_top_;
  vector<Blob<Dtype>*> blob_bottom_vec_;
  vector<Blob<Dtype>*> blob_top_vec_;
};

TYPED_TEST_CASE(SoftDisplacementLayerTest, TestDtypesAndDevices);

TYPED_TEST(SoftDisplacementLayerTest, TestSetUp) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter layer_param = this->MakeParam(1, 2, 1, 0.1, false);
  SoftDisplacementLayer<Dtype> layer(layer_param);
  layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  EXPECT_EQ(this->blob_top_->num(), 2);
  EXPECT_EQ(this->blob_top_->channels(), 2);
  EXPECT_EQ(this->blob_top_->height(), 5);
  EXPECT_EQ(this->blob_top_->width(), 7);
}

TYPED_TEST(SoftDisplacementLayerTest, TestForwardTau1) {
  this->CheckForward(1, 1.0, false, 1e-5);
}

TYPED_TEST(SoftDisplacementLayerTest, TestForwardTau01Dilation2) {
  this->CheckForward(2, 0.1, false, 1e-5);
}

TYPED_TEST(SoftDisplacementLayerTest, TestForwardWTA) {
  this->CheckForward(2, 0.1, true, 0);
}

TYPED_TEST(SoftDisplacementLayerTest, TestWTATieTakesFirst) {
  typedef typename TypeParam::Dtype Dtype;
  caffe_set(this->blob_bottom_->count(), Dtype(0.5),
            this->blob_bottom_->mutable_cpu_data());
  LayerParameter layer_param = this->MakeParam(1, 2, 2, 0.1, true);
  SoftDisplacementLayer<Dtype> layer(layer_param);
  layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
  // k = 0 is (di, dj) = (-1, -2), times dilation 2.
  EXPECT_EQ(this->blob_top_->data_at(1, 0, 3, 4), -2);
  EXPECT_EQ(this->blob_top_->data_at(1, 1, 3, 4), -4);
}

TYPED_TEST(SoftDisplacementLayerTest, TestForwardStableLargeInputs) {
  typedef typename TypeParam::Dtype Dtype;
  caffe_add_scalar(this->blob_bottom_->count(), Dtype(1000),
                   this->blob_bottom_->mutable_cpu_data());
  this->CheckForward(1, 0.01, false, 1e-4);
  for (int i = 0; i < this->blob_top_->count(); ++i) {
    EXPECT_TRUE(std::isfinite(this->blob_top_->cpu_data()[i]));
  }
}

TYPED_TEST(SoftDisplacementLayerTest, TestGradientTau1) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter layer_param = this->MakeParam(1, 2, 1, 1.0, false);
  SoftDisplacementLayer<Dtype> layer(layer_param);
  GradientChecker<Dtype> checker(1e-2, 1e-2);
  checker.CheckGradient(&layer, this->blob_bottom_vec_, this->blob_top_vec_);
}

TYPED_TEST(SoftDisplacementLayerTest, TestGradientTau01Dilation2) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter layer_param = this->MakeParam(1, 2, 2, 0.1, false);
  SoftDisplacementLayer<Dtype> layer(layer_param);
  GradientChecker<Dtype> checker(2e-3, 1e-2);
  checker.CheckGradient(&layer, this->blob_bottom_vec_, this->blob_top_vec_);
}

TYPED_TEST(SoftDisplacementLayerTest, TestBackwardNaNAndPropagate) {
  typedef typename TypeParam::Dtype Dtype;
  for (int wta = 0; wta < 2; ++wta) {
    LayerParameter layer_param = this->MakeParam(1, 2, 1, 0.1, wta);
    SoftDisplacementLayer<Dtype> layer(layer_param);
    layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
    layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
    this->FillTopDiff();
    ExpectBackwardWritesEveryDiff(&layer, this->blob_top_vec_,
                                  this->blob_bottom_vec_);
    const int count = this->blob_bottom_->count();
    for (int i = 0; wta && i < count; ++i) {  // WTA passes no gradient.
      EXPECT_EQ(this->blob_bottom_->cpu_diff()[i], 0);
    }
  }
}

TYPED_TEST(SoftDisplacementLayerTest, TestReshape) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter layer_param = this->MakeParam(1, 2, 1, 0.5, false);
  SoftDisplacementLayer<Dtype> layer(layer_param);
  layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
  this->blob_bottom_->Reshape(3, 15, 4, 6);
  this->FillUniform(this->blob_bottom_);
  layer.Reshape(this->blob_bottom_vec_, this->blob_top_vec_);
  layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
  Blob<Dtype> expected;
  ReferenceSoftDisplacement(*this->blob_bottom_, 1, 2, 1, 0.5, false,
                            &expected);
  ASSERT_TRUE(expected.shape() == this->blob_top_->shape());
  for (int i = 0; i < expected.count(); ++i) {
    EXPECT_NEAR(expected.cpu_data()[i], this->blob_top_->cpu_data()[i], 1e-5);
  }
}

TYPED_TEST(SoftDisplacementLayerTest, TestBackwardDeterministic) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter layer_param = this->MakeParam(1, 2, 1, 0.1, false);
  SoftDisplacementLayer<Dtype> layer(layer_param);
  layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
  this->FillTopDiff();
  vector<bool> propagate_down(1, true);
  layer.Backward(this->blob_top_vec_, propagate_down, this->blob_bottom_vec_);
  const int count = this->blob_bottom_->count();
  vector<Dtype> first(this->blob_bottom_->cpu_diff(),
                      this->blob_bottom_->cpu_diff() + count);
  layer.Backward(this->blob_top_vec_, propagate_down, this->blob_bottom_vec_);
  EXPECT_EQ(0, memcmp(&first[0], this->blob_bottom_->cpu_diff(),
                      count * sizeof(Dtype)));
}

// learn_temperature: tau is parameter blob 0, initialised from `temperature`,
// and the forward pass is the fixed-temperature one.
TYPED_TEST(SoftDisplacementLayerTest, TestLearnTemperatureSetUpForward) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter layer_param = this->MakeParam(1, 2, 2, 0.1, false);
  layer_param.mutable_soft_displacement_param()->set_learn_temperature(true);
  SoftDisplacementLayer<Dtype> layer(layer_param);
  layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  ASSERT_EQ(layer.blobs().size(), 1);
  ASSERT_EQ(layer.blobs()[0]->count(), 1);
  EXPECT_NEAR(layer.blobs()[0]->cpu_data()[0], 0.1, 1e-7);
  layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
  Blob<Dtype> expected;
  ReferenceSoftDisplacement(*this->blob_bottom_, 1, 2, 2, 0.1, false,
                            &expected);
  for (int i = 0; i < expected.count(); ++i) {
    EXPECT_NEAR(expected.cpu_data()[i], this->blob_top_->cpu_data()[i], 1e-5);
  }
  // A changed blob value is the temperature the next forward pass uses.
  layer.blobs()[0]->mutable_cpu_data()[0] = Dtype(0.5);
  layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
  ReferenceSoftDisplacement(*this->blob_bottom_, 1, 2, 2, 0.5, false,
                            &expected);
  for (int i = 0; i < expected.count(); ++i) {
    EXPECT_NEAR(expected.cpu_data()[i], this->blob_top_->cpu_data()[i], 1e-5);
  }
}

// dL/dtau and dL/dc together, by finite differences.
TYPED_TEST(SoftDisplacementLayerTest, TestGradientLearnedTemperature) {
  typedef typename TypeParam::Dtype Dtype;
  for (int t = 0; t < 2; ++t) {
    const float tau = t == 0 ? 0.5 : 0.1;
    LayerParameter layer_param = this->MakeParam(1, 2, 2, tau, false);
    layer_param.mutable_soft_displacement_param()->set_learn_temperature(true);
    SoftDisplacementLayer<Dtype> layer(layer_param);
    // The steps of the fixed-temperature tests (float needs 2e-3 at 0.1).
    GradientChecker<Dtype> checker(t == 0 ? 1e-2 : 2e-3, 1e-2);
    checker.CheckGradient(&layer, this->blob_bottom_vec_, this->blob_top_vec_);
  }
}

// dL/dtau alone (no bottom gradient wanted: the layer uses its own buffer
// for dL/dc), and the same value as when the bottom's gradient is written.
TYPED_TEST(SoftDisplacementLayerTest, TestGradientTemperatureOnly) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter layer_param = this->MakeParam(1, 2, 1, 0.2, false);
  layer_param.mutable_soft_displacement_param()->set_learn_temperature(true);
  SoftDisplacementLayer<Dtype> layer(layer_param);
  GradientChecker<Dtype> checker(2e-3, 1e-2);
  layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  checker.CheckGradientSingle(&layer, this->blob_bottom_vec_,
                              this->blob_top_vec_, -2, -1, -1);
  layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
  this->FillTopDiff();
  Dtype grad[2];
  for (int down = 0; down < 2; ++down) {
    caffe_set(1, Dtype(0), layer.blobs()[0]->mutable_cpu_diff());
    layer.Backward(this->blob_top_vec_, vector<bool>(1, down == 1),
                   this->blob_bottom_vec_);
    grad[down] = layer.blobs()[0]->cpu_diff()[0];
  }
  EXPECT_NE(grad[0], 0);
  EXPECT_NEAR(grad[0], grad[1], 1e-5 * std::fabs(grad[1]));
  // Param diffs accumulate (Caffe's convention for iter_size).
  layer.Backward(this->blob_top_vec_, vector<bool>(1, true),
                 this->blob_bottom_vec_);
  EXPECT_NEAR(layer.blobs()[0]->cpu_diff()[0], 2 * grad[1],
              1e-5 * std::fabs(grad[1]));
}

// Any positive temperature gives finite maps and gradients: at 1e-6 the
// exponent reaches -1e6 (the float exp's polynomial overflowed to NaN
// before), and a subnormal tau has an infinite reciprocal. Maps match the
// double-precision reference; at the smallest taus they are the WTA maps.
TYPED_TEST(SoftDisplacementLayerTest, TestTinyTemperatureFinite) {
  typedef typename TypeParam::Dtype Dtype;
  const float taus[] = {1e-3f, 1e-6f, 1e-20f, 1e-40f};
  for (int t = 0; t < 4; ++t) {
    const float tau = taus[t];
    for (int learn = 0; learn < 2; ++learn) {
      LayerParameter layer_param = this->MakeParam(1, 2, 2, tau, false);
      layer_param.mutable_soft_displacement_param()->set_learn_temperature(
          learn);
      SoftDisplacementLayer<Dtype> layer(layer_param);
      layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
      layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
      Blob<Dtype> expected;
      ReferenceSoftDisplacement(*this->blob_bottom_, 1, 2, 2, tau, tau < 1e-10,
                                &expected);
      for (int i = 0; i < expected.count(); ++i) {
        ASSERT_TRUE(std::isfinite(this->blob_top_->cpu_data()[i]))
            << "tau " << tau << " index " << i;
        EXPECT_NEAR(expected.cpu_data()[i], this->blob_top_->cpu_data()[i],
                    1e-4) << "tau " << tau << " index " << i;
      }
      this->FillTopDiff();
      if (learn) { layer.blobs()[0]->mutable_cpu_diff()[0] = 0; }
      layer.Backward(this->blob_top_vec_, vector<bool>(1, true),
                     this->blob_bottom_vec_);
      for (int i = 0; i < this->blob_bottom_->count(); ++i) {
        ASSERT_TRUE(std::isfinite(this->blob_bottom_->cpu_diff()[i]))
            << "tau " << tau << " index " << i;
      }
      if (learn && tau >= 1e-6f) {
        EXPECT_TRUE(std::isfinite(layer.blobs()[0]->cpu_diff()[0]))
            << "tau " << tau;
      }
    }
  }
}

// The CPU row kernels' variants (float: baseline SSE2, AVX2+FMA, and the
// one this CPU picks; DCD_CPU_KERNELS caps it) against the per-pixel
// arithmetic the GPU runs (dcd::soft_displacement_*_pixel). Baseline vectors
// do its steps in its order without FMA, so on x86-64 they equal it bit for
// bit; the FMA builds round differently in the last bits. 3, 5, 29 and
// 53 columns: the plain loop alone (a row narrower than a quarter vector);
// a quarter vector, then the same vector again ending at the row's last
// pixel (4 + 1); blocks, one vector, the narrower ones and the end-of-row
// vector for AVX2 (16 + 8 + 4 + 1, 48 + 4 + 1) and AVX-512 (16 + 8 + 4 +
// 1, 32 + 16 + 4 + 1). A -inf, a NaN, a huge entry and a tiny temperature
// test the exp's raise to -88 and its underflow.
TYPED_TEST(SoftDisplacementLayerTest, TestCpuKernelVariantsAgree) {
  typedef typename TypeParam::Dtype Dtype;
  if (Caffe::mode() != Caffe::CPU) { return; }
  const char* caps[] = {"baseline", "avx2", NULL};
  const float taus[] = {0.02f, 1.0f, 1e-6f};
  const int widths[] = {3, 5, 29, 53};
  const int dh = 2, dw = 3, s = 1, H = 3;
  const int D = dcd::window_size(dh, dw);
  for (const int W : widths) {
    const int hw = H * W;
    Blob<Dtype> cost(2, D, H, W), top;
    FillUniform(&cost, Dtype(-1), Dtype(1));
    Dtype* c = cost.mutable_cpu_data();
    c[0] = -std::numeric_limits<Dtype>::infinity();  // pixel 0: k = 0
    c[3 * hw + 1] = std::numeric_limits<Dtype>::quiet_NaN();  // pixel 1
    c[5 * hw + 2] = Dtype(1e30);  // pixel 2: every other entry underflows
    Blob<Dtype> top_diff(2, 2, H, W);
    FillUniform(&top_diff, Dtype(-1), Dtype(1));
    vector<Blob<Dtype>*> bottom_vec(1, &cost), top_vec(1, &top);
    for (const float tau : taus) {
      const Dtype inv_tau = dcd::inverse_temperature(Dtype(tau));
      vector<Dtype> v(2 * 2 * hw), dc(cost.count());
      for (int i = 0; i < 2 * hw; ++i) {
        dcd::soft_displacement_forward_pixel(i, cost.cpu_data(), hw, dh, dw,
                                             s, inv_tau, false, &v[0]);
        dcd::soft_displacement_backward_pixel(i, cost.cpu_data(),
            top_diff.cpu_data(), hw, dh, dw, s, inv_tau, &dc[0]);
      }
      for (const char* cap : caps) {
        if (cap) { setenv("DCD_CPU_KERNELS", cap, 1); }
        SoftDisplacementLayer<Dtype> layer(this->MakeParam(dh, dw, s, tau,
                                                           false));
        layer.SetUp(bottom_vec, top_vec);
        layer.Forward(bottom_vec, top_vec);
        caffe_copy(top.count(), top_diff.cpu_data(), top.mutable_cpu_diff());
        layer.Backward(top_vec, vector<bool>(1, true), bottom_vec);
        unsetenv("DCD_CPU_KERNELS");
        const bool exact = cap && std::string(cap) == "baseline";
#if !defined(__x86_64__)
        if (exact) { continue; }  // another baseline may contract to FMA
#endif
        const string where = string(cap ? cap : "own") + ", " +
            std::to_string(W) + " columns, tau " + std::to_string(tau);
        const Dtype* pairs[][2] = {{top.cpu_data(), &v[0]},
                                   {cost.cpu_diff(), &dc[0]}};
        const int counts[] = {top.count(), cost.count()};
        for (int r = 0; r < 2; ++r) {
          for (int i = 0; i < counts[r]; ++i) {
            const Dtype got = pairs[r][0][i], want = pairs[r][1][i];
            if (std::isnan(want)) {
              EXPECT_TRUE(std::isnan(got)) << where << " index " << i;
            } else if (exact) {
              EXPECT_EQ(0, std::memcmp(&got, &want, sizeof(Dtype)))
                  << where << (r ? " backward" : " forward") << " index "
                  << i << ": " << got << " against " << want;
            } else {
              EXPECT_NEAR(got, want, 1e-5 * (1 + std::fabs(want)))
                  << where << (r ? " backward" : " forward") << " index "
                  << i;
            }
          }
        }
      }
    }
  }
}

// Bad input stops with a message naming the layer and the mismatch.
TYPED_TEST(SoftDisplacementLayerTest, TestBadInputDies) {
  typedef typename TypeParam::Dtype Dtype;
  typedef SoftDisplacementLayer<Dtype> Layer;
  const vector<Blob<Dtype>*>& bottom = this->blob_bottom_vec_;
  const vector<Blob<Dtype>*>& top = this->blob_top_vec_;
  // The bottom has 15 = 3 x 5 channels; a 3 x 3 window needs 9.
  ExpectSetUpDies<Layer>(this->MakeParam(1, 1, 1, 0.1, false), bottom, top,
      "SoftDisplacement layer sd_test: the cost volume must have .* = 9 "
      "channels, got 15");
  ExpectSetUpDies<Layer>(this->MakeParam(1, 2, 1, 0, false), bottom, top,
      "SoftDisplacement layer sd_test: temperature must be > 0");
  ExpectSetUpDies<Layer>(this->MakeParam(1, 2, 1, -1, false), bottom, top,
      "SoftDisplacement layer sd_test: temperature must be > 0");
  LayerParameter wta = this->MakeParam(1, 2, 1, 0.1, true);
  wta.mutable_soft_displacement_param()->set_learn_temperature(true);
  ExpectSetUpDies<Layer>(wta, bottom, top,
      "SoftDisplacement layer sd_test: learn_temperature needs method SOFT");
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  EXPECT_DEATH({
    LayerParameter p = this->MakeParam(1, 2, 1, 0.1, false);
    p.mutable_soft_displacement_param()->set_learn_temperature(true);
    Layer layer(p);
    layer.SetUp(bottom, top);
    layer.blobs()[0]->mutable_cpu_data()[0] = Dtype(-0.01);
    layer.Forward(bottom, top);
  }, "SoftDisplacement layer sd_test: the learned temperature became <= 0");
  // The window is read as CostVolume reads it (dcd_window.hpp).
  LayerParameter both_forms = this->MakeParam(1, 2, 1, 0.1, false);
  both_forms.mutable_soft_displacement_param()->set_max_displacement(1);
  ExpectSetUpDies<Layer>(both_forms, bottom, top,
      "SoftDisplacement layer sd_test: give either max_displacement or both "
      "max_displacement_h and max_displacement_w, not both forms");
  // A window too large for a blob is refused by size, before any Reshape.
  ExpectSetUpDies<Layer>(this->MakeParam(100000, 100000, 1, 0.1, false),
      bottom, top, "SoftDisplacement layer sd_test: the displacement window "
      "of max_displacement_h 100000 and max_displacement_w 100000 has .* = "
      "40000400001 displacements, more than a blob can hold");
  ExpectSetUpDies<Layer>(this->MakeParam(1, 2, 1000000000, 0.1, false),
      bottom, top, "SoftDisplacement layer sd_test: max_displacement 2 at "
      "dilation 1000000000 reaches too far");
  LayerParameter no_dilation = this->MakeParam(1, 2, 1, 0.1, false);
  no_dilation.mutable_soft_displacement_param()->set_dilation(0);
  ExpectSetUpDies<Layer>(no_dilation, bottom, top,
      "SoftDisplacement layer sd_test: dilation must be >= 1");
}

}  // namespace caffe
