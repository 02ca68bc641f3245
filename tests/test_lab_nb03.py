"""Notebook 03's lab checks: a right answer passes, wrong ones fail with a hint.

The models are untrained smoke-sized ones: sampling is deterministic given the seed
whatever the weights, which is all the checks rely on.
"""

import copy
from itertools import combinations

import numpy as np
import pytest
import torch

from marslib import cmx, lab
from marslib.autoregressor import NextScaleTransformer, sample_tokens
from marslib.config import get_config
from marslib.tokenizer import Tokenizer
from conftest import assert_check_fails as fails, assert_check_passes as passes

PITCH, FAMILY, SEED = 60, 0, 0
SAMPLING = dict(cfg_scale=2.0, temperature=1.0, top_k=0, top_p=0.0, guidance="joint")


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # batch-1 sampling of a tiny model


@pytest.fixture(scope="module")
def models():
    cfg = get_config("smoke")
    torch.manual_seed(0)
    return cfg, NextScaleTransformer(cfg.ar, cfg.tokenizer).eval(), Tokenizer(cfg).eval()


def tokens(model, tokenizer, pitches=(PITCH,), seed=SEED, **change):
    idx = sample_tokens(model, tokenizer, torch.tensor(list(pitches)), torch.full((len(pitches),), FAMILY),
                        seed=seed, **{**SAMPLING, **change})
    return idx


def flat(idx):
    return torch.cat([i.flatten() for i in idx])


# --- 03.1 ----------------------------------------------------------------------------------

def test_no_guidance(models):
    cfg, model, tokenizer = models
    base = flat(tokens(model, tokenizer, cfg_scale=0.0))
    changed = [float((flat(tokens(model, tokenizer, cfg_scale=s)) != base).float().mean()) for s in (0, 4, 8)]
    right = {"cfg_scales": [0, 4, 8], "tokens_changed_vs_cfg0": changed, "pyin_midi": [60.1, None, 59.8],
             "n": 8, "accuracy_cfg0": 0.25, "accuracy_default": 0.5, "guidance_helps_pitch": True}
    context = dict(model=model, tokenizer=tokenizer, pitch=PITCH, family=FAMILY, seed=SEED, sampling=SAMPLING)
    passes(lab.check("03.1", right, **context))
    assert changed[0] == 0 and changed[2] > 0
    fails(lab.check("03.1", {**right, "guidance_helps_pitch": False}, **context), "guidance_helps_pitch")
    fails(lab.check("03.1", {**right, "tokens_changed_vs_cfg0": [0.0, 0.5, 0.5]}, **context), "regenerating")
    fails(lab.check("03.1", {**right, "accuracy_cfg0": 0.3}, **context), "whole number")
    fails(lab.check("03.1", {**right, "cfg_scales": [4, 8]}, **context))
    fails(lab.check("03.1", [0.25, 0.5], **context), "expected a dict")


# --- 03.2 ----------------------------------------------------------------------------------

def test_truncation(models):
    cfg, model, tokenizer = models
    sweep = [48, 54, 60, 66]
    floors, codes = {}, {}
    for name, change in (("default", {}), ("top_k", {"top_k": 8, "top_p": 0.0}), ("top_p", {"top_k": 0, "top_p": 0.9})):
        idx = tokens(model, tokenizer, sweep, **change)
        with torch.no_grad():
            spec = cmx.from_model_input(tokenizer.partial_decode(idx, len(idx)).clamp(-1, 1), cfg.cmx, cfg.spec_shape)
        floors[name], codes[name] = float(spec.median()), int(idx[-1].unique().numel())
    right = {"noise_floor": floors, "distinct_codes": codes, "fewest_codes": min(codes, key=codes.get)}
    context = dict(model=model, tokenizer=tokenizer, cfg=cfg, pitches=sweep, family=FAMILY, seed=SEED,
                   sampling=SAMPLING)
    passes(lab.check("03.2", right, **context))
    most = max(codes, key=codes.get)
    if codes[most] != codes[right["fewest_codes"]]:
        fails(lab.check("03.2", {**right, "fewest_codes": most}, **context), "fewest")
    fails(lab.check("03.2", {**right, "noise_floor": {**floors, "top_k": floors["top_k"] - 0.1}}, **context),
          "noise_floor")
    fails(lab.check("03.2", {**right, "distinct_codes": {**codes, "top_p": codes["top_p"] + 1}}, **context),
          "distinct_codes")


# --- 03.3 ----------------------------------------------------------------------------------

def test_temperature(models):
    _, model, tokenizer = models
    dis = []
    for t in (0.5, 1.0, 1.5):
        draws = [flat(tokens(model, tokenizer, seed=s, temperature=t)) for s in range(SEED, SEED + 4)]
        dis.append(float(np.mean([(a != b).float().mean().item() for a, b in combinations(draws, 2)])))
    right = {"temperatures": [0.5, 1.0, 1.5], "seed_disagreement": dis, "most_varied": [0.5, 1.0, 1.5][int(np.argmax(dis))]}
    context = dict(model=model, tokenizer=tokenizer, pitch=PITCH, family=FAMILY, seed=SEED, sampling=SAMPLING)
    passes(lab.check("03.3", right, **context))
    least = [0.5, 1.0, 1.5][int(np.argmin(dis))]
    if min(dis) < max(dis):
        fails(lab.check("03.3", {**right, "most_varied": least}, **context), "most_varied")
    fails(lab.check("03.3", {**right, "seed_disagreement": [d / 2 for d in dis]}, **context), "regenerating")
    fails(lab.check("03.3", {**right, "temperatures": [0.5, 1.0, 2.0]}, **context), "0.5, 1.0 and 1.5")


# --- 03.4 ----------------------------------------------------------------------------------

PAPER_COUNTS = {  # VAR's scales 1, 2, 3, 4, 5, 6, 8, 10, 13, 16 (squared): 680 tokens; a 16 x 16 raster
    "next_scale": {"passes": 10, "tokens": 680, "pairs": 286_434},
    "next_scale_no_cache": {"passes": 10, "tokens": 1_710, "pairs": 462_760},
    "raster": {"passes": 256, "tokens": 256, "pairs": 32_896},
    "raster_no_cache": {"passes": 256, "tokens": 32_896, "pairs": 2_829_056},
}


def test_pass_counts_by_hand():
    pcfg = get_config("paper")
    passes(lab.check("03.4", PAPER_COUNTS, cfg=pcfg))
    wrong = copy.deepcopy(PAPER_COUNTS)
    wrong["next_scale_no_cache"]["tokens"] = 680              # forgot that the prefix is recomputed
    fails(lab.check("03.4", wrong, cfg=pcfg), "next_scale_no_cache tokens")
    wrong = copy.deepcopy(PAPER_COUNTS)
    wrong["raster"]["pairs"] = 256 * 256                      # a full square instead of the causal triangle
    fails(lab.check("03.4", wrong, cfg=pcfg), "raster pairs")
    fails(lab.check("03.4", {"next_scale": PAPER_COUNTS["next_scale"]}, cfg=pcfg), "missing")


def test_pass_counts_on_another_grid():
    smoke = get_config("smoke")  # scales 1x1, 1x2, 2x4, 2x8, 4x16: 1 + 2 + 8 + 16 + 64 = 91 tokens
    fails(lab.check("03.4", PAPER_COUNTS, cfg=smoke))


# --- 03.5 ----------------------------------------------------------------------------------

def test_cache(models):
    _, model, tokenizer = models
    label = torch.tensor([PITCH]), torch.tensor([FAMILY])
    runs = [sample_tokens(model, tokenizer, *label, seed=SEED, use_cache=c, return_logits=True, **SAMPLING)
            for c in (True, False)]
    gap = max(float((a - b).abs().max()) for a, b in zip(runs[0][1], runs[1][1]))
    right = {"max_abs_logit_diff": gap, "same_tokens": True, "seconds_cache": 0.010, "seconds_no_cache": 0.012,
             "cache_faster": True}
    context = dict(model=model, tokenizer=tokenizer, pitch=PITCH, family=FAMILY, seed=SEED, sampling=SAMPLING)
    passes(lab.check("03.5", right, **context))
    fails(lab.check("03.5", {**right, "cache_faster": False}, **context), "cache_faster")
    passes(lab.check("03.5", {**right, "cache_faster": np.bool_(True)}, **context))  # a NumPy comparison's bool
    fails(lab.check("03.5", {**right, "same_tokens": "yes"}, **context), "same_tokens")
    fails(lab.check("03.5", {**right, "same_tokens": False}, **context), "same_tokens")
    fails(lab.check("03.5", {**right, "max_abs_logit_diff": 0.5}, **context), "regenerating")
    fails(lab.check("03.5", {**right, "seconds_cache": -1.0}, **context), "positive")
