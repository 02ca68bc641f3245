"""Sliders for the STFT's ``n_fft`` and ``hop`` and the CMX factor ``r`` (notebook 01).

Letters: C channels, F frequency bins, T frames, r CMX factor.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure

from .. import audio, cmx
from ..config import AudioConfig
from ..plotting import plot_cmx_channels, plot_spectrogram
from .explorer import _Explorer, _png_bytes


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
