"""The DCD layers outside Caffe: the numpy reference and the raw CUDA kernels under pycuda."""

# SoftDisplacement's temperature: the nets' (dcd.nets.config), and the default
# of every tool and benchmark that runs the layer; measured on displacement
# ground truth (docs/ASSUMPTIONS.md, "Temperature"). No numpy here: the
# `caffe time` benchmark imports it where numpy may be missing.
TEMPERATURE = 0.02
