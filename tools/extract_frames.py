#!/usr/bin/env python3
"""Decode a folder of videos into TSN frame folders: <out>/<video_id>/img_%05d.jpg.

video_id is the file stem (UCF101's v_Class_gNN_cNN names are unique). Frames
are numbered from 1 and resized to 340x256 (W x H) unless told otherwise.
Resumable: complete videos are skipped, interrupted ones redone. Videos that
cannot be decoded are listed at the end and in <out>/extract_failures.txt;
the exit status is then 1.

  tools/extract_frames.py UCF-101/ data/ucf101/frames --workers 2
  tools/extract_frames.py UCF-101/ data/ucf101/frames --shard $SLURM_ARRAY_TASK_ID/16
"""
import argparse
import sys

from dcd.data import frames
from dcd.util.cli import tool_main


@tool_main("extract_frames")
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", help="folder of videos, searched recursively")
    parser.add_argument("out", help="frames root: one folder per video is written here")
    frames.add_batch_arguments(parser)
    args = parser.parse_args(argv)
    shard = frames.batch_shard(parser, args)

    videos = frames.find_videos(args.videos)
    if not videos:
        parser.error(f"no videos found under {args.videos}")
    try:
        summary = frames.extract_all(
            videos, args.out, workers=args.workers, progress=not args.no_progress, shard=shard,
            width=args.width or frames.DEFAULT_WIDTH, height=args.height or frames.DEFAULT_HEIGHT,
            short_side=args.short_side, max_frames=args.max_frames, quality=args.quality,
            allow_short=args.allow_short)
    except frames.DuplicateVideoIdError as exc:
        print(f"extract_frames: error: {exc}", file=sys.stderr)
        return 2
    return frames.report_batch(summary, args.out, shard, "extract_frames")


if __name__ == "__main__":
    sys.exit(main())
