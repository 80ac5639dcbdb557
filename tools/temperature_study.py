#!/usr/bin/env python3
"""End-point error of the soft-assignment displacement map per temperature
(and of WTA): the measurement behind the default temperature and the choice
of features before or after conv1's ReLU (docs/ASSUMPTIONS.md).

Default: conv1-like features of data with ground truth, MovingPatterns
clips (object end-point error, mean |V| on the static background) and
scikit-image's Middlebury motorcycle pair (disparity end-point error), each
feature set taken before and after the ReLU. Feature sets: a 7x7 stride-2
Gabor bank standing in for BN-Inception's ImageNet conv1 (the paper's nets),
the demo's conv1 at initialisation (the same bank at 32 channels), and the
shared conv1 of trained nets given with --weights (the temperature such a
net learned, when it has one, is added to the sweep).

--gaussian: the first study, random smooth Gaussian features moved by a
known sub-pixel shift.
"""
import argparse
import sys
from pathlib import Path

from dcd.demo import studies
from dcd.nets.init_weights import filter_bank_conv1
from dcd.util.cli import tool_main


def gaussian_study(args):
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


def ground_truth_study(args):
    from tqdm import tqdm
    temperatures = list(args.temperatures)
    feature_fns = {}

    def add(name, weight, bias=None, stats=None, stride=1):
        for relu in (False, True):
            feature_fns[f"{name}, {'after' if relu else 'before'} ReLU"] = (
                lambda im, relu=relu: studies.conv_features(im, weight, bias, stride, relu, stats))

    add("Gabor 7x7/2 (ImageNet conv1 stand-in)", filter_bank_conv1(), stride=2)
    add("filter bank 7x7/2, 32 channels (the demo's conv1 at init)",
        filter_bank_conv1(orientations=4), stride=2)
    for spec in args.weights:
        label, _, path = spec.rpartition("=")
        label = label or Path(path).stem
        add(f"trained {label}", *studies.trained_conv1(path))
        tau = studies.learned_temperature(path)
        if tau is not None:
            print(f"{label}: learned temperature {tau:.4f}")
            temperatures.append(round(tau, 4))
    moving = studies.moving_pattern_pairs(args.clips)
    stereo = studies.stereo_pair(args.stereo_scale)
    rows = []
    for name, fn in tqdm(feature_fns.items(), desc="feature sets", unit="set"):
        rows += studies.displacement_study({name: fn}, temperatures + ["WTA"], moving, stereo)
    print(f"\nobject end-point error / background mean |V| on MovingPatterns "
          f"({args.clips} clips x 3 pairs, window +-3) / stereo end-point error "
          f"(motorcycle at 1/{args.stereo_scale}, window +-2 x +-8), pixels:\n")
    print(studies.format_displacement_study(rows))
    return 0


@tool_main("temperature_study")
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--temperatures", type=float, nargs="+",
                        default=[1.0, 0.3, 0.1, 0.05, 0.03, 0.01])
    parser.add_argument("--weights", nargs="*", default=[], metavar="[LABEL=]CAFFEMODEL",
                        help="trained nets whose shared conv1 to measure as well")
    parser.add_argument("--clips", type=int, default=24, help="MovingPatterns clips")
    parser.add_argument("--stereo-scale", type=int, default=8,
                        help="downscaling of the 741x500 stereo pair")
    parser.add_argument("--gaussian", action="store_true",
                        help="the Gaussian-feature study instead (--blurs, --noises, --shift)")
    parser.add_argument("--blurs", type=float, nargs="+", default=[1.0, 2.0, 3.0],
                        help="feature smoothness (Gaussian sigma, pixels)")
    parser.add_argument("--noises", type=float, nargs="+", default=[0.1, 0.5],
                        help="noise added to the second frame, relative to feature std")
    parser.add_argument("--shift", type=float, nargs=2, default=[0.4, -1.3], metavar=("DY", "DX"))
    args = parser.parse_args(argv)
    return gaussian_study(args) if args.gaussian else ground_truth_study(args)


if __name__ == "__main__":
    sys.exit(main())
