"""Transformer pieces shared by the next-scale model and the raster baseline.

A block is VAR's ``AdaLNSelfAttn``: pre-LayerNorm attention and MLP whose
LayerNorms are modulated by the condition (scale, shift) and whose residual
branches are gated (gamma), all six vectors predicted from the condition::

    gamma1, gamma2, scale1, scale2, shift1, shift2 = Linear(SiLU(cond))
    x = x + gamma1 * attn(LN(x) * (1 + scale1) + shift1)
    x = x + gamma2 * mlp (LN(x) * (1 + scale2) + shift2)

The gates start at zero (DiT's "adaLN-Zero"; VAR starts them at 1e-3), so every
block is the identity at initialisation.  Attention takes an optional KV cache
so that sampling feeds only the new tokens.  Letters: B batch, L tokens,
C width, V vocabulary.  Defined in notebook 03.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import check_sampling


class KVCache:
    """Keys and values of every token seen so far, one entry per block."""

    def __init__(self, depth: int):
        self.kv: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * depth

    def extend(self, i: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append this step's ``(B, heads, l, hs)`` keys/values to block ``i``'s; return all of them."""
        if self.kv[i] is not None:
            k = torch.cat([self.kv[i][0], k], dim=2)
            v = torch.cat([self.kv[i][1], v], dim=2)
        self.kv[i] = (k, v)
        return k, v

    @property
    def length(self) -> int:
        return 0 if self.kv[0] is None else self.kv[0][0].shape[2]


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x_BLC: torch.Tensor, mask_LL: torch.Tensor | None = None,
                cache: KVCache | None = None, index: int = 0) -> torch.Tensor:
        b, l, c = x_BLC.shape
        q, k, v = self.qkv(x_BLC).view(b, l, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        # q, k, v: (B, heads, L, hs)
        if cache is not None:
            k, v = cache.extend(index, k, v)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask_LL)
        return self.proj(y.transpose(1, 2).reshape(b, l, c))


class AdaLNBlock(nn.Module):
    """Attention + MLP, both conditioned through adaptive LayerNorm (VAR / DiT)."""

    def __init__(self, width: int, heads: int, index: int, dropout: float = 0.0):
        super().__init__()
        self.index = index  # position in the stack, used to address the KV cache
        self.drop = nn.Dropout(dropout)  # on each residual branch (nanoGPT); identity in eval()
        self.norm = nn.LayerNorm(width, elementwise_affine=False)
        self.attn = SelfAttention(width, heads)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(approximate="tanh"),
                                 nn.Linear(4 * width, width))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x_BLC: torch.Tensor, cond_BC: torch.Tensor, mask_LL: torch.Tensor | None = None,
                cache: KVCache | None = None) -> torch.Tensor:
        gamma1, gamma2, scale1, scale2, shift1, shift2 = self.ada(cond_BC)[:, None].chunk(6, dim=-1)
        h = self.norm(x_BLC) * (1 + scale1) + shift1
        x_BLC = x_BLC + gamma1 * self.drop(self.attn(h, mask_LL, cache, self.index))
        h = self.norm(x_BLC) * (1 + scale2) + shift2
        return x_BLC + gamma2 * self.drop(self.mlp(h))


class AdaLNHead(nn.Module):
    """Final conditioned LayerNorm, then logits over the codebook: ``(B, L, C) -> (B, L, V)``."""

    def __init__(self, width: int, vocab: int):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.out = nn.Linear(width, vocab)

    def forward(self, x_BLC: torch.Tensor, cond_BC: torch.Tensor) -> torch.Tensor:
        scale, shift = self.ada(cond_BC)[:, None].chunk(2, dim=-1)
        return self.out(self.norm(x_BLC) * (1 + scale) + shift)


class ClassCondition(nn.Module):
    """(pitch, family) -> condition vector ``(B, C)``, with a learned *null* class for CFG.

    Pitch index 128 and family index ``n_families`` are the null class; during
    training both labels are replaced by it with probability ``dropout`` (VAR's
    10%), so one network learns both p(x | class) and p(x).  With
    ``family_dropout`` the family alone is dropped as well (ours), so it also
    learns p(x | pitch): the negative branch of family-only guidance
    (:meth:`negative`), which pushes toward the instrument without disturbing
    the pitch, as InstructPix2Pix guides each of its two conditions on its own.

    Pitch is ordinal, so besides a per-pitch table (initialised at zero) it is
    embedded through sinusoidal features of the MIDI number, periods 2 to 128
    semitones, like a positional encoding (ours): neighbouring pitches start out
    similar and share what they learn, which matters with only a few dozen
    examples per pitch.
    """

    def __init__(self, width: int, n_families: int, dropout: float, n_frequencies: int = 8,
                 family_dropout: float = 0.0):
        super().__init__()
        self.null_pitch, self.null_family, self.dropout = 128, n_families, dropout
        self.family_dropout = family_dropout
        periods = 2.0 ** torch.linspace(1, 7, n_frequencies)        # 2 .. 128 semitones
        self.register_buffer("omega", 2 * torch.pi / periods, persistent=False)
        self.pitch_features = nn.Linear(2 * n_frequencies, width)
        self.pitch = nn.Embedding(129, width)                       # row 128: the null pitch
        self.family = nn.Embedding(n_families + 1, width)
        nn.init.zeros_(self.pitch.weight[:128])
        for w in (self.pitch.weight[128:], self.family.weight):
            nn.init.trunc_normal_(w, std=(1 / (3 * width)) ** 0.5)

    def forward(self, pitch_B: torch.Tensor, family_B: torch.Tensor) -> torch.Tensor:
        if self.training and self.dropout > 0:
            drop = torch.rand(pitch_B.shape, device=pitch_B.device) < self.dropout
            pitch_B = torch.where(drop, self.null_pitch, pitch_B)
            family_B = torch.where(drop, self.null_family, family_B)
        if self.training and self.family_dropout > 0:
            drop = torch.rand(family_B.shape, device=family_B.device) < self.family_dropout
            family_B = torch.where(drop, self.null_family, family_B)
        angle = pitch_B[:, None].float() * self.omega                          # (B, n_frequencies)
        sinusoids = self.pitch_features(torch.cat([angle.sin(), angle.cos()], dim=1))
        sinusoids = sinusoids * (pitch_B != self.null_pitch)[:, None]          # the null class has none
        return self.pitch(pitch_B) + sinusoids + self.family(family_B)

    def null(self, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Labels of the null class, ``(B,)`` each."""
        return (torch.full((batch,), self.null_pitch, device=device),
                torch.full((batch,), self.null_family, device=device))

    def negative(self, pitch_B: torch.Tensor, family_B: torch.Tensor, guidance: str = "joint"
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Labels of guidance's negative branch: ``"joint"`` drops both (VAR), ``"family"`` the family only."""
        null_p, null_f = self.null(pitch_B.shape[0], pitch_B.device)
        return (null_p if guidance == "joint" else pitch_B), null_f


def sample_logits(logits_BlV: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 0.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one token per position: ``(B, l, V) -> (B, l)``.

    ``top_k`` keeps the k largest logits; ``top_p`` keeps the smallest set whose
    probability reaches p (always at least the best token); 0 disables either.
    Raises ``ConfigError`` (a ValueError) unless ``temperature > 0``, ``top_k >= 0``
    and ``0 <= top_p <= 1``.
    """
    check_sampling(temperature, top_k, top_p)
    logits = logits_BlV.float() / max(temperature, 1e-5)
    if top_k > 0:
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p > 0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        remove = cum - sorted_logits.softmax(-1) >= top_p  # mass before this token already >= p
        logits = logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))
    b, l, v = logits.shape
    # Inverse-CDF draw, one uniform per position: the first token whose cumulative
    # probability exceeds u (zero-probability tokens can never be chosen).  On CPU
    # torch.multinomial draws an exponential variate per vocabulary entry, ~6x slower
    # at V = 4096 (benchmarks/sampling_speed.py).  float64 keeps the tail exact.
    cdf = logits.softmax(-1).view(b * l, v).double().cumsum(-1)
    u = torch.rand(b * l, 1, generator=generator, device=cdf.device, dtype=cdf.dtype) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).clamp_max(v - 1).view(b, l)
