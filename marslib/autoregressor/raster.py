"""Raster next-token baseline: one token at a time over a single ``h x w`` token map.

The classic VQ-GAN/GPT recipe that VAR (and MARS) improve on: flatten the finest
token grid row by row (L = h * w tokens) and predict each token from all earlier
ones under a causal mask.  Same blocks, width and depth as the next-scale model,
so the two differ only in *what* is predicted per forward pass: one token here,
a whole scale there.  Sampling needs L passes instead of K.

Its tokens come from a single-scale tokenizer (``tokenizer.scales = ((h, w),)``),
which is an ordinary VQ-VAE.  Defined in notebook 03.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..config import NSYNTH_FAMILIES, ARConfig, check_sampling
from .blocks import AdaLNBlock, AdaLNHead, ClassCondition, KVCache, sample_logits
from .sample import check_labels


class RasterTransformer(nn.Module):
    """GPT over ``L = h * w`` tokens in raster order, conditioned on (pitch, family)."""

    def __init__(self, ar: ARConfig, grid: tuple[int, int], codebook_size: int,
                 n_families: int = len(NSYNTH_FAMILIES)):
        super().__init__()
        self.grid, self.L, self.V = tuple(grid), grid[0] * grid[1], codebook_size
        c, std = ar.width, (1 / (3 * ar.width)) ** 0.5
        self.condition = ClassCondition(c, n_families, ar.cond_dropout,
                                        family_dropout=ar.family_dropout)
        self.token_embed = nn.Embedding(codebook_size, c)
        self.pos_embed = nn.Parameter(torch.randn(1, self.L, c) * std)
        self.blocks = nn.ModuleList(AdaLNBlock(c, ar.heads, i, ar.dropout) for i in range(ar.depth))
        self.head = AdaLNHead(c, codebook_size)
        self.register_buffer("mask_LL", torch.ones(self.L, self.L, dtype=torch.bool).tril(), persistent=False)

    def forward(self, pitch_B: torch.Tensor, family_B: torch.Tensor, tokens_BL: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits ``(B, L, V)``: position i sees the class and tokens < i."""
        if tokens_BL.shape[1:] != (self.L,):
            raise ValueError(f"expected tokens (B, {self.L}), got {tuple(tokens_BL.shape)}")
        cond = self.condition(pitch_B, family_B)
        # start token (the class) then tokens 0 .. L-2, shifted one place right
        x = torch.cat([cond[:, None], self.token_embed(tokens_BL[:, :-1])], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x, cond, self.mask_LL)
        return self.head(x, cond)

    def training_losses(self, batch: tuple[torch.Tensor, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        _, labels = batch
        tokens = labels["tokens"]
        logits = self(labels["pitch"], labels["family"], tokens)
        return {"loss": F.cross_entropy(logits.transpose(1, 2), tokens),
                "accuracy": (logits.argmax(-1) == tokens).float().mean()}

    @torch.no_grad()
    def sample(self, pitch_B: torch.Tensor, family_B: torch.Tensor, cfg_scale: float = 2.0,
               temperature: float = 1.0, top_k: int = 0, top_p: float = 0.0, seed: int = 0,
               progress: bool = False, guidance: str = "joint") -> torch.Tensor:
        """KV-cached sampling, one token per pass: returns the token map ``(B, h, w)``."""
        check_sampling(temperature, top_k, top_p, cfg_scale, guidance=guidance)  # before any work
        self.eval()
        device = self.pos_embed.device
        pitch_B, family_B = pitch_B.to(device), family_B.to(device)
        check_labels(pitch_B, family_B, self.condition.null_family)
        b, guided = pitch_B.shape[0], cfg_scale != 0
        if guided:
            neg_p, neg_f = self.condition.negative(pitch_B, family_B, guidance)
            pitch_B, family_B = torch.cat([pitch_B, neg_p]), torch.cat([family_B, neg_f])
        cond = self.condition(pitch_B, family_B)
        gen = torch.Generator(device=device).manual_seed(seed)
        cache = KVCache(len(self.blocks))
        x = cond[:, None] + self.pos_embed[:, :1]
        out = []
        for i in tqdm(range(self.L), desc="sampling tokens", disable=not progress):
            for block in self.blocks:
                x = block(x, cond, None, cache)
            logits = self.head(x, cond)
            if guided:
                logits = (1 + cfg_scale) * logits[:b] - cfg_scale * logits[b:]
            tok = sample_logits(logits, temperature, top_k, top_p, gen)  # (B, 1)
            out.append(tok)
            if i + 1 < self.L:
                x = self.token_embed(tok) + self.pos_embed[:, i + 1:i + 2]
                x = torch.cat([x, x]) if guided else x
        return torch.cat(out, dim=1).view(b, *self.grid)
