# Folders of NVIDIA's CUDA 13 wheels in the project's virtualenv, found by
# asking its Python (PYTHON_EXECUTABLE) unless given on the command line.

# dcd_wheel_dir(VAR DOC PYTHON_CODE MARKER): VAR = the folder PYTHON_CODE
# prints, if MARKER (a path inside it) exists; a cache variable.
function(dcd_wheel_dir var doc python_code marker)
  set(${var} "" CACHE PATH "${doc}")
  if(NOT ${var} AND PYTHON_EXECUTABLE)
    execute_process(COMMAND "${PYTHON_EXECUTABLE}" -c "${python_code}"
      OUTPUT_VARIABLE _dir OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    if(_dir AND EXISTS "${_dir}/${marker}")
      set(${var} "${_dir}" CACHE PATH "${doc}" FORCE)
    endif()
  endif()
endfunction()

# DCD_CUDA_WHEEL_DIR: include/ and lib/ of nvidia-cublas and nvidia-curand,
# which supply cuBLAS and cuRAND where the CUDA toolkit lacks them.
dcd_wheel_dir(DCD_CUDA_WHEEL_DIR "Folder holding the CUDA wheels' include/ and lib/"
  "import nvidia, os; print([os.path.join(p, 'cu13') for p in nvidia.__path__][0])"
  "include/cublas_v2.h")
# DCD_NVIDIA_WHEELS_DIR: the nvidia/ package folder, whose nccl/ and cudnn/
# hold the nvidia-nccl-cu13 and nvidia-cudnn-cu13 wheels.
dcd_wheel_dir(DCD_NVIDIA_WHEELS_DIR "The nvidia/ folder of NVIDIA's wheels (nccl/, cudnn/)"
  "import nvidia; print(list(nvidia.__path__)[0])" ".")
