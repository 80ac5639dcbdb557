"""FrozenBN (partial BN's frozen positions, caffe_layers/.../frozen_bn_layer.hpp)
and the BatchNorm + Scale pairs it replaces.

A FrozenBN layer `<conv>_bn` holds five blobs: Caffe BatchNorm's three
(mean, variance, moving-average factor; the statistics stored scaled by the
factor) and Scale's two (gamma, beta). Nets and caffemodels made before it
hold BatchNorm `<conv>_bn` + Scale `<conv>_scale` at those positions; the
helpers here turn one into the other, as arrays (weight initialisation) or
as caffemodel layers (loading an old snapshot into a current deploy net).
"""
import os
import tempfile
from pathlib import Path

import numpy as np

from dcd.caffeio.blobs import set_blob

FROZEN_BN = "FrozenBN"


class WeightsMismatchError(ValueError):
    """A caffemodel's layer does not fit the net's layer of that name."""


def scale_name(bn_name):
    """`<conv>_bn` -> `<conv>_scale` (the Scale layer that follows a BatchNorm
    in the generated nets); None for other names."""
    return bn_name[:-3] + "_scale" if bn_name.endswith("_bn") else None


def blobs_from_pair(bn_blobs, scale_blobs):
    """FrozenBN's five arrays from a BatchNorm's three (kept as stored, with
    their factor) and a Scale's one or two (no bias: beta 0)."""
    mean, var, factor = (np.asarray(b, np.float32).reshape(-1) for b in bn_blobs[:3])
    gamma = np.asarray(scale_blobs[0], np.float32).reshape(-1)
    beta = np.asarray(scale_blobs[1], np.float32).reshape(-1) if len(scale_blobs) > 1 \
        else np.zeros_like(gamma)
    return [mean, var, factor, gamma, beta]


def blobs_from_statistics(mean, var, gamma, beta):
    """FrozenBN's five arrays from plain statistics (factor 1)."""
    return [np.asarray(a, np.float32).reshape(-1) for a in (mean, var)] + \
        [np.ones(1, np.float32)] + [np.asarray(a, np.float32).reshape(-1) for a in (gamma, beta)]


def _blob_proto(values):
    from caffe.proto import caffe_pb2
    return set_blob(caffe_pb2.BlobProto(), np.asarray(values, np.float32).reshape(-1))


def _values(blob):
    return list(blob.data) if len(blob.data) else [float(v) for v in blob.double_data]


def convert_param(param, net_types, path="caffemodel"):
    """Rewrite a caffemodel's NetParameter in place for a net whose layer
    types by name are `net_types`: each BatchNorm `<conv>_bn` + Scale
    `<conv>_scale` pair where the net has FrozenBN `<conv>_bn` becomes one
    FrozenBN layer. Returns the converted layer names. Raises
    WeightsMismatchError naming the layer when a layer of the net's cannot
    take the caffemodel's layer of its name (a BatchNorm without its Scale,
    another number of blobs), which Caffe would answer by aborting."""
    layers = {layer.name: layer for layer in param.layer}
    converted, consumed = [], set()
    for layer in param.layer:
        want = net_types.get(layer.name)
        if want is None or not len(layer.blobs):
            continue
        if want == FROZEN_BN and layer.type == "BatchNorm":
            scale = layers.get(scale_name(layer.name))
            if scale is None or scale.type != "Scale":
                raise WeightsMismatchError(
                    f"{path}: layer {layer.name!r} is a BatchNorm without its Scale layer "
                    f"{scale_name(layer.name)!r}; the net's FrozenBN {layer.name!r} needs both")
            values = [_values(b) for b in layer.blobs[:3]] + [_values(b) for b in scale.blobs]
            if len(values) == 4:  # Scale without bias
                values.append([0.0] * len(values[3]))
            del layer.blobs[:]
            layer.type = FROZEN_BN
            layer.blobs.extend(_blob_proto(v) for v in values)
            converted.append(layer.name)
            consumed.add(scale.name)
        elif want == FROZEN_BN and layer.type != FROZEN_BN:
            raise WeightsMismatchError(
                f"{path}: layer {layer.name!r} is a {layer.type} with {len(layer.blobs)} blobs; "
                "the net's FrozenBN of that name takes a FrozenBN or a BatchNorm + Scale pair")
        elif layer.type == FROZEN_BN and want != FROZEN_BN:
            raise WeightsMismatchError(
                f"{path}: layer {layer.name!r} is a FrozenBN; the net has a {want} of that name "
                "(a net made for frozen BN there?)")
    if consumed:
        kept = [layer for layer in param.layer if layer.name not in consumed]
        del param.layer[:]
        param.layer.extend(kept)
    return converted


def load_weights(net, weights):
    """net.copy_from(weights), converting BatchNorm + Scale pairs of a
    caffemodel made before FrozenBN existed where the net has FrozenBN
    (convert_param; the converted copy goes through a temporary file).
    Returns the converted layer names. HDF5 weights are copied as they are."""
    from caffe.proto import caffe_pb2
    weights = Path(weights)
    if not weights.is_file():
        raise FileNotFoundError(f"weights not found: {weights}")
    if weights.suffix == ".h5":
        net.copy_from(str(weights))
        return []
    param = caffe_pb2.NetParameter()
    try:
        param.ParseFromString(weights.read_bytes())
    except Exception as err:  # protobuf raises DecodeError
        raise WeightsMismatchError(f"{weights} is not a caffemodel: {err}") from err
    if param.layers and not param.layer:  # V1 layers: Caffe upgrades them itself
        net.copy_from(str(weights))
        return []
    net_types = {name: layer.type for name, layer in zip(net._layer_names, net.layers)}
    converted = convert_param(param, net_types, weights)
    if not converted:
        net.copy_from(str(weights))
        return []
    f = tempfile.NamedTemporaryFile(suffix=".caffemodel", delete=False)
    try:
        with f:
            f.write(param.SerializeToString())
        net.copy_from(f.name)
    finally:
        os.unlink(f.name)
    return converted
