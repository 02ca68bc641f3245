"""Tokenizer losses: L1/L2, a multi-resolution spectral term, and an optional patch GAN.

All reconstruction terms compare *normalised log-magnitudes* in [-1, 1].  The
spectral term first undoes CMX so that pooling averages true time-frequency
neighbours (pooling the folded tensor would average bins r apart).
Defined in notebook 02.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..audio import denormalise
from ..cmx import from_model_input
from ..config import AudioConfig, Config

POOLS = (1, 2, 4, 8)  # time-frequency resolutions of the spectral term


def spectral_loss(x_hat_B1FT: torch.Tensor, x_B1FT: torch.Tensor, audio: AudioConfig) -> torch.Tensor:
    """Multi-resolution spectral distance between two normalised log-spectrograms.

    Mean over pooling factors p of ``L1(avgpool_p(x_hat), avgpool_p(x))`` (coarse
    energy envelopes must match, not only single bins), plus the spectral
    convergence of the linear magnitudes (loud partials dominate it, as they
    dominate what we hear).
    """
    terms = []
    for p in POOLS:
        if min(x_B1FT.shape[-2:]) >= p:
            terms.append(F.l1_loss(F.avg_pool2d(x_hat_B1FT, p), F.avg_pool2d(x_B1FT, p)))
    mag, mag_hat = denormalise(x_B1FT, audio), denormalise(x_hat_B1FT, audio)
    sc = (mag - mag_hat).flatten(1).norm(dim=1) / mag.flatten(1).norm(dim=1)
    return torch.stack(terms).mean() + sc.mean()


def detail_loss(x_hat_B1FT: torch.Tensor, x_B1FT: torch.Tensor) -> torch.Tensor:
    """L1 between the frequency and time differences of two log-spectrograms.

    A plain L1/L2 reconstruction is minimised by the *average* of what the latent
    cannot pin down, so peaks and the texture between partials come out smoothed:
    the harmonic detail that tells a bass from a voice.  Matching the differences
    between neighbouring bins (the "gradient difference loss" of Mathieu et al. 2016,
    for sharp video prediction) penalises that smoothing directly.
    """
    d_f = F.l1_loss(x_hat_B1FT.diff(dim=-2), x_B1FT.diff(dim=-2))
    d_t = F.l1_loss(x_hat_B1FT.diff(dim=-1), x_B1FT.diff(dim=-1))
    return d_f + d_t


def reconstruction_losses(x_hat: torch.Tensor, x: torch.Tensor, cfg: Config) -> dict[str, torch.Tensor]:
    """``{"l1", "l2", "spectral", "detail"}`` between model-input tensors ``(B, C, F/r, T/r)``."""
    fill = -1.0  # silence, for the area truncation discards
    spec, spec_hat = (from_model_input(t, cfg.cmx, cfg.spec_shape, fill) for t in (x, x_hat))
    if cfg.cmx.mode == "truncate":  # compare only what the model sees
        f, t = x.shape[-2:]
        spec, spec_hat = spec[..., :f, :t], spec_hat[..., :f, :t]
    return {"l1": F.l1_loss(x_hat, x), "l2": F.mse_loss(x_hat, x),
            "spectral": spectral_loss(spec_hat, spec, cfg.audio), "detail": detail_loss(spec_hat, spec)}


class PatchDiscriminator(nn.Module):
    """PatchGAN: ``(B, C, H, W) -> (B, 1, H/4, W/4)`` real/fake logits per patch."""

    def __init__(self, in_channels: int, width: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.GroupNorm(8, 2 * width), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def hinge_gan_losses(disc: PatchDiscriminator, x: torch.Tensor, x_hat: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Hinge GAN terms ``(generator, discriminator)`` that can be summed into one loss.

    The discriminator loss sees ``x_hat`` detached, so it does not train the
    tokenizer; the generator term calls the discriminator with *detached*
    parameters, so it does not train the discriminator.  One backward pass and
    one optimiser then update both in the right directions.
    """
    d_loss = F.relu(1 - disc(x)).mean() + F.relu(1 + disc(x_hat.detach())).mean()
    frozen = {k: v.detach() for k, v in disc.named_parameters()}
    g_loss = -functional_call(disc, frozen, (x_hat,)).mean()
    return g_loss, d_loss
