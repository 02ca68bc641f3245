"""Every result file records where it came from: git commit and dirty flag, command, profile,
seed, config, versions and device (``marslib.provenance``).

A smoke run writes four kinds of result file; each is made here the way the run makes it,
all under tmp_path: a notebook's ``results.json`` (notebook 01 under papermill), a
checkpoint's ``meta.json``, ``evaluation/metrics.json`` (untrained checkpoints, as in
test_evaluate.py) and the report's "Provenance" section.
"""

import json
import subprocess
import sys

import pytest
import torch

from marslib import provenance as provenance_mod
from marslib.autoregressor import NextScaleTransformer
from marslib.autoregressor.training import tokenizer_fingerprint
from marslib.checkpoint import find_checkpoint, save_checkpoint
from marslib.config import get_config
from marslib.data import render_dataset
from marslib.evaluate import evaluate
from marslib.metrics import SpectrogramClassifier
from marslib.notebooks import execute_notebook, notebook_sources
from marslib.provenance import REPO_ROOT, config_sha, provenance, provenance_problems
from marslib.report import build_report
from marslib.tokenizer import Tokenizer


def _head() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def check(prov: dict, cfg_dict: dict | None = None) -> None:
    """``prov`` holds every provenance field, names this checkout's commit and, if given, this config."""
    assert provenance_problems(prov) == [], prov
    assert prov["git"]["commit"] == _head()
    assert isinstance(prov["git"]["dirty"], bool) or prov["git"]["commit"] is None
    assert prov["versions"]["torch"] == torch.__version__ and prov["versions"]["librosa"]
    assert prov["versions"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert prov["device"]["type"] == "cpu" and prov["device"]["name"]
    if cfg_dict is not None:
        from marslib.config import Config
        cfg = Config.from_dict(cfg_dict)
        assert prov["config_sha256"] == config_sha(cfg)
        assert (prov["profile"], prov["seed"]) == (cfg.profile, cfg.seed)


def test_provenance_fields_and_the_command(smoke_cfg):
    prov = provenance(smoke_cfg)
    check(prov)
    assert prov["command"]["argv"] == sys.argv and prov["profile"] == "smoke" and prov["seed"] == 0
    json.dumps(prov)  # JSON as it is
    assert provenance_problems({**prov, "versions": {"python": "3"}}) == [
        "versions.torch", "versions.numpy", "versions.librosa"]
    assert provenance_problems(None) == ["provenance"]
    assert provenance_problems({**prov, "command": {"cwd": "/"}}) == ["command.argv"]
    assert provenance_problems({k: v for k, v in prov.items() if k != "git"}) == ["git"]
    other = get_config("smoke", {"seed": 3})
    assert config_sha(other) != config_sha(smoke_cfg) and provenance(other)["seed"] == 3


def test_not_a_git_checkout_is_null_not_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(provenance_mod, "REPO_ROOT", tmp_path)  # a copy of marslib outside any repository
    provenance_mod.git_state.cache_clear()
    try:
        assert provenance(get_config("smoke"))["git"] == {"commit": None, "dirty": None, "changed": None}
        monkeypatch.setenv("PATH", str(tmp_path))          # no git at all
        monkeypatch.setattr(provenance_mod, "REPO_ROOT", REPO_ROOT)
        provenance_mod.git_state.cache_clear()
        assert provenance(get_config("smoke"))["git"]["commit"] is None
    finally:
        provenance_mod.git_state.cache_clear()


def test_a_notebooks_results_record_the_notebook_and_its_parameters(tmp_path):
    source = notebook_sources()[0]
    results = execute_notebook(source, "smoke", tmp_path / "run", data_dir=tmp_path / "data", seed=0,
                               overrides={"audio.griffin_lim_iters": 8})
    prov = results["run"]["provenance"]
    check(prov, results["run"]["config"])
    command = prov["command"]
    assert command["notebook"] == f"{source.stem}.ipynb"
    assert command["parameters"]["profile"] == "smoke" and command["parameters"]["seed"] == 0
    assert command["parameters"]["overrides"] == {"audio.griffin_lim_iters": 8}
    assert command["launched_by"] == sys.argv  # the command that ran papermill


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory):
    """A tiny dataset, untrained checkpoints, an evaluation of the MARS row and its report."""
    tmp = tmp_path_factory.mktemp("prov")
    cfg = get_config("smoke", {"data.root": str(tmp / "data"), "data.cache_dir": str(tmp / "cache"),
                               "data.families": ("keyboard", "string", "brass"), "data.pitch_step": 6,
                               "data.split_fractions": (0.6, 0.2, 0.2)})  # >= 4 test notes to evaluate
    render_dataset(cfg)
    run = tmp / "run"
    torch.manual_seed(0)
    save_checkpoint(run / "tokenizer", Tokenizer(cfg), cfg, "tokenizer", 1)
    save_checkpoint(run / "ar", NextScaleTransformer(cfg.ar, cfg.tokenizer), cfg, "ar", 1,
                    made_from=tokenizer_fingerprint(run / "tokenizer"))
    save_checkpoint(run / "classifier", SpectrogramClassifier(cfg), cfg, "classifier", 1)
    evaluate(cfg, run, systems=["mars"], progress=False)
    report = build_report(run, tmp / "report")
    return cfg, run, report


def test_checkpoint_meta_records_provenance(evaluated_run):
    cfg, run, _ = evaluated_run
    for folder in ("tokenizer", "ar", "classifier"):
        path, _ = find_checkpoint(run / folder)
        meta = json.loads((path / "meta.json").read_text())
        check(meta["provenance"], meta["config"])


def test_evaluation_records_provenance_at_the_top_and_per_row(evaluated_run):
    cfg, run, _ = evaluated_run
    results = json.loads((run / "evaluation" / "metrics.json").read_text())
    check(results["provenance"], results["config"])
    assert results["rows"]["mars"]["provenance"] == results["provenance"]


def test_report_has_a_provenance_section(evaluated_run):
    _, run, report = evaluated_run
    text = report.read_text()
    section = text[text.index("## Provenance"):]
    head = _head()
    commit = f"`{head[:12]}`" if head else "not a git checkout"
    for name in ("evaluation/metrics.json", "tokenizer/ checkpoint", "ar/ checkpoint", "classifier/ checkpoint"):
        row = next(line for line in section.splitlines() if line.startswith(f"| {name} |"))
        assert commit in row and f"torch {torch.__version__}" in row and "cpu (" in row, row
    assert "not recorded" not in section and "This report was written by" in section
