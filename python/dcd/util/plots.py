"""matplotlib for the project's figures (Agg backend, no display): the
confusion matrix of tools/eval_scores.py and Figure 5 (dcd.demo.figure5)."""
import numpy as np


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def quiet_matplotlib(func):
    """matplotlib 3.9 calls pyparsing names that pyparsing 3.3 deprecates: hide those."""
    import functools
    import warnings

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return func(*args, **kwargs)
    return wrapper


@quiet_matplotlib
def plot_confusion(evaluation, path, class_names=None, title=None):
    """Row-normalised confusion matrix as a PNG (matplotlib, Agg)."""
    plt = pyplot()
    cm = evaluation.confusion.astype(float)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    n = evaluation.num_classes
    size = min(max(4.0, 0.12 * n + 3), 20)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    im = ax.imshow(norm, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if class_names and n <= 40:
        ax.set_xticks(range(n), class_names[:n], rotation=90, fontsize=6)
        ax.set_yticks(range(n), class_names[:n], fontsize=6)
    s = evaluation.summary()
    ax.set_title(title or f"top-1 {s['top1']:.2%}, mean class acc. {s['mean_class_accuracy']:.2%}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
