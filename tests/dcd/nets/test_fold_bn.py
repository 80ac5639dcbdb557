"""BatchNorm folded into convolutions at deploy (dcd.nets.fold_bn and
tools/fold_bn.py): the arithmetic against Caffe's own layers, what is left
unfolded and why, the subsampling convolution's Pooling, FrozenBN read from
the prototxt text, refusals, and every UCF101 deploy net scoring the same
folded and unfolded."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("GLOG_minloglevel", "2")
import caffe  # noqa: E402
from caffe import layers as L  # noqa: E402
from caffe.proto import caffe_pb2  # noqa: E402
from google.protobuf import text_format  # noqa: E402

from dcd.nets.builder import build  # noqa: E402
from dcd.nets.catalogue import NETS  # noqa: E402
from dcd.nets.fold_bn import (FoldError, bn_affine, fold_conv, fold_files,  # noqa: E402
                              frozen_bn_eps, read_caffemodel, write_caffemodel)

REPO = Path(__file__).resolve().parents[3]
SMALL_CROP = 32  # as tests/test_models.py: BN-Inception still ends on a 1x1 map
caffe.set_mode_cpu()


def randomize(net, rng):
    """Non-trivial statistics and affines (BatchNorm + Scale, or FrozenBN):
    stored sums with factor 2, so mean = blob / 2; variances in [0.5, 2]."""
    for layer in net.layers:
        b = layer.blobs
        if layer.type in ("BatchNorm", "FrozenBN"):
            b[0].data[...] = rng.normal(0, 0.2, b[0].data.shape) * 2
            b[1].data[...] = rng.uniform(0.5, 2.0, b[1].data.shape) * 2
            b[2].data[...] = 2
        if layer.type == "FrozenBN":  # BatchNorm's three blobs, then Scale's two
            b[3].data[...] = rng.uniform(0.5, 1.5, b[3].data.shape)
            b[4].data[...] = rng.normal(0, 0.1, b[4].data.shape)
        elif layer.type == "Scale":
            b[0].data[...] = rng.uniform(0.5, 1.5, b[0].data.shape)
            if len(b) > 1:
                b[1].data[...] = rng.normal(0, 0.1, b[1].data.shape)
        elif layer.type == "Convolution" and len(b) > 1:
            b[1].data[...] = rng.normal(0, 0.1, b[1].data.shape)


def write_net(tmp_path, proto, name="net", rng=None, randomise=True):
    """(prototxt, caffemodel, the loaded net) of a NetParameter."""
    path = tmp_path / f"{name}.prototxt"
    path.write_text(str(proto))
    net = caffe.Net(str(path), caffe.TEST)
    if randomise:
        randomize(net, rng or np.random.default_rng(0))
    model = tmp_path / f"{name}.caffemodel"
    net.save(str(model))
    return path, model, net


def run(prototxt, weights, data):
    net = caffe.Net(str(prototxt), caffe.TEST, weights=str(weights))
    net.blobs["data"].data[...] = data
    net.forward()
    return net


def small_net(in_place_bn=False, extra_reader=False, scale_bias=True):
    """Input -> conv (no bias) -> bn -> scale (in place) -> relu -> 1x1 conv;
    in_place_bn: bn and scale write the conv's own top."""
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 3, 9, 8]))
    n.conv = L.Convolution(n.data, num_output=5, kernel_size=3, pad=1, stride=1,
                           bias_term=False, weight_filler=dict(type="gaussian", std=0.3))
    n.bn = L.BatchNorm(n.conv)
    n.scale = L.Scale(n.bn, bias_term=scale_bias, in_place=True)
    n.relu = L.ReLU(n.scale)
    n.out = L.Convolution(n.relu, num_output=4, kernel_size=1,
                          weight_filler=dict(type="gaussian", std=0.3))
    if extra_reader:
        n.side = L.Pooling(n.conv, pool=caffe_pb2.PoolingParameter.MAX, kernel_size=2)
    proto = n.to_proto()
    if in_place_bn:
        for layer in proto.layer:
            for blobs in (layer.bottom, layer.top):
                for k, name in enumerate(blobs):
                    if name == "bn":
                        blobs[k] = "conv"
    return proto


def test_bn_affine_matches_caffe_semantics():
    mean, var = np.array([2.0, -4.0]), np.array([8.0, 2.0])
    a, b = bn_affine(mean, var, [2.0], 1e-5)
    x = np.array([3.0, 1.0])
    np.testing.assert_allclose(a * x + b, (x - mean / 2) / np.sqrt(var / 2 + 1e-5))
    a0, b0 = bn_affine(mean, var, [0.0], 1e-5)  # factor 0: Caffe reads statistics 0
    np.testing.assert_allclose(a0, 1 / np.sqrt(1e-5))
    np.testing.assert_allclose(b0, 0)


def test_fold_conv_against_a_naive_convolution():
    rng = np.random.default_rng(1)
    w, bias = rng.normal(size=(4, 3, 2, 2)), rng.normal(size=4)
    a, b = rng.uniform(0.5, 2, 4), rng.normal(size=4)
    x = rng.normal(size=(3, 5, 5))

    def conv(w, bias):
        out = np.zeros((4, 4, 4))
        for o in range(4):
            for i in range(4):
                for j in range(4):
                    out[o, i, j] = np.sum(w[o] * x[:, i:i + 2, j:j + 2]) + bias[o]
        return out
    fw, fb = fold_conv(w, bias, a, b)
    np.testing.assert_allclose(conv(fw, fb), conv(w, bias) * a[:, None, None] +
                               b[:, None, None], rtol=1e-12, atol=1e-12)
    fw0, fb0 = fold_conv(w, None, a, b)  # no bias: the BN's shift becomes it
    np.testing.assert_allclose(fb0, b)


@pytest.mark.parametrize("in_place_bn", [False, True])
@pytest.mark.parametrize("scale_bias", [True, False])
def test_folded_small_net_scores_the_same(tmp_path, in_place_bn, scale_bias):
    proto, model, net = write_net(tmp_path, small_net(in_place_bn, scale_bias=scale_bias))
    data = np.random.default_rng(2).normal(0, 1, net.blobs["data"].data.shape)
    ref = run(proto, model, data).blobs["out"].data.copy()
    fproto, fmodel, report = fold_files(proto, model, tmp_path / "folded")
    folded = run(fproto, fmodel, data)
    assert [lp.type for lp in folded.layers] == ["Input", "Convolution", "ReLU", "Convolution"]
    assert report.folded == [("conv", ["bn", "scale"])]
    assert report.kept == []
    np.testing.assert_allclose(folded.blobs["out"].data, ref, rtol=1e-5, atol=1e-5)


def test_conv_with_another_reader_is_left_and_named(tmp_path):
    proto, model, net = write_net(tmp_path, small_net(extra_reader=True))
    data = np.random.default_rng(3).normal(0, 1, net.blobs["data"].data.shape)
    ref = run(proto, model, data)
    fproto, fmodel, report = fold_files(proto, model, tmp_path / "folded")
    folded = run(fproto, fmodel, data)
    assert report.folded == []
    assert [name for name, _ in report.kept] == ["bn"], report.kept
    assert "BatchNorm" in [lp.type for lp in folded.layers]
    for blob in ("out", "side"):
        np.testing.assert_array_equal(folded.blobs[blob].data, ref.blobs[blob].data)


def subsample_net(size, weight=1):
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 6, size, size]))
    n.sub = L.Convolution(n.data, num_output=6, group=6, kernel_size=1, stride=2,
                          bias_term=False, weight_filler=dict(type="constant", value=weight))
    n.out = L.Pooling(n.sub, pool=caffe_pb2.PoolingParameter.MAX, kernel_size=3, stride=2)
    return n.to_proto()


@pytest.mark.parametrize("size", [7, 8])
def test_subsampling_convolution_becomes_an_exact_pooling(tmp_path, size):
    proto, model, net = write_net(tmp_path, subsample_net(size), randomise=False)
    data = np.random.default_rng(4).normal(0, 1, net.blobs["data"].data.shape).astype(np.float32)
    ref = run(proto, model, data)
    fproto, fmodel, report = fold_files(proto, model, tmp_path / "folded")
    folded = run(fproto, fmodel, data)
    assert report.subsampled == ["sub"]
    assert folded.layer_dict["sub"].type == "Pooling"
    np.testing.assert_array_equal(folded.blobs["sub"].data, data[:, :, ::2, ::2])
    np.testing.assert_array_equal(folded.blobs["sub"].data, ref.blobs["sub"].data)
    np.testing.assert_array_equal(folded.blobs["out"].data, ref.blobs["out"].data)


def test_other_grouped_convolutions_stay(tmp_path):
    proto, model, _ = write_net(tmp_path, subsample_net(8, weight=2), randomise=False)
    _, _, report = fold_files(proto, model, tmp_path / "folded")
    assert report.subsampled == []


def test_missing_batchnorm_blobs_are_refused_and_nothing_written(tmp_path):
    proto, model, _ = write_net(tmp_path, small_net())
    param = caffe_pb2.NetParameter()
    param.ParseFromString(model.read_bytes())
    keep = [lp for lp in param.layer if lp.name != "bn"]
    del param.layer[:]
    param.layer.extend(keep)
    model.write_bytes(param.SerializeToString())
    with pytest.raises(FoldError, match=r"layer bn \(BatchNorm\): no blobs"):
        fold_files(proto, model, tmp_path / "folded")
    assert not list(tmp_path.glob("folded*"))


def test_wrong_statistics_shape_is_refused(tmp_path):
    proto, model, _ = write_net(tmp_path, small_net())
    blobs = read_caffemodel(model)
    blobs["bn"][0] = np.zeros(4)  # 4 means for 5 channels
    param = caffe_pb2.NetParameter()
    text_format.Merge(proto.read_text(), param)
    write_caffemodel(model, param, blobs)
    with pytest.raises(FoldError, match=r"layer bn \(BatchNorm\) blob 0 has 4 values for 5 "
                                        "channels"):
        fold_files(proto, model, tmp_path / "folded")


FROZEN_TEXT = """
name: "frozen"
layer { name: "data" type: "Input" top: "data"
  input_param { shape { dim: 2 dim: 3 dim: 6 dim: 6 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 bias_term: true } }
layer { name: "conv_fbn" type: "FrozenBN" bottom: "conv" top: "conv"
  # eps from the text, whether or not this build knows frozen_bn_param
  frozen_bn_param { eps: 0.001 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
"""


def test_frozen_bn_eps_read_from_the_text():
    assert frozen_bn_eps(FROZEN_TEXT) == {"conv_fbn": 0.001}
    no_param = FROZEN_TEXT.replace("frozen_bn_param { eps: 0.001 }", "")
    assert frozen_bn_eps(no_param) == {"conv_fbn": 1e-5}


def test_frozen_bn_is_folded_by_type_name(tmp_path):
    rng = np.random.default_rng(5)
    w, bias = rng.normal(0, 0.3, (4, 3, 3, 3)), rng.normal(0, 0.1, 4)
    mean, var = rng.normal(0, 0.2, 4) * 3, rng.uniform(0.5, 2, 4) * 3
    gamma, beta = rng.uniform(0.5, 1.5, 4), rng.normal(0, 0.1, 4)
    proto = tmp_path / "frozen.prototxt"
    proto.write_text(FROZEN_TEXT)
    param = caffe_pb2.NetParameter()
    param.name = "frozen"
    for name, arrays in (("conv", [w, bias]), ("conv_fbn", [mean, var, np.array([3.0]),
                                                            gamma, beta])):
        lp = param.layer.add(name=name)
        for arr in arrays:
            blob = lp.blobs.add()
            blob.shape.dim.extend(arr.shape)
            blob.data.extend(arr.astype(np.float32).ravel().tolist())
    model = tmp_path / "frozen.caffemodel"
    model.write_bytes(param.SerializeToString())
    fproto, fmodel, report = fold_files(proto, model, tmp_path / "folded")
    assert report.folded == [("conv", ["conv_fbn"])]
    data = rng.normal(0, 1, (2, 3, 6, 6))
    folded = run(fproto, fmodel, data).blobs["conv"].data
    # the reference: the convolution alone, then FrozenBN's formula in numpy
    conv_only = tmp_path / "conv_only.prototxt"
    conv_only.write_text(FROZEN_TEXT.split('layer { name: "conv_fbn"')[0])
    z = run(conv_only, model, data).blobs["conv"].data
    shape = (1, 4, 1, 1)
    y = gamma.reshape(shape) * (z - (mean / 3).reshape(shape)) / np.sqrt(
        (var / 3).reshape(shape) + 1e-3) + beta.reshape(shape)
    np.testing.assert_allclose(folded, np.maximum(y, 0), rtol=1e-5, atol=1e-5)


def test_cli_writes_both_files_and_refuses_a_missing_caffemodel(tmp_path):
    proto, model, _ = write_net(tmp_path, small_net())
    tool = [sys.executable, str(REPO / "tools" / "fold_bn.py")]
    ok = subprocess.run(tool + [str(proto), str(model), "--out", str(tmp_path / "f")],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "folded 1 BatchNorm" in ok.stdout
    assert (tmp_path / "f.prototxt").is_file() and (tmp_path / "f.caffemodel").is_file()
    bad = subprocess.run(tool + [str(proto), str(tmp_path / "none.caffemodel"), "--out",
                                 str(tmp_path / "g")], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and \
        len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert not list(tmp_path.glob("g.*"))


UCF101_DEPLOY = [pytest.param(c, id=c.name, marks=pytest.mark.slow) for c in NETS["ucf101"]]


@pytest.mark.parametrize("cfg", UCF101_DEPLOY)
def test_every_ucf101_deploy_net_scores_the_same_folded(cfg, tmp_path):
    proto, model, net = write_net(tmp_path, build(cfg, "ucf101", "deploy", crop=SMALL_CROP),
                                  cfg.name, np.random.default_rng(6))
    data = np.random.default_rng(7).normal(0, 50, net.blobs["data"].data.shape)
    ref_net = run(proto, model, data)
    out = ref_net.outputs[0]
    ref = ref_net.blobs[out].data.copy()
    fproto, fmodel, report = fold_files(proto, model, tmp_path / "folded")
    folded = run(fproto, fmodel, data)
    types = [lp.type for lp in folded.layers]
    assert report.kept == [] and not {"BatchNorm", "Scale", "FrozenBN"} & set(types)
    param = caffe_pb2.NetParameter()
    text_format.Merge(Path(fproto).read_text(), param)
    assert all(lp.convolution_param.group == 1 for lp in param.layer if lp.type == "Convolution")
    assert report.subsampled == (["conv1/subsample"] if cfg.name == "full_224" else [])
    assert np.abs(ref).max() > 0
    np.testing.assert_allclose(folded.blobs[out].data, ref, rtol=1e-4,
                               atol=1e-4 * np.abs(ref).max())
