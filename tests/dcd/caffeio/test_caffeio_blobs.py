"""BlobProto values through their packed wire bytes equal protobuf's own."""
import numpy as np
import pytest

from caffe.proto import caffe_pb2

from dcd.caffeio.blobs import blob_shape, blob_values, set_blob


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (7,), (0,), (1, 200)])
def test_set_blob_writes_what_protobuf_reads(shape):
    values = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    blob = set_blob(caffe_pb2.BlobProto(), values)
    again = caffe_pb2.BlobProto()
    again.ParseFromString(blob.SerializeToString())
    assert tuple(again.shape.dim) == shape == blob_shape(again)
    np.testing.assert_array_equal(np.asarray(again.data, np.float32), values.ravel())
    np.testing.assert_array_equal(blob_values(again), values.ravel())


def test_unpacked_and_double_values_are_read_too():
    blob = caffe_pb2.BlobProto(num=1, channels=1, height=1, width=3, double_data=[1, 2, 3])
    assert blob_shape(blob) == (1, 1, 1, 3)
    np.testing.assert_array_equal(blob_values(blob), np.float32([1, 2, 3]))
