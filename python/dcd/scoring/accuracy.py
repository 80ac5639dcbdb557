"""Accuracies of one score matrix, TSN's way: the confusion matrix, per-class
recall, mean class accuracy (the figure the paper reports) and top-k."""
import numpy as np


def confusion_matrix(labels, predictions, num_classes):
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(labels), np.asarray(predictions)), 1)
    return cm


def per_class_accuracy(cm):
    """Recall of each class; NaN for a class with no test video."""
    count = cm.sum(axis=1).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.diag(cm) / count, np.nan)


def mean_class_accuracy(cm):
    """Mean recall over the classes that have test videos."""
    return float(np.nanmean(per_class_accuracy(cm)))


def top_k_accuracy(scores, labels, k):
    k = min(k, scores.shape[1])
    # Ties are broken by class index (stable), as argmax does for top-1.
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == np.asarray(labels)[:, None], axis=1)))
