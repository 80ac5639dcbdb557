#!/usr/bin/env python3
"""Check that a solver's net, file lists, LMDB/frames and weights exist
before `caffe train` (run from the repository root), and warn about settings
that train differently from the paper (clip_gradients not 20 x iter_size)."""
import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")
from dcd.util.cli import tool_main  # noqa: E402


@tool_main("check_solver")
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("solver", type=Path)
    parser.add_argument("--weights", default="", help="comma-separated caffemodels, as caffe takes them")
    parser.add_argument("--root", type=Path, default=Path("."), help="paths are relative to this")
    args = parser.parse_args(argv)
    from dcd.nets.preflight import check_solver, solver_warnings
    if args.solver.is_file():
        for line in solver_warnings(args.solver):
            print(f"warning: {line}", file=sys.stderr)
    try:
        needs = check_solver(args.solver, args.root, [w for w in args.weights.split(",") if w])
    except (FileNotFoundError, ValueError) as err:  # ValueError: weights that are no caffemodel
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"ok: {len(needs)} inputs of {args.solver} present")
    return 0


if __name__ == "__main__":
    sys.exit(main())
