#!/usr/bin/env python3
"""End-point error of the soft-assignment displacement per temperature (and
of WTA) on random smooth features moved by a known sub-pixel translation.
The measurement behind the default temperature (docs/ASSUMPTIONS.md)."""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from dcd import studies  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--temperatures", type=float, nargs="+",
                        default=[1.0, 0.3, 0.1, 0.05, 0.03, 0.01])
    parser.add_argument("--blurs", type=float, nargs="+", default=[1.0, 2.0, 3.0],
                        help="feature smoothness (Gaussian sigma, pixels)")
    parser.add_argument("--noises", type=float, nargs="+", default=[0.1, 0.5],
                        help="noise added to the second frame, relative to feature std")
    parser.add_argument("--shift", type=float, nargs=2, default=[0.4, -1.3], metavar=("DY", "DX"))
    args = parser.parse_args(argv)

    keys = args.temperatures + ["WTA"]
    print(f"mean end-point error (px) for a shift of {tuple(args.shift)}, d=3, C=64")
    print(f"{'blur':>5} {'noise':>6} " + " ".join(f"{'tau=' + str(t) if t != 'WTA' else 'WTA':>9}"
                                                for t in keys))
    for blur in args.blurs:
        for noise in args.noises:
            errors = studies.temperature_sweep(args.temperatures, shift=tuple(args.shift),
                                               noise=noise, blur=blur)
            print(f"{blur:5.1f} {noise:6.2f} " + " ".join(f"{errors[k]:9.3f}" for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
