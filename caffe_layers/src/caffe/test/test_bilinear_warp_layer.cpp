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
#include "caffe/layers/bilinear_warp_layer.hpp"
#include "caffe/layers/cost_volume_layer.hpp"
#include "caffe/layers/soft_displacement_layer.hpp"
#include "caffe/util/dcd_kernels.hpp"
#include "caffe/util/math_functions.hpp"
#include "caffe/util/rng.hpp"

#include "caffe/test/test_caffe_main.hpp"
#include "caffe/test/test_dcd_util.hpp"
#include "caffe/test/test_gradient_check_util.hpp"

namespace caffe {

// Plain-loop reference written with the tent kernel: sample(y, x) =
// sum over all pixels q of F(q) max(0, 1 - |y - q_y|) max(0, 1 - |x - q_x|),
// which is bilinear interpolation with zero outside the map.
template <typename Dtype>
void ReferenceBilinearWarp(const Blob<Dtype>& f, const Blob<Dtype>& v,
    double s, Blob<Dtype>* out) {
  const int N = f.num(), C = f.channels(), H = f.height(), W = f.width();
  out->ReshapeLike(f);
  for (int n = 0; n < N; ++n) {
    for (int i = 0; i < H; ++i) {
      for (int j = 0; j < W; ++j) {
        const double y = i + s * v.data_at(n, 0, i, j);
        const double x = j + s * v.data_at(n, 1, i, j);
        for (int c = 0; c < C; ++c) {
          double acc = 0;
          for (int qy = 0; qy < H; ++qy) {
            for (int qx = 0; qx < W; ++qx) {
              const double w = std::max(0.0, 1 - std::fabs(y - qy)) *
                               std::max(0.0, 1 - std::fabs(x - qx));
              acc += w * f.data_at(n, c, qy, qx);
            }
          }
          out->mutable_cpu_data()[out->offset(n, c, i, j)] = acc;
        }
      }
    }
  }
}

template <typename TypeParam>
class BilinearWarpLayerTest : public MultiDeviceTest<TypeParam> {
  typedef typename TypeParam::Dtype Dtype;

 protected:
  BilinearWarpLayerTest()
      : blob_f_(new Blob<Dtype>(2, 3, 5, 7)),
        blob_v_(new Blob<Dtype>(2, 2, 5, 7)),
        blob_top_(new Blob<Dtype>()) {
    Caffe::set_random_seed(1701);
    FillUniform(blob_f_, Dtype(-1), Dtype(1));
    // Many samples leave the 5 x 7 map.
    FillUniform(blob_v_, Dtype(-3), Dtype(3));
    blob_bottom_vec_.push_back(blob_f_);
    blob_bottom_vec_.push_back(blob_v_);
    blob_top_vec_.push_back(blob_top_);
  }
  virtual ~BilinearWarpLayerTest() {
    delete blob_f_;
    delete blob_v_;
    delete blob_top_;
  }

  // V such that every sampling position i + s V is at least 0.15 away from
  // an integer (bilinear sampling is not differentiable there) and ranges
  // over [-2, H + 1] x [-2, W + 1], so taps leave the map on every side.
  void FillSmoothDisplacements(Dtype s) {
    const int N = blob_v_->num(), H = blob_v_->height(), W = blob_v_->width();
    Dtype* v = blob_v_->mutable_cpu_data();
    for (int n = 0; n < N; ++n) {
      for (int i = 0; i < H; ++i) {
        for (int j = 0; j < W; ++j) {
          const Dtype y = Dtype(caffe_rng_rand() % (H + 3)) - 2 +
              Dtype(0.15) + Dtype(0.7) * (caffe_rng_rand() % 1000) / 1000;
          const Dtype x = Dtype(caffe_rng_rand() % (W + 3)) - 2 +
              Dtype(0.15) + Dtype(0.7) * (caffe_rng_rand() % 1000) / 1000;
          v[blob_v_->offset(n, 0, i, j)] = (y - i) / s;
          v[blob_v_->offset(n, 1, i, j)] = (x - j) / s;
        }
      }
    }
  }

  LayerParameter MakeParam(float s) {
    LayerParameter layer_param;
    layer_param.set_name("warp_test");
    layer_param.mutable_bilinear_warp_param()->set_displacement_scale(s);
    return layer_param;
  }

  void CheckForward(float s) {
    LayerParameter layer_param = MakeParam(s);
    BilinearWarpLayer<Dtype> layer(layer_param);
    layer.SetUp(blob_bottom_vec_, blob_top_vec_);
    layer.Forward(blob_bottom_vec_, blob_top_vec_);
    Blob<Dtype> expected;
    ReferenceBilinearWarp(*blob_f_, *blob_v_, s, &expected);
    ASSERT_TRUE(expected.shape() == blob_top_->shape());
    for (int i = 0; i < expected.count(); ++i) {
      EXPECT_NEAR(expected.cpu_data()[i], blob_top_->cpu_data()[i], 1e-5)
          << "index " << i;
    }
  }

  void FillTopDiff() {
    Blob<Dtype> tmp;
    tmp.ReshapeLike(*blob_top_);
    FillUniform(&tmp, Dtype(-1), Dtype(1));
    caffe_copy(tmp.count(), tmp.cpu_data(), blob_top_->mutable_cpu_diff());
  }

  Blob<Dtype>* const blob_f_;
  Blob<Dtype>* const blob_v_;
  Blob<Dtype>* const blob_top_;
  vector<Blob<Dtype>*> blob_bottom_vec_;
  vector<Blob<Dtype>*> blob_top_vec_;
};

TYPED_TEST_CASE(BilinearWarpLayerTest, TestDtypesAndDevices);

TYPED_TEST(BilinearWarpLayerTest, TestSetUp) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter layer_param = this->MakeParam(1);
  BilinearWarpLayer<Dtype> layer(layer_param);
  layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  EXPECT_TRUE(this->blob_top_->shape() == this->blob_f_->shape());
}

TYPED_TEST(BilinearWarpLayerTest, TestForward) {
  this->CheckForward(1);
}

TYPED_TEST(BilinearWarpLayerTest, TestForwardNegativeScale) {
  this->CheckForward(-1);
  this->CheckForward(-0.5);
}

TYPED_TEST(BilinearWarpLayerTest, TestForwardFarOutside) {
  typedef typename TypeParam::Dtype Dtype;
  FillUniform(this->blob_v_, Dtype(50), Dtype(1e6));
  LayerParameter layer_param = this->MakeParam(1);
  BilinearWarpLayer<Dtype> layer(layer_param);
  layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
  for (int i = 0; i < this->blob_top_->count(); ++i) {
    EXPECT_EQ(this->blob_top_->cpu_data()[i], 0);
  }
}

TYPED_TEST(BilinearWarpLayerTest, TestIntegerPositions) {
  // V = 0: the warp is the identity, and the derivative with respect to V is
  // the one-sided right difference F(i + 1, j) - F(i, j) (zero outside).
  typedef typename TypeParam::Dtype Dtype;
  caffe_set(this->blob_v_->count(), Dtype(0),
            this->blob_v_->mutable_cpu_data());
  LayerParameter layer_param = this->MakeParam(1);
  BilinearWarpLayer<Dtype> layer(layer_param);
  layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
  for (int i = 0; i < this->blob_f_->count(); ++i) {
    EXPECT_EQ(this->blob_top_->cpu_data()[i], this->blob_f_->cpu_data()[i]);
  }
  this->FillTopDiff();
  layer.Backward(this->blob_top_vec_, vector<bool>(2, true),
                 this->blob_bottom_vec_);
  const Blob<Dtype>& f = *this->blob_f_;
  const Blob<Dtype>& g = *this->blob_top_;
  for (int n = 0; n < 2; ++n) {
    for (int i = 0; i < 5; ++i) {
      for (int j = 0; j < 7; ++j) {
        double gy = 0, gx = 0;
        for (int c = 0; c < 3; ++c) {
          const double f0 = f.data_at(n, c, i, j);
          const double fy = i + 1 < 5 ? f.data_at(n, c, i + 1, j) : 0;
          const double fx = j + 1 < 7 ? f.data_at(n, c, i, j + 1) : 0;
          gy += g.diff_at(n, c, i, j) * (fy - f0);
          gx += g.diff_at(n, c, i, j) * (fx - f0);
          EXPECT_NEAR(f.diff_at(n, c, i, j), g.diff_at(n, c, i, j), 1e-6);
        }
        EXPECT_NEAR(this->blob_v_->diff_at(n, 0, i, j), gy, 1e-5);
        EXPECT_NEAR(this->blob_v_->diff_at(n, 1, i, j), gx, 1e-5);
      }
    }
  }
}

TYPED_TEST(BilinearWarpLayerTest, TestGradient) {
  typedef typename TypeParam::Dtype Dtype;
  this->FillSmoothDisplacements(1);
  LayerParameter layer_param = this->MakeParam(1);
  BilinearWarpLayer<Dtype> layer(layer_param);
  GradientChecker<Dtype> checker(1e-2, 1e-2);
  checker.CheckGradient(&layer, this->blob_bottom_vec_, this->blob_top_vec_);
}

TYPED_TEST(BilinearWarpLayerTest, TestGradientNegativeScale) {
  typedef typename TypeParam::Dtype Dtype;
  this->FillSmoothDisplacements(-0.5);
  LayerParameter layer_param = this->MakeParam(-0.5);
  BilinearWarpLayer<Dtype> layer(layer_param);
  GradientChecker<Dtype> checker(1e-2, 1e-2);
  checker.CheckGradient(&layer, this->blob_bottom_vec_, this->blob_top_vec_,
                        0);
  checker.CheckGradient(&layer, this->blob_bottom_vec_, this->blob_top_vec_,
                        1);
}

TYPED_TEST(BilinearWarpLayerTest, TestBackwardNaNAndPropagate) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter layer_param = this->MakeParam(-1);
  BilinearWarpLayer<Dtype> layer(layer_param);
  layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
  this->FillTopDiff();
  ExpectBackwardWritesEveryDiff(&layer, this->blob_top_vec_,
                                this->blob_bottom_vec_);
}

TYPED_TEST(BilinearWarpLayerTest, TestReshape) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter layer_param = this->MakeParam(1);
  BilinearWarpLayer<Dtype> layer(layer_param);
  layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
  this->blob_f_->Reshape(1, 4, 6, 3);
  this->blob_v_->Reshape(1, 2, 6, 3);
  FillUniform(this->blob_f_, Dtype(-1), Dtype(1));
  FillUniform(this->blob_v_, Dtype(-2), Dtype(2));
  layer.Reshape(this->blob_bottom_vec_, this->blob_top_vec_);
  layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
  Blob<Dtype> expected;
  ReferenceBilinearWarp(*this->blob_f_, *this->blob_v_, 1, &expected);
  ASSERT_TRUE(expected.shape() == this->blob_top_->shape());
  for (int i = 0; i < expected.count(); ++i) {
    EXPECT_NEAR(expected.cpu_data()[i], this->blob_top_->cpu_data()[i], 1e-5);
  }
}

// The CPU paths (runs of 8 pixels as vectors where their taps sit side by
// side, else pixel by pixel; the gradient to F gathered through sorted tap
// runs, as vectors where those are regular) give the bits of the
// per-element arithmetic the GPU runs (dcd::bilinear_warp_*) and of a
// raster-order scatter, under every CPU variant (DCD_CPU_KERNELS). The
// displacement's whole-pixel part is constant over stretches of 8 or more
// pixels, as where the vector runs apply, with breaks between them and
// taps outside the map at the borders; with 45 columns, runs of 8 pixels
// cross rows.
TYPED_TEST(BilinearWarpLayerTest, TestCpuPathsExact) {
  typedef typename TypeParam::Dtype Dtype;
  if (Caffe::mode() != Caffe::CPU) { return; }
  // 315 pixels: blocks of 128 and a shorter last one; 11 channels: the
  // forward's groups of 8 and a shorter last one.
  const int N = 2, C = 11, H = 7, W = 45;
  const Dtype s = -1;
  Blob<Dtype> f(N, C, H, W), v(N, 2, H, W), top, top_diff(N, C, H, W);
  FillUniform(&f, Dtype(-1), Dtype(1));
  FillUniform(&top_diff, Dtype(-1), Dtype(1));
  FillUniform(&v, Dtype(0.05), Dtype(0.95));  // fractional parts
  Dtype* vd = v.mutable_cpu_data();
  // Image 0: the whole parts change every 11 pixels along a row (and 3
  // columns later a row lower); image 1: the same whole part everywhere,
  // where targets of the gradient to F receive their taps as regular runs.
  for (int n = 0; n < N; ++n) {
    for (int i = 0; i < H; ++i) {
      for (int j = 0; j < W; ++j) {
        const int stretch = n == 0 ? (j + 3 * i) / 11 : 1;
        vd[((n * 2) * H + i) * W + j] += Dtype(stretch % 3 - 1);
        vd[((n * 2 + 1) * H + i) * W + j] += Dtype(stretch % 2 + 1);
      }
    }
  }
  const int hw = H * W;
  // Windows of 8 pixels whose taps all lie inside, side by side.
  int runs = 0;
  for (int n = 0; n < N; ++n) {
    for (int p = 0; p + 8 <= hw; ++p) {
      bool run = true;
      for (int x = 0; x < 8 && run; ++x) {
        const dcd::BilinearTaps<Dtype> t =
            dcd::warp_taps(v.cpu_data(), n, p + x, H, W, s);
        const dcd::BilinearTaps<Dtype> t0 =
            dcd::warp_taps(v.cpu_data(), n, p, H, W, s);
        run = dcd::taps_inside(t, H, W) &&
            t.y0 * W + t.x0 == t0.y0 * W + t0.x0 + x;
      }
      runs += run;
    }
  }
  ASSERT_GT(runs, N * hw / 8) << "too few runs of taps side by side";
  vector<Dtype> want_top(top_diff.count()), want_df(f.count(), Dtype(0)),
      want_dv(v.count());
  for (int i = 0; i < f.count(); ++i) {
    dcd::bilinear_warp_forward_elem(i, f.cpu_data(), v.cpu_data(), C, H, W, s,
                                    &want_top[0]);
  }
  for (int i = 0; i < N * hw; ++i) {
    dcd::bilinear_warp_backward_v_pixel(i, f.cpu_data(), v.cpu_data(),
        top_diff.cpu_data(), C, H, W, s, &want_dv[0]);
  }
  for (int nc = 0; nc < N * C; ++nc) {
    for (int p = 0; p < hw; ++p) {
      const dcd::BilinearTaps<Dtype> t =
          dcd::warp_taps(v.cpu_data(), nc / C, p, H, W, s);
      for (int k = 0; k < 4; ++k) {
        const int q = dcd::tap_index(t, k, H, W);
        if (q >= 0) {
          want_df[nc * hw + q] += top_diff.cpu_data()[nc * hw + p] *
              dcd::bilinear_weight(k, t.ay, t.ax);
        }
      }
    }
  }
  vector<Blob<Dtype>*> bottom_vec(1, &f), top_vec(1, &top);
  bottom_vec.push_back(&v);
  const char* caps[] = {"baseline", "avx2", NULL};
  for (const char* cap : caps) {
    if (cap) { setenv("DCD_CPU_KERNELS", cap, 1); }
    BilinearWarpLayer<Dtype> layer(this->MakeParam(s));
    layer.SetUp(bottom_vec, top_vec);
    // The previous variant's outputs overwritten, so that an element this
    // one does not write fails.
    caffe_set(top.count(), Dtype(12345), top.mutable_cpu_data());
    caffe_set(f.count(), Dtype(12345), f.mutable_cpu_diff());
    caffe_set(v.count(), Dtype(12345), v.mutable_cpu_diff());
    layer.Forward(bottom_vec, top_vec);
    caffe_copy(top.count(), top_diff.cpu_data(), top.mutable_cpu_diff());
    layer.Backward(top_vec, vector<bool>(2, true), bottom_vec);
    unsetenv("DCD_CPU_KERNELS");
    const string variant = cap ? cap : "own";
    const Dtype* got[] = {top.cpu_data(), f.cpu_diff(), v.cpu_diff()};
    const Dtype* want[] = {&want_top[0], &want_df[0], &want_dv[0]};
    const int counts[] = {top.count(), f.count(), v.count()};
    const char* what[] = {"forward", "d F", "d V"};
    for (int r = 0; r < 3; ++r) {
      for (int i = 0; i < counts[r]; ++i) {
#if defined(__x86_64__)
        EXPECT_EQ(0, std::memcmp(&got[r][i], &want[r][i], sizeof(Dtype)))
#else  // a baseline with FMA may contract the two sides differently
        EXPECT_NEAR(got[r][i], want[r][i], 1e-5)
#endif
            << variant << " " << what[r] << " index " << i << ": "
            << got[r][i] << " against " << want[r][i];
      }
    }
  }
}

TYPED_TEST(BilinearWarpLayerTest, TestBackwardDeterministic) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter layer_param = this->MakeParam(1);
  BilinearWarpLayer<Dtype> layer(layer_param);
  layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
  this->FillTopDiff();
  vector<bool> propagate_down(2, true);
  layer.Backward(this->blob_top_vec_, propagate_down, this->blob_bottom_vec_);
  vector<Dtype> df(this->blob_f_->cpu_diff(),
                   this->blob_f_->cpu_diff() + this->blob_f_->count());
  vector<Dtype> dv(this->blob_v_->cpu_diff(),
                   this->blob_v_->cpu_diff() + this->blob_v_->count());
  layer.Backward(this->blob_top_vec_, propagate_down, this->blob_bottom_vec_);
  EXPECT_EQ(0, memcmp(&df[0], this->blob_f_->cpu_diff(),
                      df.size() * sizeof(Dtype)));
  EXPECT_EQ(0, memcmp(&dv[0], this->blob_v_->cpu_diff(),
                      dv.size() * sizeof(Dtype)));
}

// The whole chain on an integer shift: F_b(p + d) = F_a(p), d = (1, -2).
// CostVolume(F_a, F_b) must peak at the channel of d, SoftDisplacement at a
// small temperature must give d, and, with top(p) = F(p + s V(p)) and
// s = -1, W(F_a, V)(p) = F_a(p - d) = F_b(p): the warped difference
// F_b - W(F_a, V, s = -1) vanishes in the interior (the appearance-change
// branch's F_{t+1} - W(F_t, -V_t)).
TYPED_TEST(BilinearWarpLayerTest, TestIntegerShiftPipeline) {
  typedef typename TypeParam::Dtype Dtype;
  const int C = 32, H = 10, W = 12, dh = 2, dw = 3, dy = 1, dx = -2;
  Blob<Dtype> fa(1, C, H, W), fb(1, C, H, W);
  FillerParameter filler_param;
  GaussianFiller<Dtype> filler(filler_param);
  filler.Fill(&fa);
  filler.Fill(&fb);
  for (int c = 0; c < C; ++c) {
    for (int i = 0; i < H; ++i) {
      for (int j = 0; j < W; ++j) {
        if (i - dy >= 0 && i - dy < H && j - dx >= 0 && j - dx < W) {
          fb.mutable_cpu_data()[fb.offset(0, c, i, j)] =
              fa.data_at(0, c, i - dy, j - dx);
        }
      }
    }
  }
  Blob<Dtype> cost, disp, warped;
  vector<Blob<Dtype>*> cv_bottom, cv_top(1, &cost), sd_top(1, &disp),
      warp_bottom, warp_top(1, &warped);
  cv_bottom.push_back(&fa);
  cv_bottom.push_back(&fb);
  warp_bottom.push_back(&fa);
  warp_bottom.push_back(&disp);

  LayerParameter cv_param;
  cv_param.mutable_cost_volume_param()->set_max_displacement_h(dh);
  cv_param.mutable_cost_volume_param()->set_max_displacement_w(dw);
  CostVolumeLayer<Dtype> cv_layer(cv_param);
  cv_layer.SetUp(cv_bottom, cv_top);
  cv_layer.Forward(cv_bottom, cv_top);

  LayerParameter sd_param;
  sd_param.mutable_soft_displacement_param()->set_max_displacement_h(dh);
  sd_param.mutable_soft_displacement_param()->set_max_displacement_w(dw);
  sd_param.mutable_soft_displacement_param()->set_temperature(0.01);
  SoftDisplacementLayer<Dtype> sd_layer(sd_param);
  sd_layer.SetUp(cv_top, sd_top);
  sd_layer.Forward(cv_top, sd_top);

  LayerParameter warp_param = this->MakeParam(-1);
  BilinearWarpLayer<Dtype> warp_layer(warp_param);
  warp_layer.SetUp(warp_bottom, warp_top);
  warp_layer.Forward(warp_bottom, warp_top);

  const int expected_k = (dy + dh) * (2 * dw + 1) + (dx + dw);
  int checked_cv = 0, checked_warp = 0;
  for (int i = 0; i < H; ++i) {
    for (int j = 0; j < W; ++j) {
      // F_b(p + d) = F_a(p) holds: the match is inside the window.
      if (i + dy < 0 || i + dy >= H || j + dx < 0 || j + dx >= W) {
        continue;
      }
      int best = 0;
      for (int k = 1; k < cost.channels(); ++k) {
        if (cost.data_at(0, k, i, j) > cost.data_at(0, best, i, j)) {
          best = k;
        }
      }
      EXPECT_EQ(best, expected_k) << "at " << i << "," << j;
      EXPECT_NEAR(disp.data_at(0, 0, i, j), dy, 1e-2) << i << "," << j;
      EXPECT_NEAR(disp.data_at(0, 1, i, j), dx, 1e-2) << i << "," << j;
      ++checked_cv;
      // p - d inside as well: the warped difference must vanish.
      if (i - dy < 0 || i - dy >= H || j - dx < 0 || j - dx >= W) {
        continue;
      }
      for (int c = 0; c < C; ++c) {
        EXPECT_NEAR(fb.data_at(0, c, i, j) - warped.data_at(0, c, i, j), 0,
                    1e-2) << "c " << c << " at " << i << "," << j;
      }
      ++checked_warp;
    }
  }
  EXPECT_EQ(checked_cv, (H - 1) * (W - 2));
  EXPECT_EQ(checked_warp, (H - 2) * (W - 4));

  // The opposite sign does not cancel: the direction is really tested.
  LayerParameter wrong_param = this->MakeParam(1);
  BilinearWarpLayer<Dtype> wrong_layer(wrong_param);
  wrong_layer.SetUp(warp_bottom, warp_top);
  wrong_layer.Forward(warp_bottom, warp_top);
  double residual = 0;
  for (int c = 0; c < C; ++c) {
    residual += std::fabs(fb.data_at(0, c, 4, 5) - warped.data_at(0, c, 4, 5));
  }
  EXPECT_GT(residual, 1.0);
}


// A NaN or infinite displacement makes its pixel's output (every channel)
// and its V gradient NaN, and scatters nothing into F's gradient; the other
// pixels are as without it. A huge finite displacement, even one whose
// s * v overflows, samples outside the map: 0, with zero gradients.
TYPED_TEST(BilinearWarpLayerTest, TestNonFiniteDisplacement) {
  typedef typename TypeParam::Dtype Dtype;
  const Dtype inf = std::numeric_limits<Dtype>::infinity();
  const Dtype bad[] = {std::numeric_limits<Dtype>::quiet_NaN(), inf, -inf,
                       Dtype(1e30), std::numeric_limits<Dtype>::max()};
  const int H = 5, W = 7, hw = H * W;
  const int n = 1, i = 2, j = 3;  // the pixel given the bad value
  for (int b = 0; b < 5; ++b) {
    for (int axis = 0; axis < 2; ++axis) {
      const bool finite = b >= 3;
      LayerParameter layer_param = this->MakeParam(2);
      BilinearWarpLayer<Dtype> layer(layer_param);
      layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
      // Reference pass with the pixel far outside the map.
      this->blob_v_->mutable_cpu_data()[this->blob_v_->offset(n, 0, i, j)] = 0;
      this->blob_v_->mutable_cpu_data()[this->blob_v_->offset(n, 1, i, j)] = 0;
      this->blob_v_->mutable_cpu_data()[this->blob_v_->offset(n, axis, i, j)]
          = Dtype(1e6);
      layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
      Blob<Dtype> ref_top;
      ref_top.CopyFrom(*this->blob_top_, false, true);
      this->FillTopDiff();
      vector<bool> both(2, true);
      layer.Backward(this->blob_top_vec_, both, this->blob_bottom_vec_);
      Blob<Dtype> ref_f, ref_v;
      ref_f.CopyFrom(*this->blob_f_, true, true);
      ref_v.CopyFrom(*this->blob_v_, true, true);
      // The bad value.
      this->blob_v_->mutable_cpu_data()[this->blob_v_->offset(n, axis, i, j)]
          = bad[b];
      layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
      layer.Backward(this->blob_top_vec_, both, this->blob_bottom_vec_);
      for (int k = 0; k < this->blob_top_->count(); ++k) {
        const bool here = k % hw == i * W + j && k / (3 * hw) == n;
        const Dtype y = this->blob_top_->cpu_data()[k];
        if (here && !finite) {
          EXPECT_TRUE(std::isnan(y)) << "value " << bad[b] << " index " << k;
        } else {
          EXPECT_EQ(ref_top.cpu_data()[k], y)
              << "value " << bad[b] << " index " << k;
        }
        EXPECT_EQ(ref_f.cpu_diff()[k], this->blob_f_->cpu_diff()[k])
            << "value " << bad[b] << " F diff " << k;
      }
      for (int k = 0; k < this->blob_v_->count(); ++k) {
        const bool here = k % hw == i * W + j && k / (2 * hw) == n;
        const Dtype g = this->blob_v_->cpu_diff()[k];
        if (here && !finite) {
          EXPECT_TRUE(std::isnan(g)) << "value " << bad[b] << " V diff " << k;
        } else {
          EXPECT_EQ(ref_v.cpu_diff()[k], g)
              << "value " << bad[b] << " V diff " << k;
        }
      }
    }
  }
}

// Bad input stops with a message naming the layer and the mismatch.
TYPED_TEST(BilinearWarpLayerTest, TestBadInputDies) {
  typedef typename TypeParam::Dtype Dtype;
  this->blob_v_->Reshape(2, 3, 5, 7);
  ExpectSetUpDies<BilinearWarpLayer<Dtype> >(this->MakeParam(1),
      this->blob_bottom_vec_, this->blob_top_vec_,
      "BilinearWarp layer warp_test: V must have 2 channels \\(v_y, v_x\\), "
      "got V 2 3 5 7");
  this->blob_v_->Reshape(2, 2, 4, 7);
  ExpectSetUpDies<BilinearWarpLayer<Dtype> >(this->MakeParam(1),
      this->blob_bottom_vec_, this->blob_top_vec_,
      "BilinearWarp layer warp_test: F and V must have the same height, got "
      "F 2 3 5 7 \\(210\\) and V 2 2 4 7");
  this->blob_v_->Reshape(2, 2, 5, 7);
  ExpectSetUpDies<BilinearWarpLayer<Dtype> >(
      this->MakeParam(std::numeric_limits<float>::infinity()),
      this->blob_bottom_vec_, this->blob_top_vec_,
      "BilinearWarp layer warp_test: displacement_scale must be finite, got "
      "inf");
}

}  // namespace caffe
