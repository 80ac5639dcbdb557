"""ImageNet BN-Inception -> initial weights of every branch: copied,
cross-modality adapted, or left random; foreign caffemodels refused."""
import os

import numpy as np
import pytest

os.environ.setdefault("GLOG_minloglevel", "2")
import caffe  # noqa: E402
from caffe import layers as L  # noqa: E402
from caffe.proto import caffe_pb2  # noqa: E402

from nethelpers import random_bninception  # noqa: E402
from dcd.caffeio.netio import load_net  # noqa: E402
from dcd.nets.init_weights import (NotBNInceptionError, init_weights,  # noqa: E402
                                   read_caffemodel)


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory):
    return random_bninception(tmp_path_factory.mktemp("imagenet") / "bn_inception.caffemodel")


@pytest.fixture(scope="module")
def appchange_init(imagenet, tmp_path_factory):
    out = tmp_path_factory.mktemp("init") / "appchange.caffemodel"
    return init_weights(imagenet, "ucf101", "appchange", out), out


def params_of(path):
    return read_caffemodel(path)


def test_rgb_layers_copied_and_branch_conv1_cross_modality(imagenet, appchange_init):
    report, out = appchange_init
    src, dst = params_of(imagenet), params_of(out)
    for name in ("conv1/7x7_s2", "appchange/inception_4a/1x1", "appchange/conv2/3x3"):
        base = name.split("appchange/")[-1]
        np.testing.assert_array_equal(dst[name][1][0], src[base][1][0])
        np.testing.assert_array_equal(dst[name][1][1], src[base][1][1])
    adapted = dst["appchange/conv1/7x7_s2"][1][0]
    assert adapted.shape == (64, 64, 7, 7)
    want = src["conv1/7x7_s2"][1][0].mean(axis=1, keepdims=True)
    np.testing.assert_allclose(adapted, np.broadcast_to(want, adapted.shape), rtol=1e-6)
    assert [a[0] for a in report.adapted] == ["appchange/conv1/7x7_s2"]
    assert report.random == ["appchange/fc-action"]
    assert "appchange/inception_5b/pool_proj_bn" in report.copied
    assert report.checked["bn"] == "Caffe's BatchNorm + Scale" and report.checked["ignored"] == ["fc"]
    # partial BN: every BN of the two trunks but their first is a FrozenBN
    frozen = [name for name, kind, src in report.frozen_bn]
    assert len(frozen) == sum(1 for name in report.copied if name.endswith("_bn")) - 2
    assert {(kind, src) for _, kind, src in report.frozen_bn} == \
        {("FrozenBN", "BatchNorm + Scale pairs")}
    assert f"  {len(frozen)} FrozenBN layers (among the copied) filled from BatchNorm + " \
        "Scale pairs" in report.summary()


def test_batchnorm_statistics_copied(imagenet, appchange_init):
    _, out = appchange_init
    src, dst = params_of(imagenet), params_of(out)
    s_mean, s_var, s_factor = src["inception_3a/1x1_bn"][1]
    s_gamma, s_beta = src["inception_3a/1x1_scale"][1]
    kind, blobs = dst["appchange/inception_3a/1x1_bn"]
    assert kind == "FrozenBN" and "appchange/inception_3a/1x1_scale" not in dst
    d_mean, d_var, d_factor, d_gamma, d_beta = blobs
    np.testing.assert_allclose(d_mean * (1 / d_factor), s_mean / s_factor, rtol=1e-6)
    np.testing.assert_allclose(d_var * (1 / d_factor), s_var / s_factor, rtol=1e-6)
    np.testing.assert_array_equal(d_gamma, s_gamma)
    np.testing.assert_array_equal(d_beta, s_beta)
    # the first BN of the trunk learns: BatchNorm + Scale, filled the same way
    kind, (mean, var, factor) = dst["conv1/7x7_s2_bn"]
    assert kind == "BatchNorm"
    s_mean, _, s_factor = src["conv1/7x7_s2_bn"][1]
    np.testing.assert_allclose(mean / factor, s_mean / s_factor, rtol=1e-6)
    np.testing.assert_array_equal(dst["conv1/7x7_s2_scale"][1][0], src["conv1/7x7_s2_scale"][1][0])


def tsn_bn_model(src_path, dst_path):
    """The same weights with TSN's 4-blob BN layers instead of BatchNorm+Scale."""
    param = caffe_pb2.NetParameter()
    param.ParseFromString(src_path.read_bytes())
    by_name = {layer.name: layer for layer in param.layer}
    out = caffe_pb2.NetParameter()
    for layer in param.layer:
        if layer.type == "Scale":
            continue
        new = out.layer.add()
        new.CopyFrom(layer)
        if layer.type == "BatchNorm":
            mean, var, factor = (np.array(b.data) for b in layer.blobs)
            scale = by_name[layer.name[:-3] + "_scale"]
            new.type = "BN"
            del new.blobs[:]
            for values in (scale.blobs[0].data, scale.blobs[1].data, mean / factor, var / factor):
                blob = new.blobs.add()
                blob.shape.dim.extend([1, len(values), 1, 1])
                blob.data.extend(values)
    dst_path.write_bytes(out.SerializeToString())
    return dst_path


def test_tsn_bn_layers_accepted(imagenet, tmp_path):
    tsn = tsn_bn_model(imagenet, tmp_path / "tsn.caffemodel")
    report = init_weights(tsn, "ucf101", "motion", tmp_path / "motion.caffemodel")
    assert report.checked["bn"].startswith("TSN's BN layer") and report.checked["ignored"] == ["fc"]
    src, dst = params_of(imagenet), params_of(tmp_path / "motion.caffemodel")
    np.testing.assert_allclose(dst["motion/inception_4c/3x3_bn"][1][3],
                               src["inception_4c/3x3_scale"][1][0])
    mean, _, factor = dst["motion/inception_4c/3x3_bn"][1][:3]
    np.testing.assert_allclose(mean / factor, src["inception_4c/3x3_bn"][1][0] / 2.0, rtol=1e-6)
    adapted = dst["motion/conv1/7x7_s2"][1][0]
    assert adapted.shape == (64, 2, 7, 7)


def test_refuses_a_net_that_is_not_bn_inception(tmp_path):
    n = caffe.NetSpec()
    n.data = L.Input(input_param=dict(shape=dict(dim=[1, 3, 32, 32])))
    n.conv1 = L.Convolution(n.data, num_output=8, kernel_size=5)
    n.fc = L.InnerProduct(n.conv1, num_output=10)
    net = load_net(n.to_proto(), caffe.TEST)
    net.save(str(tmp_path / "lenet.caffemodel"))
    with pytest.raises(NotBNInceptionError, match="conv1/7x7_s2"):
        init_weights(tmp_path / "lenet.caffemodel", "ucf101", "static", tmp_path / "x.caffemodel")


def test_refuses_a_changed_layer_naming_it(imagenet, tmp_path):
    param = caffe_pb2.NetParameter()
    param.ParseFromString(imagenet.read_bytes())
    layer = next(layer for layer in param.layer if layer.name == "inception_4d/3x3")
    layer.blobs[0].shape.dim[0] = 100  # 192 filters in BN-Inception
    del layer.blobs[0].data[100 * 128 * 9:]
    bad = tmp_path / "bad.caffemodel"
    bad.write_bytes(param.SerializeToString())
    with pytest.raises(NotBNInceptionError, match="inception_4d/3x3"):
        init_weights(bad, "ucf101", "static", tmp_path / "x.caffemodel")


def test_refuses_a_missing_layer_naming_the_first(imagenet, tmp_path):
    param = caffe_pb2.NetParameter()
    param.ParseFromString(imagenet.read_bytes())
    for name in ("inception_4b/pool_proj", "inception_3b/1x1"):  # the net's order decides
        del param.layer[[layer.name for layer in param.layer].index(name)]
    bad = tmp_path / "cut.caffemodel"
    bad.write_bytes(param.SerializeToString())
    with pytest.raises(NotBNInceptionError, match="cut.caffemodel is not BN-Inception: no layer "
                                                  "'inception_3b/1x1'"):
        init_weights(bad, "ucf101", "static", tmp_path / "x.caffemodel")
    assert not (tmp_path / "x.caffemodel").exists()


def test_missing_or_garbage_caffemodel(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.caffemodel"):
        init_weights(tmp_path / "nowhere.caffemodel", "ucf101", "static", tmp_path / "x")
    (tmp_path / "junk.caffemodel").write_bytes(b"\xff\xfe not protobuf")
    with pytest.raises(NotBNInceptionError, match="junk.caffemodel does not parse"):
        init_weights(tmp_path / "junk.caffemodel", "ucf101", "static", tmp_path / "x")
    # An empty file (an interrupted download) says so, not "not BN-Inception".
    (tmp_path / "empty.caffemodel").write_bytes(b"")
    with pytest.raises(NotBNInceptionError, match=r"empty.caffemodel is empty \(0 bytes\)"):
        init_weights(tmp_path / "empty.caffemodel", "ucf101", "static", tmp_path / "x")


def test_tool_reports_and_refuses(imagenet, tmp_path):
    import subprocess
    import sys
    from pathlib import Path
    tool = [sys.executable, str(Path(__file__).resolve().parents[3] / "tools/init_weights.py")]
    proc = subprocess.run(tool + [str(imagenet), "--dataset", "ucf101", "--net", "motion",
                                  "--out", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "averaged motion/conv1/7x7_s2: (64, 3, 7, 7) -> (64, 2, 7, 7)" in proc.stdout
    assert "new      motion/fc-action" in proc.stdout
    assert "averaged 1 over input channels" in proc.stdout
    first = proc.stdout.splitlines()[0]
    assert "BN-Inception, all" in first and "convolution and BN layers present" in first
    assert "not used: fc" in first
    assert "FrozenBN layers (among the copied) filled from BatchNorm + Scale pairs" in proc.stdout
    assert (tmp_path / "ucf101_motion_init.caffemodel").exists()
    proc = subprocess.run(tool + [str(tmp_path / "ucf101_motion_init.caffemodel"), "--net", "static",
                                  "--out", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 1  # a DCD net is not an ImageNet BN-Inception
    assert "not BN-Inception" in proc.stderr and "conv2/3x3_reduce" in proc.stderr


def _random_net_snapshot(dataset, name, path, seed):
    from dcd.nets.builder import build
    from dcd.nets.catalogue import get_config
    net = load_net(build(get_config(dataset, name), dataset, "deploy", crop=64), caffe.TEST)
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        for blob in layer.blobs:
            blob.data[...] = rng.normal(0, 1, blob.data.shape)
    net.save(str(path))
    return path


def test_kinetics_snapshot_to_ucf101_weights(tmp_path):
    """Table 7's ImageNet+Kinetics row: all but the classifier copied."""
    from dcd.nets.init_weights import transfer_weights
    kinetics = _random_net_snapshot("kinetics", "motion", tmp_path / "kin.caffemodel", 1)
    out = tmp_path / "ucf101_motion_from_kinetics.caffemodel"
    report = transfer_weights(kinetics, "ucf101", "motion", out)
    src, dst = read_caffemodel(kinetics), read_caffemodel(out)
    assert report.random == ["motion/fc-action"]
    assert dst["motion/fc-action"][1][0].shape == (101, 1024)
    assert src["motion/fc-action"][1][0].shape == (400, 1024)
    for name in ("conv1/7x7_s2", "conv1/7x7_s2_bn", "motion/conv1/7x7_s2",
                 "motion/conv1/7x7_s2_scale"):
        for a, b in zip(src[name][1], dst[name][1]):
            np.testing.assert_array_equal(a, b)
    # Kinetics trains without partial BN: its BatchNorm + Scale pairs fill
    # UCF101's FrozenBN layers (statistics as stored, then gamma and beta)
    name = "motion/inception_5b/pool_proj"
    assert dst[name + "_bn"][0] == "FrozenBN" and src[name + "_bn"][0] == "BatchNorm"
    want = src[name + "_bn"][1] + src[name + "_scale"][1]
    assert len(dst[name + "_bn"][1]) == 5
    for a, b in zip(want, dst[name + "_bn"][1]):
        np.testing.assert_array_equal(a.reshape(-1), b)
    assert (name + "_bn", "FrozenBN", "BatchNorm + Scale pairs") in report.frozen_bn
    assert "FrozenBN layers (among the copied) filled from BatchNorm + Scale pairs" in \
        report.summary()


def test_ucf101_snapshot_to_kinetics_weights(tmp_path):
    """The other way: FrozenBN's five blobs fill a BatchNorm and its Scale."""
    from dcd.nets.init_weights import transfer_weights
    ucf = _random_net_snapshot("ucf101", "motion", tmp_path / "ucf.caffemodel", 4)
    out = tmp_path / "kinetics_motion.caffemodel"
    report = transfer_weights(ucf, "kinetics", "motion", out)
    src, dst = read_caffemodel(ucf), read_caffemodel(out)
    name = "motion/inception_4d/3x3"
    frozen = src[name + "_bn"][1]
    for a, b in zip(frozen, dst[name + "_bn"][1] + dst[name + "_scale"][1]):
        np.testing.assert_array_equal(a, b.reshape(-1))
    assert (name + "_bn", "BatchNorm (+ Scale)", "FrozenBN") in report.frozen_bn


def test_transfer_refuses_another_net_naming_the_layer(tmp_path):
    from dcd.nets.init_weights import NetMismatchError, transfer_weights
    static = _random_net_snapshot("kinetics", "static", tmp_path / "static.caffemodel", 2)
    with pytest.raises(NetMismatchError, match="no layer 'motion/conv1/7x7_s2'"):
        transfer_weights(static, "ucf101", "motion", tmp_path / "out.caffemodel")
    rgbwarp = _random_net_snapshot("ucf101", "appchange_rgbwarp", tmp_path / "rgbwarp.caffemodel", 3)
    with pytest.raises(NetMismatchError, match=r"layer 'appchange/conv1/7x7_s2' has shapes"):
        transfer_weights(rgbwarp, "ucf101", "appchange", tmp_path / "out.caffemodel")
    assert not (tmp_path / "out.caffemodel").exists()


def test_transfer_tool(tmp_path):
    import subprocess
    import sys
    from dcd.util.paths import REPO_ROOT
    kinetics = _random_net_snapshot("kinetics", "motion", tmp_path / "kin.caffemodel", 1)
    out = tmp_path / "init.caffemodel"
    run = subprocess.run([sys.executable, str(REPO_ROOT / "tools/transfer_weights.py"),
                          str(kinetics), "--net", "motion", "--out", str(out)],
                         capture_output=True, text=True)
    assert run.returncode == 0 and out.is_file(), run.stderr
    bad = subprocess.run([sys.executable, str(REPO_ROOT / "tools/transfer_weights.py"),
                          str(kinetics), "--net", "full", "--out", str(tmp_path / "x")],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "no layer" in bad.stderr


def test_joint_net_from_its_three_branches(tmp_path):
    """Tables 7 and 8, "Ours" fine-tuned from the branches: every layer of
    the joint net from the first branch snapshot that has it."""
    from dcd.nets.init_weights import NetMismatchError, compose_weights
    snaps = [_random_net_snapshot("synthetic", n, tmp_path / f"{n}.caffemodel", seed)
             for seed, n in enumerate(("static", "motion", "appchange"), 1)]
    out = tmp_path / "full.caffemodel"
    report = compose_weights(snaps, "synthetic", "full", out)
    got = read_caffemodel(out)
    src = [read_caffemodel(s) for s in snaps]
    assert not report.random and len(report.copied) == len(got)
    for name, (_, arrays) in got.items():
        first = next(s for s in src if name in s)
        for a, b in zip(first[name][1], arrays):
            np.testing.assert_array_equal(a, b)
    # the shared conv1 is the static net's (the first), not the motion net's
    np.testing.assert_array_equal(got["conv1"][1][0], src[0]["conv1"][1][0])
    assert not np.array_equal(got["conv1"][1][0], src[1]["conv1"][1][0])
    np.testing.assert_array_equal(got["motion/fc-action"][1][0], src[1]["motion/fc-action"][1][0])
    with pytest.raises(NetMismatchError, match="no snapshot has layer 'appchange/conv1'"):
        compose_weights(snaps[:2], "synthetic", "full", tmp_path / "out.caffemodel")
    assert not (tmp_path / "out.caffemodel").exists()


def test_flow_net_conv1_is_the_rgb_mean_over_ten_channels(imagenet, tmp_path):
    """TSN's cross-modality initialisation of the flow stream."""
    out = tmp_path / "flow.caffemodel"
    report = init_weights(imagenet, "ucf101", "flow", out)
    src, dst = read_caffemodel(imagenet), read_caffemodel(out)
    w = dst["conv1/7x7_s2"][1][0]
    assert w.shape == (64, 10, 7, 7)
    want = src["conv1/7x7_s2"][1][0].mean(axis=1)
    for c in range(10):
        np.testing.assert_allclose(w[:, c], want, rtol=1e-6)
    assert ("conv1/7x7_s2", (64, 3, 7, 7), (64, 10, 7, 7)) in report.adapted
    np.testing.assert_array_equal(dst["inception_5b/1x1"][1][0], src["inception_5b/1x1"][1][0])


@pytest.mark.parametrize("field", ["data", "double_data"])
def test_blob_values_read_from_the_wire_bytes_equal_protobufs(field):
    from dcd.nets.init_weights import _blob_array
    values = np.random.default_rng(0).normal(size=2 * 3 * 4 * 5)
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend([2, 3, 4, 5])
    getattr(blob, field).extend(values.tolist())
    blob.diff.extend([1.0, 2.0])  # a packed field that is not the values
    got = _blob_array(blob)
    assert got.dtype == np.float32 and got.shape == (2, 3, 4, 5)
    np.testing.assert_array_equal(got.ravel(), np.asarray(values, np.float32))
    legacy = caffe_pb2.BlobProto(num=1, channels=1, height=1, width=3, data=[1, 2, 3])
    np.testing.assert_array_equal(_blob_array(legacy), np.float32([[[[1, 2, 3]]]]))
    assert _blob_array(caffe_pb2.BlobProto()).size == 0
