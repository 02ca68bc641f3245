"""The evaluation pipeline, the ablation helpers and the report (smoke profile).

The run folder holds untrained checkpoints of every model: the pipeline's job is
to compute the numbers from whatever checkpoints exist, the same way every time,
and to refuse missing or stale ones clearly.
"""

import json
import shutil

import numpy as np
import pytest
import torch

from marslib.ablation import (REPRESENTATIONS, TRUNCATE_DIR, baseline_config, representation_config, step_costs,
                              truncation_config)
from marslib.autoregressor import NextScaleTransformer, RasterTransformer
from marslib.autoregressor.training import raster_config, tokenizer_fingerprint
from marslib.baselines import BASELINES, build
from marslib.checkpoint import CheckpointError, save_checkpoint
from marslib.cli import main
from marslib.config import ConfigError, get_config
from marslib.data import ensure_dataset
from marslib.evaluate import (HEADLINE, SYSTEMS, available_systems, check_fresh, evaluate, fresh_rows, metric_cell,
                              real_train_clips, results_table)
from marslib.evaluate import test_clips as held_out_clips  # (not a test: pytest would collect "test_*")
from marslib.metrics import SpectrogramClassifier
from marslib.notebooks import REPO_ROOT
from marslib.report import INTERVAL_RULE, PAPER_METRICS, build_report, paper_claims, with_interval
from marslib.tokenizer import Tokenizer


def _save_models(run, cfg, seed=0):
    """Untrained checkpoints of every model the evaluation can use."""
    torch.manual_seed(seed)
    save_checkpoint(run / "tokenizer", Tokenizer(cfg), cfg, "tokenizer", 1)
    save_checkpoint(run / "ar", NextScaleTransformer(cfg.ar, cfg.tokenizer), cfg, "ar", 1,
                    made_from=tokenizer_fingerprint(run / "tokenizer"))
    save_checkpoint(run / "classifier", SpectrogramClassifier(cfg), cfg, "classifier", 1)
    rcfg = raster_config(cfg)
    save_checkpoint(run / "raster_tokenizer", Tokenizer(rcfg), rcfg, "tokenizer", 1)
    save_checkpoint(run / "raster", RasterTransformer(rcfg.ar, rcfg.latent_shape, rcfg.tokenizer.codebook_size),
                    rcfg, "raster", 1, made_from=tokenizer_fingerprint(run / "raster_tokenizer"))
    tcfg = truncation_config(cfg)
    save_checkpoint(run / TRUNCATE_DIR / "tokenizer", Tokenizer(tcfg), tcfg, "tokenizer", 1)
    save_checkpoint(run / TRUNCATE_DIR / "ar", NextScaleTransformer(tcfg.ar, tcfg.tokenizer), tcfg, "ar", 1,
                    made_from=tokenizer_fingerprint(run / TRUNCATE_DIR / "tokenizer"))
    for name in BASELINES:  # the paper's comparison systems
        save_checkpoint(run / name, build(name, cfg), cfg, name, 1)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    cfg = get_config("smoke", {"data.root": str(tmp_path_factory.mktemp("smoke") / "data")})
    ensure_dataset(cfg)  # the feature cache goes beside it, in the same temporary folder
    run = tmp_path_factory.mktemp("run")
    _save_models(run, cfg)
    return cfg, run, evaluate(cfg, run, progress=False)


def test_every_row_is_scored_with_finite_metrics(evaluated):
    cfg, run, results = evaluated
    assert list(results["rows"]) == list(SYSTEMS) == available_systems(run)
    n_test = results["signature"]["n_test"]
    for name, row in results["rows"].items():
        m = row["metrics"]
        assert row["n"] == n_test * (1 if name in ("real_train", "griffin_lim") or "tokenizer" in name
                                     else cfg.eval.clips_per_condition)
        assert all(np.isfinite(v) for v in m.values()), (name, m)
        assert m["fd_crepe"] >= 0 and m["fd_classifier"] >= 0 and m["mse"] >= 0 and m["lsd_db"] >= 0
        assert 1 - 1e-6 <= m["pis"] <= 128 and 1 - 1e-6 <= m["iis"] <= 11
        assert 0 <= m["ndb_k"] <= 1 and 0 <= m["pitch_acc_crepe"] <= 1 and 0 <= m["pitch_acc_pyin"] <= 1
        assert len(row["nearest_train"]) == len(row["nearest_cosine"]) == row["n"]
    # Griffin-Lim of real audio is far closer to the real clip than an untrained model's output
    rows = results["rows"]
    assert rows["griffin_lim"]["metrics"]["lsd_db"] < rows["mars"]["metrics"]["lsd_db"]
    assert rows["griffin_lim"]["metrics"]["pitch_acc_crepe"] > rows["mars"]["metrics"]["pitch_acc_crepe"]
    table = (run / "evaluation" / "table.md").read_text()
    assert table == results_table(results) and all(label in table for label, _ in SYSTEMS.values())
    assert "VGGish" in table and "CREPE-tiny" in table


def test_headline_metrics_have_intervals_around_them(evaluated):
    _, run, results = evaluated
    table = (run / "evaluation" / "table.md").read_text()
    for name, row in results["rows"].items():
        assert list(row["intervals"]) == list(HEADLINE)
        for key, (lo, hi) in row["intervals"].items():
            assert 0 <= lo <= row["metrics"][key] <= hi, (name, key)                 # (FD and accuracies >= 0)
            assert lo < hi or key != "fd_crepe", (name, key)             # FD always varies between resamples
        assert metric_cell(row, "fd_crepe") in table and "[" in metric_cell(row, "pitch_acc_crepe")
    assert "95 % bootstrap interval" in table
    saved = json.loads((run / "evaluation" / "metrics.json").read_text())
    assert saved["intervals"]["level"] == 0.95 and saved["rows"]["mars"]["intervals"] == results["rows"]["mars"][
        "intervals"]


def test_per_family_results_and_confusion_are_consistent(evaluated):
    cfg, _, results = evaluated
    vocabulary = cfg.data.family_vocabulary
    test_families = {vocabulary[f] for f in held_out_clips(cfg).family}
    for name, row in results["rows"].items():
        m, fam, conf = row["metrics"], row["per_family"], row["confusion"]
        assert set(fam) == test_families and set(fam) <= set(conf["labels"]) <= set(vocabulary), name
        assert conf["labels"] == sorted(conf["labels"], key=vocabulary.index)
        assert sum(f["n"] for f in fam.values()) == row["n"]
        for key, per in (("classifier_family_acc", "family_acc"), ("pitch_acc_crepe", "pitch_acc_crepe")):
            assert np.isclose(sum(f["n"] * f[per] for f in fam.values()) / row["n"], m[key]), (name, key)
        matrix = np.array(conf["matrix"])
        assert matrix.shape == (len(conf["labels"]),) * 2 and matrix.sum() == row["n"]
        assert np.isclose(np.trace(matrix) / row["n"], m["classifier_family_acc"])
        for i, label in enumerate(conf["labels"]):  # rows: requested family; columns: the classifier's answer
            n = fam[label]["n"] if label in fam else 0
            assert matrix[i].sum() == n, (name, label)
            if n:
                assert np.isclose(matrix[i, i] / n, fam[label]["family_acc"]), (name, label)


def test_same_seed_same_numbers_and_deleting_a_checkpoint_changes_them(evaluated, tmp_path):
    cfg, run, results = evaluated
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("evaluation"))
    again = evaluate(cfg, copy, systems=["mars", "griffin_lim"], progress=False)
    for name in ("mars", "griffin_lim"):
        for key in ("metrics", "intervals", "per_family", "confusion"):
            assert again["rows"][name][key] == results["rows"][name][key], (name, key)
    shutil.rmtree(copy / "raster")
    with pytest.raises(CheckpointError, match="raster"):
        evaluate(cfg, copy, systems=["raster"], progress=False)
    assert "raster" not in evaluate(cfg, copy, systems=["griffin_lim"], progress=False)["rows"]  # its row goes
    assert {"ddsp_resynth", "diffwave_resynth"} <= set(
        evaluate(cfg, copy, systems=["ddsp_resynth", "diffwave_resynth"], progress=False)["rows"])
    shutil.rmtree(copy / "ddsp")
    with pytest.raises(CheckpointError, match="ddsp"):
        evaluate(cfg, copy, systems=["ddsp_resynth"], progress=False)
    again = evaluate(cfg, copy, systems=["griffin_lim"], progress=False)["rows"]
    assert "ddsp_resynth" not in again and "diffwave_resynth" in again  # deleting a system drops its rows only
    shutil.rmtree(copy / "evaluation")
    assert "raster" not in evaluate(cfg, copy, systems=None, progress=False)["rows"]
    shutil.rmtree(copy / "ar")
    with pytest.raises(CheckpointError, match="no checkpoint in .*ar"):
        evaluate(cfg, copy, progress=False)
    shutil.rmtree(copy / "classifier")
    with pytest.raises(CheckpointError, match="classifier"):
        evaluate(cfg, copy, systems=["griffin_lim"], progress=False)
    with pytest.raises(ValueError, match="unknown system 'wavenet'"):
        evaluate(cfg, run, systems=["wavenet"], progress=False)
    with pytest.raises(ValueError, match="unknown system 'diffwave' .the rows of diffwave are diffwave_resynth."):
        evaluate(cfg, run, systems=["diffwave"], progress=False)


def test_stale_results_are_refused(evaluated, tmp_path):
    cfg, run, results = evaluated
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    check_fresh(results, copy)  # nothing changed
    assert fresh_rows(cfg, copy) == results["rows"]
    other_judge = get_config("smoke", {"data.root": cfg.data.root, "eval.kid_subsets": 3})
    assert fresh_rows(other_judge, copy) == {}
    torch.manual_seed(123)      # "retrain" the transformer: other weights, same folder
    save_checkpoint(copy / "ar", NextScaleTransformer(cfg.ar, cfg.tokenizer), cfg, "ar", 2,
                    made_from=tokenizer_fingerprint(copy / "tokenizer"))
    assert set(fresh_rows(cfg, copy)) == set(results["rows"]) - {"mars"}
    with pytest.raises(CheckpointError, match="stale.*ar"):
        check_fresh(results, copy)
    with pytest.raises(CheckpointError, match="stale"):
        build_report(copy, tmp_path / "report")


def test_floor_row_pairs_each_test_clip_with_a_train_note_of_its_family(evaluated):
    cfg = evaluated[0]
    test = held_out_clips(cfg)
    floor = real_train_clips(cfg, test)
    assert floor.waves.shape == test.waves.shape
    assert (floor.family == test.family).all()
    capped = held_out_clips(get_config("smoke", {"data.root": cfg.data.root, "eval.max_conditions": 3}))
    assert len(capped.waves) == 3


def test_report_is_computed_from_the_run(evaluated, tmp_path):
    cfg, run, results = evaluated
    report = build_report(run, tmp_path / "report")
    text = report.read_text()
    assert (tmp_path / "report" / "figures" / "metrics.png").stat().st_size > 10_000
    paper = paper_claims()
    assert all(v is None for v in paper["metrics"].values())  # we do not know them: never invented
    assert "+0.19" in text and "n/a (not available to us)" in text and "VGGish" in text
    mars = results["rows"]["mars"]["metrics"]
    for key in PAPER_METRICS.values():
        assert f"{mars[key]:.4g}" in text
    delta = mars["fd_crepe"] - results["rows"]["truncation"]["metrics"]["fd_crepe"]
    assert f"{delta:+.2f}" in text
    headlines = text.split("## Headlines")[1].split("##")[0]
    rows = results["rows"]
    lo, hi = rows["mars"]["intervals"]["pitch_acc_crepe"]
    assert f"{mars['pitch_acc_crepe']:.0%} [{lo:.0%}, {hi:.0%}]" in headlines
    for name, key, spec in (("mars", "classifier_family_acc", "{:.0%}"), ("mars", "fd_crepe", "{:.1f}"),
                            ("tokenizer", "classifier_family_acc", "{:.0%}"), ("tokenizer", "fd_crepe", "{:.1f}")):
        assert with_interval(rows[name], key, spec) in headlines, (name, key)
    assert INTERVAL_RULE in headlines and "within noise" in headlines
    # the paper's comparison: filled from the comparison systems' rows, per metric, never "not tested"
    claim = next(line for line in text.splitlines() if line.startswith("| comparable or better than DiffWave"))
    assert "vs DDSP (generated notes): MARS" in claim and "vs NSynth WaveNet AE (generated notes)" in claim
    assert "vs DiffWave (resynthesis of held-out notes)" in claim and "not tested" not in claim
    assert "| metric | paper (MARS) | ours (MARS) | DDSP | NSynth WaveNet AE |" in text
    for label in ("DDSP resynthesis", "DiffWave vocoder resynthesis", "NSynth WaveNet AE, generated"):
        assert f"| {label} |" in text, label


def test_cli_evaluate_and_report(evaluated, tmp_path, capsys, monkeypatch, repo_untouched):
    cfg, run, _ = evaluated
    assert main(["report", "--run", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", "--run", str(empty)]) == 2
    assert "mars evaluate" in capsys.readouterr().err
    monkeypatch.chdir(REPO_ROOT)  # relative defaults (data/..., reports/) would land in the repository
    data = ["--data-dir", cfg.data.root]
    assert main(["evaluate", "--profile", "smoke", "--run", str(empty), *data]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    assert main(["evaluate", "--profile", "smoke", "--run", str(copy), "--systems", "griffin_lim", *data]) == 0
    assert "phase ceiling" in capsys.readouterr().out
    assert main(["report", "--run", str(copy)]) == 0  # smoke reports stay inside the run folder
    assert (copy / "report" / "REPORT.md").exists()


def test_ablation_configs_share_the_token_budget():
    cfg = get_config("course")
    grids = {rep: representation_config(cfg, rep) for rep in REPRESENTATIONS}
    assert {c.latent_shape for c in grids.values()} == {cfg.latent_shape}
    assert grids["cmx"].input_shape == (16, 32, 64) and grids["truncate"].input_shape == (1, 32, 64)
    assert grids["full"].input_shape == (1, 128, 256)
    base = baseline_config(cfg)
    assert base.train_tokenizer.steps == round(0.25 * cfg.train_tokenizer.steps)
    assert base.train_ar.steps == round(0.25 * cfg.train_ar.steps)
    assert truncation_config(cfg).cmx.mode == "truncate"
    with pytest.raises(ConfigError, match="baseline_budget"):
        get_config("course", {"eval.baseline_budget": 1.5})
    with pytest.raises(ValueError, match="representation"):
        representation_config(cfg, "mp3")


def test_step_costs_show_what_cmx_saves():
    rows = step_costs(get_config("smoke"), batch_size=2, repeats=1)
    by = {r["representation"]: r for r in rows}
    assert set(by) == set(REPRESENTATIONS) and len({r["tokens"] for r in rows}) == 1
    assert by["full"]["activation_mb"] > 2 * by["cmx"]["activation_mb"]
    assert all(r["step_ms"] > 0 for r in rows)
    json.dumps(rows)  # goes into results.json as is
