#!/usr/bin/env python3
"""Optical flow of a folder of videos, stored as TSN's dense_flow stores it:
<out>/<video_id>/flow_x_%05d.jpg and flow_y_%05d.jpg, grey JPEGs, pair i the
flow from frame i to i+1, displacement clipped to +-bound px and mapped
linearly to 0..255.

Frames are resized as extract_frames resizes them (340x256 by default) before
the flow is computed. With --from-frames, VIDEOS is a frames root written by
extract_frames (<root>/<video_id>/img_*.jpg) and the flow is computed on those
frames at their stored size. Resumable like extract_frames: complete videos
are skipped, interrupted ones redone; failures are listed at the end and in
<out>/extract_failures.txt, and the exit status is then 1.

  tools/extract_flow.py UCF-101/ data/ucf101/flow --workers 2
  tools/extract_flow.py data/ucf101/frames data/ucf101/flow --from-frames
  tools/extract_flow.py UCF-101/ data/ucf101/flow --shard $SLURM_ARRAY_TASK_ID/16
"""
import argparse
import sys
from pathlib import Path

from dcd.data import flow, frames
from dcd.util.cli import tool_main

TVL1_FLAGS = (("tau", float), ("lambda_", float), ("theta", float), ("nscales", int),
              ("warps", int), ("epsilon", float), ("inner_iterations", int),
              ("outer_iterations", int), ("scale_step", float), ("gamma", float),
              ("median_filtering", int))


@tool_main("extract_flow")
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", help="folder of videos (searched recursively), or with "
                                       "--from-frames a frames root")
    parser.add_argument("out", help="flow root: one folder per video is written here")
    parser.add_argument("--from-frames", action="store_true",
                        help="VIDEOS is a frames root (<video_id>/img_%%05d.jpg)")
    parser.add_argument("--method", choices=flow.METHODS, default="tvl1",
                        help="tvl1 (cv2.optflow DualTVL1, TSN's choice) or farneback "
                             "(default: %(default)s)")
    parser.add_argument("--preset", choices=sorted(flow.TVL1_PRESETS), default="default",
                        help="TV-L1 settings: OpenCV's defaults, or 'light' (fewer warps "
                             "and iterations; docs/DATA.md gives costs) "
                             "(default: %(default)s)")
    tvl1 = parser.add_argument_group("TV-L1 parameters (override the preset)")
    for name, kind in TVL1_FLAGS:
        tvl1.add_argument("--tvl1-" + name.rstrip("_").replace("_", "-"), dest=name, type=kind,
                          metavar=kind.__name__.upper(),
                          help=f"(OpenCV default {flow.TVL1_DEFAULTS[name]})")
    parser.add_argument("--bound", type=float, default=flow.DEFAULT_BOUND,
                        help="displacement clipped to +-BOUND px before mapping to 0..255 "
                             "(default: %(default)s)")
    frames.add_batch_arguments(
        parser, size_what="frame", workers_help="parallel processes",
        max_frames_help="use only the first N frames of each video (N - 1 flow pairs)")
    args = parser.parse_args(argv)
    shard = frames.batch_shard(parser, args)
    if args.from_frames and (args.short_side or args.width or args.height):
        parser.error("--from-frames uses the frames' stored size; drop --width/--height/--short-side")
    if args.from_frames and args.allow_short:
        parser.error("--allow-short applies to videos, not to --from-frames")
    if args.bound <= 0:
        parser.error("--bound must be positive")
    try:
        method = flow.flow_method(args.method, args.preset,
                                  **{name: getattr(args, name) for name, _ in TVL1_FLAGS})
    except ValueError as exc:
        parser.error(str(exc))

    if args.from_frames:
        inputs = flow.find_frame_folders(args.videos) if Path(args.videos).is_dir() else []
    else:
        inputs = frames.find_videos(args.videos)
    if not inputs:
        parser.error(f"no {'frame folders' if args.from_frames else 'videos'} found under "
                     f"{args.videos}")
    print(f"extract_flow: {method.describe()}, bound {args.bound:g} px", file=sys.stderr)
    options = dict(max_frames=args.max_frames, quality=args.quality, method=method,
                   bound=args.bound)
    if not args.from_frames:
        options.update(width=args.width or frames.DEFAULT_WIDTH,
                       height=args.height or frames.DEFAULT_HEIGHT, short_side=args.short_side,
                       allow_short=args.allow_short)
    try:
        summary = flow.extract_all_flow(inputs, args.out, from_frames=args.from_frames,
                                        workers=args.workers, progress=not args.no_progress,
                                        shard=shard, **options)
    except frames.DuplicateVideoIdError as exc:
        print(f"extract_flow: error: {exc}", file=sys.stderr)
        return 2
    return frames.report_batch(summary, args.out, shard, "extract_flow")


if __name__ == "__main__":
    sys.exit(main())
