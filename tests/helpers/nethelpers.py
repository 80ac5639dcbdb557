"""Helpers for the net tests (a plain module: `conftest` names clash across
test folders)."""
import os

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")
import caffe  # noqa: E402

from dcd.caffeio.netio import load_net  # noqa: E402
from dcd.nets.bn_inception import imagenet_deploy  # noqa: E402

caffe.set_mode_cpu()


def unit_bn_stats(net):
    """Mean 0, variance 1 in every BatchNorm and FrozenBN (whose first three
    blobs are BatchNorm's): frozen BN on the zero statistics of a fresh net
    would divide by sqrt(eps) per layer."""
    for layer in net.layers:
        if layer.type in ("BatchNorm", "FrozenBN"):
            layer.blobs[0].data[...] = 0
            layer.blobs[1].data[...] = 1
            layer.blobs[2].data[...] = 1


def random_bninception(path, seed=0):
    """A BN-Inception caffemodel with random (filler) weights and BN
    statistics, as net.save() writes it (BatchNorm + Scale)."""
    net = load_net(imagenet_deploy(size=64), caffe.TEST)
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        for blob in layer.blobs:
            if layer.type != "Convolution":
                blob.data[...] = rng.uniform(0.5, 1.5, blob.data.shape)
            else:
                blob.data[...] += rng.normal(0, 0.01, blob.data.shape)
        if layer.type == "BatchNorm":
            layer.blobs[2].data[...] = 2.0  # stored sums: mean = blob / factor
    net.save(str(path))
    return path


def forward_backward(net, seed=0):
    """Random frames and labels in, loss out (after a backward pass)."""
    rng = np.random.default_rng(seed)
    net.blobs["data"].data[...] = rng.normal(0, 50, net.blobs["data"].data.shape)
    if "label" in net.blobs:
        classes = next(b for n, b in net.blobs.items() if n.endswith("fc-action")).data.shape[1]
        net.blobs["label"].data[...] = rng.integers(0, classes, net.blobs["label"].data.shape)
    out = net.forward()
    net.backward()
    return out


def frozen_or_pair_bn(n, frozen):
    """`conv_bn` after `n.conv`: one FrozenBN, or BatchNorm (global
    statistics) + Scale as the nets were before FrozenBN."""
    from caffe import layers as L
    if frozen:
        n.conv_bn = L.FrozenBN(n.conv)
    else:
        n.conv_bn = L.BatchNorm(n.conv, batch_norm_param=dict(use_global_stats=True))
        n.conv_scale = L.Scale(n.conv_bn, in_place=True, scale_param=dict(bias_term=True))
    return n.conv_bn
