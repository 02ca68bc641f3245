"""The spectrogram tokenizer: encoder -> multi-scale residual VQ -> decoder.

    x (B, C, F/r, T/r) --encoder--> f (B, D, h, w) --quantizer--> K token maps
    K token maps --quantizer.to_latent--> f_hat (B, D, h, w) --decoder--> x_hat

``C`` is r^2 for CMX (1 for the truncation baseline); ``(h, w)`` is the finest
scale.  Defined in notebook 02.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import Config
from .autoencoder import Decoder, Encoder
from .losses import PatchDiscriminator, hinge_gan_losses, reconstruction_losses
from .quantizer import MultiScaleQuantizer


class Tokenizer(nn.Module):
    """Multi-scale residual VQ-VAE on CMX spectrograms (VAR / ImageFolder style)."""

    def __init__(self, cfg: Config):
        super().__init__()
        tok = cfg.tokenizer
        self.cfg = cfg
        self.input_shape = cfg.input_shape  # (C, F/r, T/r)
        c = self.input_shape[0]
        self.encoder = Encoder(c, tok.channels, tok.downsample, tok.latent_dim, tok.time_downsample)
        self.quant_conv = nn.Conv2d(tok.latent_dim, tok.latent_dim, 3, padding=1)
        self.quantizer = MultiScaleQuantizer(tok.codebook_size, tok.latent_dim, tok.scales, tok.beta,
                                             tok.phi_ratio, tok.n_phi, tok.lookup, tok.restart_every)
        self.post_quant_conv = nn.Conv2d(tok.latent_dim, tok.latent_dim, 3, padding=1)
        self.decoder = Decoder(c, tok.channels, tok.downsample, tok.latent_dim, tok.time_downsample)
        self.discriminator = PatchDiscriminator(c) if tok.gan_weight > 0 else None

    def check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or tuple(x.shape[1:]) != tuple(self.input_shape):
            c, f, t = self.input_shape
            raise ValueError(f"tokenizer expects input (B, {c}, {f}, {t}) for cmx mode "
                             f"{self.cfg.cmx.mode!r} with r = {self.cfg.cmx.factor}, got {tuple(x.shape)}")

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """Continuous latent before quantisation: ``(B, C, F/r, T/r) -> (B, D, h, w)``."""
        self.check_input(x)
        return self.quant_conv(self.encoder(x))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Reconstruct ``x``; returns ``(x_hat, vq_loss, info)`` (see MultiScaleQuantizer)."""
        f_hat, vq_loss, info = self.quantizer(self.latent(x))
        return self.decoder(self.post_quant_conv(f_hat)), vq_loss, info

    # --- the tokenizer API the autoregressor and notebooks use ------------------------

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``(B, C, F/r, T/r)`` -> token maps ``[K x (B, h_k, w_k)]`` (LongTensor)."""
        return self.quantizer.to_indices(self.latent(x))

    def decode(self, indices: list[torch.Tensor]) -> torch.Tensor:
        """Token maps (all K scales) -> reconstruction ``(B, C, F/r, T/r)``."""
        if len(indices) != self.quantizer.K:
            raise ValueError(f"decode needs all {self.quantizer.K} scales, got {len(indices)}; "
                             f"use partial_decode for a prefix")
        return self.partial_decode(indices, upto=self.quantizer.K)

    def partial_decode(self, indices: list[torch.Tensor], upto: int) -> torch.Tensor:
        """Reconstruction from the first ``upto`` scales only (progressive refinement)."""
        f_hat = self.quantizer.to_latent(indices, upto=upto)
        return self.decoder(self.post_quant_conv(f_hat))

    def teacher_forcing_inputs(self, indices: list[torch.Tensor]) -> torch.Tensor:
        """``(B, L - h_1 w_1, D)`` autoregressor inputs (see MultiScaleQuantizer)."""
        return self.quantizer.teacher_forcing_inputs(indices)

    # --- what the training loop calls -------------------------------------------------

    def training_losses(self, batch: tuple[torch.Tensor, dict]) -> dict[str, torch.Tensor]:
        """Weighted composite loss ``"loss"`` plus every term and per-scale codebook stats."""
        x = batch[0]
        x_hat, vq_loss, info = self(x)
        tok = self.cfg.tokenizer
        terms = reconstruction_losses(x_hat, x, self.cfg)
        terms["vq"] = vq_loss
        loss = (tok.l1_weight * terms["l1"] + tok.l2_weight * terms["l2"]
                + tok.spectral_weight * terms["spectral"] + tok.detail_weight * terms["detail"]
                + tok.vq_weight * vq_loss)
        if self.discriminator is not None:
            terms["gan_g"], terms["gan_d"] = hinge_gan_losses(self.discriminator, x, x_hat)
            loss = loss + tok.gan_weight * terms["gan_g"] + terms["gan_d"]
        terms["loss"] = loss
        terms["usage"] = info["usage"].mean()
        for k, (u, p) in enumerate(zip(info["usage"], info["perplexity"])):
            terms[f"usage_{k}"], terms[f"perplexity_{k}"] = u, p
        return terms
