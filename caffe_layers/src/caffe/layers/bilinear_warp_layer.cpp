#include <algorithm>
#include <string>
#include <vector>

#include "caffe/layers/bilinear_warp_layer.hpp"
#include "caffe/util/dcd_cpu_cap.hpp"
#include "caffe/util/dcd_kernels.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

template <typename Dtype>
void BilinearWarpLayer<Dtype>::LayerSetUp(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  displacement_scale_ =
      this->layer_param_.bilinear_warp_param().displacement_scale();
  CHECK(displacement_scale_ - displacement_scale_ == 0) << "BilinearWarp "
      << "layer " << this->layer_param_.name() << ": displacement_scale must "
      << "be finite, got " << displacement_scale_;
}

template <typename Dtype>
void BilinearWarpLayer<Dtype>::Reshape(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  const string& name = this->layer_param_.name();
  CHECK_EQ(bottom[0]->num_axes(), 4) << "BilinearWarp layer " << name
      << ": F must be N x C x H x W, got " << bottom[0]->shape_string();
  CHECK_EQ(bottom[1]->num_axes(), 4) << "BilinearWarp layer " << name
      << ": V must be N x 2 x H x W, got " << bottom[1]->shape_string();
  CHECK_EQ(bottom[1]->channels(), 2) << "BilinearWarp layer " << name
      << ": V must have 2 channels (v_y, v_x), got V "
      << bottom[1]->shape_string();
  CHECK_EQ(bottom[0]->num(), bottom[1]->num()) << "BilinearWarp layer "
      << name << ": F and V must have the same num, got F "
      << bottom[0]->shape_string() << " and V " << bottom[1]->shape_string();
  CHECK_EQ(bottom[0]->height(), bottom[1]->height()) << "BilinearWarp layer "
      << name << ": F and V must have the same height, got F "
      << bottom[0]->shape_string() << " and V " << bottom[1]->shape_string();
  CHECK_EQ(bottom[0]->width(), bottom[1]->width()) << "BilinearWarp layer "
      << name << ": F and V must have the same width, got F "
      << bottom[0]->shape_string() << " and V " << bottom[1]->shape_string();
  top[0]->ReshapeLike(*bottom[0]);
}

namespace {

// Taps of every pixel of image n, computed once and shared by the channels
// (they depend on V only). Rows split over the threads.
template <typename Dtype>
void image_taps(const Dtype* v, int n, int height, int width, Dtype s,
    vector<dcd::BilinearTaps<Dtype> >* taps) {
  const int hw = height * width;
  taps->resize(hw);
  dcd::BilinearTaps<Dtype>* t = taps->data();
#pragma omp parallel for schedule(static)
  for (int i = 0; i < height; ++i) {
    for (int j = 0; j < width; ++j) {
      const int p = i * width + j;
      t[p] = dcd::warp_position_taps(i, j, v[(n * 2) * hw + p],
                                     v[(n * 2 + 1) * hw + p], s, height, width);
    }
  }
}

// The runs of the gradient to F (dcd_kernels.hpp, "Gradient to F"): for
// each target pixel q, the (source pixel, weight) pairs of the taps that
// land on q, in ascending source pixel and tap, by a counting sort.
template <typename Dtype>
void build_tap_runs(const vector<dcd::BilinearTaps<Dtype> >& taps, int height,
    int width, vector<int>* starts, vector<int>* sources,
    vector<Dtype>* weights) {
  const int hw = height * width;
  starts->assign(hw + 1, 0);
  int* start = starts->data();
  for (int p = 0; p < hw; ++p) {
    for (int k = 0; k < 4; ++k) {
      const int q = dcd::tap_index(taps[p], k, height, width);
      if (q >= 0) { ++start[q + 1]; }
    }
  }
  for (int q = 0; q < hw; ++q) { start[q + 1] += start[q]; }
  sources->resize(start[hw]);
  weights->resize(start[hw]);
  vector<int> next(start, start + hw);
  for (int p = 0; p < hw; ++p) {
    for (int k = 0; k < 4; ++k) {
      const int q = dcd::tap_index(taps[p], k, height, width);
      if (q < 0) { continue; }
      (*sources)[next[q]] = p;
      (*weights)[next[q]] = dcd::bilinear_weight(k, taps[p].ay, taps[p].ax);
      ++next[q];
    }
  }
}

// f_diff(c, q) = sum over q's run of g(c, p) w, from 0, for CB channels
// (planes hw apart) and the targets q_begin .. q_end: one pass over a run
// serves the CB channels.
template <typename Dtype, int CB>
void gather_tap_runs(const Dtype* g, int hw, const int* starts,
    const int* sources, const Dtype* weights, int q_begin, int q_end,
    Dtype* f_diff) {
  for (int q = q_begin; q < q_end; ++q) {
    Dtype acc[CB];
    for (int c = 0; c < CB; ++c) { acc[c] = 0; }
    for (int e = starts[q]; e < starts[q + 1]; ++e) {
      const Dtype* gp = g + sources[e];
      const Dtype w = weights[e];
      for (int c = 0; c < CB; ++c) { acc[c] += gp[c * hw] * w; }
    }
    for (int c = 0; c < CB; ++c) { f_diff[c * hw + q] = acc[c]; }
  }
}

// The forward runs over tiles of kTile pixels of a row, one channel at a
// time, so each channel's plane is read near one place for a whole tile
// (docs/ASSUMPTIONS.md, "BilinearWarp on the CPU").
const int kTile = 32;
const int kRun = 8;  // pixels per vector run (below)

// A tile's pixels whose taps all lie inside the map (nearly all): where
// each sits in the tile, the offset of its tap (y0, x0) in the plane and
// its tap weights, as bilinear_mix computes them. The `border` others
// have every tap checked.
template <typename Dtype>
struct TileTaps {
  int inside;
  int border;
  int at[kTile];       // position in the tile: inside ones, then border ones
  int offset[kTile];
  Dtype w[4][kTile];   // bilinear_weight(k, ay, ax)
  bool run[kTile];     // a run of kRun starts here (warp_tile_avx2)
};

template <typename Dtype>
void tile_taps(const dcd::BilinearTaps<Dtype>* t, int len, int width,
    int height, TileTaps<Dtype>* tile) {
  tile->inside = tile->border = 0;
  for (int x = 0; x < len; ++x) {
    if (!dcd::taps_inside(t[x], height, width)) {
      tile->at[len - 1 - tile->border++] = x;
      continue;
    }
    const int e = tile->inside++;
    tile->at[e] = x;
    tile->offset[e] = t[x].y0 * width + t[x].x0;
    for (int k = 0; k < 4; ++k) {
      tile->w[k][e] = dcd::bilinear_weight(k, t[x].ay, t[x].ax);
    }
  }
  // Runs of kRun inside pixels side by side in the tile and in the plane,
  // taken greedily from the left.
  for (int e = 0; e < tile->inside;) {
    bool run = e + kRun <= tile->inside;
    for (int k = 1; run && k < kRun; ++k) {
      run = tile->offset[e + k] == tile->offset[e] + k &&
          tile->at[e + k] == tile->at[e] + k;
    }
    tile->run[e] = run;
    e += run ? kRun : 1;
  }
}

// One channel of a tile's inside pixels: out[x] = the sample, summed as
// dcd::bilinear_mix sums it.
// Asks for this tile's taps two rows down, where the tile below reads next.
template <typename Dtype>
inline void prefetch_tile_below(const Dtype* plane, int width,
    const TileTaps<Dtype>& tile) {
  if (tile.inside > 0) {
    const Dtype* below = plane + tile.offset[0] + 2 * width;
    for (int x = 0; x <= kTile; x += 16) { __builtin_prefetch(below + x); }
  }
}

template <typename Dtype>
void warp_tile(const Dtype* plane, int width, const TileTaps<Dtype>& tile,
    Dtype* out) {
  prefetch_tile_below(plane, width, tile);
  for (int e = 0; e < tile.inside; ++e) {
    const Dtype* at = plane + tile.offset[e];
    out[tile.at[e]] = tile.w[0][e] * at[0] + tile.w[1][e] * at[1]
        + tile.w[2][e] * at[width] + tile.w[3][e] * at[width + 1];
  }
}

// Whether the taps of pixels t[0 .. n) all lie inside the map.
template <typename Dtype>
bool all_taps_inside(const dcd::BilinearTaps<Dtype>* t, int n, int height,
    int width) {
  for (int x = 0; x < n; ++x) {
    if (!dcd::taps_inside(t[x], height, width)) { return false; }
  }
  return true;
}

// Runs of kRun pixels whose taps sit side by side (consecutive offsets in
// the plane, the usual case where the displacement's whole-pixel part is
// the same along a row) read each tap as one vector load. On x86-64 with
// AVX2 those runs are computed 8 floats at a time; the sums are the scalar
// code's, lane by lane, in the same order and without FMA (target "avx2"
// alone), so the results are the same bits. Gathers measured slower than
// scalar loads on Zen 3 (docs/ASSUMPTIONS.md, "BilinearWarp on the CPU").

#if DCD_X86_DISPATCH
typedef dcd::VecOf<float, 32>::type Float8;

__attribute__((target("avx2"))) inline Float8 load8(const float* p) {
  Float8 v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}

__attribute__((target("avx2"))) inline void store8(float* p, Float8 v) {
  __builtin_memcpy(p, &v, sizeof(v));
}

// One channel of a tile's inside pixels (warp_tile), runs of kRun
// consecutive pixels as vectors.
__attribute__((target("avx2"))) void warp_tile_avx2(const float* plane,
    int width, const TileTaps<float>& tile, float* out) {
  prefetch_tile_below(plane, width, tile);
  int e = 0;
  while (e < tile.inside) {
    const int o = tile.offset[e], x = tile.at[e];
    if (tile.run[e]) {
      const float* at = plane + o;
      store8(out + x, load8(&tile.w[0][e]) * load8(at)
          + load8(&tile.w[1][e]) * load8(at + 1)
          + load8(&tile.w[2][e]) * load8(at + width)
          + load8(&tile.w[3][e]) * load8(at + width + 1));
      e += kRun;
      continue;
    }
    const float* at = plane + o;
    out[x] = tile.w[0][e] * at[0] + tile.w[1][e] * at[1]
        + tile.w[2][e] * at[width] + tile.w[3][e] * at[width + 1];
    ++e;
  }
}

// warp_grad_inside<float, kRun> for pixels whose taps are side by side
// (`offset`: pixel 0's tap (y0, x0)), as vectors.
__attribute__((target("avx2"))) void warp_grad_run_avx2(const float* f,
    const float* g, int channels, int hw, int width, int offset,
    const dcd::BilinearTaps<float>* t, float* sy, float* sx) {
  Float8 ax, ay;
  for (int x = 0; x < kRun; ++x) {
    ax[x] = t[x].ax;
    ay[x] = t[x].ay;
  }
  const Float8 one_ax = 1.0f - ax, one_ay = 1.0f - ay;
  Float8 acc_y = ax - ax, acc_x = acc_y;
  for (int c = 0; c < channels; ++c) {
    const float* at = f + c * hw + offset;
    const Float8 v00 = load8(at), v01 = load8(at + 1);
    const Float8 v10 = load8(at + width), v11 = load8(at + width + 1);
    const Float8 d_y = one_ax * (v10 - v00) + ax * (v11 - v01);
    const Float8 d_x = one_ay * (v01 - v00) + ay * (v11 - v10);
    const Float8 gc = load8(g + c * hw);
    acc_y += gc * d_y;
    acc_x += gc * d_x;
  }
  store8(sy, acc_y);
  store8(sx, acc_x);
}
#endif  // DCD_X86_DISPATCH

// One channel of a tile's inside pixels, by the CPU's variant (`level`,
// dcd::CpuIsaLevel) for float.
inline void warp_tile_any(int level, const float* plane, int width,
    const TileTaps<float>& tile, float* out) {
#if DCD_X86_DISPATCH
  if (level >= 1) {
    warp_tile_avx2(plane, width, tile, out);
    return;
  }
#endif
  warp_tile(plane, width, tile, out);
}

inline void warp_tile_any(int, const double* plane, int width,
    const TileTaps<double>& tile, double* out) {
  warp_tile(plane, width, tile, out);
}

// The gradient to V of kRun pixels whose taps all lie inside the map and
// sit side by side, as vectors where the CPU has them; false (nothing
// written) otherwise.
inline bool warp_grad_run(int level, const float* f, const float* g,
    int channels, int hw, int width, const dcd::BilinearTaps<float>* t,
    float* sy, float* sx) {
#if DCD_X86_DISPATCH
  if (level < 1) { return false; }
  const int offset = t[0].y0 * width + t[0].x0;
  for (int x = 1; x < kRun; ++x) {
    if (t[x].y0 * width + t[x].x0 != offset + x) { return false; }
  }
  warp_grad_run_avx2(f, g, channels, hw, width, offset, t, sy, sx);
  return true;
#else
  return false;
#endif
}

inline bool warp_grad_run(int, const double*, const double*, int, int, int,
    const dcd::BilinearTaps<double>*, double*, double*) {
  return false;
}

// Gradient to V before the scale s, for P consecutive pixels whose taps
// all lie inside the map: (sy, sx)[x] = sum over c in ascending order of
// g(c, x) times the sample's derivatives (dcd::bilinear_mix_grad). The P
// pixels' sums are independent, so their additions overlap.
template <typename Dtype, int P>
void warp_grad_inside(const Dtype* f, const Dtype* g, int channels, int hw,
    int width, const dcd::BilinearTaps<Dtype>* t, Dtype* sy, Dtype* sx) {
  const Dtype* at[P];
  Dtype acc_y[P], acc_x[P];
  for (int x = 0; x < P; ++x) {
    at[x] = f + t[x].y0 * width + t[x].x0;
    acc_y[x] = acc_x[x] = 0;
  }
  for (int c = 0; c < channels; ++c) {
    for (int x = 0; x < P; ++x) {
      Dtype d_y, d_x;
      dcd::bilinear_mix_grad(dcd::tap_values_inside(at[x] + c * hw, width),
                             t[x], &d_y, &d_x);
      acc_y[x] += g[c * hw + x] * d_y;
      acc_x[x] += g[c * hw + x] * d_x;
    }
  }
  for (int x = 0; x < P; ++x) {
    sy[x] = acc_y[x];
    sx[x] = acc_x[x];
  }
}

// The same for one pixel with taps outside the map (each tap checked).
template <typename Dtype>
void warp_grad_checked(const Dtype* f, const Dtype* g, int channels,
    int height, int width, const dcd::BilinearTaps<Dtype>& t, Dtype* sy,
    Dtype* sx) {
  const int hw = height * width;
  Dtype acc_y = 0, acc_x = 0;
  for (int c = 0; c < channels; ++c) {
    Dtype d_y, d_x;
    dcd::bilinear_sample_grad(f + c * hw, height, width, t, &d_y, &d_x);
    acc_y += g[c * hw] * d_y;
    acc_x += g[c * hw] * d_x;
  }
  *sy = acc_y;
  *sx = acc_x;
}

}  // namespace

template <typename Dtype>
void BilinearWarpLayer<Dtype>::Forward_cpu(const vector<Blob<Dtype>*>& bottom,
    const vector<Blob<Dtype>*>& top) {
  const int num = bottom[0]->num();
  const int channels = bottom[0]->channels();
  const int height = bottom[0]->height();
  const int width = bottom[0]->width();
  const int hw = height * width;
  const Dtype* f = bottom[0]->cpu_data();
  const Dtype* v = bottom[1]->cpu_data();
  Dtype* top_data = top[0]->mutable_cpu_data();
  const int tiles = (width + kTile - 1) / kTile;
  const int level = dcd::CpuIsaLevel();
#pragma omp parallel for collapse(3) schedule(static)
  for (int n = 0; n < num; ++n) {
    for (int i = 0; i < height; ++i) {
      for (int b = 0; b < tiles; ++b) {
        const int j0 = b * kTile;
        const int len = std::min(kTile, width - j0);
        dcd::BilinearTaps<Dtype> t[kTile];
        for (int x = 0; x < len; ++x) {
          const int p = i * width + j0 + x;
          t[x] = dcd::warp_position_taps(i, j0 + x, v[(n * 2) * hw + p],
              v[(n * 2 + 1) * hw + p], displacement_scale_, height, width);
        }
        const Dtype* fn = f + n * channels * hw;
        Dtype* out = top_data + n * channels * hw + i * width + j0;
        TileTaps<Dtype> tile;
        tile_taps(t, len, width, height, &tile);
        for (int c = 0; c < channels; ++c) {
          warp_tile_any(level, fn + c * hw, width, tile, out + c * hw);
          for (int e = len - tile.border; e < len; ++e) {
            const int x = tile.at[e];
            out[c * hw + x] =
                dcd::bilinear_sample(fn + c * hw, height, width, t[x]);
          }
        }
      }
    }
  }
}

template <typename Dtype>
void BilinearWarpLayer<Dtype>::Backward_cpu(const vector<Blob<Dtype>*>& top,
    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {
  if (!propagate_down[0] && !propagate_down[1]) { return; }
  const int num = bottom[0]->num();
  const int channels = bottom[0]->channels();
  const int height = bottom[0]->height();
  const int width = bottom[0]->width();
  const int hw = height * width;
  const Dtype s = displacement_scale_;
  const Dtype* f = bottom[0]->cpu_data();
  const Dtype* v = bottom[1]->cpu_data();
  const Dtype* top_diff = top[0]->cpu_diff();
  for (int n = 0; n < num; ++n) {
    image_taps(v, n, height, width, s, &cpu_taps_);
    const dcd::BilinearTaps<Dtype>* t = cpu_taps_.data();
    if (propagate_down[0]) {
      // Each element written once, its run summed in order: deterministic,
      // and the GPU's order (dcd::bilinear_warp_backward_f_elem). Blocks of
      // 8 channels x one row of targets split over the threads.
      build_tap_runs(cpu_taps_, height, width, &cpu_run_starts_,
                     &cpu_run_sources_, &cpu_run_weights_);
      const int* starts = cpu_run_starts_.data();
      const int* sources = cpu_run_sources_.data();
      const Dtype* weights = cpu_run_weights_.data();
      const Dtype* g = top_diff + n * channels * hw;
      Dtype* f_diff = bottom[0]->mutable_cpu_diff() + n * channels * hw;
      const int kBlock = 8;
      const int blocks = (channels + kBlock - 1) / kBlock;
#pragma omp parallel for collapse(2) schedule(static)
      for (int b = 0; b < blocks; ++b) {
        for (int i = 0; i < height; ++i) {
          const int c0 = b * kBlock;
          const int q0 = i * width, q1 = q0 + width;
          if (channels - c0 >= kBlock) {
            gather_tap_runs<Dtype, kBlock>(g + c0 * hw, hw, starts, sources,
                weights, q0, q1, f_diff + c0 * hw);
          } else {
            for (int c = c0; c < channels; ++c) {
              gather_tap_runs<Dtype, 1>(g + c * hw, hw, starts, sources,
                  weights, q0, q1, f_diff + c * hw);
            }
          }
        }
      }
    }
    if (propagate_down[1]) {
      // dL/dV(n, 0, p) = s sum_c g(n, c, p) dSample/dy, likewise x; each
      // pixel sums its channels in ascending order. Pixels go in runs of
      // kRun: as vectors where their taps sit side by side, else four at a
      // time, so four pixels' sums are added in turn and their latencies
      // overlap.
      Dtype* gy = bottom[1]->mutable_cpu_diff() + (n * 2) * hw;
      Dtype* gx = gy + hw;
      const Dtype* fn = f + n * channels * hw;
      const Dtype* gn = top_diff + n * channels * hw;
      const int level = dcd::CpuIsaLevel();
    #pragma omp parallel for schedule(static)
      for (int run = 0; run < (hw + kRun - 1) / kRun; ++run) {
        const int p = kRun * run;
        const int end = std::min(p + kRun, hw);
        const bool inside = end - p == kRun &&
            all_taps_inside(t + p, kRun, height, width);
        if (inside && warp_grad_run(level, fn, gn + p, channels, hw, width,
                                    t + p, gy + p, gx + p)) {
        } else if (inside) {
          for (int q = p; q < end; q += kRun / 2) {
            warp_grad_inside<Dtype, kRun / 2>(fn, gn + q, channels, hw, width,
                                              t + q, gy + q, gx + q);
          }
        } else {
          for (int q = p; q < end; ++q) {
            if (dcd::taps_inside(t[q], height, width)) {
              warp_grad_inside<Dtype, 1>(fn, gn + q, channels, hw, width,
                                         t + q, gy + q, gx + q);
            } else {
              warp_grad_checked(fn, gn + q, channels, height, width, t[q],
                                gy + q, gx + q);
            }
          }
        }
        for (int q = p; q < end; ++q) {
          gy[q] *= s;
          gx[q] *= s;
        }
      }
    }
  }
}

#ifdef CPU_ONLY
STUB_GPU(BilinearWarpLayer);
#endif

INSTANTIATE_CLASS(BilinearWarpLayer);
REGISTER_LAYER_CLASS(BilinearWarp);

}  // namespace caffe
