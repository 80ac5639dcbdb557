"""NetConfig and the net builders: validated choices, gradual pooling for any
frame count, TSN's stacked RGB difference, the joint net's learning rates,
the 224x224 joint net, and one-segment (w/o TSN) nets."""
import os

import numpy as np
import pytest

os.environ.setdefault("GLOG_minloglevel", "2")
import caffe  # noqa: E402

from dcd.caffeio.netio import load_net  # noqa: E402
from dcd.nets import bn_inception  # noqa: E402
from dcd.nets.builder import build  # noqa: E402
from dcd.nets.catalogue import NETS, get_config  # noqa: E402
from dcd.nets.config import TEMPERATURE, TEMPERATURE_LR_MULT, NetConfig  # noqa: E402


@pytest.mark.parametrize("field,value,valid", [
    ("appchange_input", "rgb_diff", "'warped', 'rgbwarp', 'featdiff', 'rgbdiff', 'tvl1warp'"),
    ("temporal", "gradually", "'gradual', 'late', 'none'"),
    ("method", "soft", "'SOFT', 'WTA'"),
    ("branches", ("static", "optical_flow"), "'static', 'motion', 'appchange', 'flow'"),
])
def test_unknown_choices_are_refused_listing_the_valid_ones(field, value, valid):
    kwargs = dict(branches=("motion",), frames=2)
    kwargs[field] = value
    with pytest.raises(ValueError) as err:
        NetConfig("bad", **kwargs)
    assert "net 'bad'" in str(err.value) and field in str(err.value)
    assert valid in str(err.value)
    assert repr(value if field != "branches" else "optical_flow") in str(err.value)


def test_other_bad_settings():
    with pytest.raises(ValueError, match="at least 2 frames"):
        NetConfig("m", branches=("motion",), frames=1)
    with pytest.raises(ValueError, match="tuple"):
        NetConfig("m", branches="motion", frames=2)
    with pytest.raises(ValueError, match="segments"):
        NetConfig("m", branches=("motion",), frames=2, segments=0)
    with pytest.raises(ValueError, match="stem_stride"):
        NetConfig("m", branches=("motion",), frames=2, stem_stride=4)
    with pytest.raises(ValueError, match="flow stream is a net of its own"):
        NetConfig("m", branches=("static", "flow"), frames=2)
    with pytest.raises(ValueError, match="tvl1warp reads TV-L1 flow"):
        NetConfig("m", branches=("motion", "appchange"), frames=2, appchange_input="tvl1warp")


def test_choices_compare_with_their_strings():
    cfg = get_config("ucf101", "motion_wta")
    assert cfg.method == "WTA" and cfg.branches == ("motion",) and cfg.temporal == "gradual"


@pytest.mark.parametrize("frames,kernels", [
    (1, {}),
    (2, {"inception_4e/output": 2}),
    (4, {"inception_3c/output": 2, "inception_4e/output": 2}),
    (8, {"pool2/3x3_s2": 2, "inception_3c/output": 2, "inception_4e/output": 2}),
    (16, {"pool2/3x3_s2": 4, "inception_3c/output": 2, "inception_4e/output": 2}),
])
def test_gradual_kernels_keep_the_8_frame_nets_frames_after_each_position(frames, kernels):
    assert bn_inception.gradual_kernels(frames) == kernels


@pytest.mark.parametrize("frames", [3, 6, 0])
def test_gradual_pooling_refuses_other_frame_counts(frames):
    with pytest.raises(ValueError, match="power of 2"):
        bn_inception.gradual_kernels(frames)


@pytest.mark.parametrize("name,frames,pools", [
    ("static_2frames", 2, {"inception_4e/temporal_pool": 2}),
    ("static_4frames", 4, {"inception_3c/temporal_pool": 2, "inception_4e/temporal_pool": 2}),
    ("static_16frames", 16, {"pool2/temporal_pool": 4, "inception_3c/temporal_pool": 2,
                             "inception_4e/temporal_pool": 2}),
])
def test_table2_nets_pool_over_time_where_documented(name, frames, pools):
    cfg = get_config("ucf101", name)
    proto = build(cfg, "ucf101", "deploy", crop=64)
    got = {layer.name: layer.pooling_param.kernel_h for layer in proto.layer
           if layer.name.endswith("temporal_pool")}
    assert cfg.frames == frames and got == pools
    net = load_net(proto, caffe.TEST)
    assert net.blobs["global_pool"].data.shape[0] == 1  # one snippet left


def _rgbdiff_input(dataset):
    cfg = get_config(dataset, "appchange_rgbdiff")
    crop = 64 if dataset == "ucf101" else 56
    net = load_net(build(cfg, dataset, "deploy", crop=crop), caffe.TEST)
    frames = np.random.default_rng(0).normal(0, 50, net.blobs["data"].data.shape)
    net.blobs["data"].data[...] = frames
    net.forward()
    return cfg, frames, net


@pytest.mark.parametrize("dataset,frames", [("ucf101", 5), ("synthetic", 4)])
def test_rgb_difference_stacks_consecutive_differences_as_tsn(dataset, frames):
    cfg, data, net = _rgbdiff_input(dataset)
    assert cfg.frames == frames
    stacked = net.blobs["appchange/stacked"].data
    assert stacked.shape == (1, 3 * (frames - 1)) + data.shape[2:]
    want = np.concatenate([data[k + 1] - data[k] for k in range(frames - 1)])
    np.testing.assert_allclose(stacked[0], want, rtol=1e-5, atol=1e-3)
    assert net.params["appchange/" + ("conv1/7x7_s2" if dataset == "ucf101" else "conv1")][0] \
        .data.shape[1] == 3 * (frames - 1)


def test_joint_net_trains_the_static_branch_at_a_fifth_of_the_rate():
    """Sec. 4.1: static lr 0.001, the others 0.005 (the solver's base_lr)."""
    mults = {}
    for layer in build(get_config("ucf101", "full"), "ucf101", "train_val").layer:
        if layer.param:
            mults[layer.name] = [p.lr_mult for p in layer.param]
    assert mults["inception_3a/1x1"] == pytest.approx([0.2, 0.4])
    assert mults["inception_3a/1x1_bn"] == [0] * 5  # partial BN: FrozenBN, nothing learned
    assert mults["conv1/7x7_s2_scale"] == [1, 1]  # the first BN learns (shared conv1)
    assert mults["fc-action"] == pytest.approx([0.2, 0.4])
    assert mults["conv1/7x7_s2"] == [1, 2]  # shared by all branches
    assert mults["motion/inception_3a/1x1"] == [1, 2]
    assert mults["appchange/fc-action"] == [1, 2]
    static = {layer.name: [p.lr_mult for p in layer.param]
              for layer in build(get_config("ucf101", "static"), "ucf101", "train_val").layer}
    assert static["inception_3a/1x1"] == [1, 2]
    # the motion and appearance-change stems: new modalities, TSN's flow conv1 rates
    assert mults["motion/conv1/7x7_s2"] == [5, 10]
    assert mults["appchange/conv1/7x7_s2"] == [5, 10]


def test_kinetics_joint_net_has_one_rate():
    """Sec. 4.1 gives Kinetics one rate (0.01) for every net."""
    proto = build(get_config("kinetics", "full"), "kinetics", "train_val")
    mults = {layer.name: [p.lr_mult for p in layer.param] for layer in proto.layer if layer.param}
    assert mults["inception_3a/1x1"] == [1, 2]
    assert mults["fc-action"] == [1, 2]


def test_flow_conv1_learns_at_tsns_rates():
    proto = build(get_config("ucf101", "flow"), "ucf101", "train_val")
    mults = {layer.name: [p.lr_mult for p in layer.param] for layer in proto.layer if layer.param}
    assert mults["conv1/7x7_s2"] == [5, 10]
    assert mults["conv2/3x3"] == [1, 2]
    rgb = build(get_config("ucf101", "static"), "ucf101", "train_val")
    assert [p.lr_mult for p in next(l for l in rgb.layer if l.name == "conv1/7x7_s2").param] == \
        [1, 2]


def test_joint_net_has_a_loss_per_branch_and_fused_accuracy():
    def layers(name):
        proto = build(get_config("ucf101", name), "ucf101", "train_val")
        return {layer.name: layer for layer in proto.layer}
    full = layers("full")
    losses = sorted(k for k, l in full.items() if l.type == "SoftmaxWithLoss")
    assert losses == ["appchange/loss", "loss", "motion/loss"]
    assert full["loss"].bottom[0].startswith("segment_consensus")  # the static branch's
    assert full["motion/loss"].bottom[0].startswith("motion/")
    assert full["appchange/loss"].bottom[0].startswith("appchange/")
    assert list(full["accuracy"].bottom)[0] == "fusion"
    avg = layers("full_avgloss")
    assert [k for k, l in avg.items() if l.type == "SoftmaxWithLoss"] == ["loss"]
    assert list(avg["loss"].bottom)[0] == "fusion"


def test_static_16frames_w2_pools_by_2_at_four_positions():
    proto = build(get_config("ucf101", "static_16frames_w2"), "ucf101", "train_val")
    pools = [(l.name, l.pooling_param.kernel_h) for l in proto.layer
             if l.name.endswith("/temporal_pool")]
    assert pools == [("pool2/temporal_pool", 2), ("inception_3c/temporal_pool", 2),
                     ("inception_4c/temporal_pool", 2), ("inception_4e/temporal_pool", 2)]
    with pytest.raises(ValueError, match="pool 16 frames to 1"):
        NetConfig("x", branches=("static",), frames=16,
                  temporal_kernels=(("pool2/3x3_s2", 2), ("inception_4e/output", 2)))


def test_rgb_difference_nets_crop_as_tsn():
    for name in ("appchange_rgbdiff", "appchange_rgbdiff_1pair"):
        proto = build(get_config("ucf101", name), "ucf101", "train_val")
        train = proto.layer[0]
        assert list(train.video_data_param.scale_ratios) == pytest.approx([1, 0.875, 0.75]), name


def test_full_224_builds_its_displacement_maps_at_224():
    cfg = get_config("ucf101", "full_224")
    net = load_net(build(cfg, "ucf101", "deploy"), caffe.TEST)  # shapes only, no forward
    assert net.blobs["motion/cost_volume"].data.shape == (7, 13 * 13, 224, 224)
    assert net.blobs["motion/displacement"].data.shape == (7, 2, 224, 224)
    assert net.blobs["appchange/difference"].data.shape == (7, 64, 224, 224)
    # the static trunk keeps the 112x112 input of the stride-2 conv1
    assert net.blobs["conv1/subsample"].data.shape == (8, 64, 112, 112)
    assert net.blobs["pool1/3x3_s2"].data.shape == (8, 64, 56, 56)


def test_subsampled_stride1_conv1_equals_a_stride2_conv1():
    """full_224's static branch sees exactly what `full`'s does."""
    small = {}
    for name in ("full", "full_224"):
        proto = build(get_config("ucf101", name), "ucf101", "deploy", crop=64)
        small[name] = load_net(proto, caffe.TEST)
    a, b = small["full"], small["full_224"]
    b.params["conv1/7x7_s2"][0].data[...] = a.params["conv1/7x7_s2"][0].data
    for net in (a, b):
        for layer in net.layers:
            if layer.type == "BatchNorm":
                layer.blobs[0].data[...], layer.blobs[1].data[...] = 0, 1
                layer.blobs[2].data[...] = 1
    data = np.random.default_rng(1).normal(0, 50, a.blobs["data"].data.shape)
    for net in (a, b):
        net.blobs["data"].data[...] = data
        net.forward(end="pool1/3x3_s2")
    np.testing.assert_allclose(b.blobs["pool1/3x3_s2"].data, a.blobs["pool1/3x3_s2"].data,
                               rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", ["static_notsn", "motion_notsn", "full_notsn"])
def test_without_tsn_nets_train_and_test_on_one_segment(name):
    proto = build(get_config("ucf101", name), "ucf101", "train_val")
    segments = [layer.video_data_param.num_segments for layer in proto.layer
                if layer.type == "VideoData"]
    assert segments == [1, 1]
    with_tsn = build(get_config("ucf101", name.replace("_notsn", "")), "ucf101", "deploy")
    assert str(build(get_config("ucf101", name), "ucf101", "deploy")).replace(
        name, name.replace("_notsn", "")) == str(with_tsn)  # the same test protocol


def test_every_net_name_is_unique():
    for dataset, cfgs in NETS.items():
        names = [c.name for c in cfgs]
        assert len(names) == len(set(names)), dataset


def _layers(proto):
    return {layer.name: layer for layer in proto.layer}


@pytest.mark.parametrize("dataset,branches", [("synthetic", ("motion",)),
                                              ("synthetic", ("static", "motion", "appchange")),
                                              ("ucf101", ("static", "motion", "appchange"))])
def test_matching_before_relu(dataset, branches):
    """The cost volume and the warp read conv1 before its ReLU; the static
    trunk after it; a net without the static trunk has no ReLU there."""
    cfg = NetConfig("m", branches=branches, frames=2)   # match_before_relu by default
    proto = build(cfg, dataset, "deploy", crop=None if dataset == "synthetic" else 64)
    stem = "conv1" if dataset == "synthetic" else "conv1/7x7_s2"
    layers = _layers(proto)
    assert layers["conv1/pairs_split_time"].bottom == [stem + "_bn"]
    relus = [layer for layer in proto.layer if layer.type == "ReLU" and
             layer.bottom == [stem + "_bn"]]
    if "static" in branches:
        (relu,) = relus
        assert relu.top != relu.bottom            # not in place: conv1_bn stays pre-ReLU
        first = next(layer for layer in proto.layer if relu.top[0] in layer.bottom)
        assert first.type == "Pooling" and "motion/" not in first.name
    else:
        assert relus == []
    net = load_net(proto, caffe.TEST)
    net.blobs["data"].data[...] = np.random.default_rng(0).normal(0, 50, net.blobs["data"].data.shape)
    net.forward()
    assert (net.blobs[stem + "_bn"].data < 0).any()   # the matched features keep their sign


def test_learned_temperature_and_frozen_stem_in_the_prototxt():
    cfg = NetConfig("m", branches=("motion",), frames=2, temperature=0.02,
                    learn_temperature=True, frozen_stem=True)
    layers = _layers(build(cfg, "synthetic", "train_val"))
    soft = layers["motion/displacement"]
    assert soft.soft_displacement_param.learn_temperature
    assert soft.soft_displacement_param.temperature == pytest.approx(0.02)
    assert [(p.lr_mult, p.decay_mult) for p in soft.param] == \
        [(pytest.approx(TEMPERATURE_LR_MULT), 0)]   # no decay on tau
    assert [p.lr_mult for p in layers["conv1"].param] == [0, 0]
    assert [p.lr_mult for p in layers["conv1_scale"].param] == [0, 0]
    assert layers["conv1_bn"].batch_norm_param.use_global_stats
    assert [p.lr_mult for p in layers["motion/conv1"].param] == [1, 2]   # the branch learns
    with pytest.raises(ValueError, match="learn_temperature needs method SOFT"):
        NetConfig("m", branches=("motion",), frames=2, method="WTA", learn_temperature=True)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        NetConfig("m", branches=("motion",), frames=2, temperature=0)


def test_learned_temperature_is_a_parameter_that_gets_a_gradient():
    cfg = NetConfig("m", branches=("motion",), frames=2, learn_temperature=True)
    net = load_net(build(cfg, "synthetic", "test", segments=1, batch_size=2), caffe.TRAIN)
    rng = np.random.default_rng(0)
    net.blobs["data"].data[...] = rng.normal(0, 50, net.blobs["data"].data.shape)
    net.blobs["label"].data[...] = [1, 6]
    net.forward()
    net.backward()
    (tau,) = net.params["motion/displacement"]
    assert tau.data.tolist() == pytest.approx([TEMPERATURE])
    assert tau.diff[0] != 0 and np.isfinite(tau.diff[0])
