"""Next-scale autoregression (notebook 03): the block-causal attention mask, training curves."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .common import _numpy


def plot_attention_mask(ax: Axes, mask_LL, scales=None, title: str = ""):
    """Draw an ``(L, L)`` boolean attention mask: row = query i, column = key j.

    A dark cell means query ``i`` may attend to key ``j``.  With ``scales``
    ``[(h_1, w_1), ...]`` (whose ``h*w`` sum to ``L``) red lines mark where each
    scale's tokens start and the larger diagonal blocks are labelled with their
    scale, so the block-causal structure of next-scale prediction is visible.
    Defined in notebook 03.
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    m = _numpy(mask_LL).astype(float)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"plot_attention_mask expects an (L, L) mask, got shape {m.shape}")
    n = m.shape[0]
    allowed, masked = "#1f4e79", "#eeeeee"
    ax.imshow(m, cmap=ListedColormap([masked, allowed]), vmin=0, vmax=1, interpolation="nearest",
              extent=(-0.5, n - 0.5, n - 0.5, -0.5))
    if scales:
        sizes = [h * w for h, w in scales]
        if sum(sizes) != n:
            raise ValueError(f"scales {list(scales)} hold {sum(sizes)} tokens but the mask is {n} x {n}")
        starts = np.cumsum([0] + sizes)
        for s in starts[1:-1]:
            ax.axhline(s - 0.5, color="crimson", lw=0.8)
            ax.axvline(s - 0.5, color="crimson", lw=0.8)
        for k, ((h, w), a, b) in enumerate(zip(scales, starts[:-1], starts[1:])):
            if b - a >= n / 8:  # room for a label inside the diagonal block
                ax.text((a + b) / 2 - 0.5, (a + b) / 2 - 0.5, f"scale {k + 1}\n{h}x{w}", ha="center",
                        va="center", color="white", fontsize=8)
    ax.set(xlabel="key j (token attended to)", ylabel="query i (token being computed)", title=title)
    ax.legend(handles=[Patch(color=allowed, label="may attend"), Patch(color=masked, label="masked")]
              + ([plt.Line2D([], [], color="crimson", lw=0.8, label="scale boundary")] if scales else []),
              loc="lower left", fontsize=7, framealpha=0.9)
    return ax


def plot_ar_history(history: dict, vocab_size: int, title: str = "") -> Figure:
    """Training curves of the next-scale transformer from a ``train`` history.

    Three panels against the optimiser step: loss (cross-entropy over all L
    tokens, nats), token accuracy, and the per-scale cross-entropy ``ce_k``
    (train as thin lines, validation as markers).  Train curves are running
    means over about 2% of the steps (one batch alone is noisy).  Dashed lines give chance
    level: ``ln V`` nats and ``1/V`` accuracy for a uniform guess over the
    codebook.  Defined in notebook 03.
    """
    train, valid = history["train"], history.get("valid", [])
    if not train:
        raise ValueError("plot_ar_history: the history has no training records")
    steps = np.array([r["step"] for r in train])
    window = max(1, len(train) // 50)  # running mean over ~2% of the run: one batch is noisy
    smooth = lambda v: np.convolve(v, np.ones(window) / window, mode="valid")
    tsteps = steps[window - 1:]
    tlabel = "train (one batch)" if window == 1 else f"train (mean of {window} batches)"
    vsteps = np.array([r["step"] for r in valid])
    n_scales = len([k for k in train[0] if k.startswith("ce_")])
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8), layout="constrained")
    for ax, key, chance, label in ((axes[0], "loss", np.log(vocab_size), "cross-entropy (nats)"),
                                   (axes[1], "accuracy", 1 / vocab_size, "token accuracy")):
        ax.plot(tsteps, smooth([r[key] for r in train]), lw=1, alpha=0.8, label=tlabel)
        if valid:
            ax.plot(vsteps, [r[key] for r in valid], "o-", label="valid")
        ax.axhline(chance, color="grey", ls="--", lw=1, label=f"uniform guess over V = {vocab_size}")
        ax.set(xlabel="step", ylabel=label, title=key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, n_scales))
    for k in range(n_scales):
        axes[2].plot(tsteps, smooth([r[f"ce_{k}"] for r in train]), lw=0.8, alpha=0.6, color=colors[k])
        if valid:
            axes[2].plot(vsteps, [r[f"ce_{k}"] for r in valid], "o-", ms=4, color=colors[k],
                         label=f"scale {k + 1}")
    axes[2].axhline(np.log(vocab_size), color="grey", ls="--", lw=1)
    axes[2].set(xlabel="step", ylabel="cross-entropy (nats)",
                title="per-scale cross-entropy ce_k (lines: train, dots: valid)")
    axes[2].grid(alpha=0.3)
    axes[2].legend(fontsize=8, ncol=2)
    if title:
        fig.suptitle(title)
    return fig
