"""Opening pycaffe nets: from NetParameters (NetSpec's output) without
leaving files, or a deploy prototxt with optional weights on a device, and
reading a deploy net's input blob."""
import os
import tempfile
from pathlib import Path


def write_temp(proto, dir=None):
    """Write a NetParameter to a temporary .prototxt; returns its path."""
    f = tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False, dir=dir)
    with f:
        f.write(str(proto))
    return f.name


def load_net(proto, phase):
    """A caffe.Net from a NetParameter (via a temporary file, removed after)."""
    import caffe
    path = write_temp(proto)
    try:
        return caffe.Net(path, phase)
    finally:
        os.unlink(path)


def deploy_input(net_path, input_blob=None):
    """(blob name, shape) of the deploy net's input, read from the prototxt
    (an Input layer, or the legacy `input:` + `input_shape`/`input_dim` fields)."""
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format
    param = caffe_pb2.NetParameter()
    text_format.Merge(Path(net_path).read_text(), param)
    found = []
    for name, shape in zip(param.input, param.input_shape):
        found.append((name, tuple(shape.dim)))
    if param.input and param.input_dim:
        dims = list(param.input_dim)
        found += [(name, tuple(dims[4 * i:4 * i + 4])) for i, name in enumerate(param.input)]
    for layer in param.layer:
        if layer.type == "Input":
            for top, shape in zip(layer.top, layer.input_param.shape):
                found.append((top, tuple(shape.dim)))
    if input_blob:
        found = [f for f in found if f[0] == input_blob]
    if not found:
        raise ValueError(f"{net_path}: no input blob{' ' + input_blob if input_blob else ''} "
                         "(need an Input layer or input_shape)")
    name, shape = found[0]
    if len(shape) != 4:
        raise ValueError(f"{net_path}: input {name} has shape {shape}, expected N x C x H x W")
    return name, shape


def set_device(gpu):
    import caffe
    if gpu is None:
        caffe.set_mode_cpu()
    else:
        caffe.set_mode_gpu()
        caffe.set_device(int(gpu))


def open_net(prototxt, weights=None, gpu=None):
    """A TEST-phase caffe.Net of a prototxt file, with weights if given, on
    GPU `gpu` (None: the CPU). Snapshots made before FrozenBN load into nets
    that have it (dcd.caffeio.frozen_bn.load_weights)."""
    import caffe
    from dcd.caffeio.frozen_bn import load_weights
    set_device(gpu)
    net = caffe.Net(str(prototxt), caffe.TEST)
    if weights:
        load_weights(net, weights)
    return net


class CaffemodelError(ValueError):
    """A caffemodel that is empty or does not parse; the message names the file."""


def parse_caffemodel(path):
    """The NetParameter of a binary caffemodel; FileNotFoundError when absent,
    CaffemodelError when empty, unparsable or without any weights."""
    from caffe.proto import caffe_pb2
    from google.protobuf.message import DecodeError
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"caffemodel not found: {path}")
    data = path.read_bytes()
    if not data:
        raise CaffemodelError(f"{path} is empty (0 bytes): an interrupted download, copy or "
                              "snapshot; fetch or write it again")
    param = caffe_pb2.NetParameter()
    try:
        param.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as err:
        raise CaffemodelError(f"{path} does not parse as a caffemodel (a binary Caffe "
                              f"NetParameter): {err}; is it truncated or another file?") from None
    if not any(layer.blobs for layer in list(param.layer) + list(param.layers)):
        raise CaffemodelError(f"{path} holds no layer with weights (a prototxt, or not a "
                              "caffemodel?)")
    return param


def caffemodel_layer_names(path):
    """Names of the layers that carry weights in a caffemodel (new or V1 layers)."""
    param = parse_caffemodel(path)
    return {layer.name for layer in list(param.layer) + list(param.layers) if layer.blobs}
