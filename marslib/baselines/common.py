"""What the comparison systems share: pitch in Hz, loudness, the multi-scale spectral loss, crops.

Shapes: waveforms ``(B, S)``; frame-rate controls ``(B, frames, ...)`` at one frame per
``audio.hop_length`` samples (250 frames/s at 16 kHz and hop 64, DDSP's own rate).
"""

from __future__ import annotations

import math

import librosa
import numpy as np
import torch
import torch.nn.functional as F


def midi_to_hz(midi: torch.Tensor) -> torch.Tensor:
    """MIDI note numbers -> frequency in Hz (A4 = MIDI 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((midi.float() - 69.0) / 12.0)


def loudness(waves_BS: torch.Tensor, sample_rate: int, hop_length: int, n_fft: int = 1024) -> torch.Tensor:
    """A-weighted loudness in dB, ``(B, S) -> (B, S // hop_length)`` frames (DDSP's loudness feature).

    Power spectrum per frame, weighted by the A-curve (what the ear hears as loud), averaged
    over frequency, in dB with a -100 dB floor.  Frames are centred, one per ``hop_length``.
    """
    window = torch.hann_window(n_fft, device=waves_BS.device)
    spec = torch.stft(waves_BS.float(), n_fft, hop_length, window=window, center=True, return_complex=True)
    freqs = librosa.fft_frequencies(sr=sample_rate, n_fft=n_fft)
    with np.errstate(divide="ignore"):  # 0 Hz: -inf, floored at min_db
        a_db = librosa.A_weighting(freqs, min_db=-100.0)
    a_weight = torch.as_tensor(a_db, dtype=torch.float32, device=waves_BS.device)  # (F,) dB
    power_db = 10 * torch.log10(spec.abs().pow(2).clamp_min(1e-10))      # (B, F, frames)
    db = (power_db + a_weight[:, None]).clamp_min(-100.0)
    return db.mean(1)[:, : waves_BS.shape[-1] // hop_length]


def upsample(frames_BTC: torch.Tensor, n_samples: int) -> torch.Tensor:
    """Frame-rate controls ``(B, T, C)`` -> sample rate ``(B, n_samples, C)``, linearly interpolated."""
    x = F.interpolate(frames_BTC.transpose(1, 2), size=n_samples, mode="linear", align_corners=True)
    return x.transpose(1, 2)


def multiscale_spectral_loss(x_BS: torch.Tensor, y_BS: torch.Tensor,
                             ffts: tuple[int, ...] = (2048, 1024, 512, 256, 128, 64),
                             log_weight: float = 1.0) -> torch.Tensor:
    """DDSP's training loss: L1 between magnitudes and log-magnitudes, at several FFT sizes.

    Large FFTs judge the harmonics (frequency detail), small ones the attack (time
    detail); together they need no phase, which lets a synthesiser match a recording
    it is not phase-aligned with.  Windows overlap by 75 %.
    """
    loss = x_BS.new_zeros(())
    for n_fft in ffts:
        if n_fft > x_BS.shape[-1]:
            continue
        window = torch.hann_window(n_fft, device=x_BS.device)
        spec = lambda y: torch.stft(y, n_fft, n_fft // 4, window=window, return_complex=True).abs()  # noqa: E731
        mx, my = spec(x_BS), spec(y_BS)
        loss = loss + (mx - my).abs().mean()
        loss = loss + log_weight * (torch.log(mx + 1e-7) - torch.log(my + 1e-7)).abs().mean()
    return loss


def random_crop(waves_BS: torch.Tensor, length: int, multiple: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """One random window of ``length`` samples per clip, starting at a multiple of ``multiple``.

    Draws from the global torch RNG, which the training loop saves in every checkpoint,
    so a resumed run crops exactly as the uninterrupted one.  Returns ``(crops (B, length),
    starts (B,))``.
    """
    b, s = waves_BS.shape
    slots = (s - length) // multiple + 1
    if slots < 1:
        raise ValueError(f"cannot crop {length} samples from clips of {s}")
    starts = torch.randint(0, slots, (b,)) * multiple
    idx = starts[:, None] + torch.arange(length)[None]
    return waves_BS.gather(1, idx.to(waves_BS.device)), starts


def mu_law_encode(x: torch.Tensor, classes: int = 256) -> torch.Tensor:
    """Waveform in [-1, 1] -> integer classes ``0 .. classes-1`` (WaveNet's 8-bit mu-law)."""
    mu = classes - 1
    y = torch.sign(x) * torch.log1p(mu * x.clamp(-1, 1).abs()) / math.log1p(mu)
    return ((y + 1) / 2 * mu + 0.5).long().clamp(0, mu)


def mu_law_decode(q: torch.Tensor, classes: int = 256) -> torch.Tensor:
    """Inverse of :func:`mu_law_encode`: classes -> waveform in [-1, 1]."""
    mu = classes - 1
    y = 2 * q.float() / mu - 1
    return torch.sign(y) * ((1 + mu) ** y.abs() - 1) / mu


def seeded_noise(shape: tuple[int, ...], seed: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Standard normal noise from its own generator: sampling never touches the global RNG."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.randn(shape, generator=g).to(device)


__all__ = ["loudness", "midi_to_hz", "mu_law_decode", "mu_law_encode", "multiscale_spectral_loss", "random_crop",
           "seeded_noise", "upsample"]
