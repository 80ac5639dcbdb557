"""BN-Inception with TSN's names and shapes, partial BN, and its size
against the published figures."""
import os

import pytest

os.environ.setdefault("GLOG_minloglevel", "2")
import caffe  # noqa: E402

from dcd.caffeio.netio import load_net  # noqa: E402
from dcd.nets import stats  # noqa: E402
from dcd.nets.bn_inception import imagenet_deploy  # noqa: E402
from dcd.nets.builder import build  # noqa: E402
from dcd.nets.catalogue import get_config  # noqa: E402

TSN_NAMES = ["conv1/7x7_s2", "conv1/7x7_s2_bn", "conv1/relu_7x7", "pool1/3x3_s2",
             "conv2/3x3_reduce", "conv2/3x3", "pool2/3x3_s2", "inception_3a/1x1",
             "inception_3a/1x1_bn", "inception_3a/double_3x3_2", "inception_3a/pool_proj",
             "inception_3a/output", "inception_3b/output", "inception_3c/output",
             "inception_4a/output", "inception_4b/output", "inception_4c/output",
             "inception_4d/output", "inception_4e/output", "inception_5a/output",
             "inception_5b/output", "global_pool", "fc-action"]


@pytest.fixture(scope="module")
def static_proto():
    return build(get_config("ucf101", "static"), "ucf101", "deploy")


def test_static_net_has_tsn_layer_names(static_proto):
    names = {layer.name for layer in static_proto.layer}
    assert not [n for n in TSN_NAMES if n not in names]


def test_trunk_shapes_at_224():
    net = load_net(imagenet_deploy(), caffe.TEST)
    shapes = {name: net.blobs[name].data.shape[1:] for name in
              ("pool2/3x3_s2", "inception_3c/output", "inception_4e/output",
               "inception_5b/output", "global_pool")}
    assert shapes == {"pool2/3x3_s2": (192, 28, 28), "inception_3c/output": (576, 14, 14),
                      "inception_4e/output": (1056, 7, 7), "inception_5b/output": (1024, 7, 7),
                      "global_pool": (1024, 1, 1)}


def test_gradual_pooling_halves_frames_after_pool2_3c_4e(static_proto):
    net = load_net(static_proto, caffe.TEST)
    assert net.blobs["data"].data.shape == (8, 3, 224, 224)
    assert net.blobs["pool2/3x3_s2"].data.shape[0] == 8
    assert net.blobs["pool2/temporal_pool_restore"].data.shape == (4, 192, 28, 28)
    assert net.blobs["inception_3c/temporal_pool_restore"].data.shape == (2, 576, 14, 14)
    assert net.blobs["inception_4e/temporal_pool_restore"].data.shape == (1, 1056, 7, 7)
    assert net.blobs["fc-action"].data.shape == (1, 101)


@pytest.mark.parametrize("dataset,learning", [
    ("ucf101", {"conv1/7x7_s2_bn", "motion/conv1/7x7_s2_bn", "appchange/conv1/7x7_s2_bn"}),
    ("kinetics", None)])
def test_partial_bn_on_ucf101_only(dataset, learning):
    """Partial BN: FrozenBN (nothing learned) at every BN but the first of
    each trunk; those, and every BN on Kinetics, are BatchNorm + Scale on
    batch statistics."""
    proto = build(get_config(dataset, "full"), dataset, "train_val")
    bns = [layer for layer in proto.layer if layer.type == "BatchNorm"]
    frozen = [layer for layer in proto.layer if layer.type == "FrozenBN"]
    convs = [layer for layer in proto.layer if layer.type == "Convolution"]
    assert not any(layer.batch_norm_param.use_global_stats for layer in bns)
    assert len(bns) + len(frozen) == len(convs)  # one BN after every convolution
    if learning is None:
        assert not frozen
        return
    assert {layer.name for layer in bns} == learning
    names = {layer.name for layer in proto.layer}
    for layer in frozen:
        assert [(p.lr_mult, p.decay_mult) for p in layer.param] == [(0, 0)] * 5, layer.name
        assert layer.name[:-3] + "_scale" not in names  # the Scale is part of FrozenBN


def test_trunk_size_matches_published_bn_inception():
    trunk = stats.trunk_stats()
    assert trunk.params == pytest.approx(stats.PUBLISHED_PARAMS_1000, rel=0.01)
    assert trunk.macs == pytest.approx(stats.PUBLISHED_MACS_224, rel=0.05)


def test_stats_section_is_rewritten_in_place():
    one = stats.rewrite_section("# Models\n\ntext\n", "SECTION_A")  # no markers: appended
    assert one.endswith("SECTION_A\n")
    section = stats.STATS_BEGIN + "\nnew\n" + stats.STATS_END
    text = "head\n" + stats.STATS_BEGIN + "\nold\n" + stats.STATS_END + "\ntail\n"
    assert stats.rewrite_section(text, section) == "head\n" + section + "\ntail\n"
