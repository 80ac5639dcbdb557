#!/usr/bin/env python3
"""Runtime of each branch and of the full model (the paper's Table 9):
ms/frame and FPS at batch 1 (the deploy net as written) and batched (the
deploy input's first dimension times B), on CPU or GPU, with the
displacement-map part (all layers up to the first SoftDisplacement layer,
or --disp-layer) shown separately, beside the paper's TITAN X figures.
--table 3 times the motion nets with 112x112 and 224x224 displacement maps
for Table 3's FPS column (190 and 53 FPS for the maps on a TITAN X).
Weights are random unless given: runtime does not depend on them."""
import argparse
import json
import sys
import tempfile
from pathlib import Path

from dcd.util.cli import tool_main


@tool_main("benchmark")
def main(argv=None):
    from dcd.paper.table9 import format_text
    from dcd.perf.nets import DEFAULT_NETS, TABLE3_NETS, format_pycaffe
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", type=int, choices=(3, 9), default=9,
                   help="default nets: Table 9's branches, or Table 3's motion nets at 112x112 "
                        "and 224x224 displacement maps (its FPS column: the displacement-map "
                        "part's FPS); default %(default)s")
    p.add_argument("--nets", nargs="+", default=None,
                   help="deploy prototxts; named by stem: static, motion, appchange, full "
                        "(and their _224 versions) map to the paper's columns (default: "
                        "models/ucf101/{static,motion,appchange,full}[_224]_deploy.prototxt, "
                        "the 224x224 displacement-map nets where they exist)")
    p.add_argument("--weights", nargs="+", help="caffemodels, one per net (optional)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8],
                   help="multiples of the deploy input's batch (default: 1 8)")
    p.add_argument("--iters", type=int, default=5, help="timed forwards (median is reported)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--gpu", type=int, nargs="?", const=0, help="GPU id (default: CPU)")
    p.add_argument("--disp-layer", help="layer whose top is the displacement map "
                                        "(default: the first SoftDisplacement layer)")
    p.add_argument("--engine", choices=("default", "CAFFE", "CUDNN"), default="default",
                   help="engine of the layers that have a cuDNN version (convolution, pooling, "
                        "ReLU, ...): CAFFE times a cuDNN build without cuDNN")
    p.add_argument("--caffe-time", action="store_true",
                   help="time with the caffe binary's `caffe time` (per-layer CUDA events on a "
                        "GPU; needs no pycaffe; --warmup is ignored, --iters is its iterations)")
    p.add_argument("--pycaffe", action="store_true",
                   help="with --caffe-time: also time each forward through pycaffe (TEST phase), "
                        "reported beside `caffe time`")
    p.add_argument("--fold-bn", action="store_true",
                   help="time the nets with BatchNorm folded into the convolutions "
                        "(tools/fold_bn.py, into a temporary folder)")
    p.add_argument("--json", help="write the measurements here (device, build, per-branch "
                                  "ms/frame and FPS; for tools/report.py)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.nets is None:
        args.nets = [str(n) for n in (TABLE3_NETS if args.table == 3 else DEFAULT_NETS)]

    if args.weights and len(args.weights) != len(args.nets):
        p.error("--weights needs one caffemodel per net")
    missing = [n for n in args.nets if not Path(n).is_file()]
    if missing:
        print("error: deploy net(s) not found:\n  " + "\n  ".join(missing) +
              "\n(generate the models first, or pass --nets)", file=sys.stderr)
        return 2
    if args.caffe_time and args.weights:
        p.error("--caffe-time times random weights; leave out --weights")
    if args.pycaffe and not args.caffe_time:
        p.error("--pycaffe goes with --caffe-time (without it, pycaffe is the timer)")
    with tempfile.TemporaryDirectory(prefix="fold_bn_") as folder:
        if args.fold_bn:
            from dcd.nets.fold_bn import FoldError, fold_into
            try:
                folded = [fold_into(folder, net, w)
                          for net, w in zip(args.nets, args.weights or [None] * len(args.nets))]
            except (FoldError, FileNotFoundError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            args.nets = [f[0] for f in folded]
            args.weights = [f[1] for f in folded] if args.weights else None
        bench = _run(args)
    bench["fold_bn"] = args.fold_bn
    print(format_text(bench))
    if args.pycaffe and format_pycaffe(bench):
        print(format_pycaffe(bench))
    if args.json:
        tmp = Path(args.json).with_suffix(".partial")
        tmp.write_text(json.dumps(bench, indent=2) + "\n")
        tmp.replace(args.json)
    return 1 if any(n.get("error") for n in bench["nets"].values()) else 0


def _run(args):
    from dcd.perf.nets import run_benchmark, run_benchmark_caffe_time
    if args.caffe_time:
        return run_benchmark_caffe_time(args.nets, args.batch_sizes, args.iters, args.gpu,
                                        args.disp_layer, progress=not args.no_progress,
                                        engine=args.engine, pycaffe=args.pycaffe)
    return run_benchmark(args.nets, args.batch_sizes, args.iters, args.warmup, args.gpu,
                         args.disp_layer, args.weights, progress=not args.no_progress,
                         engine=args.engine)


if __name__ == "__main__":
    sys.exit(main())
