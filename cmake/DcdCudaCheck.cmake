# In a CPU build: compile the project's own .cu files with nvcc, so that CI
# (which has nvcc but no GPU) catches CUDA compile errors without the full
# CUDA build of Caffe. Target: dcd_cuda_check (not part of `all`).
find_package(CUDAToolkit QUIET)
include(CudaWheels)
set(DCD_CUDA_CHECK_ARCH "90" CACHE STRING "Architecture for the nvcc compile check")

file(GLOB_RECURSE _dcd_cu CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/caffe_layers/src/*.cu")
file(GLOB_RECURSE _dcd_headers CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/caffe_layers/include/*.hpp")

if(NOT CUDAToolkit_NVCC_EXECUTABLE OR NOT DCD_CUDA_WHEEL_DIR)
  add_custom_target(dcd_cuda_check
    COMMAND ${CMAKE_COMMAND} -E echo
      "dcd_cuda_check: cannot compile the .cu files here (nvcc: '${CUDAToolkit_NVCC_EXECUTABLE}', cuBLAS/cuRAND headers: '${DCD_CUDA_WHEEL_DIR}'); run tools/setup.sh --cuda-check and reconfigure"
    COMMAND ${CMAKE_COMMAND} -E false
    VERBATIM)  # the message's quotes and parentheses reach echo as they are
  return()
endif()

# Caffe's own include folders and definitions, minus CPU_ONLY.
set(_defs "$<FILTER:$<TARGET_PROPERTY:caffe,COMPILE_DEFINITIONS>,EXCLUDE,^CPU_ONLY$>")
set(_incs "$<TARGET_PROPERTY:caffe,INCLUDE_DIRECTORIES>")
file(MAKE_DIRECTORY "${CMAKE_BINARY_DIR}/dcd_cuda_check")
set(_objs "")
foreach(cu ${_dcd_cu})
  get_filename_component(name "${cu}" NAME_WE)
  set(obj "${CMAKE_BINARY_DIR}/dcd_cuda_check/${name}.o")
  file(RELATIVE_PATH rel "${PROJECT_SOURCE_DIR}/caffe_layers" "${cu}")
  add_custom_command(OUTPUT "${obj}"
    COMMAND "${CUDAToolkit_NVCC_EXECUTABLE}" -std=c++17 -O3
            -gencode "arch=compute_${DCD_CUDA_CHECK_ARCH},code=sm_${DCD_CUDA_CHECK_ARCH}"
            -Xcompiler -fPIC -Xcudafe --diag_suppress=cc_clobber_ignored
            "-D$<JOIN:${_defs},;-D>" "-I$<JOIN:${_incs},;-I>"
            -isystem "${DCD_CUDA_WHEEL_DIR}/include"
            -c "${CAFFE_TREE}/${rel}" -o "${obj}"
    DEPENDS "${cu}" ${_dcd_headers} caffeproto
    COMMENT "nvcc compile check: caffe_layers/${rel} (sm_${DCD_CUDA_CHECK_ARCH})"
    COMMAND_EXPAND_LISTS VERBATIM)
  list(APPEND _objs "${obj}")
endforeach()
add_custom_target(dcd_cuda_check DEPENDS ${_objs})
