"""Bootstrap intervals and paired comparisons against closed-form cases."""
import json
from math import sqrt

import numpy as np
import pytest

from dcd.scoring import accuracy, bootstrap, metrics
from dcd.scoring.scorefile import ScoreFileError, write_scores


def scores_with_correct(correct, labels, num_classes, rng):
    """V x C scores whose argmax is the label exactly where correct is true."""
    v = len(labels)
    s = rng.uniform(0, 1, (v, num_classes))
    wrong = (np.asarray(labels) + 1 + rng.integers(0, num_classes - 1, v)) % num_classes
    target = np.where(correct, labels, wrong)
    s[np.arange(v), target] = 2.0
    return s


def write(path, ids, labels, video_scores):
    raw = np.asarray(video_scores, np.float32)[:, None, None, :]
    write_scores(path, ids, labels, raw, {"num_classes": raw.shape[-1]})
    return str(path)


def test_top1_interval_matches_binomial_standard_error():
    # n videos, k right: the bootstrap distribution of top-1 has standard
    # error sqrt(p(1-p)/n), so the 95% interval is p +- 1.96 of it.
    rng = np.random.default_rng(5)
    n, k, c = 2000, 1400, 10
    correct = np.zeros(n, bool)
    correct[rng.choice(n, k, replace=False)] = True
    labels = rng.integers(0, c, n)
    ci = bootstrap.accuracy_intervals(scores_with_correct(correct, labels, c, rng), labels,
                                      resamples=4000, seed=1)
    p = k / n
    half = 1.96 * sqrt(p * (1 - p) / n)
    assert ci["top1"][0] == pytest.approx(p - half, abs=0.1 * half)
    assert ci["top1"][1] == pytest.approx(p + half, abs=0.1 * half)
    assert ci["top1"][0] < p < ci["top1"][1]
    # Mean class accuracy's interval is wider (each class has ~n/10 videos) but holds its value.
    mca = accuracy.mean_class_accuracy(accuracy.confusion_matrix(labels, np.where(
        correct, labels, (labels + 1) % c), c))
    assert ci["mean_class_accuracy"][0] < mca < ci["mean_class_accuracy"][1]


def test_one_class_mean_class_accuracy_is_top1_and_seeded():
    # All videos of class 0: mean class accuracy is class 0's recall, i.e. top-1,
    # resample by resample; the same seed gives the same interval.
    rng = np.random.default_rng(2)
    labels = np.zeros(300, int)
    s = scores_with_correct(rng.uniform(size=300) < 0.6, labels, 3, rng)
    a = bootstrap.accuracy_intervals(s, labels, resamples=500, seed=7)
    assert a["mean_class_accuracy"] == a["top1"]
    assert bootstrap.accuracy_intervals(s, labels, resamples=500, seed=7) == a
    assert bootstrap.accuracy_intervals(s, labels, resamples=500, seed=8) != a


def test_mcnemar_exact_on_hand_made_tables():
    # b=1, c=6: 2 * (C(7,0) + C(7,1)) / 2^7 = 16/128.
    assert bootstrap.mcnemar_exact(1, 6) == pytest.approx(0.125)
    assert bootstrap.mcnemar_exact(6, 1) == pytest.approx(0.125)
    assert bootstrap.mcnemar_exact(0, 5) == pytest.approx(2 / 32)
    # b=2, c=8: 2 * (1 + 10 + 45) / 1024.
    assert bootstrap.mcnemar_exact(2, 8) == pytest.approx(112 / 1024)
    assert bootstrap.mcnemar_exact(4, 4) == 1.0
    assert bootstrap.mcnemar_exact(0, 0) == 1.0


def test_paired_difference_matches_closed_form():
    # Per-video differences d in {-1, 0, 1}: b videos -1, c videos +1; the
    # paired bootstrap's standard error is sd(d) / sqrt(n).
    rng = np.random.default_rng(3)
    n, b, c, classes = 3000, 150, 250, 20
    labels = rng.integers(0, classes, n)
    ca = rng.uniform(size=n) < 0.7
    cb = ca.copy()
    order = rng.permutation(n)
    right, wrong = order[ca[order]], order[~ca[order]]
    cb[right[:b]] = False
    cb[wrong[:c]] = True
    r = bootstrap.paired_comparison(scores_with_correct(ca, labels, classes, rng),
                                    scores_with_correct(cb, labels, classes, rng), labels,
                                    resamples=4000, seed=0)
    m = r["mcnemar"]
    assert (m["only_a"], m["only_b"]) == (b, c)
    assert m["both_right"] + m["both_wrong"] == n - b - c
    diff = (c - b) / n
    assert r["top1"]["diff"] == pytest.approx(diff)
    se = sqrt(((b + c) / n - diff ** 2) / n)
    assert r["top1"]["ci"][0] == pytest.approx(diff - 1.96 * se, abs=0.1 * 1.96 * se)
    assert r["top1"]["ci"][1] == pytest.approx(diff + 1.96 * se, abs=0.1 * 1.96 * se)
    # 100 more right of 400 discordant: far from chance.
    assert m["p"] < 1e-5
    assert r["mean_class_accuracy"]["ci"][0] < r["mean_class_accuracy"]["diff"] \
        < r["mean_class_accuracy"]["ci"][1]


def test_compare_same_file_and_refusals(tmp_path):
    rng = np.random.default_rng(4)
    ids = [f"v{i:03d}" for i in range(50)]
    labels = rng.integers(0, 4, 50)
    s = rng.normal(size=(50, 4))
    a = write(tmp_path / "a.npz", ids, labels, s)
    # The same scores in another video order: no difference at all.
    order = rng.permutation(50)
    b = write(tmp_path / "b.npz", [ids[i] for i in order], labels[order], s[order])
    r = metrics.compare(a, b, resamples=200)
    assert r["top1"]["diff"] == 0 and r["top1"]["ci"] == [0.0, 0.0]
    assert r["mcnemar"]["p"] == 1.0 and r["mcnemar"]["only_a"] == 0
    c = write(tmp_path / "c.npz", ids[:10] + ["w000"] + ids[11:], labels, s)
    with pytest.raises(ScoreFileError, match=r"first difference: .*a\.npz has video 'v010', "
                                             r".*c\.npz lacks it"):
        metrics.compare(a, c)
    with pytest.raises(ScoreFileError, match=r"first difference: .*c\.npz has video 'w000'"):
        metrics.compare(c, a)
    d = write(tmp_path / "d.npz", ids, (labels + 1) % 4, s)
    with pytest.raises(ScoreFileError, match="disagree on the labels of 50 video.*first 'v000'"):
        metrics.compare(a, d)


def test_eval_scores_cli_intervals_and_compare(tmp_path, capsys):
    from toolhelpers import load_tool
    tool = load_tool("eval_scores")
    rng = np.random.default_rng(6)
    ids = [f"v{i:03d}" for i in range(200)]
    labels = rng.integers(0, 5, 200)
    a = write(tmp_path / "a.npz", ids, labels,
              scores_with_correct(rng.uniform(size=200) < 0.6, labels, 5, rng))
    b = write(tmp_path / "b.npz", ids, labels,
              scores_with_correct(rng.uniform(size=200) < 0.8, labels, 5, rng))
    assert tool.main([a, "--json", str(tmp_path / "s.json"), "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "top-1 " in out and "(95% CI " in out and "seed 3" in out
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["ci"]["top1"][0] < s["top1"] < s["ci"]["top1"][1]
    assert s["ci_method"]["resamples"] == 1000
    assert tool.main(["--compare", a, b, "--json", str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out
    assert "B - A" in out and "McNemar" in out
    c = json.loads((tmp_path / "c.json").read_text())
    assert c["top1"]["diff"] > 0 and c["mcnemar"]["p"] < 0.05
    short = write(tmp_path / "short.npz", ids[:150], labels[:150], rng.normal(size=(150, 5)))
    assert tool.main(["--compare", a, short]) == 2
    assert "first difference" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.main([a, "--compare", a, b])
