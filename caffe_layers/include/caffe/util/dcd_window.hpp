#ifndef CAFFE_UTIL_DCD_WINDOW_HPP_
#define CAFFE_UTIL_DCD_WINDOW_HPP_

#include <climits>
#include <string>

#include "glog/logging.h"

namespace caffe {
namespace dcd {

// The displacement window that CostVolume and SoftDisplacement share:
// max_displacement (square), or both max_displacement_h and _w, and the
// dilation. Param is CostVolumeParameter or SoftDisplacementParameter (the
// same field names); `layer` is "<type> layer <name>" for the messages.
struct DisplacementWindow {
  int dh;
  int dw;
  int dilation;
};

template <typename Param>
DisplacementWindow ReadDisplacementWindow(const Param& param,
                                          const std::string& layer) {
  // The proto fields are uint32: sizes are checked in 64 bits before they
  // become ints, so a huge window is refused here, by name, rather than as
  // "blob size exceeds INT_MAX" (or a negative size) in some Reshape.
  long long dh, dw;  // NOLINT(runtime/int)
  if (param.has_max_displacement()) {
    CHECK(!param.has_max_displacement_h() && !param.has_max_displacement_w())
        << layer << ": give either max_displacement or both "
        << "max_displacement_h and max_displacement_w, not both forms.";
    dh = dw = param.max_displacement();
  } else {
    CHECK(param.has_max_displacement_h() && param.has_max_displacement_w())
        << layer << ": max_displacement, or both max_displacement_h and "
        << "max_displacement_w, are required.";
    dh = param.max_displacement_h();
    dw = param.max_displacement_w();
  }
  const long long dilation = param.dilation();  // NOLINT(runtime/int)
  CHECK_GE(dilation, 1) << layer << ": dilation must be >= 1.";
  const long long channels = (2 * dh + 1) * (2 * dw + 1);  // NOLINT
  CHECK_LE(channels, INT_MAX) << layer << ": the displacement window of "
      << "max_displacement_h " << dh << " and max_displacement_w " << dw
      << " has (2 * " << dh << " + 1) x (2 * " << dw << " + 1) = " << channels
      << " displacements, more than a blob can hold (INT_MAX elements); "
      << "a window is a few pixels of the feature map.";
  CHECK_LE(dilation * (dh > dw ? dh : dw), INT_MAX / 4) << layer
      << ": max_displacement " << (dh > dw ? dh : dw) << " at dilation "
      << dilation << " reaches too far (more than INT_MAX / 4 pixels).";
  DisplacementWindow window;
  window.dh = static_cast<int>(dh);
  window.dw = static_cast<int>(dw);
  window.dilation = static_cast<int>(dilation);
  return window;
}

}  // namespace dcd
}  // namespace caffe

#endif  // CAFFE_UTIL_DCD_WINDOW_HPP_
