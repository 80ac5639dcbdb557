"""The catalogue of DCD nets per data set (static appearance, apparent
motion, appearance change, the full model and their variants: see
models/README.md), as NetConfigs. No pycaffe: tools list and look up nets
where Caffe is not built."""
from dcd.nets.config import NetConfig

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
              static_lr_mult=1.0, description="shared conv1, three branches, scores averaged",
              **_SMALL),
    NetConfig("flow", branches=("flow",), frames=FLOW_FRAMES,
              description="optical-flow stream: 5 stacked flow pairs (the demo's Table 6 "
              "flow rows)", **_SMALL),
]

def get_config(dataset, name):
    for cfg in NETS[dataset]:
        if cfg.name == name:
            return cfg
    raise KeyError(f"no net {name!r} for {dataset}; have {[c.name for c in NETS[dataset]]}")
