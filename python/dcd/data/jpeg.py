"""The one frame check every Python reader uses: what libjpeg reports as
corrupt is corrupt.

OpenCV's decoder turns libjpeg's warnings ("Premature end of JPEG file" for a
truncated file, "Corrupt JPEG data: ..." for damaged entropy-coded data) into
a grey-filled or garbled image and reports nothing. libjpeg-turbo's TurboJPEG
API can stop on those warnings instead; simplejpeg (a PyPI wheel bundling
libjpeg-turbo) exposes that as `strict=True`. The check decodes at 1/8 scale
(the DCT scaling still entropy-decodes every block, so both kinds of damage
are seen) and discards the result; the image itself is still decoded by
OpenCV, as the C++ VideoData layer decodes it, so checked and unchecked
readers give the same pixels. docs/ASSUMPTIONS.md records the choice and its
cost.
"""
import numpy as np

JPEG_SOI = b"\xff\xd8"


class CorruptFrameError(ValueError):
    """Frame bytes that are not a sound image; the message is the reason."""


def jpeg_problem(data):
    """Why `data` (a whole JPEG file) is corrupt, or None when it is sound.

    Non-JPEG data (no start-of-image marker) is not judged here."""
    import simplejpeg
    if not bytes(data[:2]) == JPEG_SOI:
        return None
    try:
        simplejpeg.decode_jpeg(bytes(data), colorspace="GRAY", min_height=1, min_width=1,
                               min_factor=8, strict=True)
    except ValueError as exc:
        return f"corrupt JPEG: {exc}"
    return None


def decode_frame(data, colour=True):
    """BGR (colour) or grey uint8 image of encoded frame bytes, checked with
    jpeg_problem; CorruptFrameError with the reason otherwise."""
    import cv2
    problem = jpeg_problem(data)
    if problem:
        raise CorruptFrameError(problem)
    flags = cv2.IMREAD_COLOR if colour else cv2.IMREAD_GRAYSCALE
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None:
        raise CorruptFrameError("does not decode as an image")
    return image


def read_frame(path, colour=True):
    """decode_frame of a file; FileNotFoundError when it is absent."""
    with open(path, "rb") as f:
        return decode_frame(f.read(), colour)
