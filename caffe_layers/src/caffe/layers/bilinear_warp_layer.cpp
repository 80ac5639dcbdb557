#include <algorithm>
#include <climits>
#include <cstdint>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__)
#include <immintrin.h>
#endif

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
// (they depend on V only), and with `weights` (else NULL) their weights
// bilinear_weight(k), plane k at k H W. Rows split over the threads.
template <typename Dtype>
void image_taps(const Dtype* v, int n, int height, int width, Dtype s,
    vector<dcd::BilinearTaps<Dtype> >* taps, vector<Dtype>* weights) {
  const int hw = height * width;
  taps->resize(hw);
  dcd::BilinearTaps<Dtype>* t = taps->data();
  if (weights) { weights->resize(4 * hw); }
  Dtype* w = weights ? weights->data() : NULL;
#pragma omp parallel for schedule(static)
  for (int i = 0; i < height; ++i) {
    for (int p = i * width; p < (i + 1) * width; ++p) {
      t[p] = dcd::warp_taps(v, n, p, height, width, s);
      for (int k = 0; w && k < 4; ++k) {
        w[k * hw + p] = dcd::bilinear_weight(k, t[p].ay, t[p].ax);
      }
    }
  }
}

// The runs of the gradient to F (dcd_kernels.hpp, "Gradient to F"): for
// each target pixel q, the (source pixel, weight) pairs of the taps that
// land on q, in ascending source pixel and tap, by a counting sort
// (tap_weights: image_taps' planes). The threads count and place the taps
// of contiguous ranges of source pixels, and each target's entries from a
// thread follow those of the threads before it: the order of a serial
// sort, which on one thread took 0.14 ms of the 0.9 ms backward (112 x 112)
// while the other cores waited. At most a thread per 1024 pixels (a small
// map's sort takes microseconds). counts: scratch, hw ints per thread.
template <typename Dtype>
void build_tap_runs(const vector<dcd::BilinearTaps<Dtype> >& taps,
    const Dtype* tap_weights, int height, int width, vector<int>* starts,
    vector<int>* sources, vector<Dtype>* weights, vector<int>* counts) {
  const int hw = height * width;
#ifdef _OPENMP
  const int threads = std::max(1, std::min(omp_get_max_threads(), hw / 1024));
#else
  const int threads = 1;
#endif
  starts->resize(hw + 1);
  counts->assign(static_cast<size_t>(threads) * hw, 0);
  int* start = starts->data();
#pragma omp parallel num_threads(threads)
  {
    // The team OpenMP gave (it may give fewer threads than asked for).
#ifdef _OPENMP
    const int t = omp_get_thread_num();
    const int team = omp_get_num_threads();
#else
    const int t = 0;
    const int team = 1;
#endif
    const int p_begin = static_cast<int>(static_cast<int64_t>(hw) * t /
                                         team);
    const int p_end = static_cast<int>(static_cast<int64_t>(hw) * (t + 1) /
                                       team);
    int* count = counts->data() + static_cast<size_t>(t) * hw;
    for (int p = p_begin; p < p_end; ++p) {
      for (int k = 0; k < 4; ++k) {
        const int q = dcd::tap_index(taps[p], k, height, width);
        if (q >= 0) { ++count[q]; }
      }
    }
#pragma omp barrier
#pragma omp single
    {
      // Each thread's count becomes where its next entry for q goes.
      int next = 0;
      for (int q = 0; q < hw; ++q) {
        start[q] = next;
        for (int u = 0; u < team; ++u) {
          int* c = counts->data() + static_cast<size_t>(u) * hw + q;
          const int n = *c;
          *c = next;
          next += n;
        }
      }
      start[hw] = next;
      sources->resize(next);
      weights->resize(next);
    }
    for (int p = p_begin; p < p_end; ++p) {
      for (int k = 0; k < 4; ++k) {
        const int q = dcd::tap_index(taps[p], k, height, width);
        if (q < 0) { continue; }
        const int e = count[q]++;
        (*sources)[e] = p;
        (*weights)[e] = tap_weights[k * hw + p];
      }
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

const int kRun = 8;  // pixels per vector run (below)

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
// the same along a row) read each tap of a channel as one vector load. On
// x86-64 with AVX2 those runs are computed 8 floats at a time; the sums are
// the scalar code's, lane by lane, in the same order and without FMA
// (target "avx2" alone), so the results are the same bits. Gathers
// measured slower than scalar loads on Zen 3 (docs/ASSUMPTIONS.md,
// "BilinearWarp on the CPU").

// The offset of pixel 0's tap (y0, x0) if the kRun pixels' taps sit side
// by side, else kNotSideBySide (an offset of taps outside the map, at its
// borders, can be below 0).
const int kNotSideBySide = INT_MIN;
template <typename Dtype>
int run_offset(const dcd::BilinearTaps<Dtype>* t, int width) {
  const int offset = t[0].y0 * width + t[0].x0;
  for (int x = 1; x < kRun; ++x) {
    if (t[x].y0 * width + t[x].x0 != offset + x) { return kNotSideBySide; }
  }
  return offset;
}

// The forward goes over blocks of kBlockRuns runs of kRun pixels: first
// the runs whose taps sit side by side, each over every channel, then the
// other pixels, a group of channels (channel_group) at a time over all of
// them. Pixel by pixel over all 64 channels, a 112 x 112 map took 1.3-1.4
// ns an output against 0.9 at 113 x 112: its planes lie 49 KiB apart,
// every fourth a multiple of 4 KiB from another, so a pixel's lines of the
// 64 planes meet 16 to an L1 set, more than its ways, and the figures fit
// the next pixel missing the lines it shares with this one
// (docs/ASSUMPTIONS.md, "BilinearWarp on the CPU").
const int kBlockRuns = 8;

// Channels per group of the pixel-by-pixel forward: as many as put at most
// 8 planes' lines of a tap row in any one L1 set (64-byte lines, 4 KiB of
// sets: planes whose distance is a multiple of 4 KiB share sets).
inline int channel_group(int channels, int hw, int elem_size) {
  const int stride = static_cast<int>(static_cast<size_t>(hw) * elem_size %
                                      4096);
  int period = 1;  // planes until one shares the sets of plane 0
  while (period < 64 && stride * period % 4096 != 0) { period *= 2; }
  return std::max(1, std::min(channels, 8 * period));
}

// A block's runs whose taps sit side by side: each one's first pixel in
// the block, its first tap's offset in the plane, and whether all its taps
// lie inside the map.
struct VectorRuns {
  int count;
  int first[kBlockRuns];
  int offset[kBlockRuns];
  bool inside[kBlockRuns];
};

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

// A run reads rows y0 and y0 + 1 of each channel's plane (at: its first
// tap in one plane); the next row of pixels reads y0 + 1 again and, first,
// y0 + 2, whose line is asked into L2 here. The runs go through 64 planes
// 49 KiB apart, which the hardware prefetchers do not follow, and waited on
// that first read (docs/ASSUMPTIONS.md, "BilinearWarp on the CPU").
inline void prefetch_next_rows_line(const float* at, int width) {
  __builtin_prefetch(at + 2 * width, 0, 2);
}

// Runs at the map's borders, whose taps sit side by side but not all
// inside: which lanes of each tap lie inside (all bits) or not (0).
__attribute__((target("avx2"))) inline void border_masks(
    const dcd::BilinearTaps<float>* t, int height, int width,
    __m256i (&mask)[4]) {
  int lanes[4][kRun];
  for (int x = 0; x < kRun; ++x) {
    for (int k = 0; k < 4; ++k) {
      lanes[k][x] = dcd::tap_index(t[x], k, height, width) >= 0 ? -1 : 0;
    }
  }
  for (int k = 0; k < 4; ++k) {
    mask[k] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lanes[k]));
  }
}

// p + n as an address (a border run's first tap can lie before its plane).
inline const float* shifted(const float* p, ptrdiff_t n) {
  return reinterpret_cast<const float*>(reinterpret_cast<uintptr_t>(p) +
                                        n * sizeof(float));
}

// A tap's vector of a run (p: lane 0's): one load, or at the borders
// (kBorder) a masked load, whose lanes outside the map are 0, as
// dcd::plane_at gives them, and are not read.
template <bool kBorder>
__attribute__((target("avx2"))) inline Float8 load_tap(const float* p,
    const __m256i& mask) {
  if (kBorder) { return reinterpret_cast<Float8>(_mm256_maskload_ps(p, mask)); }
  return load8(p);
}

// One channel of a run whose taps sit side by side from `at` (out: its
// pixel 0), summed as dcd::bilinear_mix sums: the bits of the
// pixel-by-pixel path, checked (kBorder: some taps outside the map) or not.
template <bool kBorder>
__attribute__((target("avx2"))) inline void warp_run_channel(const float* at,
    int width, const Float8 (&w)[4], const __m256i (&mask)[4], float* out) {
  if (!kBorder) { prefetch_next_rows_line(at, width); }
  store8(out, w[0] * load_tap<kBorder>(at, mask[0])
      + w[1] * load_tap<kBorder>(shifted(at, 1), mask[1])
      + w[2] * load_tap<kBorder>(shifted(at, width), mask[2])
      + w[3] * load_tap<kBorder>(shifted(at, width + 1), mask[3]));
}

// The forward of a block's vector runs (runs: their first pixels, first
// taps' offsets and whether all taps lie inside; t and out at the block's
// pixel 0), each run over every channel. (In groups of channels as the
// pixels below, a batch of 8 112 x 112 images with one displacement
// everywhere took 2.9 ms against 2.1.)
__attribute__((target("avx2"))) void warp_runs_avx2(const float* f,
    int channels, int hw, int height, int width, const VectorRuns& runs,
    const dcd::BilinearTaps<float>* t, float* out) {
  Float8 w[kBlockRuns][4];
  __m256i mask[kBlockRuns][4];
  for (int r = 0; r < runs.count; ++r) {
    const dcd::BilinearTaps<float>* tr = t + runs.first[r];
    for (int x = 0; x < kRun; ++x) {
      for (int k = 0; k < 4; ++k) {
        w[r][k][x] = dcd::bilinear_weight(k, tr[x].ay, tr[x].ax);
      }
    }
    if (!runs.inside[r]) { border_masks(tr, height, width, mask[r]); }
  }
  for (int r = 0; r < runs.count; ++r) {
    const float* at = shifted(f, runs.offset[r]);
    float* o = out + runs.first[r];
    if (runs.inside[r]) {
      for (int c = 0; c < channels; ++c) {
        warp_run_channel<false>(at + c * hw, width, w[r], mask[r],
                                o + c * hw);
      }
    } else {
      for (int c = 0; c < channels; ++c) {
        warp_run_channel<true>(shifted(f + c * hw, runs.offset[r]), width,
                               w[r], mask[r], o + c * hw);
      }
    }
  }
}

// warp_grad_inside<float, kRun> for the same runs (kBorder: the checked
// pixel-by-pixel path's bits).
template <bool kBorder>
__attribute__((target("avx2"))) void warp_grad_run_avx2(const float* f,
    const float* g, int channels, int hw, int height, int width, int offset,
    const dcd::BilinearTaps<float>* t, float* sy, float* sx) {
  Float8 ax, ay;
  for (int x = 0; x < kRun; ++x) {
    ax[x] = t[x].ax;
    ay[x] = t[x].ay;
  }
  __m256i mask[4];
  if (kBorder) { border_masks(t, height, width, mask); }
  const Float8 one_ax = 1.0f - ax, one_ay = 1.0f - ay;
  Float8 acc_y = ax - ax, acc_x = acc_y;
  for (int c = 0; c < channels; ++c) {
    const float* at = shifted(f + c * hw, offset);
    if (!kBorder) {
      prefetch_next_rows_line(at, width);
      // And g's line that the next row of pixels reads.
      __builtin_prefetch(g + c * hw + width, 0, 2);
    }
    const Float8 v00 = load_tap<kBorder>(at, mask[0]);
    const Float8 v01 = load_tap<kBorder>(shifted(at, 1), mask[1]);
    const Float8 v10 = load_tap<kBorder>(shifted(at, width), mask[2]);
    const Float8 v11 = load_tap<kBorder>(shifted(at, width + 1), mask[3]);
    const Float8 d_y = one_ax * (v10 - v00) + ax * (v11 - v01);
    const Float8 d_x = one_ay * (v01 - v00) + ay * (v11 - v10);
    const Float8 gc = load8(g + c * hw);
    acc_y += gc * d_y;
    acc_x += gc * d_x;
  }
  store8(sy, acc_y);
  store8(sx, acc_x);
}

// gather_tap_runs for kRun targets whose runs are regular (regular_sources:
// `first`), cb channels: each target's four terms from 0 in its run's
// order, as vectors. `tap_weights`: bilinear_weight(k) of every pixel,
// plane k at k hw.
__attribute__((target("avx2"))) void gather_regular_avx2(const float* g,
    int cb, int hw, int width, int first, const float* tap_weights,
    float* f_diff) {
  const int step[4] = {0, 1, width, width + 1};
  Float8 w[4];
  for (int e = 0; e < 4; ++e) {
    w[e] = load8(tap_weights + (3 - e) * hw + first + step[e]);
  }
  for (int c = 0; c < cb; ++c) {
    const float* gc = g + c * hw + first;
    Float8 acc = w[0] - w[0];
    for (int e = 0; e < 4; ++e) { acc += load8(gc + step[e]) * w[e]; }
    store8(f_diff + c * hw, acc);
  }
}
#endif  // DCD_X86_DISPATCH

// The forward of a block's pixels x = pixels[0 .. n) one by one (t and
// out at the block's pixel 0), each group of `group` channels
// (channel_group) over all of them; taps all inside the map (nearly every
// pixel) read without checks.
template <typename Dtype>
void warp_pixels(const Dtype* f, int channels, int group, int hw,
    int height, int width, const dcd::BilinearTaps<Dtype>* t,
    const int* pixels, int n, Dtype* out) {
  bool inside[kBlockRuns * kRun];
  for (int i = 0; i < n; ++i) {
    inside[i] = dcd::taps_inside(t[pixels[i]], height, width);
  }
  for (int c0 = 0; c0 < channels; c0 += group) {
    const int c1 = std::min(channels, c0 + group);
    for (int i = 0; i < n; ++i) {
      const dcd::BilinearTaps<Dtype>& tp = t[pixels[i]];
      Dtype* o = out + pixels[i];
      if (inside[i]) {
        const Dtype* at = f + tp.y0 * width + tp.x0;
        for (int c = c0; c < c1; ++c) {
          o[c * hw] = dcd::bilinear_mix(
              dcd::tap_values_inside(at + c * hw, width), tp);
        }
      } else {
        for (int c = c0; c < c1; ++c) {
          o[c * hw] = dcd::bilinear_sample(f + c * hw, height, width, tp);
        }
      }
    }
  }
}

// Every pixel of a block of n one by one.
template <typename Dtype>
void warp_block_pixels(const Dtype* f, int channels, int group, int hw,
    int height, int width, const dcd::BilinearTaps<Dtype>* t, int n,
    Dtype* out) {
  int pixels[kBlockRuns * kRun];
  for (int x = 0; x < n; ++x) { pixels[x] = x; }
  warp_pixels(f, channels, group, hw, height, width, t, pixels, n, out);
}

// The forward of a block of n <= kBlockRuns kRun pixels: its runs whose
// taps sit side by side as vectors where the CPU (`level`,
// dcd::CpuIsaLevel) has AVX2 (with masked loads where some taps lie outside
// the map), the other pixels one by one.
inline void warp_block(int level, const float* f, int channels, int group,
    int hw, int height, int width, const dcd::BilinearTaps<float>* t, int n,
    float* out) {
#if DCD_X86_DISPATCH
  if (level >= 1) {
    VectorRuns runs;
    runs.count = 0;
    int pixels[kBlockRuns * kRun];
    int n_pixels = 0;
    for (int x0 = 0; x0 < n; x0 += kRun) {
      const int len = std::min(kRun, n - x0);
      const int offset = len == kRun ? run_offset(t + x0, width)
                                     : kNotSideBySide;
      if (offset == kNotSideBySide) {
        for (int x = x0; x < x0 + len; ++x) { pixels[n_pixels++] = x; }
        continue;
      }
      runs.first[runs.count] = x0;
      runs.offset[runs.count] = offset;
      runs.inside[runs.count] = all_taps_inside(t + x0, kRun, height, width);
      ++runs.count;
    }
    if (runs.count > 0) {
      warp_runs_avx2(f, channels, hw, height, width, runs, t, out);
    }
    warp_pixels(f, channels, group, hw, height, width, t, pixels, n_pixels,
                out);
    return;
  }
#endif
  warp_block_pixels(f, channels, group, hw, height, width, t, n, out);
}

inline void warp_block(int, const double* f, int channels, int group,
    int hw, int height, int width, const dcd::BilinearTaps<double>* t, int n,
    double* out) {
  warp_block_pixels(f, channels, group, hw, height, width, t, n, out);
}

// The same for the gradient to V before the scale s.
inline bool warp_grad_run(int level, const float* f, const float* g,
    int channels, int hw, int height, int width,
    const dcd::BilinearTaps<float>* t, bool inside, float* sy, float* sx) {
#if DCD_X86_DISPATCH
  if (level < 1) { return false; }
  const int offset = run_offset(t, width);
  if (offset == kNotSideBySide) { return false; }
  if (inside) {
    warp_grad_run_avx2<false>(f, g, channels, hw, height, width, offset, t,
                              sy, sx);
  } else {
    warp_grad_run_avx2<true>(f, g, channels, hw, height, width, offset, t,
                             sy, sx);
  }
  return true;
#else
  return false;
#endif
}

inline bool warp_grad_run(int, const double*, const double*, int, int, int,
    int, const dcd::BilinearTaps<double>*, bool, double*, double*) {
  return false;
}

// The first source pixel S if targets q .. q + kRun - 1 each receive
// exactly four taps, from pixels S + x, S + x + 1, S + x + W and
// S + x + W + 1 through their taps 3, 2, 1 and 0 (in that order in the
// targets' runs, ascending pixels): what a displacement whose whole-pixel
// part is the same around the targets gives. Else -1.
template <typename Dtype>
int regular_sources(const dcd::BilinearTaps<Dtype>* t, const int* starts,
    const int* sources, int q, int height, int width) {
  const int hw = height * width;
  if (width < 2 || q + kRun > hw || starts[q + 1] - starts[q] != 4) {
    return -1;
  }
  const int first = sources[starts[q]];
  const int step[4] = {0, 1, width, width + 1};
  for (int x = 0; x < kRun; ++x) {
    if (starts[q + x + 1] - starts[q + x] != 4) { return -1; }
    for (int e = 0; e < 4; ++e) {
      const int p = first + x + step[e];
      if (sources[starts[q + x] + e] != p ||
          dcd::tap_index(t[p], 3 - e, height, width) != q + x) {
        return -1;
      }
    }
  }
  return first;
}

// The same for the gradient to F of kRun targets with regular runs.
inline bool gather_regular(int level, const float* g, int cb, int hw,
    int width, int first, const float* tap_weights, float* f_diff) {
#if DCD_X86_DISPATCH
  if (level < 1 || first < 0) { return false; }
  gather_regular_avx2(g, cb, hw, width, first, tap_weights, f_diff);
  return true;
#else
  return false;
#endif
}

inline bool gather_regular(int, const double*, int, int, int, int,
    const double*, double*) {
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
  const int level = dcd::CpuIsaLevel();
  // Blocks of kBlockRuns runs of kRun pixels, split over the threads.
  const int block = kBlockRuns * kRun;
  const int blocks = (hw + block - 1) / block;
  const int group = channel_group(channels, hw, sizeof(Dtype));
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < num; ++n) {
    for (int b = 0; b < blocks; ++b) {
      const int p0 = b * block;
      const int end = std::min(p0 + block, hw);
      dcd::BilinearTaps<Dtype> t[kBlockRuns * kRun];
      for (int p = p0; p < end; ++p) {
        t[p - p0] = dcd::warp_taps(v, n, p, height, width,
                                   displacement_scale_);
      }
      warp_block(level, f + n * channels * hw, channels, group, hw, height,
                 width, t, end - p0, top_data + n * channels * hw + p0);
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
    image_taps(v, n, height, width, s, &cpu_taps_,
               propagate_down[0] ? &cpu_tap_weights_ : NULL);
    const dcd::BilinearTaps<Dtype>* t = cpu_taps_.data();
    if (propagate_down[0]) {
      // Each element written once, its run summed in order: deterministic,
      // and the GPU's order (dcd::bilinear_warp_backward_f_elem). Blocks of
      // 8 channels x kRun targets split over the threads; targets whose
      // runs are regular go as vectors.
      const Dtype* tap_weights = cpu_tap_weights_.data();
      build_tap_runs(cpu_taps_, tap_weights, height, width, &cpu_run_starts_,
                     &cpu_run_sources_, &cpu_run_weights_, &cpu_run_counts_);
      const int* starts = cpu_run_starts_.data();
      const int* sources = cpu_run_sources_.data();
      const Dtype* weights = cpu_run_weights_.data();
      const int groups = (hw + kRun - 1) / kRun;
      cpu_regular_.resize(groups);
#pragma omp parallel for schedule(static)
      for (int m = 0; m < groups; ++m) {
        cpu_regular_[m] = regular_sources(t, starts, sources, m * kRun,
                                          height, width);
      }
      const Dtype* g = top_diff + n * channels * hw;
      Dtype* f_diff = bottom[0]->mutable_cpu_diff() + n * channels * hw;
      const int kBlock = 8;
      const int blocks = (channels + kBlock - 1) / kBlock;
      const int level = dcd::CpuIsaLevel();
#pragma omp parallel for collapse(2) schedule(static)
      for (int b = 0; b < blocks; ++b) {
        for (int m = 0; m < groups; ++m) {
          const int c0 = b * kBlock, cb = std::min(kBlock, channels - c0);
          const int q0 = m * kRun, q1 = std::min(hw, q0 + kRun);
          if (gather_regular(level, g + c0 * hw, cb, hw, width,
                             cpu_regular_[m], tap_weights,
                             f_diff + c0 * hw + q0)) {
            continue;
          }
          if (cb == kBlock) {
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
      // kRun: as vectors where their taps sit side by side (at the map's
      // borders too, with masked loads), else four at a time, so four
      // pixels' sums are added in turn and their latencies overlap.
      Dtype* gy = bottom[1]->mutable_cpu_diff() + (n * 2) * hw;
      Dtype* gx = gy + hw;
      const Dtype* fn = f + n * channels * hw;
      const Dtype* gn = top_diff + n * channels * hw;
      const int level = dcd::CpuIsaLevel();
#pragma omp parallel for schedule(static)
      for (int run = 0; run < (hw + kRun - 1) / kRun; ++run) {
        const int p = kRun * run;
        const int end = std::min(p + kRun, hw);
        const bool whole = end - p == kRun;
        const bool inside = whole &&
            all_taps_inside(t + p, kRun, height, width);
        const bool vectors = whole && warp_grad_run(level, fn, gn + p,
            channels, hw, height, width, t + p, inside, gy + p, gx + p);
        if (!vectors && inside) {
          for (int q = p; q < end; q += kRun / 2) {
            warp_grad_inside<Dtype, kRun / 2>(fn, gn + q, channels, hw,
                                              width, t + q, gy + q, gx + q);
          }
        } else if (!vectors) {
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
