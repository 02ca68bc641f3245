"""Classifier-free guidance (CFG) explorer (notebook 03): one note regenerated as the guidance scale moves."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure

from ..plotting import plot_spectrogram
from .explorer import _Explorer, _png_bytes


@dataclass
class CFGView:
    """What one :meth:`CFGExplorer.update` generated."""

    cfg_scale: float
    pitch: int                                # MIDI number asked for
    family: str                               # family name asked for (NSynth's or a dataset's class)
    indices: list                             # K token maps (1, h_k, w_k)
    spectrogram: np.ndarray | None = None     # (F, T) normalised log-magnitude, frequency = row
    waveform: np.ndarray | None = None        # (N,) Griffin-Lim
    pitch_estimate: float | None = None       # pYIN median f0 (MIDI), NaN if unvoiced; None if not asked
    fig: Figure | None = None


class CFGExplorer(_Explorer):
    """Slider for the guidance scale, dropdowns for pitch and family; regenerates one note.

    Build it with :func:`cfg_explorer`.  Every update samples with the same seed,
    so only the guidance (or the label) changes what you see and hear.
    ``update(cfg_scale=..., pitch=..., family=...)`` returns a :class:`CFGView`.
    """

    def __init__(self, model, tokenizer, pitches, families, cfg_scale: float, pitch: int, family: str,
                 seed: int, temperature: float, top_k: int, top_p: float, max_cfg: float,
                 griffin_lim_iters: int | None, estimate_pitch: bool):
        import ipywidgets as W

        self.model, self.tokenizer, self.cfg = model, tokenizer, tokenizer.cfg
        self.families = tokenizer.cfg.data.family_vocabulary  # what the labels index (NSynth's by default)
        unknown = [f for f in families if f not in self.families]
        if unknown:
            raise ValueError(f"unknown families {unknown}; choose from {self.families}")
        self.seed, self.temperature, self.top_k, self.top_p = seed, temperature, top_k, top_p
        self.griffin_lim_iters, self.estimate_pitch = griffin_lim_iters, estimate_pitch
        self.scale = W.FloatSlider(value=cfg_scale, min=0.0, max=max(max_cfg, cfg_scale), step=0.25,
                                   description="CFG scale", continuous_update=False)
        self.pitch = W.Dropdown(options=[int(p) for p in pitches], value=int(pitch), description="pitch")
        self.family = W.Dropdown(options=list(families), value=family, description="family")
        self._build([self.scale, self.pitch, self.family])

    def update(self, cfg_scale: float | None = None, pitch: int | None = None,
               family: str | None = None) -> CFGView:
        """Generate for the given settings (default: the controls' values) and redraw."""
        with self._quietly():  # keep the controls in step when called from code
            if cfg_scale is not None:
                self.scale.max = max(self.scale.max, float(cfg_scale))
                self.scale.value = float(cfg_scale)
            if pitch is not None and pitch in self.pitch.options:
                self.pitch.value = int(pitch)
            if family is not None and family in self.family.options:
                self.family.value = family
        cfg_scale = float(self.scale.value if cfg_scale is None else cfg_scale)
        pitch = int(self.pitch.value if pitch is None else pitch)
        family = self.family.value if family is None else family
        self.view = self._compute(cfg_scale, pitch, family)
        self._show(self.view)
        return self.view

    def _compute(self, cfg_scale: float, pitch: int, family: str) -> CFGView:
        from ..autoregressor import sample_tokens, tokens_to_audio
        from ..autoregressor.training import parse_family
        from ..metrics import estimate_pitch

        fam = parse_family(family, self.families)
        indices = sample_tokens(self.model, self.tokenizer, torch.tensor([pitch]), torch.tensor([fam]),
                                cfg_scale=cfg_scale, temperature=self.temperature, top_k=self.top_k,
                                top_p=self.top_p, seed=self.seed, guidance=self.cfg.ar.guidance)
        spec_B1FT, wave_BN = tokens_to_audio(self.tokenizer, indices, n_iter=self.griffin_lim_iters,
                                             seed=self.seed)
        view = CFGView(cfg_scale, pitch, family, indices, spec_B1FT[0, 0].cpu().numpy(),
                       wave_BN[0].cpu().numpy())
        if self.estimate_pitch:
            view.pitch_estimate = estimate_pitch(view.waveform, self.cfg.audio.sample_rate,
                                                 expected_midi=pitch)
        view.fig = self._draw(view)
        return view

    def _draw(self, view: CFGView) -> Figure:
        fig = Figure(figsize=(7, 3.4), layout="constrained")
        ax = fig.subplots()
        plot_spectrogram(ax, view.spectrogram, self.cfg.audio,
                         title=f"{view.family}, MIDI {view.pitch}, CFG scale {view.cfg_scale:g} "
                               f"(seed {self.seed})")
        f0 = 440.0 * 2 ** ((view.pitch - 69) / 12)
        ax.axhline(f0, color="cyan", ls=":", lw=1, label=f"requested f0 {f0:.0f} Hz")
        ax.legend(loc="upper right", fontsize=8)
        return fig

    def _show(self, view: CFGView) -> None:
        from IPython.display import Audio

        est = view.pitch_estimate
        pitch_text = ("" if est is None else
                      "; pYIN: unvoiced (no pitch found)" if not np.isfinite(est) else
                      f"; pYIN: MIDI {est:.1f} ({100 * (est - view.pitch):+.0f} cents)")
        self.info.value = (f"guidance (1 + t)·cond − t·uncond, t ramping 0 → {view.cfg_scale:g} over "
                           f"the scales{pitch_text}")
        self.image.value = _png_bytes(view.fig)
        self.player.value = Audio(view.waveform, rate=self.cfg.audio.sample_rate)._repr_html_()


def cfg_explorer(model, tokenizer, pitches, families, cfg_scale: float = 2.0, pitch: int | None = None,
                 family: str | None = None, seed: int = 0, temperature: float = 1.0, top_k: int = 0,
                 top_p: float = 0.0, max_cfg: float = 8.0, griffin_lim_iters: int | None = None,
                 estimate_pitch: bool = True) -> CFGExplorer:
    """Interactive classifier-free guidance: regenerate one note as the guidance scale moves.

    Args:
        model, tokenizer: a trained ``NextScaleTransformer`` and its ``Tokenizer``.
        pitches: MIDI numbers offered in the pitch dropdown; families: family names the model
            knows (``tokenizer.cfg.data.family_vocabulary``: NSynth's, or an imported dataset's classes).
        cfg_scale, pitch, family: the starting settings (defaults: the first pitch/family).
        seed: sampling and Griffin-Lim seed, fixed so only the settings change the result.
        griffin_lim_iters: ``None`` = the tokenizer config's.
        estimate_pitch: also run pYIN on each note and show its pitch.

    Display ``.widget``; call ``.update(cfg_scale=..., pitch=..., family=...)`` from code
    to get a :class:`CFGView` (spectrogram ``(F, T)``, waveform ``(N,)``, figure).
    Defined in notebook 03.
    """
    pitches, families = list(pitches), list(families)
    if not pitches or not families:
        raise ValueError("cfg_explorer needs at least one pitch and one family")
    return CFGExplorer(model, tokenizer, pitches, families, cfg_scale,
                       pitches[0] if pitch is None else pitch, families[0] if family is None else family,
                       seed, temperature, top_k, top_p, max_cfg, griffin_lim_iters, estimate_pitch)
