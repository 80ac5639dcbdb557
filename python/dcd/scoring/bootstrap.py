"""Error bars on accuracies: percentile bootstrap over videos, and paired
comparisons of two score files over the same videos (paired bootstrap of
the difference, and McNemar's exact test on the discordant videos).

Resampling is over test videos (the unit the paper's accuracies average
over), with a seeded generator so that a figure printed twice is the same.
Mean class accuracy is recomputed on every resample (a class that a
resample happens to miss is left out of that resample's mean, as
accuracy.mean_class_accuracy does for a class without test videos).
"""
from math import comb

import numpy as np

from dcd.scoring.accuracy import confusion_matrix, mean_class_accuracy

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0
DEFAULT_LEVEL = 0.95
# Resamples per vectorised batch: bounds memory to ~CHUNK x videos indices.
_CHUNK = 250


def _resample_stats(correct, labels, num_classes, resamples, seed):
    """(resamples x K) top-1 style means and (resamples x K) mean class
    accuracies of K per-video 0/1 columns `correct` (V x K), all on the same
    resampled video sets."""
    correct = np.asarray(correct, float)
    if correct.ndim == 1:
        correct = correct[:, None]
    labels = np.asarray(labels, np.int64)
    v, k = correct.shape
    rng = np.random.default_rng(seed)
    means, mcas = [], []
    done = 0
    while done < resamples:
        b = min(_CHUNK, resamples - done)
        idx = rng.integers(0, v, size=(b, v))
        means.append(correct[idx].mean(axis=1))                      # b x K
        # Per-resample, per-class counts with one bincount over b*C bins.
        bins = (np.arange(b)[:, None] * num_classes + labels[idx]).ravel()
        count = np.bincount(bins, minlength=b * num_classes).reshape(b, num_classes)
        per_k = []
        for j in range(k):
            hits = np.bincount(bins, weights=correct[idx, j].ravel(),
                               minlength=b * num_classes).reshape(b, num_classes)
            with np.errstate(invalid="ignore", divide="ignore"):
                recall = np.where(count > 0, hits / np.maximum(count, 1), np.nan)
            per_k.append(np.nanmean(recall, axis=1))
        mcas.append(np.stack(per_k, axis=1))
        done += b
    return np.concatenate(means), np.concatenate(mcas)


def percentile_interval(samples, level=DEFAULT_LEVEL):
    lo, hi = np.percentile(samples, [50 * (1 - level), 50 * (1 + level)])
    return [float(lo), float(hi)]


def correct_top_k(scores, labels, k):
    """Per-video 0/1: is the label among the k best scores (ties by class index)."""
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.any(top == np.asarray(labels)[:, None], axis=1)


def accuracy_intervals(scores, labels, resamples=DEFAULT_RESAMPLES, seed=DEFAULT_SEED,
                       level=DEFAULT_LEVEL):
    """{"top1": [lo, hi], "top5": [lo, hi], "mean_class_accuracy": [lo, hi]}
    (fractions) from a percentile bootstrap over videos of V x C scores."""
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    correct = np.stack([correct_top_k(scores, labels, 1), correct_top_k(scores, labels, 5)], 1)
    means, mcas = _resample_stats(correct, labels, scores.shape[1], resamples, seed)
    return {"top1": percentile_interval(means[:, 0], level),
            "top5": percentile_interval(means[:, 1], level),
            "mean_class_accuracy": percentile_interval(mcas[:, 0], level)}


def mcnemar_exact(b, c):
    """Two-sided exact McNemar p-value for b videos right only in A and c
    right only in B: twice the smaller binomial(b + c, 1/2) tail, at most 1."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(comb(n, i) for i in range(min(b, c) + 1))
    # Exact integer arithmetic until the one division.
    return min(1.0, 2 * tail / 2 ** n)


def paired_comparison(scores_a, scores_b, labels, resamples=DEFAULT_RESAMPLES,
                      seed=DEFAULT_SEED, level=DEFAULT_LEVEL):
    """B minus A on the same videos (rows in the same order): top-1 and mean
    class accuracy differences with paired-bootstrap intervals, and the
    McNemar table of top-1 correctness."""
    labels = np.asarray(labels)
    num_classes = np.asarray(scores_a).shape[1]
    ca = correct_top_k(np.asarray(scores_a), labels, 1)
    cb = correct_top_k(np.asarray(scores_b), labels, 1)
    means, mcas = _resample_stats(np.stack([ca, cb], 1), labels, num_classes, resamples, seed)
    mca = [mean_class_accuracy(confusion_matrix(labels, np.asarray(s).argmax(1), num_classes))
           for s in (scores_a, scores_b)]
    only_a = int(np.sum(ca & ~cb))
    only_b = int(np.sum(~ca & cb))
    return {
        "num_videos": int(len(labels)), "resamples": int(resamples), "seed": int(seed),
        "level": float(level),
        "top1": {"a": float(ca.mean()), "b": float(cb.mean()),
                 "diff": float(cb.mean() - ca.mean()),
                 "ci": percentile_interval(means[:, 1] - means[:, 0], level)},
        "mean_class_accuracy": {"a": mca[0], "b": mca[1], "diff": mca[1] - mca[0],
                                "ci": percentile_interval(mcas[:, 1] - mcas[:, 0], level)},
        "mcnemar": {"both_right": int(np.sum(ca & cb)), "only_a": only_a, "only_b": only_b,
                    "both_wrong": int(np.sum(~ca & ~cb)), "p": mcnemar_exact(only_a, only_b)},
    }
