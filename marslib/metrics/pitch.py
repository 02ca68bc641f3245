"""Does a generated note have the pitch it was asked for?  (pYIN, librosa)

For each clip we track f0 with ``librosa.pyin`` over voiced frames, take the
median, and compare it with the requested MIDI pitch in cents.  A clip is
*correct* within +-1 semitone (100 cents); an error near +-1200 cents is an
*octave error* (common with organ-like timbres whose sub-octave is loud), counted
separately rather than hidden.  Defined in notebook 03.
"""

from __future__ import annotations

import numpy as np
import torch

OCTAVE_TOLERANCE = 100.0  # cents around +-1200 that count as an octave error


def estimate_pitch(wave: np.ndarray, sample_rate: int, fmin: float = 30.0, fmax: float = 4200.0,
                   expected_midi: float | None = None) -> float:
    """Median f0 of the voiced frames as a (fractional) MIDI number; NaN if nothing is voiced.

    With ``expected_midi`` the search is limited to +-19 semitones around it
    (fast, and still wide enough to reveal octave errors).
    """
    import librosa

    if expected_midi is not None:
        fmin = float(librosa.midi_to_hz(max(expected_midi - 19, 12)))
        fmax = min(float(librosa.midi_to_hz(expected_midi + 19)), sample_rate / 2 - 1)
    f0, voiced, _ = librosa.pyin(np.asarray(wave, dtype=np.float32), fmin=fmin, fmax=fmax, sr=sample_rate,
                                 frame_length=1024, resolution=0.1)
    f0 = f0[voiced & np.isfinite(f0)]
    return float(librosa.hz_to_midi(np.median(f0))) if len(f0) else float("nan")


def pitch_accuracy(waves: np.ndarray | torch.Tensor, sample_rate: int, target_midi) -> dict:
    """Score clips ``(B, N)`` against requested pitches ``(B,)`` (MIDI numbers).

    Returns:
        ``accuracy`` (fraction within +-1 semitone), ``octave_errors`` (fraction
        within 100 cents of +-1200), ``unvoiced`` (fraction with no pitch found),
        ``median_abs_cents`` over voiced clips, and per-clip ``cents`` (NaN if unvoiced).
    """
    waves = waves.detach().cpu().numpy() if isinstance(waves, torch.Tensor) else np.asarray(waves)
    targets = np.broadcast_to(np.asarray(target_midi, dtype=float), (len(waves),))
    if waves.ndim != 2:
        raise ValueError(f"expected waveforms (B, N), got shape {waves.shape}")
    if not np.isfinite(waves).all():
        raise ValueError("waveforms contain NaN or Inf")
    midi = np.array([estimate_pitch(w, sample_rate, expected_midi=t) for w, t in zip(waves, targets)])
    return score_pitch(midi, targets)


def score_pitch(midi: np.ndarray, target_midi, tolerance: float = 1.0) -> dict:
    """Estimated clip pitches ``(B,)`` (NaN = unvoiced) against targets: the dict above.

    Shared by the pYIN and CREPE trackers, so their numbers mean the same thing.
    """
    targets = np.asarray(target_midi, dtype=float)
    if targets.ndim > 1 or targets.size not in (1, len(midi)):
        raise ValueError(f"target_midi must be one pitch or one per clip ({len(midi)}), got shape {targets.shape}")
    cents = 100 * (np.asarray(midi, dtype=float) - np.broadcast_to(targets, (len(midi),)))
    voiced = np.isfinite(cents)
    correct = voiced & (np.abs(cents) <= 100 * tolerance)
    octave = voiced & (np.abs(np.abs(cents) - 1200) <= OCTAVE_TOLERANCE)
    return {"accuracy": float(correct.mean()), "octave_errors": float(octave.mean()),
            "unvoiced": float((~voiced).mean()),
            "median_abs_cents": float(np.median(np.abs(cents[voiced]))) if voiced.any() else float("nan"),
            "cents": [None if not np.isfinite(c) else round(float(c), 1) for c in cents]}
