"""Initial weights for the DCD nets from an ImageNet BN-Inception caffemodel.

Layers are matched by name after dropping the branch prefix (`motion/`,
`appchange/`). Same shapes: copied. A convolution that differs only in its
input channels (a branch's conv1 on displacement maps or feature
differences): TSN's cross-modality initialisation, the weights averaged over
input channels and replicated to the new count. Anything else (fc-action)
keeps its filler. The source must be BN-Inception: every layer of the
reference net (python/dcd/nets/bn_inception.py) must be present with its
shapes, or NotBNInceptionError names the first that is not.

BN may come as Caffe's BatchNorm + Scale (`<conv>_bn`, `<conv>_scale`), as
TSN's own 4-blob BN layer `<conv>_bn` (scale, shift, mean, variance) or as
our FrozenBN `<conv>_bn` (mean, variance, factor, gamma, beta). Our nets'
FrozenBN layers (partial BN) are filled from any of them; the report counts
them apart.
"""
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dcd.caffeio.blobs import blob_shape, blob_values, set_blob
from dcd.caffeio.frozen_bn import FROZEN_BN, blobs_from_pair, blobs_from_statistics, scale_name

BRANCH_PREFIXES = ("motion/", "appchange/")


class NotBNInceptionError(ValueError):
    """The caffemodel is not an ImageNet BN-Inception; names the layer."""


@dataclass
class InitReport:
    copied: list = field(default_factory=list)
    adapted: list = field(default_factory=list)  # (layer, from shape, to shape)
    random: list = field(default_factory=list)
    checked: dict = field(default_factory=dict)  # check_bn_inception's answer
    # BN layers filled from another BN form: (layer, its form, the source's form)
    frozen_bn: list = field(default_factory=list)

    def summary(self):
        """First line: the counts; then the BN forms filled from another form,
        and one line per averaged or new layer (copied layers are the rest,
        not listed)."""
        lines = [f"copied {len(self.copied)} layers, averaged {len(self.adapted)} over input "
                 f"channels (cross-modality), left {len(self.random)} new (their fillers)"]
        kinds = sorted({(target, src) for _, target, src in self.frozen_bn})
        for target, src in kinds:
            count = sum(1 for _, t, s in self.frozen_bn if (t, s) == (target, src))
            lines.append(f"  {count} {target} layers (among the copied) filled from {src}")
        lines += [f"  averaged {name}: {a} -> {b}" for name, a, b in self.adapted]
        lines += [f"  new      {name}" for name in self.random]
        return "\n".join(lines)


def _blob_array(blob):
    data = blob_values(blob)
    shape = blob_shape(blob)
    if data.size != int(np.prod(shape)):
        shape = (data.size,)
    return data.reshape(shape)


def read_caffemodel(path):
    """{layer name: (type, [arrays])} of a binary caffemodel (new or V1 layers)."""
    from dcd.caffeio.netio import CaffemodelError, parse_caffemodel
    try:
        param = parse_caffemodel(path)
    except CaffemodelError as err:  # empty or unparsable: say so, not "not BN-Inception"
        raise NotBNInceptionError(str(err)) from None
    layers = OrderedDict()
    for layer in list(param.layer) + list(param.layers):
        if layer.blobs:
            layers[layer.name] = (str(layer.type), [_blob_array(b) for b in layer.blobs])
    return layers


def _bn_source(source, bn_name, scale_name):
    """(mean, var, gamma, beta) from BatchNorm+Scale or TSN's BN, else None."""
    if bn_name not in source:
        return None
    kind, blobs = source[bn_name]
    if kind == FROZEN_BN and len(blobs) == 5:
        mean, var, factor, gamma, beta = (b.reshape(-1) for b in blobs)
        factor = 0.0 if factor[0] == 0 else 1.0 / float(factor[0])
        return mean * factor, var * factor, gamma, beta
    if len(blobs) == 4:  # TSN BN: scale, shift, mean, variance, each 1 x C x 1 x 1
        gamma, beta, mean, var = (b.reshape(-1) for b in blobs)
        return mean, var, gamma, beta
    if len(blobs) == 3 and scale_name in source:
        factor = float(blobs[2].reshape(-1)[0])
        factor = 0.0 if factor == 0 else 1.0 / factor
        mean, var = blobs[0].reshape(-1) * factor, blobs[1].reshape(-1) * factor
        scale = source[scale_name][1]
        beta = scale[1].reshape(-1) if len(scale) > 1 else np.zeros_like(mean)
        return mean, var, scale[0].reshape(-1), beta
    return None


def _bn_kind(source, bn_name):
    kind, blobs = source[bn_name]
    if kind == FROZEN_BN:
        return "FrozenBN"
    return "BatchNorm + Scale pairs" if len(blobs) == 3 else "TSN BN"


_REFERENCE = {}


def reference_layers():
    """[(name, type, [shapes])] of the ImageNet BN-Inception's parameter layers."""
    if not _REFERENCE:
        import caffe
        from dcd.nets.bn_inception import imagenet_deploy
        from dcd.caffeio.netio import load_net
        net = load_net(imagenet_deploy(size=64), caffe.TEST)
        _REFERENCE["layers"] = [(name, layer.type, [b.data.shape for b in layer.blobs])
                                for name, layer in zip(net._layer_names, net.layers)
                                if len(layer.blobs) and name != "fc"]
    return _REFERENCE["layers"]


def check_bn_inception(source, path="caffemodel"):
    """Raise NotBNInceptionError naming the first reference layer that the
    source lacks or holds with other shapes (in the reference net's order).
    Returns what was checked: {"layers": convolutions and BNs checked, "bn":
    the BN form found, "ignored": the source's parameter layers that no
    reference layer names (ImageNet's classifier, or TSN's Scale layers of
    BatchNorm+Scale models), which initialisation does not read}."""
    reference = reference_layers()
    for name, ltype, shapes in reference:
        if ltype == "Convolution":
            if name not in source:
                raise NotBNInceptionError(f"{path} is not BN-Inception: no layer {name!r}")
            got = [b.shape for b in source[name][1]]
            if got[0] != shapes[0] or (len(got) > 1 and got[1] != shapes[1]):
                raise NotBNInceptionError(
                    f"{path} is not BN-Inception: layer {name!r} has shapes {got}, "
                    f"expected {shapes}")
        elif ltype == "BatchNorm":
            bn = _bn_source(source, name, name[:-3] + "_scale")
            if bn is None or bn[0].shape != (shapes[0][0],):
                raise NotBNInceptionError(
                    f"{path} is not BN-Inception: layer {name!r} missing or not "
                    f"{shapes[0][0]}-channel batch normalisation")
    known = {name for name, _, _ in reference}      # BatchNorm + Scale names included
    bn_names = [name for name, ltype, _ in reference if ltype == "BatchNorm"]
    tsn_bn = bool(bn_names) and len(source[bn_names[0]][1]) == 4
    return {"layers": sum(ltype in ("Convolution", "BatchNorm") for _, ltype, _ in reference),
            "bn": "TSN's BN layer (scale, shift, mean, variance)" if tsn_bn
                  else "Caffe's BatchNorm + Scale",
            "ignored": [n for n, (_, blobs) in source.items() if blobs and n not in known]}


def base_name(name):
    for prefix in BRANCH_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def init_net(net, source):
    """Fill `net` (a caffe.Net) from `source` (read_caffemodel's dict)."""
    report = InitReport()
    for name, layer in zip(net._layer_names, net.layers):
        if not len(layer.blobs):
            continue
        base, blobs = base_name(name), layer.blobs
        if layer.type == FROZEN_BN:
            bn = _bn_source(source, base, scale_name(base))
            if bn is None or bn[0].shape[0] != blobs[0].data.shape[0]:
                report.random.append(name)
                continue
            for blob, array in zip(blobs, blobs_from_statistics(*bn)):
                blob.data[...] = array.reshape(blob.data.shape)
            report.copied.append(name)
            report.frozen_bn.append((name, "FrozenBN", _bn_kind(source, base)))
            continue
        if layer.type == "BatchNorm" or layer.type == "Scale":
            bn_name = base[:-6] + "_bn" if layer.type == "Scale" else base
            bn = _bn_source(source, bn_name, bn_name[:-3] + "_scale")
            if bn is None or bn[0].shape[0] != blobs[0].data.shape[-1 if layer.type == "Scale" else 0]:
                report.random.append(name)
                continue
            mean, var, gamma, beta = bn
            if layer.type == "BatchNorm":
                blobs[0].data[...], blobs[1].data[...], blobs[2].data[...] = mean, var, 1.0
            else:
                blobs[0].data[...] = gamma.reshape(blobs[0].data.shape)
                if len(blobs) > 1:
                    blobs[1].data[...] = beta.reshape(blobs[1].data.shape)
            report.copied.append(name)
            continue
        if base not in source:
            report.random.append(name)
            continue
        src = source[base][1]
        weight, target = src[0], blobs[0].data
        if weight.shape == target.shape:
            target[...] = weight
            report.copied.append(name)
        elif (layer.type == "Convolution" and weight.ndim == 4 and
              weight.shape[0] == target.shape[0] and weight.shape[2:] == target.shape[2:]):
            # TSN's cross-modality pre-training: mean over input channels, replicated
            target[...] = weight.mean(axis=1, keepdims=True)
            report.adapted.append((name, weight.shape, target.shape))
        else:
            report.random.append(name)
            continue
        if len(blobs) > 1:
            blobs[1].data[...] = src[1].reshape(blobs[1].data.shape) if len(src) > 1 else 0
    return report


def init_weights(caffemodel, dataset, net_name, out_path):
    """Initial weights for one net of models/<dataset>/ (built from the
    package at a small crop: parameter shapes do not depend on it)."""
    import caffe
    from dcd.caffeio.netio import load_net
    from dcd.nets.builder import build
    from dcd.nets.catalogue import get_config
    source = read_caffemodel(caffemodel)
    checked = check_bn_inception(source, caffemodel)
    cfg = get_config(dataset, net_name)
    net = load_net(build(cfg, dataset, "deploy", crop=64), caffe.TEST)
    report = init_net(net, source)
    report.checked = checked
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    net.save(str(out_path))
    return report


def filter_bank_conv1(size=7, orientations=8):
    """(orientations x 8) x 3 x size x size filters like an ImageNet net's
    conv1: oriented luminance edges at two frequencies and two phases, and
    red-green and blue-yellow edges. The stand-in for BN-Inception's
    ImageNet conv1/7x7_s2 where those weights are not at hand: the cost
    volume's measurements (docs/ASSUMPTIONS.md, "Temperature") and the
    demo's initial conv1. Each filter has unit L2 norm, the norm Caffe's
    xavier filler gives a conv1 on average: with BN after the convolution
    the solver's relative step shrinks as the weights grow, so a bank at
    another scale would be moved faster or slower than a random conv1."""
    yy, xx = np.mgrid[-(size // 2):size // 2 + 1, -(size // 2):size // 2 + 1].astype(np.float64)
    envelope = np.exp(-(xx ** 2 + yy ** 2) / (2 * (size / 4) ** 2))
    lum, red_green, blue_yellow = np.ones(3) / 3, np.array([0, -1, 1]) / 2, np.array([1, -.5, -.5])
    filters = []
    for theta in np.arange(orientations) * np.pi / orientations:
        u = xx * np.cos(theta) + yy * np.sin(theta)
        for freq, colour in ((0.25, lum), (0.125, lum), (0.125, red_green), (0.125, blue_yellow)):
            for phase in (0, np.pi / 2):
                g = envelope * np.cos(2 * np.pi * freq * u + phase)
                g -= g.mean() * (phase == 0)
                filters.append(colour[:, None, None] * g[None])
    bank = np.stack(filters)
    return (bank / np.linalg.norm(bank.reshape(len(bank), -1), axis=1)[:, None, None, None]
            ).astype(np.float32)


def write_layers(net, names, out_path):
    """A caffemodel holding only the named layers' parameters of `net`
    (caffe train --weights copies them and leaves every other layer to its
    filler and the solver's random seed)."""
    from caffe.proto import caffe_pb2
    from dcd.util.fileio import write_atomic
    param = caffe_pb2.NetParameter()
    param.name = "initial_layers"
    layers = dict(zip(net._layer_names, net.layers))
    for name in names:
        layer = param.layer.add()
        layer.name, layer.type = name, layers[name].type
        for blob in layers[name].blobs:
            set_blob(layer.blobs.add(), blob.data)
    write_atomic(Path(out_path), param.SerializeToString())


def filter_bank_init(dataset, net_name, out_path, orientations=4):
    """Initial conv1 for one net of models/<dataset>/ from
    filter_bank_conv1 (the demo's stand-in for ImageNet weights): every
    convolution on RGB frames named conv1 (branch prefixes dropped) with the
    bank's shape gets it. Stems on other inputs (stacked RGB differences,
    flow) keep their random fillers: averaged over their channels, as TSN's
    cross-modality initialisation would do, the bank left the demo's RGB
    difference net reading the direction of motion at 59-65% instead of
    100%. Only the initialised layers are written (write_layers), and
    nothing when the net has no such conv1 (report.copied is empty)."""
    import caffe
    from dcd.caffeio.netio import load_net
    from dcd.nets.builder import build
    from dcd.nets.catalogue import get_config
    net = load_net(build(get_config(dataset, net_name), dataset, "deploy", crop=64), caffe.TEST)
    bank = filter_bank_conv1(orientations=orientations)
    report = init_net(net, {"conv1": ("Convolution", [bank, np.zeros(len(bank), np.float32)])})
    if report.copied:
        write_layers(net, report.copied, out_path)
    return report


class NetMismatchError(ValueError):
    """A trained caffemodel does not fit the target net; names the layer."""


# Layers a transfer to another data set leaves at their fillers: the classifiers.
CLASSIFIER_SUFFIX = "fc-action"


def transfer_net(net, source, path="caffemodel"):
    """Fill `net` from a snapshot of the same net trained on another data set
    (Table 7's ImageNet+Kinetics row): every parameter layer but the
    classifiers (`fc-action`, `<branch>/fc-action`) must be in `source` with
    the same shapes, else NetMismatchError names the first that is not."""
    report = InitReport()
    source = dict(source)
    for name, layer in zip(net._layer_names, net.layers):
        if not len(layer.blobs):
            continue
        if name.endswith(CLASSIFIER_SUFFIX):
            report.random.append(name)
            continue
        converted = _convert_bn(source, name, layer.type, path)
        if converted:
            report.frozen_bn.append((name,) + converted)
        if name not in source:
            raise NetMismatchError(f"{path} does not fit the net: it has no layer {name!r}")
        got = [b.shape for b in source[name][1]]
        want = [b.data.shape for b in layer.blobs]
        if got != want:
            raise NetMismatchError(f"{path} does not fit the net: layer {name!r} has shapes "
                                   f"{got}, the net needs {want}")
        for blob, array in zip(layer.blobs, source[name][1]):
            blob.data[...] = array
        report.copied.append(name)
    return report


def _convert_bn(source, name, layer_type, path):
    """Put into `source` (read_caffemodel's dict) the blobs that a net's
    FrozenBN `name` takes from a BatchNorm + Scale pair of that name, or
    that its BatchNorm `name` and Scale `<conv>_scale` take from a FrozenBN
    (a source trained with partial BN into a net without it). Returns
    (the net's form, the source's form), or None when nothing changed."""
    kind = source[name][0] if name in source else None
    if layer_type == FROZEN_BN and kind == "BatchNorm":
        scale = source.get(scale_name(name))
        if scale is None:
            raise NetMismatchError(f"{path} does not fit the net: layer {name!r} is a BatchNorm "
                                   f"without its Scale layer {scale_name(name)!r}; the net's "
                                   "FrozenBN needs both")
        source[name] = (FROZEN_BN, blobs_from_pair(source[name][1], scale[1]))
        return "FrozenBN", "BatchNorm + Scale pairs"
    if layer_type == "BatchNorm" and kind == FROZEN_BN and scale_name(name):
        blobs = [b.reshape(-1) for b in source[name][1]]
        source[name] = ("BatchNorm", blobs[:3])
        source[scale_name(name)] = ("Scale", blobs[3:])
        return "BatchNorm (+ Scale)", "FrozenBN"
    return None


def transfer_weights(caffemodel, dataset, net_name, out_path):
    """Initial weights for `net_name` on `dataset` from a snapshot of the
    same net trained on another data set (e.g. Kinetics -> UCF101)."""
    import caffe
    from dcd.caffeio.netio import load_net
    from dcd.nets.builder import build
    from dcd.nets.catalogue import get_config
    source = read_caffemodel(caffemodel)
    net = load_net(build(get_config(dataset, net_name), dataset, "deploy", crop=64), caffe.TEST)
    report = transfer_net(net, source, caffemodel)
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    net.save(str(out_path))
    return report


def compose_net(net, sources):
    """Fill `net` (the joint net) from snapshots of its branches trained
    apart on the same data set: each parameter layer from the first of
    `sources` ([(path, {layer: (type, arrays)})], e.g. static, motion,
    appchange) that has it, classifiers included. The branch nets hold the
    joint net's layer names (the static branch plain, the others prefixed),
    so every layer must be found with the same shapes, else NetMismatchError
    names it. The shared conv1 comes from the first snapshot that has it."""
    report = InitReport()
    for name, layer in zip(net._layer_names, net.layers):
        if not len(layer.blobs):
            continue
        want = [b.data.shape for b in layer.blobs]
        found = next(((path, src[name][1]) for path, src in sources if name in src), None)
        if found is None:
            raise NetMismatchError(f"no snapshot has layer {name!r} (given: "
                                   f"{', '.join(str(p) for p, _ in sources)})")
        path, arrays = found
        got = [a.shape for a in arrays]
        if got != want:
            raise NetMismatchError(f"{path}: layer {name!r} has shapes {got}, the net needs "
                                   f"{want}")
        for blob, array in zip(layer.blobs, arrays):
            blob.data[...] = array
        report.copied.append(name)
    return report


def compose_weights(caffemodels, dataset, net_name, out_path):
    """Initial weights for a joint net from its trained branch nets
    (compose_net), written to out_path."""
    import caffe
    from dcd.caffeio.netio import load_net
    from dcd.nets.builder import build
    from dcd.nets.catalogue import get_config
    sources = [(path, read_caffemodel(path)) for path in caffemodels]
    net = load_net(build(get_config(dataset, net_name), dataset, "deploy", crop=64), caffe.TEST)
    report = compose_net(net, sources)
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    net.save(str(out_path))
    return report
