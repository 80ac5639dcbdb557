#!/usr/bin/env python3
"""Training curves from Caffe training logs (`caffe train` output, glog
format): per log a CSV of iteration, seconds since the log's start, learning
rate, training loss and every train/test net output, and one PNG of loss and
test accuracy against iteration with all the runs on the same axes.

  tools/plot_log.py data/synthetic/runs/static.log data/synthetic/runs/motion.log --out curves/

writes curves/static.csv, curves/motion.csv and curves/training_curves.png."""
import argparse
import sys
from pathlib import Path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("logs", nargs="+", help="caffe train logs")
    p.add_argument("--out", help="folder for the CSVs and the PNG (default: the first log's)")
    p.add_argument("--png", default="training_curves.png", help="PNG name in --out")
    p.add_argument("--labels", nargs="+", help="one legend label per log (default: file stems)")
    args = p.parse_args(argv)
    if args.labels and len(args.labels) != len(args.logs):
        p.error(f"{len(args.labels)} label(s) for {len(args.logs)} log(s)")

    from dcd.caffeio.caffe_log import plot_runs, read_logs, write_csv
    try:
        runs = read_logs(args.logs)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out or Path(args.logs[0]).parent)
    out.mkdir(parents=True, exist_ok=True)
    stems = [Path(x).stem for x in runs]
    if len(set(stems)) != len(stems):
        print("error: two logs have the same file name; CSVs would overwrite each other "
              "(give logs with distinct names)", file=sys.stderr)
        return 2
    for (path, rows), stem in zip(runs.items(), stems):
        write_csv(rows, out / f"{stem}.csv")
        print(f"{path}: {len(rows)} iteration rows -> {out / (stem + '.csv')}")
    plot_runs(runs, out / args.png, args.labels or stems)
    print(f"curves -> {out / args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
