# CUDA settings for the pinned Caffe: a manual architecture list, C++17 for
# nvcc (CUDA 13's headers need it), cuDNN off, NCCL where it is installed,
# and cuBLAS/cuRAND from NVIDIA's PyPI wheels when the toolkit lacks them.

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

find_library(DCD_NCCL_LIBRARY NAMES nccl HINTS "${DCD_CUDA_WHEEL_DIR}/lib" ENV NCCL_DIR)
if(DCD_NCCL_LIBRARY)
  dcd_force(USE_NCCL BOOL ON)
  message(STATUS "DCD-Caffe: NCCL found, multi-GPU training (caffe train --gpu all) enabled")
else()
  dcd_force(USE_NCCL BOOL OFF)
  message(STATUS "DCD-Caffe: NCCL not found, multi-GPU training disabled")
endif()
