#!/usr/bin/env python3
"""Write TSN file lists (`video_id num_frames label`, 0-based labels) from a
dataset's official splits and the frames on disk.

Outputs <out>/<dataset>_train_split_<k>.txt and <dataset>_val_split_<k>.txt.
--splits-dir holds, per dataset:
  ucf101    classInd.txt, trainlist0N.txt, testlist0N.txt
  hmdb51    <class>_test_split<k>.txt (1 = train, 2 = test, 0 = unused)
  kinetics  *.csv with columns label,youtube_id,time_start,time_end,split
            (video_id = <youtube_id>_<start:06d>_<end:06d>; one split, written as 1)
Videos in a split but not on disk are left out and listed on stderr, as are
frame folders that no split mentions. With --modality flow, --frames is a flow
root (tools/extract_flow.py), num_frames counts flow_x_*.jpg files (flow
pairs, as TSN counts them) and the lists are <dataset>_flow_{train,val}_split_<k>.txt.

  tools/build_file_list.py --dataset ucf101 --frames data/ucf101/frames \\
      --splits-dir ucfTrainTestlist
  tools/build_file_list.py --dataset ucf101 --modality flow --frames data/ucf101/flow \\
      --splits-dir ucfTrainTestlist
"""
import argparse
import sys
from pathlib import Path

from dcd.data import filelists
from dcd.util.paths import REPO_ROOT
from dcd.util.cli import tool_main


@tool_main("build_file_list")
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, choices=filelists.DATASETS)
    parser.add_argument("--frames", required=True,
                        help="frames root (<frames>/<video_id>/img_*.jpg), or with --modality "
                             "flow the flow root (<flow>/<video_id>/flow_x_*.jpg)")
    parser.add_argument("--modality", choices=filelists.MODALITIES, default="rgb",
                        help="what num_frames counts: img_*.jpg or flow_x_*.jpg files "
                             "(default: %(default)s)")
    parser.add_argument("--splits-dir", required=True, help="the dataset's split/annotation files")
    parser.add_argument("--out", help="output folder (default: <repo>/data/<dataset>)")
    parser.add_argument("--split", type=int, nargs="+", metavar="K",
                        help="splits to write (default: 1 2 3; Kinetics: 1)")
    args = parser.parse_args(argv)

    out = Path(args.out) if args.out else REPO_ROOT / "data" / args.dataset
    try:
        report = filelists.build_file_lists(args.dataset, args.frames, args.splits_dir, out,
                                            splits=tuple(args.split) if args.split else None,
                                            modality=args.modality)
    except (filelists.FileListError, FileNotFoundError) as exc:
        print(f"build_file_list: error: {exc}", file=sys.stderr)
        return 2
    for video_id in report.missing_ids:
        print(f"in a split but not on disk: {video_id}", file=sys.stderr)
    for video_id in report.unlisted:
        print(f"on disk but in no split: {video_id}", file=sys.stderr)
    for path, count in report.written.items():
        print(f"wrote {path}: {count} videos")
    for k, ids in report.missing.items():
        print(f"split {k}: {len(ids)} listed videos missing on disk (left out)")
    print(f"build_file_list: {len(report.missing_ids)} videos missing on disk, "
          f"{len(report.unlisted)} on disk in no split")
    return 0


if __name__ == "__main__":
    sys.exit(main())
