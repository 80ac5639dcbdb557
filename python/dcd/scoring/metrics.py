"""Accuracies and fusion of score files, TSN's way.

Each file's raw scores are averaged over crops, then over snippets (TSN's
default_aggregation_func with normalization=False, as eval_scores.py calls
it); fused scores are the weighted sum of those per-file video scores.
Reported figures: top-1, top-5, and mean class accuracy = mean over classes
of per-class recall, from the confusion matrix (TSN's reported number).
"""
import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcd.scoring.accuracy import (confusion_matrix, mean_class_accuracy, per_class_accuracy,
                                   top_k_accuracy)
from dcd.scoring.bootstrap import (DEFAULT_LEVEL, DEFAULT_RESAMPLES, DEFAULT_SEED,
                                   accuracy_intervals, paired_comparison)
from dcd.scoring.scorefile import ScoreFileError, load_scores


@dataclass
class Evaluation:
    video_ids: list
    labels: np.ndarray
    scores: np.ndarray          # V x C fused video scores
    files: list
    weights: list

    @property
    def num_classes(self):
        return self.scores.shape[1]

    @property
    def predictions(self):
        return self.scores.argmax(axis=1)

    @property
    def confusion(self):
        return confusion_matrix(self.labels, self.predictions, self.num_classes)

    def summary(self, resamples=DEFAULT_RESAMPLES, seed=DEFAULT_SEED, level=DEFAULT_LEVEL):
        """Accuracies, and (resamples > 0) their bootstrap intervals over videos
        under "ci" (fractions, like the accuracies)."""
        cm = self.confusion
        s = {"files": self.files, "weights": self.weights, "num_videos": len(self.video_ids),
             "num_classes": self.num_classes,
             "top1": top_k_accuracy(self.scores, self.labels, 1),
             "top5": top_k_accuracy(self.scores, self.labels, 5),
             "mean_class_accuracy": mean_class_accuracy(cm)}
        if resamples > 0:
            s["ci"] = accuracy_intervals(self.scores, self.labels, resamples, seed, level)
            s["ci_method"] = {"kind": "percentile bootstrap over videos", "level": level,
                              "resamples": resamples, "seed": seed}
        return s


def _check_compatible(files):
    """Refuse files that cannot be fused; name every mismatching video id."""
    first = files[0]
    for f in files[1:]:
        if f.num_classes != first.num_classes:
            raise ScoreFileError(f"{f.path} has {f.num_classes} classes but {first.path} has "
                                 f"{first.num_classes}: not scores of the same data set")
    ids = [set(f.video_ids) for f in files]
    union = set().union(*ids)
    problems = []
    for f, s in zip(files, ids):
        missing = sorted(union - s)
        if missing:
            shown = ", ".join(missing[:20]) + (f", ... ({len(missing)} in all)" if len(missing) > 20 else "")
            problems.append(f"  {f.path} lacks {len(missing)} video(s): {shown}")
    if problems:
        raise ScoreFileError("the score files do not cover the same videos (another list or "
                             "split?), nothing was dropped:\n" + "\n".join(problems))
    order = {v: i for i, v in enumerate(first.video_ids)}
    for f in files[1:]:
        idx = np.array([order[v] for v in f.video_ids])
        bad = [f.video_ids[i] for i in np.nonzero(first.labels[idx] != f.labels)[0]]
        if bad:
            raise ScoreFileError(f"{f.path} and {first.path} disagree on the labels of "
                                 f"{len(bad)} video(s): {', '.join(bad[:20])}")
    shas = {f.meta.get("list_sha1") for f in files} - {None}
    return len(shas) <= 1


def check_against_list(f, entries):
    """Refuse a score file whose videos or labels are not the list's."""
    listed = {e.video_id: e.label for e in entries}
    mine = dict(zip(f.video_ids, f.labels.tolist()))
    if set(listed) != set(mine):
        only_file = sorted(set(mine) - set(listed))[:10]
        only_list = sorted(set(listed) - set(mine))[:10]
        raise ScoreFileError(f"{f.path} was not scored on this list (another list or split?): "
                             f"{len(set(mine) - set(listed))} video(s) not in the list "
                             f"{only_file}, {len(set(listed) - set(mine))} listed video(s) "
                             f"missing {only_list}")
    wrong = [v for v in f.video_ids if listed[v] != mine[v]]
    if wrong:
        raise ScoreFileError(f"{f.path}: labels differ from the list for {len(wrong)} "
                             f"video(s), e.g. {wrong[:10]}")


def evaluate(paths, weights=None, num_classes=None, entries=None):
    """Fuse score files (weighted sum of crop-then-snippet averages) -> Evaluation."""
    files = [load_scores(p) for p in paths]
    if weights is None:
        weights = [1.0] * len(files)
    if len(weights) != len(files):
        raise ValueError(f"{len(weights)} weight(s) given for {len(files)} score file(s)")
    bad = [f"{w} (for {p})" for w, p in zip(weights, paths) if not np.isfinite(w)]
    if bad:
        raise ValueError(f"fusion weight(s) must be finite numbers: {', '.join(bad)}")
    if num_classes is not None:
        for f in files:
            if f.num_classes != num_classes:
                raise ScoreFileError(f"{f.path} has {f.num_classes} classes, expected {num_classes}")
    _check_compatible(files)
    if entries is not None:
        for f in files:
            check_against_list(f, entries)
    first = files[0]
    fused = np.zeros((len(first.video_ids), first.num_classes))
    for f, w in zip(files, weights):
        order = {v: i for i, v in enumerate(f.video_ids)}
        idx = np.array([order[v] for v in first.video_ids])
        fused += w * f.video_scores()[idx]
    return Evaluation(first.video_ids, np.asarray(first.labels), fused,
                      [f.path for f in files], list(map(float, weights)))


def compare(path_a, path_b, resamples=DEFAULT_RESAMPLES, seed=DEFAULT_SEED,
            level=DEFAULT_LEVEL):
    """Paired comparison (B minus A) of two score files over the same videos;
    refuses files whose video sets or labels differ, naming the first difference."""
    a, b = load_scores(path_a), load_scores(path_b)
    if a.num_classes != b.num_classes:
        raise ScoreFileError(f"{b.path} has {b.num_classes} classes but {a.path} has "
                             f"{a.num_classes}: not scores of the same data set")
    ids_a, ids_b = set(a.video_ids), set(b.video_ids)
    if ids_a != ids_b:
        # In A's video order, then B's: the first video only one of them has.
        first, has, lacks = next((v, x, y) for x, y, other in ((a, b, ids_b), (b, a, ids_a))
                                 for v in x.video_ids if v not in other)
        raise ScoreFileError(f"not the same videos ({len(ids_a - ids_b)} only in {a.path}, "
                             f"{len(ids_b - ids_a)} only in {b.path}): first difference: "
                             f"{has.path} has video {first!r}, {lacks.path} lacks it")
    order = {v: i for i, v in enumerate(b.video_ids)}
    idx = np.array([order[v] for v in a.video_ids])
    labels_b = np.asarray(b.labels)[idx]
    diff = np.nonzero(np.asarray(a.labels) != labels_b)[0]
    if len(diff):
        v = a.video_ids[diff[0]]
        raise ScoreFileError(f"{a.path} and {b.path} disagree on the labels of {len(diff)} "
                             f"video(s), first {v!r} ({a.labels[diff[0]]} vs {labels_b[diff[0]]})")
    out = paired_comparison(a.video_scores(), b.video_scores()[idx], np.asarray(a.labels),
                            resamples, seed, level)
    out.update({"a": str(a.path), "b": str(b.path)})
    return out


def read_class_names(path):
    """UCF101 classInd.txt ("1 ApplyEyeMakeup") or one name per line."""
    names = []
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if parts:
            names.append(parts[-1])
    return names


def write_per_class_csv(evaluation, path, class_names=None):
    cm = evaluation.confusion
    acc = per_class_accuracy(cm)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["class", "name", "videos", "correct", "accuracy"])
        for c in range(evaluation.num_classes):
            name = class_names[c] if class_names and c < len(class_names) else ""
            w.writerow([c, name, int(cm[c].sum()), int(cm[c, c]),
                        "" if np.isnan(acc[c]) else f"{acc[c]:.6f}"])


def write_json(summary, path):
    Path(path).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
