"""Spectrograms, waveforms and the CMX fold (notebook 01).

Letters: C channels, F frequency bins, T frames, r CMX factor.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure
from matplotlib.patches import ConnectionPatch, Rectangle

from ..config import AudioConfig
from .common import SPEC_CMAP, _numpy


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
