"""Figures for the notebooks and the report (matplotlib; nothing here calls ``plt.show``).

Conventions (DESIGN.md): spectrograms with frequency upward, axes in Hz and
seconds, colour bars in dB or normalised units.  Every function draws on an
``Axes`` it is given, or returns a new ``Figure``; :func:`save_figure` writes it.

Letters: C channels, F frequency bins, T frames, r CMX factor.
Defined in notebook 01.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure
from matplotlib.patches import ConnectionPatch, Rectangle

from ..config import AudioConfig

SPEC_CMAP = "magma"  # perceptually uniform, dark = quiet


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().float().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def plot_spectrogram(ax: Axes, x_FT, cfg_audio: AudioConfig, title: str = "",
                     normalised: bool = True, colorbar: bool = True, vmin: float | None = None,
                     vmax: float | None = None):
    """Draw one spectrogram ``(F, T)`` with frequency upward, axes in Hz and seconds.

    Args:
        x_FT: ``(F, T)`` array/tensor; bin ``k`` is ``k * sr / n_fft`` Hz, frame ``m``
            starts at ``m * hop / sr`` s (as :func:`marslib.audio.magnitude_spectrogram`).
        cfg_audio: gives ``sample_rate``, ``n_fft``, ``hop_length`` (and the dB range).
        normalised: ``True`` if ``x_FT`` is a normalised log-magnitude in [-1, 1];
            ``False`` if it is a linear magnitude, then drawn in dB.
    Returns:
        The ``AxesImage`` (for a shared colour bar).
    """
    x = _numpy(x_FT)
    if x.ndim != 2:
        raise ValueError(f"plot_spectrogram expects an (F, T) array, got shape {x.shape}")
    f, t = x.shape
    sr, hop = cfg_audio.sample_rate, cfg_audio.hop_length
    if normalised:
        label, lo, hi = "normalised log-magnitude", -1.0, 1.0
    else:
        x = 20 * np.log10(np.maximum(x, 10 ** (cfg_audio.min_db / 20)))
        label, lo, hi = "magnitude (dB)", cfg_audio.min_db, cfg_audio.max_db
    extent = (0, t * hop / sr, 0, f * sr / cfg_audio.n_fft)  # pixel edges, in s and Hz
    im = ax.imshow(x, origin="lower", aspect="auto", extent=extent, cmap=SPEC_CMAP,
                   vmin=lo if vmin is None else vmin, vmax=hi if vmax is None else vmax,
                   interpolation="nearest")
    ax.set(xlabel="time (s)", ylabel="frequency (Hz)", title=title)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, label=label, pad=0.02)
    return im


def plot_waveform(ax: Axes, y, sample_rate: int, title: str = "", color: str = "C0"):
    """Draw a waveform ``(N,)`` against time in seconds."""
    y = _numpy(y).reshape(-1)
    ax.plot(np.arange(len(y)) / sample_rate, y, lw=0.6, color=color)
    ax.set(xlabel="time (s)", ylabel="amplitude", title=title, xlim=(0, len(y) / sample_rate))
    ax.grid(alpha=0.3)
    return ax


def chessboard_colors(r: int) -> np.ndarray:
    """``(r*r, 4)`` RGBA colours, one per CMX channel ``c = i*r + j``.

    Hue follows the frequency offset ``i``, lightness the time offset ``j``, so
    channels that share a row of the r x r cell look alike.
    """
    families = ["Blues", "Oranges", "Greens", "Purples", "Reds", "Greys"]
    if r > len(families):
        return plt.get_cmap("hsv")(np.linspace(0, 1, r * r, endpoint=False))
    shades = np.linspace(0.85, 0.4, r) if r > 1 else [0.6]
    return np.array([plt.get_cmap(families[i])(s) for i in range(r) for s in shades])


def plot_cmx_channels(x_CFT, r: int, title: str = "", normalised: bool = True,
                      panel_size: float = 2.2, fig: Figure | SubFigure | None = None) -> Figure:
    """Grid of the ``C = r^2`` CMX channels ``(C, F/r, T/r)``, one image each.

    Channel ``c = i*r + j`` holds bins ``i::r`` and frames ``j::r`` of the original
    spectrogram; its frame is coloured as in :func:`plot_chessboard`.  Axes are in
    channel pixels (a channel's row ``f`` is original bin ``f*r + i``).  Draws into
    ``fig`` (a figure or subfigure) if given, else into a new figure.
    """
    x = _numpy(x_CFT)
    if x.ndim != 3 or x.shape[0] != r * r:
        raise ValueError(f"plot_cmx_channels expects (r^2 = {r * r}, F/r, T/r), got {x.shape}")
    colors = chessboard_colors(r)
    lo, hi = (-1.0, 1.0) if normalised else (float(x.min()), float(x.max()))
    if fig is None:
        fig = plt.figure(figsize=(panel_size * r + 1.0, panel_size * r * 0.8), layout="constrained")
    axes = fig.subplots(r, r, squeeze=False, sharex=True, sharey=True)
    for c in range(r * r):
        i, j = divmod(c, r)
        ax = axes[r - 1 - i, j]  # frequency offset i upward, as in the spectrogram
        im = ax.imshow(x[c], origin="lower", aspect="auto", cmap=SPEC_CMAP, vmin=lo, vmax=hi,
                       interpolation="nearest")
        roomy = panel_size >= 1.5 and r <= 4  # room for (i, j) and tick labels
        ax.set_title(f"c={c}  (i={i}, j={j})" if roomy else f"c={c}", fontsize=9 if roomy else 7,
                     color=colors[c] * [0.7, 0.7, 0.7, 1], pad=2)
        for spine in ax.spines.values():
            spine.set(color=colors[c], linewidth=3 if roomy else 2)
        if not roomy:
            ax.set(xticks=[], yticks=[])
    fig.supxlabel("frame t of the channel (of T/r)", fontsize=10)
    fig.supylabel("bin f of the channel (of F/r)", fontsize=10)
    fig.colorbar(im, ax=axes, label="normalised log-magnitude" if normalised else "value",
                 shrink=0.8)
    fig.suptitle(title or f"CMX: {r * r} channels of shape {x.shape[1]} x {x.shape[2]}")
    return fig


def plot_chessboard(r: int, n_cells: int = 2) -> Figure:
    """The CMX pattern: which position of each ``r x r`` cell goes to which channel.

    Left: an ``(n_cells*r) x (n_cells*r)`` corner of the spectrogram (frequency
    upward), each value coloured by its channel ``c = i*r + j`` with
    ``i = bin mod r``, ``j = frame mod r``; thick lines mark the cells.  Right: the
    ``r^2`` channels laid out like the cell (``i`` upward, ``j`` rightward), each an
    ``n_cells x n_cells`` grid whose squares are labelled with the spectrogram
    position ``(bin, frame)`` they came from; arrows follow the first cell's
    first column (the colours carry the rest).
    """
    colors = chessboard_colors(r)
    n = n_cells * r
    ink = lambda c: "black" if colors[c][:3].mean() > 0.5 else "white"  # readable text
    fig = plt.figure(figsize=(4.0 + 1.7 * r, max(4.2, 1.1 * n)), layout="constrained")
    fig.suptitle(f"CMX, r = {r}: value at (bin f, frame t) → channel c = (f mod r)·r + (t mod r), "
                 f"pixel (⌊f/r⌋, ⌊t/r⌋)", fontsize=11)
    left, right = fig.subfigures(1, 2, width_ratios=[1, 1.1], wspace=0.12)
    ax = left.subplots()
    for f in range(n):
        for t in range(n):
            c = (f % r) * r + (t % r)
            ax.add_patch(Rectangle((t, f), 1, 1, facecolor=colors[c], edgecolor="white", lw=1))
            ax.text(t + 0.5, f + 0.5, str(c), ha="center", va="center", fontsize=10, color=ink(c))
    for k in range(0, n + 1, r):  # cell boundaries
        ax.axhline(k, color="black", lw=2.5)
        ax.axvline(k, color="black", lw=2.5)
    ax.add_patch(Rectangle((0.07, 0.07), r - 0.14, r - 0.14, fill=False, edgecolor="crimson",
                           lw=3, ls="--", zorder=5, label=f"one {r} x {r} cell"))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    ax.set(xlim=(0, n), ylim=(0, n), aspect="equal", xlabel="frame t (time) →",
           ylabel="frequency bin f →", title=f"spectrogram corner: {n_cells}x{n_cells} cells of {r}x{r}")
    ax.set_xticks(np.arange(n) + 0.5, [str(t) for t in range(n)])
    ax.set_yticks(np.arange(n) + 0.5, [str(f) for f in range(n)])
    ax.tick_params(length=0)

    chans = right.subplots(r, r, squeeze=False)
    right.suptitle(f"{r * r} channels of (F/r) x (T/r); labels: original (f, t)", fontsize=10)
    for c in range(r * r):
        i, j = divmod(c, r)
        cax = chans[r - 1 - i, j]  # i upward, as in the spectrogram
        for a in range(n_cells):
            for b in range(n_cells):
                cax.add_patch(Rectangle((b, a), 1, 1, facecolor=colors[c], edgecolor="white", lw=1))
                cax.text(b + 0.5, a + 0.5, f"{a * r + i},{b * r + j}", ha="center", va="center",
                         fontsize=max(6, 10 - r), color=ink(c))
        cax.set(xlim=(0, n_cells), ylim=(0, n_cells), aspect="equal", xticks=[], yticks=[])
        cax.set_title(f"c = {c}", fontsize=9)
        for spine in cax.spines.values():
            spine.set(color=colors[c], linewidth=2)
        if j == 0:  # follow the first column of cell (0, 0) to pixel (0, 0) of its channel
            fig.add_artist(ConnectionPatch(xyA=(0.75, i + 0.5), coordsA=ax.transData,
                                           xyB=(0.0, 0.5), coordsB=cax.transData, arrowstyle="-|>",
                                           color=colors[c] * [0.7, 0.7, 0.7, 1], lw=1.5))
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Save ``fig`` as a PNG (tight bounding box) and return the path; the figure stays open."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


# ---------------------------------------------------------------------------
# Notebook 03: next-scale autoregression (attention masks, training curves)
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# Notebook 02: the multi-scale tokenizer
# ---------------------------------------------------------------------------

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


class FigureSaver:
    """``save(fig, name)`` writes ``<folder>/<name>.png`` and remembers the file name.

    Notebooks list ``save.names`` in their ``results.json`` so tests can check
    every promised figure exists.
    """

    def __init__(self, folder: str | Path):
        self.folder, self.names = Path(folder), []

    def __call__(self, fig: Figure, name: str) -> Path:
        path = save_figure(fig, self.folder / f"{name}.png")
        self.names.append(path.name)
        return path


# ---------------------------------------------------------------------------
# Notebook 04: evaluation
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# Notebook 04 and the report: the evaluation at a glance
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# Notebooks 02 and 03: does the timbre survive? (marslib.study)
# ---------------------------------------------------------------------------

def plot_family_grid(real_FT, generated_FT, families, cfg_audio: AudioConfig, real_titles=None,
                     generated_titles=None, title: str = "", max_hz: float | None = None) -> Figure:
    """One row per family: a real note's spectrogram on the left, a generated one on the right.

    Args:
        real_FT, generated_FT: sequences of ``(F, T)`` normalised log-magnitudes, one per family
            (a ``None`` real entry draws an empty panel saying so).
        families: the row names.
        real_titles, generated_titles: a title per panel (default: "real" / "generated").
        max_hz: top of the frequency axis (default: Nyquist).
    Returns:
        The figure (``2 * len(families)`` panels, one shared colour bar).
    """
    n = len(families)
    if not n or len(real_FT) != n or len(generated_FT) != n:
        raise ValueError(f"plot_family_grid needs one real and one generated spectrogram per family: "
                         f"{len(real_FT)} real, {len(generated_FT)} generated, {n} families")
    fig, axes = plt.subplots(n, 2, figsize=(9, 1.9 * n + 0.8), layout="constrained", sharex=True, sharey=True,
                             squeeze=False)
    im = None
    for i, name in enumerate(families):
        for j, (spec, titles, default) in enumerate(((real_FT[i], real_titles, "real"),
                                                     (generated_FT[i], generated_titles, "generated"))):
            ax = axes[i, j]
            label = titles[i] if titles is not None else default
            if spec is None:
                ax.text(0.5, 0.5, "no real note of this family", ha="center", va="center", transform=ax.transAxes)
                ax.set(title=label)
            else:
                im = plot_spectrogram(ax, spec, cfg_audio, title=label, colorbar=False)
            ax.set(xlabel="time (s)" if i == n - 1 else "", ylabel=f"{name}\nfrequency (Hz)" if j == 0 else "")
            if max_hz is not None:
                ax.set_ylim(0, max_hz)
    if im is not None:
        fig.colorbar(im, ax=axes, label="normalised log-magnitude", shrink=0.6)
    if title:
        fig.suptitle(title)
    return fig


def plot_timbre_stages(result: dict, title: str = "") -> Figure:
    """Family accuracy of :func:`marslib.study.timbre_stages`'s stages: the tokenizer's scales 1..k
    against the tokens they use (line), the other stages as horizontal references."""
    rows = {r["stage"]: r for r in result["rows"]}
    tokens = np.cumsum([h * w for h, w in result["scales"]])
    K = len(tokens)
    fig, ax = plt.subplots(figsize=(7.5, 4), layout="constrained")
    acc = [rows[f"scales_{k}"]["family_acc"] for k in range(1, K + 1)]
    ax.plot(tokens, acc, "o-", color="C0", label="tokenizer, scales 1..k")
    for k, (t, a) in enumerate(zip(tokens, acc)):
        ax.annotate(f"k={k + 1}", (t, a), textcoords="offset points", xytext=(4, 5), fontsize=8)
    refs = (("real", "C2", "-"), ("griffin_lim", "C2", "--"), ("continuous", "C1", "-."), ("mars", "C3", ":"))
    for stage, color, style in refs:
        if stage in rows:
            ax.axhline(rows[stage]["family_acc"], color=color, ls=style, lw=1.5,
                       label=f"{rows[stage]['label']}: {rows[stage]['family_acc']:.0%}")
    chance = 1 / max(1, len(result["families"]))
    ax.axhline(chance, color="grey", lw=1, ls=(0, (1, 3)), label=f"chance (1 of {len(result['families'])})")
    ax.set(xscale="log", xlabel="tokens per clip (scales 1..k)", ylabel="classifier family accuracy",
           ylim=(-0.02, 1.02), title=title or f"does the family survive? {result['n_test']} held-out clips")
    ax.set_xticks(tokens, [str(t) for t in tokens], minor=False)
    ax.set_xticks([], minor=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig
