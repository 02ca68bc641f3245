"""ipywidgets explorers for the notebooks (sliders, figures, audio players).

Each explorer is an object with a ``.widget`` to display and an ``.update(...)``
method that the sliders call and that tests (or a notebook cell) can call
directly; ``update`` returns the numbers and the figure it drew, so an explorer
is checked like any other function.  Nothing here needs a browser.

Figures go into an ``Image`` widget (PNG bytes) and audio into an ``HTML`` widget,
not into ``Output`` widgets: headless runners (nbclient/papermill) mimic
``Output`` widgets by sending messages back to the kernel, which can hang
a run (jupyter/nbclient#312), and plain widget values also work outside a kernel.

Letters: C channels, F frequency bins, T frames, r CMX factor.
Defined in notebook 01.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure

from .. import audio, cmx
from ..config import AudioConfig
from ..plotting import plot_cmx_channels, plot_spectrogram


@dataclass
class ExplorerView:
    """What one :meth:`STFTCMXExplorer.update` computed (``None`` where it could not)."""

    n_fft: int
    hop: int
    r: int
    message: str                                   # "" if all went well, else why not
    spec_shape: tuple[int, int] | None = None      # (F, T)
    cmx_shape: tuple[int, int, int] | None = None  # (C, F/r, T/r)
    spectral_convergence: float | None = None      # of the Griffin-Lim reconstruction
    waveform: np.ndarray | None = None             # (N,) Griffin-Lim reconstruction
    fig: Figure | None = None


def _png_bytes(fig: Figure, dpi: int = 80) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


class _Explorer:
    """What every explorer shares: controls on top, then text, an <audio> player and a figure.

    Moving a control calls ``update()``.  ``update`` also moves the controls itself
    when called from code; it does so inside :meth:`_quietly`, so that those moves
    do not trigger a second update.
    """

    def _build(self, controls: list, *rows) -> None:
        """Lay out ``controls`` (one row), extra ``rows``, the info text, player and image; draw once."""
        import ipywidgets as W

        self.info, self.image, self.player = W.HTML(), W.Image(format="png"), W.HTML()  # player: <audio>
        self.widget = W.VBox([W.HBox(controls), *rows, self.info, self.player, self.image])
        self._busy = False
        for control in controls:
            control.observe(self._on_change, names="value")
        self.view = self.update()

    def _on_change(self, _change) -> None:
        if not self._busy:
            self.update()

    @contextlib.contextmanager
    def _quietly(self):
        self._busy = True
        try:
            yield
        finally:
            self._busy = False


class STFTCMXExplorer(_Explorer):
    """Sliders for ``n_fft``, ``hop`` and CMX ``r``; shows spectrogram, CMX channels and audio.

    Build it with :func:`stft_cmx_explorer`.  ``widget`` is the ipywidgets box;
    ``update(n_fft=..., hop=..., r=...)`` redraws and returns an :class:`ExplorerView`.
    """

    def __init__(self, y: np.ndarray, sample_rate: int, n_ffts, hops, rs, n_fft: int, hop: int,
                 r: int, griffin_lim_iters: int, base: AudioConfig | None):
        import ipywidgets as W

        self.y = np.asarray(y, dtype=np.float32).reshape(-1)
        audio.validate_waveform(self.y, "explorer waveform")
        self.base = dataclasses.replace(base or AudioConfig(), sample_rate=sample_rate)
        self.griffin_lim_iters = griffin_lim_iters
        self.n_fft = W.SelectionSlider(options=list(n_ffts), value=n_fft, description="n_fft")
        self.hop = W.SelectionSlider(options=list(hops), value=hop, description="hop")
        self.r = W.SelectionSlider(options=list(rs), value=r, description="CMX r")
        self.message = W.HTML()
        self._build([self.n_fft, self.hop, self.r], self.message)

    def update(self, n_fft: int | None = None, hop: int | None = None,
               r: int | None = None) -> ExplorerView:
        """Recompute for the given settings (default: the sliders' values) and redraw.

        Invalid combinations (``hop >= n_fft``, a spectrogram CMX cannot fold by
        ``r``) are reported in ``view.message`` and in the widget, never raised.
        """
        with self._quietly():  # keep the sliders in step when called from code (values outside the options stay off-slider)
            for slider, value in ((self.n_fft, n_fft), (self.hop, hop), (self.r, r)):
                if value is not None and value in slider.options:
                    slider.value = value
        n_fft = n_fft if n_fft is not None else self.n_fft.value
        hop = hop if hop is not None else self.hop.value
        r = r if r is not None else self.r.value
        self.view = self._compute(int(n_fft), int(hop), int(r))
        self._show(self.view)
        return self.view

    def _compute(self, n_fft: int, hop: int, r: int) -> ExplorerView:
        view = ExplorerView(n_fft, hop, r, message="")
        if not 0 < hop < n_fft:
            view.message = (f"hop ({hop}) must be smaller than n_fft ({n_fft}): Hann-windowed frames "
                            f"must overlap for the STFT (and Griffin-Lim) to be invertible. "
                            f"Lower hop or raise n_fft.")
            return view
        n_frames = len(self.y) // hop
        if n_frames < 2:
            view.message = f"the clip ({len(self.y)} samples) is too short for hop {hop}"
            return view
        cfg = dataclasses.replace(self.base, n_fft=n_fft, hop_length=hop, n_frames=n_frames)
        mag_1FT = audio.magnitude_spectrogram(self.y, cfg)
        x_1FT = audio.normalise(mag_1FT, cfg)
        view.spec_shape = tuple(x_1FT.shape[1:])
        try:
            x_1CFT = cmx.fold(x_1FT[:, None], r)  # (1, r^2, F/r, T/r)
            view.cmx_shape = tuple(x_1CFT.shape[1:])
        except cmx.CMXError as err:
            view.message = f"CMX: {err}"
            x_1CFT = None
        y_hat = audio.spectrogram_to_waveform(mag_1FT, cfg, n_iter=self.griffin_lim_iters)
        mag_hat = audio.magnitude_spectrogram(y_hat, cfg)
        view.spectral_convergence = float(torch.linalg.norm(mag_1FT - mag_hat) / torch.linalg.norm(mag_1FT))
        view.waveform = y_hat[0].numpy()
        view.fig = self._draw(x_1FT[0], None if x_1CFT is None else x_1CFT[0], cfg, r)
        return view

    def _draw(self, x_FT: torch.Tensor, x_CFT: torch.Tensor | None, cfg: AudioConfig, r: int) -> Figure:
        # A bare Figure (not pyplot): redraws from slider moves do not pile up in pyplot.
        fig = Figure(figsize=(12, 4.2), layout="constrained")
        left, right = fig.subfigures(1, 2, width_ratios=[1.1, 1])
        f, t = x_FT.shape
        plot_spectrogram(left.subplots(), x_FT, cfg,
                         title=f"n_fft {cfg.n_fft}, hop {cfg.hop_length}: F x T = {f} x {t}\n"
                               f"Δf = {cfg.sample_rate / cfg.n_fft:.1f} Hz, "
                               f"Δt = {1000 * cfg.hop_length / cfg.sample_rate:.1f} ms")
        if x_CFT is None:
            right.text(0.5, 0.5, f"CMX r = {r} cannot fold {f} x {t}", ha="center", va="center")
        else:
            plot_cmx_channels(x_CFT, r, fig=right, panel_size=1.0,
                              title=f"CMX r = {r}: {r * r} x {f // r} x {t // r}")
        return fig

    def _show(self, view: ExplorerView) -> None:
        from IPython.display import Audio

        color = "#b00020" if view.message else "#1b5e20"
        self.message.value = f"<span style='color:{color}'>{view.message or 'OK'}</span>"
        self.info.value = ("" if view.spec_shape is None else
                           f"spectrogram (F, T) = {view.spec_shape}; CMX input (C, F/r, T/r) = "
                           f"{view.cmx_shape}; Griffin-Lim ({self.griffin_lim_iters} iters) spectral "
                           f"convergence = {view.spectral_convergence:.3f}")
        self.image.value = b"" if view.fig is None else _png_bytes(view.fig)
        self.player.value = ("" if view.waveform is None else
                             "Griffin-Lim reconstruction: "
                             + Audio(view.waveform, rate=self.base.sample_rate)._repr_html_())


def stft_cmx_explorer(y, sample_rate: int, n_ffts=(64, 128, 256, 512, 1024),
                      hops=(16, 32, 64, 128, 256, 512), rs=(1, 2, 3, 4, 8), n_fft: int = 256,
                      hop: int = 64, r: int = 2, griffin_lim_iters: int = 32,
                      base: AudioConfig | None = None) -> STFTCMXExplorer:
    """Interactive STFT + CMX explorer for a waveform ``y`` ``(N,)`` at ``sample_rate``.

    Moving a slider recomputes the normalised log-magnitude ``(F, T)`` with
    ``F = n_fft/2`` and ``T = N // hop``, its CMX fold ``(r^2, F/r, T/r)`` and a
    Griffin-Lim reconstruction to listen to.  ``base`` supplies the dB range and
    Griffin-Lim momentum (default :class:`AudioConfig`).  Display ``.widget``; call
    ``.update(n_fft=..., hop=..., r=...)`` from code to get an :class:`ExplorerView`.
    """
    return STFTCMXExplorer(y, sample_rate, n_ffts, hops, rs, n_fft, hop, r, griffin_lim_iters, base)


# ---------------------------------------------------------------------------
# Notebook 03: classifier-free guidance explorer
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# Notebook 02: scrub through the scales of a tokenized clip
# ---------------------------------------------------------------------------

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
