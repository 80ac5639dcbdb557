# DCD_CUDA_WHEEL_DIR: the folder with include/ and lib/ of NVIDIA's CUDA 13
# wheels (nvidia-cublas, nvidia-curand) in the project's virtualenv, which
# supply cuBLAS and cuRAND where the CUDA toolkit lacks them.
set(DCD_CUDA_WHEEL_DIR "" CACHE PATH "Folder holding the CUDA wheels' include/ and lib/")
if(NOT DCD_CUDA_WHEEL_DIR AND PYTHON_EXECUTABLE)
  execute_process(COMMAND "${PYTHON_EXECUTABLE}" -c
    "import nvidia, os; print([os.path.join(p, 'cu13') for p in nvidia.__path__][0])"
    OUTPUT_VARIABLE _wheel_dir OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(_wheel_dir AND EXISTS "${_wheel_dir}/include/cublas_v2.h")
    set(DCD_CUDA_WHEEL_DIR "${_wheel_dir}" CACHE PATH "" FORCE)
  endif()
endif()

# DCD_NVIDIA_WHEELS_DIR: the virtualenv's nvidia/ package folder, whose
# nccl/ and cudnn/ hold the nvidia-nccl-cu13 and nvidia-cudnn-cu13 wheels.
set(DCD_NVIDIA_WHEELS_DIR "" CACHE PATH "The nvidia/ folder of NVIDIA's wheels (nccl/, cudnn/)")
if(NOT DCD_NVIDIA_WHEELS_DIR AND PYTHON_EXECUTABLE)
  execute_process(COMMAND "${PYTHON_EXECUTABLE}" -c
    "import nvidia; print(list(nvidia.__path__)[0])"
    OUTPUT_VARIABLE _nv_dir OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(_nv_dir AND IS_DIRECTORY "${_nv_dir}")
    set(DCD_NVIDIA_WHEELS_DIR "${_nv_dir}" CACHE PATH "" FORCE)
  endif()
endif()
