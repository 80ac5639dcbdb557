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


def _encodings():
    """JPEGs as the data tools write them and as others may: colour at
    4:2:0 (OpenCV's default) and 4:4:4, two qualities, and grey (flow)."""
    rng = np.random.default_rng(3)
    image = cv2.GaussianBlur(rng.integers(0, 256, (96, 131, 3), dtype=np.uint8), (5, 5), 0)
    image[20:50, 30:90] = rng.integers(0, 256, (30, 60, 3), dtype=np.uint8)  # sharp edges
    out = {}
    for quality in (95, 75):
        out[f"colour q{quality}"] = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
    out["colour 4:4:4"] = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                                                      cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444])[1]
    out["grey"] = cv2.imencode(".jpg", image[:, :, 1], [cv2.IMWRITE_JPEG_QUALITY, 95])[1]
    return {k: v.tobytes() for k, v in out.items()}


@pytest.mark.parametrize("kind", sorted(_encodings()))
@pytest.mark.parametrize("colour, flags", [(True, cv2.IMREAD_COLOR),
                                           (False, cv2.IMREAD_GRAYSCALE),
                                           (None, cv2.IMREAD_UNCHANGED)])
def test_one_strict_decode_gives_opencvs_pixels(kind, colour, flags):
    """decode_frame decodes a JPEG once with libjpeg-turbo (strict): the
    same pixels as OpenCV's decoder, in every mode the readers use."""
    data = _encodings()[kind]
    ref = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    got = jpeg.decode_frame(data, colour)
    assert got.shape == ref.shape and got.dtype == np.uint8
    np.testing.assert_array_equal(got, ref)


def test_png_frames_still_decode_through_opencv():
    image = np.arange(60, dtype=np.uint8).reshape(4, 5, 3)
    data = cv2.imencode(".png", image)[1].tobytes()
    np.testing.assert_array_equal(jpeg.decode_frame(data), image)
    assert jpeg.decode_frame(data, None).shape == (4, 5, 3)
