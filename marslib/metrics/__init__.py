"""Metrics: spectral distances, pitch accuracy, distribution metrics, CREPE."""

from .classifier import (SpectrogramClassifier, classifier_accuracy, classifier_dataset, classifier_rows,
                         classify_spectrograms, classify_waveforms, fit_classifier, load_classifier)
from .crepe import crepe_analyse, crepe_embeddings, crepe_pitch, crepe_pitch_accuracy, frame_audio, load_crepe
from .distribution import (frechet_distance, frechet_distance_gaussians, inception_score,
                           kernel_inception_distance, ndb, nearest_neighbours)
from .intervals import bootstrap_interval, bootstrap_mean_interval, intervals_separate, percentile_interval
from .pitch import estimate_pitch, pitch_accuracy, score_pitch
from .spectral import (log_spectral_distance, mae, mse, multi_resolution_stft_distance,
                       spectral_convergence)

__all__ = ["estimate_pitch", "pitch_accuracy", "mse", "mae", "spectral_convergence", "log_spectral_distance",
           "multi_resolution_stft_distance",
           "SpectrogramClassifier", "fit_classifier", "load_classifier", "classifier_dataset",
           "classifier_rows",
           "classifier_accuracy", "classify_waveforms", "classify_spectrograms",
           "load_crepe", "frame_audio", "crepe_embeddings", "crepe_pitch", "crepe_pitch_accuracy", "crepe_analyse", "score_pitch",
           "frechet_distance", "frechet_distance_gaussians", "kernel_inception_distance", "inception_score",
           "ndb", "nearest_neighbours",
           "bootstrap_interval", "bootstrap_mean_interval", "intervals_separate", "percentile_interval"]
