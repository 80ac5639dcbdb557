"""NetConfig, the settings of one DCD net (Sec. 3), and the types of its
settings with a fixed set of values. No pycaffe: the catalogue of nets
(dcd.nets.catalogue) loads where Caffe is not built."""
from dataclasses import dataclass
from enum import Enum

from dcd.layers import TEMPERATURE

MATCH_BEFORE_RELU = True   # the cost volume compares conv1's features before its ReLU
# learn_temperature: tau's rate relative to base_lr (at 1 tau crossed 0 within
# 25 demo iterations; at 0.05 it settled near 0.02)
TEMPERATURE_LR_MULT = 0.05


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
