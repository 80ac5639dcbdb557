#!/usr/bin/env python3
"""Forward and forward+backward time of the CostVolume, SoftDisplacement and
BilinearWarp layers (through pycaffe), next to numpy's float32 matrix-multiply
GFLOP/s and the vectorised numpy reference, all measured in this run.

Default grid: C=64 features at 56x56 and 112x112, d=3 and 7, batch 1 and 8.
"""
import argparse
import itertools
import os
import sys
import time


import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from dcd.bench import Config, flops, sgemm_gflops, time_layer, time_reference  # noqa: E402

LAYERS = ("CostVolume", "SoftDisplacement", "BilinearWarp")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--sizes", type=int, nargs="+", default=[56, 112])
    parser.add_argument("--displacements", type=int, nargs="+", default=[3, 7])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--gpu", type=int, default=None, metavar="ID",
                        help="time the CUDA path on this GPU (the reference stays numpy)")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the (slow) numpy reference timings")
    args = parser.parse_args(argv)

    os.environ.setdefault("GLOG_minloglevel", "2")  # keep Caffe's net set-up logs out of the table
    import caffe
    if args.gpu is None:
        caffe.set_mode_cpu()
        device = "CPU"
    else:
        caffe.set_device(args.gpu)
        caffe.set_mode_gpu()
        device = f"GPU {args.gpu}"
    caffe.set_random_seed(0)

    # Three phases, each after a pause: BLAS and OpenMP worker threads keep
    # spinning for a while after their last job and would steal the core
    # from whatever is timed next.
    rng = np.random.default_rng(0)
    configs = [Config(args.channels, s, d, n) for s, d, n in
               itertools.product(args.sizes, args.displacements, args.batches)]
    cases = list(itertools.product(configs, LAYERS + ("chain",)))
    layer_times = [time_layer(config, layer, rng)
                   for config, layer in tqdm(cases, desc="layers", unit="case")]
    time.sleep(0.5)
    ref_times = [(None, None)] * len(cases) if args.no_reference else \
        [time_reference(config, layer, rng)
         for config, layer in tqdm(cases, desc="numpy reference", unit="case")]
    time.sleep(0.5)
    ceiling = sgemm_gflops()
    print(f"numpy float32 matmul (sgemm) ceiling: {ceiling:.1f} GFLOP/s")
    rows = [(config, layer, *lt, *rt) for (config, layer), lt, rt in
            zip(cases, layer_times, ref_times)]

    print(f"\nDevice: {device}. Times are medians in ms; GFLOP/s counts multiply-adds x 2.")
    header = (f"{'config':<26} {'layer':<17} {'fwd ms':>9} {'fwd GF/s':>9} {'%sgemm':>7} "
              f"{'f+b ms':>9} {'ref fwd':>9} {'ref f+b':>9} {'speedup':>8}")
    print(header)
    print("-" * len(header))
    for config, layer, fwd, fwd_bwd, ref_fwd, ref_fwd_bwd in rows:
        name = "3 layers" if layer == "chain" else layer
        fl = sum(flops(config)[k][0] for k in LAYERS) if layer == "chain" else flops(config)[layer][0]
        gf = fl / fwd / 1e9
        ref_cols = ("" if ref_fwd is None else
                    f"{ref_fwd * 1e3:9.2f} {ref_fwd_bwd * 1e3:9.2f} {ref_fwd_bwd / fwd_bwd:7.1f}x")
        print(f"{config.label():<26} {name:<17} {fwd * 1e3:9.3f} {gf:9.2f} {gf / ceiling:6.1%} "
              f"{fwd_bwd * 1e3:9.3f} {ref_cols}")

    print("\nTargets (C=64, 112x112, d=7):")
    for config, layer, fwd, fwd_bwd, ref_fwd, ref_fwd_bwd in rows:
        if (config.size, config.max_displacement) != (112, 7):
            continue
        if layer == "CostVolume":
            share = flops(config)[layer][0] / fwd / 1e9 / ceiling
            print(f"  [{'held' if share >= 0.25 else 'NOT HELD'}] N={config.batch}: CostVolume "
                  f"forward at {share:.1%} of sgemm GFLOP/s (target >= 25%)")
        if layer == "chain" and ref_fwd_bwd is not None:
            speedup = ref_fwd_bwd / fwd_bwd
            print(f"  [{'held' if speedup >= 5 else 'NOT HELD'}] N={config.batch}: three layers "
                  f"forward+backward {speedup:.1f}x faster than numpy (target >= 5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
