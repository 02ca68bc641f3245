"""marslib.study: the timbre study on a smoke run (untrained tokenizer and transformer, 30-step classifier).

The smoke models are weak, so nothing is assumed about which stage keeps more timbre;
the tests check the bookkeeping: every stage, accuracies that are fractions of the
right clips, per-family numbers that add up, the stages that should equal the
evaluation's clip sets, and the design-table loader's refusals.
"""

import dataclasses
import json
import shutil

import numpy as np
import pytest

from marslib.checkpoint import CheckpointError
from marslib.evaluate import ClipSet, generated_clips, tokenizer_clips
from marslib.evaluate import test_clips as held_out_clips  # (not a test: pytest would collect "test_*")
from marslib.metrics import classify_waveforms, load_classifier
from marslib.study import (biggest_drop, chain, continuation_clips, design_table, stage_table, timbre_stages,
                           tokenizer_stages)


@pytest.fixture(scope="module")
def study(smoke_run):
    cfg, run = smoke_run
    return cfg, run, timbre_stages(cfg, run, seed=0, continue_from=(1, len(cfg.tokenizer.scales) - 1))


def _weighted(row):
    n = row["per_family_n"]
    return sum(row["per_family"][f] * n[f] for f in n) / sum(n.values())


def test_every_stage_in_chain_order_with_fractions_that_add_up(study):
    cfg, run, result = study
    K = len(cfg.tokenizer.scales)
    stages = [r["stage"] for r in result["rows"]]
    assert stages == ["real", "griffin_lim", "continuous", *[f"scales_{k}" for k in range(1, K + 1)], "mars",
                      "mars_from_1", f"mars_from_{K - 1}"]
    assert len([s for s in stages if s.startswith("scales_")]) == K == len(result["scales"])
    test = held_out_clips(cfg)
    vocab = cfg.data.family_vocabulary
    assert result["families"] == [vocab[f] for f in sorted(set(test.family.tolist()))]
    assert result["n_test"] == len(test.waves)
    for row in result["rows"]:
        assert row["n"] == len(test.waves), row["stage"]          # one clip per test condition, MARS too
        assert 0 <= row["family_acc"] <= 1
        assert set(row["per_family"]) == set(row["per_family_n"]) == set(result["families"])
        assert all(0 <= a <= 1 for a in row["per_family"].values())
        assert sum(row["per_family_n"].values()) == row["n"]
        assert row["family_acc"] == pytest.approx(_weighted(row), abs=1e-12)
        assert np.isfinite(row["fd_crepe"]) and row["fd_crepe"] >= 0
    assert result["rows"][0]["fd_crepe"] == 0.0                      # the reference itself
    assert result["rows"][1]["fd_crepe"] > 0                         # Griffin-Lim changes the audio
    assert set(result["checkpoints"]) == {"classifier", "tokenizer", "ar"}
    labels = {r["stage"]: r["label"] for r in result["rows"]}
    assert labels["mars_from_1"] == "MARS, given the real scales 1..1"
    assert chain(result)[-1] == "mars"                                # continuations are not on the chain


def test_a_continuation_keeps_the_real_coarse_scales(smoke_run):
    """Given every scale but the last, MARS only draws the finest tokens: a note unlike its free
    generation, with the same sampling and checkpoints; an impossible k is refused."""
    cfg, run = smoke_run
    test = held_out_clips(cfg)
    K = len(cfg.tokenizer.scales)
    late = continuation_clips(cfg, run, test, 0, K - 1)
    free = generated_clips(dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, clips_per_condition=1)),
                           run, test, 0, "mars")
    assert late.name == f"mars_from_{K - 1}" and late.waves.shape == free.waves.shape
    assert not np.allclose(late.waves, free.waves, atol=1e-4)
    assert late.sampling == free.sampling and late.checkpoints == {k: free.checkpoints[k] for k in ("tokenizer", "ar")}
    with pytest.raises(ValueError, match=f"each k must be in 1..{K - 1}"):
        timbre_stages(cfg, run, crepe=False, continue_from=(K,))


def test_real_row_is_the_classifier_on_the_test_audio(study):
    """Computed here independently: argmax of the family head on the real test clips."""
    cfg, run, result = study
    test = held_out_clips(cfg)
    predicted = classify_waveforms(load_classifier(run / "classifier", cfg), test.waves, cfg)["family_probs"].argmax(1)
    assert len(set(predicted.tolist())) > 1, "the fixture's classifier should name more than one family"
    real = result["rows"][0]
    assert real["family_acc"] == pytest.approx(float((predicted == test.family).mean()))
    for f in set(test.family.tolist()):
        name = cfg.data.family_vocabulary[f]
        assert real["per_family"][name] == pytest.approx(float((predicted[test.family == f] == f).mean()))


def test_uneven_families_are_weighted_by_their_counts(smoke_run):
    """A test set with repeated clips: the overall accuracy is the count-weighted mean of the families'."""
    cfg, run = smoke_run
    test = held_out_clips(cfg)
    pick = np.array([0, 0, 0, 0, 1, 2, 2, 7, 8, 8, 8])
    uneven = ClipSet("real_test", test.waves[pick], test.pitch[pick], test.family[pick])
    result = timbre_stages(cfg, run, test=uneven, seed=1, crepe=False, generate=False)
    assert [r["stage"] for r in result["rows"]][-1] == f"scales_{len(cfg.tokenizer.scales)}"  # no MARS row
    vocab = cfg.data.family_vocabulary
    for row in result["rows"]:
        assert row["fd_crepe"] is None
        assert row["per_family_n"] == {vocab[0]: 4, vocab[1]: 1, vocab[2]: 2, vocab[7]: 1, vocab[8]: 3}
        assert row["family_acc"] == pytest.approx(_weighted(row), abs=1e-12)
    assert "| —" in stage_table(result)


def test_stages_equal_the_evaluations_clip_sets(smoke_run):
    """All K scales are the evaluation's tokenizer row, sample for sample (same seeds); the
    continuous latent (no quantiser) and fewer scales are other sounds."""
    cfg, run = smoke_run
    test = held_out_clips(cfg)
    sets, scales = tokenizer_stages(run, test, seed=3)
    assert [s.name for s in sets] == ["continuous", *[f"scales_{k}" for k in range(1, len(scales) + 1)]]
    assert scales == [list(s) for s in cfg.tokenizer.scales]
    np.testing.assert_array_equal(sets[-1].waves, tokenizer_clips(cfg, run, test, 3).waves)
    assert not np.allclose(sets[0].waves, sets[-1].waves, atol=1e-4)
    assert not np.allclose(sets[1].waves, sets[-1].waves, atol=1e-4)


def test_table_has_a_row_per_stage_and_a_column_per_family(study):
    cfg, run, result = study
    lines = stage_table(result).strip().splitlines()
    assert len(lines) == 2 + len(result["rows"])
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[:3] == ["stage", "family acc ↑", "FD CREPE ↓"] and header[3:] == result["families"]
    for line, row in zip(lines[2:], result["rows"]):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[0] == row["label"] and cells[1] == f"{row['family_acc']:.1%}"
        assert len(cells) == len(header)
    assert "scales 1..1, 1 token |" in stage_table(result)


def test_missing_checkpoints_are_named(smoke_run, tmp_path):
    cfg, run = smoke_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    shutil.rmtree(copy / "ar")
    result = timbre_stages(cfg, copy, crepe=False)
    assert "mars" not in [r["stage"] for r in result["rows"]] and "ar" not in result["checkpoints"]
    shutil.rmtree(copy / "classifier")
    with pytest.raises(CheckpointError, match="classifier"):
        timbre_stages(cfg, copy, crepe=False)


def _result(accs: dict[str, float], K: int = 3) -> dict:
    rows = [{"stage": s, "label": s.upper(), "family_acc": a} for s, a in accs.items()]
    return {"rows": rows, "scales": [[1, 1]] * K}


def test_biggest_drop_follows_the_chain():
    accs = {"real": 0.98, "griffin_lim": 0.94, "continuous": 0.80, "scales_1": 0.05, "scales_2": 0.30,
            "scales_3": 0.42, "mars": 0.20}
    r = _result(accs)
    assert chain(r) == ["real", "griffin_lim", "continuous", "scales_3", "mars"]  # no note is made from 1 scale
    line = biggest_drop(r)
    assert "CONTINUOUS → SCALES_3" in line and "80.0% → 42.0%" in line and "38.0 points" in line
    assert "MARS" in biggest_drop(_result({**accs, "mars": 0.01}))
    assert "REAL → GRIFFIN_LIM" in biggest_drop(r, ["real", "griffin_lim"])
    flat = _result({"real": 0.5, "griffin_lim": 0.5, "continuous": 0.6, "scales_3": 0.6})
    assert biggest_drop(flat).startswith("no step loses family accuracy")


DESIGN = {"rows": [
    {"variant": "baseline", "change": "—", "family_acc": 0.42, "lsd_db": 9.87, "train_minutes": 12.0,
     "note": "course tokenizer"},
    {"variant": "wide-freq", "change": "downsample 2 in frequency | 4 in time", "family_acc": 0.7, "lsd_db": 8,
     "train_minutes": 30.5, "note": ""},
]}


def test_design_table_renders_a_file(tmp_path):
    path = tmp_path / "design.json"
    path.write_text(json.dumps(DESIGN))
    lines = design_table(path).strip().splitlines()
    assert len(lines) == 2 + 2
    assert lines[2] == "| baseline | — | 42.0% | 9.87 | 12.0 | course tokenizer |"
    assert "70.0% | 8.00 | 30.5" in lines[3] and "frequency \\| 4 in time" in lines[3]  # a | stays in its cell


@pytest.mark.parametrize("bad, message", [
    ("not json", "not valid JSON"),
    (json.dumps([1, 2]), "expected"),
    (json.dumps({"rows": []}), "at least one row"),
    (json.dumps({"rows": [{k: v for k, v in DESIGN["rows"][0].items() if k != "lsd_db"}]}), "row 0 lacks lsd_db"),
    (json.dumps({"rows": [DESIGN["rows"][0], {**DESIGN["rows"][0], "family_acc": "0.4"}]}),
     "row 1 field 'family_acc' should be a finite number"),
    (json.dumps({"rows": [{**DESIGN["rows"][0], "family_acc": 42.0}]}), "fraction in \\[0, 1\\]"),
    (json.dumps({"rows": [{**DESIGN["rows"][0], "note": None}]}), "'note' should be a string"),
    (json.dumps({"rows": ["baseline"]}), "row 0 is not an object"),
])
def test_design_table_refuses_a_malformed_file(tmp_path, bad, message):
    path = tmp_path / "design.json"
    path.write_text(bad)
    with pytest.raises(ValueError, match=message):
        design_table(path)


def test_family_grid_figure(smoke_cfg):
    from marslib.plotting import plot_family_grid, plot_timbre_stages

    F, T = smoke_cfg.spec_shape
    spec = np.zeros((F, T), dtype=np.float32)
    fig = plot_family_grid([spec, None], [spec, spec], ["keyboard", "brass"], smoke_cfg.audio,
                           real_titles=["real (test): MIDI 60", "none"])
    assert len(fig.axes) == 2 * 2 + 1                                  # four panels and a colour bar
    assert fig.axes[0].get_title() == "real (test): MIDI 60" and fig.axes[1].get_title() == "generated"
    assert "no real note" in fig.axes[2].texts[0].get_text()
    with pytest.raises(ValueError, match="one real and one generated spectrogram per family"):
        plot_family_grid([spec], [spec, spec], ["keyboard", "brass"], smoke_cfg.audio)
    result = {"rows": [{"stage": s, "label": s, "family_acc": 0.5} for s in
                       ("real", "griffin_lim", "continuous", "scales_1", "scales_2")],
              "scales": [[1, 1], [2, 2]], "families": ["a", "b"], "n_test": 4}
    assert plot_timbre_stages(result).axes[0].get_ylabel() == "classifier family accuracy"
