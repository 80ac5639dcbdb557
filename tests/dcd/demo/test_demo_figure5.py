"""Figure 5 panel: colour coding, the numpy displacement map on a known shift,
and the tool writing a PNG."""
import numpy as np
import pytest

from dcd.demo import figure5 as viz
from toolhelpers import load_tool


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


# ------------------------------------------------ a net's displacement map and its panel

SHIFT = (2, -3)   # content of frame b = frame a moved down 2, left 3 pixels


def _textured_pair(size=48, seed=2):
    rng = np.random.RandomState(seed)
    a = rng.randint(0, 256, (size, size, 3)).astype(np.uint8)
    return a, np.roll(a, SHIFT, axis=(0, 1))


def _shift_deploy(tmp_path, size=48):
    """A deploy net with the demo nets' displacement path: Input (one pair) ->
    conv1 (random fixed weights) -> CostVolume -> SoftDisplacement, layer
    `motion/displacement`."""
    import caffe
    from caffe import layers as L
    n = caffe.NetSpec()
    n.data = L.Input(input_param=dict(shape=dict(dim=[2, 3, size, size])))
    n.conv1 = L.Convolution(n.data, num_output=32, kernel_size=5, pad=2,
                            weight_filler=dict(type="gaussian", std=0.1))
    n.a, n.b = L.Slice(n.conv1, slice_param=dict(axis=0), ntop=2)
    n["motion/cost_volume"] = L.CostVolume(n.a, n.b, cost_volume_param=dict(max_displacement=4))
    n["motion/displacement"] = L.SoftDisplacement(
        n["motion/cost_volume"], soft_displacement_param=dict(max_displacement=4,
                                                              temperature=0.02))
    path = tmp_path / "shift_deploy.prototxt"
    path.write_text(str(n.to_proto()))
    return path


def test_displacement_from_net_finds_a_known_shift(tmp_path):
    a, b = _textured_pair()
    disp = viz.displacement_from_net(a, b, _shift_deploy(tmp_path), None, "motion/displacement")
    assert disp.shape == (48, 48, 2)
    inner = disp[8:-8, 8:-8].reshape(-1, 2)
    # Channel 0 is v_y, channel 1 v_x: the motion of frame a's content (not its inverse).
    assert np.median(inner[:, 0]) == pytest.approx(SHIFT[0], abs=0.1)
    assert np.median(inner[:, 1]) == pytest.approx(SHIFT[1], abs=0.1)


def test_figure5_panel_shows_the_known_shift(tmp_path):
    import cv2
    a, b = _textured_pair()
    disp = viz.displacement_from_net(a, b, _shift_deploy(tmp_path), None, "motion/displacement")
    out = tmp_path / "fig5.png"
    shown = viz.figure5(a, b, out, disp=disp)
    # The panel's colours: those of the true shift at the panel's speed scale.
    truth = np.broadcast_to(np.array(SHIFT, np.float32), disp.shape)
    want = viz.flow_to_colour(truth, shown["speed"])[0, 0].astype(int)
    for wrong in (np.zeros_like(truth), -truth):      # a zero or sign-flipped map
        assert np.abs(viz.flow_to_colour(wrong, shown["speed"])[0, 0] - want).max() > 60
    got = np.median(shown["disp_colour"][8:-8, 8:-8].reshape(-1, 3), axis=0)
    assert np.abs(got - want).max() <= 20
    # ... and in the PNG, where that panel lies.
    png = cv2.imread(str(out))[..., ::-1]
    top, bottom, left, right = shown["panel_boxes"]["disp"]
    h, w = bottom - top, right - left
    centre = png[top + h // 3:bottom - h // 3, left + w // 3:right - w // 3].reshape(-1, 3)
    assert np.abs(np.median(centre, axis=0) - want).max() <= 20
