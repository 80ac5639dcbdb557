#ifndef CAFFE_UTIL_DCD_WINDOW_HPP_
#define CAFFE_UTIL_DCD_WINDOW_HPP_

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
  DisplacementWindow window;
  if (param.has_max_displacement()) {
    CHECK(!param.has_max_displacement_h() && !param.has_max_displacement_w())
        << layer << ": give either max_displacement or both "
        << "max_displacement_h and max_displacement_w, not both forms.";
    window.dh = window.dw = param.max_displacement();
  } else {
    CHECK(param.has_max_displacement_h() && param.has_max_displacement_w())
        << layer << ": max_displacement, or both max_displacement_h and "
        << "max_displacement_w, are required.";
    window.dh = param.max_displacement_h();
    window.dw = param.max_displacement_w();
  }
  window.dilation = param.dilation();
  CHECK_GE(window.dilation, 1) << layer << ": dilation must be >= 1.";
  return window;
}

}  // namespace dcd
}  // namespace caffe

#endif  // CAFFE_UTIL_DCD_WINDOW_HPP_
