"""Config overrides are never silently ignored (smoke profile).

``mars reproduce --set`` reaches every notebook, ``mars evaluate --set ar.cfg_scale``
changes what MARS generates (and the row says so), and a ``--set`` key that a
command does not read is refused with exit code 2.
"""

import json

import numpy as np
import pytest
import torch

from marslib.autoregressor import NextScaleTransformer
from marslib.autoregressor.training import tokenizer_fingerprint
from marslib.checkpoint import save_checkpoint
from marslib.cli import USES, check_uses, main
from marslib.config import ConfigError, get_config
from marslib.data import ensure_dataset, read_manifest
from marslib.evaluate import fresh_rows, make_clips
from marslib.evaluate import (
    test_clips as held_out_clips,  # (not a test: pytest would collect "test_*")
)
from marslib.metrics import SpectrogramClassifier
from marslib.runtime import as_overrides, setup_run
from marslib.tokenizer import Tokenizer

EVERY_VELOCITY = "data.velocities=(25,50,75,100,127)"


def _reproduce_01(tmp_path, name: str, *extra: str) -> dict:
    out, data = tmp_path / name, tmp_path / f"data_{name}"
    assert main(["reproduce", "--profile", "smoke", "--out", str(out), "--data-dir", str(data),
                 "--notebooks", "01", *extra]) == 0
    return json.loads((out / "01_stft_and_cmx" / "results.json").read_text())


def test_reproduce_set_reaches_the_notebooks(tmp_path, capsys):
    plain = _reproduce_01(tmp_path, "plain")["run"]
    every = _reproduce_01(tmp_path, "every", "--set", EVERY_VELOCITY)["run"]
    assert plain["overrides"] == {} and every["overrides"] == {"data.velocities": [25, 50, 75, 100, 127]}
    assert plain["config"]["data"]["velocities"] == [100]
    assert every["config"]["data"]["velocities"] == [25, 50, 75, 100, 127]
    assert every["config"]["data"]["root"] == str(tmp_path / "data_every")
    # the notebook read the five-velocity dataset: five times the clips of the plain one
    assert sum(every["dataset"].values()) == 5 * sum(plain["dataset"].values()) > 0
    assert read_manifest(tmp_path / "data_every")["velocities"] == [25, 50, 75, 100, 127]
    # `data info` counts what its filters keep
    capsys.readouterr()
    assert main(["data", "info", "--profile", "smoke", "--root", str(tmp_path / "data_every"),
                 "--set", "data.velocities=(25,)"]) == 0
    counts = [int(line.split()[1]) for line in capsys.readouterr().out.splitlines()]
    assert sum(counts) == sum(plain["dataset"].values())


def test_notebook_overrides_parameter(tmp_path):
    assert as_overrides("") == as_overrides("{}") == as_overrides(None) == {}
    assert as_overrides('{"ar.cfg_scale": 4}') == {"ar.cfg_scale": 4}
    cfg, _ = setup_run("x", "smoke", out_dir=str(tmp_path), overrides='{"ar.cfg_scale": 4, "data.velocities": [25]}')
    assert cfg.ar.cfg_scale == 4.0 and cfg.data.velocities == (25,)
    for bad, match in (("[1]", "map config keys"), ("{oops", "JSON object"), ('{"seed": 1}', "parameter of its own")):
        with pytest.raises(ConfigError, match=match):
            setup_run("x", "smoke", out_dir=str(tmp_path), overrides=bad)


def test_velocities_are_validated():
    for bad in ((), (100, 100), (30,)):
        with pytest.raises(ConfigError, match="data.velocities"):
            get_config("smoke", {"data.velocities": bad})


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> str:
    """The smoke dataset, rendered in a temporary folder (its feature cache goes beside it)."""
    root = str(tmp_path_factory.mktemp("smoke") / "data")
    ensure_dataset(get_config("smoke", {"data.root": root}))
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_root):
    """A run folder with untrained tokenizer, transformer and classifier (as tests/test_evaluate.py)."""
    cfg = get_config("smoke", {"eval.max_conditions": 6, "data.root": data_root})
    run = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    save_checkpoint(run / "tokenizer", Tokenizer(cfg), cfg, "tokenizer", 1)
    save_checkpoint(run / "ar", NextScaleTransformer(cfg.ar, cfg.tokenizer), cfg, "ar", 1,
                    made_from=tokenizer_fingerprint(run / "tokenizer"))
    save_checkpoint(run / "classifier", SpectrogramClassifier(cfg), cfg, "classifier", 1)
    return run


def test_guidance_scale_comes_from_the_evaluating_config(run, data_root):
    cfg2, cfg8 = (get_config("smoke", {"eval.max_conditions": 6, "ar.cfg_scale": s, "data.root": data_root})
                  for s in (2.0, 8.0))
    test = held_out_clips(cfg2)
    at2, at8 = make_clips("mars", cfg2, run, test), make_clips("mars", cfg8, run, test)
    assert not np.array_equal(at2.waves, at8.waves)  # the checkpoint says 2.0; 8.0 was asked for
    assert at2.sampling["cfg_scale"] == 2.0 and at8.sampling["cfg_scale"] == 8.0
    assert at2.sampling == {"cfg_scale": 2.0, "temperature": 1.0, "top_k": 0, "top_p": 0.0, "guidance": "joint"}
    assert np.array_equal(at2.waves, make_clips("mars", cfg2, run, test).waves)


def test_evaluate_set_cfg_scale_is_recorded_and_never_reused_for_another(run, data_root, capsys, repo_untouched):
    def evaluate(*extra):
        assert main(["evaluate", "--profile", "smoke", "--run", str(run), "--data-dir", data_root,
                     "--set", "eval.max_conditions=6", *extra]) == 0
        return json.loads((run / "evaluation" / "metrics.json").read_text())["rows"]

    rows = evaluate("ar.cfg_scale=8", "--systems", "mars")
    assert rows["mars"]["sampling"]["cfg_scale"] == 8.0
    assert "cfg_scale 8" in (run / "evaluation" / "table.md").read_text()
    at = lambda s: get_config("smoke", {"eval.max_conditions": 6, "ar.cfg_scale": s,  # noqa: E731
                                        "data.root": data_root})
    assert "mars" in fresh_rows(at(8.0), run) and "mars" not in fresh_rows(at(2.0), run)
    rows = evaluate("--systems", "griffin_lim")  # the profile's scale, 2: the row sampled at 8 goes
    assert set(rows) == {"griffin_lim"} and "dropping saved rows mars" in capsys.readouterr().out
    rows = evaluate("--systems", "mars")
    assert rows["mars"]["sampling"]["cfg_scale"] == 2.0 and set(rows) == {"griffin_lim", "mars"}


@pytest.mark.parametrize("argv, key", [
    (["train", "tokenizer", "--set", "ar.cfg_scale=8"], "ar.cfg_scale"),
    (["train", "ar", "--set", "ar.top_k=5"], "ar.top_k"),
    (["train", "ar", "--set", "train_tokenizer.steps=5"], "train_tokenizer.steps"),
    (["train", "raster", "--set", "tokenizer.scales=((4,16),)"], "tokenizer.scales"),
    (["train", "truncation", "--set", "cmx.mode=cmx"], "cmx.mode"),
    (["train", "classifier", "--set", "tokenizer.codebook_size=32"], "tokenizer.codebook_size"),
    (["evaluate", "--set", "tokenizer.beta=0.1"], "tokenizer.beta"),
    (["evaluate", "--set", "train_ar.steps=3"], "train_ar.steps"),
    (["evaluate", "--set", "eval.classifier_channels=4"], "eval.classifier_channels"),
    (["data", "synth", "--set", "ar.cfg_scale=8"], "ar.cfg_scale"),
    (["data", "info", "--set", 'data={"pitch_step": 2}'], "data.pitch_step"),
])
def test_set_key_the_command_ignores_is_refused(argv, key, tmp_path, capsys):
    where = ["--out", str(tmp_path / "out")] if argv[0] == "train" else (
        ["--run", str(tmp_path / "out")] if argv[0] == "evaluate" else ["--root", str(tmp_path / "out")])
    assert main([*argv[:argv.index("--set")], "--profile", "smoke", *where, *argv[argv.index("--set"):]]) == 2
    err = capsys.readouterr().err
    command = " ".join(argv[:argv.index("--set")])
    assert err.startswith(f"error: --set {key} is not used by 'mars {command}' (it uses: ") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()  # refused before doing anything


def test_flags_and_top_level_keys(tmp_path, capsys):
    for argv, message in (
            (["reproduce", "--set", "seed=1"], "--set seed is not a config override; use --seed"),
            (["train", "ar", "--set", "device=cpu"], "--set device is not a config override; use --device"),
            (["evaluate", "--set", "profile=paper"], "--set profile is not a config override; use --profile"),
            (["data", "info", "--seed", "3"], "--seed is not used by 'mars data info'"),
            (["data", "synth", "--device", "cpu"], "--device is not used by 'mars data synth'"),
            (["train", "tokenizer", "--set", "ar.cfg_scal=8"], "unknown config field 'ar.cfg_scal'")):
        assert main([*argv, "--profile", "smoke"]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"error: {message}") and err.count("\n") == 1, (argv, err)



def test_what_a_command_reads_it_accepts():
    check_uses("evaluate --train-classifier", ["eval.classifier_channels", "train_classifier.steps", "ar.top_p"],
               seed=True, device=True)
    check_uses("train raster", ["tokenizer.channels", "cmx.mode", "ar.depth", "eval.baseline_budget"])
    check_uses("train truncation", ["tokenizer.scales", "cmx.factor"])
    check_uses("data synth", ["audio.sample_rate", "data.velocities"], seed=True)
    check_uses("reproduce", ["tokenizer.scales", "ar.cfg_scale", "eval.baseline_budget"], seed=True, device=True)
    assert set(USES) >= {"data synth", "data info", "evaluate", "reproduce"} | {
        f"train {m}" for m in ("tokenizer", "ar", "raster", "truncation", "classifier")}


def test_repeated_set_flags_all_count():
    """``--set a=1 --set b=2`` keeps both (argparse's plain "store" would keep only the last)."""
    from marslib.cli import build_parser
    args = build_parser().parse_args(["train", "tokenizer", "--set", "tokenizer.downsample=2",
                                      "--set", "tokenizer.time_downsample=8", "tokenizer.detail_weight=1"])
    assert args.set == ["tokenizer.downsample=2", "tokenizer.time_downsample=8", "tokenizer.detail_weight=1"]
