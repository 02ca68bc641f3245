"""Audio front-end: load and validate, STFT magnitude, log/normalise, Griffin-Lim.

MARS models only the STFT *magnitude*; phase is thrown away and recovered after
generation with Griffin-Lim.  The pipeline, with shapes::

    waveform (B, N)  --stft-->  complex (B, n_fft/2+1, N/hop+1)
                     --magnitude_spectrogram-->  |X| (B, F, T)      F = n_fft/2, T = N/hop
                     --normalise-->  x in [-1, 1] (B, F, T)          log (dB) compression
    x  --denormalise-->  |X|  --griffin_lim-->  waveform (B, N)

Magnitudes are scaled by the window's gain so that a full-scale sine peaks at
1.0 (0 dB), which makes ``AudioConfig.min_db``/``max_db`` mean the same thing
for every ``n_fft``.  Defined in notebook 01.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from .config import AudioConfig
from .runtime import atomic_write

SILENCE_PEAK = 1e-4  # -80 dBFS: a clip whose peak is below this is "silent"


class AudioError(ValueError):
    """Audio input is unusable; the message names the problem and the fix."""


# ---------------------------------------------------------------------------
# Loading, validating, writing
# ---------------------------------------------------------------------------

def validate_waveform(y: np.ndarray | torch.Tensor, name: str = "waveform") -> None:
    """Reject empty, non-finite and silent audio with a clear :class:`AudioError`."""
    arr = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if arr.size == 0:
        raise AudioError(f"{name} is empty (0 samples)")
    if not np.all(np.isfinite(arr)):
        raise AudioError(f"{name} contains NaN or Inf samples; check the file or the model output")
    if np.max(np.abs(arr)) < SILENCE_PEAK:
        raise AudioError(f"{name} is silent (peak below {SILENCE_PEAK:g}, i.e. -80 dBFS)")


def wav_declared_frames(path: str | os.PathLike) -> int | None:
    """Frames a WAV file's header promises: ``data`` chunk bytes / block align.

    libsndfile (``sf.info(path).frames``) counts what the file *holds*, so a wav cut
    in half reads as a shorter, valid-looking clip; the RIFF header still says how
    long it was meant to be.  Returns None for other formats (FLAC, OGG: their
    decoders fail on truncation) and for streamed wavs whose size field is unset.
    """
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WAVE":
            return None
        block_align = 0
        while len(chunk := f.read(8)) == 8:
            name, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if name == b"data":
                return size // block_align if block_align and size not in (0, 0xFFFFFFFF) else None
            body = f.read(size + size % 2)  # chunks are padded to an even size
            if name == b"fmt " and len(body) >= 14:
                block_align = struct.unpack("<H", body[12:14])[0]  # tag, channels, rate, bytes/s, align
    return None


def load_audio(path: str | os.PathLike, sample_rate: int, *, resample: bool = True) -> np.ndarray:
    """Read a sound file as mono float32 at ``sample_rate``.

    Args:
        path: wav/flac/ogg file.
        sample_rate: rate the caller expects, in Hz.
        resample: if the file's rate differs, resample it (True) or raise (False).

    Returns:
        ``(N,)`` float32 waveform in [-1, 1].

    Raises:
        FileNotFoundError: no such file.
        AudioError: corrupt/undecodable, truncated (a wav holding fewer samples than
            its header declares), empty, NaN/Inf, silent, or wrong rate with ``resample=False``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        y, sr = sf.read(path, dtype="float32", always_2d=True)
    except Exception as err:  # libsndfile raises its own error types
        raise AudioError(f"could not decode {path}: {err}. Is it a valid wav/flac/ogg file?") from err
    declared = wav_declared_frames(path)
    if declared is not None and len(y) < declared:
        raise AudioError(f"{path} is truncated: its WAV header declares {declared} samples but the file "
                         f"holds only {len(y)} (an interrupted write, copy or download?); "
                         f"re-render or re-download it")
    y = y.mean(axis=1)  # (N, channels) -> mono (N,)
    validate_waveform(y, name=str(path))
    if sr != sample_rate:
        if not resample:
            raise AudioError(f"{path} is {sr} Hz but {sample_rate} Hz is expected; "
                             f"resample it or call load_audio(..., resample=True)")
        import librosa  # imported lazily: it is slow to import
        y = librosa.resample(y, orig_sr=sr, target_sr=sample_rate).astype(np.float32)
    return y


def fit_length(y: np.ndarray, n: int) -> np.ndarray:
    """Crop or zero-pad the last axis to exactly ``n`` samples."""
    if y.shape[-1] >= n:
        return y[..., :n]
    pad = [(0, 0)] * (y.ndim - 1) + [(0, n - y.shape[-1])]
    return np.pad(y, pad)


def write_wav(path: str | os.PathLike, y: np.ndarray | torch.Tensor, sample_rate: int) -> Path:
    """Write a mono 16-bit wav atomically (temp file, then rename); validates first.

    Samples beyond [-1, 1] are clipped.  Nothing is written if ``y`` is invalid.
    """
    arr = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    arr = np.squeeze(arr)
    if arr.ndim != 1:
        raise AudioError(f"write_wav expects a mono waveform (N,), got shape {tuple(arr.shape)}")
    validate_waveform(arr, name=f"audio for {path}")
    path = Path(path)
    atomic_write(path, lambda tmp: sf.write(tmp, np.clip(arr, -1.0, 1.0), sample_rate,
                                            subtype="PCM_16", format="WAV"))
    return path


# ---------------------------------------------------------------------------
# STFT magnitude and its log-normalised form
# ---------------------------------------------------------------------------

def _window(n_fft: int, like: torch.Tensor) -> torch.Tensor:
    # Periodic Hann, as librosa/scipy's get_window("hann", fftbins=True).
    return torch.hann_window(n_fft, periodic=True, dtype=like.real.dtype, device=like.device)


def _as_batch(y: np.ndarray | torch.Tensor) -> torch.Tensor:
    y = torch.as_tensor(y)
    if y.ndim == 1:
        y = y[None]
    if y.ndim != 2:
        raise AudioError(f"expected a waveform (N,) or batch (B, N), got shape {tuple(y.shape)}")
    return y.float() if not y.is_floating_point() else y


def stft(y: np.ndarray | torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """Complex STFT, identical in convention to ``librosa.stft(y, n_fft, hop_length)``.

    Centred frames, zero padding, periodic Hann window.

    Args:
        y: ``(N,)`` or ``(B, N)`` waveform.
    Returns:
        ``(B, n_fft/2 + 1, N // hop + 1)`` complex tensor.
    """
    y = _as_batch(y)
    return torch.stft(y, n_fft, hop_length, window=_window(n_fft, y), center=True,
                      pad_mode="constant", return_complex=True)


def window_gain(n_fft: int) -> float:
    """Magnitude of a full-scale sine at its STFT peak: sum(window) / 2."""
    return n_fft / 4  # sum of a periodic Hann window is n_fft / 2


def magnitude_spectrogram(y: np.ndarray | torch.Tensor, cfg: AudioConfig) -> torch.Tensor:
    """``(B, N)`` waveform -> ``(B, F, T)`` magnitude, ``F = n_fft/2``, ``T = N // hop``.

    The Nyquist bin and the final (half-padded) frame are dropped so ``F`` and ``T``
    are the round numbers CMX folds; a full-scale sine peaks at 1.0.
    """
    spec = stft(y, cfg.n_fft, cfg.hop_length).abs() / window_gain(cfg.n_fft)
    return spec[:, : cfg.n_bins, :-1]


def normalise(mag: torch.Tensor, cfg: AudioConfig) -> torch.Tensor:
    """Magnitude -> dB, clipped to ``[min_db, max_db]`` and mapped linearly onto [-1, 1]."""
    db = 20.0 * torch.log10(mag.clamp_min(10.0 ** (cfg.min_db / 20.0)))
    db = db.clamp(cfg.min_db, cfg.max_db)
    return 2.0 * (db - cfg.min_db) / (cfg.max_db - cfg.min_db) - 1.0


def denormalise(x: torch.Tensor, cfg: AudioConfig) -> torch.Tensor:
    """Exact inverse of :func:`normalise` for magnitudes inside the dB range.

    Values outside [-1, 1] (a model may produce them) are clipped first.
    """
    db = (x.clamp(-1.0, 1.0) + 1.0) / 2.0 * (cfg.max_db - cfg.min_db) + cfg.min_db
    return 10.0 ** (db / 20.0)


def waveform_to_input(y: np.ndarray | torch.Tensor, cfg: AudioConfig) -> torch.Tensor:
    """Waveform ``(B, N)`` -> normalised log-magnitude ``(B, 1, F, T)`` (the model's image)."""
    return normalise(magnitude_spectrogram(y, cfg), cfg)[:, None]


# ---------------------------------------------------------------------------
# Griffin-Lim
# ---------------------------------------------------------------------------

def griffin_lim(
    spec: torch.Tensor,
    n_fft: int,
    hop_length: int,
    n_iter: int = 32,
    momentum: float = 0.99,
    length: int | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """Batched fast Griffin-Lim (Perraudin et al. 2013) in librosa's convention.

    Alternates projecting onto consistent spectrograms (istft -> stft) and onto the
    target magnitude, with momentum ``alpha`` on the phase estimate:
    ``c_n = P(x_n) ;  x_{n+1} = c_n - alpha/(1+alpha) * c_{n-1}``  (librosa's form).

    Args:
        spec: ``(B, n_fft/2 + 1, frames)`` non-negative magnitudes (unscaled STFT).
        length: output samples (default ``hop * (frames - 1)``).
        seed: random initial phase, reproducible.
    Returns:
        ``(B, length)`` waveform.
    """
    if spec.ndim != 3 or spec.shape[1] != n_fft // 2 + 1:
        raise AudioError(f"griffin_lim expects (B, {n_fft // 2 + 1}, frames), got {tuple(spec.shape)}")
    if not torch.isfinite(spec).all():
        raise AudioError("griffin_lim got NaN/Inf magnitudes")
    spec = spec.float()
    length = length or hop_length * (spec.shape[-1] - 1)
    window = _window(n_fft, spec)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    phase = torch.rand(spec.shape, generator=gen).to(spec.device) * (2 * torch.pi)
    angles = torch.polar(torch.ones_like(spec), phase)
    istft = lambda z: torch.istft(z, n_fft, hop_length, window=window, center=True, length=length)
    prev = torch.zeros_like(angles)
    eps = 1e-16
    for _ in range(n_iter):
        rebuilt = torch.stft(istft(spec * angles), n_fft, hop_length, window=window, center=True,
                             pad_mode="constant", return_complex=True)
        angles = rebuilt - (momentum / (1 + momentum)) * prev
        angles = angles / (angles.abs() + eps)
        prev = rebuilt
    return istft(spec * angles)


def spectrogram_to_waveform(mag: torch.Tensor, cfg: AudioConfig, n_iter: int | None = None,
                            seed: int = 0) -> torch.Tensor:
    """Inverse of :func:`magnitude_spectrogram` via Griffin-Lim.

    Args:
        mag: ``(B, F, T)`` scaled magnitudes (as :func:`magnitude_spectrogram` returns).
    Returns:
        ``(B, T * hop)`` waveform.
    """
    if mag.ndim != 3 or mag.shape[1] != cfg.n_bins:
        raise AudioError(f"expected magnitudes (B, {cfg.n_bins}, T), got {tuple(mag.shape)}")
    full = mag * window_gain(cfg.n_fft)
    # Restore what magnitude_spectrogram dropped: a zero Nyquist bin and one last frame
    # (a copy of the final one), so the STFT geometry matches the original signal.
    full = torch.cat([full, torch.zeros_like(full[:, :1])], dim=1)
    full = torch.cat([full, full[:, :, -1:]], dim=2)
    return griffin_lim(full, cfg.n_fft, cfg.hop_length,
                       cfg.griffin_lim_iters if n_iter is None else n_iter,  # 0 = random phase
                       cfg.griffin_lim_momentum, length=mag.shape[-1] * cfg.hop_length, seed=seed)


def input_to_waveform(x: torch.Tensor, cfg: AudioConfig, n_iter: int | None = None,
                      seed: int = 0) -> torch.Tensor:
    """Normalised log-magnitude ``(B, 1, F, T)`` or ``(B, F, T)`` -> waveform ``(B, N)``."""
    if x.ndim == 4:
        x = x[:, 0]
    return spectrogram_to_waveform(denormalise(x, cfg), cfg, n_iter=n_iter, seed=seed)
