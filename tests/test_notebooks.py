"""Every notebook runs end to end under papermill (smoke profile) and writes what it promises.

Notebooks share one run folder, in teaching order, as ``mars reproduce`` runs
them: notebook 03 reuses the tokenizer notebook 02 trained.  Each one also runs
on its own (it trains what is missing), which ``mars reproduce --notebooks 03``
exercises.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from marslib.notebooks import execute_notebook, notebook_sources, pair_in_sync
from marslib.widgets import stft_cmx_explorer

SOURCES = notebook_sources()


def check_01(r: dict, out: Path) -> None:
    assert r["spectrogram_shape"] == [64, 256] and r["cmx_input_shape"] == [4, 32, 128]
    assert r["cmx_roundtrip_exact"] is True
    sc = [r["griffin_lim_sc"][k] for k in sorted(r["griffin_lim_sc"], key=int)]
    assert all(a > b for a, b in zip(sc, sc[1:])), sc          # more iterations, better phase
    assert r["griffin_lim_true_phase_sc"] < 1e-5
    assert r["truncation"]["values_kept"] == 0.25 and 0 < r["truncation"]["energy_lost"] < 1
    assert r["normalise_max_rel_error"] < 1e-5


CHECKS = {"01_stft_and_cmx": check_01}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("smoke_run")


def test_every_notebook_has_checks_and_a_synced_pair():
    assert [s.stem for s in SOURCES][:1] == ["01_stft_and_cmx"]
    for source in SOURCES:
        assert source.stem in CHECKS, f"add a results check for {source.name}"
        assert pair_in_sync(source), f"{source.name} and its .ipynb differ: run marslib.notebooks.sync_pair"


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.stem)
def test_notebook_runs_in_smoke_profile(source, run_dir):
    results = execute_notebook(source, "smoke", run_dir, data_dir=run_dir.parent / "data", seed=0)
    out = run_dir / source.stem
    assert results["profile"] == "smoke" and results["seed"] == 0
    assert results["figures"], "a notebook teaches with figures"
    for name in results["figures"]:
        assert (out / name).stat().st_size > 5_000, f"{name} is missing or empty"
    executed = json.loads((run_dir / "notebooks" / f"{source.stem}.ipynb").read_text())
    assert any(c.get("outputs") for c in executed["cells"] if c["cell_type"] == "code")
    CHECKS[source.stem](results, out)


def test_same_seed_same_numbers(tmp_path):
    """Notebook 01 twice with one seed: identical results.json."""
    first, second = (execute_notebook(SOURCES[0], "smoke", tmp_path / d, data_dir=tmp_path / "data")
                     for d in ("a", "b"))
    assert first == second


def test_explorer_reports_bad_settings_instead_of_raising():
    t = np.arange(8192) / 16000
    explorer = stft_cmx_explorer((0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    good = explorer.update(n_fft=256, hop=64, r=2)
    assert not good.message and good.spec_shape == (128, 128) and good.cmx_shape == (4, 64, 64)
    assert "hop" in explorer.update(n_fft=256, hop=512).message
    assert explorer.update(n_fft=256, hop=64, r=3).message
