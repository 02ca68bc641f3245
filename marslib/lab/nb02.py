"""Checks for notebook 02's exercises (see :mod:`marslib.lab`).

Exercises 1-4 retrain the tokenizer on the lab's cheap path (:mod:`marslib.lab.quick`).
Their checks ask the cheap path for the exercise's quick models (trained once per
kernel: the student's own runs are reused, not retrained), or take them as ``models=``
(the tests do), verify that each was trained the way the exercise asks (its config
says so), recompute the numbers the answer reports (codebook usage, LSD, bitrate) and
judge the conclusion against them.  Smoke models are barely trained, so no check expects a training
outcome to go one way: only that the answer says what its own models measure.
Exercise 5 needs no training; its check decodes the swapped token maps itself.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch

from . import Exercise, Wrong
from .answers import close, fields


# -- measurements shared by the checks ------------------------------------------------

@torch.no_grad()
def token_maps(model, x_NCft: torch.Tensor, batch_size: int = 64) -> list[torch.Tensor]:
    """Token maps ``[K x (N, h_k, w_k)]`` of every clip of ``x`` (N, C, F/r, T/r)."""
    parts = [model.encode(x_NCft[i:i + batch_size]) for i in range(0, len(x_NCft), batch_size)]
    return [torch.cat([p[k] for p in parts]) for k in range(len(parts[0]))]


def codebook_stats(model, x_NCft: torch.Tensor) -> dict[str, Any]:
    """Codebook usage of ``model`` on ``x``: per scale and over all scales, and perplexity per scale."""
    V = model.cfg.tokenizer.codebook_size
    hits_KV = torch.stack([torch.bincount(idx.flatten(), minlength=V) for idx in token_maps(model, x_NCft)])
    p_KV = hits_KV / hits_KV.sum(1, keepdim=True)
    return {"usage_per_scale": (hits_KV > 0).float().mean(1).tolist(),
            "usage": float((hits_KV.sum(0) > 0).float().mean()),
            "perplexity": torch.exp(-(p_KV * p_KV.clamp_min(1e-12).log()).sum(1)).tolist()}


@torch.no_grad()
def lsd_per_scales(model, x_NCft: torch.Tensor) -> list[float]:
    """Mean LSD (dB) on ``x`` decoding scales 1..k, for k = 1..K (the last is ``reconstruction_report``'s)."""
    from .. import audio, cmx
    from ..metrics import log_spectral_distance

    cfg = model.cfg
    idx = token_maps(model, x_NCft)
    ref = audio.denormalise(cmx.from_model_input(x_NCft, cfg.cmx, cfg.spec_shape), cfg.audio)
    out = []
    for k in range(1, len(idx) + 1):
        x_hat = model.partial_decode(idx, upto=k).clamp(-1, 1)
        est = audio.denormalise(cmx.from_model_input(x_hat, cfg.cmx, cfg.spec_shape), cfg.audio)
        out.append(float(log_spectral_distance(ref, est).mean()))
    return out


def bitrate_bps(cfg) -> float:
    """Bits per second of a clip's tokens: sum_k h_k w_k log2 V / clip seconds."""
    tokens = sum(h * w for h, w in cfg.tokenizer.scales)
    return tokens * math.log2(cfg.tokenizer.codebook_size) / cfg.audio.clip_seconds


# -- helpers for judging answers ------------------------------------------------------

def _close_list(name: str, got: Any, want: list[float], rel: float = 0.02, abs_: float = 1e-3) -> None:
    if not isinstance(got, (list, tuple)) or len(got) != len(want):
        raise Wrong(f"{name} should be a list of {len(want)} numbers, one per scale")
    for k, (g, w) in enumerate(zip(got, want)):
        close(f"{name}[{k}]", g, w, rel, abs_)


def _same_quick_schedule(models: Mapping[str, Any], cfg) -> None:
    """Every model is a quick run (fewer steps than the notebook's) and all had the same schedule."""
    steps = {name: m.cfg.train_tokenizer.steps for name, m in models.items()}
    if len(set(steps.values())) != 1:
        raise Wrong(f"compare models trained alike: their step counts differ ({steps}); "
                    f"train each with quick_tokenizer")
    if cfg is not None and next(iter(steps.values())) >= cfg.train_tokenizer.steps:
        raise Wrong("these models had the notebook's full schedule: use quick_tokenizer, which trains "
                    "in a temporary folder for a fifth of the steps")


def _models(models: Any, names) -> Mapping:
    if not isinstance(models, Mapping) or set(models) != set(names):
        raise Wrong(f"models must be {{{', '.join(repr(n) for n in names)}}}")
    return models


def _choice(name: str, got: Any, options, right) -> None:
    """``got`` must be one of ``options``, and ``right`` unless that is ``None`` (a tie: either is right)."""
    if got not in options:
        raise Wrong(f"{name} is one of {list(options)}")
    if right is not None and got != right:
        raise Wrong(f"{name} = {got!r} contradicts your own numbers")


# -- 02.1 -------------------------------------------------------------------------------

def _quick(cfg, overrides):
    from .quick import quick_tokenizer

    return quick_tokenizer(cfg, overrides)[0]


def check_cosine(answer, X, cfg, models=None) -> str:
    names = ("l2", "cosine")
    ans = fields(answer, (*names, "more_codes"))
    models = _models(models or {name: _quick(cfg, {"tokenizer.lookup": name}) for name in names}, names)
    for name in names:
        if models[name].cfg.tokenizer.lookup != name:
            raise Wrong(f"models[{name!r}] was trained with lookup {models[name].cfg.tokenizer.lookup!r}; "
                        f"set {{'tokenizer.lookup': {name!r}}}")
    _same_quick_schedule(models, cfg)
    usage = {}
    for name in names:
        got = fields(ans[name], ("usage", "lsd"))
        usage[name] = codebook_stats(models[name], X)["usage"]
        close(f"{name}['usage']", got["usage"], usage[name], abs_=1e-6)
        close(f"{name}['lsd']", got["lsd"], lsd_per_scales(models[name], X)[-1])
    tie = usage["l2"] == usage["cosine"]
    _choice("more_codes", ans["more_codes"], names, None if tie else max(usage, key=usage.get))
    return (f"codebook usage: L2 {usage['l2']:.0%}, cosine {usage['cosine']:.0%} of the codes, "
            f"with the same quick schedule")


# -- 02.2 -------------------------------------------------------------------------------

def check_restarts(answer, X, cfg, models=None) -> str:
    names = ("with_restarts", "without_restarts")
    ans = fields(answer, (*names, "more_codes"))
    models = _models(models or {"with_restarts": _quick(cfg, {}),
                                "without_restarts": _quick(cfg, {"tokenizer.restart_every": 0})}, names)
    if models["with_restarts"].cfg.tokenizer.restart_every <= 0:
        raise Wrong("models['with_restarts'] never restarts codes: use the notebook's own setting")
    if models["without_restarts"].cfg.tokenizer.restart_every != 0:
        raise Wrong("models['without_restarts'] still restarts codes: set {'tokenizer.restart_every': 0}")
    _same_quick_schedule(models, cfg)
    usage = {}
    for name in names:
        got = fields(ans[name], ("usage_per_scale", "usage"))
        stats = codebook_stats(models[name], X)
        _close_list(f"{name}['usage_per_scale']", got["usage_per_scale"], stats["usage_per_scale"], abs_=1e-6)
        close(f"{name}['usage']", got["usage"], stats["usage"], abs_=1e-6)
        usage[name] = stats["usage"]
    tie = usage["with_restarts"] == usage["without_restarts"]
    _choice("more_codes", ans["more_codes"], names, None if tie else max(usage, key=usage.get))
    return (f"with restarts {usage['with_restarts']:.0%} of the codes are used, without "
            f"{usage['without_restarts']:.0%}")


# -- 02.3 -------------------------------------------------------------------------------

def check_scales(answer, X, cfg, model=None) -> str:
    from ..config import ConfigError, validate_scales

    ans = fields(answer, ("scales", "tokens_per_clip", "bitrate_bps", "lsd_per_scales"))
    try:
        scales = tuple(tuple(int(v) for v in s) for s in ans["scales"])
    except (TypeError, ValueError):
        raise Wrong("scales is a list of [h, w] pairs") from None
    if scales == tuple(cfg.tokenizer.scales):
        raise Wrong("these are the notebook's own scales: try fewer or more")
    try:
        validate_scales(scales, cfg.latent_shape)
    except ConfigError as err:
        raise Wrong(str(err)) from None
    model = model or _quick(cfg, {"tokenizer.scales": [list(s) for s in scales]})
    if scales != tuple(model.cfg.tokenizer.scales):
        raise Wrong(f"scales {scales} are not the model's {model.cfg.tokenizer.scales}: report the model you trained")
    _same_quick_schedule({"yours": model}, cfg)
    tokens = sum(h * w for h, w in scales)
    if ans["tokens_per_clip"] != tokens:
        raise Wrong(f"tokens_per_clip = {ans['tokens_per_clip']!r}: add up h * w over the scales")
    close("bitrate_bps", ans["bitrate_bps"], bitrate_bps(model.cfg), rel=1e-6)
    lsd = lsd_per_scales(model, X)
    _close_list("lsd_per_scales", ans["lsd_per_scales"], lsd)
    return (f"{len(scales)} scales, {tokens} tokens per clip (the notebook's: "
            f"{sum(h * w for h, w in cfg.tokenizer.scales)}), {bitrate_bps(model.cfg):,.0f} bit/s; "
            f"LSD {lsd[0]:.1f} dB after scale 1, {lsd[-1]:.1f} dB after all")


# -- 02.4 -------------------------------------------------------------------------------

def check_codebook_size(answer, X, cfg, models=None) -> str:
    V = cfg.tokenizer.codebook_size
    sizes = (V // 2, V, 2 * V)
    ans = fields(answer, (*sizes, "extra_bits_buy_quality"))
    models = _models(models or {size: _quick(cfg, {"tokenizer.codebook_size": size}) for size in sizes}, sizes)
    for size in sizes:
        if models[size].cfg.tokenizer.codebook_size != size:
            raise Wrong(f"models[{size}] has {models[size].cfg.tokenizer.codebook_size} codes; "
                        f"set {{'tokenizer.codebook_size': {size}}}")
    _same_quick_schedule(models, cfg)
    lsd = {}
    for size in sizes:
        got = fields(ans[size], ("bitrate_bps", "lsd", "perplexity"))
        close(f"[{size}]['bitrate_bps']", got["bitrate_bps"], bitrate_bps(models[size].cfg), rel=1e-6)
        stats = codebook_stats(models[size], X)
        _close_list(f"[{size}]['perplexity']", got["perplexity"], stats["perplexity"], rel=0.01)
        lsd[size] = lsd_per_scales(models[size], X)[-1]
        close(f"[{size}]['lsd']", got["lsd"], lsd[size])
    tokens = sum(h * w for h, w in cfg.tokenizer.scales)
    step = bitrate_bps(models[2 * V].cfg) - bitrate_bps(models[V].cfg)
    if not math.isclose(step, tokens / cfg.audio.clip_seconds, rel_tol=1e-9):  # guards the exercise itself
        raise Wrong(f"doubling V should add one bit per token ({tokens / cfg.audio.clip_seconds:,.0f} bit/s)")
    if ans["extra_bits_buy_quality"] not in (True, False):
        raise Wrong("extra_bits_buy_quality is True or False: is the LSD at 2V lower than at V?")
    if ans["extra_bits_buy_quality"] != (lsd[2 * V] < lsd[V]):
        raise Wrong(f"extra_bits_buy_quality contradicts your numbers: LSD {lsd[V]:.2f} dB at V = {V}, "
                    f"{lsd[2 * V]:.2f} dB at 2V = {2 * V}")
    return (f"each doubling of V adds one bit per token (+{step:,.0f} bit/s); LSD "
            + ", ".join(f"{lsd[s]:.2f} dB at V = {s}" for s in sizes))


# -- 02.5 -------------------------------------------------------------------------------

@torch.no_grad()
def coarse_swap_changes(model, indices: list[torch.Tensor], codes) -> dict[str, list[float]]:
    """Decode scale 1 alone with its token replaced by each code; how much, and how widely, it changes.

    ``indices`` are one clip's token maps ``[K x (1, h_k, w_k)]``.  The change is
    ``|x_code - x_original|`` on the normalised ``F x T`` spectrogram (before any clamping);
    ``frame_spread`` is the fraction of frames whose mean change reaches half the largest one.
    """
    from .. import cmx

    cfg = model.cfg

    def spec(ids):
        return cmx.from_model_input(model.partial_decode(ids, upto=1), cfg.cmx, cfg.spec_shape)[0, 0]  # (F, T)

    base = spec(indices)
    mean_change, spread = [], []
    for code in codes:
        diff = (spec([torch.full_like(indices[0], int(code))] + list(indices[1:])) - base).abs()
        per_frame = diff.mean(0)                                                 # (T,)
        mean_change.append(float(diff.mean()))
        spread.append(float((per_frame >= 0.5 * per_frame.max()).float().mean()))
    return {"mean_abs_change": mean_change, "frame_spread": spread}


def check_coarse_token(answer, model, indices) -> str:
    ans = fields(answer, ("original", "codes", "mean_abs_change", "frame_spread", "change"))
    if indices[0].numel() != 1 or len(indices[0]) != 1:
        raise Wrong("pass indices=[one clip's token maps]: a list of (1, h_k, w_k) tensors")
    original = int(indices[0].flatten()[0])
    if ans["original"] != original:
        raise Wrong(f"original = {ans['original']!r}, but the clip's scale-1 token is {original}")
    codes = [int(c) for c in ans["codes"]]
    V = model.cfg.tokenizer.codebook_size
    if len(codes) < 2 or len(set(codes)) != len(codes) or original in codes or not all(0 <= c < V for c in codes):
        raise Wrong(f"codes: at least two distinct codes in [0, {V}), none of them the original {original}")
    want = coarse_swap_changes(model, indices, codes)
    _close_list("mean_abs_change", ans["mean_abs_change"], want["mean_abs_change"], rel=0.02, abs_=1e-6)
    _close_list("frame_spread", ans["frame_spread"], want["frame_spread"], abs_=0.02)
    spread = sum(want["frame_spread"]) / len(codes)
    _choice("change", ans["change"], ("global", "local"), "global" if spread >= 0.5 else "local")
    return (f"one scale-1 token moves {spread:.0%} of the frames on average: it is a setting for the whole "
            f"clip (loudness, brightness), not a detail")


EXERCISES = [
    Exercise(id="02.1", title="Cosine lookup",
             expects="a dict {'l2': {'usage': float, 'lsd': float}, 'cosine': {...the same}, "
                     "'more_codes': 'l2' or 'cosine'} measured on quick tokenizers",
             check=check_cosine),
    Exercise(id="02.2", title="No dead-code restarts",
             expects="a dict {'with_restarts': {'usage_per_scale': [...], 'usage': float}, "
                     "'without_restarts': {...the same}, 'more_codes': 'with_restarts' or 'without_restarts'}",
             check=check_restarts),
    Exercise(id="02.3", title="Other scales",
             expects="a dict {'scales': [[h, w], ...], 'tokens_per_clip': int, 'bitrate_bps': float, "
                     "'lsd_per_scales': [...]} for a quick tokenizer with other scales",
             check=check_scales),
    Exercise(id="02.4", title="Bits against quality",
             expects="a dict {V // 2: {'bitrate_bps', 'lsd', 'perplexity'}, V: {...}, 2 * V: {...}, "
                     "'extra_bits_buy_quality': bool} for quick tokenizers with V // 2, V and 2V codes",
             check=check_codebook_size),
    Exercise(id="02.5", title="What does one coarse token mean?",
             expects="a dict {'original': int, 'codes': [int, ...], 'mean_abs_change': [...], "
                     "'frame_spread': [...], 'change': 'global' or 'local'}",
             check=check_coarse_token),
]
