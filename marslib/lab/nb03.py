"""Checks for notebook 03's exercises (see :mod:`marslib.lab`).

Sampling is deterministic given the seed, so most checks *regenerate* what the student
measured (token maps only, no Griffin-Lim: a fraction of a second each) and compare;
conclusions are judged against the student's own numbers, never against a trend the
barely trained `smoke` model may not show.
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import torch

from . import Exercise, Wrong

SAMPLING_KEYS = ("cfg_scale", "temperature", "top_k", "top_p", "guidance")


def require_keys(answer, kind, keys=()):
    """Raise Wrong unless ``answer`` is a ``kind`` (dict/list) holding ``keys``."""
    if not isinstance(answer, kind):
        raise Wrong(f"expected a {kind.__name__}, got {type(answer).__name__}")
    missing = [k for k in keys if k not in answer]
    if missing:
        raise Wrong(f"missing key(s) {missing}; expected {list(keys)}")


def require_close(a, b, tol, what):
    if not (isinstance(a, (int, float)) and math.isfinite(a)):
        raise Wrong(f"{what} must be a finite number, got {a!r}")
    if abs(a - b) > tol:
        raise Wrong(f"{what} is {a:.6g}, but regenerating it gives {b:.6g}")


def _tokens(model, tokenizer, pitch: int, family: int, seed: int, **sampling) -> torch.Tensor:
    """All L sampled tokens of one note, flattened: (L,)."""
    from ..autoregressor import sample_tokens

    idx = sample_tokens(model, tokenizer, torch.tensor([pitch]), torch.tensor([family]), seed=seed, **sampling)
    return torch.cat([i.flatten() for i in idx])


def agrees(claim, truth: bool) -> bool:
    """True when a yes/no answer (a Python or NumPy bool) says ``truth``; other types never agree."""
    return isinstance(claim, (bool, np.bool_)) and bool(claim) == bool(truth)


def _fraction_of_accuracy(acc, n, what):
    if not (isinstance(acc, (int, float)) and 0 <= acc <= 1):
        raise Wrong(f"{what} must be a fraction in [0, 1], got {acc!r}")
    if abs(acc * n - round(acc * n)) > 1e-6:
        raise Wrong(f"{what} = {acc} is not a whole number of clips out of n = {n}")


# --- 03.1 No guidance ------------------------------------------------------------------------

def check_no_guidance(answer, model, tokenizer, pitch, family, seed, sampling) -> str:
    keys = ("cfg_scales", "tokens_changed_vs_cfg0", "pyin_midi", "n", "accuracy_cfg0", "accuracy_default",
            "guidance_helps_pitch")
    require_keys(answer, dict, keys)
    scales, changed = list(answer["cfg_scales"]), list(answer["tokens_changed_vs_cfg0"])
    if 0 not in scales or sum(s > 0 for s in scales) < 2:
        raise Wrong("try guidance 0 and at least two larger scales (the exercise asks for 0, 4 and 8)")
    if len(changed) != len(scales) or len(answer["pyin_midi"]) != len(scales):
        raise Wrong("give one 'tokens_changed_vs_cfg0' and one 'pyin_midi' per guidance scale")
    settings = {k: sampling[k] for k in SAMPLING_KEYS if k != "cfg_scale"}
    base = _tokens(model, tokenizer, pitch, family, seed, cfg_scale=0.0, **settings)
    for s, c in zip(scales, changed):
        other = _tokens(model, tokenizer, pitch, family, seed, cfg_scale=float(s), **settings)
        require_close(c, float((other != base).float().mean()), 1e-6,
               f"the fraction of tokens changed at CFG {s:g} (compare each view's `.indices` with CFG 0's)")
    n = answer["n"]
    if not (isinstance(n, int) and n >= 2):
        raise Wrong(f"'n' is the number of conditions you scored (an int >= 2), got {n!r}")
    a0, a1 = answer["accuracy_cfg0"], answer["accuracy_default"]
    _fraction_of_accuracy(a0, n, "accuracy_cfg0")
    _fraction_of_accuracy(a1, n, "accuracy_default")
    helps = answer["guidance_helps_pitch"]
    if not agrees(helps, a1 > a0):
        raise Wrong(f"your accuracies are {a0:.0%} without guidance and {a1:.0%} with it: "
                    f"'guidance_helps_pitch' must say whether the second is higher")
    return (f"guidance changed {max(changed):.0%} of the tokens at most; pitch accuracy {a0:.0%} -> {a1:.0%} "
            f"on {n} conditions")


# --- 03.2 Truncated sampling -----------------------------------------------------------------

TRUNCATIONS = {"default": {}, "top_k": {"top_k": 8, "top_p": 0.0}, "top_p": {"top_k": 0, "top_p": 0.9}}


def noise_floor(spec: torch.Tensor) -> float:
    """Median normalised log-magnitude over every bin of a batch of spectrograms (-1 is silence)."""
    return float(spec.median())


def sweep_under(model, tokenizer, cfg, pitches, family, seed, sampling, change):
    """(noise floor, distinct finest-scale codes) of the pitch sweep sampled with ``sampling | change``."""
    from .. import cmx
    from ..autoregressor import sample_tokens

    settings = {**{k: sampling[k] for k in SAMPLING_KEYS}, **change}
    idx = sample_tokens(model, tokenizer, torch.tensor(list(pitches)), torch.full((len(pitches),), family),
                        seed=seed, **settings)
    with torch.no_grad():  # the spectrogram tokens_to_audio returns, without its Griffin-Lim
        x_hat = tokenizer.partial_decode(idx, len(idx)).clamp(-1, 1)
        spec = cmx.from_model_input(x_hat, cfg.cmx, cfg.spec_shape)
    return noise_floor(spec), int(idx[-1].unique().numel())


def check_truncation(answer, model, tokenizer, cfg, pitches, family, seed, sampling) -> str:
    require_keys(answer, dict, ("noise_floor", "distinct_codes", "fewest_codes"))
    floors, codes = answer["noise_floor"], answer["distinct_codes"]
    for part in (floors, codes):
        require_keys(part, dict, tuple(TRUNCATIONS))
    for name, change in TRUNCATIONS.items():
        floor, n_codes = sweep_under(model, tokenizer, cfg, pitches, family, seed, sampling, change)
        require_close(floors[name], floor, 1e-4, f"noise_floor[{name!r}] (median of the sweep's spectrograms)")
        if codes[name] != n_codes:
            raise Wrong(f"distinct_codes[{name!r}] is {codes[name]!r}, but the sweep's finest scale uses "
                        f"{n_codes} distinct codes")
    fewest = min(codes.values())
    if answer["fewest_codes"] not in [k for k, v in codes.items() if v == fewest]:
        raise Wrong(f"'fewest_codes' must name the setting with the fewest distinct codes: {codes}")
    return (f"noise floor {', '.join(f'{k} {v:+.3f}' for k, v in floors.items())}; "
            f"{answer['fewest_codes']} uses the fewest codes ({fewest})")


# --- 03.3 Temperature ------------------------------------------------------------------------

def seed_disagreement(model, tokenizer, pitch, family, seed, sampling, temperature, n_seeds=4) -> float:
    """Mean, over pairs of seeds ``seed .. seed + n_seeds - 1``, of the fraction of tokens that differ."""
    settings = {**{k: sampling[k] for k in SAMPLING_KEYS}, "temperature": temperature}
    draws = [_tokens(model, tokenizer, pitch, family, s, **settings) for s in range(seed, seed + n_seeds)]
    return float(np.mean([(a != b).float().mean().item() for a, b in combinations(draws, 2)]))


def check_temperature(answer, model, tokenizer, pitch, family, seed, sampling) -> str:
    require_keys(answer, dict, ("temperatures", "seed_disagreement", "most_varied"))
    temps, dis = list(answer["temperatures"]), list(answer["seed_disagreement"])
    if sorted(temps) != [0.5, 1.0, 1.5] or len(dis) != len(temps):
        raise Wrong("measure temperatures 0.5, 1.0 and 1.5, one disagreement each")
    for t, d in zip(temps, dis):
        require_close(d, seed_disagreement(model, tokenizer, pitch, family, seed, sampling, t), 1e-6,
               f"the seed disagreement at temperature {t} (mean over the 6 pairs of seeds seed..seed+3)")
    top = max(dis)
    if answer["most_varied"] not in [t for t, d in zip(temps, dis) if d == top]:
        raise Wrong(f"'most_varied' must be the temperature with the largest disagreement: {dict(zip(temps, dis))}")
    return ", ".join(f"T {t}: {d:.0%} of tokens differ" for t, d in zip(temps, dis))


# --- 03.4 Count the passes -------------------------------------------------------------------

def pass_counts(cfg) -> dict:
    """Passes, tokens processed and query-key pairs the mask allows, for one clip on ``cfg``'s grid.

    Cached: pass k feeds only scale k's l_k tokens, attending to the cum_k tokens so far.
    Uncached: pass k recomputes the whole prefix of cum_k tokens under the block-causal mask
    (raster: a causal prefix of i tokens).
    """
    lengths = [h * w for h, w in cfg.tokenizer.scales]
    cum = np.cumsum(lengths)
    pairs_per_scale = [l_k * c_k for l_k, c_k in zip(lengths, cum)]   # scale k's queries x its keys
    n = cfg.latent_shape[0] * cfg.latent_shape[1]
    return {
        "next_scale": {"passes": len(lengths), "tokens": int(cum[-1]), "pairs": int(sum(pairs_per_scale))},
        "next_scale_no_cache": {"passes": len(lengths), "tokens": int(cum.sum()),
                                "pairs": int(np.cumsum(pairs_per_scale).sum())},
        "raster": {"passes": n, "tokens": n, "pairs": n * (n + 1) // 2},
        "raster_no_cache": {"passes": n, "tokens": n * (n + 1) // 2, "pairs": n * (n + 1) * (n + 2) // 6},
    }


def check_pass_counts(answer, cfg) -> str:
    from ..cmx import representation_costs

    truth = pass_counts(cfg)
    cost = representation_costs(cfg)[0]
    assert (truth["next_scale"]["pairs"], truth["raster"]["pairs"]) == \
        (cost.attention_pairs_next_scale, cost.attention_pairs_raster), "pass_counts disagrees with cmx"
    require_keys(answer, dict, tuple(truth))
    for method, counts in truth.items():
        require_keys(answer[method], dict, tuple(counts))
        for key, value in counts.items():
            if answer[method][key] != value:
                hint = {"passes": "one pass per scale, or per token",
                        "tokens": "with a cache each pass feeds only its new tokens; without one, the whole prefix",
                        "pairs": "scale k: h_k w_k queries x (tokens of scales <= k) keys; raster token i: i keys; "
                                 "without a cache, sum that over every prefix a pass recomputes"}[key]
                raise Wrong(f"{method} {key}: {answer[method][key]!r} is not right ({hint})")
    ns, ra = truth["next_scale"], truth["raster"]
    return (f"{ns['passes']} vs {ra['passes']} passes; cached pairs {ns['pairs']:,} vs {ra['pairs']:,}; "
            f"without a cache {truth['next_scale_no_cache']['pairs']:,} vs {truth['raster_no_cache']['pairs']:,}")


# --- 03.5 Cache or no cache ------------------------------------------------------------------

def cache_gap(model, tokenizer, pitch, family, seed, sampling) -> tuple[float, bool]:
    """(max |logit difference| over every scale, same tokens?) between cached and uncached sampling."""
    from ..autoregressor import sample_tokens

    settings = {k: sampling[k] for k in SAMPLING_KEYS}
    label = torch.tensor([pitch]), torch.tensor([family])
    runs = [sample_tokens(model, tokenizer, *label, seed=seed, use_cache=c, return_logits=True, **settings)
            for c in (True, False)]
    (idx_c, log_c), (idx_u, log_u) = runs
    gap = max(float((a - b).abs().max()) for a, b in zip(log_c, log_u))
    return gap, all(torch.equal(a, b) for a, b in zip(idx_c, idx_u))


def check_cache(answer, model, tokenizer, pitch, family, seed, sampling) -> str:
    keys = ("max_abs_logit_diff", "same_tokens", "seconds_cache", "seconds_no_cache", "cache_faster")
    require_keys(answer, dict, keys)
    gap, same = cache_gap(model, tokenizer, pitch, family, seed, sampling)
    require_close(answer["max_abs_logit_diff"], gap, 1e-4 + 0.1 * gap, "max |logits with cache - without|")
    if gap > 1e-3:
        raise Wrong(f"the cached and uncached logits differ by {gap:.2e}: more than float error")
    if not agrees(answer["same_tokens"], same):
        raise Wrong(f"'same_tokens' should be {same}: compare the token maps of both runs")
    t1, t2 = answer["seconds_cache"], answer["seconds_no_cache"]
    if not all(isinstance(t, (int, float)) and t > 0 for t in (t1, t2)):
        raise Wrong("time both runs: positive numbers of seconds")
    if not agrees(answer["cache_faster"], t1 < t2):
        raise Wrong(f"you measured {t1:.4f} s with the cache and {t2:.4f} s without: 'cache_faster' must agree")
    return f"logits agree to {gap:.1e}; with the cache {t1 * 1e3:.1f} ms, without {t2 * 1e3:.1f} ms"


EXERCISES = [
    Exercise("03.1", "No guidance",
             "a dict: cfg_scales [0, 4, 8], tokens_changed_vs_cfg0 and pyin_midi per scale, n, "
             "accuracy_cfg0, accuracy_default, guidance_helps_pitch (bool)", check_no_guidance),
    Exercise("03.2", "Truncated sampling",
             "a dict: noise_floor and distinct_codes, each {'default', 'top_k', 'top_p'}, "
             "and fewest_codes (one of those names)", check_truncation),
    Exercise("03.3", "Temperature",
             "a dict: temperatures [0.5, 1.0, 1.5], seed_disagreement (one per temperature), "
             "most_varied (a temperature)", check_temperature),
    Exercise("03.4", "Count the passes",
             "a dict {'next_scale', 'next_scale_no_cache', 'raster', 'raster_no_cache'}, "
             "each {'passes', 'tokens', 'pairs'} (ints) on the paper's grid", check_pass_counts),
    Exercise("03.5", "Cache or no cache",
             "a dict: max_abs_logit_diff, same_tokens (bool), seconds_cache, seconds_no_cache, "
             "cache_faster (bool)", check_cache),
]
