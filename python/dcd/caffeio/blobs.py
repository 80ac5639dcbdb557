"""Caffe BlobProto values as numpy arrays, read from and written as the
packed wire bytes: protobuf's repeated fields copy element by element (about
a second for BN-Inception's 11M values, against milliseconds here)."""
import numpy as np

# BlobProto's packed value fields (caffe.proto): field number -> dtype.
_PACKED_VALUES = {5: "<f4", 8: "<f8"}  # data, double_data
_DATA_FIELD = 5


def _varint(buf, pos):
    value = shift = 0
    while True:
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            return value, pos
        shift += 7


def _encode_varint(value):
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def packed_values(blob):
    """data (or double_data) of a BlobProto as float32; None when the values
    are not packed (a writer that ignored [packed = true])."""
    buf = blob.SerializeToString()
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _varint(buf, pos)
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if field in _PACKED_VALUES:
                values = np.frombuffer(buf, _PACKED_VALUES[field], length // np.dtype(
                    _PACKED_VALUES[field]).itemsize, pos)
                return values.astype(np.float32)
            pos += length
        elif wire in (1, 5):
            if field in _PACKED_VALUES:
                return None
            pos += 8 if wire == 1 else 4
        else:
            return None
    return np.zeros(0, np.float32)


def blob_shape(blob):
    """The blob's shape: its `shape` field, else the legacy 4-D fields."""
    if blob.HasField("shape"):
        return tuple(blob.shape.dim)
    return (blob.num, blob.channels, blob.height, blob.width)


def blob_values(blob):
    """The blob's values, float32, flat (packed or not)."""
    data = packed_values(blob)
    if data is None:
        data = np.asarray(blob.data if len(blob.data) else blob.double_data, dtype=np.float32)
    return data


def set_blob(blob, array):
    """A BlobProto's shape and float32 data from an array (data as packed
    wire bytes, parsed by protobuf's C code)."""
    array = np.ascontiguousarray(array, dtype="<f4")
    blob.shape.dim.extend(array.shape)
    payload = array.tobytes()
    blob.MergeFromString(_encode_varint(_DATA_FIELD << 3 | 2) + _encode_varint(len(payload))
                         + payload)
    return blob
