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
#endif

}  // namespace dcd
}  // namespace caffe

#endif  // CAFFE_UTIL_DCD_CPU_CAP_HPP_
