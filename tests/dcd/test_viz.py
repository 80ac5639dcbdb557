"""Figure 5 panel: colour coding, the numpy displacement map on a known shift,
and the tool writing a PNG."""
import numpy as np
import pytest

from dcd import viz
from dcd.paths import load_tool


def test_flow_colour_wheel_directions():
    flow = np.zeros((1, 4, 2), np.float32)
    flow[0, 1] = (0, 1)      # right
    flow[0, 2] = (1, 0)      # down
    flow[0, 3] = (0, -1)     # left
    rgb = viz.flow_to_colour(flow, max_magnitude=1).astype(int)
    assert rgb[0, 0].tolist() == [255, 255, 255]          # no motion: white
    assert len({tuple(c) for c in rgb[0, 1:]}) == 3       # directions differ in hue
    assert rgb[0, 1, 0] == 255 and rgb[0, 1, 1] < 50      # right is red, as in Middlebury's key


def test_numpy_displacement_finds_a_shift():
    rng = np.random.RandomState(0)
    import cv2
    base = cv2.GaussianBlur(rng.randint(0, 256, (96, 128, 3)).astype(np.uint8), (5, 5), 1.5)
    moved = np.roll(base, (4, -8), axis=(0, 1))          # content moves down 4, left 8
    disp = viz.displacement_numpy(base, moved, scale=4, max_displacement=4, temperature=0.02)
    inner = disp[24:-24, 24:-24]
    assert np.median(inner[..., 0]) == pytest.approx(4, abs=0.6)
    assert np.median(inner[..., 1]) == pytest.approx(-8, abs=0.6)
    # Warping by the true motion removes the difference (interior).
    true = np.broadcast_to(np.array([4, -8], np.float32), disp.shape)
    warped = viz.warped_difference(base, moved, true)
    assert np.abs(warped[16:-16, 16:-16]).max() < 1e-3


def test_visualize_tool_writes_png(tmp_path):
    import cv2
    rng = np.random.RandomState(1)
    a = cv2.GaussianBlur(rng.randint(0, 256, (120, 160, 3)).astype(np.uint8), (7, 7), 2)
    b = np.roll(a, (2, 3), axis=(0, 1))
    cv2.imwrite(str(tmp_path / "a.png"), a)
    cv2.imwrite(str(tmp_path / "b.png"), b)
    out = tmp_path / "fig5.png"
    assert load_tool("visualize").main([str(tmp_path / "a.png"), str(tmp_path / "b.png"),
                                        "--out", str(out)]) == 0
    img = cv2.imread(str(out))
    assert img is not None and img.shape == (528, 1280, 3)   # 16 x 6.6 in at 80 dpi
    assert img.std() > 10
