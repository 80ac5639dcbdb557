"""A small trunk with BN-Inception's interface (stem / trunk), for the
generated MovingPatterns demo: the DCD nets are built from the same blocks
and custom layers, only the backbone is a few conv stages instead of
BN-Inception, so they train in minutes on a CPU."""
from caffe import layers as L, params as P

from dcd.nets.blocks import conv_bn_relu, max_pool, temporal_pool, temporal_pool_vector
from dcd.nets.bn_inception import Shape, out_size

STEM = "conv1"  # the first convolution's name
STEM_CHANNELS = 16
STAGES = (("stage1", 32), ("stage2", 64), ("stage3", 96))


def stem(n, data, prefix="", stride=1, frozen_bn=False, size=56, keep_pre_relu=False, relu=True):
    """conv1 (3x3, 16 channels) + BN + ReLU: the shared low-level features
    (`keep_pre_relu`: conv1_bn stays the features before the ReLU; `relu=False`:
    no ReLU, for nets that only match conv1's features)."""
    relu_name = prefix + "conv1/relu" if relu else None
    top = conv_bn_relu(n, data, prefix + STEM, relu_name, STEM_CHANNELS, 3,
                       stride=stride, pad=1, frozen_bn=frozen_bn, keep_pre_relu=keep_pre_relu)
    return top, Shape(STEM_CHANNELS, out_size(size, 3, stride, 1, False))


def trunk(n, bottom, shape, prefix="", frozen_bn=False, frames=1, temporal="none"):
    """Three stages of 2x2 max pooling + 3x3 conv, then global average
    pooling. temporal: "gradual" halves the frames after each stage while
    more than one is left, "late" pools all frames after global_pool."""
    x = bottom
    for name, channels in STAGES:
        p = prefix + name
        n[p + "/pool"] = max_pool(x, 2, 2)
        size = out_size(shape.size, 2, 2, 0, True)
        x = conv_bn_relu(n, n[p + "/pool"], p + "/conv", p + "/relu", channels, 3, 1, 1,
                         frozen_bn=frozen_bn)
        shape = Shape(channels, size)
        if temporal == "gradual" and frames > 1:
            x = temporal_pool(n, x, p + "/temporal_pool", frames, shape.chw())
            frames //= 2
    n[prefix + "global_pool"] = L.Pooling(x, pool=P.Pooling.AVE, global_pooling=True)
    x = n[prefix + "global_pool"]
    if temporal == "late":
        x, frames = temporal_pool_vector(n, x, prefix + "global_pool/temporal_pool", frames,
                                         shape.channels), 1
    return x, frames
