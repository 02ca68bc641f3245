"""Metrics: spectral distances now; distribution metrics (FAD-style, KID, IS, NDB/k) later."""

from .spectral import (log_spectral_distance, mae, mse, multi_resolution_stft_distance,
                       spectral_convergence)

__all__ = ["mse", "mae", "spectral_convergence", "log_spectral_distance",
           "multi_resolution_stft_distance"]
