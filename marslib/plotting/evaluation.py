"""The evaluation (notebook 04 and the report): confusion matrix, every metric at a glance."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .common import _numpy


def plot_confusion_matrix(ax: Axes, confusion, labels, title: str = ""):
    """Draw a ``(K, K)`` confusion matrix: row = true class, column = predicted class.

    Cells are coloured by the fraction of their *row* (so rare classes show as
    clearly as common ones) and labelled with the raw count; empty cells stay
    blank.  The title gets the overall accuracy (trace / total).  Returns the
    ``AxesImage``.  Defined in notebook 04.
    """
    counts = _numpy(confusion).astype(float)
    k = len(labels)
    if counts.shape != (k, k):
        raise ValueError(f"plot_confusion_matrix expects a ({k}, {k}) matrix for {k} labels, "
                         f"got shape {counts.shape}")
    rows = counts.sum(1, keepdims=True)
    frac = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    for i in range(k):
        for j in range(k):
            if counts[i, j]:
                ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=7,
                        color="white" if frac[i, j] > 0.5 else "black")
    ax.set_xticks(range(k), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(k), labels, fontsize=8)
    total = counts.sum()
    accuracy = f"accuracy {np.trace(counts) / total:.1%} of {int(total)}" if total else "no examples"
    ax.set(xlabel="predicted", ylabel="true", title=f"{title}\n{accuracy}" if title else accuracy)
    ax.figure.colorbar(im, ax=ax, label="fraction of the true class", shrink=0.8)
    return im


EVALUATION_PANELS = (("fd_crepe", "FD on CREPE embeddings ↓"), ("pkid", "PKID ↓"),
                     ("ndb_k", "NDB/k ↓"), ("pitch_acc_crepe", "pitch accuracy (CREPE) ↑"))


def plot_evaluation_bars(results: dict, panels=EVALUATION_PANELS) -> Figure:
    """One horizontal bar chart per metric, a bar per system (``evaluate``'s results dict)."""
    rows = list(results["rows"].values())
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 0.45 * len(rows) + 1.2),
                             sharey=True, layout="constrained")
    labels = [r["label"] for r in rows]
    colors = ["C2" if "floor" in l or "ceiling" in l else "C0" if l.startswith("MARS") else "C7" for l in labels]
    for ax, (key, title) in zip(np.atleast_1d(axes), panels):
        values = [r["metrics"][key] for r in rows]
        ax.barh(range(len(rows)), values, color=colors)
        ax.set_title(title, fontsize=10)
        ax.set_yticks(range(len(rows)), labels)
        ax.invert_yaxis()
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:,.0f}" if abs(v) >= 1000 else f" {v:.3g}", va="center", fontsize=8)
        ax.margins(x=0.25)
    fig.suptitle("Evaluation: green = references (floor, ceilings), blue = MARS, grey = baselines", fontsize=10)
    return fig
