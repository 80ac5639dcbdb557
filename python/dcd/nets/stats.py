"""Parameters and multiply-adds of the nets, from blob shapes of a pycaffe
net (constructed, never run)."""
from dataclasses import dataclass

import numpy as np

# Published BN-Inception size, TSN's backbone: 10.7M parameters with a
# 400-class fc and 16 GFLOPs (multiply-adds) for 8 frames at 224x224
# (TSM paper, Lin et al., ICCV 2019, Table 1/3: "TSN, BN-Inception"), i.e.
# 11.3M with ImageNet's 1000-class fc and 2.0 G multiply-adds per image.
PUBLISHED_PARAMS_1000 = 11.3e6
PUBLISHED_MACS_224 = 2.0e9
STATS_BEGIN = "<!-- model_stats:begin (tools/model_stats.py rewrites this section) -->"
STATS_END = "<!-- model_stats:end -->"


@dataclass
class NetStats:
    params: int
    macs: int
    frames: int


def layer_macs(layer_type, bottoms, tops, weights):
    """Multiply-adds of one layer (0 for the cheap element-wise ones)."""
    if layer_type == "Convolution":
        return int(np.prod(tops[0]) * np.prod(weights[0][1:]))
    if layer_type == "InnerProduct":
        return int(np.prod(tops[0]) * weights[0][1])
    if layer_type == "CostVolume":  # one product per channel per entry
        return int(np.prod(tops[0]) * bottoms[0][1])
    if layer_type == "SoftDisplacement":  # weights x (dy, dx) per entry
        return int(2 * np.prod(bottoms[0]))
    if layer_type == "BilinearWarp":  # four taps
        return int(4 * np.prod(tops[0]))
    return 0


def net_stats(net, frames=1):
    """Learnable parameters (BatchNorm's running statistics excluded, and
    FrozenBN's, whose gamma and beta count as Scale's do) and multiply-adds
    of one forward pass of `net`."""
    names = list(net.blobs.keys())
    params = macs = 0
    for i, layer in enumerate(net.layers):
        weights = [b.data.shape for b in layer.blobs]
        if layer.type != "BatchNorm":
            counted = weights[3:] if layer.type == "FrozenBN" else weights
            params += sum(int(np.prod(s)) for s in counted)
        bottoms = [net.blobs[names[j]].data.shape for j in net._bottom_ids(i)]
        tops = [net.blobs[names[j]].data.shape for j in net._top_ids(i)]
        macs += layer_macs(layer.type, bottoms, tops, weights)
    return NetStats(params, macs, frames)


def _load(proto):
    import caffe
    from dcd.caffeio.netio import load_net
    return load_net(proto, caffe.TEST)


def trunk_stats():
    """The ImageNet BN-Inception (1000 classes, one 224x224 image)."""
    from dcd.nets.bn_inception import imagenet_deploy
    return net_stats(_load(imagenet_deploy()))


def all_stats(datasets=("ucf101", "kinetics"), progress=False):
    """{(dataset, net): NetStats} of every deploy net (one snippet at 224)."""
    from dcd.nets.builder import build
    from dcd.nets.catalogue import NETS
    jobs = [(d, c) for d in datasets for c in NETS[d]]
    if progress:
        from tqdm import tqdm
        jobs = tqdm(jobs, desc="nets")
    return {(d, c.name): net_stats(_load(build(c, d, "deploy")), c.frames) for d, c in jobs}


def stats_markdown(trunk, stats):
    lines = [STATS_BEGIN, "",
             f"BN-Inception trunk (ImageNet, 1000 classes, one 224x224 image): "
             f"{trunk.params / 1e6:.2f}M parameters, {trunk.macs / 1e9:.2f} G multiply-adds "
             f"(published: {PUBLISHED_PARAMS_1000 / 1e6:.1f}M, {PUBLISHED_MACS_224 / 1e9:.1f} G).",
             "",
             "Deploy nets, one snippet (the deploy input: `frames` consecutive frames at 224x224; "
             "a TSN test video is 25 snippets x 10 crops). Multiply-adds count convolutions, "
             "fully connected layers, CostVolume, SoftDisplacement and BilinearWarp.",
             "",
             "| data set | net | frames | parameters | G multiply-adds / snippet | per frame |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for (dataset, name), s in stats.items():
        lines.append(f"| {dataset} | `{name}` | {s.frames} | {s.params / 1e6:.2f}M | "
                     f"{s.macs / 1e9:.2f} | {s.macs / 1e9 / s.frames:.2f} |")
    lines += ["", STATS_END]
    return "\n".join(lines)


def rewrite_section(text, section):
    """Replace the sizes section of a README text (append it if absent)."""
    from dcd.util.markdown import rewrite_section as rewrite
    return rewrite(text, STATS_BEGIN, STATS_END, section)
