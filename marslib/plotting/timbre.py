"""Does the timbre survive? (``marslib.study``; notebooks 02 and 03).

Real against generated spectrograms family by family (notebook 03), and the
classifier's family accuracy stage by stage through the tokenizer (notebook 02).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ..config import AudioConfig
from .spectrogram import plot_spectrogram


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
