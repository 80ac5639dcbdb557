"""MovingPatterns: each factor is rendered as specified, and the raw-pixel
cost volume already separates motion from brightness change."""
import numpy as np
import pytest

from dcd.layers import reference as ref
from dcd.data.synthetic import CLASS_NAMES, factors, make_clip, write_dataset


def test_eight_classes_from_three_bits():
    assert len(CLASS_NAMES) == 8
    assert [factors(label) for label in (0, 5, 7)] == [(0, 0, 0), (1, 0, 1), (1, 1, 1)]
    assert CLASS_NAMES[5] == "CoolLeftFlicker"


def test_clips_are_deterministic_per_seed():
    a = make_clip(3, np.random.default_rng(7))
    b = make_clip(3, np.random.default_rng(7))
    c = make_clip(3, np.random.default_rng(8))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("label", range(8))
def test_factors_are_rendered(label):
    background, direction, flicker = factors(label)
    info = {}
    clip = make_clip(label, np.random.default_rng(label), info=info)
    assert clip.shape == (16, 64, 64, 3) and clip.dtype == np.uint8
    steps = np.diff(info["x"])
    assert np.all(steps > 0) if direction else np.all(steps < 0)
    levels = np.array(info["levels"])
    assert (levels.std() > 0.1) if flicker else (levels.std() == 0)
    # The object stays inside the frame.
    assert min(info["x"]) >= 0 and max(info["x"]) + info["size"] < 64
    # The background's tint: red above blue for warm, below for cool (BGR).
    bg = np.delete(clip[0].astype(np.float64), np.s_[info["y"]:info["y"] + info["size"]], axis=0)
    red_minus_blue = bg[..., 2].mean() - bg[..., 0].mean()
    assert (red_minus_blue > 20) if background == 0 else (red_minus_blue < -20), red_minus_blue

def linear_features(frame):
    """Offset-free linear filters of the pixels (high-pass and gradients per
    channel), like a first conv layer: scaling the brightness scales them."""
    from scipy.ndimage import sobel, uniform_filter
    f = frame.astype(np.float64).transpose(2, 0, 1)
    high_pass = f - uniform_filter(f, size=(1, 5, 5))
    return np.concatenate([high_pass, sobel(f, axis=2), sobel(f, axis=1)])[None]


def object_vx(clip, info, t):
    v = ref.soft_displacement(ref.cost_volume(linear_features(clip[t]),
                                              linear_features(clip[t + 1]), 1, 3),
                              1, 3, temperature=0.05)
    y, x, o = info["y"], int(round(info["x"][t])), info["size"]
    return v[0, 1, y + 3:y + o - 3, x + 4:x + o - 4].mean()


@pytest.mark.parametrize("direction", [0, 1])
def test_displacement_sees_direction_not_flicker(direction):
    """On scale-covariant features the cosine cost volume recovers the
    object's motion (2 px/frame) whether or not its brightness changes
    between the two frames."""
    sign = 1 if direction else -1
    per_flicker = []
    for flicker in (0, 1):
        label = 2 * direction + flicker
        info = {}
        clip = make_clip(label, np.random.default_rng(20 + label), info=info)
        vx = [object_vx(clip, info, t) for t in range(1, 6)]
        assert all(sign * v > 1.2 for v in vx), vx
        per_flicker.append(np.mean(vx))
    assert abs(per_flicker[0] - per_flicker[1]) < 0.3, per_flicker


def test_dataset_layout_and_splits(tmp_path):
    from dcd.data.filelists import parse_ucf101
    videos, splits = write_dataset(tmp_path, per_class=(2, 1, 1), seed=0)
    assert len(list(videos.rglob("*.avi"))) == 8 * 4
    per_split, known = parse_ucf101(splits, splits=(1, 2))
    assert len(known) == 8 * 4
    assert [len(per_split[1]["train"]), len(per_split[1]["val"]), len(per_split[2]["val"])] \
        == [16, 8, 8]
    assert not {v for v, _ in per_split[1]["val"]} & {v for v, _ in per_split[2]["val"]}
    import cv2
    capture = cv2.VideoCapture(str(next(videos.rglob("*.avi"))))
    frames = 0
    while capture.read()[0]:
        frames += 1
    assert frames == 16
