#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

#include "caffe/blob.hpp"
#include "caffe/common.hpp"
#include "caffe/filler.hpp"
#include "caffe/layers/cost_volume_layer.hpp"
#include "caffe/util/math_functions.hpp"

#include "caffe/test/test_caffe_main.hpp"
#include "caffe/test/test_dcd_util.hpp"
#include "caffe/test/test_gradient_check_util.hpp"

namespace caffe {

// Plain-loop reference: cosine similarity in double precision.
template <typename Dtype>
void ReferenceCostVolume(const Blob<Dtype>& a, const Blob<Dtype>& b, int dh,
    int dw, int s, double eps, Blob<Dtype>* out) {
  const int N = a.num(), C = a.channels(), H = a.height(), W = a.width();
  const int D = (2 * dh + 1) * (2 * dw + 1);
  out->Reshape(N, D, H, W);
  for (int n = 0; n < N; ++n) {
    for (int i = 0; i < H; ++i) {
      for (int j = 0; j < W; ++j) {
        for (int di = -dh; di <= dh; ++di) {
          for (int dj = -dw; dj <= dw; ++dj) {
            const int k = (di + dh) * (2 * dw + 1) + (dj + dw);
            const int y = i + di * s, x = j + dj * s;
            double v = 0;
            if (y >= 0 && y < H && x >= 0 && x < W) {
              double dot = 0, na = 0, nb = 0;
              for (int c = 0; c < C; ++c) {
                const double fa = a.data_at(n, c, i, j);
                const double fb = b.data_at(n, c, y, x);
                dot += fa * fb;
                na += fa * fa;
                nb += fb * fb;
              }
              const double den = std::sqrt(na + eps) * std::sqrt(nb + eps);
              v = den > 0 ? dot / den : 0;
            }
            out->mutable_cpu_data()[out->offset(n, k, i, j)] = v;
          }
        }
      }
    }
  }
}

template <typename TypeParam>
class CostVolumeLayerTest : public MultiDeviceTest<TypeParam> {
  typedef typename TypeParam::Dtype Dtype;

 protected:
  CostVolumeLayerTest()
      : blob_a_(new Blob<Dtype>(2, 3, 5, 7)),
        blob_b_(new Blob<Dtype>(2, 3, 5, 7)),
        blob_top_(new Blob<Dtype>()) {
    Caffe::set_random_seed(1701);
    FillUniform(blob_a_, Dtype(-1), Dtype(1));
    FillUniform(blob_b_, Dtype(-1), Dtype(1));
    blob_bottom_vec_.push_back(blob_a_);
    blob_bottom_vec_.push_back(blob_b_);
    blob_top_vec_.push_back(blob_top_);
  }
  virtual ~CostVolumeLayerTest() {
    delete blob_a_;
    delete blob_b_;
    delete blob_top_;
  }

  LayerParameter MakeParam(int dh, int dw, int dilation) {
    LayerParameter layer_param;
    layer_param.set_name("cv_test");
    CostVolumeParameter* p = layer_param.mutable_cost_volume_param();
    p->set_max_displacement_h(dh);
    p->set_max_displacement_w(dw);
    p->set_dilation(dilation);
    return layer_param;
  }

  void CheckAgainstReference(int dh, int dw, int dilation, Dtype tol) {
    LayerParameter layer_param = MakeParam(dh, dw, dilation);
    CostVolumeLayer<Dtype> layer(layer_param);
    layer.SetUp(blob_bottom_vec_, blob_top_vec_);
    layer.Forward(blob_bottom_vec_, blob_top_vec_);
    Blob<Dtype> expected;
    ReferenceCostVolume(*blob_a_, *blob_b_, dh, dw, dilation,
        layer_param.cost_volume_param().eps(), &expected);
    ASSERT_TRUE(expected.shape() == blob_top_->shape());
    for (int i = 0; i < expected.count(); ++i) {
      EXPECT_NEAR(expected.cpu_data()[i], blob_top_->cpu_data()[i], tol)
          << "index " << i;
    }
  }

  // GradientChecker on fresh 1 x C x 3 x W inputs.
  void CheckGradientAt(int channels, int width, int dh, int dw,
                       int dilation) {
    blob_a_->Reshape(1, channels, 3, width);
    blob_b_->Reshape(1, channels, 3, width);
    FillUniform(blob_a_, Dtype(-1), Dtype(1));
    FillUniform(blob_b_, Dtype(-1), Dtype(1));
    CostVolumeLayer<Dtype> layer(MakeParam(dh, dw, dilation));
    GradientChecker<Dtype> checker(1e-2, 1e-2);
    checker.CheckGradient(&layer, blob_bottom_vec_, blob_top_vec_);
  }

  void FillTopDiff() {
    FillUniform(blob_top_, Dtype(-1), Dtype(1));
    caffe_copy(blob_top_->count(), blob_top_->cpu_data(),
               blob_top_->mutable_cpu_diff());
  }

  Blob<Dtype>* const blob_a_;
  Blob<Dtype>* const blob_b_;
  Blob<Dtype>* const blob_top_;
  vector<Blob<Dtype>*> blob_bottom_vec_;
  vector<Blob<Dtype>*> blob_top_vec_;
};

TYPED_TEST_CASE(CostVolumeLayerTest, TestDtypesAndDevices);

TYPED_TEST(CostVolumeLayerTest, TestSetUp) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter layer_param = this->MakeParam(1, 2, 1);
  CostVolumeLayer<Dtype> layer(layer_param);
  layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  EXPECT_EQ(this->blob_top_->num(), 2);
  EXPECT_EQ(this->blob_top_->channels(), 15);
  EXPECT_EQ(this->blob_top_->height(), 5);
  EXPECT_EQ(this->blob_top_->width(), 7);
}

TYPED_TEST(CostVolumeLayerTest, TestSetUpSymmetric) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter layer_param;
  layer_param.mutable_cost_volume_param()->set_max_displacement(2);
  CostVolumeLayer<Dtype> layer(layer_param);
  layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  EXPECT_EQ(this->blob_top_->channels(), 25);
}

TYPED_TEST(CostVolumeLayerTest, TestForward) {
  this->CheckAgainstReference(1, 2, 1, 1e-5);
}

TYPED_TEST(CostVolumeLayerTest, TestForwardDilation) {
  this->CheckAgainstReference(1, 2, 2, 1e-5);
}

TYPED_TEST(CostVolumeLayerTest, TestForwardWide) {
  typedef typename TypeParam::Dtype Dtype;
  // Widths that exercise the CPU path's column blocks, its one-vector and
  // column-by-column tails (float: 37 = 16 + 16 + 5, 30 = 16 + 8 + 6) and
  // offset groups (2 dw + 1 = 15 and 7).
  const int widths[] = {37, 30};
  for (int w : widths) {
    this->blob_a_->Reshape(2, 20, 6, w);
    this->blob_b_->Reshape(2, 20, 6, w);
    FillUniform(this->blob_a_, Dtype(-1), Dtype(1));
    FillUniform(this->blob_b_, Dtype(-1), Dtype(1));
    this->CheckAgainstReference(2, 7, 1, 1e-5);
    this->CheckAgainstReference(1, 3, 2, 1e-5);
  }
}

// A cost volume of more than 4 MiB: the CPU forward writes it with streaming
// stores where a block is a whole 64-byte line (rows of 72 floats start
// alternately on and off a line, so both kinds of store run).
TYPED_TEST(CostVolumeLayerTest, TestForwardLarge) {
  typedef typename TypeParam::Dtype Dtype;
  this->blob_a_->Reshape(1, 4, 66, 72);
  this->blob_b_->Reshape(1, 4, 66, 72);
  FillUniform(this->blob_a_, Dtype(-1), Dtype(1));
  FillUniform(this->blob_b_, Dtype(-1), Dtype(1));
  this->CheckAgainstReference(7, 7, 1, 1e-5);
}

TYPED_TEST(CostVolumeLayerTest, TestCpuKernelVariantsAgree) {
  // The baseline (SSE2) kernels against the AVX2 ones and the ones this CPU
  // picks (AVX2 or AVX-512), forward and both gradients, at the nets'
  // window and at a dilation; DCD_CPU_KERNELS caps the variant (on a CPU
  // without AVX2 the three runs are one). 9, 10 and 11 rows: the groups of
  // 4 rows sharing F_b (the AVX-512 forward, both vector builds' gradients)
  // are whole and short (1, 2, 3 rows); 37, 30 and 33 columns leave column
  // tails after the grouped vectors (floats under AVX-512: 32 + 5, 16 + 14
  // and 32 + 1: half and quarter vectors where they fill one, the smallest
  // vector again for the last 1-3 columns, and d b_hat's 8-channel columns
  // where that vector would reach grouped ones). A reach of 10 columns is
  // wider than an AVX2 vector of floats (the zero padding of the row d
  // F_b's packing shifts).
  typedef typename TypeParam::Dtype Dtype;
  if (Caffe::mode() != Caffe::CPU) { return; }
  const int windows[][3] = {{2, 7, 1}, {1, 3, 2}, {1, 10, 1}};
  const char* caps[] = {NULL, "avx2", "baseline"};
  for (int shape = 0; shape < 5; ++shape) {
    const int height = shape < 3 ? 9 + shape : 10;
    const int width = shape < 3 ? 37 : shape == 3 ? 30 : 33;
    this->blob_a_->Reshape(2, 20, height, width);
    this->blob_b_->Reshape(2, 20, height, width);
    FillUniform(this->blob_a_, Dtype(-1), Dtype(1));
    FillUniform(this->blob_b_, Dtype(-1), Dtype(1));
    for (const int* w : windows) {
      vector<vector<Dtype> > runs[3];
      for (int variant = 0; variant < 3; ++variant) {
        if (caps[variant]) { setenv("DCD_CPU_KERNELS", caps[variant], 1); }
        CostVolumeLayer<Dtype> layer(this->MakeParam(w[0], w[1], w[2]));
        layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
        layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
        runs[variant].push_back(vector<Dtype>(this->blob_top_->cpu_data(),
            this->blob_top_->cpu_data() + this->blob_top_->count()));
        Caffe::set_random_seed(5);
        this->FillTopDiff();
        layer.Backward(this->blob_top_vec_, vector<bool>(2, true),
                       this->blob_bottom_vec_);
        for (int b = 0; b < 2; ++b) {
          const Blob<Dtype>* blob = this->blob_bottom_vec_[b];
          runs[variant].push_back(vector<Dtype>(blob->cpu_diff(),
              blob->cpu_diff() + blob->count()));
        }
        unsetenv("DCD_CPU_KERNELS");
      }
      for (int variant = 0; variant < 2; ++variant) {
        for (int r = 0; r < 3; ++r) {
          ASSERT_EQ(runs[variant][r].size(), runs[2][r].size());
          for (int i = 0; i < runs[2][r].size(); ++i) {
            EXPECT_NEAR(runs[variant][r][i], runs[2][r][i], 1e-4)
                << (variant == 0 ? "own" : "avx2") << " against baseline, "
                << (r == 0 ? "top" : r == 1 ? "d F_a" : "d F_b") << " index "
                << i << ", window " << w[0] << " x " << w[1] << " dilation "
                << w[2] << ", " << height << " x " << width;
          }
        }
      }
    }
  }
}

TYPED_TEST(CostVolumeLayerTest, TestIdenticalInputs) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter layer_param = this->MakeParam(1, 2, 1);
  CostVolumeLayer<Dtype> layer(layer_param);
  this->blob_bottom_vec_[1] = this->blob_a_;
  layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
  // Zero displacement (channel dh (2 dw + 1) + dw = 7) is |f|^2/(|f|^2+eps).
  for (int n = 0; n < 2; ++n) {
    for (int i = 0; i < 5; ++i) {
      for (int j = 0; j < 7; ++j) {
        EXPECT_NEAR(this->blob_top_->data_at(n, 7, i, j), 1, 1e-4);
      }
    }
  }
}

TYPED_TEST(CostVolumeLayerTest, TestGradient) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter layer_param = this->MakeParam(1, 2, 1);
  CostVolumeLayer<Dtype> layer(layer_param);
  GradientChecker<Dtype> checker(1e-2, 1e-2);
  checker.CheckGradient(&layer, this->blob_bottom_vec_, this->blob_top_vec_,
                        0);
  checker.CheckGradient(&layer, this->blob_bottom_vec_, this->blob_top_vec_,
                        1);
}

TYPED_TEST(CostVolumeLayerTest, TestGradientDilation) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter layer_param = this->MakeParam(1, 2, 2);
  CostVolumeLayer<Dtype> layer(layer_param);
  GradientChecker<Dtype> checker(1e-2, 1e-2);
  checker.CheckGradient(&layer, this->blob_bottom_vec_, this->blob_top_vec_);
}

TYPED_TEST(CostVolumeLayerTest, TestGradientWide) {
  // Wide enough for the CPU path's vector column blocks plus its tails
  // (float: 21 = 16 + 5, 26 = 16 + 8 + 2, 33 = 32 + 1 with d b_hat's
  // 8-channel column), and at dw = 7 (the nets' window: offsets paired 8
  // apart in the forward, shifts past a 16-column block in the gather for
  // F_b).
  this->CheckGradientAt(5, 21, 1, 2, 2);
  this->CheckGradientAt(5, 26, 1, 2, 2);
  this->CheckGradientAt(8, 37, 1, 7, 1);
  this->CheckGradientAt(9, 33, 1, 3, 1);
}

TYPED_TEST(CostVolumeLayerTest, TestGradientNearZeroVector) {
  typedef typename TypeParam::Dtype Dtype;
  if (sizeof(Dtype) != sizeof(double)) { return; }  // needs double precision
  for (int c = 0; c < 3; ++c) {
    Dtype* a = this->blob_a_->mutable_cpu_data();
    Dtype* b = this->blob_b_->mutable_cpu_data();
    a[this->blob_a_->offset(0, c, 2, 3)] = 1e-4 * (c + 1);
    b[this->blob_b_->offset(1, c, 1, 1)] = -2e-4 * (c - 1);
  }
  LayerParameter layer_param = this->MakeParam(1, 2, 1);
  CostVolumeLayer<Dtype> layer(layer_param);
  GradientChecker<Dtype> checker(1e-7, 1e-4);
  checker.CheckGradient(&layer, this->blob_bottom_vec_, this->blob_top_vec_);
}

TYPED_TEST(CostVolumeLayerTest, TestZeroVectors) {
  typedef typename TypeParam::Dtype Dtype;
  for (int c = 0; c < 3; ++c) {
    this->blob_a_->mutable_cpu_data()[this->blob_a_->offset(0, c, 1, 1)] = 0;
    this->blob_b_->mutable_cpu_data()[this->blob_b_->offset(0, c, 2, 2)] = 0;
  }
  for (int use_zero_eps = 0; use_zero_eps < 2; ++use_zero_eps) {
    LayerParameter layer_param = this->MakeParam(1, 2, 1);
    if (use_zero_eps) { layer_param.mutable_cost_volume_param()->set_eps(0); }
    CostVolumeLayer<Dtype> layer(layer_param);
    layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
    layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
    for (int i = 0; i < this->blob_top_->count(); ++i) {
      EXPECT_TRUE(std::isfinite(this->blob_top_->cpu_data()[i]));
    }
    for (int k = 0; k < 15; ++k) {
      EXPECT_EQ(this->blob_top_->data_at(0, k, 1, 1), 0);
    }
    // F_a(0, :, 1, 1) meets F_b(0, :, 2, 2) at di = 1, dj = 1: k = 11.
    EXPECT_EQ(this->blob_top_->data_at(0, 11, 1, 1), 0);
    this->FillTopDiff();
    vector<bool> propagate_down(2, true);
    layer.Backward(this->blob_top_vec_, propagate_down,
                   this->blob_bottom_vec_);
    for (int i = 0; i < this->blob_a_->count(); ++i) {
      EXPECT_TRUE(std::isfinite(this->blob_a_->cpu_diff()[i]));
      EXPECT_TRUE(std::isfinite(this->blob_b_->cpu_diff()[i]));
    }
  }
}

TYPED_TEST(CostVolumeLayerTest, TestBackwardNaNAndPropagate) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter layer_param = this->MakeParam(1, 2, 2);
  CostVolumeLayer<Dtype> layer(layer_param);
  layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
  this->FillTopDiff();
  ExpectBackwardWritesEveryDiff(&layer, this->blob_top_vec_,
                                this->blob_bottom_vec_);
}

TYPED_TEST(CostVolumeLayerTest, TestReshape) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter layer_param = this->MakeParam(1, 2, 1);
  CostVolumeLayer<Dtype> layer(layer_param);
  layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
  this->blob_a_->Reshape(1, 4, 6, 4);
  this->blob_b_->Reshape(1, 4, 6, 4);
  FillUniform(this->blob_a_, Dtype(-1), Dtype(1));
  FillUniform(this->blob_b_, Dtype(-1), Dtype(1));
  layer.Reshape(this->blob_bottom_vec_, this->blob_top_vec_);
  layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
  Blob<Dtype> expected;
  ReferenceCostVolume(*this->blob_a_, *this->blob_b_, 1, 2, 1,
      layer_param.cost_volume_param().eps(), &expected);
  ASSERT_TRUE(expected.shape() == this->blob_top_->shape());
  for (int i = 0; i < expected.count(); ++i) {
    EXPECT_NEAR(expected.cpu_data()[i], this->blob_top_->cpu_data()[i], 1e-5);
  }
  // And the gradient after the reshape.
  GradientChecker<Dtype> checker(1e-2, 1e-2);
  checker.CheckGradient(&layer, this->blob_bottom_vec_, this->blob_top_vec_);
  // Back to the first shape, whose buffers now hold the second one's layout:
  // the padding that Forward zeroes once per shape must be zeroed again.
  this->blob_a_->Reshape(2, 3, 5, 7);
  this->blob_b_->Reshape(2, 3, 5, 7);
  FillUniform(this->blob_a_, Dtype(-1), Dtype(1));
  FillUniform(this->blob_b_, Dtype(-1), Dtype(1));
  layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
  ReferenceCostVolume(*this->blob_a_, *this->blob_b_, 1, 2, 1,
      layer_param.cost_volume_param().eps(), &expected);
  ASSERT_TRUE(expected.shape() == this->blob_top_->shape());
  for (int i = 0; i < expected.count(); ++i) {
    EXPECT_NEAR(expected.cpu_data()[i], this->blob_top_->cpu_data()[i], 1e-5);
  }
}

TYPED_TEST(CostVolumeLayerTest, TestBackwardDeterministic) {
  typedef typename TypeParam::Dtype Dtype;
  LayerParameter layer_param = this->MakeParam(1, 2, 1);
  CostVolumeLayer<Dtype> layer(layer_param);
  layer.SetUp(this->blob_bottom_vec_, this->blob_top_vec_);
  layer.Forward(this->blob_bottom_vec_, this->blob_top_vec_);
  this->FillTopDiff();
  vector<bool> propagate_down(2, true);
  layer.Backward(this->blob_top_vec_, propagate_down, this->blob_bottom_vec_);
  const int count = this->blob_a_->count();
  vector<Dtype> da(this->blob_a_->cpu_diff(),
                   this->blob_a_->cpu_diff() + count);
  vector<Dtype> db(this->blob_b_->cpu_diff(),
                   this->blob_b_->cpu_diff() + count);
  layer.Backward(this->blob_top_vec_, propagate_down, this->blob_bottom_vec_);
  EXPECT_EQ(0, memcmp(&da[0], this->blob_a_->cpu_diff(),
                      count * sizeof(Dtype)));
  EXPECT_EQ(0, memcmp(&db[0], this->blob_b_->cpu_diff(),
                      count * sizeof(Dtype)));
}


// Bad input stops with a message naming the layer and the mismatch.
TYPED_TEST(CostVolumeLayerTest, TestBadInputDies) {
  typedef typename TypeParam::Dtype Dtype;
  this->blob_b_->Reshape(2, 3, 5, 6);
  ExpectSetUpDies<CostVolumeLayer<Dtype> >(this->MakeParam(1, 2, 1),
      this->blob_bottom_vec_, this->blob_top_vec_,
      "CostVolume layer cv_test: F_a and F_b must have the same shape, got "
      "F_a 2 3 5 7 \\(210\\) and F_b 2 3 5 6 \\(180\\)");
  LayerParameter no_window;
  no_window.set_name("cv_test");
  no_window.mutable_cost_volume_param();
  ExpectSetUpDies<CostVolumeLayer<Dtype> >(no_window,
      this->blob_bottom_vec_, this->blob_top_vec_,
      "CostVolume layer cv_test: max_displacement, or both "
      "max_displacement_h and max_displacement_w, are required");
  // max_displacement: 100000 fails in set-up naming the window's size; a
  // window that fits but whose cost volume does not fails in Reshape naming
  // the top's shape (both before Blob's "blob size exceeds INT_MAX").
  this->blob_b_->Reshape(2, 3, 5, 7);
  LayerParameter huge;
  huge.set_name("cv_test");
  huge.mutable_cost_volume_param()->set_max_displacement(100000);
  ExpectSetUpDies<CostVolumeLayer<Dtype> >(huge, this->blob_bottom_vec_,
      this->blob_top_vec_, "CostVolume layer cv_test: the displacement "
      "window of max_displacement_h 100000 and max_displacement_w 100000 "
      "has .* = 40000400001 displacements");
  this->blob_a_->Reshape(2, 1, 100, 100);
  this->blob_b_->Reshape(2, 1, 100, 100);
  ExpectSetUpDies<CostVolumeLayer<Dtype> >(this->MakeParam(200, 200, 1),
      this->blob_bottom_vec_, this->blob_top_vec_,
      "CostVolume layer cv_test: the cost volume 2 x 160801 x 100 x 100 = "
      "3216020000 elements exceeds a blob's INT_MAX");
}

}  // namespace caffe
