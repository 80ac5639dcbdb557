#!/usr/bin/env python3
"""Initial weights for the DCD nets from an ImageNet BN-Inception caffemodel
(e.g. TSN's bn_inception_rgb_init.caffemodel): copied where shapes agree,
cross-modality (averaged over input channels) for a branch's first conv,
fc-action left to its filler; partial BN's FrozenBN layers are filled from
the BatchNorm + Scale pairs (the summary counts them). Refuses a caffemodel
that is not BN-Inception."""
import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("imagenet", type=Path, help="ImageNet BN-Inception caffemodel")
    parser.add_argument("--dataset", choices=("ucf101", "kinetics"), action="append",
                        help="only this data set (repeatable; default both)")
    parser.add_argument("--net", action="append", help="only this net (repeatable; default all)")
    parser.add_argument("--out", type=Path, default=Path("snapshots/init"),
                        help="folder for <dataset>_<net>_init.caffemodel (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="only the one-line summaries")
    args = parser.parse_args(argv)

    from dcd.nets.dcd import NETS
    from dcd.nets.init_weights import NotBNInceptionError, init_weights
    jobs = [(d, c.name) for d in (args.dataset or ("ucf101", "kinetics")) for c in NETS[d]
            if not args.net or c.name in args.net]
    if not jobs:
        parser.error("no net matches --dataset/--net")
    for dataset, name in jobs:
        out = args.out / f"{dataset}_{name}_init.caffemodel"
        try:
            report = init_weights(args.imagenet, dataset, name, out)
        except (FileNotFoundError, NotBNInceptionError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        text = report.summary()
        print(f"{out}: " + (text.splitlines()[0] if args.quiet else text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
