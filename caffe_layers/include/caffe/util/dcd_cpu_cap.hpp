#ifndef CAFFE_UTIL_DCD_CPU_CAP_HPP_
#define CAFFE_UTIL_DCD_CPU_CAP_HPP_

#include <algorithm>
#include <cstdlib>
#include <string>

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

}  // namespace dcd
}  // namespace caffe

#endif  // CAFFE_UTIL_DCD_CPU_CAP_HPP_
