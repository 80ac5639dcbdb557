"""The DCD nets (Sec. 3): static appearance, apparent motion, appearance
change and the full model, for UCF101 and Kinetics, as NetSpec.

Every net shares the stem `conv1/7x7_s2` (RGB, ImageNet weights). Branch
layers carry a prefix (`motion/`, `appchange/`; the static branch keeps TSN's
plain names) so the full net holds the union of the branch nets' layers and
can start from trained branches. Choices are in docs/ASSUMPTIONS.md "## Nets".
"""
from dataclasses import dataclass
from enum import Enum

import caffe
from caffe import layers as L, params as P

from dcd.data.video_net import video_data
from dcd.nets import bn_inception, small
from dcd.nets.blocks import consensus, frame_pairs
from dcd.nets.bn_inception import head

# Measured on displacement ground truth (docs/ASSUMPTIONS.md, "Temperature"):
TEMPERATURE = 0.02
MATCH_BEFORE_RELU = True   # the cost volume compares conv1's features before its ReLU
# learn_temperature: tau's rate relative to base_lr (at 1 tau crossed 0 within
# 25 demo iterations; at 0.05 it settled near 0.02)
TEMPERATURE_LR_MULT = 0.05
SEGMENTS = 3        # TSN's training segments


class Choice(str, Enum):
    """A NetConfig setting with a fixed set of values (compares equal to its string)."""

    @classmethod
    def parse(cls, value, what):
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(repr(m.value) for m in cls)
            raise ValueError(f"{what}: unknown value {value!r}; valid: {valid}") from None

    def __str__(self):
        return self.value


class Branch(Choice):
    STATIC = "static"
    MOTION = "motion"
    APPCHANGE = "appchange"
    FLOW = "flow"  # TSN's optical-flow stream (TV-L1), a net of its own


class Temporal(Choice):
    GRADUAL = "gradual"  # max over time after pool2, 3c and 4e (Table 1)
    LATE = "late"        # one max over all frames after global_pool
    NONE = "none"        # frames stay separate (2D pooling only)


class Method(Choice):
    SOFT = "SOFT"  # Eq. (1)-(2)
    WTA = "WTA"    # Table 3's winner-take-all


class AppchangeInput(Choice):
    WARPED = "warped"      # F_{t+1} - W(F_t, V_t) on conv1 features (Sec. 3.4)
    RGBWARP = "rgbwarp"    # the same on RGB (Table 4, "Disp. Map warping")
    FEATDIFF = "featdiff"  # F_{t+1} - F_t (Table 4, "No warping, Feature")
    RGBDIFF = "rgbdiff"    # TSN's RGB difference: frames-1 differences stacked on channels
    TVL1WARP = "tvl1warp"  # RGB warped by its TV-L1 flow (Table 4, "TV-L1 warping")


@dataclass(frozen=True)
class NetConfig:
    name: str
    branches: tuple          # of Branch
    frames: int              # consecutive frames per segment (new_length)
    temporal: Temporal = Temporal.GRADUAL  # static branch
    stem_stride: int = 2     # 1: displacement maps at the input resolution
    max_displacement: int = 3
    dilation: int = 1
    method: Method = Method.SOFT
    appchange_input: AppchangeInput = AppchangeInput.WARPED
    batch_size: int = 8      # clips per GPU per iteration (solver iter_size makes 256)
    segments: int = None     # TSN segments in training; None: the data set's (1: w/o TSN)
    # The static branch's rate relative to base_lr in a joint net; None: the
    # data set's (Dataset.static_lr_mult: its paper rates' ratio).
    static_lr_mult: float = None
    # Joint nets: one SoftmaxWithLoss per branch in training (each branch's
    # gradient is what it gets alone), the scores averaged for accuracy and
    # in deploy; False: the averaged scores into one loss (each branch then
    # gets a third of its gradient).
    branch_losses: bool = True
    # The cost volume (and the warped difference) on conv1's features before
    # its ReLU; the static trunk always reads them after it.
    match_before_relu: bool = MATCH_BEFORE_RELU
    temperature: float = TEMPERATURE
    learn_temperature: bool = False  # tau a parameter of motion/displacement
    frozen_stem: bool = False  # conv1 (+ BN, Scale) not learned: taken from another net
    # Gradual pooling at other positions: ((layer, temporal kernel), ...);
    # None: bn_inception.gradual_kernels (after pool2, 3c and 4e).
    temporal_kernels: tuple = None
    schedule: str = None  # a Dataset.schedules key; None: chosen by branches
    description: str = ""

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)
        where = f"net {self.name!r}"
        if isinstance(self.branches, str) or not self.branches:
            raise ValueError(f"{where}: branches must be a non-empty tuple of "
                             f"{[b.value for b in Branch]}, got {self.branches!r}")
        put("branches", tuple(Branch.parse(b, f"{where}, branches") for b in self.branches))
        put("temporal", Temporal.parse(self.temporal, f"{where}, temporal"))
        put("method", Method.parse(self.method, f"{where}, method"))
        put("appchange_input", AppchangeInput.parse(self.appchange_input,
                                                    f"{where}, appchange_input"))
        if self.frames < 1 or self.stem_stride not in (1, 2):
            raise ValueError(f"{where}: frames must be >= 1 and stem_stride 1 or 2, got "
                             f"{self.frames} and {self.stem_stride}")
        pairs_needed = Branch.MOTION in self.branches or Branch.APPCHANGE in self.branches
        if pairs_needed and self.frames < 2:
            raise ValueError(f"{where}: the motion and appearance-change branches need at "
                             f"least 2 frames per segment, got {self.frames}")
        if self.temperature <= 0:
            raise ValueError(f"{where}: temperature must be > 0, got {self.temperature}")
        if self.learn_temperature and self.method != Method.SOFT:
            raise ValueError(f"{where}: learn_temperature needs method SOFT")
        if self.temporal_kernels is not None:
            product = 1
            for _, k in self.temporal_kernels:
                product *= k
            if self.temporal != Temporal.GRADUAL or product != self.frames:
                raise ValueError(f"{where}: temporal_kernels need gradual pooling and must "
                                 f"pool {self.frames} frames to 1, got {self.temporal_kernels}")
        if self.segments is not None and self.segments < 1:
            raise ValueError(f"{where}: segments must be >= 1, got {self.segments}")
        if Branch.FLOW in self.branches and len(self.branches) > 1:
            raise ValueError(f"{where}: the flow stream is a net of its own; fuse its scores "
                             "with the others' (tools/eval_scores.py)")
        if self.appchange_input == AppchangeInput.TVL1WARP and self.branches != (Branch.APPCHANGE,):
            raise ValueError(f"{where}: tvl1warp reads TV-L1 flow instead of the displacement "
                             "map: an appearance-change net of its own")

    @property
    def modality(self):
        """What VideoData reads (dcd.proto's VideoDataParameter.Modality)."""
        if self.branches == (Branch.FLOW,):
            return "FLOW"
        if self.appchange_input == AppchangeInput.TVL1WARP:
            return "RGB_FLOW"
        return "RGB"

    @property
    def uses_shared_features(self):
        """Whether the net has the shared conv1 (static and motion branches,
        and the appearance-change inputs built on it)."""
        return Branch.STATIC in self.branches or Branch.MOTION in self.branches or (
            Branch.APPCHANGE in self.branches and self.appchange_input in (
                AppchangeInput.WARPED, AppchangeInput.RGBWARP, AppchangeInput.FEATDIFF))

    def input_shape(self, samples, crop):
        """The data blob for `samples` snippets: frames on rows (RGB: 3
        channels, RGB_FLOW: 5, BGR then the frame's flow), or TSN's stacked
        flow (one row of 2 x frames channels per snippet)."""
        if self.modality == "FLOW":
            return [samples, 2 * self.frames, crop, crop]
        return [samples * self.frames, 5 if self.modality == "RGB_FLOW" else 3, crop, crop]

    @property
    def static_only(self):
        return self.branches == (Branch.STATIC,)

    @property
    def stacked_rgbdiff(self):
        """The appearance-change branch alone on TSN's RGB differences (stacked
        when frames > 2)."""
        return self.branches == (Branch.APPCHANGE,) and \
            self.appchange_input == AppchangeInput.RGBDIFF


@dataclass(frozen=True)
class Schedule:
    """One learning-rate schedule of Sec. 4.1."""
    base_lr: float
    max_iter: int
    stepsize: int = 0          # lr_policy "step" when set
    stepvalue: tuple = ()      # lr_policy "multistep" when set
    effective_batch: int = None  # clips per update; None: the data set's

    @property
    def lr_policy(self):
        return "step" if self.stepsize else "multistep"


@dataclass(frozen=True)
class Dataset:
    """A data set and its training policy (solver fields that differ by data set)."""
    name: str
    classes: int
    partial_bn: bool
    val_videos: tuple  # per split, for test_iter; None: spot check
    schedules: dict    # "static" (static-only nets), "default", "flow", "finetune" -> Schedule
    backbone: object = bn_inception  # a module with stem() and trunk()
    crop: int = 224
    segments: int = SEGMENTS
    mirror: bool = True  # TSN's horizontal flips in training
    effective_batch: int = 256  # clips per update (batch x iter_size x GPUs); None: one batch
    test_interval: int = None   # None: test once, at the end
    snapshot: int = None        # None: at the end
    solver_mode: str = "GPU"
    random_seed: int = None     # None: Caffe's (time-based) seed
    split_in_tag: bool = False  # snapshot names carry the split (UCF101's three splits)

    def schedule(self, cfg):
        """The net's own schedule (cfg.schedule), else the static-only and
        flow nets' where the data set has them (UCF101), else the default."""
        if cfg.static_only and "static" in self.schedules:
            return self.schedules["static"]
        if cfg.branches == (Branch.FLOW,) and "flow" in self.schedules:
            return self.schedules["flow"]
        if cfg.schedule is not None:
            if cfg.schedule not in self.schedules:
                raise ValueError(f"net {cfg.name!r}: data set {self.name} has no schedule "
                                 f"{cfg.schedule!r}; have {sorted(self.schedules)}")
            return self.schedules[cfg.schedule]
        return self.schedules["default"]

    def static_lr_mult(self, cfg):
        """The static branch's lr_mult in a joint net: cfg's, else the
        data set's static rate over its default rate (UCF101: 0.001 / 0.005
        = 0.2, Sec. 4.1; Kinetics has one rate, 0.01: 1). A net of one
        branch runs that branch's own schedule: 1."""
        if len(cfg.branches) == 1:
            return 1.0
        if cfg.static_lr_mult is not None:
            return cfg.static_lr_mult
        if "static" not in self.schedules:
            return 1.0
        return self.schedules["static"].base_lr / self.schedules["default"].base_lr


UCF101 = Dataset(
    "ucf101", 101, True, (3783, 3734, 3696),
    # Sec. 4.1; the paper gives no schedule for the full model: it uses the
    # motion / appearance-change one (docs/ASSUMPTIONS.md).
    schedules={"static": Schedule(0.001, 4500, stepsize=1500),
               "default": Schedule(0.005, 18000, stepvalue=(10000, 16000)),
               # TSN's flow stream as released now (docs/ASSUMPTIONS.md, "The optical-flow stream")
               "flow": Schedule(0.005, 18000, stepvalue=(10000, 16000), effective_batch=128),
               # full_finetune: the joint net from the three trained branches
               "finetune": Schedule(0.001, 4500, stepsize=1500)},
    test_interval=500, snapshot=500, split_in_tag=True)
KINETICS = Dataset("kinetics", 400, False, None,
                   schedules={"default": Schedule(0.01, 110000, stepsize=40000)},
                   test_interval=5000, snapshot=5000)
# The generated MovingPatterns set of `make demo` (python/dcd/data/synthetic.py):
# 64x64 frames, 56 crops, 8 val clips per class. No mirroring: a horizontal
# flip turns leftward motion into rightward, a different class. One batch per
# update, a short run on the CPU (our choice, not the paper's).
SYNTHETIC_ITERATIONS = 400
SYNTHETIC = Dataset("synthetic", 8, False, (64, 64),
                    schedules={"default": Schedule(0.01, SYNTHETIC_ITERATIONS,
                                                   stepvalue=(SYNTHETIC_ITERATIONS * 3 // 4,))},
                    backbone=small, crop=56, segments=2, mirror=False, effective_batch=None,
                    solver_mode="CPU", random_seed=1)
DATASETS = {"ucf101": UCF101, "kinetics": KINETICS, "synthetic": SYNTHETIC}

_STATIC = dict(branches=("static",), frames=8, batch_size=4)
_MOTION = dict(branches=("motion",), frames=2, batch_size=8)
_APP = dict(branches=("appchange",), frames=2, batch_size=8)
_FULL = dict(branches=("static", "motion", "appchange"), frames=8, batch_size=2)
# Table 2 at 16 frames with window 2 at every position ("small window sizes
# at multiple positions", Sec. 4.2): a fourth position, inception_4c, in the
# middle of the longest stage.
WINDOW2_AT_FOUR = (("pool2/3x3_s2", 2), ("inception_3c/output", 2), ("inception_4c/output", 2),
                   ("inception_4e/output", 2))
_AT_224 = dict(stem_stride=1, max_displacement=6)  # displacement maps at 224x224 (Table 9)
# TSN's RGB-difference input: 5 frames per segment, their 4 differences stacked.
RGBDIFF_FRAMES = 5
FLOW_FRAMES = 5  # TSN's flow stream: 5 x/y pairs per snippet
NETS = {
    "ucf101": [
        NetConfig("static", description="8 frames, gradual 3D pooling", **_STATIC),
        NetConfig("static_late", temporal="late", description="8 frames, late 3D pooling",
                  **_STATIC),
        NetConfig("static_1frame", branches=("static",), frames=1, temporal="none",
                  batch_size=16, description="1 frame, 2D pooling only (TSN RGB)"),
        NetConfig("static_2frames", branches=("static",), frames=2, batch_size=16,
                  description="2 frames, gradual 3D pooling (one pool, after 4e)"),
        NetConfig("static_4frames", branches=("static",), frames=4, batch_size=8,
                  description="4 frames, gradual 3D pooling (after 3c and 4e)"),
        NetConfig("static_16frames", branches=("static",), frames=16, batch_size=2,
                  description="16 frames, gradual 3D pooling (4 after pool2, 2 after 3c and 4e)"),
        NetConfig("static_16frames_w2", branches=("static",), frames=16, batch_size=2,
                  temporal_kernels=WINDOW2_AT_FOUR, description="16 frames, gradual 3D "
                  "pooling by 2 after pool2, 3c, 4c and 4e"),
        NetConfig("static_notsn", segments=1, description="8 frames, gradual 3D pooling, "
                  "trained on one snippet per video (w/o TSN)", **_STATIC),
        NetConfig("motion", description="displacement map 112x112 (conv1 stride 2), soft",
                  **_MOTION),
        NetConfig("motion_224", description="displacement map 224x224 (conv1 stride 1), soft",
                  **_AT_224, **_MOTION),
        NetConfig("motion_wta", method="WTA", description="cost volume + WTA, 112x112",
                  **_MOTION),
        NetConfig("motion_notsn", segments=1, description="displacement map 112x112, trained "
                  "on one snippet per video (w/o TSN)", **_MOTION),
        NetConfig("appchange", description="warped conv1 feature differences, 112x112", **_APP),
        NetConfig("appchange_224", description="warped conv1 feature differences, 224x224 "
                  "displacement maps", **_AT_224, **_APP),
        NetConfig("appchange_rgbwarp", appchange_input="rgbwarp", description="RGB "
                  "differences warped by 224x224 displacement maps", **_AT_224, **_APP),
        NetConfig("appchange_featdiff", appchange_input="featdiff",
                  description="conv1 feature differences, no warping", **_APP),
        NetConfig("appchange_rgbdiff", branches=("appchange",), frames=RGBDIFF_FRAMES,
                  appchange_input="rgbdiff", batch_size=8,
                  description="TSN's RGB difference: 4 differences of 5 frames stacked, no warping"),
        NetConfig("appchange_rgbdiff_1pair", branches=("appchange",), frames=2,
                  appchange_input="rgbdiff", batch_size=8, description="RGB difference of one "
                  "frame pair, no warping (Table 4: one pair, as the warped rows)"),
        NetConfig("full", description="shared conv1, three branches, a loss each, scores "
                  "averaged", **_FULL),
        NetConfig("full_avgloss", branch_losses=False, description="as full, the averaged "
                  "scores into one loss (each branch gets a third of its gradient)", **_FULL),
        NetConfig("full_finetune", static_lr_mult=1.0, schedule="finetune", description="as full, fine-tuned from "
                  "the trained static, motion and appchange nets (tools/transfer_weights.py), "
                  "every branch at 0.001", **_FULL),
        NetConfig("motion_relu", match_before_relu=False, description="as motion, the cost "
                  "volume on conv1's features after its ReLU", **_MOTION),
        NetConfig("full_relu", match_before_relu=False, description="as full, the cost volume "
                  "and warping on conv1's features after its ReLU", **_FULL),
        NetConfig("full_224", description="as full, displacement maps at 224x224 (conv1 stride "
                  "1; the static branch reads it subsampled by 2)", **_AT_224, **_FULL),
        NetConfig("full_notsn", segments=1, description="as full, trained on one snippet per "
                  "video (w/o TSN)", **_FULL),
        NetConfig("flow", branches=("flow",), frames=FLOW_FRAMES, batch_size=16,
                  description="TSN's flow stream: 5 stacked TV-L1 x/y pairs (10 channels)"),
        NetConfig("appchange_tvl1warp", branches=("appchange",), frames=2,
                  appchange_input="tvl1warp", description="RGB frame warped by its TV-L1 flow, "
                  "differenced with the next frame", batch_size=8),
    ],
}
NETS["kinetics"] = [c for c in NETS["ucf101"]
                    if c.name in ("static", "motion", "appchange", "full", "flow")]
# The demo's nets: the same branches on the small trunk, shared conv1 7x7 at
# stride 2 as BN-Inception's (displacement maps at half the crop), 4 frames
# per segment for the static net (gradual pooling 4 -> 2 -> 1), one pair for
# the others and for the joint net (which then costs about what its three
# branches cost apart); the RGB difference stacks the 3 differences of 4
# frames (TSN's stacking). Batch 8: docs/ASSUMPTIONS.md (the demo).
_SMALL = dict(stem_stride=2, max_displacement=3, batch_size=8)
NETS["synthetic"] = [
    NetConfig("static", branches=("static",), frames=4, description="4 frames, gradual pooling",
              **_SMALL),
    NetConfig("motion", branches=("motion",), frames=2, description="displacement map, soft",
              **_SMALL),
    NetConfig("motion_frozen", branches=("motion",), frames=2, frozen_stem=True,
              description="displacement map of the static net's conv1, frozen (caffe train "
              "--weights from the static net)", **_SMALL),
    NetConfig("appchange", branches=("appchange",), frames=2,
              description="warped conv1 feature differences", **_SMALL),
    NetConfig("appchange_rgbdiff", branches=("appchange",), frames=4, appchange_input="rgbdiff",
              description="3 RGB differences of 4 frames stacked, no warping", **_SMALL),
    NetConfig("full", branches=("static", "motion", "appchange"), frames=2, branch_losses=False,
              description="shared conv1, three branches, scores averaged", **_SMALL),
    NetConfig("flow", branches=("flow",), frames=FLOW_FRAMES,
              description="optical-flow stream: 5 stacked flow pairs (the demo's Table 6 "
              "flow rows)", **_SMALL),
]
DROPOUT = {"static": 0.8, "motion": 0.7, "appchange": 0.7, "flow": 0.7}  # TSN: RGB 0.8, flow 0.7
FLOW_SCALE_RATIOS = (1, 0.875, 0.75)  # TSN's flow and RGBDiff crops (RGB adds 0.66)
# TSN's flow conv1 learns at 5x (weights) and 10x (bias) the base rate
# (docs/ASSUMPTIONS.md); we give the same to the motion and appearance-change
# stems, conv1s on new modalities as well. BN-Inception nets only (the demo's
# small nets keep 1 and 2).
NEW_MODALITY_STEM_LR_MULT = {bn_inception: (5, 10)}


def get_config(dataset, name):
    for cfg in NETS[dataset]:
        if cfg.name == name:
            return cfg
    raise KeyError(f"no net {name!r} for {dataset}; have {[c.name for c in NETS[dataset]]}")


def list_files(dataset, split=1, modality="RGB"):
    """Train and val file lists, relative to the repository root (docs/DATA.md):
    a FLOW net's list counts flow pairs (build_file_list.py --modality flow)."""
    kind = "flow_" if modality == "FLOW" else ""
    return tuple(f"data/{dataset}/{dataset}_{kind}{part}_split_{split}.txt"
                 for part in ("train", "val"))


def lmdb_root(dataset):
    """The frames and (TV-L1) flow of a data set share one LMDB (docs/DATA.md)."""
    return f"data/{dataset}/frames_lmdb"


def _data_layer(cfg, dataset, split, batch, segments, crop, train):
    ds = DATASETS[dataset]
    train_list, val_list = list_files(dataset, split, cfg.modality)
    extra = {}
    if (cfg.modality == "FLOW" or cfg.stacked_rgbdiff) and train:
        extra["scale_ratios"] = list(FLOW_SCALE_RATIOS)
    return video_data(train_list if train else val_list, lmdb_root(dataset), batch_size=batch,
                      num_segments=segments, new_length=cfg.frames, crop_size=crop, train=train,
                      mirror=ds.mirror if train else None, modality=cfg.modality, **extra)


def _branch_stride(in_size, crop):
    """Stride of a branch's own conv1: every trunk sees crop/2 after it, as the
    RGB trunk does (maps at the crop's resolution: 2, at half of it: 1), so
    the 112 and 224 variants differ only in the cost volume (cf. Table 9)."""
    return 2 if in_size == crop else 1


class _Parts:
    """What the branches share, built on first use: the shared conv1
    features, their consecutive-frame pairs, the displacement map, and the
    RGB pairs."""

    def __init__(self, n, data, cfg, ds, size):
        self.n, self.data, self.cfg, self.ds, self.size = n, data, cfg, ds, size
        self._cache = {}
        if cfg.modality == "RGB_FLOW":  # BGR, then the frame's flow (v_y, v_x) in pixels
            n["data/rgb"], n["data/flow"] = L.Slice(data, slice_param=dict(axis=1, slice_point=[3]),
                                                    ntop=2)
            self.rgb, self.flow = n["data/rgb"], n["data/flow"]
        else:
            self.rgb, self.flow = data, None

    def _once(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def features(self):
        """(top, Shape) of the shared low-level features (conv1 + BN + ReLU)."""
        # Only the static trunk reads the features after the ReLU; a net with
        # only the static branch matches nothing (its ReLU stays in place).
        before = self.cfg.match_before_relu and not self.cfg.static_only
        after_relu = Branch.STATIC in self.cfg.branches or not before
        return self._once("features", lambda: self.ds.backbone.stem(
            self.n, self.rgb, stride=self.cfg.stem_stride, size=self.size,
            keep_pre_relu=before, relu=after_relu))

    @property
    def matching_features(self):
        """What the cost volume compares: conv1's features before the ReLU
        (match_before_relu) or after it."""
        top = self.features[0]
        return self.n[self.ds.backbone.STEM + "_bn"] if self.cfg.match_before_relu else top

    @property
    def feature_pairs(self):
        return self._once("feature_pairs", lambda: frame_pairs(
            self.n, self.matching_features, "conv1/pairs", self.cfg.frames))

    @property
    def rgb_pairs(self):
        return self._once("rgb_pairs", lambda: frame_pairs(
            self.n, self.rgb, "data/pairs", self.cfg.frames))

    @property
    def flow_of_first(self):
        """The TV-L1 flow of the first frame of each pair (the second's is
        not used)."""
        def make():
            f0, f1 = frame_pairs(self.n, self.flow, "data/flow_pairs", self.cfg.frames)
            self.n["data/flow_pairs_unused"] = L.Silence(f1, ntop=0)
            return f0
        return self._once("flow_of_first", make)

    @property
    def displacement(self):
        """V_t (N*pairs x 2 x H x W) from the cosine cost volume (Sec. 3.3)."""
        def make():
            n, cfg = self.n, self.cfg
            t0, t1 = self.feature_pairs
            common = dict(max_displacement=cfg.max_displacement, dilation=cfg.dilation)
            n["motion/cost_volume"] = L.CostVolume(t0, t1, cost_volume_param=common)
            soft = dict(temperature=cfg.temperature,
                        method=getattr(P.SoftDisplacement, cfg.method.value), **common)
            extra = {}
            if cfg.learn_temperature:  # tau is a parameter blob; no weight decay on it
                soft["learn_temperature"] = True
                extra["param"] = [dict(lr_mult=TEMPERATURE_LR_MULT, decay_mult=0)]
            n["motion/displacement"] = L.SoftDisplacement(
                n["motion/cost_volume"], soft_displacement_param=soft, **extra)
            return n["motion/displacement"]
        return self._once("displacement", make)


def _subsample2(n, x, name, channels):
    """Every second row and column of x: a fixed 1x1 depthwise convolution of
    stride 2 (weight 1, not learned). On a stride-1 conv1 map this gives
    exactly what a stride-2 conv1 computes (both sample the same windows)."""
    n[name] = L.Convolution(x, num_output=channels, group=channels, kernel_size=1, stride=2,
                            bias_term=False, weight_filler=dict(type="constant", value=1),
                            param=[dict(lr_mult=0, decay_mult=0)])
    return n[name]


def static_branch(n, parts):
    """Static appearance (Sec. 3.2): the trunk on the shared features with
    temporal pooling; one score row per snippet."""
    cfg, ds = parts.cfg, parts.ds
    feat, fshape = parts.features
    if fshape.size == parts.size and ds.backbone is bn_inception:
        # full_224: the trunk keeps the 112x112 input the ImageNet weights expect
        feat = _subsample2(n, feat, "conv1/subsample", fshape.channels)
        fshape = bn_inception.Shape(fshape.channels, bn_inception.out_size(fshape.size, 1, 2, 0,
                                                                            False))
    temporal = cfg.temporal if cfg.frames > 1 else Temporal.NONE
    extra = {"kernels": dict(cfg.temporal_kernels)} if cfg.temporal_kernels else {}
    x, left = ds.backbone.trunk(n, feat, fshape, "", frozen_bn=ds.partial_bn, frames=cfg.frames,
                                temporal=temporal.value, **extra)
    assert left == 1, f"static branch leaves {left} frames per snippet"
    return head(n, x, ds.classes, "", DROPOUT["static"]), 1


def motion_branch(n, parts):
    """Apparent motion (Sec. 3.3): the displacement maps into the branch's
    own conv1 and trunk; one score row per frame pair."""
    ds = parts.ds
    size = parts.features[1].size
    x, shape = ds.backbone.stem(n, parts.displacement, "motion/",
                                stride=_branch_stride(size, parts.size), size=size)
    x, _ = ds.backbone.trunk(n, x, shape, "motion/", frozen_bn=ds.partial_bn)
    return head(n, x, ds.classes, "motion/", DROPOUT["motion"]), parts.cfg.frames - 1


def _difference(n, later, earlier, name="appchange/difference"):
    n[name] = L.Eltwise(later, earlier, operation=P.Eltwise.SUM, coeff=[1, -1])
    return n[name]


def _warped_difference(n, first, second, v):
    """second - W(first, V): W samples `first` at p - V(p) (docs/ASSUMPTIONS.md)."""
    n["appchange/warp"] = L.BilinearWarp(first, v, bilinear_warp_param=dict(
        displacement_scale=-1))
    return _difference(n, second, n["appchange/warp"])


def appchange_input(n, parts):
    """(difference maps, their size, score rows per snippet) for the
    appearance-change branch's input choice."""
    cfg, size = parts.cfg, parts.size
    kind = cfg.appchange_input
    if kind == AppchangeInput.WARPED:
        t0, t1 = parts.feature_pairs
        return _warped_difference(n, t0, t1, parts.displacement), parts.features[1].size, \
            cfg.frames - 1
    if kind == AppchangeInput.RGBWARP:
        # Table 4's "Disp. Map warping" of RGB: needs maps at the frames' resolution
        if parts.features[1].size != size:
            raise ValueError(f"net {cfg.name!r}: rgbwarp needs conv1 stride 1")
        r0, r1 = parts.rgb_pairs
        return _warped_difference(n, r0, r1, parts.displacement), size, cfg.frames - 1
    if kind == AppchangeInput.TVL1WARP:
        # Table 4's "TV-L1 warping, RGB": VideoData's RGB_FLOW gives each frame's
        # flow to the next in the displacement map's order and units.
        r0, r1 = parts.rgb_pairs
        return _warped_difference(n, r0, r1, parts.flow_of_first), size, cfg.frames - 1
    if kind == AppchangeInput.FEATDIFF:
        t0, t1 = parts.feature_pairs
        return _difference(n, t1, t0), parts.features[1].size, cfg.frames - 1
    # RGBDIFF, as TSN: the frames-1 differences of a snippet stacked on the
    # channel axis, (N*(T-1)) x 3 x H x W -> N x 3(T-1) x H x W (pairs of one
    # snippet are consecutive rows), one score row per snippet.
    r0, r1 = parts.rgb_pairs
    diff = _difference(n, r1, r0)
    if cfg.frames == 2:
        return diff, size, 1
    n["appchange/stacked"] = L.Reshape(diff, reshape_param=dict(
        shape=dict(dim=[-1, 3 * (cfg.frames - 1), size, size])))
    return n["appchange/stacked"], size, 1


def appchange_branch(n, parts):
    """Appearance change (Sec. 3.4): difference maps into the branch's own
    conv1 and trunk."""
    ds = parts.ds
    x, in_size, per_snippet = appchange_input(n, parts)
    x, shape = ds.backbone.stem(n, x, "appchange/", stride=_branch_stride(in_size, parts.size),
                                size=in_size)
    x, _ = ds.backbone.trunk(n, x, shape, "appchange/", frozen_bn=ds.partial_bn)
    return head(n, x, ds.classes, "appchange/", DROPOUT["appchange"]), per_snippet


def flow_branch(n, parts):
    """TSN's temporal stream: BN-Inception on 2 x frames stacked flow
    channels, with TSN's plain layer names (its flow models load as they
    are); one score row per snippet."""
    ds = parts.ds
    x, shape = ds.backbone.stem(n, parts.data, stride=parts.cfg.stem_stride, size=parts.size)
    x, _ = ds.backbone.trunk(n, x, shape, "", frozen_bn=ds.partial_bn)
    return head(n, x, ds.classes, "", DROPOUT["flow"]), 1


BRANCH_BUILDERS = {Branch.STATIC: static_branch, Branch.MOTION: motion_branch,
                   Branch.APPCHANGE: appchange_branch, Branch.FLOW: flow_branch}
BRANCH_PREFIX = {Branch.STATIC: "", Branch.MOTION: "motion/", Branch.APPCHANGE: "appchange/",
                 Branch.FLOW: ""}


def body(n, data, cfg, ds, size, static_layers=None):
    """The net from `data` ((N*snippets*frames) x 3 x size x size) to
    per-branch scores. Returns [(prefix, scores, score rows per snippet)].
    The static branch's layer names are added to the set `static_layers`
    (for its learning-rate multiplier)."""
    parts = _Parts(n, data, cfg, ds, size)
    outputs = []
    for branch in cfg.branches:
        before = set(n.tops)
        scores, per_snippet = BRANCH_BUILDERS[branch](n, parts)
        if branch == Branch.STATIC:
            # the shared conv1 is built inside on first use: it is not the static branch's
            shared = {k for k in n.tops if k.startswith(ds.backbone.STEM)}
            if static_layers is not None:
                static_layers.update(set(n.tops) - before - shared)
        outputs.append((BRANCH_PREFIX[branch], scores, per_snippet))
    return outputs


def _scale_lr(proto, layer_names, mult):
    """Multiply the lr_mult of the named layers' parameters (BatchNorm's
    statistics have none)."""
    if mult == 1:
        return
    for layer in proto.layer:
        if layer.name in layer_names:
            for spec in layer.param:
                spec.lr_mult *= mult


def _set_lr(proto, layer_names, mults):
    """Set the lr_mult of the named convolutions (weights, bias) to `mults`;
    nothing when mults is None."""
    if not mults:
        return
    for layer in proto.layer:
        if layer.name in layer_names:
            for spec, mult in zip(layer.param, mults):
                spec.lr_mult = mult


def _freeze_stem(proto, stem):
    """conv1 + BN + Scale as given (another net's weights): no learning, BN
    with its stored statistics."""
    for layer in proto.layer:
        if layer.name in (stem, stem + "_scale"):
            for spec in layer.param:
                spec.lr_mult = spec.decay_mult = 0
        elif layer.name == stem + "_bn":
            layer.batch_norm_param.use_global_stats = True


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
    segments = segments or cfg.segments or ds.segments
    batch = batch_size or cfg.batch_size
    n = caffe.NetSpec()
    if mode == "train_val":
        n.data, n.label = _data_layer(cfg, dataset, split, batch, segments, crop, train=True)
    elif mode == "test":
        n.data = L.Input(input_param=dict(shape=dict(dim=cfg.input_shape(batch * segments, crop))))
        n.label = L.Input(input_param=dict(shape=dict(dim=[batch])))
    elif mode == "deploy":
        segments = 1
        n.data = L.Input(input_param=dict(shape=dict(dim=cfg.input_shape(1, crop))))
    else:
        raise ValueError(f"unknown mode {mode!r}")
    static_layers = set()
    outputs = body(n, n.data, cfg, ds, crop, static_layers)
    if mode == "deploy":
        scores = [s if per == 1 else consensus(n, s, prefix + "pair_consensus", per, ds.classes)
                  for prefix, s, per in outputs]
        _fuse(n, scores)
    else:
        scores = [consensus(n, s, prefix + "segment_consensus", segments * per, ds.classes)
                  for prefix, s, per in outputs]
        fused = _fuse(n, scores)
        if len(scores) > 1 and cfg.branch_losses:
            # one loss per branch: each gets the gradient it gets alone
            for (prefix, _, _), s in zip(outputs, scores):
                n[prefix + "loss"] = L.SoftmaxWithLoss(s, n.label)
        else:
            n.loss = L.SoftmaxWithLoss(fused, n.label)
        if mode == "train_val":
            n.accuracy = L.Accuracy(fused, n.label, include=dict(phase=caffe.TEST))
    proto = n.to_proto()
    proto.name = f"dcd_{dataset}_{cfg.name}"
    if mode == "train_val" and len(outputs) > 1 and cfg.branch_losses:
        # the fused scores feed only the TEST accuracy (no stray train output)
        next(layer for layer in proto.layer if layer.name == "fusion").include.add().phase = \
            caffe.TEST
    _scale_lr(proto, static_layers, ds.static_lr_mult(cfg))
    stem = ds.backbone.STEM
    if cfg.modality != "FLOW":  # the backbone's rate for a conv1 on RGB frames
        _scale_lr(proto, {stem, stem + "_scale"}, ds.backbone.STEM_LR_MULT)
    new_stems = {prefix + stem for prefix, _, _ in outputs if prefix} | (
        {stem} if cfg.modality == "FLOW" else set())
    _set_lr(proto, new_stems, NEW_MODALITY_STEM_LR_MULT.get(ds.backbone))
    if cfg.frozen_stem:
        _freeze_stem(proto, ds.backbone.STEM)
    if mode == "train_val":
        _add_test_data_layer(proto, cfg, dataset, split, crop, test_batch_size, segments)
    return proto


def _add_test_data_layer(proto, cfg, dataset, split, crop, batch, segments):
    """Caffe's train_val convention: one data layer per phase, same tops."""
    t = caffe.NetSpec()
    t.data, t.label = _data_layer(cfg, dataset, split, batch, segments, crop, train=False)
    test_layer = t.to_proto().layer[0]
    test_layer.name = "data"
    test_layer.include.add().phase = caffe.TEST
    layers = list(proto.layer)
    layers[0].include.add().phase = caffe.TRAIN
    del proto.layer[:]
    proto.layer.extend(layers[:1] + [test_layer] + layers[1:])
