"""Temporal pooling, frame pairing and segment consensus on Caffe 1.0's
Reshape/Flatten/Slice/Pooling, checked against numpy."""
import os

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")

import caffe  # noqa: E402
from caffe import layers as L  # noqa: E402

from dcd.caffeio.netio import load_net  # noqa: E402
from dcd.nets.blocks import consensus, frame_pairs, temporal_pool, temporal_pool_vector  # noqa: E402

N, T, C, H, W = 2, 4, 3, 5, 6


def clip_input(n, shape):
    n.data = L.Input(input_param=dict(shape=dict(dim=list(shape))))
    return n.data


def random_clips(net, seed=0):
    x = np.random.default_rng(seed).normal(size=net.blobs["data"].data.shape).astype(np.float32)
    net.blobs["data"].data[...] = x
    return x


def test_temporal_pool_is_max_over_consecutive_pairs():
    n = caffe.NetSpec()
    top = temporal_pool(n, clip_input(n, (N * T, C, H, W)), "tp", T, (C, H, W))
    n.out = L.Power(top)  # a separate top to read and to send gradients into
    proto = n.to_proto()
    proto.force_backward = True
    net = load_net(proto, caffe.TRAIN)
    x = random_clips(net)
    net.forward()
    want = x.reshape(N, T // 2, 2, C, H, W).max(axis=2).reshape(N * T // 2, C, H, W)
    np.testing.assert_array_equal(net.blobs["out"].data, want)
    # gradient goes to the larger frame of each pair only
    net.blobs["out"].diff[...] = 1
    net.backward()
    pairs = x.reshape(N, T // 2, 2, C, H, W)
    mask = (pairs == pairs.max(axis=2, keepdims=True)).reshape(x.shape)
    np.testing.assert_array_equal(net.blobs["data"].diff, mask.astype(np.float32))


def test_temporal_pool_vector_pools_all_frames():
    n = caffe.NetSpec()
    n.out = temporal_pool_vector(n, clip_input(n, (N * T, C, 1, 1)), "tp", T, C)
    net = load_net(n.to_proto(), caffe.TRAIN)
    x = random_clips(net)
    net.forward()
    assert net.blobs["out"].data.shape == (N, 1, 1, C)
    np.testing.assert_array_equal(net.blobs["out"].data.reshape(N, C),
                                  x.reshape(N, T, C).max(axis=1))


def test_frame_pairs_are_consecutive_frames_of_each_clip():
    n = caffe.NetSpec()
    t0, t1 = frame_pairs(n, clip_input(n, (N * T, C, H, W)), "pairs", T)
    n.a, n.b = L.Power(t0), L.Power(t1)
    net = load_net(n.to_proto(), caffe.TRAIN)
    x = random_clips(net).reshape(N, T, C, H, W)
    net.forward()
    assert net.blobs["a"].data.shape == (N * (T - 1), C, H, W)
    np.testing.assert_array_equal(net.blobs["a"].data, x[:, :-1].reshape(-1, C, H, W))
    np.testing.assert_array_equal(net.blobs["b"].data, x[:, 1:].reshape(-1, C, H, W))


def test_consensus_averages_the_snippets_of_a_clip():
    classes, snippets = 7, 3
    n = caffe.NetSpec()
    n.out = consensus(n, clip_input(n, (N * snippets, classes)), "c", snippets, classes)
    net = load_net(n.to_proto(), caffe.TRAIN)
    x = random_clips(net)
    net.forward()
    np.testing.assert_allclose(net.blobs["out"].data, x.reshape(N, snippets, classes).mean(1),
                               rtol=1e-6)


def test_frame_pairs_pass_gradients_back_to_their_frames():
    n = caffe.NetSpec()
    t0, t1 = frame_pairs(n, clip_input(n, (N * T, C, H, W)), "pairs", T)
    n.a, n.b = L.Power(t0), L.Power(t1)
    proto = n.to_proto()
    proto.force_backward = True
    net = load_net(proto, caffe.TRAIN)
    random_clips(net)
    net.forward()
    net.blobs["a"].diff[...] = 1
    net.blobs["b"].diff[...] = 10
    net.backward()
    # first frame of a clip is only in `a`, the last only in `b`, the rest in both
    want = np.full((N, T), 11.0)
    want[:, 0], want[:, -1] = 1, 10
    got = net.blobs["data"].diff.reshape(N, T, -1)
    np.testing.assert_array_equal(got, np.broadcast_to(want[:, :, None], got.shape))
