"""The multi-scale tokenizer (notebook 02): its token pyramid, training curves, codebook usage."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .common import _numpy


def plot_scale_pyramid(scales, latent_hw: tuple[int, int], seconds: float | None = None,
                       max_hz: float | None = None, ncols: int = 3) -> Figure:
    """The token grids ``(h_k, w_k)`` of a multi-scale tokenizer, drawn to scale over its latent grid.

    One panel per scale k: the ``H x W`` latent grid in faint lines and scale k's
    ``h_k x w_k`` token cells on top; a token of scale k summarises about
    ``(H / h_k) x (W / w_k)`` latent cells (``area`` downsampling).  With ``seconds``
    and ``max_hz`` the axes are the time (s) and frequency (Hz) of the spectrogram
    the latent covers, frequency upward (with CMX, latent cell ``(i, j)`` covers a
    contiguous block of bins and frames).  The last panel counts tokens per scale.
    Defined in notebook 02.
    """
    scales = [tuple(s) for s in scales]
    big_h, big_w = latent_hw
    n_k = len(scales)
    sx = (seconds / big_w) if seconds else 1.0   # axis units per latent cell
    sy = (max_hz / big_h) if max_hz else 1.0
    nrows = -(-(n_k + 1) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.3 * ncols, 2.7 * nrows), layout="constrained",
                             squeeze=False)
    colors = plt.get_cmap("viridis")(np.linspace(0.1, 0.85, n_k))
    cum = 0
    for k, (h, w) in enumerate(scales):
        ax = axes.flat[k]
        cum += h * w
        for i in range(h):          # token cells, shaded like a chessboard so each one shows
            for j in range(w):
                ax.add_patch(Rectangle((j * big_w / w * sx, i * big_h / h * sy), big_w / w * sx,
                                       big_h / h * sy, facecolor=colors[k], alpha=0.85 if (i + j) % 2 else 0.55,
                                       edgecolor="black", lw=1.5))
        for i in range(big_h + 1):   # the latent grid
            ax.axhline(i * sy, color="white", lw=0.5, alpha=0.8)
        for j in range(big_w + 1):
            ax.axvline(j * sx, color="white", lw=0.5, alpha=0.8)
        ax.set(xlim=(0, big_w * sx), ylim=(0, big_h * sy))
        ax.set_title(f"scale {k + 1}: {h} x {w} = {h * w} token{'s' if h * w > 1 else ''} "
                     f"(total {cum})", fontsize=10)
        if seconds and max_hz:
            ax.set(xlabel="time (s)", ylabel="frequency (Hz)")
            ax.text(0.98, 0.04, f"1 token ≈ {seconds / w:.3g} s x {max_hz / h:.0f} Hz", transform=ax.transAxes,
                    ha="right", va="bottom", fontsize=8, color="white",
                    bbox=dict(facecolor="black", alpha=0.6, lw=0))
        else:
            ax.set(xlabel="latent column (of W)", ylabel="latent row (of H)")
    ax = axes.flat[n_k]
    counts = [h * w for h, w in scales]
    bars = ax.bar(range(1, n_k + 1), counts, color=colors)
    ax.bar_label(bars, fontsize=8)
    ax.set(xlabel="scale k", ylabel="tokens h_k x w_k", xticks=range(1, n_k + 1), yscale="log",
           ylim=(0.7, 2.5 * max(counts)),
           title=f"L = {sum(counts)} tokens in {n_k} scales\n(the finest grid alone: {big_h * big_w})")
    ax.grid(axis="y", alpha=0.3)
    for ax in axes.flat[n_k + 1:]:
        ax.set_visible(False)
    fig.suptitle(f"token pyramid over the {big_h} x {big_w} latent grid (white lines: latent cells; "
                 f"boxes: the tokens of scale k; frequency upward)")
    return fig


def plot_training_curves(history: dict, terms=("l1", "l2", "spectral", "vq"), log_y: bool = True,
                         title: str = "") -> Figure:
    """Train (per step, smoothed when long) and valid curves, one panel per loss term.

    With ``log_y`` a panel gets a logarithmic y axis when its values span more
    than a factor of 10 (a linear one reads better otherwise).

    ``history`` is what :func:`marslib.train.train` returns:
    ``{"train": [{"step", term: value, ...}], "valid": [...]}``.  Defined in notebook 02.
    """
    train, valid = history["train"], history.get("valid", [])
    fig, axes = plt.subplots(1, len(terms), figsize=(3.6 * len(terms), 3.2), layout="constrained",
                             squeeze=False)
    for ax, term in zip(axes[0], terms):
        steps = np.array([rec["step"] for rec in train if term in rec])
        vals = np.array([rec[term] for rec in train if term in rec])
        if len(vals) > 50:  # noisy per-batch values: show them faintly, and an EMA on top
            ax.plot(steps, vals, color="C0", alpha=0.25, lw=0.8)
            ema, acc = [], vals[0]
            for v in vals:
                acc = 0.95 * acc + 0.05 * v
                ema.append(acc)
            ax.plot(steps, ema, color="C0", label="train (EMA 0.95)")
        else:
            ax.plot(steps, vals, color="C0", label="train (per batch)")
        v_steps = [rec["step"] for rec in valid if term in rec]
        if v_steps:
            ax.plot(v_steps, [rec[term] for rec in valid if term in rec], "o-", color="C3", label="valid")
        ax.set(xlabel="training step", ylabel=term, title=term)
        if log_y and len(vals) and vals.min() > 0 and vals.max() / vals.min() > 10:
            ax.set_yscale("log")  # only where the values span more than a decade
        ax.grid(alpha=0.3, which="both")
    axes[0, 0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def plot_codebook_usage(hits_KV, scales, n_clips: int) -> Figure:
    """How the shared codebook is used on a dataset: per scale, and per code.

    Args:
        hits_KV: ``(K, V)`` how often each code was chosen at each scale.
        scales: the ``(h_k, w_k)`` of each scale.
        n_clips: clips encoded; scale k has only ``n_clips * h_k * w_k`` tokens, so it
            can use at most that many codes (black ticks in the left panel).

    Left: fraction of the V codes each scale uses, and all scales together.  Right:
    hits per code, codes ranked by total hits, stacked by scale.  Defined in notebook 02.
    """
    hits = _numpy(hits_KV).astype(float)
    n_k, n_v = hits.shape
    colors = plt.get_cmap("viridis")(np.linspace(0.1, 0.85, n_k))
    used = (hits > 0).mean(1)
    union = float((hits.sum(0) > 0).mean())
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(13, 3.8), layout="constrained", width_ratios=[1, 1.6])
    labels = [f"{k + 1}\n{h}x{w}" for k, (h, w) in enumerate(scales)] + ["all"]
    bars = ax0.bar(range(n_k + 1), [*used, union], color=[*colors, "0.5"])
    ax0.bar_label(bars, fmt="%.2f", fontsize=8)
    cap = [min(1.0, n_clips * h * w / n_v) for h, w in scales]
    ax0.scatter(range(n_k), cap, marker="_", s=400, color="black", zorder=3,
                label=f"most possible ({n_clips} clips x h·w tokens)")
    ax0.set_xticks(range(n_k + 1), labels)
    ax0.set(xlabel="scale k (h x w)", ylabel=f"fraction of the {n_v} codes used", ylim=(0, 1.12),
            title="codebook usage per scale")
    ax0.legend(loc="upper left", fontsize=8)
    ax0.grid(axis="y", alpha=0.3)
    order = np.argsort(-hits.sum(0), kind="stable")
    bottom = np.zeros(n_v)
    for k in range(n_k):
        ax1.bar(np.arange(n_v), hits[k, order], bottom=bottom, width=1.0, color=colors[k],
                label=f"scale {k + 1}")
        bottom += hits[k, order]
    n_used = int((hits.sum(0) > 0).sum())
    if n_used < n_v:  # mark where the never-chosen codes begin
        ax1.axvline(n_used - 0.5, color="crimson", ls="--", lw=1)
        ax1.text(n_used, bottom.max() * 0.9, f" {n_v - n_used} codes never chosen →", color="crimson",
                 fontsize=9, va="top")
    ax1.set(xlabel="code (ranked by total hits)", ylabel="hits (tokens)", xlim=(-0.5, n_v - 0.5),
            title=f"hits per code: {n_used} of {n_v} codes used by {int(hits.sum())} tokens of {n_clips} clips")
    ax1.legend(fontsize=8, ncols=2 if n_k > 5 else 1, loc="upper right")
    ax1.grid(axis="y", alpha=0.3)
    return fig
