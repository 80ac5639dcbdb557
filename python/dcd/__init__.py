"""DCD-Caffe: Python side of the reproduction of "Recognize Actions by
Disentangling Components of Dynamics" (Zhao, Xiong, Lin, CVPR 2018).

Importing this package does not import pycaffe; modules that need it import
it themselves, so that data tools run where Caffe is not built.
"""

__version__ = "0.1.0"
