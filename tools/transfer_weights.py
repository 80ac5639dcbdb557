#!/usr/bin/env python3
"""Initial UCF101 weights from a net trained on Kinetics (Table 7, "Ours,
ImageNet+Kinetics"): every layer is copied from the Kinetics snapshot of the
same net except the classifiers (`fc-action`, `motion/fc-action`,
`appchange/fc-action`: 400 vs 101 classes), which keep their fillers.
Kinetics trains without partial BN: its BatchNorm + Scale pairs fill
UCF101's FrozenBN layers (and a FrozenBN fills a BatchNorm + Scale the other
way); the summary counts them. A snapshot of another net (a missing layer,
other shapes) is refused, naming the layer. Then train with the UCF101
solver of that net:

  tools/transfer_weights.py snapshots/kinetics_full_iter_110000.caffemodel --net full
  caffe train --solver=models/ucf101/full_solver.prototxt \\
      --weights=snapshots/init/ucf101_full_from_kinetics.caffemodel

Several snapshots: the joint net from its branches trained apart on the same
data set (Tables 7 and 8, "Ours", the fine-tuned reading). Each layer,
classifiers included, comes from the first snapshot that has it (the shared
conv1 from the first), then a short fine-tune:

  tools/transfer_weights.py snapshots/ucf101_static_split1_iter_4500.caffemodel \\
      snapshots/ucf101_motion_split1_iter_18000.caffemodel \\
      snapshots/ucf101_appchange_split1_iter_18000.caffemodel --net full_finetune
  caffe train --solver=models/ucf101/full_finetune_solver.prototxt \\
      --weights=snapshots/init/ucf101_full_finetune_from_branches.caffemodel"""
import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")
from dcd.util.cli import tool_main  # noqa: E402


@tool_main("transfer_weights")
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("snapshot", type=Path, nargs="+",
                        help="caffemodel of the net trained on Kinetics, or several: the "
                             "joint net's branches trained on the target data set")
    parser.add_argument("--net", default="full", help="net name (default: %(default)s)")
    parser.add_argument("--dataset", default="ucf101", choices=("ucf101", "kinetics", "synthetic"),
                        help="target data set (default: %(default)s)")
    parser.add_argument("--out", type=Path,
                        help="output caffemodel (default: snapshots/init/<dataset>_<net>"
                             "_from_kinetics.caffemodel, or _from_branches with several)")
    args = parser.parse_args(argv)
    from dcd.nets.catalogue import get_config
    from dcd.nets.init_weights import compose_weights, transfer_weights
    try:
        get_config(args.dataset, args.net)
    except KeyError as err:
        parser.error(str(err.args[0]))
    several = len(args.snapshot) > 1
    origin = "branches" if several else "kinetics"
    out = args.out or Path("snapshots/init") / f"{args.dataset}_{args.net}_from_{origin}.caffemodel"
    try:
        if several:
            report = compose_weights(args.snapshot, args.dataset, args.net, out)
        else:
            report = transfer_weights(args.snapshot[0], args.dataset, args.net, out)
    except (FileNotFoundError, ValueError) as err:  # NetMismatchError, not a caffemodel
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{out}: {report.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
