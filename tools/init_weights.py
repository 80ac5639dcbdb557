#!/usr/bin/env python3
"""Initial weights for the DCD nets from an ImageNet BN-Inception caffemodel
(e.g. TSN's bn_inception_rgb_init.caffemodel): copied where shapes agree,
cross-modality (averaged over input channels) for a branch's first conv,
fc-action left to its filler; partial BN's FrozenBN layers are filled from
the BatchNorm + Scale pairs (the summary counts them). Refuses a caffemodel
that is not BN-Inception, naming the first layer it lacks or holds with other
shapes.

Prints once what the check found (layers checked, the BN form: TSN's BN
layer or Caffe's BatchNorm + Scale, the caffemodel's layers not used), then
per net the counts of layers copied, averaged over input channels and left
new, with the averaged and new ones by name (--quiet: the counts only).
models/README.md says where the ImageNet caffemodel comes from."""
import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")
from dcd.util.cli import tool_main  # noqa: E402


@tool_main("init_weights")
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

    from dcd.nets.catalogue import NETS
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
        if dataset == jobs[0][0] and name == jobs[0][1]:
            c = report.checked
            print(f"{args.imagenet}: BN-Inception, all {c['layers']} convolution and BN layers "
                  f"present with BN-Inception's shapes; BN as {c['bn']}; not used: "
                  f"{', '.join(c['ignored']) or 'nothing'}")
        text = report.summary()
        print(f"{out}: " + (text.splitlines()[0] if args.quiet else text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
