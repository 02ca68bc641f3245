"""Spectral distances between a reference and an estimate.

All take tensors of the same shape ``(B, ..., F, T)`` and return one float per
batch item as a ``(B,)`` tensor, so callers can average or report spread.
"""

from __future__ import annotations

import torch

from ..audio import stft


def _check_pair(ref: torch.Tensor, est: torch.Tensor, name: str) -> None:
    if ref.shape != est.shape:
        raise ValueError(f"{name}: reference {tuple(ref.shape)} and estimate {tuple(est.shape)} differ")
    if ref.ndim < 2:
        raise ValueError(f"{name}: expected a batch (B, ...), got shape {tuple(ref.shape)}")
    if not (torch.isfinite(ref).all() and torch.isfinite(est).all()):
        raise ValueError(f"{name}: inputs contain NaN or Inf")


def mse(ref: torch.Tensor, est: torch.Tensor) -> torch.Tensor:
    """Mean squared error per item (the paper reports it on normalised log-magnitude)."""
    _check_pair(ref, est, "mse")
    return (ref - est).pow(2).flatten(1).mean(1)


def mae(ref: torch.Tensor, est: torch.Tensor) -> torch.Tensor:
    """Mean absolute error per item."""
    _check_pair(ref, est, "mae")
    return (ref - est).abs().flatten(1).mean(1)


def spectral_convergence(ref_mag: torch.Tensor, est_mag: torch.Tensor) -> torch.Tensor:
    """``||S - S_hat||_F / ||S||_F`` on linear magnitudes (0 = identical)."""
    _check_pair(ref_mag, est_mag, "spectral_convergence")
    num = (ref_mag - est_mag).flatten(1).norm(dim=1)
    den = ref_mag.flatten(1).norm(dim=1)
    if (den == 0).any():
        raise ValueError("spectral_convergence: a reference spectrogram is all zeros")
    return num / den


def log_spectral_distance(ref_mag: torch.Tensor, est_mag: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Log-spectral distance in dB: per frame ``sqrt(mean_f (20 log10 S/S_hat)^2)``, averaged over frames.

    Inputs ``(B, ..., F, T)`` linear magnitudes; ``eps`` (-100 dB) keeps silence finite.
    """
    _check_pair(ref_mag, est_mag, "log_spectral_distance")
    diff_db = 20 * (torch.log10(ref_mag.clamp_min(eps)) - torch.log10(est_mag.clamp_min(eps)))
    per_frame = diff_db.pow(2).mean(dim=-2).sqrt()  # (B, ..., T)
    return per_frame.flatten(1).mean(1)


def multi_resolution_stft_distance(ref_wave: torch.Tensor, est_wave: torch.Tensor,
                                   resolutions: tuple[tuple[int, int], ...] = ((512, 128), (1024, 256), (256, 64)),
                                   eps: float = 1e-7) -> torch.Tensor:
    """Multi-resolution STFT distance between waveforms ``(B, N)`` (Yamamoto et al. 2020).

    Sum over resolutions ``(n_fft, hop)`` of spectral convergence plus mean
    absolute log-magnitude difference.
    """
    _check_pair(ref_wave, est_wave, "multi_resolution_stft_distance")
    total = torch.zeros(ref_wave.shape[0], dtype=torch.float32, device=ref_wave.device)
    for n_fft, hop in resolutions:
        s_ref, s_est = stft(ref_wave, n_fft, hop).abs(), stft(est_wave, n_fft, hop).abs()
        sc = (s_ref - s_est).flatten(1).norm(dim=1) / s_ref.flatten(1).norm(dim=1).clamp_min(eps)
        log_mag = (torch.log(s_ref + eps) - torch.log(s_est + eps)).abs().flatten(1).mean(1)
        total = total + sc + log_mag
    return total
