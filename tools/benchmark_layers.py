#!/usr/bin/env python3
"""Forward and forward+backward time of the CostVolume, SoftDisplacement and
BilinearWarp layers (through pycaffe), next to numpy's float32 matrix-multiply
GFLOP/s, the vectorised numpy reference and, on the CPU where torch is
installed, PyTorch autograd of the three layers (dcd.layers.torch_reference), all
measured in this run. The table names the CPU kernel variant (AVX-512, AVX2
or baseline); CPU targets at C=64, 112x112, d=7: CostVolume forward >= 50%
of sgemm GFLOP/s (its backward measured against the same standard), the
three layers' forward + backward >= 20x PyTorch.

Default grid: C=64 features at 56x56 and 112x112, d=3 and 7, batch 1 and 8;
with --gpu, Table 9's displacement map: C=64 at 224x224, d=6, batch 1 and 8.
--json writes the device, the build (CUDA, cuDNN) and, per configuration and
layer, ms per frame (one frame = one feature-map pair) and FPS, plus the
displacement map (CostVolume + SoftDisplacement forward).
"""
import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dcd.perf.layers import (KERNEL_CAPS, Config, DeviceSync, blas_core, blas_isa,
                             chain_against_torch, chain_breakdown, cpu_isa, flops,
                             kernel_environment, layer_threads, multiply_add_floor,
                             sgemm_gflops, sgemm_gflops_one_thread, time_layer, time_reference,
                             torch_available, torch_isa)
from dcd.util import memory
from dcd.util.cli import tool_main

LAYERS = ("CostVolume", "SoftDisplacement", "BilinearWarp")
# Medians per layer figure, forward and f+b alternated; the lowest stands.
ROUNDS = 3
TORCH_ROUNDS = 5  # chain_against_torch: torch's time moves more than the layers'


@tool_main("benchmark_layers")
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--sizes", type=int, nargs="+",
                        help="H = W (default: 56 112; with --gpu: 224)")
    parser.add_argument("--displacements", type=int, nargs="+",
                        help="max displacement d (default: 3 7; with --gpu: 6)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--json", help="write the measurements here")
    parser.add_argument("--caffe-time", action="store_true",
                        help="time with the caffe binary's `caffe time` (per-layer CUDA events "
                             "on a GPU; needs no pycaffe, no numpy reference)")
    parser.add_argument("--gpu", type=int, default=None, metavar="ID",
                        help="time the CUDA path on this GPU (the reference stays numpy)")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the (slow) numpy and PyTorch reference timings")
    parser.add_argument("--kernels", choices=("native",) + tuple(KERNEL_CAPS), default="native",
                        help="CPU: cap the three layers' kernels at this variant, and run numpy's "
                             "sgemm with OpenBLAS kernels of the same ISA (Haswell for avx2, "
                             "Nehalem for baseline) and PyTorch with ATen kernels of the same "
                             "ISA, so that the ratios are like for like; reruns the tool in a "
                             "fresh process with DCD_CPU_KERNELS, OPENBLAS_CORETYPE and "
                             "ATEN_CPU_CAPABILITY set (default: native, the machine's own)")
    parser.add_argument("--return-freed-memory", action="store_true",
                        help="leave glibc's malloc as it comes, handing large freed blocks "
                             "back to the kernel, so that numpy's and PyTorch's passes "
                             "page-fault their temporaries in again (the default keeps them: "
                             "the baselines then time their arithmetic, not the page faults; "
                             "docs/LAYERS.md)")
    args = parser.parse_args(argv)
    env = kernel_environment(args.kernels)
    if env is not None:
        given = sys.argv[1:] if argv is None else list(argv)
        return subprocess.run([sys.executable, os.path.abspath(__file__), *given],
                              env=env).returncode
    if args.sizes is None:
        args.sizes = [56, 112] if args.gpu is None else [224]
    if args.displacements is None:
        args.displacements = [3, 7] if args.gpu is None else [6]

    if args.caffe_time:
        return main_caffe_time(args)
    os.environ.setdefault("GLOG_minloglevel", "2")  # keep Caffe's net set-up logs out of the table
    import caffe
    if args.gpu is None:
        caffe.set_mode_cpu()
    else:
        caffe.set_device(args.gpu)
        caffe.set_mode_gpu()
    caffe.set_random_seed(0)
    sync = DeviceSync(args.gpu)
    kept = not args.return_freed_memory and memory.keep_freed_memory()

    # Phases, each after a pause: BLAS and OpenMP worker threads keep
    # spinning for a while after their last job and would steal the core
    # from whatever is timed next. sgemm is timed first, right after the
    # layers and last, and on one thread (times the layers' threads) first
    # and last; the highest figure is the ceiling, so a load that eases
    # during the run, or one that slows a core throughout (it holds back
    # OpenBLAS's evenly split product more than the layers, which share
    # rows out as threads come free), cannot flatter the layers' share, and
    # full-width figures far apart say that the load changed (print_targets
    # then judges nothing).
    threads = layer_threads()
    per_thread = [sgemm_gflops_one_thread()]
    ceilings = [sgemm_gflops()]
    time.sleep(0.5)
    rng = np.random.default_rng(0)
    configs = [Config(args.channels, s, d, n) for s, d, n in
               itertools.product(args.sizes, args.displacements, args.batches)]
    cases = list(itertools.product(configs, LAYERS + ("chain",)))
    layer_times = [time_layer(config, layer, rng, sync, rounds=ROUNDS)
                   for config, layer in tqdm(cases, desc="layers", unit="case")]
    breakdowns = {config: chain_breakdown(config, rng, sync, rounds=ROUNDS)
                  for config in tqdm(configs, desc="chain by layer", unit="case")}
    time.sleep(0.5)
    ceilings.append(sgemm_gflops())
    time.sleep(0.5)
    ref_times = [(None, None)] * len(cases) if args.no_reference else \
        [time_reference(config, layer, rng)
         for config, layer in tqdm(cases, desc="numpy reference", unit="case")]
    time.sleep(0.5)
    use_torch = not args.no_reference and args.gpu is None and torch_available()
    torch_times = {config: chain_against_torch(config, rng, rounds=TORCH_ROUNDS) for config in
                   tqdm(configs if use_torch else [], desc="torch autograd", unit="case")}
    time.sleep(0.5)
    ceilings.append(sgemm_gflops())
    per_thread.append(sgemm_gflops_one_thread())
    scaled = threads * max(per_thread)
    ceiling = max(max(ceilings), scaled)
    core = blas_core()
    print(f"numpy float32 matmul (sgemm) ceiling: {ceiling:.1f} GFLOP/s "
          f"(OpenBLAS {core or 'kernels unknown'}; the highest of: all threads first, after "
          f"the layers and last {', '.join(f'{c:.0f}' for c in ceilings)}; one thread "
          f"{max(per_thread):.0f} x {threads} layer threads = {scaled:.0f})")
    rows = [(config, layer, *lt, *rt) for (config, layer), lt, rt in
            zip(cases, layer_times, ref_times)]

    from dcd.caffeio.buildinfo import caffe_build, device_name
    device = device_name(args.gpu)
    build = caffe_build()
    isa = cpu_isa()
    print(f"\nDevice: {device} (build: CUDA {build['cuda']}, cuDNN {build['cudnn']}); "
          f"CPU kernels: {isa}. Times in ms: the lowest of {ROUNDS} medians (forward and f+b "
          "alternated); GFLOP/s counts multiply-adds x 2.")
    print(memory_note(kept, args.return_freed_memory))
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

    # The ATen kernels PyTorch ran, where it ran (torch is loaded by then).
    reference_isa = torch_isa() if torch_times else None
    if args.json:
        write_json(args.json, device, build, args.gpu, rows, (ceiling, ceilings, scaled), isa,
                   torch_times, kept, breakdowns, reference_isa)
        print(f"\nwrote {args.json}")

    if torch_times:
        print(f"\nThree layers against PyTorch {torch_version()} autograd of the same maths "
              f"(dcd.layers.torch_reference; {reference_isa or 'unknown'} ATen kernels), CPU, ms: "
              f"the two timed in turns, {TORCH_ROUNDS} "
              "rounds, each side's lowest median:")
        for config, comparison in torch_times.items():
            (fwd, fwd_bwd), (tf, tfb) = comparison.chain, comparison.torch
            spread = comparison.torch_fwd_bwd_medians
            faults = ("" if comparison.torch_page_faults is None else
                      f", page faults a pass {comparison.torch_page_faults:.0f}")
            print(f"  {config.label():<26} fwd {fwd * 1e3:8.2f} vs {tf * 1e3:8.2f} "
                  f"({tf / fwd:5.1f}x)   f+b {fwd_bwd * 1e3:8.2f} vs {tfb * 1e3:8.2f} "
                  f"({tfb / fwd_bwd:5.1f}x); torch's f+b medians {min(spread) * 1e3:.0f}-"
                  f"{max(spread) * 1e3:.0f}{faults}")

    if args.gpu is None:
        print_targets(rows, ceilings, torch_times, isa, blas_isa(core), scaled, breakdowns,
                      reference_isa)
    return 0


def memory_note(kept, asked_default):
    """How the baselines' memory was handled (`kept`: keep_freed_memory's)."""
    if kept:
        return (f"Memory: glibc's malloc keeps freed blocks of up to "
                f"{memory.MMAP_THRESHOLD >> 20} MiB and a free heap top of up to "
                f"{memory.TRIM_THRESHOLD >> 20} MiB, so the numpy and PyTorch baselines reuse "
                "their memory instead of page-faulting it in on each pass "
                "(--return-freed-memory: glibc's default).")
    why = "--return-freed-memory" if asked_default else "not glibc"
    return (f"Memory: malloc as it comes ({why}); the numpy and PyTorch baselines may "
            "page-fault their memory in on each pass.")


def torch_version():
    import torch
    return torch.__version__


# CostVolume's forward and backward GFLOP/s against the run's sgemm (item 4).
SGEMM_SHARE_TARGET = 0.5

# The chain's forward + backward against PyTorch autograd's (item 5).
CHAIN_SPEEDUP_TARGET = 20

# sgemm timings of one run further apart than this (highest / lowest) mean
# that the machine's load changed while the run went on.
STEADY_SGEMM = 1.10


def print_targets(rows, ceilings, torch_times, isa, sgemm_isa=None, scaled=0.0,
                  breakdowns=None, reference_isa=None):
    """The CPU targets at C=64, 112x112, d=7, on this machine's ISA (with a
    note where sgemm's kernels, or PyTorch's (`reference_isa`), use another
    vector ISA than the layers').
    `ceilings`: the run's sgemm GFLOP/s timings on all threads, `scaled` the
    one-thread figure times the layers' threads; the shares are of the
    highest of all, and are judged only where `ceilings` agree within
    STEADY_SGEMM (else '[unsure]': on a machine whose load moves, a share
    says little either way). `breakdowns` (config -> chain_breakdown) adds,
    under the chain's line, where its time goes."""
    ceiling = max(max(ceilings), scaled)
    steady = max(ceilings) <= STEADY_SGEMM * min(ceilings)
    print(f"\nCPU targets (C=64, 112x112, d=7; {isa} kernels; ratios within this run):")
    if sgemm_isa is not None and sgemm_isa != isa:
        print(f"  (sgemm ran {sgemm_isa} kernels, the layers {isa}: the sgemm shares are not "
              "like for like; --kernels picks both)")
    if reference_isa is not None and reference_isa != isa:
        print(f"  (PyTorch ran {reference_isa} ATen kernels, the layers {isa}: the chain ratio is "
              "not like for like; --kernels picks both)")
    if not steady:
        print(f"  (sgemm read {min(ceilings):.0f}-{max(ceilings):.0f} GFLOP/s within this "
              f"run, more than {STEADY_SGEMM - 1:.0%} apart: the machine's load changed while it ran, so "
              "the sgemm shares are not judged; rerun on a quieter machine)")

    target = f"{SGEMM_SHARE_TARGET:.0%}"

    def share_line(config, what, multiply_adds, seconds, why):
        # The time the target allows beside the time taken, so that a
        # reader sees how far a machine sits from the line either way.
        share = multiply_adds / seconds / 1e9 / ceiling
        allowed = multiply_adds / (SGEMM_SHARE_TARGET * ceiling * 1e9)
        mark = ("unsure" if not steady else "held" if share >= SGEMM_SHARE_TARGET
                else "NOT HELD")
        print(f"  [{mark}] N={config.batch}: CostVolume {what} at {share:.1%} of sgemm "
              f"GFLOP/s ({why} >= {target}): {seconds * 1e3:.2f} ms, where {target} allows "
              f"{allowed * 1e3:.2f}: {time_margin(seconds, allowed)}")
    for config, layer, fwd, fwd_bwd, *_ in rows:
        if (config.size, config.max_displacement) != (112, 7):
            continue
        if layer == "CostVolume":
            share_line(config, "forward", flops(config)[layer][0], fwd, "target")
            # Both gradients (twice the forward's multiply-adds) in f+b - f,
            # normalisations included, held to the forward's standard.
            share_line(config, "backward (both gradients, f+b - fwd)", flops(config)[layer][1],
                       fwd_bwd - fwd, "the forward's target,")
        if layer == "chain":
            comparison = torch_times.get(config)
            if comparison is None:
                print(f"  [not measured] N={config.batch}: three layers against PyTorch autograd "
                      "(torch not installed, or --no-reference)")
            else:
                speedup = comparison.speedup
                mark = "held" if speedup >= CHAIN_SPEEDUP_TARGET else "NOT HELD"
                print(f"  [{mark}] N={config.batch}: three layers forward+backward "
                      f"{speedup:.1f}x faster than PyTorch autograd (target >= "
                      f"{CHAIN_SPEEDUP_TARGET}x; each side's lowest median, timed in turns)")
            if breakdowns and config in breakdowns:
                print_chain_breakdown(config, breakdowns[config], ceiling, comparison)


def time_margin(took, allowed):
    """How a time taken stands against the most a target allows: 'x% under'
    it, or the share of the time taken that has to go ('needs x% off')."""
    if took <= allowed:
        return f"{1 - took / allowed:.1%} under"
    return f"needs {1 - allowed / took:.1%} off"


# The chain's layers in the order the breakdown lists them.
CHAIN_ORDER = LAYERS + ("Split",)


def print_chain_breakdown(config, parts, ceiling, comparison=None):
    """Under the chain's target line: each layer's forward + backward within
    the chain (chain_breakdown), CostVolume's multiply-adds at the run's
    sgemm rate (the floor that kernel work alone cannot go under), and,
    where PyTorch was timed (`comparison`), the chain's time that 20x its
    figure asks for: whether a miss is the kernels' or the machine's is
    then in the run's own figures."""
    kinds = sorted(parts, key=lambda k: CHAIN_ORDER.index(k) if k in CHAIN_ORDER
                   else len(CHAIN_ORDER))
    cells = ", ".join(f"{k} {parts[k][0] * 1e3:.2f} + {parts[k][1] * 1e3:.2f}" for k in kinds)
    total = sum(f + b for f, b in parts.values())
    floor = multiply_add_floor(config, ceiling)
    print(f"      its f+b by layer, each timed alone within the chain's passes (forward + "
          f"backward ms): {cells}; sum {total * 1e3:.2f}")
    line = (f"      CostVolume's multiply-adds alone take {floor * 1e3:.2f} ms at the run's sgemm "
            f"rate, the rest {max(total - floor, 0) * 1e3:.2f} ms")
    if comparison is not None:
        chain = comparison.chain[1]
        needed = comparison.torch[1] / CHAIN_SPEEDUP_TARGET
        line += (f"; {CHAIN_SPEEDUP_TARGET}x PyTorch's {comparison.torch[1] * 1e3:.1f} ms "
                 f"needs the chain at {needed * 1e3:.2f} ms or less: it took "
                 f"{chain * 1e3:.2f} ms, {time_margin(chain, needed)}")
    print(line)


def main_caffe_time(args):
    from dcd.perf import caffe_time
    from dcd.caffeio.buildinfo import build_info_near, device_name
    from dcd.util.paths import caffe_binary
    caffe_bin = caffe_binary()
    configs = list(itertools.product(args.sizes, args.displacements, args.batches))
    results = [caffe_time.time_layers(caffe_bin, args.channels, size, d, n, args.gpu)
               for size, d, n in tqdm(configs, desc="caffe time", unit="config")]
    device = device_name(args.gpu)
    build = build_info_near(caffe_bin)
    print(f"Device: {device} (build: CUDA {build.get('cuda')}, cuDNN {build.get('cudnn')}); "
          "caffe time, ms per frame (one feature-map pair)")
    for r in results:
        label = f"C={r['channels']} {r['size']}x{r['size']} d={r['max_displacement']} N={r['batch']}"
        cells = ", ".join(f"{k} {v['forward_ms_per_frame']:.3f} fwd / {v['backward_ms_per_frame']:.3f} bwd"
                          for k, v in r["layers"].items())
        print(f"{label}: {cells}; displacement map "
              f"{r['displacement_map']['forward_ms_per_frame']:.3f} ms/frame")
    if args.json:
        out = {"device": device, "mode": "cpu" if args.gpu is None else "gpu", "build": build,
               "timer": "caffe time", "frame": "one pair of feature maps (N = batch)",
               "configs": results}
        tmp = Path(args.json).with_suffix(".partial")
        tmp.write_text(json.dumps(out, indent=2) + "\n")
        tmp.replace(args.json)
        print(f"wrote {args.json}")
    return 0


def write_json(path, device, build, gpu, rows, sgemm, isa, torch_times, kept=False,
               breakdowns=None, reference_isa=None):
    """One record per configuration: each layer's forward and forward+backward
    ms per frame and FPS (the chain's with PyTorch autograd's where
    measured), and the displacement map (CostVolume + SoftDisplacement
    forward, Table 9's bracketed figure). `sgemm`: (ceiling, the all-thread
    timings, the one-thread figure times the layers' threads); `kept`:
    whether keep_freed_memory set glibc's thresholds; `breakdowns`: the
    chain's time by layer (chain_breakdown) and CostVolume's multiply-adds
    at the sgemm ceiling; `reference_isa`: the ATen kernels PyTorch ran
    (torch_isa)."""
    configs = {}
    for config, layer, fwd, fwd_bwd, ref_fwd, ref_fwd_bwd in rows:
        entry = configs.setdefault(config.label(), {
            "channels": config.channels, "size": config.size,
            "max_displacement": config.max_displacement, "batch": config.batch, "layers": {}})
        n = config.batch
        entry["layers"][layer] = {
            "forward_ms_per_frame": 1e3 * fwd / n, "forward_fps": n / fwd,
            "forward_backward_ms_per_frame": 1e3 * fwd_bwd / n,
            "forward_backward_fps": n / fwd_bwd,
            "numpy_forward_ms_per_frame": None if ref_fwd is None else 1e3 * ref_fwd / n}
        if layer == "chain" and config in torch_times:
            comparison = torch_times[config]
            (cf, cfb), (tf, tfb) = comparison.chain, comparison.torch
            entry["layers"][layer].update({
                "torch_forward_ms_per_frame": 1e3 * tf / n,
                "torch_forward_backward_ms_per_frame": 1e3 * tfb / n,
                "torch_forward_backward_medians_ms_per_frame":
                    [1e3 * m / n for m in comparison.torch_fwd_bwd_medians],
                "torch_forward_backward_page_faults": comparison.torch_page_faults,
                "torch_cpu_kernels": reference_isa,
                "forward_ms_per_frame_beside_torch": 1e3 * cf / n,
                "forward_backward_ms_per_frame_beside_torch": 1e3 * cfb / n})
        if layer == "chain" and breakdowns and config in breakdowns:
            entry["layers"][layer]["by_layer"] = {
                kind: {"forward_ms_per_frame": 1e3 * f / n, "backward_ms_per_frame": 1e3 * b / n}
                for kind, (f, b) in breakdowns[config].items()}
            entry["layers"][layer]["cost_volume_multiply_add_floor_ms_per_frame"] = \
                1e3 * multiply_add_floor(config, sgemm[0]) / n
    for entry in configs.values():
        layers = entry["layers"]
        if "CostVolume" in layers and "SoftDisplacement" in layers:
            ms = (layers["CostVolume"]["forward_ms_per_frame"] +
                  layers["SoftDisplacement"]["forward_ms_per_frame"])
            entry["displacement_map"] = {"forward_ms_per_frame": ms, "forward_fps": 1e3 / ms}
    out = {"device": device, "mode": "cpu" if gpu is None else "gpu", "build": build,
           "frame": "one pair of feature maps (N = batch)", "sgemm_gflops": sgemm[0],
           "sgemm_gflops_timings": sgemm[1], "sgemm_gflops_one_thread_scaled": sgemm[2],
           "cpu_kernels": isa, "malloc_keeps_freed_memory": bool(kept),
           "configs": list(configs.values())}
    tmp = Path(path).with_suffix(".partial")
    tmp.write_text(json.dumps(out, indent=2) + "\n")
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())
