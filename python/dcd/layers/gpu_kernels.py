"""The DCD layers' CUDA kernel bodies (caffe_layers/include/caffe/util/
dcd_kernels.hpp) compiled on their own with pycuda, without Caffe: a GPU
check that needs nothing but nvcc, a driver and pycuda (tests/gpu/).

`kernel_source()` is the CUDA module: one extern "C" grid-stride kernel per
body, for float32, launched exactly as the layers' .cu files launch them.
`Kernels` runs the three layers' forward and backward passes on numpy
arrays. The warp's gradient to F sorts its tap list on the host with a
stable sort (the guarantee CUB's radix sort gives in the layer); emitting
the taps, finding the runs and summing them run on the GPU.
"""
import subprocess
from pathlib import Path

import numpy as np

from dcd.layers import TEMPERATURE
from dcd.util.paths import REPO_ROOT

INCLUDE_DIR = REPO_ROOT / "caffe_layers" / "include"
THREADS = 512  # CAFFE_CUDA_NUM_THREADS


# (name, parameters, body call): each becomes
#   extern "C" __global__ void name(int n, parameters) { LOOP body; }
_KERNELS = [
    ("cv_normalize", "const float* f, int C, int H, int W, float eps, float* inv, float* out, "
                     "int pad_h, int pad_w, int out_w, int out_plane",
     "cost_volume_normalize_pixel(i, f, C, H, W, eps, inv, out, pad_h, pad_w, out_w, out_plane)"),
    ("cv_forward", "const float* a, const float* b, int C, int H, int W, int dh, int dw, int s, "
                   "float* top",
     "cost_volume_forward_block(i, a, b, C, H, W, dh, dw, s, top)"),
    ("cv_backward_a", "const float* g, const float* b, int C, int H, int W, int dh, int dw, "
                      "int s, float* da",
     "cost_volume_backward_a_block(i, g, b, C, H, W, dh, dw, s, da)"),
    ("cv_backward_b", "const float* g, const float* a, int C, int H, int W, int dh, int dw, "
                      "int s, float* db",
     "cost_volume_backward_b_block(i, g, a, C, H, W, dh, dw, s, db)"),
    ("cv_normalize_backward", "const float* f, const float* inv, int C, int hw, float* diff",
     "cost_volume_normalize_backward_pixel(i, f, inv, C, hw, diff)"),
    ("cv_backward_both", "int count_a, const float* g, const float* a, const float* b, int C, "
                         "int H, int W, int dh, int dw, int s, float* da, float* db",
     "cost_volume_backward_both(i, count_a, g, a, b, C, H, W, dh, dw, s, da, db)"),
    ("cv_normalize_backward_both", "int npix_a, const float* fa, const float* inv_a, "
                                   "const float* fb, const float* inv_b, int C, int hw, "
                                   "float* da, float* db",
     "cost_volume_normalize_backward_both(i, npix_a, fa, inv_a, fb, inv_b, C, hw, da, db)"),
    ("sd_forward", "const float* cost, int hw, int dh, int dw, int s, float inv_tau, int wta, "
                   "float* top",
     "soft_displacement_forward_pixel(i, cost, hw, dh, dw, s, inv_tau, wta != 0, top)"),
    ("sd_backward", "const float* cost, const float* g, int hw, int dh, int dw, int s, "
                    "float inv_tau, float* dc",
     "soft_displacement_backward_pixel(i, cost, g, hw, dh, dw, s, inv_tau, dc)"),
    ("warp_forward", "const float* f, const float* v, int C, int H, int W, float s, float* top",
     "bilinear_warp_forward_elem(i, f, v, C, H, W, s, top)"),
    ("warp_emit_taps", "const float* v, int N, int H, int W, float s, int* keys, int* values",
     "bilinear_warp_emit_taps(i, v, N, H, W, s, keys, values)"),
    ("warp_run_starts", "const int* keys, int m, int* starts",
     "bilinear_warp_run_start(i, keys, m, starts)"),
    ("warp_backward_f", "const int* values, const int* starts, const float* v, const float* g, "
                        "int C, int H, int W, float s, float* df",
     "bilinear_warp_backward_f_elem(i, values, starts, v, g, C, H, W, s, df)"),
    ("warp_backward_v", "const float* f, const float* v, const float* g, int C, int H, int W, "
                        "float s, float* dv",
     "bilinear_warp_backward_v_pixel(i, f, v, g, C, H, W, s, dv)"),
]


# The warp's gradient to F before the sort-based gather (one thread per
# (n, c) plane scattering serially), kept here only to time it beside the new
# kernels.
_LEGACY_WARP_BACKWARD_F = """
__global__ void warp_backward_f_legacy(int nplanes, const float* v, const float* top_diff,
                                       int C, int H, int W, float s, float* f_diff) {
  for (int nc = blockIdx.x * blockDim.x + threadIdx.x; nc < nplanes;
       nc += blockDim.x * gridDim.x) {
    const int hw = H * W;
    float* plane = f_diff + nc * hw;
    const float* g = top_diff + nc * hw;
    for (int p = 0; p < hw; ++p) { plane[p] = 0; }
    for (int p = 0; p < hw; ++p) {
      const BilinearTaps<float> t = warp_taps(v, nc / C, p, H, W, s);
      for (int k = 0; k < 4; ++k) {
        const int q = tap_index(t, k, H, W);
        if (q >= 0) { plane[q] += g[p] * bilinear_weight(k, t.ay, t.ax); }
      }
    }
  }
}"""


# CostVolume's tiled forward (cost_volume_layer.cu's CostVolumeForwardTiled,
# float): one block per tile, the tiling recomputed on the device from the
# same arguments as cost_volume_tile() below.
_TILED_FORWARD = """
__global__ void __launch_bounds__(kCostVolumeTileMaxThreads)
cv_forward_tiled(int C, int H, int W, int dh, int dw, int s, int smem_bytes,
                 const float* a_hat, const float* b_hat_pad, float* top) {
  extern __shared__ __align__(16) unsigned char smem[];
  const CostVolumeTile T = cost_volume_tile(C, H, W, dh, dw, s, 4, smem_bytes);
  float* a_s = reinterpret_cast<float*>(smem);
  float* b_s = a_s + T.a_size();
  const int t = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
  float acc[kCostVolumeTileMaxW];
  for (int d = 0; d < kCostVolumeTileMaxW; ++d) { acc[d] = 0; }
  for (int c0 = 0; c0 < C; c0 += T.cc) {
    __syncthreads();
    cost_volume_tile_load(t, T, blockIdx.x, c0, a_hat, b_hat_pad, C, H, W, dh, dw, s, a_s, b_s);
    __syncthreads();
    cost_volume_tile_accumulate(threadIdx.x, threadIdx.y, threadIdx.z, T, dcd_min(T.cc, C - c0),
                                dw, s, a_s, b_s, acc);
  }
  cost_volume_tile_store(threadIdx.x, threadIdx.y, threadIdx.z, T, blockIdx.x, H, W, dh, dw, s,
                         acc, top);
}"""
SMEM_BYTES = 48 * 1024  # cost_volume_layer.cu's kCostVolumeSmemBytes


def cost_volume_tile(c, h, w, dh, dw, s, dtype_size=4, smem_bytes=SMEM_BYTES):
    """dcd::cost_volume_tile's tiling: {block, blocks_per_image, smem, ok}."""
    rows, tw = 2 * dh + 1, 16  # kCostVolumeTileW
    th = max(1, min(8, 1024 // (tw * rows)))
    hh, hw_ = th + 2 * dh * s, tw + 2 * dw * s
    cc = min(c, 16, smem_bytes // ((th * tw + hh * hw_) * dtype_size))
    ok = tw * rows <= 1024 and 2 * dw + 1 <= 16 and cc >= 1
    return {"block": (tw, th, rows), "blocks_per_image": -(-h // th) * -(-w // tw),
            "smem": cc * (th * tw + hh * hw_) * dtype_size, "ok": ok}


def kernel_source():
    """The CUDA module's source (include path: INCLUDE_DIR)."""
    lines = ['#include "caffe/util/dcd_kernels.hpp"',
             "using namespace caffe::dcd;",
             'extern "C" {', _LEGACY_WARP_BACKWARD_F, _TILED_FORWARD]
    for name, params, call in _KERNELS:
        lines.append(f"__global__ void {name}(int n, {params}) {{\n"
                     "  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n;\n"
                     "       i += blockDim.x * gridDim.x) {\n"
                     f"    {call};\n  }}\n}}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def nvcc_compile(out_path, arch="sm_90", nvcc="nvcc"):
    """Compiles kernel_source() to a cubin with nvcc (no GPU needed); raises
    RuntimeError with nvcc's output on failure."""
    src = Path(out_path).with_suffix(".cu")
    src.write_text(kernel_source())
    proc = subprocess.run([nvcc, "-cubin", "-std=c++17", f"-arch={arch}", "-I", str(INCLUDE_DIR),
                           "-o", str(out_path), str(src)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"nvcc failed on the pycuda kernel module:\n{proc.stderr}")
    return Path(out_path)


def gpu_unavailable_reason():
    """None when pycuda can run kernels here, else one line saying why not."""
    try:
        import pycuda  # noqa: F401
    except ImportError:
        return "pycuda is not installed (tools/install_pycuda.sh builds it)"
    try:
        import pycuda.driver as drv
        drv.init()
        count = drv.Device.count()
    except Exception as exc:  # noqa: BLE001 - any failure is the reason to skip
        return f"no usable CUDA driver: {type(exc).__name__}: {str(exc).splitlines()[0]}"
    if count == 0:
        return "the CUDA driver sees no GPU"
    return None


def _blocks(n):
    return ((n + THREADS - 1) // THREADS, 1)


class Kernels:
    """The layers' kernels on one GPU (a pycuda context made current here)."""

    def __init__(self, device=0):
        import pycuda.driver as drv
        from pycuda.compiler import SourceModule
        drv.init()
        self.drv = drv
        self.device = drv.Device(device)
        self.context = self.device.make_context()
        try:
            self.module = SourceModule(kernel_source(), no_extern_c=True,
                                       include_dirs=[str(INCLUDE_DIR)], options=["-std=c++17"])
        except Exception:
            self.context.pop()
            raise
        self.fn = {name: self.module.get_function(name) for name, _, _ in _KERNELS}
        for extra in ("warp_backward_f_legacy", "cv_forward_tiled"):
            self.fn[extra] = self.module.get_function(extra)

    def close(self):
        self.context.pop()

    @property
    def name(self):
        return self.device.name()

    # --- helpers ---------------------------------------------------------
    def _launch(self, name, n, *args):
        if n == 0:
            return
        conv = [np.int32(a) if isinstance(a, (int, np.integer)) else
                np.float32(a) if isinstance(a, float) else a for a in args]
        self.fn[name](np.int32(n), *conv, block=(THREADS, 1, 1), grid=_blocks(n))

    def _to_gpu(self, array, dtype=np.float32):
        return self.drv.to_device(np.ascontiguousarray(array, dtype=dtype))

    def _empty(self, shape, dtype=np.float32, fill=np.nan):
        # Filled with NaN (or -1) so an element no kernel writes shows up.
        return self._to_gpu(np.full(shape, fill, dtype=dtype), dtype)

    def _get(self, gpu, shape, dtype=np.float32):
        out = np.empty(shape, dtype=dtype)
        self.drv.memcpy_dtoh(out, gpu)
        return out

    # --- CostVolume ------------------------------------------------------
    def cost_volume(self, fa, fb, dh, dw, s=1, eps=1e-6, top_diff=None):
        """Forward (and backward when top_diff is given) as Forward_gpu and
        Backward_gpu launch them: returns top or (top, d fa, d fb)."""
        n, c, h, w = fa.shape
        hw, npix, d = h * w, n * h * w, (2 * dh + 1) * (2 * dw + 1)
        pad_h, pad_w = dh * s, dw * s
        pw, pplane = w + 2 * pad_w, (h + 2 * pad_h) * (w + 2 * pad_w)
        ga, gb = self._to_gpu(fa), self._to_gpu(fb)
        a_hat, inv_a, inv_b = self._empty(fa.shape), self._empty(npix), self._empty(npix)
        b_hat = self._to_gpu(np.zeros((n, c, h + 2 * pad_h, pw), np.float32))
        top = self._empty((n, d, h, w))
        self._launch("cv_normalize", npix, ga, c, h, w, float(eps), inv_a, a_hat, 0, 0, w, hw)
        self._launch("cv_normalize", npix, gb, c, h, w, float(eps), inv_b, b_hat, pad_h, pad_w,
                     pw, pplane)
        tile = cost_volume_tile(c, h, w, dh, dw, s)
        if tile["ok"]:
            self.fn["cv_forward_tiled"](
                *(np.int32(v) for v in (c, h, w, dh, dw, s, SMEM_BYTES)), a_hat, b_hat, top,
                block=tile["block"], grid=(n * tile["blocks_per_image"], 1),
                shared=tile["smem"])
        else:
            blocks_d = -(-(2 * dw + 1) // 8)  # kCostVolumeBlockD
            self._launch("cv_forward", n * (2 * dh + 1) * blocks_d * hw, a_hat, b_hat, c, h, w,
                         dh, dw, s, top)
        top_host = self._get(top, (n, d, h, w))
        if top_diff is None:
            return top_host
        g = self._to_gpu(top_diff)
        da, db = self._empty(fa.shape), self._empty(fb.shape)
        count = n * -(-c // 4) * hw  # kCostVolumeBlockC
        # both inputs per launch, as Backward_gpu
        self._launch("cv_backward_both", 2 * count, count, g, a_hat, b_hat, c, h, w, dh, dw, s,
                     da, db)
        self._launch("cv_normalize_backward_both", 2 * npix, npix, ga, inv_a, gb, inv_b, c, hw,
                     da, db)
        return top_host, self._get(da, fa.shape), self._get(db, fb.shape)

    # --- SoftDisplacement --------------------------------------------------
    def soft_displacement(self, cost, dh, dw, s=1, temperature=TEMPERATURE, wta=False):
        n, d, h, w = cost.shape
        top = self._empty((n, 2, h, w))
        self._launch("sd_forward", n * h * w, self._to_gpu(cost), h * w, dh, dw, s,
                     np.float32(1) / np.float32(temperature), int(wta), top)
        return self._get(top, (n, 2, h, w))

    def soft_displacement_backward(self, cost, top_diff, dh, dw, s=1, temperature=TEMPERATURE):
        n, d, h, w = cost.shape
        dc = self._empty(cost.shape)
        self._launch("sd_backward", n * h * w, self._to_gpu(cost), self._to_gpu(top_diff), h * w,
                     dh, dw, s, np.float32(1) / np.float32(temperature), dc)
        return self._get(dc, cost.shape)

    # --- BilinearWarp ------------------------------------------------------
    def bilinear_warp(self, f, v, scale=1.0):
        top = self._empty(f.shape)
        n, c, h, w = f.shape
        self._launch("warp_forward", f.size, self._to_gpu(f), self._to_gpu(v), c, h, w,
                     float(scale), top)
        return self._get(top, f.shape)

    def bilinear_warp_backward(self, f, v, top_diff, scale=1.0):
        """(d f, d v): the four steps of Backward_gpu, the sort on the host."""
        n, c, h, w = f.shape
        npix, m = n * h * w, 4 * n * h * w
        gv, gg = self._to_gpu(v), self._to_gpu(top_diff)
        keys = self._empty(m, np.int32, -1)
        values = self._empty(m, np.int32, -1)
        self._launch("warp_emit_taps", npix, gv, n, h, w, float(scale), keys, values)
        keys_h, values_h = self._get(keys, m, np.int32), self._get(values, m, np.int32)
        order = np.argsort(keys_h, kind="stable")
        sorted_keys = self._to_gpu(keys_h[order], np.int32)
        sorted_values = self._to_gpu(values_h[order], np.int32)
        starts = self._empty(npix + 1, np.int32, -1)
        self._launch("warp_run_starts", npix + 1, sorted_keys, m, starts)
        df, dv = self._empty(f.shape), self._empty(v.shape)
        self._launch("warp_backward_f", f.size, sorted_values, starts, gv, gg, c, h, w,
                     float(scale), df)
        self._launch("warp_backward_v", npix, self._to_gpu(f), gv, gg, c, h, w, float(scale), dv)
        return self._get(df, f.shape), self._get(dv, v.shape)

    def time_warp_backward_f(self, n=8, c=64, h=224, w=224, repeats=5, seed=0):
        """Milliseconds (CUDA events, median of `repeats`) of the warp's
        gradient to F: the old one-thread-per-plane kernel, and the new
        kernels without the sort (emit, run starts, gather; the layer's CUB
        sort is timed by `caffe time` with the rest of the layer)."""
        rng = np.random.default_rng(seed)
        v = rng.uniform(-3, 3, (n, 2, h, w)).astype(np.float32)
        g = rng.uniform(-1, 1, (n, c, h, w)).astype(np.float32)
        npix, m = n * h * w, 4 * n * h * w
        gv, gg = self._to_gpu(v), self._to_gpu(g)
        df = self._empty((n, c, h, w))
        keys, values = self._empty(m, np.int32, -1), self._empty(m, np.int32, -1)
        starts = self._empty(npix + 1, np.int32, -1)

        def timed(fn):
            start, end = self.drv.Event(), self.drv.Event()
            times = []
            for _ in range(repeats + 1):  # the first is a warm-up
                start.record()
                fn()
                end.record()
                end.synchronize()
                times.append(end.time_since(start))
            return float(np.median(times[1:]))

        legacy = timed(lambda: self._launch("warp_backward_f_legacy", n * c, gv, gg, c, h, w,
                                            -1.0, df))
        emit = timed(lambda: self._launch("warp_emit_taps", npix, gv, n, h, w, -1.0, keys,
                                          values))
        keys_h, values_h = self._get(keys, m, np.int32), self._get(values, m, np.int32)
        order = np.argsort(keys_h, kind="stable")
        sorted_keys = self._to_gpu(keys_h[order], np.int32)
        sorted_values = self._to_gpu(values_h[order], np.int32)
        runs = timed(lambda: self._launch("warp_run_starts", npix + 1, sorted_keys, m, starts))
        gather = timed(lambda: self._launch("warp_backward_f", n * c * h * w, sorted_values,
                                            starts, gv, gg, c, h, w, -1.0, df))
        return {"shape": [n, c, h, w], "legacy_plane_serial_ms": legacy,
                "new_emit_ms": emit, "new_run_starts_ms": runs, "new_gather_ms": gather,
                "new_without_sort_ms": emit + runs + gather, "device": self.name}


def main(argv=None):
    """python -m dcd.layers.gpu_kernels [--json FILE]: the warp backward, old and new."""
    import argparse
    import json
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--json")
    p.add_argument("--sizes", type=int, nargs="+", default=[112, 224])
    args = p.parse_args(argv)
    reason = gpu_unavailable_reason()
    if reason:
        print(f"error: {reason}")
        return 1
    k = Kernels()
    try:
        results = [k.time_warp_backward_f(h=size, w=size) for size in args.sizes]
    finally:
        k.close()
    for r in results:
        print(f"{r['device']} N,C,H,W={r['shape']}: old {r['legacy_plane_serial_ms']:.3f} ms, "
              f"new without the sort {r['new_without_sort_ms']:.3f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    import sys
    sys.exit(main())
