#include <algorithm>
#include <string>
#include <vector>

#include "caffe/layers/bilinear_warp_layer.hpp"
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
}

// One channel of a tile's inside pixels: out[x] = the sample, summed as
// dcd::bilinear_mix sums it.
template <typename Dtype>
void warp_tile(const Dtype* plane, int width, const TileTaps<Dtype>& tile,
    Dtype* out) {
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
          warp_tile(fn + c * hw, width, tile, out + c * hw);
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
      // pixel sums its channels in ascending order. Pixels go in groups of
      // kGroup, so the groups' sums are added in turn and their latencies
      // overlap.
      Dtype* gy = bottom[1]->mutable_cpu_diff() + (n * 2) * hw;
      Dtype* gx = gy + hw;
      const Dtype* fn = f + n * channels * hw;
      const Dtype* gn = top_diff + n * channels * hw;
      const int kGroup = 4;
#pragma omp parallel for schedule(static)
      for (int group = 0; group < (hw + kGroup - 1) / kGroup; ++group) {
        const int p = kGroup * group;
        const int end = std::min(p + kGroup, hw);
        if (end - p == kGroup &&
            all_taps_inside(t + p, kGroup, height, width)) {
          warp_grad_inside<Dtype, kGroup>(fn, gn + p, channels, hw, width,
                                          t + p, gy + p, gx + p);
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
