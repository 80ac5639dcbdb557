# CUDA settings for the pinned Caffe: a manual architecture list, C++17 for
# nvcc (CUDA 13's headers need it), cuBLAS/cuRAND from NVIDIA's PyPI wheels
# when the toolkit lacks them, NCCL and cuDNN (DCD_CUDNN) from their wheels.

# CUDA 13 dropped Volta (sm_70); with CUDA 12 or older, 70 can be added back:
# -DDCD_CUDA_ARCH_BIN="70 75 80 90".
set(DCD_CUDA_ARCH_BIN "75 80 90" CACHE STRING "GPU architectures to build binaries for")
set(DCD_CUDA_ARCH_PTX "90" CACHE STRING "PTX architectures (JIT for newer GPUs)")
dcd_force(CPU_ONLY BOOL OFF)
dcd_force(CUDA_ARCH_NAME STRING Manual)
dcd_force(CUDA_ARCH_BIN STRING "${DCD_CUDA_ARCH_BIN}")
dcd_force(CUDA_ARCH_PTX STRING "${DCD_CUDA_ARCH_PTX}")
set(CUDA_NVCC_FLAGS "-std=c++17;-Xcompiler;-fPIC" CACHE STRING "Extra nvcc flags" FORCE)

find_package(CUDAToolkit REQUIRED)
message(STATUS "DCD-Caffe: CUDA toolkit ${CUDAToolkit_VERSION} in ${CUDAToolkit_BIN_DIR}")

# cuBLAS and cuRAND: the toolkit's if present, else the nvidia-cublas and
# nvidia-curand wheels installed in the project's virtualenv (tools/setup.sh
# --cuda). The wheels ship only versioned .so files, so link by full path.
include(CudaWheels)

# FindCUDA (used by Caffe) searches for libcublas.so / libcurand.so, which the
# wheels do not have; a folder of links under the build tree gives it those
# names and keeps the versioned ones for the run-time linker.
set(_libdir "${CMAKE_BINARY_DIR}/cuda-wheel-libs")
foreach(lib cublas curand)
  find_library(DCD_${lib}_TOOLKIT NAMES ${lib} HINTS ${CUDAToolkit_LIBRARY_DIR} NO_DEFAULT_PATH)
  if(DCD_${lib}_TOOLKIT)
    message(STATUS "DCD-Caffe: ${lib} from the toolkit: ${DCD_${lib}_TOOLKIT}")
    continue()
  endif()
  file(GLOB _so "${DCD_CUDA_WHEEL_DIR}/lib/lib${lib}*.so.*")
  if(NOT _so)
    message(FATAL_ERROR "No ${lib} library: the CUDA toolkit has none and no nvidia-${lib} "
                        "wheel was found. Run 'tools/setup.sh --cuda' (installs the wheels into "
                        ".venv) or pass -DDCD_CUDA_WHEEL_DIR=<folder with include/ and lib/>.")
  endif()
  file(MAKE_DIRECTORY "${_libdir}")
  foreach(f ${_so})
    get_filename_component(n "${f}" NAME)
    file(CREATE_LINK "${f}" "${_libdir}/${n}" SYMBOLIC)
    string(REGEX REPLACE "\\.so\\..*$" ".so" unversioned "${n}")
    file(CREATE_LINK "${f}" "${_libdir}/${unversioned}" SYMBOLIC)
  endforeach()
  list(APPEND CMAKE_LIBRARY_PATH "${_libdir}")
  message(STATUS "DCD-Caffe: ${lib} from the nvidia-${lib} wheel: ${_so}")
endforeach()
if(DCD_CUDA_WHEEL_DIR)
  include_directories(SYSTEM "${DCD_CUDA_WHEEL_DIR}/include")
endif()

# NCCL and cuDNN: from NVIDIA's wheels in the virtualenv (nvidia-nccl-cu13,
# nvidia-cudnn-cu13; tools/setup.sh --cuda), else from the system (NCCL_DIR,
# CUDNN_ROOT). Like cuBLAS, the wheels carry only versioned .so files.
function(dcd_wheel_library pkg lib header out_lib out_inc)
  set(_dir "${DCD_NVIDIA_WHEELS_DIR}/${pkg}")
  file(GLOB _so "${_dir}/lib/lib${lib}.so.*")
  if(_so AND EXISTS "${_dir}/include/${header}")
    list(GET _so 0 _so)
    file(MAKE_DIRECTORY "${_libdir}")
    get_filename_component(_versioned "${_so}" NAME)
    file(CREATE_LINK "${_so}" "${_libdir}/${_versioned}" SYMBOLIC)  # what the binaries load
    file(CREATE_LINK "${_so}" "${_libdir}/lib${lib}.so" SYMBOLIC)   # what the linker looks for
    set(${out_lib} "${_libdir}/lib${lib}.so" PARENT_SCOPE)
    set(${out_inc} "${_dir}/include" PARENT_SCOPE)
  endif()
endfunction()

dcd_wheel_library(nccl nccl nccl.h _nccl_lib _nccl_inc)
if(_nccl_lib)
  # Caffe's FindNCCL keeps values already in the cache.
  dcd_force(NCCL_LIBRARIES FILEPATH "${_nccl_lib}")
  dcd_force(NCCL_INCLUDE_DIR PATH "${_nccl_inc}")
  set(DCD_NCCL_LIBRARY "${_nccl_lib}")
else()
  find_library(DCD_NCCL_LIBRARY NAMES nccl HINTS ENV NCCL_DIR PATH_SUFFIXES lib)
endif()
if(DCD_NCCL_LIBRARY)
  dcd_force(USE_NCCL BOOL ON)
  message(STATUS "DCD-Caffe: NCCL ${DCD_NCCL_LIBRARY}: multi-GPU training (caffe train --gpu all) enabled")
else()
  dcd_force(USE_NCCL BOOL OFF)
  message(STATUS "DCD-Caffe: NCCL not found, multi-GPU training disabled "
                 "(tools/setup.sh --cuda installs the nvidia-nccl-cu13 wheel)")
endif()

# cuDNN: Caffe's CuDNN layers (convolution, pooling, ReLU, ...), ported to
# the cuDNN 8/9 API by caffe_layers/patches/0003-*. Default: on when found.
dcd_wheel_library(cudnn cudnn cudnn.h _cudnn_lib _cudnn_inc)
if(NOT _cudnn_lib)
  find_path(_cudnn_inc cudnn.h HINTS ENV CUDNN_ROOT ${CUDAToolkit_INCLUDE_DIRS} PATH_SUFFIXES include)
  find_library(_cudnn_lib NAMES cudnn HINTS ENV CUDNN_ROOT ${CUDAToolkit_LIBRARY_DIR} PATH_SUFFIXES lib lib64)
endif()
if(_cudnn_lib AND _cudnn_inc)
  set(_cudnn_default ON)
else()
  set(_cudnn_default OFF)
endif()
option(DCD_CUDNN "Use cuDNN for Caffe's convolution, pooling and activation layers" ${_cudnn_default})
if(DCD_CUDNN)
  if(NOT (_cudnn_lib AND _cudnn_inc))
    message(FATAL_ERROR "DCD_CUDNN=ON but no cuDNN was found: run 'tools/setup.sh --cuda' (installs "
                        "the nvidia-cudnn-cu13 wheel into .venv), set CUDNN_ROOT, or pass -DDCD_CUDNN=OFF.")
  endif()
  dcd_force(USE_CUDNN BOOL ON)
  dcd_force(CUDNN_INCLUDE PATH "${_cudnn_inc}")
  dcd_force(CUDNN_LIBRARY FILEPATH "${_cudnn_lib}")
  message(STATUS "DCD-Caffe: cuDNN ${_cudnn_lib} (-DDCD_CUDNN=OFF to build without)")
else()
  dcd_force(USE_CUDNN BOOL OFF)
  message(STATUS "DCD-Caffe: cuDNN off")
endif()
