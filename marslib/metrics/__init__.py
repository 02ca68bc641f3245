"""Metrics: spectral distances and pitch accuracy (distribution metrics: notebook 04)."""

from .pitch import estimate_pitch, pitch_accuracy
from .spectral import (log_spectral_distance, mae, mse, multi_resolution_stft_distance,
                       spectral_convergence)

__all__ = ["estimate_pitch", "pitch_accuracy", "mse", "mae", "spectral_convergence", "log_spectral_distance",
           "multi_resolution_stft_distance"]
