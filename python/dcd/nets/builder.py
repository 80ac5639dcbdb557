"""The graph builder: a NetConfig on a data set as a Caffe NetParameter
(NetSpec), train_val, test or deploy.

Every net shares the stem `conv1/7x7_s2` (RGB, ImageNet weights). Branch
layers carry a prefix (`motion/`, `appchange/`; the static branch keeps TSN's
plain names) so the full net holds the union of the branch nets' layers and
can start from trained branches. Choices are in docs/ASSUMPTIONS.md "## Nets".
"""
import caffe
from caffe import layers as L, params as P

from dcd.data.video_net import video_data
from dcd.nets import bn_inception
from dcd.nets.blocks import consensus, frame_pairs
from dcd.nets.bn_inception import head
from dcd.nets.config import TEMPERATURE_LR_MULT, AppchangeInput, Branch, Temporal
from dcd.nets.datasets import DATASETS, list_files, lmdb_root

DROPOUT = {"static": 0.8, "motion": 0.7, "appchange": 0.7, "flow": 0.7}  # TSN: RGB 0.8, flow 0.7
FLOW_SCALE_RATIOS = (1, 0.875, 0.75)  # TSN's flow and RGBDiff crops (RGB adds 0.66)
# TSN's flow conv1 learns at 5x (weights) and 10x (bias) the base rate
# (docs/ASSUMPTIONS.md); we give the same to the motion and appearance-change
# stems, conv1s on new modalities as well. BN-Inception nets only (the demo's
# small nets keep 1 and 2).
NEW_MODALITY_STEM_LR_MULT = {bn_inception: (5, 10)}


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
