"""The DCD nets (Sec. 3): static appearance, apparent motion, appearance
change and the full model, for UCF101 and Kinetics, as NetSpec.

Every net shares the stem `conv1/7x7_s2` (RGB, ImageNet weights). Branch
layers carry a prefix (`motion/`, `appchange/`; the static branch keeps TSN's
plain names) so the full net holds the union of the branch nets' layers and
can start from trained branches. Choices are in docs/ASSUMPTIONS.md "## Nets".
"""
from dataclasses import dataclass

import caffe
from caffe import layers as L, params as P

from dcd.data.video_net import video_data
from dcd.netio import load_net, write_temp  # noqa: F401 (used by nets tools and tests)
from dcd.nets import bn_inception, small
from dcd.nets.blocks import consensus, frame_pairs
from dcd.nets.bn_inception import head

TEMPERATURE = 0.05  # dcd.proto's default, chosen in docs/ASSUMPTIONS.md
SEGMENTS = 3        # TSN's training segments


@dataclass(frozen=True)
class NetConfig:
    name: str
    branches: tuple          # of "static", "motion", "appchange"
    frames: int              # consecutive frames per segment (new_length)
    temporal: str = "gradual"   # static branch: "gradual", "late", "none"
    stem_stride: int = 2     # 1: displacement maps at the input resolution
    max_displacement: int = 3
    dilation: int = 1
    method: str = "SOFT"     # or "WTA"
    appchange_input: str = "warped"  # "rgbwarp", "featdiff", "rgbdiff"
    batch_size: int = 8      # clips per GPU per iteration (solver iter_size makes 256)
    description: str = ""


@dataclass(frozen=True)
class Dataset:
    name: str
    classes: int
    partial_bn: bool
    val_videos: tuple  # per split, for test_iter; None: spot check
    backbone: object = bn_inception  # a module with stem() and trunk()
    crop: int = 224
    segments: int = SEGMENTS
    mirror: bool = True  # TSN's horizontal flips in training


UCF101 = Dataset("ucf101", 101, True, (3783, 3734, 3696))
KINETICS = Dataset("kinetics", 400, False, None)
# The generated MovingPatterns set of `make demo` (python/dcd/synthetic.py):
# 64x64 frames, 56 crops, 8 val clips per class. No mirroring: a horizontal
# flip turns leftward motion into rightward, a different class.
SYNTHETIC = Dataset("synthetic", 8, False, (64, 64), backbone=small, crop=56, segments=2,
                    mirror=False)
DATASETS = {"ucf101": UCF101, "kinetics": KINETICS, "synthetic": SYNTHETIC}

_STATIC = dict(branches=("static",), frames=8, batch_size=4)
_MOTION = dict(branches=("motion",), frames=2, batch_size=8)
_APP = dict(branches=("appchange",), frames=2, batch_size=8)
NETS = {
    "ucf101": [
        NetConfig("static", description="8 frames, gradual 3D pooling", **_STATIC),
        NetConfig("static_late", temporal="late", description="8 frames, late 3D pooling",
                  **_STATIC),
        NetConfig("static_1frame", branches=("static",), frames=1, temporal="none",
                  batch_size=16, description="1 frame, 2D pooling only (TSN RGB)"),
        NetConfig("motion", description="displacement map 112x112 (conv1 stride 2), soft",
                  **_MOTION),
        NetConfig("motion_224", stem_stride=1, max_displacement=6,
                  description="displacement map 224x224 (conv1 stride 1), soft", **_MOTION),
        NetConfig("motion_wta", method="WTA", description="cost volume + WTA, 112x112",
                  **_MOTION),
        NetConfig("appchange", description="warped conv1 feature differences, 112x112", **_APP),
        NetConfig("appchange_rgbwarp", appchange_input="rgbwarp", stem_stride=1,
                  max_displacement=6, description="RGB differences warped by 224x224 "
                  "displacement maps", **_APP),
        NetConfig("appchange_featdiff", appchange_input="featdiff",
                  description="conv1 feature differences, no warping", **_APP),
        NetConfig("appchange_rgbdiff", appchange_input="rgbdiff",
                  description="RGB differences, no warping", **_APP),
        NetConfig("full", branches=("static", "motion", "appchange"), frames=8, batch_size=2,
                  description="shared conv1, three branches, scores averaged"),
    ],
}
NETS["kinetics"] = [c for c in NETS["ucf101"] if c.name in ("static", "motion", "appchange", "full")]
# The demo's nets: the same branches on the small trunk, shared conv1 at the
# crop's resolution (stride 1), 4 frames per segment for the static and full
# nets (gradual pooling 4 -> 2 -> 1), one pair for the others.
_SMALL = dict(stem_stride=1, max_displacement=3, batch_size=16)
NETS["synthetic"] = [
    NetConfig("static", branches=("static",), frames=4, description="4 frames, gradual pooling",
              **_SMALL),
    NetConfig("motion", branches=("motion",), frames=2, description="displacement map, soft",
              **_SMALL),
    NetConfig("appchange", branches=("appchange",), frames=2,
              description="warped conv1 feature differences", **_SMALL),
    NetConfig("appchange_rgbdiff", branches=("appchange",), frames=2, appchange_input="rgbdiff",
              description="RGB differences, no warping", **_SMALL),
    NetConfig("full", branches=("static", "motion", "appchange"), frames=4,
              description="shared conv1, three branches, scores averaged", **_SMALL),
]
DROPOUT = {"static": 0.8, "motion": 0.7, "appchange": 0.7}  # TSN: RGB 0.8, flow 0.7


def get_config(dataset, name):
    for cfg in NETS[dataset]:
        if cfg.name == name:
            return cfg
    raise KeyError(f"no net {name!r} for {dataset}; have {[c.name for c in NETS[dataset]]}")


def list_files(dataset, split=1):
    """Train and val file lists, relative to the repository root (docs/DATA.md)."""
    return tuple(f"data/{dataset}/{dataset}_{part}_split_{split}.txt" for part in ("train", "val"))


def lmdb_root(dataset):
    return f"data/{dataset}/frames_lmdb"


def _displacement(n, t0, t1, cfg):
    common = dict(max_displacement=cfg.max_displacement, dilation=cfg.dilation)
    n["motion/cost_volume"] = L.CostVolume(t0, t1, cost_volume_param=common)
    n["motion/displacement"] = L.SoftDisplacement(
        n["motion/cost_volume"], soft_displacement_param=dict(
            temperature=TEMPERATURE, method=getattr(P.SoftDisplacement, cfg.method), **common))
    return n["motion/displacement"]


def _branch_stride(in_size, crop):
    """Stride of a branch's own conv1: every trunk sees crop/2 after it, as the
    RGB trunk does (maps at the crop's resolution: 2, at half of it: 1), so
    the 112 and 224 variants differ only in the cost volume (cf. Table 9)."""
    return 2 if in_size == crop else 1


def body(n, data, cfg, ds, size):
    """The net from `data` ((N*snippets*frames) x 3 x size x size) to
    per-branch scores. Returns [(prefix, scores, score rows per snippet)]."""
    frozen = ds.partial_bn
    stem, trunk = ds.backbone.stem, ds.backbone.trunk
    rgbdiff_only = cfg.branches == ("appchange",) and cfg.appchange_input == "rgbdiff"
    if not rgbdiff_only:  # the shared low-level features
        feat, fshape = stem(n, data, stride=cfg.stem_stride, size=size)
    outputs = []
    if "static" in cfg.branches:
        temporal = cfg.temporal if cfg.frames > 1 else "none"
        x, left = trunk(n, feat, fshape, "", frozen_bn=frozen, frames=cfg.frames, temporal=temporal)
        assert left == 1, f"static branch leaves {left} frames per snippet"
        outputs.append(("", head(n, x, ds.classes, "", DROPOUT["static"]), 1))
    pairs = cfg.frames - 1
    need_v = "motion" in cfg.branches or (
        "appchange" in cfg.branches and cfg.appchange_input in ("warped", "rgbwarp"))
    if need_v or ("appchange" in cfg.branches and cfg.appchange_input == "featdiff"):
        t0, t1 = frame_pairs(n, feat, "conv1/pairs", cfg.frames)
    if need_v:
        v = _displacement(n, t0, t1, cfg)
    if "motion" in cfg.branches:
        x, shape = stem(n, v, "motion/", stride=_branch_stride(fshape.size, size), size=fshape.size)
        x, _ = trunk(n, x, shape, "motion/", frozen_bn=frozen)
        outputs.append(("motion/", head(n, x, ds.classes, "motion/", DROPOUT["motion"]), pairs))
    if "appchange" in cfg.branches:
        if cfg.appchange_input == "warped":
            # F_{t+1} - W(F_t, V_t): W samples F_t at p - V(p) (docs/ASSUMPTIONS.md)
            n["appchange/warp"] = L.BilinearWarp(t0, v, bilinear_warp_param=dict(
                displacement_scale=-1))
            n["appchange/difference"] = L.Eltwise(t1, n["appchange/warp"],
                                                  operation=P.Eltwise.SUM, coeff=[1, -1])
            in_size = fshape.size
        elif cfg.appchange_input == "rgbwarp":
            # Table 4's "Disp. Map warping" of RGB: needs maps at the frames' resolution
            assert fshape.size == size, "rgbwarp needs conv1 stride 1"
            r0, r1 = frame_pairs(n, data, "data/pairs", cfg.frames)
            n["appchange/warp"] = L.BilinearWarp(r0, v, bilinear_warp_param=dict(
                displacement_scale=-1))
            n["appchange/difference"] = L.Eltwise(r1, n["appchange/warp"],
                                                  operation=P.Eltwise.SUM, coeff=[1, -1])
            in_size = size
        elif cfg.appchange_input == "featdiff":
            n["appchange/difference"] = L.Eltwise(t1, t0, operation=P.Eltwise.SUM, coeff=[1, -1])
            in_size = fshape.size
        else:
            r0, r1 = frame_pairs(n, data, "data/pairs", cfg.frames)
            n["appchange/difference"] = L.Eltwise(r1, r0, operation=P.Eltwise.SUM, coeff=[1, -1])
            in_size = size
        x, shape = stem(n, n["appchange/difference"], "appchange/",
                        stride=_branch_stride(in_size, size), size=in_size)
        x, _ = trunk(n, x, shape, "appchange/", frozen_bn=frozen)
        outputs.append(("appchange/", head(n, x, ds.classes, "appchange/", DROPOUT["appchange"]),
                        pairs))
    return outputs


def _fuse(n, scores):
    if len(scores) == 1:
        return scores[0]
    n["fusion"] = L.Eltwise(*scores, operation=P.Eltwise.SUM, coeff=[1.0 / len(scores)] * len(scores))
    return n["fusion"]


def build(cfg, dataset, mode="train_val", split=1, crop=None, segments=None, batch_size=None,
          test_batch_size=1):
    """NetParameter for `cfg` on `dataset`.

    mode: "train_val" (VideoData for TRAIN and TEST, segment consensus,
    loss, accuracy), "deploy" (Input of one snippet, per-snippet scores), or
    "test" (Input data and label instead of VideoData: the train_val
    structure without files, for quick checks at a small crop)."""
    ds = DATASETS[dataset]
    crop = crop or ds.crop
    segments = segments or ds.segments
    batch = batch_size or cfg.batch_size
    n = caffe.NetSpec()
    frames = cfg.frames
    if mode == "train_val":
        train_list, _ = list_files(dataset, split)
        n.data, n.label = video_data(train_list, lmdb_root(dataset), batch_size=batch,
                                     num_segments=segments, new_length=frames, crop_size=crop,
                                     train=True, mirror=ds.mirror)
    elif mode == "test":
        n.data = L.Input(input_param=dict(shape=dict(dim=[batch * segments * frames, 3, crop, crop])))
        n.label = L.Input(input_param=dict(shape=dict(dim=[batch])))
    elif mode == "deploy":
        segments = 1
        n.data = L.Input(input_param=dict(shape=dict(dim=[frames, 3, crop, crop])))
    else:
        raise ValueError(f"unknown mode {mode!r}")
    outputs = body(n, n.data, cfg, ds, crop)
    if mode == "deploy":
        scores = [s if per == 1 else consensus(n, s, prefix + "pair_consensus", per, ds.classes)
                  for prefix, s, per in outputs]
        _fuse(n, scores)
    else:
        scores = [consensus(n, s, prefix + "segment_consensus", segments * per, ds.classes)
                  for prefix, s, per in outputs]
        fused = _fuse(n, scores)
        n.loss = L.SoftmaxWithLoss(fused, n.label)
        if mode == "train_val":
            n.accuracy = L.Accuracy(fused, n.label, include=dict(phase=caffe.TEST))
    proto = n.to_proto()
    proto.name = f"dcd_{dataset}_{cfg.name}"
    if mode == "train_val":
        _add_test_data_layer(proto, dataset, split, frames, crop, test_batch_size)
    return proto


def _add_test_data_layer(proto, dataset, split, frames, crop, batch):
    """Caffe's train_val convention: one data layer per phase, same tops."""
    _, val_list = list_files(dataset, split)
    t = caffe.NetSpec()
    t.data, t.label = video_data(val_list, lmdb_root(dataset), batch_size=batch,
                                 num_segments=DATASETS[dataset].segments, new_length=frames,
                                 crop_size=crop,
                                 train=False)
    test_layer = t.to_proto().layer[0]
    test_layer.name = "data"
    test_layer.include.add().phase = caffe.TEST
    layers = list(proto.layer)
    layers[0].include.add().phase = caffe.TRAIN
    del proto.layer[:]
    proto.layer.extend(layers[:1] + [test_layer] + layers[1:])
