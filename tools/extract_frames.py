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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from dcd.data import frames  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", help="folder of videos, searched recursively")
    parser.add_argument("out", help="frames root: one folder per video is written here")
    parser.add_argument("--width", type=int,
                        help=f"output width (default: {frames.DEFAULT_WIDTH})")
    parser.add_argument("--height", type=int,
                        help=f"output height (default: {frames.DEFAULT_HEIGHT})")
    parser.add_argument("--short-side", type=int, metavar="N",
                        help="instead of --width/--height: scale so the shorter side is N, "
                             "keeping the aspect ratio")
    parser.add_argument("--quality", type=int, default=frames.DEFAULT_JPEG_QUALITY,
                        help="JPEG quality (default: %(default)s)")
    parser.add_argument("--max-frames", type=int, metavar="N",
                        help="keep only the first N frames of each video (tests, quick looks)")
    parser.add_argument("--workers", type=int, default=1,
                        help="parallel decoding processes (default: %(default)s)")
    parser.add_argument("--shard", metavar="K/N",
                        help="only the videos of shard K of N (0 <= K < N; a fixed partition "
                             "by video id, for cluster array jobs)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.short_side and (args.width or args.height):
        parser.error("--short-side excludes --width/--height")
    try:
        shard = frames.parse_shard(args.shard) if args.shard else None
    except ValueError as exc:
        parser.error(str(exc))

    videos = frames.find_videos(args.videos)
    if not videos:
        parser.error(f"no videos found under {args.videos}")
    try:
        summary = frames.extract_all(
            videos, args.out, workers=args.workers, progress=not args.no_progress, shard=shard,
            width=args.width or frames.DEFAULT_WIDTH, height=args.height or frames.DEFAULT_HEIGHT,
            short_side=args.short_side, max_frames=args.max_frames, quality=args.quality)
    except frames.DuplicateVideoIdError as exc:
        print(f"extract_frames: error: {exc}", file=sys.stderr)
        return 2
    where = f" (shard {shard[0]}/{shard[1]})" if shard else ""
    print(f"extract_frames{where}: {len(summary.extracted)} extracted, "
          f"{len(summary.skipped)} already complete, {len(summary.failed)} failed")
    if summary.failed:
        for result in sorted(summary.failed, key=lambda r: r.video):
            print(f"  FAILED {result.video}: {result.error}", file=sys.stderr)
        print(f"  (listed in {Path(args.out) / frames.failures_name(shard)})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
