"""FrozenBN in the generated nets (partial BN as TSN freezes it), in pycaffe
(equal to BatchNorm + Scale, nothing learned in training), and loading
caffemodels made before it (BatchNorm + Scale pairs) into current nets."""
import os

import numpy as np
import pytest

os.environ.setdefault("GLOG_minloglevel", "2")
import caffe  # noqa: E402
from caffe import layers as L  # noqa: E402
from caffe.proto import caffe_pb2  # noqa: E402

from nethelpers import frozen_or_pair_bn, unit_bn_stats  # noqa: E402
from dcd.caffeio.netio import load_net, open_net, write_temp  # noqa: E402
from dcd.nets.builder import build  # noqa: E402
from dcd.nets.catalogue import NETS, get_config  # noqa: E402
from dcd.caffeio.frozen_bn import (WeightsMismatchError, convert_param,  # noqa: E402
                                load_weights)

caffe.set_mode_cpu()


def _frozen(proto):
    return [layer for layer in proto.layer if layer.type == "FrozenBN"]


@pytest.mark.parametrize("cfg", NETS["ucf101"], ids=lambda c: c.name)
def test_deploy_nets_hold_frozen_bn_where_train_val_does(cfg):
    """Trained weights load by name: the same FrozenBN layers in both."""
    train = _frozen(build(cfg, "ucf101", "train_val"))
    deploy = _frozen(build(cfg, "ucf101", "deploy"))
    assert train and [layer.name for layer in train] == [layer.name for layer in deploy]
    for layer in train:
        assert [(p.lr_mult, p.decay_mult) for p in layer.param] == [(0, 0)] * 5, layer.name


def test_no_frozen_bn_without_partial_bn():
    for dataset in ("kinetics", "synthetic"):
        for cfg in NETS[dataset]:
            assert not _frozen(build(cfg, dataset, "deploy", crop=64 if dataset != "synthetic"
                                     else None)), (dataset, cfg.name)


def _pair_and_frozen_nets(relu=True):
    """Two nets on the same input: conv -> BatchNorm (global stats) + Scale
    and conv -> FrozenBN, with the same weights."""
    nets = []
    for frozen in (False, True):
        n = caffe.NetSpec()
        n.data = L.Input(shape=dict(dim=[2, 3, 9, 9]))
        n.conv = L.Convolution(n.data, num_output=4, kernel_size=3,
                               weight_filler=dict(type="gaussian", std=0.3))
        frozen_or_pair_bn(n, frozen)
        if relu:
            n.relu = L.ReLU(n.conv_bn, in_place=True)
        nets.append(load_net(n.to_proto(), caffe.TEST))
    pair, frozen = nets
    rng = np.random.default_rng(0)
    frozen.params["conv"][0].data[...] = pair.params["conv"][0].data
    frozen.params["conv"][1].data[...] = rng.normal(0, 1, 4)
    pair.params["conv"][1].data[...] = frozen.params["conv"][1].data
    stats = [rng.normal(0, 1, 4) * 3, rng.uniform(0.2, 2, 4) * 3, [3.0]]
    affine = [rng.normal(1, 0.5, 4), rng.normal(0, 0.5, 4)]
    for blob, values in zip(pair.params["conv_bn"], stats):
        blob.data[...] = values
    for blob, values in zip(pair.params["conv_scale"], affine):
        blob.data[...] = values
    for blob, values in zip(frozen.params["conv_bn"], stats + affine):
        blob.data[...] = values
    return pair, frozen, stats, affine


def test_forward_equals_batchnorm_and_scale():
    pair, frozen, (mean, var, factor), (gamma, beta) = _pair_and_frozen_nets(relu=False)
    x = np.random.default_rng(1).normal(0, 2, (2, 3, 9, 9))
    for net in (pair, frozen):
        net.blobs["data"].data[...] = x
        net.forward()
    conv = frozen.blobs["conv"].data
    want = (conv - (mean / factor[0])[:, None, None]) / np.sqrt(
        var / factor[0] + 1e-5)[:, None, None] * gamma[:, None, None] + beta[:, None, None]
    np.testing.assert_allclose(frozen.blobs["conv_bn"].data, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(frozen.blobs["conv_bn"].data, pair.blobs["conv_bn"].data,
                               rtol=1e-5, atol=1e-6)


def test_nothing_of_a_generated_frozen_bn_changes_in_training(tmp_path):
    """A solver step on a net with the generated FrozenBN (every lr_mult 0):
    the convolution learns, FrozenBN's statistics, gamma and beta do not."""
    from dcd.nets.blocks import conv_bn_relu
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[4, 3, 8, 8]))
    n.label = L.Input(shape=dict(dim=[4]))
    x = conv_bn_relu(n, n.data, "conv", "relu", 6, 3, pad=1, frozen_bn=True)
    n.fc = L.InnerProduct(x, num_output=3, weight_filler=dict(type="gaussian", std=0.1))
    n.loss = L.SoftmaxWithLoss(n.fc, n.label)
    net_path = write_temp(n.to_proto(), dir=tmp_path)
    # A fixed filler seed and a moderate rate: with Caffe's unseeded fillers
    # and base_lr 0.5, about one run in 25 drove every ReLU dead by step 3.
    solver = caffe_pb2.SolverParameter(net=net_path, base_lr=0.05, lr_policy="fixed",
                                       random_seed=7,
                                       momentum=0.9, weight_decay=5e-4, max_iter=10,
                                       display=0, snapshot_after_train=False,
                                       solver_mode=caffe_pb2.SolverParameter.CPU)
    solver_path = tmp_path / "solver.prototxt"
    solver_path.write_text(str(solver))
    s = caffe.SGDSolver(str(solver_path))
    rng = np.random.default_rng(0)
    bn = s.net.params["conv_bn"]
    for blob, values in zip(bn, ([0.1] * 6, [2.0] * 6, [1.0], [1.5] * 6, [0.2] * 6)):
        blob.data[...] = values
    before = [b.data.copy() for b in bn]
    conv_before = s.net.params["conv"][0].data.copy()
    for step in range(3):
        s.net.blobs["data"].data[...] = rng.normal(0, 1, (4, 3, 8, 8))
        s.net.blobs["label"].data[...] = rng.integers(0, 3, 4)
        s.step(1)
        # the gradient passed through FrozenBN at every step
        assert s.net.blobs["conv"].diff.any(), f"step {step}"
    assert np.abs(s.net.params["conv"][0].data - conv_before).max() > 1e-4
    for blob, old in zip(bn, before):
        np.testing.assert_array_equal(blob.data, old)


def _legacy(proto):
    """The same net as made before FrozenBN: BatchNorm (use_global_stats) +
    Scale at the FrozenBN positions."""
    out = caffe_pb2.NetParameter()
    out.CopyFrom(proto)
    del out.layer[:]
    for layer in proto.layer:
        if layer.type != "FrozenBN":
            out.layer.add().CopyFrom(layer)
            continue
        bn = out.layer.add()
        bn.name, bn.type = layer.name, "BatchNorm"
        bn.bottom.extend(layer.bottom)
        bn.top.extend(layer.top)
        bn.batch_norm_param.use_global_stats = True
        scale = out.layer.add()
        scale.name, scale.type = layer.name[:-3] + "_scale", "Scale"
        scale.bottom.extend(layer.top)
        scale.top.extend(layer.top)
        scale.scale_param.bias_term = True
    return out


@pytest.fixture(scope="module")
def old_snapshot(tmp_path_factory):
    """The UCF101 motion deploy net (crop 32) as made before FrozenBN, with
    random weights saved as a snapshot, and its scores on one input."""
    work = tmp_path_factory.mktemp("old")
    proto = build(get_config("ucf101", "motion"), "ucf101", "deploy", crop=32)
    old = load_net(_legacy(proto), caffe.TEST)
    rng = np.random.default_rng(3)
    for layer in old.layers:
        for blob in layer.blobs:
            blob.data[...] = rng.uniform(0.5, 1.5, blob.data.shape) if layer.type in (
                "BatchNorm", "Scale") else blob.data + rng.normal(0, 0.01, blob.data.shape)
    snapshot = work / "old.caffemodel"
    old.save(str(snapshot))
    x = rng.normal(0, 50, old.blobs["data"].data.shape)
    old.blobs["data"].data[...] = x
    scores = old.forward()[old.outputs[0]].copy()
    deploy = work / "motion_deploy.prototxt"
    deploy.write_text(str(proto))
    return dict(proto=proto, snapshot=snapshot, x=x, scores=scores, deploy=deploy, work=work)


def test_old_snapshot_loads_into_the_current_deploy_net(old_snapshot):
    """eval's loader (netio.open_net) converts the BatchNorm + Scale pairs:
    the same scores as the old net."""
    net = open_net(old_snapshot["deploy"], old_snapshot["snapshot"])
    frozen = [name for name, layer in zip(net._layer_names, net.layers)
              if layer.type == "FrozenBN"]
    assert len(frozen) > 50
    net.blobs["data"].data[...] = old_snapshot["x"]
    scores = net.forward()[net.outputs[0]]
    want = old_snapshot["scores"]
    np.testing.assert_allclose(scores, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())
    gamma = net.params["motion/inception_5b/1x1_bn"][3].data
    assert not np.allclose(gamma, 1)  # the Scale's values, not a fresh layer's


def test_converted_layers_are_named(old_snapshot):
    net = load_net(old_snapshot["proto"], caffe.TEST)
    converted = load_weights(net, old_snapshot["snapshot"])
    assert "motion/inception_4a/3x3_bn" in converted
    assert "motion/conv1/7x7_s2_bn" not in converted  # the first BN stays BatchNorm + Scale
    again = old_snapshot["work"] / "new.caffemodel"
    net.save(str(again))
    assert load_weights(load_net(old_snapshot["proto"], caffe.TEST), again) == []


def test_batchnorm_without_its_scale_is_refused_naming_it(old_snapshot):
    param = caffe_pb2.NetParameter()
    param.ParseFromString(old_snapshot["snapshot"].read_bytes())
    kept = [layer for layer in param.layer if layer.name != "motion/inception_4a/3x3_scale"]
    del param.layer[:]
    param.layer.extend(kept)
    bad = old_snapshot["work"] / "no_scale.caffemodel"
    bad.write_bytes(param.SerializeToString())
    net = load_net(old_snapshot["proto"], caffe.TEST)
    with pytest.raises(WeightsMismatchError, match="layer 'motion/inception_4a/3x3_bn' is a "
                       "BatchNorm without its Scale layer 'motion/inception_4a/3x3_scale'"):
        load_weights(net, bad)


def test_frozen_bn_snapshot_into_a_net_without_it_is_refused():
    param = caffe_pb2.NetParameter()
    layer = param.layer.add(name="conv_bn", type="FrozenBN")
    for _ in range(5):
        layer.blobs.add().data.extend([1.0])
    with pytest.raises(WeightsMismatchError, match="'conv_bn' is a FrozenBN; the net has a "
                       "BatchNorm"):
        convert_param(param, {"conv_bn": "BatchNorm"})


def test_scale_without_bias_gives_beta_zero():
    param = caffe_pb2.NetParameter()
    bn = param.layer.add(name="c_bn", type="BatchNorm")
    for values in ([2.0, 4.0], [8.0, 2.0], [2.0]):
        bn.blobs.add().data.extend(values)
    param.layer.add(name="c_scale", type="Scale").blobs.add().data.extend([3.0, 5.0])
    assert convert_param(param, {"c_bn": "FrozenBN"}) == ["c_bn"]
    assert [layer.name for layer in param.layer] == ["c_bn"]
    assert param.layer[0].type == "FrozenBN"
    assert [list(b.data) for b in param.layer[0].blobs] == \
        [[2, 4], [8, 2], [2], [3, 5], [0, 0]]
    assert [list(b.shape.dim) for b in param.layer[0].blobs] == [[2], [2], [1], [2], [2]]


def test_unit_bn_stats_helper_sets_frozen_statistics():
    net = load_net(build(get_config("ucf101", "static_1frame"), "ucf101", "deploy", crop=32),
                   caffe.TEST)
    unit_bn_stats(net)
    blobs = net.params["inception_3a/1x1_bn"]
    assert blobs[1].data.tolist() == [1.0] * 64 and blobs[2].data[0] == 1
    assert blobs[3].data.tolist() == [1.0] * 64 and not blobs[4].data.any()
