#ifndef CAFFE_UTIL_DCD_CPU_CAP_HPP_
#define CAFFE_UTIL_DCD_CPU_CAP_HPP_

#include <algorithm>
#include <cstdlib>
#include <string>

// On x86-64 with GCC or Clang the DCD layers' hot CPU loops are compiled
// three times, for the baseline ISA (what Caffe is built for), AVX2+FMA and
// AVX-512+FMA, and CpuIsaLevel() picks one at run time. DCD_NO_X86_DISPATCH
// builds the plain loops alone, as other machines and compilers do
// (tests/test_build.py compiles the layers so).
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && \
    !defined(__CUDACC__) && !defined(__INTEL_COMPILER) && \
    !defined(DCD_NO_X86_DISPATCH)
#define DCD_X86_DISPATCH 1
#define DCD_INLINE inline __attribute__((always_inline))
#else
#define DCD_X86_DISPATCH 0
#define DCD_INLINE inline
#endif

namespace caffe {
namespace dcd {

// `level` (2 = AVX-512, 1 = AVX2, 0 = baseline: the best vector code the
// CPU runs) as DCD_CPU_KERNELS=avx2 or =baseline in the environment caps it
// (never raises it), so the tests run the narrower variants on a wider CPU.
// CostVolume's kernels and LinearResize's rows read it alike.
inline int CapCpuLevel(int level) {
  const char* cap = std::getenv("DCD_CPU_KERNELS");
  if (cap && std::string(cap) == "baseline") return 0;
  if (cap && std::string(cap) == "avx2") return std::min(level, 1);
  return level;
}

// 2 = AVX-512 + FMA, 1 = AVX2 + FMA, 0 = baseline, capped by
// DCD_CPU_KERNELS (CapCpuLevel).
inline int CpuIsaLevel() {
  int level = 0;
#if DCD_X86_DISPATCH
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma")) {
    level = 2;
  } else if (__builtin_cpu_supports("avx2") &&
             __builtin_cpu_supports("fma")) {
    level = 1;
  }
#endif
  return CapCpuLevel(level);
}

#if DCD_X86_DISPATCH
// VB bytes of Dtype as one GCC/Clang vector: inside a function compiled for
// AVX2 (VB 32) or AVX-512 (VB 64), one register.
template <typename Dtype, int VB> struct VecOf {
  typedef Dtype type __attribute__((vector_size(VB)));
};

// The narrower vectors (bytes) for the columns or pixels left after a
// row's whole vectors (the last 8 floats of a 56-wide row under AVX-512, 4
// of a 60-wide one under AVX2): a half and then a quarter vector where they
// fill one, then the quarter vector once more ending at the row's last
// element (it rewrites up to 3 of them). The same sums in the same order, where
// one element at a time waited on each multiply-add in turn (CostVolume's
// gradients at 56x56, d=7 took 6x the time per multiply-add of 112x112;
// docs/ASSUMPTIONS.md, "CPU kernel figures"). A width equal to the one
// above it is not used.
template <int VB> struct NarrowVec {
  static const int kHalf = VB > 16 ? VB / 2 : VB;
  static const int kQuarter = VB > 32 ? VB / 4 : kHalf;
};

// Stores one vector; with `stream`, a non-temporal store (vmovntps, AVX and
// up) that writes the line to memory without first reading it into the
// caches. CostVolume's forward streams the cost volume and
// SoftDisplacement's backward its gradient, each far larger than L2 (11 MiB
// per 112 x 112 image at d = 7): written through the caches, the cost
// volume evicted the rows of F_b that the next output rows read, and each
// line of the gradient was first read from memory only to be overwritten
// (docs/ASSUMPTIONS.md, "CPU kernel figures"). Callers stream whole
// 64-byte-aligned lines only (stream_line), and end with stream_fence.
// `v` by value: taken by reference, a sum of an array of sums made GCC keep
// the whole array in memory too, stored again at every channel step.
template <int VB, bool kStreams = (VB >= 32)> struct VecStore {
  template <typename V>
  static DCD_INLINE void put(void* p, V v, bool) {
    __builtin_memcpy(p, &v, sizeof(V));
  }
};
template <int VB> struct VecStore<VB, true> {
  template <typename V>
  static DCD_INLINE void put(void* p, V v, bool stream) {
    if (stream) {
      __asm__("vmovntps %1, %0" : "=m"(*static_cast<V*>(p)) : "v"(v));
    } else {
      __builtin_memcpy(p, &v, sizeof(V));
    }
  }
};

// True when `stream` and out starts a 64-byte line.
template <typename Dtype>
DCD_INLINE bool stream_line(bool stream, const Dtype* out) {
  return stream && (reinterpret_cast<size_t>(out) & 63) == 0;
}
#endif

// Streaming stores are weakly ordered: each thread drains its own before
// the threads join and others read what they wrote (nothing to drain
// without VecStore's).
inline void stream_fence() {
#if DCD_X86_DISPATCH
  __asm__ __volatile__("sfence" ::: "memory");
#endif
}

// Whether a layer streams an output of `bytes` (VecStore): one larger than
// the caches is, a smaller one stays in cache for the next layer.
inline bool streams_output(size_t bytes) { return bytes >= (size_t(4) << 20); }

}  // namespace dcd
}  // namespace caffe

#endif  // CAFFE_UTIL_DCD_CPU_CAP_HPP_
