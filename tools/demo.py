#!/usr/bin/env python3
"""make demo: an end-to-end run of the built toolchain.

Until the MovingPatterns demo lands, this trains a small smoke net with
`caffe train` on generated stripe images and reports whether its loss fell
and its test accuracy rose above chance.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from dcd.paths import BUILD_DIR  # noqa: E402
from dcd.smoke import run_smoke  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=str(BUILD_DIR / "demo" / "smoke"),
                        help="where data, nets and logs go (default: %(default)s)")
    parser.add_argument("--iterations", type=int, default=100, help="training iterations")
    args = parser.parse_args(argv)

    start = time.time()
    print(f"demo: training the smoke net for {args.iterations} iterations in {args.workdir}")
    losses, test = run_smoke(args.workdir, iterations=args.iterations)
    for it, loss in losses:
        print(f"  iteration {it:4d}  loss {loss:.4f}")
    first, last = losses[0][1], losses[-1][1]
    accuracy = test.get("accuracy", float("nan"))
    checks = [
        (f"loss fell by half ({first:.3f} -> {last:.3f})", last < 0.5 * first),
        (f"test accuracy {accuracy:.1%} above chance (50%) by 30 points", accuracy >= 0.8),
    ]
    for text, held in checks:
        print(f"  [{'held' if held else 'NOT HELD'}] {text}")
    print(f"demo: done in {time.time() - start:.1f} s")
    return 0 if all(held for _, held in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
