"""pycaffe nets from NetParameters (NetSpec's output) without leaving files."""
import os
import tempfile


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
