"""Notebook 02's lab checks and the lab's cheap path: right answers pass, wrong ones fail (no training).

The checks take models; here they are freshly initialised tokenizers built from the
quick path's configs, which is all a check looks at (their config and what they encode).
"""

import math

import pytest
import torch

from marslib.config import get_config
from marslib.lab import nb02
from marslib.lab.quick import MIN_STEPS, quick_config
from marslib.tokenizer import Tokenizer
from conftest import check_fails as fails, check_passes as passes

CFG = get_config("smoke")
V = CFG.tokenizer.codebook_size


def tokenizer(overrides=None, quick=True, seed=0):
    torch.manual_seed(seed)
    return Tokenizer(quick_config(CFG, overrides) if quick else get_config("smoke", overrides)).eval()


@pytest.fixture(scope="module")
def X():
    gen = torch.Generator().manual_seed(0)
    return torch.rand(2, *CFG.input_shape, generator=gen) * 2 - 1  # (N, C, F/r, T/r) in [-1, 1]


def test_quick_config_shrinks_the_schedule_and_keeps_the_rest():
    cfg = get_config("course", {"data.root": "/somewhere/data", "seed": 3})
    q = quick_config(cfg, {"tokenizer.lookup": "cosine"})
    assert q.train_tokenizer.steps == cfg.train_tokenizer.steps // 5 == 300
    assert q.train_tokenizer.warmup_steps == 10 and q.train_tokenizer.eval_every == 300
    assert q.tokenizer.restart_every == 10  # 50 of 1500 steps -> 10 of 300: as many restarts per run
    assert q.tokenizer.lookup == "cosine" and cfg.tokenizer.lookup == "l2"  # the notebook's cfg is untouched
    assert (q.data.root, q.seed, q.tokenizer.codebook_size) == ("/somewhere/data", 3, cfg.tokenizer.codebook_size)
    assert quick_config(cfg, {"tokenizer.restart_every": 0}).tokenizer.restart_every == 0
    assert quick_config(CFG).train_tokenizer.steps == MIN_STEPS  # smoke: 30 // 5 is below the floor


def test_02_1_cosine_lookup(X):
    models = {"l2": tokenizer({"tokenizer.lookup": "l2"}), "cosine": tokenizer({"tokenizer.lookup": "cosine"})}
    stats = {n: nb02.codebook_stats(m, X)["usage"] for n, m in models.items()}
    assert stats["l2"] != stats["cosine"]
    right = {n: {"usage": stats[n], "lsd": nb02.lsd_per_scales(m, X)[-1]} for n, m in models.items()}
    right["more_codes"] = max(stats, key=stats.get)
    passes("02.1", right, models=models, X=X, cfg=CFG)
    wrong = "l2" if right["more_codes"] == "cosine" else "cosine"
    fails("02.1", {**right, "more_codes": wrong}, "contradicts", models=models, X=X, cfg=CFG)
    fails("02.1", {**right, "l2": {**right["l2"], "lsd": right["l2"]["lsd"] + 1}}, "recomputing",
          models=models, X=X, cfg=CFG)
    swapped = {"l2": models["cosine"], "cosine": models["l2"]}
    fails("02.1", right, "trained with lookup", models=swapped, X=X, cfg=CFG)
    full = {"l2": tokenizer({"tokenizer.lookup": "l2"}, quick=False),
            "cosine": tokenizer({"tokenizer.lookup": "cosine"}, quick=False)}
    fails("02.1", right, "full schedule", models=full, X=X, cfg=CFG)


def test_02_2_restarts(X):
    models = {"with_restarts": tokenizer(), "without_restarts": tokenizer({"tokenizer.restart_every": 0}, seed=1)}
    stats = {n: nb02.codebook_stats(m, X) for n, m in models.items()}
    right = {n: {"usage_per_scale": s["usage_per_scale"], "usage": s["usage"]} for n, s in stats.items()}
    right["more_codes"] = max(stats, key=lambda n: stats[n]["usage"])
    passes("02.2", right, models=models, X=X, cfg=CFG)
    fails("02.2", {**right, "more_codes": "neither"}, "one of", models=models, X=X, cfg=CFG)
    fails("02.2", right, "still restarts", models={"with_restarts": models["with_restarts"],
                                                   "without_restarts": tokenizer()}, X=X, cfg=CFG)
    short = {**right, "with_restarts": {**right["with_restarts"], "usage_per_scale": [0.5]}}
    fails("02.2", short, "one per scale", models=models, X=X, cfg=CFG)
    fails("02.2", right, "models must be", models=[models["with_restarts"]], X=X, cfg=CFG)


def test_02_3_other_scales(X):
    scales = [[1, 1], [2, 4], [4, 16]]
    model = tokenizer({"tokenizer.scales": scales})
    tokens = 1 + 8 + 64
    right = {"scales": scales, "tokens_per_clip": tokens,
             "bitrate_bps": tokens * math.log2(V) / CFG.audio.clip_seconds,
             "lsd_per_scales": nb02.lsd_per_scales(model, X)}
    assert len(right["lsd_per_scales"]) == 3
    passes("02.3", right, model=model, X=X, cfg=CFG)
    fails("02.3", {**right, "tokens_per_clip": 4 * 16}, "add up h * w", model=model, X=X, cfg=CFG)
    fails("02.3", {**right, "bitrate_bps": tokens * 8 / CFG.audio.clip_seconds}, "bitrate_bps",
          model=model, X=X, cfg=CFG)
    fails("02.3", {**right, "lsd_per_scales": right["lsd_per_scales"][1:]}, "one per scale",
          model=model, X=X, cfg=CFG)
    fails("02.3", {**right, "scales": [[1, 1], [4, 16]]}, "not the model's", model=model, X=X, cfg=CFG)
    own = tokenizer()
    fails("02.3", {**right, "scales": [list(s) for s in CFG.tokenizer.scales]}, "notebook's own scales",
          model=own, X=X, cfg=CFG)


def test_02_4_codebook_size(X):
    sizes = (V // 2, V, 2 * V)
    models = {s: tokenizer({"tokenizer.codebook_size": s}) for s in sizes}
    tokens = sum(h * w for h, w in CFG.tokenizer.scales)
    right = {}
    for s, m in models.items():
        right[s] = {"bitrate_bps": tokens * math.log2(s) / CFG.audio.clip_seconds,
                    "lsd": nb02.lsd_per_scales(m, X)[-1], "perplexity": nb02.codebook_stats(m, X)["perplexity"]}
    right["extra_bits_buy_quality"] = right[2 * V]["lsd"] < right[V]["lsd"]
    passes("02.4", right, models=models, X=X, cfg=CFG)
    fails("02.4", {**right, "extra_bits_buy_quality": not right["extra_bits_buy_quality"]}, "contradicts",
          models=models, X=X, cfg=CFG)
    fails("02.4", {**right, V: {**right[V], "bitrate_bps": right[V]["bitrate_bps"] + 1000}}, "bitrate_bps",
          models=models, X=X, cfg=CFG)
    fails("02.4", right, "codes; set", models={**models, 2 * V: models[V]}, X=X, cfg=CFG)


def test_02_5_coarse_token(X):
    model = tokenizer()
    with torch.no_grad():
        maps = model.encode(X[:1])
    original = int(maps[0].flatten()[0])
    codes = [c for c in range(V) if c != original][:3]
    changes = nb02.coarse_swap_changes(model, maps, codes)
    spread = sum(changes["frame_spread"]) / len(codes)
    right = {"original": original, "codes": codes, **changes, "change": "global" if spread >= 0.5 else "local"}
    passes("02.5", right, model=model, indices=maps)
    fails("02.5", {**right, "change": "local" if right["change"] == "global" else "global"}, "contradicts",
          model=model, indices=maps)
    fails("02.5", {**right, "codes": [original, *codes[1:]]}, "none of them the original", model=model, indices=maps)
    fails("02.5", {**right, "original": (original + 1) % V}, "scale-1 token", model=model, indices=maps)
    fails("02.5", {**right, "mean_abs_change": [0.0] * len(codes)}, "recomputing", model=model, indices=maps)
