"""NetSpec building blocks: conv + BN (BatchNorm + Scale, or FrozenBN) + ReLU, temporal
pooling and frame pairing on clips stored as (N*T) x C x H x W, and TSN's
segment consensus.

Caffe 1.0 has neither 3D pooling nor Permute, so clips are regrouped with
Reshape and Slice (never Flatten: see temporal_pool).
"""
from caffe import layers as L, params as P

CONV_PARAM = [dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)]
SCALE_PARAM = [dict(lr_mult=1, decay_mult=0), dict(lr_mult=1, decay_mult=0)]
# FrozenBN's five blobs (mean, variance, factor, gamma, beta): nothing is
# learned. TSN's frozen BN keeps its slope and bias fixed as well
# (docs/ASSUMPTIONS.md, "BN").
FROZEN_BN_PARAM = [dict(lr_mult=0, decay_mult=0)] * 5


def conv_bn_relu(n, bottom, name, relu, num_output, kernel, stride=1, pad=0, frozen_bn=False,
                 keep_pre_relu=False):
    """`name` (Convolution) -> `name_bn` (BatchNorm) -> `name_scale` (Scale,
    in place) -> `relu` (ReLU, in place). `frozen_bn` (partial BN): one
    FrozenBN layer `name_bn` instead of BatchNorm + Scale, with the
    statistics it was initialised with and gamma, beta not learned.
    `keep_pre_relu`: the ReLU writes its own top `relu`, so `name_bn` keeps
    the features before it (for the cost volume); `relu=None`: no ReLU."""
    n[name] = L.Convolution(bottom, num_output=num_output, kernel_size=kernel, stride=stride,
                            pad=pad, param=CONV_PARAM, weight_filler=dict(type="xavier"),
                            bias_filler=dict(type="constant", value=0))
    if frozen_bn:
        n[name + "_bn"] = L.FrozenBN(n[name], param=FROZEN_BN_PARAM)
    else:
        n[name + "_bn"] = L.BatchNorm(n[name])
        n[name + "_scale"] = L.Scale(n[name + "_bn"], in_place=True, param=SCALE_PARAM,
                                     scale_param=dict(bias_term=True))
    if relu is None:
        return n[name + "_bn"]
    if keep_pre_relu:
        n[relu] = L.ReLU(n[name + "_bn"])
        return n[relu]
    n[relu] = L.ReLU(n[name + "_bn"], in_place=True)
    return n[name + "_bn"]


def max_pool(bottom, kernel, stride, pad=0):
    return L.Pooling(bottom, pool=P.Pooling.MAX, kernel_size=kernel, stride=stride, pad=pad)


def ave_pool(bottom, kernel, stride, pad=0):
    return L.Pooling(bottom, pool=P.Pooling.AVE, kernel_size=kernel, stride=stride, pad=pad)


def temporal_pool(n, bottom, name, frames, chw, kernel=2):
    """Max pooling over `kernel` consecutive frames (stride = kernel) of clips
    of `frames` frames: (N*T) x C x H x W -> (N*T/k) x C x H x W.

    (N*T, C, H, W) -Reshape-> (N, 1, T, C*H*W) -Pooling kernel (k, 1)->
    (N, 1, T/k, C*H*W) -Reshape-> (N*T/k, C, H, W). Only Reshape: Caffe's
    Flatten makes its bottom share the top's diff, which cuts the gradient
    off from a Reshape before it."""
    assert frames % kernel == 0, f"{name}: {frames} frames do not pool by {kernel}"
    c, h, w = chw
    n[name + "_split_time"] = L.Reshape(bottom, reshape_param=dict(
        shape=dict(dim=[-1, 1, frames, c * h * w])))
    n[name] = L.Pooling(n[name + "_split_time"], pool=P.Pooling.MAX, kernel_h=kernel, kernel_w=1,
                        stride_h=kernel, stride_w=1)
    n[name + "_restore"] = L.Reshape(n[name], reshape_param=dict(shape=dict(dim=[-1, c, h, w])))
    return n[name + "_restore"]


def temporal_pool_vector(n, bottom, name, frames, channels, pool=P.Pooling.MAX):
    """Pooling over all `frames` frames of clips whose per-frame features are
    (N*T) x C x 1 x 1 (after global_pool): -> N x 1 x 1 x C."""
    n[name + "_split_time"] = L.Reshape(bottom, reshape_param=dict(
        shape=dict(dim=[-1, 1, frames, channels])))
    n[name] = L.Pooling(n[name + "_split_time"], pool=pool, kernel_h=frames, kernel_w=1,
                        stride_h=1, stride_w=1)
    return n[name]


def global_pool(n, bottom, prefix, frames, channels, temporal):
    """A trunk's end: `<prefix>global_pool` (average over the map), then for
    temporal "late" the max over each clip's frames. Returns (top, frames
    left per clip)."""
    n[prefix + "global_pool"] = L.Pooling(bottom, pool=P.Pooling.AVE, global_pooling=True)
    x = n[prefix + "global_pool"]
    if temporal == "late":
        return temporal_pool_vector(n, x, prefix + "global_pool/temporal_pool", frames,
                                    channels), 1
    return x, frames


def frame_pairs(n, bottom, name, frames):
    """Consecutive frame pairs of clips: (N*T) x C x H x W -> first, second,
    each (N*(T-1)) x C x H x W, holding frames [0, T-1) and [1, T)."""
    n[name + "_split_time"] = L.Reshape(bottom, reshape_param=dict(
        shape=dict(dim=[-1, frames]), axis=0, num_axes=1))
    n[name + "_head"], n[name + "_last"] = L.Slice(
        n[name + "_split_time"], slice_param=dict(axis=1, slice_point=[frames - 1]), ntop=2)
    n[name + "_first"], n[name + "_tail"] = L.Slice(
        n[name + "_split_time"], slice_param=dict(axis=1, slice_point=[1]), ntop=2)
    n[name + "_silence"] = L.Silence(n[name + "_last"], n[name + "_first"], ntop=0)
    n[name + "_t0"] = L.Reshape(n[name + "_head"], reshape_param=dict(
        shape=dict(dim=[-1]), axis=0, num_axes=2))
    n[name + "_t1"] = L.Reshape(n[name + "_tail"], reshape_param=dict(
        shape=dict(dim=[-1]), axis=0, num_axes=2))
    return n[name + "_t0"], n[name + "_t1"]


def consensus(n, bottom, name, snippets, classes):
    """TSN's average consensus: (N*S) x classes scores -> N x classes, the
    mean over the S snippets (segments, or segments x frame pairs) of a clip."""
    n[name + "_reshape"] = L.Reshape(bottom, reshape_param=dict(
        shape=dict(dim=[-1, 1, snippets, classes])))
    n[name + "_pool"] = L.Pooling(n[name + "_reshape"], pool=P.Pooling.AVE, kernel_h=snippets,
                                  kernel_w=1, stride_h=1, stride_w=1)
    n[name] = L.Reshape(n[name + "_pool"], reshape_param=dict(shape=dict(dim=[0, -1])))
    return n[name]
