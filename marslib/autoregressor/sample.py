"""Sampling: next-scale generation with classifier-free guidance, then tokens -> audio.

One forward pass per scale.  With a KV cache each pass feeds only the new
scale's tokens; ``use_cache=False`` re-runs the whole prefix under the
block-causal mask instead (slower, same logits: a test checks it).

Classifier-free guidance mixes conditional and unconditional logits,
``(1 + t) * cond - t * uncond``, with ``t`` ramping linearly from 0 at the
first scale to ``cfg_scale`` at the last (VAR): coarse structure is sampled
freely, fine detail is pushed toward the class.  ``guidance="family"`` takes the
unconditional branch with the pitch kept and only the family dropped, so the push
is toward the instrument alone (needs a model trained with ``ar.family_dropout``).
Defined in notebook 03.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from ..audio import input_to_waveform
from ..cmx import from_model_input
from ..config import check_sampling
from ..tokenizer import Tokenizer
from .blocks import KVCache, sample_logits
from .model import NextScaleTransformer


def check_labels(pitch_B: torch.Tensor, family_B: torch.Tensor, n_families: int) -> None:
    if pitch_B.shape != family_B.shape or pitch_B.ndim != 1:
        raise ValueError(f"pitch and family must be (B,) tensors of equal size, got "
                         f"{tuple(pitch_B.shape)} and {tuple(family_B.shape)}")
    if pitch_B.min() < 0 or pitch_B.max() > 127:
        raise ValueError(f"pitch must be a MIDI number in 0..127, got {pitch_B.tolist()}")
    if family_B.min() < 0 or family_B.max() >= n_families:
        raise ValueError(f"family index must be in 0..{n_families - 1}, got {family_B.tolist()}")


@torch.no_grad()
def sample_tokens(model: NextScaleTransformer, tokenizer: Tokenizer, pitch_B: torch.Tensor,
                  family_B: torch.Tensor, cfg_scale: float = 2.0, temperature: float = 1.0, top_k: int = 0,
                  top_p: float = 0.0, seed: int = 0, use_cache: bool = True, progress: bool = False,
                  return_logits: bool = False, guidance: str = "joint",
                  prefix: list[torch.Tensor] | None = None):
    """Generate token maps ``[K x (B, h_k, w_k)]`` for the given labels.

    ``prefix``: token maps ``[j x (B, h_k, w_k)]`` of the first j < K scales (e.g. a real
    note's, from ``tokenizer.encode``), kept as given: the model only continues the note
    from scale j + 1 on (the timbre study asks how much each predicted scale costs).
    With ``return_logits`` also returns the guided logits of every scale
    ``[K x (B, l_k, V)]`` (what the cache test compares).  Bad sampling options
    (``temperature <= 0``, ``top_k < 0``, ``top_p`` outside [0, 1], ``cfg_scale < 0``)
    raise ``ConfigError`` before any work.
    """
    check_sampling(temperature, top_k, top_p, cfg_scale, guidance=guidance)
    q = tokenizer.quantizer
    if q.scales != model.scales or q.V != model.V:
        raise ValueError(f"tokenizer scales/codebook {q.scales}/{q.V} do not match the "
                         f"autoregressor's {model.scales}/{model.V}; load the tokenizer it was trained on")
    model.eval()
    device = model.pos_embed.device
    pitch_B, family_B = pitch_B.to(device), family_B.to(device)
    check_labels(pitch_B, family_B, model.condition.null_family)
    b, guided = pitch_B.shape[0], cfg_scale != 0
    prefix = [] if prefix is None else [t.to(device) for t in prefix]
    if len(prefix) >= len(model.scales) or any(t.shape != (b, *hw) for t, hw in zip(prefix, model.scales)):
        raise ValueError(f"prefix must be token maps of the first j < {len(model.scales)} scales "
                         f"{[(b, *hw) for hw in model.scales[:-1]]}, got {[tuple(t.shape) for t in prefix]}")
    if guided:  # one batch of 2B: conditional rows first, then the negative branch
        neg_p, neg_f = model.condition.negative(pitch_B, family_B, guidance)
        pitch_B, family_B = torch.cat([pitch_B, neg_p]), torch.cat([family_B, neg_f])
    cond = model.condition(pitch_B, family_B)
    gen = torch.Generator(device=device).manual_seed(seed)
    cache = KVCache(len(model.blocks)) if use_cache else None
    x = model.embed_scale(0, model.start_tokens(cond))     # (2B, first_l, C)
    seen, f_hat, indices, all_logits = x, 0, [], []
    K = len(model.scales)
    for k in tqdm(range(K), desc="sampling scales", disable=not progress):
        if use_cache:
            logits = model.step(x, cond, cache)
        else:  # everything seen so far, masked like training; keep the last scale's rows
            mask = model.mask_LL[: seen.shape[1], : seen.shape[1]]
            h = seen
            for block in model.blocks:
                h = block(h, cond, mask)
            logits = model.head(h, cond)[:, -model.lengths[k]:]
        if guided:
            t = cfg_scale * k / max(1, K - 1)
            logits = (1 + t) * logits[:b] - t * logits[b:]
        all_logits.append(logits)
        idx = (prefix[k] if k < len(prefix) else
               sample_logits(logits, temperature, top_k, top_p, gen).view(b, *model.scales[k]))
        indices.append(idx)
        f_hat, nxt = q.next_scale_input(k, f_hat, idx)
        if k + 1 < K:
            x = model.embed_scale(k + 1, model.word_embed(nxt))
            x = torch.cat([x, x]) if guided else x
            if not use_cache:
                seen = torch.cat([seen, x], dim=1)
    return (indices, all_logits) if return_logits else indices


@torch.no_grad()
def tokens_to_audio(tokenizer: Tokenizer, indices: list[torch.Tensor], n_iter: int | None = None,
                    seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Token maps -> ``(spectrogram (B, 1, F, T) normalised, waveform (B, N))``.

    decode -> CMX unfold (truncation zero-fills) -> de-normalise -> Griffin-Lim.
    """
    cfg = tokenizer.cfg
    x_hat = tokenizer.decode(indices).clamp(-1, 1)
    spec = from_model_input(x_hat, cfg.cmx, cfg.spec_shape, fill_value=-1.0)
    wave = input_to_waveform(spec, cfg.audio, n_iter=n_iter, seed=seed)
    return spec, wave
