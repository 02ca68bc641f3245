"""Shared fixtures: small deterministic signals and configs (smoke profile)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from marslib import lab
from marslib.config import get_config

torch.set_num_threads(2)


@pytest.hookimpl(trylast=True)  # after pytest's own tmp_path set-up
def pytest_configure(config):
    """Hypothesis keeps its example database and caches in .hypothesis/ under the working
    folder (the repository), from collection on; tests write only under pytest's temporary
    folder, so Hypothesis gets one there."""
    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(config._tmp_path_factory.mktemp("hypothesis"))


def assert_check_passes(result):
    """A ``lab.check`` result that says the answer is right (✓ first)."""
    assert result and repr(result).startswith(lab.PASS), repr(result)
    return result


def assert_check_fails(result, hint: str = "not yet"):
    """A ``lab.check`` result that says the answer is wrong, with ``hint`` in its message."""
    assert not result and hint in repr(result), repr(result)
    return result


def check_passes(exercise_id: str, answer, **context):
    return assert_check_passes(lab.check(exercise_id, answer, **context))


def check_fails(exercise_id: str, answer, hint: str = "not yet", **context):
    return assert_check_fails(lab.check(exercise_id, answer, **context), hint)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one thread for a module: batch-1 sampling of a tiny model is too short to split
    over threads, and on a busy machine two threads waiting on each other are several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def smoke_cfg():
    return get_config("smoke")


def harmonic_note(f0: float = 220.0, sample_rate: int = 16000, seconds: float = 1.0,
                  n_harmonics: int = 6) -> np.ndarray:
    """A decaying harmonic tone: a stand-in for a real instrument note, (N,) float32."""
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    y = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, n_harmonics + 1) if f0 * k < sample_rate / 2)
    y = y * np.exp(-2.0 * t) * np.minimum(1.0, t / 0.01)
    return (0.5 * y / np.max(np.abs(y))).astype(np.float32)


@pytest.fixture
def note():
    return harmonic_note()


def _repo_outputs() -> dict[str, int]:
    """Every file and folder under the repository's data/, runs/ and reports/, with its mtime (ns)."""
    from marslib.notebooks import REPO_ROOT  # the checkout marslib is imported from

    found = {}
    for top in ("data", "runs", "reports"):
        for p in [REPO_ROOT / top, *(REPO_ROOT / top).rglob("*")]:
            if p.exists():
                found[str(p.relative_to(REPO_ROOT))] = p.stat().st_mtime_ns
    return found


@pytest.fixture
def repo_untouched():
    """Fails the test (at teardown) if it added, changed or removed anything under the
    repository's data/, runs/ or reports/: tests write under tmp_path only."""
    before = _repo_outputs()
    yield
    after = _repo_outputs()
    changed = sorted({p for p in before.keys() | after.keys() if before.get(p) != after.get(p)})
    assert not changed, f"the test wrote into the repository: {changed[:10]}"


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """``(cfg, run)``: the smoke dataset in a temporary folder and a run folder with *untrained*
    checkpoints of the tokenizer and the next-scale transformer, and the classifier trained for
    its 30 smoke steps (so that it names more than one family); seconds to make.

    For code that reads a run (studies, benchmarks); treat it as read-only (copy it to change it).
    """
    from marslib.autoregressor import NextScaleTransformer
    from marslib.autoregressor.training import tokenizer_fingerprint
    from marslib.checkpoint import save_checkpoint
    from marslib.data import ensure_dataset
    from marslib.metrics import fit_classifier
    from marslib.tokenizer import Tokenizer

    cfg = get_config("smoke", {"data.root": str(tmp_path_factory.mktemp("smoke_data") / "data")})
    ensure_dataset(cfg)
    run = tmp_path_factory.mktemp("smoke_run")
    torch.manual_seed(0)
    save_checkpoint(run / "tokenizer", Tokenizer(cfg), cfg, "tokenizer", 1)
    save_checkpoint(run / "ar", NextScaleTransformer(cfg.ar, cfg.tokenizer), cfg, "ar", 1,
                    made_from=tokenizer_fingerprint(run / "tokenizer"))
    fit_classifier(cfg, run / "classifier", progress=False)
    return cfg, run
