"""The shared frame check: both kinds of damage libjpeg reports are caught,
while OpenCV alone decodes them without a word."""
import cv2
import numpy as np
import pytest
from datahelpers import CORRUPTIONS, smooth_jpeg

from dcd.data import jpeg


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_corrupt_jpeg_is_caught_where_opencv_is_silent(kind):
    data = CORRUPTIONS[kind](smooth_jpeg())
    # The premise: OpenCV returns an image for the damaged file.
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is not None
    problem = jpeg.jpeg_problem(data)
    assert problem and problem.startswith("corrupt JPEG")
    assert ("Premature end" if kind == "truncated" else "Corrupt JPEG data") in problem
    with pytest.raises(jpeg.CorruptFrameError, match="corrupt JPEG"):
        jpeg.decode_frame(data)


def test_sound_jpeg_decodes_as_opencv_decodes_it(tmp_path):
    data = smooth_jpeg()
    assert jpeg.jpeg_problem(data) is None
    ref = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(jpeg.decode_frame(data), ref)
    path = tmp_path / "img_00001.jpg"
    path.write_bytes(data)
    grey = jpeg.read_frame(path, colour=False)
    np.testing.assert_array_equal(grey, cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))


def test_bytes_that_are_no_image_are_refused():
    with pytest.raises(jpeg.CorruptFrameError, match="does not decode"):
        jpeg.decode_frame(b"not an image at all")
