// The CUDA kernels of the DCD layers are grid-stride loops over the
// per-index bodies in dcd_kernels.hpp. These tests run those bodies on the
// CPU over every index, in launch order and with the GPU path's buffers
// (padded b_hat, tap lists sorted by a stable sort), and compare with the
// CPU layers: the GPU's index decoding, blocking and summation order are
// tested without a GPU. With a GPU (a CUDA build), the last tests compare
// the GPU layers with the CPU layers on the same inputs.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>
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

#include "caffe/test/test_caffe_main.hpp"
#include "caffe/test/test_dcd_util.hpp"

namespace caffe {

namespace {

template <typename Dtype>
Dtype RelativeTolerance() { return sizeof(Dtype) == 4 ? 2e-5 : 1e-12; }

// |got - want| <= tol * max |want|: float sums differ in the last bits
// between the CPU's vectorised loops (FMA) and a plain loop, or nvcc's fused
// multiply-adds; a relative bound over the largest value keeps the test
// meaningful at any scale.
template <typename Dtype>
void ExpectClose(const Dtype* want, const Dtype* got, int count,
    const char* what, Dtype rel_tol = RelativeTolerance<Dtype>()) {
  Dtype scale = 0;
  for (int i = 0; i < count; ++i) {
    scale = std::max(scale, static_cast<Dtype>(std::fabs(want[i])));
  }
  ASSERT_GT(scale, 0) << what << ": all zero, the test would prove nothing";
  int bad = 0;
  for (int i = 0; i < count && bad < 10; ++i) {
    const bool ok = std::fabs(want[i] - got[i]) <= rel_tol * scale;
    EXPECT_TRUE(ok) << what << " index " << i << ": want " << want[i]
                    << ", got " << got[i] << " (max |value| " << scale << ")";
    bad += !ok;
  }
}

}  // namespace

template <typename Dtype>
class DcdKernelsTest : public ::testing::Test {
 protected:
  DcdKernelsTest() {
    Caffe::set_mode(Caffe::CPU);
    Caffe::set_random_seed(1701);
  }
};

TYPED_TEST_CASE(DcdKernelsTest, TestDtypes);

// CostVolume: 6 channels (a block of 4 and a tail of 2), 11 horizontal
// displacements (a block of 8 and a tail of 3), dilation 2.
TYPED_TEST(DcdKernelsTest, TestCostVolumeBodies) {
  typedef TypeParam Dtype;
  const int N = 2, C = 6, H = 9, W = 13, dh = 2, dw = 5, s = 2;
  const Dtype eps = 1e-6;
  Blob<Dtype> a(N, C, H, W), b(N, C, H, W), top;
  FillUniform(&a, Dtype(-1), Dtype(1));
  FillUniform(&b, Dtype(-1), Dtype(1));
  vector<Blob<Dtype>*> bottom_vec(1, &a), top_vec(1, &top);
  bottom_vec.push_back(&b);
  LayerParameter param;
  param.set_name("cv_kernels");
  CostVolumeParameter* cv = param.mutable_cost_volume_param();
  cv->set_max_displacement_h(dh);
  cv->set_max_displacement_w(dw);
  cv->set_dilation(s);
  cv->set_eps(eps);
  CostVolumeLayer<Dtype> layer(param);
  layer.SetUp(bottom_vec, top_vec);
  layer.Forward(bottom_vec, top_vec);
  Blob<Dtype> g;
  g.ReshapeLike(top);
  FillUniform(&g, Dtype(-1), Dtype(1));
  caffe_copy(g.count(), g.cpu_data(), top.mutable_cpu_diff());
  layer.Backward(top_vec, vector<bool>(2, true), bottom_vec);

  // Forward_gpu's launches.
  const int hw = H * W, npix = N * hw, D = dcd::window_size(dh, dw);
  const int pad_h = dh * s, pad_w = dw * s, pw = W + 2 * pad_w;
  const int pplane = (H + 2 * pad_h) * pw;
  vector<Dtype> a_hat(N * C * hw), b_hat(N * C * pplane, Dtype(0));
  vector<Dtype> inv_a(npix), inv_b(npix), out(N * D * hw, Dtype(-7));
  for (int i = 0; i < npix; ++i) {
    dcd::cost_volume_normalize_pixel(i, a.cpu_data(), C, H, W, eps, &inv_a[0],
                                     &a_hat[0], 0, 0, W, hw);
  }
  for (int i = 0; i < npix; ++i) {
    dcd::cost_volume_normalize_pixel(i, b.cpu_data(), C, H, W, eps, &inv_b[0],
                                     &b_hat[0], pad_h, pad_w, pw, pplane);
  }
  const int fwd_count = dcd::cost_volume_forward_count(N, H, W, dh, dw);
  EXPECT_EQ(N * (2 * dh + 1) * 2 * hw, fwd_count);
  for (int i = 0; i < fwd_count; ++i) {
    dcd::cost_volume_forward_block(i, &a_hat[0], &b_hat[0], C, H, W, dh, dw, s,
                                   &out[0]);
  }
  ExpectClose(top.cpu_data(), &out[0], top.count(), "forward");

  // Backward_gpu's launches.
  const int bwd_count = dcd::cost_volume_backward_count(N, C, H, W);
  EXPECT_EQ(N * 2 * hw, bwd_count);
  vector<Dtype> da(a.count(), Dtype(-7)), db(b.count(), Dtype(-7));
  for (int i = 0; i < bwd_count; ++i) {
    dcd::cost_volume_backward_a_block(i, g.cpu_data(), &b_hat[0], C, H, W, dh,
                                      dw, s, &da[0]);
  }
  for (int i = 0; i < npix; ++i) {
    dcd::cost_volume_normalize_backward_pixel(i, a.cpu_data(), &inv_a[0], C,
                                              hw, &da[0]);
  }
  for (int i = 0; i < bwd_count; ++i) {
    dcd::cost_volume_backward_b_block(i, g.cpu_data(), &a_hat[0], C, H, W, dh,
                                      dw, s, &db[0]);
  }
  for (int i = 0; i < npix; ++i) {
    dcd::cost_volume_normalize_backward_pixel(i, b.cpu_data(), &inv_b[0], C,
                                              hw, &db[0]);
  }
  ExpectClose(a.cpu_diff(), &da[0], a.count(), "d F_a");
  ExpectClose(b.cpu_diff(), &db[0], b.count(), "d F_b");
}

// Forward_gpu's tiled kernel, emulated block by block on the host (each
// chunk: every thread loads, then every thread accumulates), gives the same
// bits as the per-index body; so do the one-launch backward bodies.
template <typename Dtype>
void ExpectTilesMatchBodies(int N, int C, int H, int W, int dh, int dw, int s,
                            int smem_bytes, int expect_chunks) {
  const int hw = H * W, D = dcd::window_size(dh, dw);
  const int pad_h = dh * s, pad_w = dw * s, pw = W + 2 * pad_w;
  const int pplane = (H + 2 * pad_h) * pw;
  Blob<Dtype> a(N, C, H, W), b(N, C, H, W), g(N, D, H, W);
  FillUniform(&a, Dtype(-1), Dtype(1));
  FillUniform(&b, Dtype(-1), Dtype(1));
  FillUniform(&g, Dtype(-1), Dtype(1));
  vector<Dtype> a_hat(N * C * hw), b_hat(N * C * pplane, Dtype(0));
  vector<Dtype> inv_a(N * hw), inv_b(N * hw);
  for (int i = 0; i < N * hw; ++i) {
    dcd::cost_volume_normalize_pixel(i, a.cpu_data(), C, H, W, Dtype(1e-6),
                                     &inv_a[0], &a_hat[0], 0, 0, W, hw);
    dcd::cost_volume_normalize_pixel(i, b.cpu_data(), C, H, W, Dtype(1e-6),
                                     &inv_b[0], &b_hat[0], pad_h, pad_w, pw,
                                     pplane);
  }
  vector<Dtype> plain(N * D * hw, Dtype(-7)), tiled(N * D * hw, Dtype(-7));
  const int count = dcd::cost_volume_forward_count(N, H, W, dh, dw);
  for (int i = 0; i < count; ++i) {
    dcd::cost_volume_forward_block(i, &a_hat[0], &b_hat[0], C, H, W, dh, dw,
                                   s, &plain[0]);
  }
  const dcd::CostVolumeTile T = dcd::cost_volume_tile(C, H, W, dh, dw, s,
      sizeof(Dtype), smem_bytes);
  ASSERT_TRUE(T.ok);
  EXPECT_EQ(expect_chunks, dcd::ceil_div(C, T.cc));
  EXPECT_LE(T.threads(), dcd::kCostVolumeTileMaxThreads);
  EXPECT_LE((T.a_size() + T.b_size()) * static_cast<int>(sizeof(Dtype)),
            smem_bytes);
  const int MW = dcd::kCostVolumeTileMaxW;
  vector<Dtype> a_s(T.a_size()), b_s(T.b_size());
  for (int block = 0; block < T.blocks(N); ++block) {
    vector<Dtype> acc(T.threads() * MW, Dtype(0));
    for (int c0 = 0; c0 < C; c0 += T.cc) {
      // a stale chunk: every element must be overwritten
      std::fill(a_s.begin(), a_s.end(), Dtype(-9));
      std::fill(b_s.begin(), b_s.end(), Dtype(-9));
      for (int t = 0; t < T.threads(); ++t) {
        dcd::cost_volume_tile_load(t, T, block, c0, &a_hat[0], &b_hat[0], C,
                                   H, W, dh, dw, s, &a_s[0], &b_s[0]);
      }
      for (int z = 0, t = 0; z < T.rows; ++z) {
        for (int y = 0; y < T.th; ++y) {
          for (int x = 0; x < T.tw; ++x, ++t) {
            dcd::cost_volume_tile_accumulate(x, y, z, T,
                std::min(T.cc, C - c0), dw, s, &a_s[0], &b_s[0],
                &acc[t * MW]);
          }
        }
      }
    }
    for (int z = 0, t = 0; z < T.rows; ++z) {
      for (int y = 0; y < T.th; ++y) {
        for (int x = 0; x < T.tw; ++x, ++t) {
          dcd::cost_volume_tile_store(x, y, z, T, block, H, W, dh, dw, s,
                                      &acc[t * MW], &tiled[0]);
        }
      }
    }
  }
  EXPECT_EQ(0, memcmp(&plain[0], &tiled[0], plain.size() * sizeof(Dtype)))
      << "tiled forward differs from cost_volume_forward_block";

  // Backward: the separate launches against the one-launch bodies.
  const int bcount = dcd::cost_volume_backward_count(N, C, H, W);
  vector<Dtype> da(a.count(), Dtype(-7)), db(b.count(), Dtype(-7));
  vector<Dtype> da1(a.count(), Dtype(-5)), db1(b.count(), Dtype(-5));
  for (int i = 0; i < bcount; ++i) {
    dcd::cost_volume_backward_a_block(i, g.cpu_data(), &b_hat[0], C, H, W, dh,
                                      dw, s, &da[0]);
    dcd::cost_volume_backward_b_block(i, g.cpu_data(), &a_hat[0], C, H, W, dh,
                                      dw, s, &db[0]);
  }
  for (int i = 0; i < N * hw; ++i) {
    dcd::cost_volume_normalize_backward_pixel(i, a.cpu_data(), &inv_a[0], C,
                                              hw, &da[0]);
    dcd::cost_volume_normalize_backward_pixel(i, b.cpu_data(), &inv_b[0], C,
                                              hw, &db[0]);
  }
  for (int i = 0; i < 2 * bcount; ++i) {
    dcd::cost_volume_backward_both(i, bcount, g.cpu_data(), &a_hat[0],
        &b_hat[0], C, H, W, dh, dw, s, &da1[0], &db1[0]);
  }
  for (int i = 0; i < 2 * N * hw; ++i) {
    dcd::cost_volume_normalize_backward_both(i, N * hw, a.cpu_data(),
        &inv_a[0], b.cpu_data(), &inv_b[0], C, hw, &da1[0], &db1[0]);
  }
  EXPECT_EQ(0, memcmp(&da[0], &da1[0], da.size() * sizeof(Dtype))) << "d F_a";
  EXPECT_EQ(0, memcmp(&db[0], &db1[0], db.size() * sizeof(Dtype))) << "d F_b";
}

TYPED_TEST(DcdKernelsTest, TestCostVolumeTiles) {
  typedef TypeParam Dtype;
  // dilation 2, two chunks (4 + 2 channels) from a small shared memory
  const int small = 4 * ((8 * 16) + (8 + 8) * (16 + 20)) * sizeof(Dtype);
  ExpectTilesMatchBodies<Dtype>(2, 6, 9, 13, 2, 5, 2, small, 2);
  // the paper's window (d = 6): 13 rows of 4 x 16 tiles, 37 channels in
  // chunks of 16 (double: 12), maps that end inside a tile
  ExpectTilesMatchBodies<Dtype>(1, 37, 11, 35, 6, 6, 1, 48 * 1024,
                                sizeof(Dtype) == 4 ? 3 : 4);
  // the widest tiled window (15 columns) on a one-row map
  ExpectTilesMatchBodies<Dtype>(2, 3, 1, 20, 1, 7, 1, 48 * 1024, 1);
  // wider windows keep the per-index kernel
  EXPECT_FALSE(dcd::cost_volume_tile(8, 8, 8, 1, 8, 1, sizeof(Dtype),
                                     48 * 1024).ok);
}

TYPED_TEST(DcdKernelsTest, TestSoftDisplacementBodies) {
  typedef TypeParam Dtype;
  const int N = 2, dh = 1, dw = 2, s = 2, H = 5, W = 7;
  const float tau = 0.1;
  const int D = dcd::window_size(dh, dw), hw = H * W, npix = N * hw;
  for (int wta = 0; wta < 2; ++wta) {
    Blob<Dtype> cost(N, D, H, W), top;
    FillUniform(&cost, Dtype(-1), Dtype(1));
    vector<Blob<Dtype>*> bottom_vec(1, &cost), top_vec(1, &top);
    LayerParameter param;
    param.set_name("sd_kernels");
    SoftDisplacementParameter* sd = param.mutable_soft_displacement_param();
    sd->set_max_displacement_h(dh);
    sd->set_max_displacement_w(dw);
    sd->set_dilation(s);
    sd->set_temperature(tau);
    if (wta) { sd->set_method(SoftDisplacementParameter_Method_WTA); }
    SoftDisplacementLayer<Dtype> layer(param);
    layer.SetUp(bottom_vec, top_vec);
    layer.Forward(bottom_vec, top_vec);
    const Dtype inv_tau = Dtype(1) / Dtype(tau);
    vector<Dtype> v(top.count(), Dtype(-7));
    for (int i = 0; i < npix; ++i) {
      dcd::soft_displacement_forward_pixel(i, cost.cpu_data(), hw, dh, dw, s,
                                           inv_tau, wta != 0, &v[0]);
    }
    ExpectClose(top.cpu_data(), &v[0], top.count(),
                wta ? "WTA forward" : "forward");
    if (wta) { continue; }  // WTA's backward is a zero fill
    FillUniform(&top, Dtype(-1), Dtype(1));
    caffe_copy(top.count(), top.cpu_data(), top.mutable_cpu_diff());
    layer.Forward(bottom_vec, top_vec);
    layer.Backward(top_vec, vector<bool>(1, true), bottom_vec);
    vector<Dtype> dc(cost.count(), Dtype(-7));
    for (int i = 0; i < npix; ++i) {
      dcd::soft_displacement_backward_pixel(i, cost.cpu_data(),
          top.cpu_diff(), hw, dh, dw, s, inv_tau, &dc[0]);
    }
    ExpectClose(cost.cpu_diff(), &dc[0], cost.count(), "backward");
  }
}

// The warp's gradient to F through emitted taps, a stable sort by key (what
// CUB's radix sort guarantees), run starts and the ordered sums must equal
// the CPU layer's bit for bit (its runs come from a counting sort): same
// terms, same order.
TYPED_TEST(DcdKernelsTest, TestBilinearWarpBodies) {
  typedef TypeParam Dtype;
  const int N = 2, C = 3, H = 6, W = 8;
  const float s = -1.5;
  Blob<Dtype> f(N, C, H, W), v(N, 2, H, W), top;
  FillUniform(&f, Dtype(-1), Dtype(1));
  // Taps leave the map, several share targets.
  FillUniform(&v, Dtype(-3), Dtype(3));
  vector<Blob<Dtype>*> bottom_vec(1, &f), top_vec(1, &top);
  bottom_vec.push_back(&v);
  LayerParameter param;
  param.set_name("warp_kernels");
  param.mutable_bilinear_warp_param()->set_displacement_scale(s);
  BilinearWarpLayer<Dtype> layer(param);
  layer.SetUp(bottom_vec, top_vec);
  layer.Forward(bottom_vec, top_vec);
  const int hw = H * W, npix = N * hw;
  vector<Dtype> out(top.count(), Dtype(-7));
  for (int i = 0; i < top.count(); ++i) {
    dcd::bilinear_warp_forward_elem(i, f.cpu_data(), v.cpu_data(), C, H, W,
                                    Dtype(s), &out[0]);
  }
  ExpectClose(top.cpu_data(), &out[0], top.count(), "forward");

  FillUniform(&top, Dtype(-1), Dtype(1));
  caffe_copy(top.count(), top.cpu_data(), top.mutable_cpu_diff());
  layer.Forward(bottom_vec, top_vec);
  layer.Backward(top_vec, vector<bool>(2, true), bottom_vec);

  vector<int> keys(4 * npix), values(4 * npix);
  for (int i = 0; i < npix; ++i) {
    dcd::bilinear_warp_emit_taps(i, v.cpu_data(), N, H, W, Dtype(s), &keys[0],
                                 &values[0]);
  }
  vector<std::pair<int, int> > entries(4 * npix);
  for (int e = 0; e < 4 * npix; ++e) {
    entries[e] = std::make_pair(keys[e], values[e]);
  }
  std::stable_sort(entries.begin(), entries.end(),
      [](const std::pair<int, int>& x, const std::pair<int, int>& y) {
        return x.first < y.first;
      });
  vector<int> sorted_keys(4 * npix), sorted_values(4 * npix);
  for (int e = 0; e < 4 * npix; ++e) {
    sorted_keys[e] = entries[e].first;
    sorted_values[e] = entries[e].second;
  }
  // The random displacements put some taps outside and several on one pixel.
  EXPECT_EQ(N * hw, sorted_keys.back());
  vector<int> starts(npix + 1, -1);
  for (int i = 0; i < npix + 1; ++i) {
    dcd::bilinear_warp_run_start(i, &sorted_keys[0], 4 * npix, &starts[0]);
  }
  int longest = 0;
  for (int i = 0; i < npix; ++i) {
    longest = std::max(longest, starts[i + 1] - starts[i]);
  }
  EXPECT_GT(longest, 4);
  vector<Dtype> df(f.count(), Dtype(-7));
  for (int i = 0; i < f.count(); ++i) {
    dcd::bilinear_warp_backward_f_elem(i, &sorted_values[0], &starts[0],
        v.cpu_data(), top.cpu_diff(), C, H, W, Dtype(s), &df[0]);
  }
  for (int i = 0; i < f.count(); ++i) {
    EXPECT_EQ(f.cpu_diff()[i], df[i]) << "d F index " << i;
  }
  vector<Dtype> dv(v.count(), Dtype(-7));
  for (int i = 0; i < npix; ++i) {
    dcd::bilinear_warp_backward_v_pixel(i, f.cpu_data(), v.cpu_data(),
        top.cpu_diff(), C, H, W, Dtype(s), &dv[0]);
  }
  ExpectClose(v.cpu_diff(), &dv[0], v.count(), "d V");
}

#ifndef CPU_ONLY

// GPU against CPU on the same inputs, values and gradients, at a size where
// every kernel runs many blocks; the GPU backward must also repeat exactly.
template <typename Dtype>
class DcdGpuParityTest : public GPUDeviceTest<Dtype> {
 protected:
  // Runs `layer` forward and backward on the CPU and on the GPU and
  // compares; top diff random.
  void Compare(Layer<Dtype>* layer, const vector<Blob<Dtype>*>& bottom,
               const vector<Blob<Dtype>*>& top, const char* name) {
    layer->SetUp(bottom, top);
    Caffe::set_mode(Caffe::CPU);
    layer->Forward(bottom, top);
    vector<Dtype> top_cpu(top[0]->cpu_data(),
                          top[0]->cpu_data() + top[0]->count());
    Blob<Dtype> g;
    g.ReshapeLike(*top[0]);
    FillUniform(&g, Dtype(-1), Dtype(1));
    caffe_copy(g.count(), g.cpu_data(), top[0]->mutable_cpu_diff());
    const vector<bool> down(bottom.size(), true);
    layer->Backward(top, down, bottom);
    vector<vector<Dtype> > diff_cpu;
    for (int b = 0; b < bottom.size(); ++b) {
      diff_cpu.push_back(vector<Dtype>(bottom[b]->cpu_diff(),
          bottom[b]->cpu_diff() + bottom[b]->count()));
    }
    Caffe::set_mode(Caffe::GPU);
    layer->Forward(bottom, top);
    ExpectClose(&top_cpu[0], top[0]->cpu_data(), top[0]->count(), name,
                Dtype(1e-4));
    caffe_copy(g.count(), g.cpu_data(), top[0]->mutable_cpu_diff());
    layer->Backward(top, down, bottom);
    vector<vector<Dtype> > diff_gpu;
    for (int b = 0; b < bottom.size(); ++b) {
      ExpectClose(&diff_cpu[b][0], bottom[b]->cpu_diff(), bottom[b]->count(),
                  name, Dtype(1e-4));
      diff_gpu.push_back(vector<Dtype>(bottom[b]->cpu_diff(),
          bottom[b]->cpu_diff() + bottom[b]->count()));
    }
    layer->Backward(top, down, bottom);
    for (int b = 0; b < bottom.size(); ++b) {
      EXPECT_EQ(0, memcmp(&diff_gpu[b][0], bottom[b]->cpu_diff(),
                          diff_gpu[b].size() * sizeof(Dtype)))
          << name << ": GPU backward of bottom " << b << " not repeatable";
    }
  }
};

TYPED_TEST_CASE(DcdGpuParityTest, TestDtypes);

TYPED_TEST(DcdGpuParityTest, TestThreeLayers) {
  typedef TypeParam Dtype;
  const int N = 2, C = 18, H = 23, W = 29, d = 6;
  Blob<Dtype> a(N, C, H, W), b(N, C, H, W), cost, disp, warped;
  FillUniform(&a, Dtype(-1), Dtype(1));
  FillUniform(&b, Dtype(-1), Dtype(1));
  vector<Blob<Dtype>*> cv_bottom(1, &a), cv_top(1, &cost);
  cv_bottom.push_back(&b);
  LayerParameter cv_param;
  cv_param.set_name("cv_parity");
  cv_param.mutable_cost_volume_param()->set_max_displacement(d);
  CostVolumeLayer<Dtype> cv(cv_param);
  this->Compare(&cv, cv_bottom, cv_top, "CostVolume");

  vector<Blob<Dtype>*> sd_bottom(1, &cost), sd_top(1, &disp);
  LayerParameter sd_param;
  sd_param.set_name("sd_parity");
  sd_param.mutable_soft_displacement_param()->set_max_displacement(d);
  sd_param.mutable_soft_displacement_param()->set_temperature(0.05);
  SoftDisplacementLayer<Dtype> sd(sd_param);
  this->Compare(&sd, sd_bottom, sd_top, "SoftDisplacement");

  vector<Blob<Dtype>*> warp_bottom(1, &a), warp_top(1, &warped);
  warp_bottom.push_back(&disp);
  LayerParameter warp_param;
  warp_param.set_name("warp_parity");
  warp_param.mutable_bilinear_warp_param()->set_displacement_scale(-1);
  BilinearWarpLayer<Dtype> warp(warp_param);
  this->Compare(&warp, warp_bottom, warp_top, "BilinearWarp");
}

#endif  // CPU_ONLY

}  // namespace caffe
