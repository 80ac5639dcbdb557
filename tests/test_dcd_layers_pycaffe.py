"""The three DCD layers wired as the appearance-change branch wires them,
through pycaffe and NetSpec, against the numpy reference: values and
gradients of conv features -> cost volume -> displacement -> warp -> warped
difference."""
import os

import caffe
import numpy as np
import pytest
from caffe import layers as L, params as P

from dcd.layers import reference as ref
from dcd.caffeio.netio import load_net

N, C_IN, H, W = 2, 3, 9, 12
C, DH, DW, DIL, TAU = 8, 2, 1, 2, 0.2


def branch_net(method="SOFT"):
    n = caffe.NetSpec()
    n.frame_a = L.Input(shape=dict(dim=[N, C_IN, H, W]))
    n.frame_b = L.Input(shape=dict(dim=[N, C_IN, H, W]))
    conv = dict(num_output=C, kernel_size=3, pad=1, weight_filler=dict(type="gaussian", std=0.5),
                bias_filler=dict(type="gaussian", std=0.1),
                param=[dict(name="conv_w"), dict(name="conv_b")])
    n.feat_a = L.Convolution(n.frame_a, **conv)
    n.feat_b = L.Convolution(n.frame_b, **conv)
    n.cost = L.CostVolume(n.feat_a, n.feat_b, cost_volume_param=dict(
        max_displacement_h=DH, max_displacement_w=DW, dilation=DIL))
    n.disp = L.SoftDisplacement(n.cost, soft_displacement_param=dict(
        max_displacement_h=DH, max_displacement_w=DW, dilation=DIL, temperature=TAU,
        method=getattr(P.SoftDisplacement, method)))
    # F_{t+1} - W(F_t, -V_t): the warped difference of the appearance-change branch.
    n.warped = L.BilinearWarp(n.feat_a, n.disp, bilinear_warp_param=dict(displacement_scale=-1))
    n.warped_diff = L.Eltwise(n.feat_b, n.warped, operation=P.Eltwise.SUM, coeff=[1, -1])
    proto = n.to_proto()
    proto.force_backward = True
    return load_net(proto, caffe.TEST)


@pytest.fixture(scope="module")
def net_and_inputs():
    caffe.set_mode_cpu()
    caffe.set_random_seed(0)
    net = branch_net()
    rng = np.random.default_rng(0)
    a = rng.normal(size=(N, C_IN, H, W)).astype(np.float32)
    b = np.roll(a, (1, -2), axis=(2, 3)) + 0.1 * rng.normal(size=a.shape).astype(np.float32)
    net.blobs["frame_a"].data[...] = a
    net.blobs["frame_b"].data[...] = b
    net.forward()
    return net, rng


def test_forward_matches_numpy(net_and_inputs):
    net, _ = net_and_inputs
    fa = net.blobs["feat_a"].data.astype(np.float64)
    fb = net.blobs["feat_b"].data.astype(np.float64)
    cost = ref.cost_volume(fa, fb, DH, DW, DIL)
    np.testing.assert_allclose(net.blobs["cost"].data, cost, atol=2e-5)
    disp = ref.soft_displacement(net.blobs["cost"].data.astype(np.float64), DH, DW, DIL, TAU)
    np.testing.assert_allclose(net.blobs["disp"].data, disp, atol=1e-4)
    warped = ref.bilinear_warp(fa, net.blobs["disp"].data.astype(np.float64), -1.0)
    np.testing.assert_allclose(net.blobs["warped"].data, warped, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(net.blobs["warped_diff"].data, fb - warped, rtol=1e-4, atol=1e-4)


def test_backward_matches_numpy(net_and_inputs):
    net, rng = net_and_inputs
    g = rng.normal(size=net.blobs["warped_diff"].shape)
    net.blobs["warped_diff"].diff[...] = g
    net.backward(start="warped_diff")
    fa = net.blobs["feat_a"].data.astype(np.float64)
    fb = net.blobs["feat_b"].data.astype(np.float64)
    cost = net.blobs["cost"].data.astype(np.float64)
    disp = net.blobs["disp"].data.astype(np.float64)
    dfa_warp, d_disp = ref.bilinear_warp_backward(fa, disp, -g, -1.0)
    np.testing.assert_allclose(net.blobs["disp"].diff, d_disp, rtol=1e-3, atol=1e-3)
    d_cost = ref.soft_displacement_backward(cost, net.blobs["disp"].diff.astype(np.float64),
                                            DH, DW, DIL, TAU)
    np.testing.assert_allclose(net.blobs["cost"].diff, d_cost, rtol=1e-3, atol=1e-3)
    dfa_cost, dfb_cost = ref.cost_volume_backward(
        fa, fb, net.blobs["cost"].diff.astype(np.float64), DH, DW, DIL)
    # feat_a feeds the cost volume and the warp; Caffe's split layer sums the two.
    np.testing.assert_allclose(net.blobs["feat_a"].diff, dfa_warp + dfa_cost, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(net.blobs["feat_b"].diff, g + dfb_cost, rtol=1e-3, atol=1e-3)
    assert np.all(np.isfinite(net.blobs["frame_a"].diff))


def test_wta_forward_and_no_gradient():
    caffe.set_mode_cpu()
    net = branch_net("WTA")
    rng = np.random.default_rng(1)
    net.blobs["frame_a"].data[...] = rng.normal(size=(N, C_IN, H, W))
    net.blobs["frame_b"].data[...] = rng.normal(size=(N, C_IN, H, W))
    net.forward()
    cost = net.blobs["cost"].data.astype(np.float64)
    np.testing.assert_array_equal(net.blobs["disp"].data,
                                  ref.soft_displacement(cost, DH, DW, DIL, method="WTA"))
    net.blobs["warped_diff"].diff[...] = 1
    net.backward(start="warped_diff")
    assert np.all(net.blobs["cost"].diff == 0)


def _relative_error(got, want):
    return float(np.max(np.abs(got.astype(np.float64) - want))) / float(np.max(np.abs(want)))


def test_gpu_matches_cpu():
    """The same net on the GPU and the CPU: values and gradients of the three
    layers agree to 1e-4 of the largest |value| (nvcc fuses multiply-adds).
    Needs a CUDA build of pycaffe and a GPU (tools/gpu_check.sh runs it)."""
    from dcd.caffeio.buildinfo import pycaffe_gpu_unavailable_reason
    reason = pycaffe_gpu_unavailable_reason()
    if reason and os.environ.get("DCD_REQUIRE_GPU"):  # set by tools/gpu_check.sh
        pytest.fail(reason)
    if reason:
        pytest.skip(reason)
    rng = np.random.default_rng(5)
    a = rng.normal(size=(N, C_IN, H, W)).astype(np.float32)
    b = np.roll(a, (1, -2), axis=(2, 3)) + 0.1 * rng.normal(size=a.shape).astype(np.float32)
    g = rng.normal(size=(N, C, H, W)).astype(np.float32)
    caffe.set_random_seed(0)
    caffe.set_mode_cpu()
    net = branch_net()
    runs = {}
    for mode in ("cpu", "gpu"):
        if mode == "gpu":
            caffe.set_device(0)
            caffe.set_mode_gpu()
        net.blobs["frame_a"].data[...] = a
        net.blobs["frame_b"].data[...] = b
        net.forward()
        net.blobs["warped_diff"].diff[...] = g
        net.backward(start="warped_diff")
        runs[mode] = {f"{name}.{kind}": getattr(net.blobs[name], kind).copy()
                      for name in ("cost", "disp", "warped", "feat_a", "feat_b")
                      for kind in ("data", "diff")}
    caffe.set_mode_cpu()
    for key, want in runs["cpu"].items():
        assert _relative_error(runs["gpu"][key], want.astype(np.float64)) <= 1e-4, key


THREADS_SCRIPT = """
import sys
import numpy as np
import caffe
from caffe import layers as L
from dcd.caffeio.netio import load_net
caffe.set_mode_cpu()
# Widths that leave vector blocks, column tails and offset-group tails.
shape, d = [2, 20, 13, 37], 7
n = caffe.NetSpec()
n.fa = L.Input(shape=dict(dim=shape))
n.fb = L.Input(shape=dict(dim=shape))
n.cost = L.CostVolume(n.fa, n.fb, cost_volume_param=dict(max_displacement=d))
n.disp = L.SoftDisplacement(n.cost, soft_displacement_param=dict(max_displacement=d,
                                                                 temperature=0.1))
n.warped = L.BilinearWarp(n.fa, n.disp, bilinear_warp_param=dict(displacement_scale=-1))
proto = n.to_proto()
proto.force_backward = True
net = load_net(proto, caffe.TEST)
rng = np.random.default_rng(5)
net.blobs["fa"].data[...] = rng.standard_normal(shape)
net.blobs["fb"].data[...] = np.roll(net.blobs["fa"].data, 2, axis=3) + rng.standard_normal(shape)
net.blobs["warped"].diff[...] = rng.standard_normal(shape)
net.forward()
net.backward()
# A map large enough that BilinearWarp's counting sort of the taps runs on
# every thread (a thread per 1024 pixels at most): displacements of a few
# pixels, with rough and out-of-map taps. f feeds two warps, so Caffe's
# Split sums their diffs, over threads from 64 Ki elements (patch 0011).
dim = [1, 12, 64, 96]
m = caffe.NetSpec()
m.f = L.Input(shape=dict(dim=dim))
m.v = L.Input(shape=dict(dim=[1, 2, 64, 96]))
m.w = L.BilinearWarp(m.f, m.v)
m.w2 = L.BilinearWarp(m.f, m.v, bilinear_warp_param=dict(displacement_scale=-0.5))
proto = m.to_proto()
proto.force_backward = True
warp = load_net(proto, caffe.TEST)
warp.blobs["f"].data[...] = rng.standard_normal(dim)
warp.blobs["v"].data[...] = 3 * rng.standard_normal((1, 2, 64, 96))
warp.blobs["w"].diff[...] = rng.standard_normal(dim)
warp.blobs["w2"].diff[...] = rng.standard_normal(dim)
warp.forward()
warp.backward()
np.savez(sys.argv[1], cost=net.blobs["cost"].data, disp=net.blobs["disp"].data,
         warped=net.blobs["warped"].data, dfa=net.blobs["fa"].diff, dfb=net.blobs["fb"].diff,
         w=warp.blobs["w"].data, df=warp.blobs["f"].diff, dv=warp.blobs["v"].diff)
"""


@pytest.mark.parametrize("kernels", ["own", "avx2"])
def test_cpu_results_do_not_depend_on_the_thread_count(tmp_path, kernels):
    """The layers' OpenMP loops give bit-identical values and gradients on
    1, 3 and 5 threads (each element is summed by one thread in a fixed
    order), with the CPU's own kernels and with those capped at AVX2 (the same
    as its own on an AVX2 CPU, the baseline below that). CostVolume's 13 rows
    are 4 groups: on 5 threads one thread's own share is empty and it takes
    groups from the others' (RowChunks), on 3 whichever is free first does.
    A larger map fed to two BilinearWarps has their taps' counting sort and
    Caffe's Split sum of their diffs (patch 0011) split over the threads
    too. The last run asks for 5 threads where OpenMP may give only 2
    (OMP_THREAD_LIMIT): a loop that shares work out by the number asked
    for, not the team it got, leaves some of it undone."""
    import subprocess
    import sys
    outs = []
    for threads, limit in ((1, None), (3, None), (5, None), (5, 2)):
        out = tmp_path / f"t{threads}_{limit}.npz"
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), GLOG_minloglevel="2")
        env.pop("OMP_THREAD_LIMIT", None)
        if limit:
            env["OMP_THREAD_LIMIT"] = str(limit)
        env.pop("DCD_CPU_KERNELS", None)
        if kernels != "own":
            env["DCD_CPU_KERNELS"] = kernels
        subprocess.run([sys.executable, "-c", THREADS_SCRIPT, str(out)], env=env, check=True)
        outs.append(np.load(out))
    for other in outs[1:]:
        for name in outs[0].files:
            assert np.array_equal(outs[0][name].view(np.uint32), other[name].view(np.uint32)), name
