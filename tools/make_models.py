#!/usr/bin/env python3
"""Generate the DCD nets and solvers under models/ (see models/README.md)."""
import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO,
                        help="repository root to write models/ under (default: this checkout)")
    parser.add_argument("--split", type=int, choices=(1, 2, 3), default=1,
                        help="UCF101 split; 2 and 3 write <net>_split<k>_*.prototxt beside split 1's")
    parser.add_argument("--dataset", choices=("ucf101", "kinetics", "synthetic"), action="append",
                        help="only this data set (repeatable; default all three)")
    parser.add_argument("--net", action="append", help="only this net (repeatable)")
    args = parser.parse_args(argv)
    from dcd.nets.generate import write_models
    datasets = args.dataset or (("ucf101",) if args.split != 1 else ("ucf101", "kinetics", "synthetic"))
    written = write_models(args.out, datasets, args.split, args.net)
    print(f"wrote {len(written)} files under {args.out / 'models'}")


if __name__ == "__main__":
    main()
