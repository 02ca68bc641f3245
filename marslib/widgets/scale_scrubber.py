"""Scrub through the scales of a tokenized clip (notebook 02): rebuilt from its coarsest k token maps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure

from .. import audio, cmx
from ..plotting import plot_spectrogram
from .explorer import _Explorer, _png_bytes


@dataclass
class ScaleScrubView:
    """What one :meth:`ScaleScrubber.update` computed."""

    k: int                    # scales used, 1..K
    tokens: int               # tokens of scales 1..k: sum of h_i * w_i
    lsd: float                # log-spectral distance (dB) to the tokenizer's input
    sc: float                 # spectral convergence to the tokenizer's input
    spec_FT: np.ndarray       # (F, T) partial reconstruction, normalised log-magnitude
    waveform: np.ndarray      # (N,) its Griffin-Lim audio
    fig: Figure


class ScaleScrubber(_Explorer):
    """A slider over k = 1..K: the clip rebuilt from its first k token maps, seen and heard.

    Build it with :func:`scale_scrubber`.  ``widget`` is the ipywidgets box;
    ``update(k)`` redraws and returns a :class:`ScaleScrubView`.
    """

    def __init__(self, model, x_1Cft: torch.Tensor, griffin_lim_iters: int | None, seed: int, title: str):
        import ipywidgets as W

        model.check_input(x_1Cft)
        if x_1Cft.shape[0] != 1:
            raise ValueError(f"scale_scrubber takes one clip (1, C, F/r, T/r), got {tuple(x_1Cft.shape)}")
        self.model, self.cfg = model, model.cfg
        self.griffin_lim_iters, self.seed, self.title = griffin_lim_iters, seed, title
        self.scales = [tuple(s) for s in self.cfg.tokenizer.scales]
        self.K = len(self.scales)
        with torch.no_grad():
            self.indices = model.encode(x_1Cft)                      # K x (1, h_k, w_k)
        self.original = cmx.from_model_input(x_1Cft, self.cfg.cmx, self.cfg.spec_shape)  # (1, 1, F, T)
        self._cache: dict[int, ScaleScrubView] = {}
        self.slider = W.IntSlider(min=1, max=self.K, value=self.K, description="scales k",
                                  continuous_update=False)
        self._build([self.slider])

    def update(self, k: int | None = None) -> ScaleScrubView:
        """Show the reconstruction from scales ``1..k`` (default: the slider's value)."""
        if k is None:
            k = self.slider.value
        k = int(k)
        if not 1 <= k <= self.K:
            raise ValueError(f"k must be in 1..{self.K} (the number of scales), got {k}")
        with self._quietly():
            self.slider.value = k
        if k not in self._cache:
            self._cache[k] = self._compute(k)
        self.view = self._cache[k]
        self._show(self.view)
        return self.view

    def _compute(self, k: int) -> ScaleScrubView:
        from ..metrics import log_spectral_distance, spectral_convergence

        a = self.cfg.audio
        with torch.no_grad():
            x_hat = self.model.partial_decode(self.indices, upto=k).clamp(-1, 1)   # (1, C, F/r, T/r)
        spec = cmx.from_model_input(x_hat, self.cfg.cmx, self.cfg.spec_shape)     # (1, 1, F, T)
        ref_mag, est_mag = audio.denormalise(self.original, a), audio.denormalise(spec, a)
        wave = audio.input_to_waveform(spec, a, n_iter=self.griffin_lim_iters, seed=self.seed)[0]
        tokens = sum(h * w for h, w in self.scales[:k])
        view = ScaleScrubView(k, tokens, float(log_spectral_distance(ref_mag, est_mag)[0]),
                              float(spectral_convergence(ref_mag, est_mag)[0]), spec[0, 0].numpy(),
                              wave.numpy(), None)
        view.fig = self._draw(view)
        return view

    def _draw(self, view: ScaleScrubView) -> Figure:
        fig = Figure(figsize=(11, 3.4), layout="constrained")
        ax0, ax1 = fig.subplots(1, 2, sharey=True)
        h, w = self.scales[view.k - 1]
        plot_spectrogram(ax0, self.original[0, 0], self.cfg.audio, colorbar=False,
                         title=self.title or "tokenizer input")
        plot_spectrogram(ax1, view.spec_FT, self.cfg.audio,
                         title=f"scales 1..{view.k} (finest {h} x {w}): {view.tokens} tokens\n"
                               f"LSD {view.lsd:.1f} dB, SC {view.sc:.3f}")
        return fig

    def _show(self, view: ScaleScrubView) -> None:
        from IPython.display import Audio

        total = sum(h * w for h, w in self.scales)
        self.info.value = (f"scales 1..{view.k} of {self.K}: {view.tokens} of {total} tokens; "
                           f"log-spectral distance {view.lsd:.2f} dB, spectral convergence {view.sc:.3f}")
        self.image.value = _png_bytes(view.fig)
        self.player.value = (f"Griffin-Lim of scales 1..{view.k}: "
                             + Audio(view.waveform, rate=self.cfg.audio.sample_rate)._repr_html_())


def scale_scrubber(model, x_1Cft: torch.Tensor, griffin_lim_iters: int | None = None, seed: int = 0,
                   title: str = "") -> ScaleScrubber:
    """Interactive partial decoding: one clip rebuilt from its coarsest ``k`` token maps.

    Args:
        model: a trained :class:`marslib.tokenizer.Tokenizer` (its ``cfg`` gives the sizes).
        x_1Cft: one clip as the tokenizer's input ``(1, C, F/r, T/r)``.
        griffin_lim_iters: phase-recovery iterations (default: the config's).
        seed: Griffin-Lim's initial phase.

    Display ``.widget``; ``.update(k)`` returns a :class:`ScaleScrubView` (figure,
    spectrogram, audio, LSD/SC against the input), cached per ``k``.  Defined in notebook 02.
    """
    return ScaleScrubber(model, x_1Cft, griffin_lim_iters, seed, title)
