"""Checkpoints: atomic directories, fall-back, and runs that know what they were made from."""

import os
import signal

import pytest
import torch

from marslib.autoregressor import NextScaleTransformer
from marslib.autoregressor.training import load_ar, tokenizer_fingerprint
from marslib.checkpoint import CheckpointError, find_checkpoint, has_checkpoint, read_meta, save_checkpoint
from marslib.config import get_config
from marslib.tokenizer import Tokenizer
from marslib.tokenizer.training import load_tokenizer
from marslib.train import train

OVERRIDES = {"train_tokenizer.steps": 6, "train_tokenizer.eval_every": 3, "train_tokenizer.checkpoint_every": 3,
             "train_tokenizer.batch_size": 4, "tokenizer.restart_every": 2}


def _data(cfg, n=12):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, *cfg.input_shape, generator=g) * 2 - 1, {"pitch": torch.arange(n)}


def _train(cfg, run_dir, model=None, **kw):
    torch.manual_seed(0)
    model = model or Tokenizer(cfg)
    history = train(model, cfg, cfg.train_tokenizer, _data(cfg), run_dir, "tokenizer", progress=False, **kw)
    return model, history


def _ckpts(run_dir):
    return sorted(p.name for p in run_dir.iterdir() if p.name.startswith("ckpt-"))


def test_newest_complete_checkpoint_wins_and_a_damaged_one_falls_back(tmp_path, capsys):
    cfg = get_config("smoke", OVERRIDES)
    run = tmp_path / "run"
    _train(cfg, run)
    assert _ckpts(run) == ["ckpt-000001", "ckpt-000002"]          # step 3 kept as the fall-back
    assert read_meta(run)["step"] == 6
    newest = run / "ckpt-000002" / "model.safetensors"
    data = bytearray(newest.read_bytes())
    data[-1] ^= 0xFF                                               # same size, one flipped byte
    newest.write_bytes(bytes(data))
    loaded = load_tokenizer(run)
    assert "does not match its fingerprint" in capsys.readouterr().err
    expected, _ = _train(cfg, tmp_path / "three", stop_after=3)    # the step-3 weights
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), expected.state_dict().values()))
    (run / "ckpt-000001" / "meta.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="no complete checkpoint.*meta.json is corrupt"):
        load_tokenizer(run)


def test_a_killed_writer_leaves_nothing_that_is_read(tmp_path):
    cfg = get_config("smoke", OVERRIDES)
    run = tmp_path / "run"
    _train(cfg, run)
    half = run / ".tmp-ckpt-000003-abc"                            # what a kill mid-save leaves
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"garbage")
    (run / "ckpt-000009").mkdir()                                  # a deletion cut short: no meta.json
    path, meta = find_checkpoint(run, verify=True)
    assert path.name == "ckpt-000002" and meta["step"] == 6
    save_checkpoint(run, Tokenizer(cfg), cfg, "tokenizer", 7)
    assert not half.exists()                                       # the next save cleans up
    assert read_meta(run)["step"] == 7 and _ckpts(run)[-1] == "ckpt-000010"


def test_no_checkpoint_and_old_format_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint in"):
        read_meta(tmp_path)
    (tmp_path / "last.json").write_text("{}")
    with pytest.raises(CheckpointError, match="old single-file format.*--overwrite"):
        read_meta(tmp_path)
    assert not has_checkpoint(tmp_path)


def test_resume_refuses_another_training_setup_and_allows_more_steps(tmp_path):
    cfg = get_config("smoke", OVERRIDES)
    run = tmp_path / "run"
    _train(cfg, run, stop_after=3)
    for change, named in ((("train_tokenizer.lr", 1e-3), "train_tokenizer.lr: 0.0003 -> 0.001"),
                          (("train_tokenizer.batch_size", 8), "train_tokenizer.batch_size: 4 -> 8"),
                          (("seed", 1), "seed: 0 -> 1"),
                          (("data.velocities", (75,)), "data.velocities")):
        other = get_config("smoke", {**OVERRIDES, change[0]: change[1]})
        with pytest.raises(CheckpointError, match=f"different training setup.*{named}"):
            _train(other, run, resume=True)
    with pytest.raises(CheckpointError, match="already trained 3 steps.*train_tokenizer.steps = 2"):
        _train(get_config("smoke", {**OVERRIDES, "train_tokenizer.steps": 2}), run, resume=True)
    # what does not change learning may differ: paths, device, sampling settings
    same = get_config("smoke", {**OVERRIDES, "data.root": str(tmp_path / "elsewhere"), "ar.cfg_scale": 5.0})
    _, history = _train(same, run, resume=True)
    assert len(history["train"]) == 6
    _, history = _train(get_config("smoke", {**OVERRIDES, "train_tokenizer.steps": 9}), run, resume=True)
    assert len(history["train"]) == 9
    assert history["schedule"] == [{"from_step": 0, "steps": 6}, {"from_step": 6, "steps": 9}]


def test_training_never_overwrites_unasked(tmp_path):
    cfg = get_config("smoke", OVERRIDES)
    run = tmp_path / "run"
    _train(cfg, run)
    before = read_meta(run)["weights_sha"]
    with pytest.raises(CheckpointError, match="already holds a trained tokenizer.*--resume.*--overwrite"):
        _train(cfg, run)
    assert read_meta(run)["weights_sha"] == before
    _train(get_config("smoke", {**OVERRIDES, "seed": 3}), run, overwrite=True)
    assert read_meta(run)["config"]["seed"] == 3 and read_meta(run)["weights_sha"] != before
    assert _ckpts(run) == ["ckpt-000001", "ckpt-000002"]          # the old run's checkpoints are gone


def test_transformer_refuses_a_changed_tokenizer(tmp_path):
    cfg = get_config("smoke")
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "tokenizer", Tokenizer(cfg), cfg, "tokenizer", 1)
    made_from = tokenizer_fingerprint(tmp_path / "tokenizer")
    save_checkpoint(tmp_path / "ar", NextScaleTransformer(cfg.ar, cfg.tokenizer), cfg, "ar", 1, made_from=made_from)
    load_ar(tmp_path)                                              # the pair it was made from: fine
    assert read_meta(tmp_path / "ar")["made_from"] == made_from
    save_checkpoint(tmp_path / "tokenizer", Tokenizer(cfg), cfg, "tokenizer", 2)   # "retrained"
    with pytest.raises(CheckpointError, match="trained on tokenizer .* now holds .*retrain the transformer"):
        load_ar(tmp_path)


def test_resume_refuses_a_changed_parent(tmp_path):
    cfg = get_config("smoke", OVERRIDES)
    _train(cfg, tmp_path / "run", stop_after=3, made_from={"tokenizer": "aaaa"})
    with pytest.raises(CheckpointError, match="tokenizer checkpoint: aaaa -> bbbb"):
        _train(cfg, tmp_path / "run", resume=True, made_from={"tokenizer": "bbbb"})


class _InterruptedTokenizer(Tokenizer):
    """Sends itself Ctrl-C in the middle of step ``at`` (after the forward pass, before the update)."""

    at = 4

    def training_losses(self, batch):
        terms = super().training_losses(batch)
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == self.at:
            os.kill(os.getpid(), signal.SIGINT)
        return terms


def test_ctrl_c_mid_step_saves_that_whole_step_and_resume_is_exact(tmp_path):
    cfg = get_config("smoke", {**OVERRIDES, "train_tokenizer.checkpoint_every": 100})
    reference, full = _train(cfg, tmp_path / "a")
    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        _train(cfg, tmp_path / "b", model=_InterruptedTokenizer(cfg))
    meta = read_meta(tmp_path / "b")
    assert meta["step"] == 4 and len(meta["extra"]["history"]["train"]) == 4   # step 4 finished, then saved
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler      # handler restored
    resumed, history = _train(cfg, tmp_path / "b", resume=True)
    assert history == full
    assert all(torch.equal(a, b) for a, b in zip(resumed.state_dict().values(), reference.state_dict().values()))


def test_fit_refuses_before_loading_any_data(tmp_path, monkeypatch):
    from marslib.tokenizer import training

    cfg = get_config("smoke", OVERRIDES)
    _train(cfg, tmp_path / "run", stop_after=3)

    def no_data(*args, **kwargs):
        raise AssertionError("data was loaded before the refusal")

    monkeypatch.setattr(training, "ensure_dataset", lambda cfg: None)
    monkeypatch.setattr(training, "feature_store", no_data)
    with pytest.raises(CheckpointError, match="already holds a trained tokenizer"):
        training.fit_tokenizer(cfg, tmp_path / "run")
    with pytest.raises(CheckpointError, match="seed: 0 -> 1"):
        training.fit_tokenizer(get_config("smoke", {**OVERRIDES, "seed": 1}), tmp_path / "run", resume=True)
