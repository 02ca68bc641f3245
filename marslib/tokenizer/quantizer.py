"""Multi-scale residual vector quantisation (VAR's MSRQ) with one shared codebook.

A latent ``f`` of shape ``(B, D, H, W)`` is described coarse to fine by K token
maps of sizes ``(h_1, w_1) ... (h_K, w_K) = (H, W)``.  Each scale quantises what
the coarser ones left unexplained::

    f_rest = f ;  f_hat = 0
    for k in 1..K:
        z_k   = area_down(f_rest, (h_k, w_k))          # (B, D, h_k, w_k)
        idx_k = nearest code of each z_k vector         # (B, h_k, w_k), one codebook for all k
        h_k   = phi_k(bicubic_up(e[idx_k], (H, W)))    # back to the latent grid, refined
        f_hat = f_hat + h_k ;  f_rest = f_rest - h_k

``phi(h) = (1 - a) h + a conv3x3(h)`` with a few convs shared across scales
(VAR's ``PhiPartiallyShared``).  Scales may be rectangular (spectrograms are
not square).  The same class gives every view of the pyramid the models need:
``forward`` (tokenizer training), ``to_indices``/``to_latent`` (latent <-> tokens),
``teacher_forcing_inputs`` and ``next_scale_input`` (the autoregressor).
Defined in notebook 02.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..config import validate_scales

Scale = tuple[int, int]


class Phi(nn.Conv2d):
    """``phi(h) = (1 - a) h + a conv3x3(h)``: a light refinement of an upsampled scale (VAR)."""

    def __init__(self, dim: int, ratio: float):
        super().__init__(dim, dim, kernel_size=3, padding=1)
        self.ratio = ratio

    def forward(self, h_BDHW: torch.Tensor) -> torch.Tensor:
        return (1 - self.ratio) * h_BDHW + self.ratio * super().forward(h_BDHW)


class PhiPartiallyShared(nn.Module):
    """``n`` phi convs shared by all scales; scale k uses the one whose tick is nearest k/(K-1).

    With 4 convs and VAR's 10 scales this gives conv indices [0,0,1,1,1,2,2,3,3,3].
    """

    def __init__(self, dim: int, ratio: float, n: int, n_scales: int):
        super().__init__()
        self.convs = nn.ModuleList(Phi(dim, ratio) for _ in range(n))
        # float64, as VAR's numpy ticks: some scales sit exactly between two ticks.
        ticks = torch.linspace(1 / (3 * n), 1 - 1 / (3 * n), n, dtype=torch.float64) if n == 4 else \
            torch.linspace(1 / (2 * n), 1 - 1 / (2 * n), n, dtype=torch.float64)
        keys = torch.linspace(0, 1, n_scales, dtype=torch.float64) if n_scales > 1 else torch.zeros(1)
        self.index = [int((ticks - key).abs().argmin()) for key in keys]  # scale -> conv

    def forward(self, h_BDHW: torch.Tensor, k: int) -> torch.Tensor:
        return self.convs[self.index[k]](h_BDHW)


class MultiScaleQuantizer(nn.Module):
    """VAR-style multi-scale residual VQ over ``(B, D, H, W)`` latents.

    Args:
        codebook_size: V, entries of the one codebook every scale shares.
        dim: D, code vector size (= latent channels).
        scales: ``[(h_1, w_1), ..., (h_K, w_K)]``, increasing, ending at ``(H, W)``.
        beta: commitment weight.
        phi_ratio, n_phi: the refinement ``phi`` (a = 0.5, 4 shared convs in VAR).
        lookup: ``"l2"`` (VAR) or ``"cosine"`` (ImageFolder) nearest-code search.
        restart_every: every this many training calls, codes unused lately are
            re-seeded from the batch's residual vectors (0 = never).
    """

    def __init__(self, codebook_size: int, dim: int, scales: list[Scale] | tuple[Scale, ...],
                 beta: float = 0.25, phi_ratio: float = 0.5, n_phi: int = 4, lookup: str = "l2",
                 restart_every: int = 50):
        super().__init__()
        self.scales: list[Scale] = [tuple(s) for s in scales]
        validate_scales(tuple(self.scales), self.scales[-1])
        if lookup not in ("l2", "cosine"):
            raise ValueError(f"lookup must be 'l2' or 'cosine', got {lookup!r}")
        self.V, self.D, self.K = codebook_size, dim, len(self.scales)
        self.beta, self.lookup, self.restart_every = beta, lookup, restart_every
        self.codebook = nn.Embedding(codebook_size, dim)
        nn.init.uniform_(self.codebook.weight, -1 / codebook_size, 1 / codebook_size)
        self.phi = PhiPartiallyShared(dim, phi_ratio, n_phi, self.K)
        # Exponential moving average of how often each code is hit at each scale.
        self.register_buffer("ema_hits_KV", torch.zeros(self.K, codebook_size))
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    # --- the building blocks ---------------------------------------------------------

    @property
    def latent_hw(self) -> Scale:
        return self.scales[-1]

    @property
    def tokens_per_scale(self) -> list[int]:
        return [h * w for h, w in self.scales]

    def _check_latent(self, f_BDHW: torch.Tensor) -> None:
        if f_BDHW.ndim != 4 or f_BDHW.shape[1] != self.D or tuple(f_BDHW.shape[-2:]) != self.latent_hw:
            raise ValueError(f"expected a latent (B, {self.D}, {self.latent_hw[0]}, {self.latent_hw[1]}), "
                             f"got {tuple(f_BDHW.shape)}")

    def nearest_code(self, z_BDhw: torch.Tensor) -> torch.Tensor:
        """Index of the nearest codebook entry for every vector: ``(B, D, h, w) -> (B, h, w)``."""
        z_ND = z_BDhw.permute(0, 2, 3, 1).reshape(-1, self.D)
        e_VD = self.codebook.weight.detach()
        if self.lookup == "cosine":
            idx = (F.normalize(z_ND, dim=1) @ F.normalize(e_VD, dim=1).T).argmax(1)
        else:  # ||z - e||^2 = ||z||^2 - 2 z.e + ||e||^2; ||z||^2 is the same for every e
            idx = (e_VD.pow(2).sum(1) - 2 * z_ND @ e_VD.T).argmin(1)
        b, _, h, w = z_BDhw.shape
        return idx.view(b, h, w)

    def embed(self, idx_Bhw: torch.Tensor) -> torch.Tensor:
        """Code vectors of a token map: ``(B, h, w) -> (B, D, h, w)``."""
        return self.codebook(idx_Bhw).permute(0, 3, 1, 2)

    def upsample(self, h_BDhw: torch.Tensor, k: int) -> torch.Tensor:
        """Scale ``k``'s code map to the latent grid, refined by its phi: ``(B, D, H, W)``."""
        if k != self.K - 1:  # the finest scale already has the latent's size
            h_BDhw = F.interpolate(h_BDhw, size=self.latent_hw, mode="bicubic", align_corners=False)
        return self.phi(h_BDhw, k)

    def downsample(self, f_BDHW: torch.Tensor, k: int) -> torch.Tensor:
        """Area-average the latent to scale ``k``'s grid: ``(B, D, h_k, w_k)``."""
        if k == self.K - 1:
            return f_BDHW
        return F.interpolate(f_BDHW, size=self.scales[k], mode="area")

    # --- training view ---------------------------------------------------------------

    def forward(self, f_BDHW: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Quantise for tokenizer training.

        Returns:
            ``f_hat``: ``(B, D, H, W)`` quantised latent whose gradient flows straight
            through to ``f`` (the encoder);
            ``vq_loss``: scalar, mean over scales of
            ``beta * ||sg(f_hat_k) - f||^2 + ||f_hat_k - sg(f)||^2`` on the running sum
            ``f_hat_k`` of scales 1..k (VAR);
            ``info``: ``{"indices": [K x (B, h_k, w_k)], "usage": (K,), "perplexity": (K,)}``.
        """
        self._check_latent(f_BDHW)
        # The residual sums and the nearest-code search stay float32 under autocast, as in
        # VAR: with bf16's 8-bit mantissa, rounding error would pick between close codes.
        with torch.autocast(f_BDHW.device.type, enabled=False):
            return self._quantize(f_BDHW.float())

    def _quantize(self, f_BDHW: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        f_rest, f_hat = f_BDHW.detach().clone(), torch.zeros_like(f_BDHW)
        vq_loss = f_BDHW.new_zeros(())
        indices, residuals = [], []
        for k in range(self.K):
            z = self.downsample(f_rest, k)
            idx = self.nearest_code(z)
            h = self.upsample(self.embed(idx), k)
            f_hat = f_hat + h
            f_rest = f_rest - h.detach()
            vq_loss = vq_loss + self.beta * F.mse_loss(f_hat.detach(), f_BDHW) + F.mse_loss(f_hat, f_BDHW.detach())
            indices.append(idx)
            residuals.append(z.detach())
        info = self._usage(indices)
        if self.training:
            self._track_usage(indices, residuals)
        # Straight-through: the value of f_hat, the gradient of f.
        f_hat_st = f_hat.detach() + (f_BDHW - f_BDHW.detach())  # exactly f_hat in value
        return f_hat_st, vq_loss / self.K, info

    def _usage(self, indices: list[torch.Tensor]) -> dict:
        usage, perplexity = [], []
        for idx in indices:
            counts = torch.bincount(idx.flatten(), minlength=self.V).float()
            p = counts / counts.sum()
            usage.append((counts > 0).float().mean())
            perplexity.append(torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum()))
        return {"indices": indices, "usage": torch.stack(usage), "perplexity": torch.stack(perplexity)}

    @torch.no_grad()
    def _track_usage(self, indices: list[torch.Tensor], residuals: list[torch.Tensor]) -> None:
        decay = 0.9 if self.calls < 100 else 0.99  # fast at first, as VAR's vocab-hit EMA
        for k, idx in enumerate(indices):
            hits = torch.bincount(idx.flatten(), minlength=self.V).float()
            self.ema_hits_KV[k].mul_(decay).add_(hits, alpha=1 - decay)
        self.calls += 1
        if self.restart_every and int(self.calls) % self.restart_every == 0:
            pool = torch.cat([z.permute(0, 2, 3, 1).reshape(-1, self.D) for z in residuals])
            self.restart_dead_codes(pool)

    @torch.no_grad()
    def restart_dead_codes(self, pool_ND: torch.Tensor, threshold: float = 1.0) -> int:
        """Re-seed codes nobody has used lately with random residual vectors from ``pool``.

        A code is dead when it is hit less than ``threshold`` times per batch (its
        hit EMA summed over scales), as in Jukebox.  Without this, codes that lose
        the first few lookups are never chosen again and the codebook collapses
        onto a small fraction of its entries.

        Returns:
            how many codes were restarted.
        """
        dead = (self.ema_hits_KV.sum(0) < threshold).nonzero().flatten()
        if len(dead) and len(pool_ND):
            pick = torch.randint(len(pool_ND), (len(dead),), device=pool_ND.device)
            noise = 0.01 * pool_ND.std() * torch.randn(len(dead), self.D, device=pool_ND.device)
            self.codebook.weight.data[dead] = pool_ND[pick] + noise
            self.ema_hits_KV[:, dead] = threshold / self.K  # a grace period before the next check
        if dist.is_available() and dist.is_initialized():  # data parallel: rank 0's codebook wins
            dist.broadcast(self.codebook.weight.data, src=0)
            dist.broadcast(self.ema_hits_KV, src=0)
        return len(dead)

    # --- tokenizer views: indices <-> latent ------------------------------------------

    @torch.no_grad()
    def to_indices(self, f_BDHW: torch.Tensor) -> list[torch.Tensor]:
        """Latent -> token maps ``[K x (B, h_k, w_k)]`` (LongTensor)."""
        self._check_latent(f_BDHW)
        f_rest, indices = f_BDHW.clone(), []
        for k in range(self.K):
            idx = self.nearest_code(self.downsample(f_rest, k))
            f_rest = f_rest - self.upsample(self.embed(idx), k)
            indices.append(idx)
        return indices

    def check_indices(self, indices: list[torch.Tensor]) -> None:
        """Raise a clear error unless ``indices`` is a valid (prefix of the) token pyramid."""
        if not 1 <= len(indices) <= self.K:
            raise ValueError(f"expected 1..{self.K} token maps, got {len(indices)}")
        for k, idx in enumerate(indices):
            if idx.ndim != 3 or tuple(idx.shape[1:]) != self.scales[k]:
                raise ValueError(f"scale {k}: expected token map (B, {self.scales[k][0]}, "
                                 f"{self.scales[k][1]}), got {tuple(idx.shape)}")
            if idx.min() < 0 or idx.max() >= self.V:
                raise ValueError(f"scale {k}: token ids must lie in [0, {self.V}), got "
                                 f"[{int(idx.min())}, {int(idx.max())}]")

    def to_latent(self, indices: list[torch.Tensor], upto: int | None = None) -> torch.Tensor:
        """Token maps -> latent ``f_hat`` (B, D, H, W), summing scales ``0 .. upto-1``.

        ``upto=None`` uses every map given; a prefix of the pyramid gives the coarse
        reconstruction that partial decoding shows.
        """
        self.check_indices(indices)
        upto = len(indices) if upto is None else upto
        if not 1 <= upto <= len(indices):
            raise ValueError(f"upto must be in 1..{len(indices)}, got {upto}")
        f_hat = 0
        for k in range(upto):
            f_hat = f_hat + self.upsample(self.embed(indices[k]), k)
        return f_hat

    # --- autoregressor views ---------------------------------------------------------

    def teacher_forcing_inputs(self, indices: list[torch.Tensor]) -> torch.Tensor:
        """Inputs of scales 2..K for teacher forcing: ``(B, L - h_1 w_1, D)``.

        Scale k+1's input is the running reconstruction of scales 1..k,
        area-downsampled to scale k+1's grid (VAR's ``idxBl_to_var_input``).
        """
        self.check_indices(indices)
        f_hat, out = 0, []
        for k in range(self.K - 1):
            f_hat = f_hat + self.upsample(self.embed(indices[k]), k)
            out.append(self.downsample(f_hat, k + 1).flatten(2).transpose(1, 2))  # (B, h*w, D)
        if not out:
            return self.codebook.weight.new_zeros(indices[0].shape[0], 0, self.D)
        return torch.cat(out, dim=1)

    def next_scale_input(self, k: int, f_hat: torch.Tensor | int, idx_Bhw: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """One sampling step: add scale ``k``'s tokens to ``f_hat``.

        Returns:
            ``(f_hat, next_in)`` with ``next_in`` the input of scale ``k+1``,
            ``(B, h_{k+1} w_{k+1}, D)`` (or ``f_hat`` flattened after the last scale).
        """
        f_hat = f_hat + self.upsample(self.embed(idx_Bhw), k)
        nxt = f_hat if k == self.K - 1 else self.downsample(f_hat, k + 1)
        return f_hat, nxt.flatten(2).transpose(1, 2)
