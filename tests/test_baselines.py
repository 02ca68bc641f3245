"""The comparison systems' plumbing: registry, waveform store, training through the one loop, the claim's row.

Each system's own behaviour is tested in ``tests/test_baseline_<name>.py``.
"""

import pytest
import torch

from marslib.baselines import BASELINES, build, fit_baseline, load_baseline, model_class
from marslib.checkpoint import CheckpointError
from marslib.config import get_config
from marslib.data import ensure_dataset, split_examples, wave_store
from marslib.report import PAPER_METRICS, comparison_directions, metric_direction


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    cfg = get_config("smoke", {"data.root": str(tmp_path_factory.mktemp("data") / "data")})
    ensure_dataset(cfg)
    return cfg


def test_unknown_system_is_named():
    with pytest.raises(ValueError, match="unknown comparison system 'wavenet'.*ddsp, diffwave, wavenet_ae"):
        model_class("wavenet")


def test_wave_store_holds_the_clips_every_system_is_judged_on(smoke):
    store = wave_store(smoke, "train")
    assert len(store) == len(split_examples(smoke, "train"))
    waves, labels = store.read(torch.arange(3))
    assert waves.shape == (3, smoke.audio.clip_samples) and waves.dtype == torch.float32
    assert set(labels) == {"pitch", "family", "velocity"}
    assert waves.abs().amax(1).min() > 0.01  # notes, not silence


@pytest.mark.parametrize("name", list(BASELINES))
def test_each_system_builds_from_every_profile_and_is_seeded(name, smoke):
    a, b = build(name, smoke), build(name, smoke)
    for p, q in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(p, q)
    assert sum(p.numel() for p in a.parameters()) > 0


def test_training_resumes_and_refuses_another_setup(smoke, tmp_path):
    cfg = get_config("smoke", {"data.root": smoke.data.root, "ddsp.train.steps": 4, "ddsp.train.checkpoint_every": 2})
    run = tmp_path / "ddsp"
    _, history = fit_baseline("ddsp", cfg, run, stop_after=2, progress=False)
    assert len(history["train"]) == 2
    with pytest.raises(CheckpointError, match="--resume"):
        fit_baseline("ddsp", cfg, run, progress=False)
    other = get_config("smoke", {"data.root": smoke.data.root, "ddsp.train.steps": 4, "ddsp.hidden": 16})
    with pytest.raises(CheckpointError, match="ddsp.hidden: 32 -> 16"):
        fit_baseline("ddsp", other, run, resume=True, progress=False)
    longer = get_config("smoke", {"data.root": smoke.data.root, "ddsp.train.steps": 6,
                                  "ddsp.train.checkpoint_every": 2})
    _, history = fit_baseline("ddsp", longer, run, resume=True, progress=False)  # steps may grow
    assert [h["step"] for h in history["train"]] == [1, 2, 3, 4, 5, 6]
    model = load_baseline("ddsp", run, longer)
    assert not model.training


def _row(**metrics):
    base = {k: 1.0 for k in PAPER_METRICS.values()}
    return {"metrics": base | metrics}


def test_claim_directions_follow_each_metrics_better_side():
    mars, ddsp = _row(fd_crepe=10.0, pis=3.0, mse=0.5), _row(fd_crepe=20.0, pis=2.0, mse=0.1)
    assert metric_direction(mars, ddsp, "fd_crepe") == "better"      # lower is better
    assert metric_direction(mars, ddsp, "pis") == "better"           # higher is better
    assert metric_direction(mars, ddsp, "mse") == "worse"
    assert metric_direction(mars, ddsp, "ndb_k") == "within noise"   # equal
    mars["intervals"], ddsp["intervals"] = {"fd_crepe": [5.0, 25.0]}, {"fd_crepe": [15.0, 30.0]}
    assert metric_direction(mars, ddsp, "fd_crepe") == "within noise"  # intervals overlap
    rows = {"mars": mars, "ddsp": ddsp, "tokenizer": _row(mae=0.2), "diffwave_resynth": _row(mae=0.4)}
    found = {name: (what, text) for name, what, text in comparison_directions(rows)}
    assert set(found) == {"DDSP", "DiffWave"}                        # no WaveNet AE row: not claimed
    assert found["DDSP"][0] == "generated notes" and "better on 1/8 (PIS)" in found["DDSP"][1]
    assert "worse on 1/8 (MSE)" in found["DDSP"][1]
    assert found["DiffWave"][0] == "resynthesis of held-out notes" and "better on 1/8 (MAE)" in found["DiffWave"][1]
