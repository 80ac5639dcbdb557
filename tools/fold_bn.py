#!/usr/bin/env python3
"""Fold BatchNorm (and the Scale after it, or a FrozenBN layer) into the
preceding Convolution of a deploy net and its caffemodel, and replace the
fixed subsampling convolution (full_224's group-64 `conv1/subsample`) by a
1x1 stride-2 Pooling: the same scores, fewer layers. Writes PREFIX.prototxt
and PREFIX.caffemodel. Without WEIGHTS only the prototxt is written (the
structure, for timing). A convolution whose output has other readers than
its BatchNorm is left as it is (listed).

  tools/fold_bn.py models/ucf101/full_224_deploy.prototxt \\
      snapshots/ucf101_full_224_split1_iter_4500.caffemodel --out snapshots/folded/full_224"""
import argparse
import os
import sys

os.environ.setdefault("GLOG_minloglevel", "2")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("deploy", help="deploy prototxt")
    p.add_argument("weights", nargs="?", help="caffemodel (omit: the prototxt only)")
    p.add_argument("--out", required=True,
                   help="output prefix: writes OUT.prototxt (and OUT.caffemodel)")
    p.add_argument("--quiet", action="store_true", help="no list of what was left unfolded")
    args = p.parse_args(argv)
    from dcd.nets.fold_bn import FoldError, fold_files
    try:
        proto, model, report = fold_files(args.deploy, args.weights, args.out)
    except (FoldError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {proto}" + (f" and {model}" if model else ""))
    print(report.summary() if not args.quiet else report.summary().splitlines()[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
