"""The ``paper`` profile's data shapes, end to end on CPU, with tiny models.

A small NSynth-format folder (three splits, 4 s notes at 16 kHz, every field
``marslib.data.nsynth`` requires) stands in for the real download.  Everything
that sets a *shape* is the paper profile's: the 512 x 512 spectrogram (n_fft
1024, hop 128, 512 frames, 65,536 samples), CMX r = 4 -> 16 x 128 x 128, ten
scales ending at 16 x 16.  Only the widths (channels, codebook, transformer),
the step counts and the evaluation's sizes are shrunk with ``--set``, so each
command runs in seconds: tokenizer -> transformer -> ``mars sample`` ->
classifier -> ``mars evaluate --systems tokenizer mars``, then both trainings
again with 2 gloo processes under torchrun, and the paper profile without its
dataset (the download message).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from marslib.cli import main
from marslib.config import NSYNTH_FAMILIES, get_config
from marslib.data.nsynth import NSYNTH_SECONDS

PAPER = get_config("paper")
SR = 16000
# (family, source, pitch, velocity) per split; the paper profile keeps pitches 21..108 and all velocities.
NOTES = {
    "train": [("keyboard", "acoustic", 48, 100), ("keyboard", "acoustic", 55, 75), ("guitar", "acoustic", 60, 50),
              ("guitar", "electronic", 64, 127), ("string", "acoustic", 67, 100), ("string", "synthetic", 72, 25)],
    "valid": [("keyboard", "acoustic", 52, 100), ("guitar", "acoustic", 62, 75)],
    "test": [("keyboard", "acoustic", 57, 100), ("string", "acoustic", 69, 50), ("guitar", "acoustic", 64, 75),
             ("brass", "acoustic", 60, 100)],  # the evaluation needs 4 (evaluate.MIN_TEST_CLIPS)
}
TOKENIZER = ["tokenizer.channels=8", "tokenizer.latent_dim=4", "tokenizer.codebook_size=16",
             "audio.griffin_lim_iters=4"]  # fewer Griffin-Lim iterations: no shape changes
TRAIN_TOKENIZER = ["train_tokenizer.steps=2", "train_tokenizer.batch_size=2", "train_tokenizer.warmup_steps=1",
                   "train_tokenizer.eval_every=2", "train_tokenizer.checkpoint_every=2"]
AR = ["ar.depth=1", "ar.width=32", "ar.heads=2", "train_ar.steps=2", "train_ar.batch_size=2",
      "train_ar.warmup_steps=1", "train_ar.eval_every=2", "train_ar.checkpoint_every=2"]
CLASSIFIER = ["eval.classifier_channels=4", "eval.classifier_embed=8", "train_classifier.steps=2",
              "train_classifier.batch_size=2", "train_classifier.warmup_steps=1", "train_classifier.eval_every=2",
              "train_classifier.checkpoint_every=2", "audio.griffin_lim_iters=4"]
EVAL = ["eval.clips_per_condition=1", "eval.crepe_capacity=tiny", "eval.crepe_frames=2", "eval.ndb_bins=2",
        "eval.kid_subset=2", "eval.kid_subsets=2", "audio.griffin_lim_iters=4"]


def _note(pitch: int, velocity: int, seed: int) -> np.ndarray:
    """A 4 s decaying harmonic tone (NSynth's length: 3 s held, then released), float32."""
    t = np.arange(int(NSYNTH_SECONDS * SR)) / SR
    f0 = 440.0 * 2 ** ((pitch - 69) / 12)
    rng = np.random.default_rng(seed)
    y = sum(rng.uniform(0.3, 1.0) / k * np.sin(2 * np.pi * f0 * k * t) for k in range(1, 8) if f0 * k < SR / 2)
    y = y * np.exp(-1.5 * t) * np.minimum(1.0, t / 0.01) * np.clip((3.5 - t) / 0.5, 0, 1)
    return (0.8 * velocity / 127 * y / np.max(np.abs(y))).astype(np.float32)


def write_nsynth(root: Path) -> Path:
    """A tiny NSynth download: ``root/nsynth-<split>/{examples.json, audio/<note_str>.wav}``."""
    seed = 0
    for split, notes in NOTES.items():
        audio = root / f"nsynth-{split}" / "audio"
        audio.mkdir(parents=True)
        entries = {}
        for family, source, pitch, velocity in notes:
            instrument_str = f"{family}_{source}_{seed:03d}"
            note_str = f"{instrument_str}-{pitch:03d}-{velocity:03d}"
            sf.write(audio / f"{note_str}.wav", _note(pitch, velocity, seed), SR, subtype="PCM_16")
            entries[note_str] = {
                "note": seed, "note_str": note_str, "pitch": pitch, "velocity": velocity, "sample_rate": SR,
                "instrument": seed, "instrument_str": instrument_str,
                "instrument_family": NSYNTH_FAMILIES.index(family), "instrument_family_str": family,
                "instrument_source": ("acoustic", "electronic", "synthetic").index(source),
                "instrument_source_str": source, "qualities": [0] * 10, "qualities_str": []}
            seed += 1
        (root / f"nsynth-{split}" / "examples.json").write_text(json.dumps(entries))
    return root


@pytest.fixture(scope="module")
def nsynth(tmp_path_factory) -> Path:
    return write_nsynth(tmp_path_factory.mktemp("paper") / "nsynth")


def _mars(*argv: str) -> None:
    assert main(list(argv)) == 0, argv


def _train(model: str, data: Path, out: Path, *sets: str, workers: int = 0) -> list[str]:
    return ["train", model, "--profile", "paper", "--device", "cpu", "--data-dir", str(data), "--out", str(out),
            "--set", f"data.workers={workers}", *sets]


def _losses(folder: Path) -> list[float]:
    history = json.loads((folder / "history.json").read_text())
    return [r["loss"] for r in history["train"] + history["valid"]]


def _checkpoints(folder: Path) -> list[Path]:
    """The checkpoint folders (``ckpt-N``) and any half-written ones (``.tmp-*``) in a run folder."""
    return sorted(p for p in folder.iterdir() if p.name.startswith(("ckpt-", ".tmp-")))


def test_paper_profile_shapes():
    """What the rest of this file relies on: the paper profile's shapes, not shrunk."""
    assert PAPER.data.source == "nsynth" and PAPER.audio.sample_rate == SR
    assert PAPER.spec_shape == (512, 512) and PAPER.audio.clip_samples == 65_536
    assert PAPER.input_shape == (16, 128, 128) and PAPER.latent_shape == (16, 16)
    assert PAPER.tokenizer.scales == tuple((s, s) for s in (1, 2, 3, 4, 5, 6, 8, 10, 13, 16))


def test_paper_shapes_end_to_end(nsynth, tmp_path, repo_untouched):
    from marslib.autoregressor.training import load_ar
    from marslib.checkpoint import read_meta
    from marslib.data.store import RowStore

    run = tmp_path / "run"
    _mars(*_train("tokenizer", nsynth, run, *TOKENIZER, *TRAIN_TOKENIZER))
    _mars(*_train("ar", nsynth, run, *TOKENIZER, *AR))

    # The features: one 16 x 128 x 128 row per note, on disk beside the dataset.
    complete = [p for p in (nsynth.parent / "cache").iterdir() if (p / "meta.json").is_file()]
    stores = {p.name.split("-")[0]: RowStore(p) for p in complete if not p.name.startswith("tokens")}
    assert {k: (len(s), s.row_shape) for k, s in stores.items()} == {
        split: (len(NOTES[split]), (16, 128, 128)) for split in ("train", "valid")}
    tokens = [RowStore(p) for p in complete if p.name.startswith("tokens")]  # the transformer's inputs
    assert tokens and {s.row_shape for s in tokens} == {(680,)}  # 1 + 4 + ... + 256 tokens a note

    for folder in ("tokenizer", "ar"):
        losses = _losses(run / folder)
        assert losses and all(np.isfinite(losses)), (folder, losses)
        assert len(_checkpoints(run / folder)) == 1, folder
        assert read_meta(run / folder)["step"] == 2
    model, tokenizer = load_ar(run)
    assert tokenizer.input_shape == (16, 128, 128)
    assert [tuple(s) for s in tokenizer.quantizer.scales] == list(PAPER.tokenizer.scales) and model.L == 680
    x, _ = stores["valid"].read([0])
    assert [tuple(i.shape[1:]) for i in tokenizer.encode(x)] == list(PAPER.tokenizer.scales)
    assert tokenizer.decode(tokenizer.encode(x)).shape == (1, 16, 128, 128)

    samples = tmp_path / "samples"
    _mars("sample", "--checkpoint", str(run), "--pitch", "60", "--family", "keyboard", "--n", "1",
          "--out", str(samples))
    wav, sr = sf.read(samples / "keyboard_060_00.wav")
    assert (sr, wav.shape) == (SR, (65_536,)) and np.isfinite(wav).all() and np.abs(wav).max() > 0
    assert json.loads((samples / "request.json").read_text())["status"] == "complete"

    _mars(*_train("classifier", nsynth, run, *CLASSIFIER))
    assert all(np.isfinite(_losses(run / "classifier")))
    _mars("evaluate", "--profile", "paper", "--device", "cpu", "--data-dir", str(nsynth), "--run", str(run),
          "--systems", "tokenizer", "mars", "--set", *EVAL)
    results = json.loads((run / "evaluation" / "metrics.json").read_text())
    assert list(results["rows"]) == ["tokenizer", "mars"]
    for name, row in results["rows"].items():
        assert row["n"] == len(NOTES["test"]), name
        assert all(np.isfinite(v) for v in row["metrics"].values()), (name, row["metrics"])
    assert (run / "evaluation" / "table.md").is_file()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_paper_shapes_two_gloo_processes(nsynth, tmp_path):
    """``--distributed`` under torchrun with 2 CPU processes: both ranks finish, rank 0 writes one checkpoint.

    Each rank reads its half of every batch through one DataLoader worker process (``data.workers=1``).
    """
    from marslib.checkpoint import read_meta

    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for model, sets in (("tokenizer", [*TOKENIZER, *TRAIN_TOKENIZER]), ("ar", [*TOKENIZER, *AR])):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
               "127.0.0.1", "--master_port", str(_free_port()), "-m", "marslib.cli",
               *_train(model, nsynth, run, *sets, workers=1), "--distributed"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        # Every rank prints the summary line when its training returns.
        assert proc.stdout.count(f"{model} trained in") == 2, proc.stdout[-3000:]
        assert len(_checkpoints(run / model)) == 1
        meta = read_meta(run / model)
        assert meta["step"] == 2 and meta["config"]["tokenizer"]["channels"] == 8
        assert all(np.isfinite(_losses(run / model)))


@pytest.mark.parametrize("where", ["cwd", "data-dir"])
def test_paper_profile_without_nsynth_says_how_to_get_it(where, tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = ["train", "tokenizer", "--profile", "paper", "--out", str(tmp_path / "run")]
    if where == "cwd":
        monkeypatch.chdir(empty)  # the profile's data.root, data/nsynth, is relative
    else:
        argv += ["--data-dir", str(empty)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the real NSynth is needed (data.source = 'nsynth')")
    assert "https://magenta.tensorflow.org/datasets/nsynth" in err and "--data-dir" in err
    assert not (tmp_path / "run").exists() and list(empty.iterdir()) == []
