"""Compact convolutional encoder and decoder over CMX channels.

The encoder maps the model input ``(B, C, F/r, T/r)`` (C = r^2 CMX channels) to a
latent ``(B, D, h, w)`` with ``h = F/(r*ds)``, ``w = T/(r*ds)``; the decoder maps a
(quantised) latent back.  One stage per factor of two, widths doubling up to 4x,
residual blocks with GroupNorm + SiLU: a small cousin of the LDM/VAR VAE.

There is no residual block at the input resolution: after CMX the grid is
already r times coarser and the detail sits in the channels, so the first
convolution can go straight down (this is where CMX saves compute).
Defined in notebook 02.
"""

from __future__ import annotations

import torch
from torch import nn


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=min(8, ch), num_channels=ch)


class ResBlock(nn.Module):
    """``x + conv(silu(norm(conv(silu(norm(x))))))``, with a 1x1 skip when widths differ."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.body = nn.Sequential(
            _norm(c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1),
            _norm(c_out), nn.SiLU(), nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


def stage_widths(channels: int, downsample: int) -> list[int]:
    """Width of each resolution level: ``channels`` doubling per stage, capped at 4x."""
    n_down = downsample.bit_length() - 1  # log2(downsample)
    return [min(channels * 2 ** i, 4 * channels) for i in range(n_down + 1)]


def stage_strides(downsample: int, time_downsample: int) -> list[tuple[int, int]]:
    """(frequency, time) stride of each stage: both axes halve until one is done, then the other alone.

    A spectrogram is not an image: timbre lives in sharp frequency detail, while most notes
    change slowly in time.  ``time_downsample > downsample`` spends the same number of
    latent cells on a finer frequency grid (ours).
    """
    n_f, n_t = downsample.bit_length() - 1, time_downsample.bit_length() - 1
    return [(2 if i < n_f else 1, 2 if i < n_t else 1) for i in range(max(n_f, n_t))]


class Encoder(nn.Module):
    """``(B, C, H, W) -> (B, D, H/ds, W/ds_t)`` (``ds_t = time_downsample``, default ``ds``)."""

    def __init__(self, in_channels: int, channels: int, downsample: int, latent_dim: int,
                 time_downsample: int = 0):
        super().__init__()
        strides = stage_strides(downsample, time_downsample or downsample)
        widths = stage_widths(channels, 2 ** len(strides))
        layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, padding=1)]
        for w_in, w_out, (sf, st) in zip(widths, widths[1:], strides):
            kernel = tuple(4 if s == 2 else 3 for s in (sf, st))  # with padding 1: halves / keeps an axis
            layers += [nn.Conv2d(w_in, w_out, kernel, stride=(sf, st), padding=1), ResBlock(w_out, w_out)]
        layers += [_norm(widths[-1]), nn.SiLU(), nn.Conv2d(widths[-1], latent_dim, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x_BCHW: torch.Tensor) -> torch.Tensor:
        return self.net(x_BCHW)


class Decoder(nn.Module):
    """``(B, D, h, w) -> (B, C, h*ds, w*ds_t)``, the mirror of :class:`Encoder`."""

    def __init__(self, out_channels: int, channels: int, downsample: int, latent_dim: int,
                 time_downsample: int = 0):
        super().__init__()
        strides = stage_strides(downsample, time_downsample or downsample)[::-1]
        widths = stage_widths(channels, 2 ** len(strides))[::-1]
        layers: list[nn.Module] = [nn.Conv2d(latent_dim, widths[0], 3, padding=1), ResBlock(widths[0], widths[0])]
        for i, (w_in, w_out, sft) in enumerate(zip(widths, widths[1:], strides)):
            layers += [nn.Upsample(scale_factor=sft, mode="nearest"), nn.Conv2d(w_in, w_out, 3, padding=1)]
            if i < len(widths) - 2:  # no residual block at the input resolution (see module doc)
                layers.append(ResBlock(w_out, w_out))
        layers += [_norm(widths[-1]), nn.SiLU(), nn.Conv2d(widths[-1], out_channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, f_BDhw: torch.Tensor) -> torch.Tensor:
        return self.net(f_BDhw)
