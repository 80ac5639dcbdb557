"""Video data preparation: frames on disk, TSN file lists, LMDBs of frames.

- `frames`: videos -> `<out>/<video_id>/img_%05d.jpg` (resumable, parallel).
- `filelists`: UCF101 / HMDB51 / Kinetics splits -> `video_id num_frames label`.
- `lmdb_store`: frames + file list -> LMDB of encoded-JPEG Caffe Datums
  (key scheme in docs/DATA.md), and readers for it.
- `flow`: optical flow between consecutive frames, stored as TSN's dense_flow.
- `jpeg`: the libjpeg-strict check that every frame reader uses.
- `video_net`: VideoData layers for NetSpec and a small sample data set.
- `synthetic`: MovingPatterns, the generated video of the demo and GPU check.

Nothing here imports pycaffe at import time; `lmdb_store` imports
`caffe.proto.caffe_pb2` when it builds or parses Datums.
"""
