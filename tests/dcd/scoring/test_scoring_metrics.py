"""Accuracies and fusion on hand-made score files."""
import json

import numpy as np
import pytest

from dcd.data.filelists import VideoEntry
from dcd.scoring import accuracy, metrics
from dcd.scoring.scorefile import ScoreFileError, load_scores, write_scores


def make_file(path, ids, labels, video_scores, snippets=3, crops=2, noise=0.0, seed=0):
    """A score file whose crop-then-snippet mean is exactly video_scores."""
    rng = np.random.RandomState(seed)
    v = np.asarray(video_scores, np.float32)
    raw = np.repeat(np.repeat(v[:, None, None, :], snippets, 1), crops, 2)
    d = rng.normal(0, noise, raw.shape).astype(np.float32)
    d -= d.mean(axis=(1, 2), keepdims=True)       # zero-mean perturbation keeps the mean
    write_scores(path, ids, labels, raw + d, {"num_classes": v.shape[1], "list_sha1": "x"})
    return path


# 4 videos of class 0 and one of class 1, all predicted as class 0:
# top-1 = 4/5 = 0.8, mean class accuracy = (1 + 0) / 2 = 0.5.
IDS = ["a", "b", "c", "d", "e"]
LABELS = [0, 0, 0, 0, 1]
SCORES = [[2, 1, 0], [3, 0, 1], [1, 0, 0], [5, 4, 0], [2, 1, 0]]


def test_mean_class_accuracy_differs_from_top1(tmp_path):
    f = make_file(tmp_path / "s.npz", IDS, LABELS, SCORES, noise=1.0)
    s = metrics.evaluate([f]).summary()
    assert s["top1"] == pytest.approx(0.8)
    assert s["mean_class_accuracy"] == pytest.approx(0.5)
    assert s["top5"] == pytest.approx(1.0)      # only 3 classes: top-5 holds all
    cm = metrics.evaluate([f]).confusion
    assert cm.tolist() == [[4, 0, 0], [1, 0, 0], [0, 0, 0]]


def test_aggregation_matches_numpy(tmp_path):
    rng = np.random.RandomState(1)
    raw = rng.normal(size=(5, 25, 10, 3)).astype(np.float32)
    write_scores(tmp_path / "r.npz", IDS, LABELS, raw, {})
    ev = metrics.evaluate([tmp_path / "r.npz"])
    expect = np.stack([raw[i].mean(axis=1).mean(axis=0) for i in range(5)])
    np.testing.assert_allclose(ev.scores, expect, rtol=1e-6)


def test_weighted_fusion_and_top_k(tmp_path):
    a = make_file(tmp_path / "a.npz", IDS, LABELS, SCORES)
    # The second stream gets video e right; scored videos in another order.
    b_scores = [[0, 1, 0], [0, 1, 0], [0, 1, 0], [0, 1, 0], [0, 9, 0]]
    order = [4, 2, 0, 1, 3]
    b = make_file(tmp_path / "b.npz", [IDS[i] for i in order], [LABELS[i] for i in order],
                  [b_scores[i] for i in order], seed=3, noise=0.5)
    fused = metrics.evaluate([a, b], [1.0, 0.5])
    expect = np.asarray(SCORES, float) + 0.5 * np.asarray(b_scores, float)
    np.testing.assert_allclose(fused.scores, expect, atol=1e-5)
    s = fused.summary()
    # d: 5 + 0.5 vs 4 + 0.5 -> class 0; c: 1 vs 0.5 -> 0; e: 2 vs 1 + 4.5 -> 1
    assert s["top1"] == pytest.approx(1.0) and s["mean_class_accuracy"] == pytest.approx(1.0)
    assert accuracy.top_k_accuracy(np.array([[3, 2, 1, 0]]), [2], 2) == 0.0
    assert accuracy.top_k_accuracy(np.array([[3, 2, 1, 0]]), [1], 2) == 1.0


def test_mismatched_ids_are_reported(tmp_path):
    a = make_file(tmp_path / "a.npz", IDS, LABELS, SCORES)
    b = make_file(tmp_path / "b.npz", IDS[:3] + ["x", "y"], LABELS, SCORES)
    with pytest.raises(ScoreFileError) as err:
        metrics.evaluate([a, b])
    msg = str(err.value)
    assert "b.npz lacks 2 video(s): d, e" in msg and "a.npz lacks 2 video(s): x, y" in msg


def test_other_class_count_or_list_refused(tmp_path):
    a = make_file(tmp_path / "a.npz", IDS, LABELS, SCORES)
    c = make_file(tmp_path / "c.npz", IDS, LABELS, [s + [0] for s in SCORES])
    with pytest.raises(ScoreFileError, match="4 classes"):
        metrics.evaluate([a, c])
    with pytest.raises(ScoreFileError, match="expected 101"):
        metrics.evaluate([a], num_classes=101)
    other_split = [VideoEntry(v, 10, l) for v, l in zip(["a", "b", "q"], [0, 0, 1])]
    with pytest.raises(ScoreFileError, match="another list or split"):
        metrics.evaluate([a], entries=other_split)
    relabelled = [VideoEntry(v, 10, 1 - l) for v, l in zip(IDS, LABELS)]
    with pytest.raises(ScoreFileError, match="labels differ"):
        metrics.evaluate([a], entries=relabelled)
    with pytest.raises(ValueError, match="weight"):
        metrics.evaluate([a], [1, 2])
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ScoreFileError):
        load_scores(tmp_path / "junk.npz")


def test_eval_scores_cli_outputs(tmp_path, capsys):
    from toolhelpers import load_tool
    tool = load_tool("eval_scores")
    a = make_file(tmp_path / "a.npz", IDS, LABELS, SCORES)
    names = tmp_path / "classInd.txt"
    names.write_text("1 Run\n2 Jump\n3 Swim\n")
    out = dict(csv=tmp_path / "pc.csv", png=tmp_path / "cm.png", json=tmp_path / "s.json")
    assert tool.main([str(a), "--class_names", str(names), "--per_class_csv", str(out["csv"]),
                      "--confusion_png", str(out["png"]), "--json", str(out["json"]),
                      "--paper_ref", "T5/full/w/ TSN"]) == 0
    assert "mean class accuracy 50.00%" in capsys.readouterr().out
    rows = out["csv"].read_text().splitlines()
    assert rows[1] == "0,Run,4,4,1.000000" and rows[2] == "1,Jump,1,0,0.000000"
    assert rows[3] == "2,Swim,0,0,"
    import cv2
    assert cv2.imread(str(out["png"])) is not None
    assert json.loads(out["json"].read_text())["top1"] == pytest.approx(0.8)
    b = make_file(tmp_path / "b.npz", IDS[:4], LABELS[:4], SCORES[:4])
    assert tool.main([str(a), str(b)]) == 2
    assert "lacks 1 video(s): e" in capsys.readouterr().err


# ------------------------------------------------------------ bad scores and files

def _eval_scores(args, capsys):
    from toolhelpers import load_tool
    rc = load_tool("eval_scores").main([str(a) for a in args])
    return rc, capsys.readouterr()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_scores_are_refused_naming_file_and_video(tmp_path, capsys, bad):
    scores = np.asarray(SCORES, np.float32)
    scores[2, 1] = bad
    path = make_file(tmp_path / "s.npz", IDS, LABELS, scores)
    rc, out = _eval_scores([path], capsys)
    (line,) = out.err.splitlines()
    assert rc == 2 and "Traceback" not in out.err
    assert str(path) in line and "NaN or inf" in line and "video(s): c" in line
    assert "top-1" not in out.out  # no figure printed


def test_labels_beyond_the_classes_are_refused_in_one_line(tmp_path, capsys):
    path = make_file(tmp_path / "s.npz", IDS, [0, 0, 5, 0, 1], SCORES)
    rc, out = _eval_scores([path], capsys)
    (line,) = out.err.splitlines()
    assert rc == 2 and "IndexError" not in out.err
    assert str(path) in line and "video c has label 5" in line and "3 classes" in line


@pytest.mark.parametrize("weight", ["nan", "inf"])
def test_non_finite_fusion_weights_are_refused(tmp_path, capsys, weight):
    a = make_file(tmp_path / "a.npz", IDS, LABELS, SCORES)
    rc, out = _eval_scores([a, a, "--score_weights", "1", weight], capsys)
    assert rc == 2 and f"must be finite numbers: {weight}" in out.err and str(a) in out.err


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_empty_or_truncated_npz_is_one_line(tmp_path, capsys, damage):
    path = make_file(tmp_path / "s.npz", IDS, LABELS, SCORES)
    data = path.read_bytes()
    path.write_bytes(b"" if damage == "empty" else data[:len(data) // 2])
    rc, out = _eval_scores([path], capsys)
    (line,) = out.err.splitlines()
    assert rc == 2 and "Traceback" not in out.err and str(path) in line
    assert ("empty file" if damage == "empty" else "truncated or damaged") in line


def test_unwritable_output_is_one_line_after_the_figures(tmp_path, capsys):
    path = make_file(tmp_path / "s.npz", IDS, LABELS, SCORES)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    rc, out = _eval_scores([path, "--json", blocker / "summary.json"], capsys)
    assert rc == 2 and "top-1 80.00%" in out.out  # the figures were printed first
    (line,) = out.err.splitlines()
    assert line.startswith("eval_scores: error: ") and str(blocker / "summary.json") in line
