"""DCD-Caffe: Python side of the reproduction of "Recognize Actions by
Disentangling Components of Dynamics" (Zhao, Xiong, Lin, CVPR 2018).

Subpackages, lower layers first (each imports only those before it;
tests/dcd/test_package_layout.py checks it):

- `util`: crash-safe writes, repository paths, the tools' one-line errors,
  generated Markdown sections, matplotlib set-up.
- `caffeio`: pycaffe nets and caffemodels, running `caffe` and reading its
  logs, how the build was made.
- `layers`: the DCD layers outside Caffe: numpy reference, pycuda kernels.
- `data`: frames, optical flow, TSN file lists, LMDBs, JPEG checks, and
  MovingPatterns, the generated video data set of the demo and GPU check.
- `nets`: NetSpec nets and solvers, initial weights, FrozenBN, BN folding.
- `scoring`: TSN's test protocol, frame readers, score files, accuracies.
- `perf`: all timing (layers, nets, data, `caffe time`) and the GPU check.
- `paper`: the paper's tables, each row's recipe, Table 9, the report.
- `demo`: the demo pipeline, Figure 5, the small studies behind choices.

Importing this package does not import pycaffe; modules that need it import
it themselves, so that data tools run where Caffe is not built.
"""

__version__ = "0.3.0"
