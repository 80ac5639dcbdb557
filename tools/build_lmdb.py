#!/usr/bin/env python3
"""Store the frames of listed videos in an LMDB of encoded-JPEG Caffe Datums.

Keys (see docs/DATA.md): "<video_id>/img_00001.jpg" ... -> Datum(encoded JPEG,
label), and "__video__/<video_id>" -> frame count, written last in the same
transaction as the video's frames. Resumable: complete videos are skipped, and
nothing written is lost if the build is interrupted. --modality flow stores
tools/extract_flow.py's JPEGs instead: "<video_id>/flow_x_00001.jpg",
"<video_id>/flow_y_00001.jpg", ... and "__flow__/<video_id>" -> pair count; a
video's frames and flow may share one LMDB (run the tool once per modality).

  tools/build_lmdb.py --frames data/ucf101/frames \\
      --list data/ucf101/ucf101_train_split_1.txt data/ucf101/ucf101_val_split_1.txt \\
      --out data/ucf101/frames_lmdb
  tools/build_lmdb.py --modality flow --frames data/ucf101/flow \\
      --list data/ucf101/ucf101_flow_train_split_1.txt data/ucf101/ucf101_flow_val_split_1.txt \\
      --out data/ucf101/frames_lmdb
"""
import argparse
import sys

from dcd.data import filelists, lmdb_store
from dcd.util.cli import tool_main


@tool_main("build_lmdb")
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", required=True,
                        help="frames root (<frames>/<video_id>/img_*.jpg), or with --modality "
                             "flow the flow root (<flow>/<video_id>/flow_[xy]_*.jpg)")
    parser.add_argument("--modality", choices=lmdb_store.MODALITIES, default="rgb",
                        help="what to store; the list's counts are frames (rgb) or flow pairs "
                             "(flow, build_file_list.py --modality flow) (default: %(default)s)")
    parser.add_argument("--list", required=True, nargs="+", dest="lists", metavar="LIST",
                        help="file list(s): 'video_id num_frames label' per line")
    parser.add_argument("--out", required=True, help="the LMDB folder (created or resumed)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip videos with a missing or corrupt frame instead of stopping")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="skip re-reading each video after writing it")
    parser.add_argument("--decode-check", choices=lmdb_store.DECODE_CHECKS, default="all",
                        help="which frames to decode before writing (every frame's JPEG "
                             "structure is always checked; default: %(default)s)")
    parser.add_argument("--map-size-gb", type=float, default=lmdb_store.DEFAULT_MAP_SIZE / 2**30,
                        help="initial LMDB map size in GiB; doubled when full (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    try:
        entries = [e for path in args.lists for e in filelists.read_file_list(path)]
        report = lmdb_store.build_lmdb(
            args.frames, entries, args.out, verify=args.verify, skip_bad=args.skip_bad,
            decode_check=args.decode_check, map_size=int(args.map_size_gb * 2**30),
            progress=not args.no_progress, modality=args.modality)
    except (filelists.FileListError, RuntimeError,  # bad frames, failed read-backs
            ValueError, FileNotFoundError) as exc:
        print(f"build_lmdb: error: {exc}", file=sys.stderr)
        return 2
    print(f"build_lmdb: {len(report.written)} videos written ({report.frames_written} frames), "
          f"{len(report.skipped)} already complete, {len(report.bad)} bad videos skipped; "
          f"map size {report.map_size / 2**30:.2f} GiB")
    for video_id, reason in report.bad:
        print(f"  skipped: {reason}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
