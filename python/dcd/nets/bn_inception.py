"""BN-Inception (Ioffe & Szegedy 2015) with TSN's layer names, split into
the stem (`conv1/7x7_s2`) and the trunk after it (`pool1/3x3_s2` ...
`global_pool`), so the DCD branches can share the stem and feed their own
inputs into a trunk. Optional temporal pooling inside the trunk."""
from caffe import layers as L

from dcd.nets.blocks import CONV_PARAM, ave_pool, conv_bn_relu, global_pool, max_pool, temporal_pool

# name: (1x1, 3x3_reduce, 3x3, double_3x3_reduce, double_3x3, pool, pool_proj);
# 1x1 = 0 and pool_proj = 0 mark the stride-2 blocks (3c, 4e).
INCEPTION = [
    ("inception_3a", 64, 64, 64, 64, 96, "ave", 32),
    ("inception_3b", 64, 64, 96, 64, 96, "ave", 64),
    ("inception_3c", 0, 128, 160, 64, 96, "max", 0),
    ("inception_4a", 224, 64, 96, 96, 128, "ave", 128),
    ("inception_4b", 192, 96, 128, 96, 128, "ave", 128),
    ("inception_4c", 160, 128, 160, 128, 160, "ave", 128),
    ("inception_4d", 96, 128, 192, 160, 192, "ave", 128),
    ("inception_4e", 0, 128, 192, 192, 256, "max", 0),
    ("inception_5a", 352, 192, 320, 160, 224, "ave", 128),
    ("inception_5b", 352, 192, 320, 192, 224, "max", 128),
]
# Where the static branch pools over time ("gradual", Table 1), and how many
# frames the paper's 8-frame net has left after each position.
GRADUAL_POOL_AFTER = ("pool2/3x3_s2", "inception_3c/output", "inception_4e/output")
GRADUAL_FRAMES_AFTER = (4, 2, 1)


def gradual_kernels(frames):
    """{position: temporal kernel} of gradual pooling for `frames` frames (a
    power of 2). After each position a net keeps the frames the paper's
    8-frame net keeps there (4, 2, 1), or all it has if fewer: 2 frames pool
    once, after 4e; 4 after 3c and 4e; 16 by 4 after pool2 (docs/ASSUMPTIONS.md)."""
    if frames < 1 or frames & (frames - 1):
        raise ValueError(f"gradual temporal pooling needs a power of 2 frames, got {frames}")
    kernels, left = {}, frames
    for after, keep in zip(GRADUAL_POOL_AFTER, GRADUAL_FRAMES_AFTER):
        keep = min(left, keep)
        if left > keep:
            kernels[after] = left // keep
        left = keep
    return kernels


def out_size(size, kernel, stride, pad, ceil):
    """Caffe's output size: convolution floors, pooling ceils."""
    span = size + 2 * pad - kernel
    return (-(-span // stride) if ceil else span // stride) + 1


class Shape:
    """Spatial size and channels, tracked alongside the NetSpec so temporal
    pooling can restore C x H x W."""

    def __init__(self, channels, size):
        self.channels, self.size = channels, size

    def chw(self):
        return (self.channels, self.size, self.size)


STEM = "conv1/7x7_s2"  # the first convolution's name (TSN's)
# The ImageNet conv1 is fine-tuned at the base rate, as TSN does
# (small.STEM_LR_MULT differs; dcd.nets.builder.build applies it).
STEM_LR_MULT = 1


def stem(n, data, prefix="", stride=2, frozen_bn=False, size=224, keep_pre_relu=False, relu=True):
    """conv1/7x7_s2 + BN + ReLU. Returns (top, Shape). `stride=1` keeps the
    input resolution (Table 3's 224x224 displacement maps); the layer keeps
    its TSN name so ImageNet weights load into it. `keep_pre_relu`: the
    features before the ReLU stay in conv1/7x7_s2_bn (for the cost volume);
    `relu=False`: no ReLU, for nets that only match conv1's features."""
    relu_name = prefix + "conv1/relu_7x7" if relu else None
    top = conv_bn_relu(n, data, prefix + STEM, relu_name, 64, 7,
                       stride=stride, pad=3, frozen_bn=frozen_bn, keep_pre_relu=keep_pre_relu)
    return top, Shape(64, out_size(size, 7, stride, 3, False))


def _inception(n, bottom, shape, spec, prefix, frozen):
    name, c1, c3r, c3, cdr, cd, pool, proj = spec
    p = prefix + name + "/"
    stride = 1 if c1 else 2  # 3c and 4e downsample and drop the 1x1 and projection paths
    pad_pool = 1 if c1 else 0
    branches = []
    if c1:
        branches.append(conv_bn_relu(n, bottom, p + "1x1", p + "relu_1x1", c1, 1, frozen_bn=frozen))
    x = conv_bn_relu(n, bottom, p + "3x3_reduce", p + "relu_3x3_reduce", c3r, 1, frozen_bn=frozen)
    branches.append(conv_bn_relu(n, x, p + "3x3", p + "relu_3x3", c3, 3, stride, 1, frozen_bn=frozen))
    x = conv_bn_relu(n, bottom, p + "double_3x3_reduce", p + "relu_double_3x3_reduce", cdr, 1,
                     frozen_bn=frozen)
    x = conv_bn_relu(n, x, p + "double_3x3_1", p + "relu_double_3x3_1", cd, 3, 1, 1,
                     frozen_bn=frozen)
    branches.append(conv_bn_relu(n, x, p + "double_3x3_2", p + "relu_double_3x3_2", cd, 3,
                                 stride, 1, frozen_bn=frozen))
    pool_fn = ave_pool if pool == "ave" else max_pool
    n[p + "pool"] = pool_fn(bottom, 3, stride, pad_pool)
    if proj:
        branches.append(conv_bn_relu(n, n[p + "pool"], p + "pool_proj", p + "relu_pool_proj", proj,
                                     1, frozen_bn=frozen))
    else:
        branches.insert(0, n[p + "pool"])  # TSN's concat order for 3c/4e: pool, 3x3, double
    n[p + "output"] = L.Concat(*branches)
    if c1:
        return n[p + "output"], Shape(c1 + c3 + cd + proj, shape.size)
    size = out_size(shape.size, 3, 2, 1, False)
    assert size == out_size(shape.size, 3, 2, 0, True), "3c/4e paths disagree on size"
    return n[p + "output"], Shape(shape.channels + c3 + cd, size)


def trunk(n, bottom, shape, prefix="", frozen_bn=True, frames=1, temporal="none",
          kernels=None):
    """pool1/3x3_s2 ... global_pool on (N*frames) x C x H x W features.

    temporal: "gradual" (max over time after pool2, 3c and 4e, see
    gradual_kernels; frames a power of 2), "late" (max over all frames after global_pool) or "none" (frames
    stay separate). `kernels` ({position: temporal kernel}) replaces
    gradual_kernels' positions for "gradual". Returns (top, frames left per clip); the top is
    (N*frames_left) x 1024 x 1 x 1, or N x 1 x 1 x 1024 for "late"."""
    p = prefix
    n[p + "pool1/3x3_s2"] = max_pool(bottom, 3, 2)
    shape = Shape(shape.channels, out_size(shape.size, 3, 2, 0, True))
    x = conv_bn_relu(n, n[p + "pool1/3x3_s2"], p + "conv2/3x3_reduce", p + "conv2/relu_3x3_reduce",
                     64, 1, frozen_bn=frozen_bn)
    x = conv_bn_relu(n, x, p + "conv2/3x3", p + "conv2/relu_3x3", 192, 3, 1, 1, frozen_bn=frozen_bn)
    n[p + "pool2/3x3_s2"] = max_pool(x, 3, 2)
    x, shape = n[p + "pool2/3x3_s2"], Shape(192, out_size(shape.size, 3, 2, 0, True))

    if temporal != "gradual":
        kernels = {}
    elif kernels is None:
        kernels = gradual_kernels(frames)

    def maybe_pool(x, after, frames):
        if after in kernels:
            name = p + after.split("/")[0] + "/temporal_pool"
            k = kernels[after]
            return temporal_pool(n, x, name, frames, shape.chw(), kernel=k), frames // k
        return x, frames

    x, frames = maybe_pool(x, "pool2/3x3_s2", frames)
    for spec in INCEPTION:
        x, shape = _inception(n, x, shape, spec, p, frozen_bn)
        x, frames = maybe_pool(x, spec[0] + "/output", frames)
    return global_pool(n, x, p, frames, shape.channels, temporal)


def head(n, features, num_classes, prefix="", dropout=0.8):
    """Dropout after global_pool (TSN) and the classifier `fc-action`."""
    if dropout:
        n[prefix + "dropout"] = L.Dropout(features, in_place=True, dropout_ratio=dropout)
        features = n[prefix + "dropout"]
    n[prefix + "fc-action"] = L.InnerProduct(
        features, num_output=num_classes, param=CONV_PARAM,
        weight_filler=dict(type="gaussian", std=0.001), bias_filler=dict(type="constant", value=0))
    return n[prefix + "fc-action"]


def imagenet_deploy(num_classes=1000, size=224):
    """The plain ImageNet BN-Inception (deploy, one image of size x size):
    the reference for parameter counts and for checking caffemodels. The
    classifier is named `fc` as in TSN's ImageNet initialisation model."""
    import caffe
    n = caffe.NetSpec()
    n.data = L.Input(input_param=dict(shape=dict(dim=[1, 3, size, size])))
    x, shape = stem(n, n.data, size=size)
    x, _ = trunk(n, x, shape, frozen_bn=False)
    n["fc"] = L.InnerProduct(x, num_output=num_classes, param=CONV_PARAM,
                             weight_filler=dict(type="gaussian", std=0.001),
                             bias_filler=dict(type="constant", value=0))
    return n.to_proto()
