"""Kill training at random instants, resume, and get bit-identical weights.

``mars train tokenizer`` and then ``mars train ar`` (smoke profile) run once
uninterrupted, then again under fire: each training process is killed with
SIGKILL or SIGINT (Ctrl-C) at a random instant of its training loop and started
again with ``--resume``, until it finishes.  After every kill the newest complete
checkpoint must hold exactly the uninterrupted run's history up to its step
(losses equal to the last bit), and the finished models must equal the
uninterrupted ones bit for bit.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from marslib.checkpoint import find_checkpoint, has_checkpoint, read_meta, save_checkpoint
from marslib.cli import main
from marslib.config import get_config
from marslib.tokenizer import Tokenizer

KILLS_PER_MODEL = 10
pytestmark = pytest.mark.slow


def _command(run: Path, data: Path, model: str) -> list[str]:
    return [sys.executable, "-m", "marslib.cli", "train", model, "--profile", "smoke", "--out", str(run),
            "--data-dir", str(data), "--resume", "--set", f"data.cache_dir={data / 'cache'}",
            f"train_{model}.checkpoint_every=2"]


class _Training:
    """A training process whose stderr is watched for the moment its training loop starts."""

    def __init__(self, cmd: list[str]) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        self.started, self.stderr = threading.Event(), b""
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        for chunk in iter(lambda: self.proc.stderr.read1(4096), b""):
            self.stderr += chunk
            if b"train " in self.stderr:  # tqdm's bar: the loop is about to run
                self.started.set()

    def wait_started(self) -> bool:
        while not self.started.wait(0.01):
            if self.proc.poll() is not None:
                return False
        return True


def _train_uninterrupted(cmd: list[str]) -> float:
    """Run to the end; return the seconds its training loop took."""
    job = _Training(cmd)
    assert job.wait_started(), job.stderr.decode()[-2000:]
    t0 = time.perf_counter()
    assert job.proc.wait(timeout=600) == 0, job.stderr.decode()[-2000:]
    return time.perf_counter() - t0


def _train_under_fire(cmd: list[str], folder: Path, reference: dict, loop_seconds: float, rng: random.Random
                      ) -> list[tuple[str, int | None]]:
    """Kill and resume until the run finishes; returns ``[(signal, step resumed from), ...]``."""
    kills = []
    while True:
        job = _Training(cmd)
        started = job.wait_started()
        if started and len(kills) < KILLS_PER_MODEL:
            # Soon after the loop starts, so each life makes a little progress and the kills
            # land all along the run (each resumed life starts where the last one saved).  The
            # longest wait shares out what is left of the run among the kills still to come, so
            # a machine that runs faster than it did for the reference still gets every kill in.
            done = (kills[-1][1] or 0) if kills else 0
            left = 1 - done / reference["schedule"][-1]["steps"]
            time.sleep(rng.uniform(0, loop_seconds * left / (KILLS_PER_MODEL - len(kills) + 2)))
            sig = rng.choice([signal.SIGKILL, signal.SIGINT])
            job.proc.send_signal(sig)
        code = job.proc.wait(timeout=600)
        if code == 0:
            return kills
        assert started and len(kills) < KILLS_PER_MODEL, job.stderr.decode()[-2000:]
        step = None
        if has_checkpoint(folder):
            _, meta = find_checkpoint(folder, verify=True)
            step = meta["step"]
            assert meta["extra"]["history"]["train"] == reference["train"][:step], f"diverged by step {step}"
        kills.append((sig.name, step))


def _weights(folder: Path) -> dict:
    path, _ = find_checkpoint(folder, verify=True)
    return load_file(path / "model.safetensors")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted run and one killed 2 x KILLS_PER_MODEL times: ``(root, data, kills, references)``."""
    root = tmp_path_factory.mktemp("fault_injection")
    data = root / "data"
    subprocess.run([sys.executable, "-m", "marslib.cli", "data", "synth", "--profile", "smoke", "--root",
                    str(data)], check=True, capture_output=True)
    rng = random.Random(2026)
    kills, references = {}, {}
    for model in ("tokenizer", "ar"):
        seconds = _train_uninterrupted(_command(root / "reference", data, model))
        _, references[model] = find_checkpoint(root / "reference" / model)
        kills[model] = _train_under_fire(_command(root / "fired", data, model), root / "fired" / model,
                                         references[model]["extra"]["history"], seconds, rng)
    print(kills)
    return root, data, kills, references


@pytest.mark.parametrize("model", ["tokenizer", "ar"])
def test_killed_training_resumes_bit_identically(runs, model):
    root, _, kills, references = runs
    assert len(kills[model]) >= KILLS_PER_MODEL, kills[model]
    assert {s for s, _ in kills[model]} == {"SIGKILL", "SIGINT"}
    a, b = _weights(root / "reference" / model), _weights(root / "fired" / model)
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a), f"{model} weights differ"
    _, fired = find_checkpoint(root / "fired" / model)
    assert fired["extra"]["history"]["train"] == references[model]["extra"]["history"]["train"]
    assert fired["made_from"] == references[model]["made_from"]    # the ar: the same tokenizer, bit for bit


def test_the_cli_refuses_to_mix_up_runs(runs, capsys):
    """Each refusal is one line on stderr and exit code 2, and leaves the run as it was."""
    root, data, _, _ = runs
    run = root / "reference"
    def base(model):
        return ["train", model, "--profile", "smoke", "--out", str(run), "--data-dir", str(data),
                "--set", f"data.cache_dir={data / 'cache'}", f"train_{model}.checkpoint_every=2"]

    before = read_meta(run / "tokenizer")["weights_sha"]
    cases = [(base("tokenizer"), "already holds a trained tokenizer; continue it with --resume"),
             ([*base("tokenizer"), "train_tokenizer.lr=0.001", "--resume"], "train_tokenizer.lr: 0.0003 -> 0.001"),
             ([*base("ar"), "--seed", "1", "--resume"], "seed: 0 -> 1"),
             ([*base("ar"), "train_ar.steps=10", "--resume"], "already trained 30 steps")]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert read_meta(run / "tokenizer")["weights_sha"] == before
    cfg = get_config("smoke")                                  # now "retrain" the tokenizer under the transformer
    save_checkpoint(run / "tokenizer", Tokenizer(cfg), cfg, "tokenizer", 30)
    assert main(["sample", "--checkpoint", str(run), "--pitch", "60", "--family", "keyboard",
                 "--out", str(root / "samples")]) == 2
    assert "retrain the transformer" in capsys.readouterr().err
