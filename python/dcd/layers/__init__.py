"""The DCD layers outside Caffe: the numpy reference and the raw CUDA kernels under pycuda."""
