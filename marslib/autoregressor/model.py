"""The next-scale autoregressive transformer (VAR, as MARS uses it on spectrogram tokens).

Tokens come in K scales, coarse to fine (L = sum of h_k * w_k).  All tokens of
scale k are predicted *in parallel* from the class and the scales before it:

    p(r_1, ..., r_K | class) = prod_k p(r_k | r_1 .. r_{k-1}, class)

Input sequence (B, L, C) for teacher forcing:

    scale 1:     the start token  = class embedding (+ pos_start)
    scale k > 1: word_embed(running reconstruction of scales < k, area-downsampled
                 to scale k's grid)  -- from ``Tokenizer.teacher_forcing_inputs``
    every token: + level embedding (which scale) + learned position in its scale

A block-causal mask lets a token see its own scale and all coarser ones; the
class also conditions every block through AdaLN.  Sampling (``sample.py``)
runs one forward pass per scale with a KV cache.
Letters: B batch, L tokens, l one scale's tokens, C width, D code dim, V vocab.
Defined in notebook 03.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import NSYNTH_FAMILIES, ARConfig, TokenizerConfig
from .blocks import AdaLNBlock, AdaLNHead, ClassCondition, KVCache


def block_causal_mask(scales: list[tuple[int, int]]) -> torch.Tensor:
    """``(L, L)`` bool, True where query i may attend to key j: scale(j) <= scale(i)."""
    level = torch.cat([torch.full((h * w,), k) for k, (h, w) in enumerate(scales)])
    return level[:, None] >= level[None, :]


class NextScaleTransformer(nn.Module):
    """VAR-style transformer over a tokenizer's K scales, conditioned on (pitch, family)."""

    def __init__(self, ar: ARConfig, tok: TokenizerConfig, n_families: int = len(NSYNTH_FAMILIES)):
        super().__init__()
        self.scales = [tuple(s) for s in tok.scales]
        self.lengths = [h * w for h, w in self.scales]
        self.L, self.first_l, self.V = sum(self.lengths), self.lengths[0], tok.codebook_size
        self.scale_balance = ar.scale_balance
        c, std = ar.width, (1 / (3 * ar.width)) ** 0.5
        self.condition = ClassCondition(c, n_families, ar.cond_dropout,
                                        family_dropout=ar.family_dropout)
        self.pos_start = nn.Parameter(torch.randn(1, self.first_l, c) * std)
        self.word_embed = nn.Linear(tok.latent_dim, c)
        self.level_embed = nn.Embedding(len(self.scales), c)
        self.pos_embed = nn.Parameter(torch.randn(1, self.L, c) * std)  # learned 2-D position per scale
        self.blocks = nn.ModuleList(AdaLNBlock(c, ar.heads, i, ar.dropout) for i in range(ar.depth))
        self.head = AdaLNHead(c, tok.codebook_size)
        level = torch.cat([torch.full((n,), k) for k, n in enumerate(self.lengths)])
        self.register_buffer("level_L", level, persistent=False)
        self.register_buffer("mask_LL", block_causal_mask(self.scales), persistent=False)

    def scale_slice(self, k: int) -> slice:
        start = sum(self.lengths[:k])
        return slice(start, start + self.lengths[k])

    def embed_scale(self, k: int, x_BlC: torch.Tensor) -> torch.Tensor:
        """Add the level and position embeddings of scale ``k`` to its token inputs."""
        sl = self.scale_slice(k)
        return x_BlC + self.level_embed(self.level_L[sl]) + self.pos_embed[:, sl]

    def start_tokens(self, cond_BC: torch.Tensor) -> torch.Tensor:
        """Scale 1's input: the class embedding, repeated over its positions ``(B, first_l, C)``."""
        return cond_BC[:, None].expand(-1, self.first_l, -1) + self.pos_start

    def forward(self, pitch_B: torch.Tensor, family_B: torch.Tensor, x_BlD: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits for every token: ``(B, L, V)``.

        Args:
            x_BlD: ``(B, L - first_l, D)`` inputs of scales 2..K
                (``Tokenizer.teacher_forcing_inputs``).
        """
        if x_BlD.shape[1:] != (self.L - self.first_l, self.word_embed.in_features):
            raise ValueError(f"expected teacher-forcing inputs (B, {self.L - self.first_l}, "
                             f"{self.word_embed.in_features}), got {tuple(x_BlD.shape)}")
        cond = self.condition(pitch_B, family_B)                                  # (B, C)
        x = torch.cat([self.start_tokens(cond), self.word_embed(x_BlD)], dim=1)   # (B, L, C)
        x = x + self.level_embed(self.level_L) + self.pos_embed
        for block in self.blocks:
            x = block(x, cond, self.mask_LL)
        return self.head(x, cond)

    def step(self, x_BlC: torch.Tensor, cond_BC: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Logits of one scale's tokens given the cached coarser scales: ``(B, l, V)``.

        No mask is needed: the new tokens may see each other (same scale) and
        everything in the cache (coarser scales).
        """
        for block in self.blocks:
            x_BlC = block(x_BlC, cond_BC, None, cache)
        return self.head(x_BlC, cond_BC)

    def training_losses(self, batch: tuple[torch.Tensor, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Cross-entropy, per-scale CE ``ce_k`` and accuracy.

        ``ar.scale_balance`` = b mixes two means: ``(1 - b) * token + b * scale``.  ``token`` is
        the plain mean over all L tokens (VAR), where scale k weighs ``l_k / L``, so the
        1-token first scale, which fixes the whole note, weighs 1/261 on the course grid;
        ``scale`` is the mean of the K per-scale means, every scale alike.
        """
        x_BlD, labels = batch
        tokens_BL = labels["tokens"]
        logits = self(labels["pitch"], labels["family"], x_BlD)
        ce_BL = F.cross_entropy(logits.transpose(1, 2), tokens_BL, reduction="none")
        per_scale = {f"ce_{k}": ce_BL[:, self.scale_slice(k)].mean() for k in range(len(self.scales))}
        b = self.scale_balance
        loss = (1 - b) * ce_BL.mean() + b * torch.stack(list(per_scale.values())).mean()
        return {"loss": loss, "accuracy": (logits.argmax(-1) == tokens_BL).float().mean(), **per_scale}
