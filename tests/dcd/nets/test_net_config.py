"""NetConfig and the net builders: validated choices, gradual pooling for any
frame count, TSN's stacked RGB difference, the joint net's learning rates,
the 224x224 joint net, and one-segment (w/o TSN) nets."""
import os

import numpy as np
import pytest

os.environ.setdefault("GLOG_minloglevel", "2")
import caffe  # noqa: E402

from dcd.netio import load_net  # noqa: E402
from dcd.nets import bn_inception  # noqa: E402
from dcd.nets.dcd import NETS, NetConfig, build, get_config  # noqa: E402


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
    assert mults["inception_3a/1x1_scale"] == pytest.approx([0.2, 0.2])
    assert mults["fc-action"] == pytest.approx([0.2, 0.4])
    assert mults["conv1/7x7_s2"] == [1, 2]  # shared by all branches
    assert mults["motion/inception_3a/1x1"] == [1, 2]
    assert mults["appchange/fc-action"] == [1, 2]
    static = {layer.name: [p.lr_mult for p in layer.param]
              for layer in build(get_config("ucf101", "static"), "ucf101", "train_val").layer}
    assert static["inception_3a/1x1"] == [1, 2]


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
