"""A small trunk with BN-Inception's interface (stem / trunk), for the
generated MovingPatterns demo: the DCD nets are built from the same blocks
and custom layers, only the backbone is a few conv stages instead of
BN-Inception, so they train in minutes on a CPU."""
from dcd.nets.blocks import conv_bn_relu, global_pool, max_pool, temporal_pool
from dcd.nets.bn_inception import Shape, out_size

STEM = "conv1"  # the first convolution's name
# (kernel, channels) of a stem by stride. At stride 2 a stem reads frames (or
# frame-sized stacks) as BN-Inception's conv1/7x7_s2 does, at a smaller
# width: 7x7, 32 channels, initialised by the demo from an oriented filter
# bank (dcd.nets.init_weights.filter_bank_conv1), its stand-in for ImageNet
# weights. At stride 1 a stem reads the half-resolution maps of the motion
# and appearance-change branches: 3x3, 16 channels.
STEM_SHAPES = {2: (7, 32), 1: (3, 16)}
# The shared conv1 on RGB frames, the stand-in for a pretrained one, learns
# at a tenth of the base rate (dcd.nets.builder.build): at the full rate (lr
# 0.01, batch 8) the motion net's conv1 moved 34% in 400 iterations and its
# displacement maps lost most of what the bank matched (docs/ASSUMPTIONS.md,
# the demo).
STEM_LR_MULT = 0.1
STAGES = (("stage1", 32), ("stage2", 64), ("stage3", 96))


def stem(n, data, prefix="", stride=2, frozen_bn=False, size=56, keep_pre_relu=False, relu=True):
    """conv1 + BN + ReLU (STEM_SHAPES by stride): the shared low-level
    features (`keep_pre_relu`: conv1_bn stays the features before the ReLU;
    `relu=False`: no ReLU, for nets that only match conv1's features)."""
    if stride not in STEM_SHAPES:
        raise ValueError(f"small.stem: stride {stride} (1 or 2)")
    kernel, channels = STEM_SHAPES[stride]
    relu_name = prefix + "conv1/relu" if relu else None
    top = conv_bn_relu(n, data, prefix + STEM, relu_name, channels, kernel, stride=stride,
                       pad=kernel // 2, frozen_bn=frozen_bn, keep_pre_relu=keep_pre_relu)
    return top, Shape(channels, out_size(size, kernel, stride, kernel // 2, False))


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
    return global_pool(n, x, prefix, frames, shape.channels, temporal)
