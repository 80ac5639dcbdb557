"""The one frame check every Python reader uses: what libjpeg reports as
corrupt is corrupt.

OpenCV's decoder turns libjpeg's warnings ("Premature end of JPEG file" for a
truncated file, "Corrupt JPEG data: ..." for damaged entropy-coded data) into
a grey-filled or garbled image and reports nothing. libjpeg-turbo's TurboJPEG
API can stop on those warnings instead; simplejpeg (a PyPI wheel bundling
libjpeg-turbo) exposes that as `strict=True`. Readers decode a JPEG once,
that way (decode_frame): libjpeg-turbo's default IDCT and upsampling, the
pixels OpenCV's decoder and the C++ VideoData layer give
(tests/dcd/data/test_jpeg.py compares them), at about twice the speed of a
check followed by OpenCV's decode. jpeg_problem checks without keeping the
image (at 1/8 scale: the DCT scaling still entropy-decodes every block, so
both kinds of damage are seen), for build_lmdb's check. Other formats (PNG)
go through OpenCV. docs/ASSUMPTIONS.md records the choice and its cost.
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
    """BGR (colour) or grey uint8 image of encoded frame bytes; a JPEG is
    decoded once, strictly (module doc). CorruptFrameError with the reason
    when it is not a sound image. colour=None keeps the image's own
    channels (grey 2-D, colour BGR), as cv2.IMREAD_UNCHANGED."""
    if bytes(data[:2]) == JPEG_SOI:
        return _decode_jpeg_strict(bytes(data), colour)
    import cv2
    flags = {True: cv2.IMREAD_COLOR, False: cv2.IMREAD_GRAYSCALE, None: cv2.IMREAD_UNCHANGED}
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags[colour])
    if image is None:
        raise CorruptFrameError("does not decode as an image")
    return image


def _decode_jpeg_strict(data, colour):
    import simplejpeg
    try:
        if colour is None:
            colour = simplejpeg.decode_jpeg_header(data)[2] != "Gray"
        image = simplejpeg.decode_jpeg(data, colorspace="BGR" if colour else "GRAY",
                                       strict=True)  # full size: no min_* scaling
    except ValueError as exc:
        raise CorruptFrameError(f"corrupt JPEG: {exc}") from None
    return image if colour else image[:, :, 0]


def read_frame(path, colour=True):
    """decode_frame of a file; FileNotFoundError when it is absent."""
    # Unbuffered: the whole file in one read, without a buffer object.
    with open(path, "rb", buffering=0) as f:
        return decode_frame(f.read(), colour)
