"""CMX (channel multiplexing) and the truncation baseline.

CMX is a lossless space-to-depth reshaping.  Each ``r x r`` cell of the
spectrogram is spread over ``r^2`` channels, like the squares of a chessboard
coloured with ``r^2`` colours::

    (B, 1, F, T)  --fold-->  (B, r^2, F/r, T/r)      channel c = i * r + j holds x[..., i::r, j::r]

so an image model sees a small ``F/r x T/r`` grid with many channels, and
``unfold`` puts every value back bit for bit.  The baseline the paper compares
against simply *truncates* the spectrogram to the same grid, keeping the lowest
``F/r`` bins and first ``T/r`` frames (lossy; the inverse zero-fills).

Letters: B batch, C channels, F frequency bins, T frames, r CMX factor.
Defined in notebook 01.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange

from .config import CMXConfig, Config


class CMXError(ValueError):
    """A tensor cannot be folded/unfolded as asked; the message says why and how to fix it."""


def _check_4d(x: torch.Tensor, what: str) -> None:
    if x.ndim != 4:
        raise CMXError(f"{what} expects a (B, C, F, T) tensor, got shape {tuple(x.shape)}")


def fold(x_B1FT: torch.Tensor, r: int) -> torch.Tensor:
    """CMX fold ``(B, C, F, T) -> (B, C*r^2, F/r, T/r)`` (usually ``C = 1``).

    Output channel ``c*r^2 + i*r + j`` holds ``x[:, c, i::r, j::r]``: the (i, j)
    square of every r x r cell.  Pure indexing, so any dtype round-trips exactly.
    """
    _check_4d(x_B1FT, "cmx.fold")
    _, _, f, t = x_B1FT.shape
    for axis, size in (("F", f), ("T", t)):
        if size % r:
            pad = -size % r
            raise CMXError(f"cannot fold {axis} = {size} by r = {r}: pad {axis} by {pad} "
                           f"(to {size + pad}) or choose r dividing {size}")
    return rearrange(x_B1FT, "b c (f i) (t j) -> b (c i j) f t", i=r, j=r)


def unfold(x_BCft: torch.Tensor, r: int) -> torch.Tensor:
    """Inverse of :func:`fold`: ``(B, C*r^2, F/r, T/r) -> (B, C, F, T)``."""
    _check_4d(x_BCft, "cmx.unfold")
    if x_BCft.shape[1] % (r * r):
        raise CMXError(f"cannot unfold {x_BCft.shape[1]} channels with r = {r}: "
                       f"the channel count must be a multiple of r^2 = {r * r}")
    return rearrange(x_BCft, "b (c i j) f t -> b c (f i) (t j)", i=r, j=r)


def truncate(x_B1FT: torch.Tensor, r: int) -> torch.Tensor:
    """Truncation baseline: keep the lowest ``F/r`` bins and first ``T/r`` frames.

    ``(B, C, F, T) -> (B, C, F/r, T/r)``: the same spatial grid as :func:`fold`,
    with ``r^2`` times fewer values (the rest is discarded).
    """
    _check_4d(x_B1FT, "cmx.truncate")
    _, _, f, t = x_B1FT.shape
    if f % r or t % r:
        raise CMXError(f"cannot truncate {f} x {t} by r = {r}: both must be divisible by r")
    return x_B1FT[:, :, : f // r, : t // r]


def untruncate(x_BCft: torch.Tensor, full_shape: tuple[int, int], fill_value: float = 0.0) -> torch.Tensor:
    """Inverse of :func:`truncate` for what was kept; the discarded area is ``fill_value``.

    Use ``fill_value=0`` for magnitudes and ``-1`` for normalised log-magnitudes
    (both mean silence).
    """
    _check_4d(x_BCft, "cmx.untruncate")
    f, t = full_shape
    if x_BCft.shape[-2] > f or x_BCft.shape[-1] > t:
        raise CMXError(f"truncated grid {tuple(x_BCft.shape[-2:])} is larger than {full_shape}")
    out = x_BCft.new_full((*x_BCft.shape[:2], f, t), fill_value)
    out[:, :, : x_BCft.shape[-2], : x_BCft.shape[-1]] = x_BCft
    return out


def to_model_input(x_B1FT: torch.Tensor, cfg: CMXConfig) -> torch.Tensor:
    """``(B, 1, F, T)`` spectrogram -> the model's ``(B, C, F/r, T/r)`` input, per ``cfg.mode``."""
    if cfg.mode == "cmx":
        return fold(x_B1FT, cfg.factor)
    return truncate(x_B1FT, cfg.factor)


def from_model_input(x_BCft: torch.Tensor, cfg: CMXConfig, full_shape: tuple[int, int],
                     fill_value: float = -1.0) -> torch.Tensor:
    """Inverse of :func:`to_model_input`: back to ``(B, 1, F, T)`` (truncation zero-fills).

    ``fill_value`` defaults to -1, silence in normalised log-magnitude.
    """
    expected = cfg.channels
    if x_BCft.ndim != 4 or x_BCft.shape[1] != expected:
        raise CMXError(f"expected a ({expected} channel) model tensor (B, {expected}, F/r, T/r) "
                       f"for mode {cfg.mode!r}, got shape {tuple(x_BCft.shape)}")
    if cfg.mode == "cmx":
        return unfold(x_BCft, cfg.factor)
    return untruncate(x_BCft, full_shape, fill_value)


def truncation_loss(mag_B1FT: torch.Tensor, r: int) -> dict[str, float]:
    """How much of a magnitude spectrogram truncation throws away.

    Returns:
        ``energy_lost``: fraction of spectral energy (sum |X|^2) outside the kept area;
        ``values_kept``: fraction of spectrogram values kept (= 1/r^2);
        ``sc``: spectral convergence ||X - untruncate(truncate(X))|| / ||X||.
    """
    kept = truncate(mag_B1FT, r)
    energy = mag_B1FT.double().pow(2).sum()
    if energy == 0:
        raise CMXError("truncation_loss got an all-zero spectrogram")
    rebuilt = untruncate(kept, tuple(mag_B1FT.shape[-2:]), 0.0)
    return {
        "energy_lost": float(1 - kept.double().pow(2).sum() / energy),
        "values_kept": kept.numel() / mag_B1FT.numel(),
        "sc": float((mag_B1FT - rebuilt).double().norm() / mag_B1FT.double().norm()),
    }


# ---------------------------------------------------------------------------
# Memory / compute accounting
# ---------------------------------------------------------------------------

@dataclass
class Cost:
    """Rough size of one clip's representation through the models (float32)."""

    name: str
    input_shape: tuple[int, int, int]   # (C, H, W) the encoder sees
    input_values: int
    encoder_activation_mb: float        # sum over conv stages of width * H * W * 4 bytes, batch 1
    latent_tokens: int                  # finest-scale tokens (h * w)
    next_scale_tokens: int              # sum over scales of h_k * w_k
    attention_pairs_next_scale: int     # block-causal attention: query-key pairs per layer
    attention_pairs_raster: int         # causal attention over latent_tokens, per layer


def _encoder_activation_mb(shape: tuple[int, int, int], width: int, downsample: int) -> float:
    # One stage per factor of 2, width doubling per stage (capped at 4x), as our encoder.
    _, h, w = shape
    total, ch = 0, width
    stages = downsample.bit_length()  # log2(downsample) + 1 stages incl. full resolution
    for s in range(stages):
        total += ch * (h >> s) * (w >> s)
        ch = min(ch * 2, 4 * width)
    return total * 4 / 2 ** 20


def representation_costs(cfg: Config) -> list[Cost]:
    """Cost of the CMX tensor, the truncated one and the unfolded spectrogram.

    All three use the same latent grid (the token budget): the full spectrogram
    needs ``r`` times more downsampling to reach it.  Used by notebook 01 and the
    benchmarks.
    """
    f, t = cfg.spec_shape
    r, tok = cfg.cmx.factor, cfg.tokenizer
    scales = tok.scales
    n_next = sum(h * w for h, w in scales)
    # Block-causal: a token of scale k attends to every token of scales <= k.
    cum, pairs = 0, 0
    for h, w in scales:
        cum += h * w
        pairs += h * w * cum
    lh, lw = cfg.latent_shape
    raster = lh * lw * (lh * lw + 1) // 2
    variants = [
        ("cmx", (r * r, f // r, t // r), tok.downsample),
        ("truncate", (1, f // r, t // r), tok.downsample),
        ("full (no CMX)", (1, f, t), tok.downsample * r),
    ]
    return [Cost(name, shape, shape[0] * shape[1] * shape[2],
                 _encoder_activation_mb(shape, tok.channels, ds), lh * lw, n_next, pairs, raster)
            for name, shape, ds in variants]
