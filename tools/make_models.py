#!/usr/bin/env python3
"""Generate the DCD nets and solvers under models/ (see models/README.md).

Without options this rewrites the committed files. --gpus N writes the
solvers for `caffe train --gpu 0,...,N-1` (iter_size = 256 / (batch_size x N),
clip_gradients = 20 x iter_size) and --segments K whole nets with K TSN
segments (<net>_seg<K>; 1 is Table 5's "w/o TSN"), both into the folder
--out names (its models/<dataset>/), never over the committed files."""
import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")
from dcd.util.cli import tool_main  # noqa: E402
REPO = Path(__file__).resolve().parents[1]


@tool_main("make_models")
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO,
                        help="folder to write models/<dataset>/ under (default: this checkout)")
    parser.add_argument("--split", type=int, choices=(1, 2, 3), default=1,
                        help="UCF101 split; 2 and 3 write <net>_split<k>_*.prototxt beside split 1's")
    parser.add_argument("--dataset", choices=("ucf101", "kinetics", "synthetic"), action="append",
                        help="only this data set (repeatable; default all three)")
    parser.add_argument("--net", action="append", help="only this net (repeatable)")
    parser.add_argument("--gpus", type=int, default=1,
                        help="solvers for this many GPUs (only the solvers are written)")
    parser.add_argument("--segments", type=int,
                        help="TSN segments in training (writes <net>_seg<K> nets)")
    args = parser.parse_args(argv)
    if args.gpus < 1 or (args.segments is not None and args.segments < 1):
        parser.error("--gpus and --segments must be at least 1")
    variant = args.gpus > 1 or args.segments is not None
    if variant and args.out.resolve() == REPO:
        parser.error("--gpus/--segments write variants: name a folder with --out "
                     "(the committed models/ stay as they are)")
    from dcd.nets.catalogue import NETS
    from dcd.nets.generate import write_models
    datasets = args.dataset or (("ucf101",) if args.split != 1 else ("ucf101", "kinetics", "synthetic"))
    if args.gpus > 1:
        datasets = [d for d in datasets if d != "synthetic"]  # the demo trains on one CPU
    unknown = sorted(set(args.net or ()) - {c.name for d in datasets for c in NETS[d]})
    if unknown:
        parser.error(f"no net {', '.join(unknown)} in {', '.join(datasets)}")
    try:
        written = write_models(args.out, datasets, args.split, args.net, args.gpus, args.segments,
                               repo_root=REPO)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} files under {args.out / 'models'}")
    if not variant and args.split == 1 and args.out.resolve() == REPO and not args.net:
        from dcd.paper.recipes import recipes_markdown, rewrite_recipes
        readme = REPO / "models" / "README.md"
        readme.write_text(rewrite_recipes(readme.read_text(), recipes_markdown()))
        print(f"rewrote the paper-row commands in {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
