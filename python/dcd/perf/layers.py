"""Timing the DCD layers through pycaffe against numpy, in one run.

Figures are ratios against baselines measured in the same process: numpy's
float32 matrix multiply (the machine's ceiling in GFLOP/s) and the
vectorised numpy reference of dcd.layers.reference.
"""
import ctypes
import os
import statistics
import time
from dataclasses import dataclass

import numpy as np

from dcd.caffeio.netio import load_net
from dcd.layers import reference as ref
from dcd.util.memory import minor_faults


class DeviceSync:
    """Waits for the GPU's queued work: a forward pass of a one-element net
    (its input copy to the GPU and its output copy back are synchronous
    cudaMemcpy calls on the default stream that Caffe's kernels use). Costs
    microseconds, where reading a big blob through pycaffe would time a
    device-to-host copy of it; on the CPU it does nothing."""

    def __init__(self, gpu):
        self.net = None
        if gpu is None:
            return
        import caffe
        from caffe import layers as L
        n = caffe.NetSpec()
        n.x = L.Input(shape=dict(dim=[1]))
        n.y = L.Power(n.x, power=1.0)
        self.net = load_net(n.to_proto(), caffe.TEST)

    def __call__(self):
        if self.net is not None:
            self.net.blobs["x"].data[...] = 1
            self.net._forward(0, len(self.net.layers) - 1)
            float(self.net.blobs["y"].data[0])


def forward(net, sync, end=None):
    """net's forward pass up to layer `end` (all by default), without
    pycaffe's copies of the outputs, then sync()."""
    names = list(net._layer_names)
    net._forward(0, names.index(end) if end else len(names) - 1)
    sync()


def forward_backward(net, sync):
    """Forward then backward over all layers (the top diffs as they are), then sync()."""
    last = len(net.layers) - 1
    net._forward(0, last)
    net._backward(last, 0)
    sync()


def repeated(fn, min_time=0.3, min_reps=3, max_reps=50):
    """fn()'s results over at least min_reps calls and until min_time has
    passed (at most max_reps calls)."""
    results = []
    start = time.perf_counter()
    while len(results) < min_reps or (time.perf_counter() - start < min_time
                                      and len(results) < max_reps):
        results.append(fn())
    return results


def median_seconds(fn, reps=None, warmup=1, min_time=0.3, min_reps=3, max_reps=50):
    """Median seconds of fn() after `warmup` calls: over `reps` calls, or by
    default at least min_reps and until min_time has passed (at most max_reps)."""
    if reps is not None:
        min_reps = max_reps = reps
    for _ in range(warmup):
        fn()

    def timed():
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0
    return statistics.median(repeated(timed, min_time, min_reps, max_reps))


def alternated_medians(fns, rounds):
    """`rounds` medians (s) of each of `fns`, the functions taken in turn
    round after round: one list per function."""
    medians = [[] for _ in fns]
    for _ in range(rounds):
        for fn, times in zip(fns, medians):
            times.append(median_seconds(fn))
    return medians


def best_of_medians(fwd, fwd_bwd, rounds=3):
    """(forward s, forward+backward s): the lowest of `rounds` medians of
    each, the two alternated. A neighbour's load only ever slows a timing,
    so one burst during a single median would otherwise stand for the
    whole."""
    f, f_b = alternated_medians((fwd, fwd_bwd), rounds)
    return min(f), min(f_b)


def sgemm_gflops(size=1024):
    """numpy float32 matrix-multiply GFLOP/s (all BLAS threads: the ceiling)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    return 2 * size ** 3 / median_seconds(lambda: a @ b) / 1e9


def sgemm_gflops_one_thread():
    """sgemm_gflops on one BLAS thread, in a fresh process (OpenBLAS reads its
    thread count at start-up; the environment's OPENBLAS_CORETYPE carries
    over). Times the layers' thread count, a ceiling that a neighbour busy on
    one of the cores does not lower: OpenBLAS splits a product evenly over
    its threads, so one slowed core holds the whole product back."""
    import subprocess
    import sys

    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-c",
                          "from dcd.perf.layers import sgemm_gflops; print(sgemm_gflops())"],
                         env=env, capture_output=True, text=True, check=True)
    return float(run.stdout.split()[-1])


def layer_threads(environ=None):
    """The OpenMP threads the CPU layers run on: OMP_NUM_THREADS, else the
    cores this process may use."""
    environ = os.environ if environ is None else environ
    value = environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


@dataclass(frozen=True)
class Config:
    channels: int
    size: int          # H = W
    max_displacement: int
    batch: int
    dilation: int = 1
    temperature: float = ref.TEMPERATURE  # the nets'

    @property
    def window(self):
        return (2 * self.max_displacement + 1) ** 2

    def label(self):
        return (f"C={self.channels} {self.size}x{self.size} d={self.max_displacement} "
                f"N={self.batch}")


def flops(config):
    """Multiply-adds x 2 of forward and backward, per layer."""
    n, c, hw, d = config.batch, config.channels, config.size ** 2, config.window
    return {
        "CostVolume": (2 * n * d * hw * c, 4 * n * d * hw * c),
        "SoftDisplacement": (6 * n * d * hw, 8 * n * d * hw),
        "BilinearWarp": (8 * n * c * hw, 16 * n * c * hw),
    }


def _net(config, layers):
    import caffe
    from caffe import layers as L

    shape = [config.batch, config.channels, config.size, config.size]
    dd = dict(max_displacement=config.max_displacement, dilation=config.dilation)
    n = caffe.NetSpec()
    n.feat_a = L.Input(shape=dict(dim=shape))
    n.feat_b = L.Input(shape=dict(dim=shape))
    if layers in ("CostVolume", "chain"):
        n.cost = L.CostVolume(n.feat_a, n.feat_b, cost_volume_param=dd)
    else:
        n.cost = L.Input(shape=dict(dim=[config.batch, config.window, config.size, config.size]))
    if layers in ("SoftDisplacement", "BilinearWarp", "chain"):
        n.disp = L.SoftDisplacement(n.cost, soft_displacement_param=dict(
            temperature=config.temperature, **dd))
    if layers in ("BilinearWarp", "chain"):
        n.warped = L.BilinearWarp(n.feat_a, n.disp, bilinear_warp_param=dict(displacement_scale=-1))
    proto = n.to_proto()
    proto.force_backward = True
    return load_net(proto, caffe.TEST)


def _inputs(config, rng):
    shape = (config.batch, config.channels, config.size, config.size)
    fa = rng.standard_normal(shape, dtype=np.float32)
    fb = np.roll(fa, (1, 2), axis=(2, 3)) + 0.1 * rng.standard_normal(shape, dtype=np.float32)
    return fa, fb


def _feed(net, config, rng):
    """A feature pair from _inputs into net's feat_a and feat_b, and 1 as
    the last top's diff (what every timing backpropagates); returns the pair."""
    fa, fb = _inputs(config, rng)
    net.blobs["feat_a"].data[...] = fa
    net.blobs["feat_b"].data[...] = fb
    net.blobs[list(net.blobs)[-1]].diff[...] = 1
    return fa, fb


def time_layer(config, layer, rng, sync=lambda: None, rounds=3):
    """(forward s, forward+backward s) of one layer through pycaffe.

    SoftDisplacement and BilinearWarp are timed by difference from their
    producers (a SoftDisplacement on an Input cost volume, and the same net
    plus the warp), so each figure is the layer's own. `sync` waits for the
    device (DeviceSync) so GPU times are the device's, not the launches'.
    Each figure is the lowest of `rounds` medians, forward and
    forward+backward alternated: a neighbour's load only ever slows a
    timing, and one burst during a single median would otherwise stand for
    the layer (and, in f+b - fwd, flatter the backward).
    """
    def measure(net, cost_is_input=False):
        _feed(net, config, rng)
        if cost_is_input:
            net.blobs["cost"].data[...] = rng.uniform(-1, 1, net.blobs["cost"].data.shape)
        return best_of_medians(lambda: forward(net, sync),
                               lambda: forward_backward(net, sync), rounds)

    if layer == "CostVolume" or layer == "chain":
        return measure(_net(config, layer))
    soft = measure(_net(config, "SoftDisplacement"), cost_is_input=True)
    if layer == "SoftDisplacement":
        return soft
    both = measure(_net(config, "BilinearWarp"), cost_is_input=True)
    return max(both[0] - soft[0], 1e-9), max(both[1] - soft[1], 1e-9)


def chain_breakdown(config, rng, sync=lambda: None, rounds=3):
    """Where the chain's forward+backward goes: {layer type: (forward s,
    backward s)} for the layers of the chain net that compute something
    (CostVolume, SoftDisplacement, BilinearWarp, and the Split that Caffe
    puts on feat_a, whose backward sums the two diffs), each layer timed on
    its own within whole passes, in the net's order: a pass runs every
    layer's forward, then every backward, so each finds the caches as the
    chain leaves them. Each figure is the lowest of `rounds` medians, as
    time_layer's. Their sum runs a little above the chain's f+b (a timer
    per layer)."""
    net = _net(config, "chain")
    _feed(net, config, rng)
    # The Inputs' passes do nothing, so running the others alone, in
    # order, is the chain's pass.
    timed = [(i, layer.type) for i, layer in enumerate(net.layers) if layer.type != "Input"]

    def one_pass():
        times = {}
        for i, kind in timed:
            start = time.perf_counter()
            net._forward(i, i)
            sync()
            times[(kind, 0)] = time.perf_counter() - start
        for i, kind in reversed(timed):
            start = time.perf_counter()
            net._backward(i, i)
            sync()
            times[(kind, 1)] = time.perf_counter() - start
        return times

    one_pass()  # warm-up
    best = {}
    for _ in range(rounds):
        passes = repeated(one_pass)  # median_seconds' stopping rule
        for key in passes[0]:
            median = statistics.median(p[key] for p in passes)
            best[key] = min(best.get(key, median), median)
    return {kind: (best[(kind, 0)], best[(kind, 1)]) for _, kind in timed}


def multiply_add_floor(config, gflops):
    """Seconds that CostVolume's forward and backward multiply-adds take at
    `gflops` (the run's sgemm ceiling): the chain's floor at the
    machine's matrix-multiply rate, before any of its other work."""
    return sum(flops(config)["CostVolume"]) / (gflops * 1e9)


def time_reference(config, layer, rng):
    """(forward s, forward+backward s) of the vectorised numpy reference."""
    fa, fb = _inputs(config, rng)
    d, s, tau = config.max_displacement, config.dilation, config.temperature
    cost = ref.cost_volume(fa, fb, d, d, s)
    disp = ref.soft_displacement(cost, d, d, s, tau)
    fwd = {
        "CostVolume": lambda: ref.cost_volume(fa, fb, d, d, s),
        "SoftDisplacement": lambda: ref.soft_displacement(cost, d, d, s, tau),
        "BilinearWarp": lambda: ref.bilinear_warp(fa, disp, -1.0),
    }
    bwd = {
        "CostVolume": lambda: ref.cost_volume_backward(fa, fb, cost, d, d, s),
        "SoftDisplacement": lambda: ref.soft_displacement_backward(cost, disp, d, d, s, tau),
        "BilinearWarp": lambda: ref.bilinear_warp_backward(fa, disp, fa, -1.0),
    }
    if layer == "chain":
        layers = ("CostVolume", "SoftDisplacement", "BilinearWarp")
        f = sum(median_seconds(fwd[k], min_reps=1, min_time=0) for k in layers)
        return f, f + sum(median_seconds(bwd[k], min_reps=1, min_time=0) for k in layers)
    f = median_seconds(fwd[layer], min_reps=1, min_time=0)
    return f, f + median_seconds(bwd[layer], min_reps=1, min_time=0)


def torch_available():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class TorchComparison:
    """The three layers against PyTorch autograd of them, timed in turns
    (chain_against_torch): each side's lowest forward and forward+backward
    median (s), every round's forward+backward median of torch's, and the
    median of the minor page faults of torch's forward+backward passes
    (None where not counted)."""
    chain: tuple
    torch: tuple
    torch_fwd_bwd_medians: tuple
    torch_page_faults: float = None

    @property
    def speedup(self):
        """Forward+backward: torch's lowest median over the chain's."""
        return self.torch[1] / self.chain[1]


def chain_against_torch(config, rng, rounds=5):
    """The three layers through pycaffe and the same maths in PyTorch with
    autograd (dcd.layers.torch_reference) on the CPU, all of torch's
    threads, timed in turns: each round takes one median of each side's
    forward and forward+backward, so both sides are read in the same
    minutes, and each side's lowest median over the rounds stands for it.

    On a 2-core VM torch's forward+backward moved between about 210-300 ms
    and 480-510 ms from one minute to the next within one process, while
    the layers moved by a tenth; timed minutes apart, or over fewer rounds,
    the ratio read whichever torch the minute gave. Most of the slow passes
    were page faults, which dcd.util.memory.keep_freed_memory (called first
    by tools/benchmark_layers.py) takes away (docs/LAYERS.md)."""
    import torch

    from dcd.layers import torch_reference as tref

    net = _net(config, "chain")
    fa, fb = _feed(net, config, rng)
    ta, tb = (torch.from_numpy(x).requires_grad_() for x in (fa, fb))
    d, s, tau = config.max_displacement, config.dilation, config.temperature

    def torch_fwd():
        with torch.no_grad():
            tref.chain(ta, tb, d, d, s, tau)

    faults = []

    def torch_fwd_bwd():
        before = minor_faults()
        ta.grad = tb.grad = None
        out = tref.chain(ta, tb, d, d, s, tau)
        out.backward(torch.ones_like(out))
        if before is not None:
            faults.append(minor_faults() - before)

    f, f_b, tf, tf_b = alternated_medians(
        (lambda: forward(net, lambda: None), lambda: forward_backward(net, lambda: None),
         torch_fwd, torch_fwd_bwd), rounds)
    return TorchComparison((min(f), min(f_b)), (min(tf), min(tf_b)), tuple(tf_b),
                           statistics.median(faults) if faults else None)


def cpu_isa(cpuinfo="/proc/cpuinfo", environ=None):
    """The CostVolume CPU kernel variant this machine runs, picked as the
    layer picks it (caffe_layers' dcd::CpuIsaLevel): "AVX-512" with avx512f and
    fma, "AVX2" with avx2 and fma, else "baseline"; DCD_CPU_KERNELS=avx2
    or =baseline in `environ` (os.environ) caps it, as it caps the layer."""
    cap = (os.environ if environ is None else environ).get("DCD_CPU_KERNELS")
    isa = _cpu_isa(cpuinfo)
    if cap == "baseline" or (cap == "avx2" and isa == "AVX-512"):
        return {"baseline": "baseline", "avx2": "AVX2"}[cap]
    return isa


def _cpu_isa(cpuinfo):
    try:
        with open(cpuinfo) as f:
            flags = next((line.split(":", 1)[1].split() for line in f
                          if line.startswith("flags")), [])
    except OSError:
        flags = []
    if "fma" in flags and "avx512f" in flags:
        return "AVX-512"
    if "fma" in flags and "avx2" in flags:
        return "AVX2"
    return "baseline"


# PyTorch's ATen kernel sets (torch.backends.cpu.get_cpu_capability()) by
# the vector ISA they use, in cpu_isa's names.
_TORCH_CAPABILITY_ISA = {"AVX512": "AVX-512", "AVX2": "AVX2", "DEFAULT": "baseline"}


def torch_isa():
    """The vector ISA of the ATen kernels the loaded torch runs ("AVX-512",
    "AVX2", "baseline"; ATEN_CPU_CAPABILITY caps it when torch loads), or
    None where torch does not say."""
    import torch
    get = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", None)
    return _TORCH_CAPABILITY_ISA.get(get().upper()) if get is not None else None


# OpenBLAS core names (its kernel sets) by the widest vector ISA they use.
_BLAS_CORE_ISA = {"skylakex": "AVX-512", "cooperlake": "AVX-512",
                  "sapphirerapids": "AVX-512", "haswell": "AVX2", "zen": "AVX2",
                  "sandybridge": "AVX", "nehalem": "SSE", "core2": "SSE",
                  "prescott": "SSE"}

# --kernels of benchmark_layers: the CostVolume variant (DCD_CPU_KERNELS),
# the OpenBLAS kernels of the same ISA (OPENBLAS_CORETYPE, read when numpy's
# OpenBLAS loads) and PyTorch's ATen kernels of the same ISA
# (ATEN_CPU_CAPABILITY, read when torch loads; the chain's PyTorch baseline
# is ATen's elementwise, reduction and grid_sample kernels), so that an
# AVX-512 machine also measures the narrower variants against like-for-like
# baselines, as a machine without AVX-512 would.
KERNEL_CAPS = {"avx2": {"DCD_CPU_KERNELS": "avx2", "OPENBLAS_CORETYPE": "Haswell",
                        "ATEN_CPU_CAPABILITY": "avx2"},
               "baseline": {"DCD_CPU_KERNELS": "baseline", "OPENBLAS_CORETYPE": "Nehalem",
                            "ATEN_CPU_CAPABILITY": "default"}}


def blas_core():
    """The kernel set numpy's OpenBLAS runs ("SkylakeX", "Haswell", ...), or
    None where numpy uses another BLAS or the name cannot be read."""
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f
                            if "openblas" in line.lower() and ".so" in line})
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename",
                     "openblas_get_corename64_", "openblas_get_corename"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.restype = ctypes.c_char_p
                core = fn()
                return core.decode() if core else None
    return None


def blas_isa(core):
    """The vector ISA of an OpenBLAS core name (None if unknown)."""
    return _BLAS_CORE_ISA.get((core or "").lower())


def kernel_environment(kernels, environ=None):
    """The environment that runs `kernels` ("native", "avx2", "baseline"), or
    None when `environ` (os.environ) already does: the variables take effect
    only in a fresh process (OpenBLAS reads its own when it loads)."""
    environ = os.environ if environ is None else environ
    wanted = KERNEL_CAPS.get(kernels, {})
    if all(environ.get(k) == v for k, v in wanted.items()):
        return None
    return {**environ, **wanted}
