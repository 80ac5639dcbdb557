"""BatchNorm folded into the preceding Convolution of a deploy net.

At deploy BatchNorm uses its stored statistics and Scale is a fixed affine,
so Convolution -> BatchNorm [-> Scale] is one convolution with per-output-
channel weights and a bias (docs/ASSUMPTIONS.md, "BatchNorm folded at
deploy"). `FrozenBN` layers (statistics and affine in one layer) fold the
same way; they are recognised by type name and their `eps` is read from the
prototxt text, so folding works whether or not that layer is built.

The fixed subsampling convolution (`dcd.nets.builder._subsample2`: 1x1, group =
channels, stride s, weights 1, no bias) becomes a 1x1 MAX Pooling of stride s
with FLOOR rounding: the same samples, not a grouped convolution.

Nets are read and written as protobuf messages (caffemodel blobs included),
not through pycaffe, except to fill the weights of a net given without a
caffemodel."""
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dcd.caffeio.blobs import blob_shape, blob_values, set_blob

BN_TYPES = ("BatchNorm", "FrozenBN")
BN_EPS = 1e-5  # the default of Caffe's BatchNormParameter.eps and of FrozenBN's


class FoldError(ValueError):
    """A net or caffemodel that cannot be folded as asked (one line, names the layer)."""


@dataclass
class FoldReport:
    folded: list = field(default_factory=list)      # (conv, [bn, scale...])
    subsampled: list = field(default_factory=list)  # convolutions turned into Pooling
    kept: list = field(default_factory=list)        # (layer, why it was left as it is)

    def summary(self):
        lines = [f"folded {len(self.folded)} BatchNorm layer(s) into their convolutions",
                 f"replaced {len(self.subsampled)} subsampling convolution(s) by Pooling"]
        lines += [f"left {name}: {why}" for name, why in self.kept]
        return "\n".join(lines)


# ------------------------------------------------------------------ reading --

def _layer_blocks(text):
    """The text of each top-level `layer { ... }` block, in order (comments
    and quoted strings skipped when matching braces)."""
    blocks, depth, start = [], 0, None
    token = re.compile(r'#[^\n]*|"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|[{}]|\blayer\b')
    pending_layer = False
    for m in token.finditer(text):
        t = m.group(0)
        if t[0] in "#\"'":
            continue
        if t == "layer":
            pending_layer = depth == 0
        elif t == "{":
            if depth == 0 and pending_layer:
                start = m.start()
            depth += 1
            pending_layer = False
        elif t == "}":
            depth -= 1
            if depth == 0 and start is not None:
                blocks.append(text[start:m.end()])
                start = None
    return blocks


def frozen_bn_eps(text):
    """{layer name: eps} of the FrozenBN layers of a prototxt's text."""
    eps = {}
    for block in _layer_blocks(text):
        # the layer's own name/type come before any nested message
        head = block.split("{", 2)[1] if block.count("{") > 1 else block
        typ = re.search(r'\btype\s*:\s*"([^"]*)"', head)
        if not typ or typ.group(1) != "FrozenBN":
            continue
        name = re.search(r'\bname\s*:\s*"([^"]*)"', head)
        param = re.search(r'frozen_bn_param\s*\{([^}]*)\}', block)
        value = re.search(r'\beps\s*:\s*([-+0-9.eE]+)', param.group(1)) if param else None
        eps[name.group(1) if name else ""] = float(value.group(1)) if value else BN_EPS
    return eps


def read_prototxt(path):
    """(NetParameter, {FrozenBN layer: eps}) of a prototxt; fields this
    build's caffe.proto lacks (frozen_bn_param where FrozenBN is not built)
    are skipped after their eps has been read from the text."""
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format
    text = Path(path).read_text()
    param = caffe_pb2.NetParameter()
    try:
        text_format.Merge(text, param, allow_unknown_field=True)
    except text_format.ParseError as exc:
        raise FoldError(f"{path}: {exc}") from None
    if param.layers:
        raise FoldError(f"{path}: V1 `layers` net; upgrade it (upgrade_net_proto_text) first")
    return param, frozen_bn_eps(text)


def _blob_array(blob):
    data = blob_values(blob).astype(np.float64)
    shape = blob_shape(blob)
    if int(np.prod(shape)) != data.size:
        raise FoldError(f"blob of shape {shape} holds {data.size} values")
    return data.reshape(shape)


def read_caffemodel(path):
    """{layer name: [arrays]} of a caffemodel (float64 copies)."""
    from caffe.proto import caffe_pb2
    net = caffe_pb2.NetParameter()
    try:
        net.ParseFromString(Path(path).read_bytes())
    except Exception as exc:  # protobuf's DecodeError and friends
        raise FoldError(f"{path}: not a caffemodel ({exc})") from None
    if net.layers and not net.layer:
        raise FoldError(f"{path}: V1 caffemodel; upgrade it (upgrade_net_proto_binary) first")
    out = {}
    for layer in net.layer:
        try:
            out[layer.name] = [_blob_array(b) for b in layer.blobs]
        except FoldError as exc:
            raise FoldError(f"{path}: layer {layer.name}: {exc}") from None
    return out


def initial_blobs(prototxt):
    """{layer name: [arrays]} of the fresh pycaffe net (its fillers' weights)."""
    import caffe
    net = caffe.Net(str(prototxt), caffe.TEST)
    return {name: [np.array(b.data, np.float64) for b in net.layer_dict[name].blobs]
            for name in net._layer_names if len(net.layer_dict[name].blobs)}


# ------------------------------------------------------------- arithmetic --

def bn_affine(mean, var, factor, eps):
    """(a, b) with BN(x) = a x + b for Caffe BatchNorm blobs: stored sums
    mean, var and their moving-average factor (0 reads as statistics 0)."""
    f = float(np.asarray(factor).reshape(-1)[0])
    sf = 0.0 if f == 0 else 1.0 / f
    a = 1.0 / np.sqrt(np.asarray(var, np.float64) * sf + eps)
    return a, -np.asarray(mean, np.float64) * sf * a


def fold_conv(weight, bias, a, b):
    """Convolution (weight, bias or None) followed by y = a x + b per output
    channel: the folded (weight, bias)."""
    weight = np.asarray(weight, np.float64)
    scale = np.asarray(a, np.float64).reshape((-1,) + (1,) * (weight.ndim - 1))
    bias = np.zeros(weight.shape[0]) if bias is None else np.asarray(bias, np.float64)
    return weight * scale, bias * a + b


# ---------------------------------------------------------------- the net --

def _readers(layers):
    """{(blob, index of the layer that wrote it): [indices of layers reading
    that version]} -- in-place layers start a new version of their top."""
    current, readers = {}, {}
    for idx, layer in enumerate(layers):
        for bottom in layer.bottom:
            readers.setdefault((bottom, current.get(bottom, -1)), []).append(idx)
        for top in layer.top:
            current[top] = idx
            readers.setdefault((top, idx), [])
    return readers


def readers_of_bottom(layers, idx):
    """Words on what writes and reads layer idx's first bottom (for the report)."""
    if not layers[idx].bottom:
        return "no bottom"
    name = layers[idx].bottom[0]
    writer = next((k for k in range(idx - 1, -1, -1) if name in layers[k].top), None)
    if writer is None:
        return "a net input"
    readers = _readers(layers).get((name, writer), [])
    return (f"written by {layers[writer].type} {layers[writer].name}, "
            f"read by {len(readers)} layer(s)")


def _conv_spatial(cp, name, default):
    hw = [getattr(cp, name + "_h"), getattr(cp, name + "_w")]
    if cp.HasField(name + "_h") or cp.HasField(name + "_w"):
        return hw
    values = list(getattr(cp, "kernel_size" if name == "kernel" else name))
    return values * 2 if len(values) == 1 else values or [default] * 2


def _channel_vector(arr, channels, what):
    v = np.asarray(arr).reshape(-1)
    if v.size != channels:
        raise FoldError(f"{what} has {v.size} values for {channels} channels")
    return v


def _bn_stage(layer, blobs, eps_text, channels):
    """(a, b) of one BatchNorm / FrozenBN / Scale layer, or a reason string
    when it cannot be folded."""
    name, typ = layer.name, layer.type
    if len(layer.bottom) != 1 or len(layer.top) != 1:
        return "not one bottom and one top"
    if name not in blobs:
        raise FoldError(f"layer {name} ({typ}): no blobs in the caffemodel")
    got = blobs[name]
    vectors = got[:2] + got[3:] if typ != "Scale" else got
    for k, arr in enumerate(vectors):
        _channel_vector(arr, channels, f"layer {name} ({typ}) blob {k}")
    if typ == "BatchNorm":
        bp = layer.batch_norm_param
        if bp.HasField("use_global_stats") and not bp.use_global_stats:
            return "use_global_stats: false (batch statistics at deploy)"
        if len(got) != 3:
            raise FoldError(f"layer {name} (BatchNorm): {len(got)} blobs, expected 3 "
                            "(mean, variance, factor)")
        return bn_affine(got[0], got[1], got[2], bp.eps)
    if typ == "FrozenBN":
        if len(got) != 5:
            raise FoldError(f"layer {name} (FrozenBN): {len(got)} blobs, expected 5 "
                            "(mean, variance, factor, gamma, beta)")
        a, b = bn_affine(got[0], got[1], got[2], eps_text.get(name, BN_EPS))
        return a * got[3].reshape(-1), b * got[3].reshape(-1) + got[4].reshape(-1)
    # Scale
    sp = layer.scale_param
    if sp.axis != 1 or sp.num_axes != 1:
        return "Scale over other axes than the channels"
    want = 2 if sp.bias_term else 1
    if len(got) != want:
        raise FoldError(f"layer {name} (Scale): {len(got)} blobs, expected {want}")
    gamma = got[0].reshape(-1)
    return gamma, got[1].reshape(-1) if sp.bias_term else np.zeros_like(gamma)


def _is_subsample(layer, blobs):
    """A fixed subsampling convolution: 1x1, group = num_output, no pad or
    dilation, no bias, weights (C, 1, 1, 1) all exactly 1."""
    cp = layer.convolution_param
    if layer.type != "Convolution" or cp.bias_term or cp.group <= 1 \
            or cp.group != cp.num_output or cp.axis != 1:
        return False
    if _conv_spatial(cp, "kernel", 0) != [1, 1] or _conv_spatial(cp, "pad", 0) != [0, 0] \
            or any(d != 1 for d in cp.dilation):
        return False
    w = blobs.get(layer.name)
    return bool(w) and w[0].shape == (cp.num_output, 1, 1, 1) and bool(np.all(w[0] == 1))


def fold_net(param, blobs, eps_text=None):
    """Fold a deploy NetParameter with its blobs ({layer: [arrays]}).

    Returns (folded NetParameter, folded blobs, FoldReport). A convolution is
    folded only when its output is read by nothing but the BatchNorm (and the
    BatchNorm's output by nothing but the Scale); other BatchNorm layers are
    left as they are, with the reason in the report."""
    from caffe.proto import caffe_pb2
    eps_text = eps_text or {}
    layers = list(param.layer)
    readers = _readers(layers)
    report = FoldReport()
    drop, new_blobs = set(), dict(blobs)
    replaced = {}  # index -> new LayerParameter
    for idx, layer in enumerate(layers):
        if layer.type != "Convolution" or len(layer.top) != 1:
            continue
        if _is_subsample(layer, blobs):
            cp = layer.convolution_param
            stride = _conv_spatial(cp, "stride", 1)
            pool = caffe_pb2.LayerParameter(name=layer.name, type="Pooling",
                                            bottom=layer.bottom, top=layer.top)
            pool.pooling_param.pool = caffe_pb2.PoolingParameter.MAX
            pool.pooling_param.kernel_size = 1
            pool.pooling_param.stride_h, pool.pooling_param.stride_w = stride
            pool.pooling_param.round_mode = caffe_pb2.PoolingParameter.FLOOR
            replaced[idx] = pool
            new_blobs.pop(layer.name, None)
            report.subsampled.append(layer.name)
            continue
        chain, version = [], (layer.top[0], idx)
        while True:
            users = readers.get(version, [])
            if len(users) != 1:
                break
            nxt = layers[users[0]]
            allowed = BN_TYPES if not chain else \
                (("Scale",) if layers[chain[-1]].type == "BatchNorm" else ())
            if nxt.type not in allowed:
                break
            chain.append(users[0])
            version = (nxt.top[0], users[0]) if len(nxt.top) == 1 else None
            if version is None:
                break
        if not chain:
            continue
        if layer.name not in blobs:
            raise FoldError(f"layer {layer.name} (Convolution): no blobs in the caffemodel")
        w = blobs[layer.name]
        cp = layer.convolution_param
        if len(w) != (2 if cp.bias_term else 1):
            raise FoldError(f"layer {layer.name} (Convolution): {len(w)} blobs, bias_term "
                            f"{cp.bias_term}")
        if w[0].ndim < 2 or w[0].shape[0] != cp.num_output:
            raise FoldError(f"layer {layer.name} (Convolution): weight shape {w[0].shape} for "
                            f"num_output {cp.num_output}")
        stages = []
        for k in chain:
            stage = _bn_stage(layers[k], blobs, eps_text, cp.num_output)
            if isinstance(stage, str):
                report.kept.append((layers[k].name, stage))
                break
            stages.append((k, stage))
        if not stages:
            continue
        # the folded conv writes the last folded top at the conv's place: no
        # other layer in between may read or write that name
        last = stages[-1][0]
        final_top = layers[last].top[0]
        between = [layers[k] for k in range(idx + 1, last) if k not in chain]
        if final_top != layer.top[0] and any(final_top in (*lp.bottom, *lp.top)
                                             for lp in between):
            report.kept.append((layers[chain[0]].name, f"{final_top} is used between "
                                f"{layer.name} and the BatchNorm"))
            continue
        weight, bias = w[0], (w[1] if cp.bias_term else None)
        for k, (a, b) in stages:
            weight, bias = fold_conv(weight, bias, a, b)
            drop.add(k)
            new_blobs.pop(layers[k].name, None)
        folded = caffe_pb2.LayerParameter()
        folded.CopyFrom(layer)
        folded.top[0] = final_top
        folded.convolution_param.bias_term = True
        if len(folded.param) == 1:  # the bias's learning rates, as the generator's convs
            folded.param.add(lr_mult=2, decay_mult=0)
        replaced[idx] = folded
        new_blobs[layer.name] = [weight, bias]
        report.folded.append((layer.name, [layers[k].name for k, _ in stages]))
    noted = {name for name, _ in report.kept}
    for idx, layer in enumerate(layers):
        if layer.type in BN_TYPES and idx not in drop and layer.name not in noted:
            src = readers_of_bottom(layers, idx)
            report.kept.append((layer.name, f"its input {layer.bottom[0] if layer.bottom else ''} "
                                f"is not a Convolution's output read by it alone ({src})"))
    out = caffe_pb2.NetParameter()
    out.CopyFrom(param)
    del out.layer[:]
    for idx, layer in enumerate(layers):
        if idx in drop:
            continue
        out.layer.add().CopyFrom(replaced.get(idx, layer))
    leftover = [lp.name for lp in out.layer if lp.type == "FrozenBN"]
    if leftover and "frozen_bn_param" not in caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name:
        raise FoldError(f"FrozenBN layer {leftover[0]} cannot be folded, and this build has no "
                        "FrozenBN layer to keep it")
    return out, new_blobs, report


def write_caffemodel(path, net_param, blobs):
    """A caffemodel: the net's layers that own blobs, float32 data."""
    from caffe.proto import caffe_pb2
    out = caffe_pb2.NetParameter(name=net_param.name)
    for layer in net_param.layer:
        if layer.name not in blobs:
            continue
        lp = out.layer.add()
        lp.CopyFrom(layer)
        for arr in blobs[layer.name]:
            set_blob(lp.blobs.add(), arr)
    Path(path).write_bytes(out.SerializeToString())


def fold_files(deploy, weights, out_prefix):
    """Fold DEPLOY (+ WEIGHTS; None: the weights its fillers give) into
    OUT_PREFIX.prototxt and, with weights, OUT_PREFIX.caffemodel. Returns
    (prototxt, caffemodel or None, FoldReport). Nothing is written on error."""
    param, eps_text = read_prototxt(deploy)
    blobs = read_caffemodel(weights) if weights else initial_blobs(deploy)
    try:
        out, new_blobs, report = fold_net(param, blobs, eps_text)
    except FoldError as exc:
        raise FoldError(f"{deploy}{' + ' + str(weights) if weights else ''}: {exc}") from None
    prefix = Path(out_prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    proto = prefix.parent / (prefix.name + ".prototxt")
    model = prefix.parent / (prefix.name + ".caffemodel") if weights else None
    head = f"# {Path(deploy).name} with BatchNorm folded (tools/fold_bn.py)\n"
    if model is not None:
        tmp = model.with_suffix(".caffemodel.partial")
        write_caffemodel(tmp, out, new_blobs)
        tmp.replace(model)
    proto.write_text(head + str(out))
    return proto, model, report


def fold_into(folder, deploy, weights=None):
    """Fold DEPLOY (+ WEIGHTS) into FOLDER under the deploy file's own name
    (the tools name nets by stem); returns (prototxt, caffemodel or None)."""
    stem = Path(deploy).name
    stem = stem[:-len(".prototxt")] if stem.endswith(".prototxt") else Path(stem).stem
    proto, model, _ = fold_files(deploy, weights, Path(folder) / stem)
    return str(proto), (str(model) if model else None)
