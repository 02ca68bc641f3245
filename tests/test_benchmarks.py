"""Smoke runs of the benchmark scripts (smoke-sized models, few repetitions).

Timings are machine-dependent, so the tests check what must hold anyway: the
derived columns are the ratios of the measured ones, every target's verdict
follows from its number and goal, the deterministic memory ratios, and the
number of forward passes each sampler makes (K against h*w).

The scripts live in ``benchmarks/`` (not a package); they are imported from their files.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name: str):
    if str(BENCH) not in sys.path:  # the scripts import benchmarks/common.py by name
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def _goal_met(goal: str, measured: float) -> bool:
    """Evaluate a target's goal string (``">= 8.0"``, ``"<= 1.5"``, ``"< 1.0"``) on a measurement."""
    op, threshold = goal.split()
    threshold = float(threshold)
    return {">=": measured >= threshold, "<=": measured <= threshold, "<": measured < threshold}[op]


def test_goal_parser():
    assert _goal_met(">= 8.0", 8.0) and not _goal_met(">= 8.0", 7.9)
    assert _goal_met("<= 1.5", 1.5) and not _goal_met("<= 1.5", 1.6)
    assert _goal_met("< 1.0", 0.5) and not _goal_met("< 1.0", 1.0)


def test_tokenizer_cmx_vs_full(tmp_path):
    out = tmp_path / "tok.json"
    res = _load("tokenizer_cmx_vs_full").main(["--profile", "smoke", "--repeats", "1", "--json", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(res))
    rows = {r["variant"]: r for r in res["rows"]}
    assert list(rows) == ["cmx", "full", "truncate"]
    for r in rows.values():
        for key in ("params (M)", "ms / step", "activations (MB)", "time / cmx", "memory / cmx"):
            assert _positive(r[key]), (r["variant"], key, r[key])
        # the derived columns are the ratios of the measured ones
        assert math.isclose(r["time / cmx"], r["ms / step"] / rows["cmx"]["ms / step"], rel_tol=1e-9)
        assert math.isclose(r["memory / cmx"], r["activations (MB)"] / rows["cmx"]["activations (MB)"],
                            rel_tol=1e-9)
        assert r["tokens"] == math.prod(int(n) for n in r["latent"].split("x"))
    assert rows["cmx"]["time / cmx"] == rows["cmx"]["memory / cmx"] == 1
    assert len({r["tokens"] for r in rows.values()}) == 1           # same token budget
    assert len({r["latent"] for r in rows.values()}) == 1
    assert rows["cmx"]["input (C,H,W)"] == "4x32x128" and rows["full"]["input (C,H,W)"] == "1x64x256"
    assert rows["truncate"]["input (C,H,W)"] == "1x32x128"
    # Saved-for-backward bytes are deterministic (measured: full 3.69x, truncate 0.93x of CMX's):
    # the unfolded spectrogram costs several times CMX's memory, truncation about the same.
    assert rows["full"]["memory / cmx"] > 3 and 0.8 < rows["truncate"]["memory / cmx"] <= 1
    # No timing ratio is asserted: full / cmx step time, 4.6x on a quiet machine, fell to 0.58x
    # under load (a full test run on 2 shared cores).


def _count_passes(fn) -> int:
    """How many times ``fn`` runs an output head: one per forward pass of either transformer."""
    from marslib.autoregressor.blocks import AdaLNHead

    calls, forward = [0], AdaLNHead.forward

    def counting(self, *args, **kwargs):
        calls[0] += 1
        return forward(self, *args, **kwargs)

    AdaLNHead.forward = counting
    try:
        fn()
    finally:
        AdaLNHead.forward = forward
    return calls[0]


def test_sampling_passes_are_k_and_h_times_w():
    """The structural speedup the timings rest on: K passes for next-scale, h*w for raster, 1 forward."""
    import torch

    from marslib.config import get_config

    bench = _load("sampling_speed")
    for grid in ("smoke", "paper"):
        cfg = get_config(grid)
        fns, row = bench.grid_fns(grid, "smoke", 1, 1.5, torch.device("cpu"))
        h, w = cfg.latent_shape
        assert (row["K"], row["L raster"]) == (len(cfg.tokenizer.scales), h * w)
        assert {name: _count_passes(fn) for name, fn in fns.items()} == {
            "next-scale": row["K"], "raster": row["L raster"], "forward": 1}


def test_sampling_speed(tmp_path):
    """Both token grids (the paper's too, for its raster target) with the smoke-sized models."""
    out = tmp_path / "sampling.json"
    bench = _load("sampling_speed")
    res = bench.main(["--grids", "smoke", "paper", "--model", "smoke", "--rtf", "smoke", "--repeats", "3",
                      "--batch-sizes", "1", "2", "--json", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(res))
    rows = res["rows"]
    assert [(r["grid"], r["batch"]) for r in rows] == [("smoke", 1), ("smoke", 2), ("paper", 1), ("paper", 2)]
    for r in rows:
        assert (r["L next-scale"], r["L raster"], r["K"]) == {"smoke": (1 + 2 + 8 + 16 + 64, 64, 5),
                                                               "paper": (680, 256, 10)}[r["grid"]]
        for key in ("next-scale (ms)", "raster (ms)", "forward (ms)", "raster / next-scale", "next-scale / forward"):
            assert _positive(r[key]), (key, r[key])
        # the derived columns are the ratios of the measured ones
        assert math.isclose(r["raster / next-scale"], r["raster (ms)"] / r["next-scale (ms)"], rel_tol=1e-9)
        assert math.isclose(r["next-scale / forward"], r["next-scale (ms)"] / r["forward (ms)"], rel_tol=1e-9)
        assert math.isclose(r["next-scale ms / clip"], r["next-scale (ms)"] / r["batch"], rel_tol=1e-9)
    # No timing ratio is asserted: on a shared 2-core machine even the smoke grid's
    # raster / next-scale (64 passes against 5; measured 4.6-7.7x) fell to 1.97x under
    # load.  test_sampling_passes_are_k_and_h_times_w checks the pass counts instead.
    rtf = res["rtf"]
    assert rtf["profile"] == "smoke" and _positive(rtf["RTF"]) and _positive(rtf["end to end (s)"])
    assert math.isclose(rtf["RTF"], rtf["end to end (s)"] / rtf["clip seconds"], rel_tol=1e-9)
    # every target names what it measured, and its verdict follows from the number and the goal
    expected = [("raster / next-scale, paper grid, batch 1", f">= {bench.TARGET_RASTER}",
                 rows[2]["raster / next-scale"])]
    expected += [(f"next-scale / forward, {r['grid']} grid, batch {r['batch']}", f"<= {bench.TARGET_FORWARD}",
                  r["next-scale / forward"]) for r in rows]
    expected += [("real-time factor, smoke, batch 1", f"< {bench.TARGET_RTF}", rtf["RTF"])]
    assert [(t["target"], t["goal"], t["measured"]) for t in res["targets"]] == expected
    for t in res["targets"]:
        assert t["verdict"] == ("PASS" if _goal_met(t["goal"], t["measured"]) else "MISS"), t


def test_data_loading(tmp_path):
    """Store vs in-RAM batches at 1x/4x/16x of a tiny dataset (smoke rows, 64 KiB each), one child per arm."""
    out = tmp_path / "loading.json"
    bench = _load("data_loading")
    res = bench.main(["--profile", "smoke", "--rows", "64", "--batches", "20", "--repeats", "1", "--workers", "0",
                      "--dir", str(tmp_path / "stores"), "--json", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(res))
    rows = {(r["arm"], r["size"]): r for r in res["rows"]}
    assert list(rows) == [(arm, f"{s}x") for arm in ("store", "ram") for s in (1, 4, 16)]
    row_mb = 4 * 32 * 128 * 4 / 2 ** 20                                   # smoke's input_shape, float32
    for (arm, size), r in rows.items():
        assert r["rows"] == 64 * int(size[:-1]) and math.isclose(r["data (MB)"], r["rows"] * row_mb)
        for key in ("load (s)", "peak RSS (MB)", "data RSS (MB)", "clips / s", "clips / CPU s"):
            assert _positive(r[key]), (arm, size, key, r[key])
        # the derived columns are the ratios of the measured ones
        assert math.isclose(r["peak RSS / 1x"], r["peak RSS (MB)"] / rows[arm, "1x"]["peak RSS (MB)"], rel_tol=1e-9)
        assert math.isclose(r["clips / s vs ram"], r["clips / s"] / rows["ram", size]["clips / s"], rel_tol=1e-9)
    # Memory is deterministic enough to assert: the in-RAM arm holds the whole split (its RSS
    # grows by at least the data), the store a few batches (measured 2.7 MB against 64 MB of data).
    assert rows["ram", "16x"]["peak RSS (MB)"] > rows["ram", "1x"]["peak RSS (MB)"]
    more_data = rows["ram", "16x"]["data (MB)"] - rows["ram", "1x"]["data (MB)"]  # 60 MB
    assert rows["ram", "16x"]["data RSS (MB)"] - rows["ram", "1x"]["data RSS (MB)"] > 0.9 * more_data
    assert rows["store", "16x"]["data RSS (MB)"] < 0.25 * rows["store", "16x"]["data (MB)"]
    for arm in ("store", "ram"):
        assert res["growth"][arm]["peak RSS 16x / 1x"] == rows[arm, "16x"]["peak RSS / 1x"]
        assert math.isclose(res["growth"][arm]["data RSS 16x / 1x"],
                            rows[arm, "16x"]["data RSS (MB)"] / rows[arm, "1x"]["data RSS (MB)"], rel_tol=1e-9)
    # every target names what it measured, and its verdict follows from the number and the goal
    expected = [("store peak RSS, 16x / 1x", f"<= {bench.TARGET_RSS}", rows["store", "16x"]["peak RSS / 1x"])]
    expected += [(f"store clips/s / RAM clips/s, {s}x", f">= {bench.TARGET_SPEED}",
                  rows["store", f"{s}x"]["clips / s vs ram"]) for s in (1, 4, 16)]
    assert [(t["target"], t["goal"], t["measured"]) for t in res["targets"]] == expected
    for t in res["targets"]:
        assert t["verdict"] == ("PASS" if _goal_met(t["goal"], t["measured"]) else "MISS"), t


def test_timbre_study(smoke_run, tmp_path, capsys):
    """The stage table of a smoke run (untrained tokenizer and transformer), printed and saved."""
    cfg, run = smoke_run
    out = tmp_path / "timbre.json"
    res = _load("timbre_study").main(["--run", str(run), "--profile", "smoke", "--data-dir", cfg.data.root,
                                      "--set", "eval.max_conditions=6", "--seed", "2", "--json", str(out)])
    printed = capsys.readouterr().out
    assert json.loads(out.read_text()) == json.loads(json.dumps(res))
    K = len(cfg.tokenizer.scales)
    assert [r["stage"] for r in res["rows"]] == ["real", "griffin_lim", "continuous",
                                                 *[f"scales_{k}" for k in range(1, K + 1)], "mars"]
    assert res["n_test"] == 6 and all(r["n"] == 6 for r in res["rows"])       # --set reached the config
    assert res["seed"] == 2 and res["overrides"]["eval.max_conditions"] == 6
    assert res["table"] in printed and res["biggest_drop"] in printed
    assert res["chain"] == ["real", "griffin_lim", "continuous", f"scales_{K}", "mars"]
    assert all(0 <= r["family_acc"] <= 1 and r["fd_crepe"] >= 0 for r in res["rows"])
    assert res["provenance"]["profile"] == "smoke" and res["config"]["eval"]["max_conditions"] == 6


def test_diffwave_diagnosis(smoke_run, tmp_path, capsys):
    """Every row of the DiffWave diagnosis on a smoke run; the spectral-prior variant trains its smoke steps."""
    import shutil

    from marslib.baselines import build
    from marslib.checkpoint import has_checkpoint, save_checkpoint

    cfg, run = smoke_run
    mine = tmp_path / "run"  # the fixture is read-only: a run of our own with its classifier
    shutil.copytree(run / "classifier", mine / "classifier")
    save_checkpoint(mine / "diffwave", build("diffwave", cfg), cfg, "diffwave", 1)  # untrained: eps_theta = 0
    out = tmp_path / "diffwave.json"
    res = _load("diffwave_diagnosis").main(["--run", str(mine), "--profile", "smoke", "--data-dir", cfg.data.root,
                                            "--clips", "6", "--full-clips", "2", "--prior", "--json", str(out)])
    rows = {r["variant"]: r for r in res["rows"]}
    assert list(rows) == ["real (held out)", "trained, fast", "trained, full", "untrained, fast",
                          "prior, untrained, fast", "prior, trained, fast"]
    assert [r["clips"] for r in res["rows"]] == [6, 6, 2, 6, 6, 6]
    real = rows["real (held out)"]
    assert real["spec_l1"] == 0 and abs(real["rms_ratio"] - 1) < 1e-6
    # The "trained" checkpoint here is a fresh model, so it is the sampler alone: the control's clips exactly.
    assert rows["trained, fast"]["spec_l1"] == rows["untrained, fast"]["spec_l1"]
    # The shaped prior alone already follows the real spectrogram far better than white noise.
    assert rows["prior, untrained, fast"]["spec_l1"] < rows["untrained, fast"]["spec_l1"]
    assert has_checkpoint(mine / "diffwave_spectral_prior")
    assert all(0 <= r["pitch_pyin"] <= 1 and 0 <= r["family"] <= 1 for r in res["rows"])
    assert res["table"] in capsys.readouterr().out
    assert json.loads(out.read_text()) == json.loads(json.dumps(res))
