"""Every notebook runs end to end under papermill (smoke profile) and writes what it promises.

Notebooks share one run folder, in teaching order, as ``mars reproduce`` runs
them: notebook 03 reuses the tokenizer notebook 02 trained.  Each one also runs
on its own (it trains what is missing), which ``mars reproduce --notebooks 03``
exercises.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from marslib import lab
from marslib.checkpoint import has_checkpoint
from marslib.config import get_config
from marslib.lab.edition import check_outcomes
from marslib.notebooks import execute_notebook, notebook_sources, pair_in_sync
from marslib.provenance import provenance_problems
from marslib.runtime import NOTEBOOK_MODELS
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


def check_02(r: dict, out: Path) -> None:
    smoke = get_config("smoke")
    K = len(r["scales"])
    assert r["scales"] == [list(s) for s in smoke.tokenizer.scales] and r["latent_shape"] == r["scales"][-1]
    assert r["tokens_per_scale"] == [h * w for h, w in r["scales"]]
    assert r["tokens_per_clip"] == sum(r["tokens_per_scale"]) == 91
    assert r["bits_per_token"] == math.log2(r["codebook_size"])
    assert math.isclose(r["bitrate_bps"], r["tokens_per_clip"] * r["bits_per_token"] / r["clip_seconds"])
    assert 0 < r["bitrate_bps"] < r["pcm_bitrate_bps"] == 16 * smoke.audio.sample_rate
    assert r["train_steps"] == smoke.train_tokenizer.steps
    for terms in (r["final_train"], r["final_valid"]):
        assert {"loss", "l1", "l2", "spectral", "vq"} <= set(terms)
        assert all(math.isfinite(v) and v >= 0 for v in terms.values()), terms
    u = r["codebook_usage"]
    assert len(u["per_scale"]) == len(u["max_possible_per_scale"]) == len(u["perplexity_per_scale"]) == K
    for used, cap in zip(u["per_scale"], u["max_possible_per_scale"]):
        assert 0 < used <= cap + 1e-9 <= 1 + 1e-9, (used, cap)  # scale k has n_valid*h*w tokens at most
    assert max(u["per_scale"]) <= u["union"] <= 1
    assert all(1 <= p <= r["codebook_size"] + 1e-6 for p in u["perplexity_per_scale"])
    rec = r["reconstruction"]
    assert math.isfinite(rec["cmx"]["lsd"]) and rec["cmx"]["lsd"] > 0 and math.isfinite(rec["cmx"]["sc"])
    assert rec["cmx_representation_alone"] == {"lsd": 0.0, "sc": 0.0}  # CMX is lossless
    assert rec["truncation_ceiling"]["lsd"] > 0 and 0 < rec["truncation_ceiling"]["sc"] <= 1.01
    for key in ("lsd_per_scales", "sc_per_scales", "scrubber_lsd_per_scales", "toy_relative_error_per_scales"):
        assert len(r[key]) == K and all(math.isfinite(v) and v >= 0 for v in r[key]), key
    assert math.isclose(r["lsd_per_scales"][-1], rec["cmx"]["lsd"], rel_tol=1e-4, abs_tol=1e-4)
    assert {"scale_pyramid.png", "training_curves.png", "codebook_usage.png", "progressive_reconstruction.png",
            "quality_vs_scales.png", "scale_scrubber.png", "timbre_stages.png"} <= set(r["figures"])
    t = r["timbre_stages"]                                  # the classifier's family accuracy per stage
    assert list(t["family_acc"]) == ["real", "griffin_lim", "continuous", *[f"scales_{k}" for k in range(1, K + 1)]]
    assert all(0 <= a <= 1 for a in t["family_acc"].values()) and t["families"] and t["n_test"] > 0
    assert all(set(fam) == set(t["families"]) for fam in t["per_family"].values())
    assert has_checkpoint(out.parent / "tokenizer")  # notebook 03 reuses this checkpoint
    assert has_checkpoint(out.parent / "classifier")  # and notebook 04 the classifier


def check_03(r: dict, out: Path) -> None:
    smoke = get_config("smoke")
    scales = [tuple(s) for s in r["scales"]]
    h, w = r["latent_shape"]
    assert scales == [tuple(s) for s in smoke.tokenizer.scales] and scales[-1] == (h, w)
    assert r["tokens_per_clip"] == sum(a * b for a, b in scales)
    assert r["n_passes_next_scale"] == len(scales)                # one forward pass per scale
    assert r["n_passes_raster"] == h * w                          # one forward pass per token
    paper = r["speed"][1]
    assert (paper["K"], paper["L"], paper["n_passes_next_scale"], paper["n_passes_raster"]) == (10, 680, 10, 256)
    ar = r["ar"]
    assert ar["train_steps"] == smoke.train_ar.steps
    assert len(ar["ce_per_scale_valid"]) == len(scales)
    for split in ("final_train", "final_valid", "untrained_valid"):
        assert 0 <= ar[split]["accuracy"] <= 1 and math.isfinite(ar[split]["loss"]) and ar[split]["loss"] > 0
    assert r["teacher_forcing"]["input_shape"][1] == r["tokens_per_clip"] - 1
    assert r["teacher_forcing"]["logits_shape"] == [1, r["tokens_per_clip"], r["codebook_size"]]
    stages = r["generation"]["stage_l1_to_final"]
    assert len(stages) == len(scales) and stages[-1] == 0.0        # all K scales = the final note
    pa = r["pitch_accuracy"]
    assert pa["n"] == 8 == len(pa["cents"]) == len(pa["conditions"])
    for key in ("accuracy", "octave_errors", "unvoiced"):
        assert 0 <= pa[key] <= 1 and 0 <= r["pitch_accuracy_data"][key] <= 1
    assert pa["accuracy"] + pa["octave_errors"] + pa["unvoiced"] <= 1 + 1e-9
    assert r["pitch_accuracy_data"]["accuracy"] >= 0.5           # real notes through Griffin-Lim: pYIN works
    cfgs = r["cfg_sweep"]
    assert cfgs[0]["cfg_scale"] == 0 and cfgs[0]["tokens_changed_vs_cfg0"] == 0
    assert all(0 <= c["tokens_changed_vs_cfg0"] <= 1 for c in cfgs)
    t = r["timing"]                                              # machine-dependent: sanity only
    assert t["sampling_seconds_per_clip"]["next_scale"] > 0 and t["sampling_seconds_per_clip"]["raster"] > 0
    assert t["paper_grid"]["speedup"] > 1                         # 10 vs 256 passes: robust
    assert t["generation_rtf"] > 0
    lt = t["latency_vs_throughput"]                               # paper grid, batch 1 vs 16 (§9.1)
    assert lt["batch_sizes"] == [1, 16]
    assert lt["tokens_per_clip"] == {"next_scale": 680, "raster": 256}     # the pyramid vs the finest grid
    assert lt["passes_per_clip"] == {"next_scale": 10, "raster": 256}
    for method in ("next_scale", "raster"):
        assert len(lt["seconds_per_clip"][method]) == 2 and all(s > 0 for s in lt["seconds_per_clip"][method])
    assert all(math.isclose(x, lt["seconds_per_clip"]["raster"][i] / lt["seconds_per_clip"]["next_scale"][i])
               for i, x in enumerate(lt["raster_over_next_scale"]))
    assert {"attention_masks.png", "teacher_forcing.png", "training_curves.png", "generation_by_scale.png",
            "pitch_sweep.png", "pitch_accuracy.png", "cfg_sweep.png", "speed.png",
            "family_grid.png", "latency_throughput.png"} <= set(r["figures"])
    grid = r["family_grid"]                                       # one row per family in the data, one pitch
    assert len(grid["families"]) == len(grid["real"]) == len(set(grid["families"])) > 1
    assert smoke.data.pitch_min <= grid["pitch"] <= smoke.data.pitch_max
    assert all(row["split"] in ("test", "train") for row in grid["real"])
    assert has_checkpoint(out.parent / "ar")


def check_04(r: dict, out: Path) -> None:
    smoke = get_config("smoke")
    c = r["classifier"]
    assert c["n"] == r["n_test"] > 0
    assert all(0 <= c[k] <= 1 for k in ("pitch_acc", "pitch_within_1", "family_acc"))
    assert c["pitch_within_1"] >= c["pitch_acc"]
    assert 0 < c["chance_pitch"] <= 1 and c["chance_family"] == 1 / 11 and set(c["untrained"]) == {
        "pitch_acc", "family_acc", "valid_ce_pitch"}                             # (learning_04)
    ex = r["examples"]                                           # the worked examples match their closed forms
    for row in ex["fd"]:
        assert abs(row["sample"] - row["closed_form"]) < 0.1 + 0.05 * row["closed_form"], row
        assert math.isclose(row["closed_form"], row["shift"] ** 2 + ex["fd"][0]["closed_form"], rel_tol=1e-6)
    assert ex["fd_bias"]["fd"][0] > 10 * ex["fd_bias"]["fd"][-1] > 0      # FD's few-sample bias
    assert all(abs(k) < 0.2 for k in ex["fd_bias"]["kid"])
    kid = ex["kid"]
    assert abs(kid["same"]["mean"]) < 0.02 and kid["shifted"]["mean"] > 5 * abs(kid["same"]["mean"])
    inc = ex["inception_score"]
    assert all(math.isclose(inc[k], v, rel_tol=1e-6) for k, v in inc["closed_form"].items())
    assert np.allclose(inc["mixture"], inc["mixture_closed_form"], rtol=1e-6)
    assert 0 <= ex["ndb"]["good"] < ex["ndb"]["dropped"] <= 1
    assert ex["nearest_neighbour"]["copy"] < 1e-9 < ex["nearest_neighbour"]["new"]
    assert r["crepe"]["capacity"] == smoke.eval.crepe_capacity and r["crepe"]["embed_dim"] == 256
    assert r["systems"] == ["real_train", "griffin_lim", "tokenizer", "mars", "raster"] == list(r["rows"])
    for name, m in r["rows"].items():                            # true even for models trained for seconds
        assert all(v is not None and math.isfinite(v) for v in m.values()), name
        assert min(m[k] for k in ("fd_crepe", "fd_classifier", "mse", "mae", "spectral_convergence", "lsd_db",
                                  "mrstft")) >= -1e-6, name
        assert 1 - 1e-6 <= m["pis"] <= 128 and 1 - 1e-6 <= m["iis"] <= 11, name
        assert all(0 <= m[k] <= 1 for k in ("ndb_k", "pitch_acc_pyin", "pitch_acc_crepe", "classifier_pitch_acc",
                                            "classifier_family_acc")), name
        assert 0 <= m["nn_cosine_median"] <= 2
        assert r["n_per_row"][name] == r["n_test"] * smoke.eval.clips_per_condition
    floor, phase = r["rows"]["real_train"], r["rows"]["griffin_lim"]
    assert phase["mse"] < floor["mse"] and phase["lsd_db"] < floor["lsd_db"]   # the same clip beats another note
    assert floor["pitch_acc_crepe"] >= 0.5                        # real notes: CREPE names their pitch
    assert math.isclose(r["nearest_train"]["real_test_median"], floor["nn_cosine_median"], abs_tol=1e-4)
    assert set(r["head_to_head"].values()) <= {"MARS", "raster", "tie"}
    for name, intervals in r["intervals"].items():                # 95 % intervals of the headline metrics
        assert set(intervals) == {"classifier_family_acc", "pitch_acc_crepe", "fd_crepe"}, name
        assert all(lo <= r["rows"][name][k] <= hi for k, (lo, hi) in intervals.items()), name
    assert set(r["real_vs_raster"]) == set(r["intervals"]["mars"])
    fam = r["per_family"]                                           # timbre per family
    assert fam and sum(f["test_clips"] for f in fam.values()) == r["n_test"]
    assert all(0 <= f[k] <= 1 for f in fam.values() for k in ("real_test", "griffin_lim", "tokenizer", "mars"))
    for system in ("griffin_lim", "tokenizer", "mars"):
        assert math.isclose(sum(f["test_clips"] * f[system] for f in fam.values()) / r["n_test"],
                            r["rows"][system]["classifier_family_acc"]), system
    conf = r["mars_confusion"]
    assert set(fam) <= set(conf["labels"]) and np.sum(conf["matrix"]) == r["n_per_row"]["mars"]
    assert {"fd_example.png", "kid_example.png", "fd_bias.png", "inception_score_example.png", "ndb_example.png",
            "nearest_neighbour_example.png", "classifier.png", "family_confusion.png", "crepe.png",
            "evaluation_bars.png", "mars_family_confusion.png", "nearest_train_distances.png",
            "nearest_neighbours.png"} <= set(r["figures"])
    assert all((out / f).exists() for f in r["figures"])
    metrics = json.loads((out.parent / "evaluation" / "metrics.json").read_text())
    assert set(r["systems"]) <= set(metrics["rows"])
    assert has_checkpoint(out.parent / "classifier") and has_checkpoint(out.parent / "raster")


def check_05(r: dict, out: Path) -> None:
    smoke = get_config("smoke")
    r2 = smoke.cmx.factor ** 2
    b = r["budgets"]
    assert b["cmx"] == {"tokenizer_steps": smoke.train_tokenizer.steps, "ar_steps": smoke.train_ar.steps}
    assert b["truncation"]["tokenizer_steps"] == max(1, round(smoke.train_tokenizer.steps * b["baseline_budget"]))
    assert b["truncation"]["ar_steps"] == max(1, round(smoke.train_ar.steps * b["baseline_budget"]))
    assert r["tokens_per_clip"]["cmx"] == r["tokens_per_clip"]["truncation"]
    assert r["input_shapes"]["cmx"] == [r2, *r["input_shapes"]["truncation"][1:]]
    assert r["input_shapes"]["truncation"][0] == 1
    costs = {c["representation"]: c for c in r["step_costs"]}
    assert set(costs) == {"full", "cmx", "truncate"} and len(r["step_costs"]) == 3
    assert {c["tokens"] for c in costs.values()} == {r["tokens_per_clip"]["cmx"]}   # same token budget
    assert all(c["activation_mb"] > 0 and c["step_ms"] > 0 for c in costs.values())
    assert costs["full"]["activation_mb"] > costs["cmx"]["activation_mb"]             # what CMX saves
    assert costs["cmx"]["activation_mb"] < 1.5 * costs["truncate"]["activation_mb"]   # ~ truncation's cost
    for loss in r["truncation_loss"].values():
        assert loss["values_kept"] == 1 / r2 and 0 < loss["energy_lost"] < 1
    c = r["ceilings"]
    assert c["cmx_representation"]["lsd"] < 1e-6 and c["cmx_representation"]["sc"] < 1e-6   # lossless
    perfect_trunc = c["truncation_representation"]
    assert perfect_trunc["lsd"] > 0 and 0 < perfect_trunc["sc"] <= 1.01 and perfect_trunc["fd_crepe"] > 0
    for name in ("cmx_tokenizer", "truncation_tokenizer"):
        assert math.isfinite(c[name]["lsd"]) and c[name]["lsd"] > 0 and math.isfinite(c[name]["sc"])
    assert set(r["rows"]) == {"tokenizer", "mars", "truncation_tokenizer", "truncation"}
    for row in r["rows"].values():
        for key in ("fd_crepe", "kid_crepe", "fd_classifier", "pkid", "ikid", "mse", "mae", "lsd_db"):
            assert row[key] is not None and math.isfinite(row[key]), key
        assert 0 <= row["pitch_acc_pyin"] <= 1 and 0 <= row["pitch_acc_crepe"] <= 1
    assert math.isclose(r["delta_fd"], r["rows"]["mars"]["fd_crepe"] - r["rows"]["truncation"]["fd_crepe"])
    assert r["paper_delta_fd"] == 0.19
    assert r["same_direction_as_paper"] == (r["delta_fd"] > 0)
    assert isinstance(r["conclusion"], str) and len(r["conclusion"]) > 200 and "truncation" in r["conclusion"]
    assert {"representations.png", "step_costs.png", "training_curves.png", "ceilings.png", "comparison.png",
            "listen.png"} <= set(r["figures"])
    assert all((out / f).exists() for f in r["figures"])
    metrics = json.loads((out.parent / "evaluation" / "metrics.json").read_text())
    assert {"mars", "truncation"} <= set(metrics["rows"])                       # merged, not overwritten
    assert set(r["learning"]) == {"cmx", "truncation"}                           # both arms (learning_05)
    assert has_checkpoint(out.parent / "truncate" / "ar")


def check_06(r: dict, out: Path) -> None:
    from marslib.baselines import BASELINES
    from marslib.evaluate import BASELINE_ROWS

    smoke = get_config("smoke")
    assert set(r["budgets"]) == set(BASELINES) == set(r["learning"])
    for name, b in r["budgets"].items():
        assert b["steps"] == getattr(smoke, name).train.steps and 0 < b["parameters"] < b["paper_parameters"]
    assert set(BASELINE_ROWS) | {"mars", "tokenizer"} <= set(r["rows"])
    for name, row in r["rows"].items():
        assert all(v is not None and math.isfinite(v) for v in row.values()), (name, row)
    assert {c["system"] for c in r["claims"]} == {"DDSP", "DiffWave", "NSynth WaveNet AE"}
    assert all(c["directions"].startswith("MARS ") and "/8" in c["directions"] for c in r["claims"])
    assert {"ddsp_controls.png", "diffwave_schedule.png", "wavenet_embedding.png", "training_curves.png",
            "systems_spectrograms.png"} <= set(r["figures"])
    metrics = json.loads((out.parent / "evaluation" / "metrics.json").read_text())
    assert set(BASELINE_ROWS) | {"mars"} <= set(metrics["rows"])   # merged beside notebook 04's rows
    for name in BASELINES:
        assert has_checkpoint(out.parent / name)


# --- did training learn? ------------------------------------------------------------
# Each notebook also scores the weights its training started from ("untrained": same
# seed, no step taken; marslib.runtime.initial_model).  Each criterion below must hold
# for the trained numbers and fail for the untrained ones: the test swaps them in and
# checks that every criterion then fails.  Margins from the smoke profile, seed 0, CPU
# (measured value, then the untrained one):

def learning_02(r: dict) -> dict[str, bool]:
    u = r["untrained"]
    return {  # valid loss 1.36 vs 2.28; LSD 15.0 vs 27.0 dB; SC 0.77 vs 1.84
        "valid loss <= 0.75 x untrained": r["final_valid"]["loss"] <= 0.75 * u["final_valid"]["loss"],
        "LSD >= 5 dB below untrained": r["reconstruction"]["cmx"]["lsd"] <= u["reconstruction"]["lsd"] - 5,
        "SC <= 0.7 x untrained": r["reconstruction"]["cmx"]["sc"] <= 0.7 * u["reconstruction"]["sc"],
    }


def untrained_02(r: dict) -> dict:
    return {**r, "final_valid": r["untrained"]["final_valid"],
            "reconstruction": {**r["reconstruction"], "cmx": r["untrained"]["reconstruction"]}}


def learning_03(r: dict) -> dict[str, bool]:
    valid, untrained, V = r["ar"]["final_valid"], r["ar"]["untrained_valid"], r["codebook_size"]
    return {  # valid cross-entropy 3.76 vs 4.20 nats (uniform ln 64 = 4.16); accuracy 0.109 vs 0.007
        "valid CE >= 0.2 nats below uniform ln V": valid["loss"] <= math.log(V) - 0.2,
        "valid CE >= 0.2 nats below untrained": valid["loss"] <= untrained["loss"] - 0.2,
        "valid accuracy >= 4 / V": valid["accuracy"] >= 4 / V,
    }


def untrained_03(r: dict) -> dict:
    return {**r, "ar": {**r["ar"], "final_valid": r["ar"]["untrained_valid"]}}


def learning_04(r: dict) -> dict[str, bool]:
    c = r["classifier"]
    return {  # test pitch accuracy 6/11 = 0.55 vs 0 (chance 1/5); valid pitch CE 4.31 vs 4.83 nats
        "test pitch accuracy >= 2 x chance": c["pitch_acc"] >= 2 * c["chance_pitch"],
        "valid pitch CE >= 0.25 nats below untrained": c["valid_ce_pitch"] <= c["untrained"]["valid_ce_pitch"] - 0.25,
    }   # the family head does not beat chance after 30 smoke steps (test 1/11): not checked


def untrained_04(r: dict) -> dict:
    return {**r, "classifier": {**r["classifier"], **r["classifier"]["untrained"]}}


def learning_05(r: dict) -> dict[str, bool]:
    uniform = math.log(get_config("smoke").tokenizer.codebook_size)
    met = {}
    for arm, m in r["learning"].items():  # tokenizer 1.36 vs 2.28 (cmx), 1.34 vs 1.69 (truncation);
        met |= {                          # transformer 3.76 vs 4.20 (cmx), 3.92 vs 4.35 (truncation)
            f"{arm}: tokenizer valid loss <= 0.9 x untrained":
                m["tokenizer_valid_loss"] <= 0.9 * m["tokenizer_valid_loss_untrained"],
            f"{arm}: transformer valid CE >= 0.2 nats below untrained":
                m["ar_valid_ce"] <= m["ar_valid_ce_untrained"] - 0.2,
            f"{arm}: transformer valid CE >= 0.1 nats below uniform ln V": m["ar_valid_ce"] <= uniform - 0.1,
        }
    return met


def untrained_05(r: dict) -> dict:
    return {**r, "learning": {arm: {**m, "tokenizer_valid_loss": m["tokenizer_valid_loss_untrained"],
                                    "ar_valid_ce": m["ar_valid_ce_untrained"]}
                              for arm, m in r["learning"].items()}}


def learning_06(r: dict) -> dict[str, bool]:
    return {  # valid loss, trained vs untrained: DDSP 11.0 vs 12.9; DiffWave 0.71 vs 0.95; WaveNet AE 5.17 vs 5.58 nats
        f"{name}: valid loss <= 0.97 x untrained": m["valid_loss"] <= 0.97 * m["valid_loss_untrained"]
        for name, m in r["learning"].items()}


def untrained_06(r: dict) -> dict:
    return {**r, "learning": {name: {**m, "valid_loss": m["valid_loss_untrained"]}
                              for name, m in r["learning"].items()}}


LEARNING = {"02_tokenizer": (learning_02, untrained_02), "03_next_scale_autoregression": (learning_03, untrained_03),
            "04_evaluation": (learning_04, untrained_04), "05_ablation_cmx_vs_truncation": (learning_05, untrained_05),
            "06_baselines": (learning_06, untrained_06)}


def check_learning(stem: str, results: dict) -> None:
    """Every learning criterion holds for the trained numbers and fails for the untrained ones."""
    criteria, as_untrained = LEARNING[stem]
    met = criteria(results)
    assert met and all(met.values()), f"{stem}: training did not learn enough: {met}"
    untrained = criteria(as_untrained(results))
    assert set(untrained) == set(met) and not any(untrained.values()), \
        f"{stem}: the untrained model passes {[k for k, v in untrained.items() if v]}: the check cannot fail"


CHECKS = {"01_stft_and_cmx": check_01, "02_tokenizer": check_02, "03_next_scale_autoregression": check_03,
          "04_evaluation": check_04, "05_ablation_cmx_vs_truncation": check_05, "06_baselines": check_06}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("smoke_run")


def test_every_notebook_has_checks_and_a_synced_pair():
    assert [s.stem for s in SOURCES][:1] == ["01_stft_and_cmx"]
    for source in SOURCES:
        assert source.stem in CHECKS, f"add a results check for {source.name}"
        assert pair_in_sync(source), f"{source.name} and its .ipynb differ: run marslib.notebooks.sync_pair"


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.stem)
def test_profile_comes_from_the_environment_and_is_explained_above(source, monkeypatch):
    import jupytext

    cells = jupytext.read(source).cells
    at = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
    assert cells[at - 1].cell_type == "markdown" and cells[at - 1].source.startswith("**Profile.**")
    assert all(word in cells[at - 1].source for word in ("smoke", "course", "paper", "MARS_PROFILE", "runs/<profile>/"))
    for env, expected in ((None, "smoke"), ("course", "course")):  # opened by hand: the environment decides
        if env is None:
            monkeypatch.delenv("MARS_PROFILE", raising=False)
        else:
            monkeypatch.setenv("MARS_PROFILE", env)
        params: dict = {}
        exec(cells[at].source, params)  # the cell imports what it needs (papermill injects after it)
        assert params["profile"] == expected


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.stem)
def test_notebook_runs_in_smoke_profile(source, run_dir, repo_untouched):
    results = execute_notebook(source, "smoke", run_dir, data_dir=run_dir.parent / "data", seed=0, exercises=True)
    out = run_dir / source.stem
    assert results["profile"] == "smoke" and results["seed"] == 0
    assert results["figures"], "a notebook teaches with figures"
    for name in results["figures"]:
        assert (out / name).stat().st_size > 5_000, f"{name} is missing or empty"
    executed = json.loads((run_dir / "notebooks" / f"{source.stem}.ipynb").read_text())
    assert any(c.get("outputs") for c in executed["cells"] if c["cell_type"] == "code")
    CHECKS[source.stem](results, out)
    exercises = sorted(i for i, ex in lab.exercises().items() if ex.notebook == source.stem[:2])
    outcomes = check_outcomes(run_dir / "notebooks" / f"{source.stem}.ipynb")
    assert sorted(outcomes) == exercises and all(outcomes.values()), f"failed lab checks: {outcomes}"
    if source.stem in LEARNING:
        check_learning(source.stem, results)
    assert provenance_problems(results["run"]["provenance"]) == []
    assert results["run"]["provenance"]["command"]["notebook"] == f"{source.stem}.ipynb"
    missing = [m for m in NOTEBOOK_MODELS[source.stem] if not has_checkpoint(run_dir / m)]
    assert not missing, f"setup_run's banner lists models {source.stem} never made: {missing} (runtime.NOTEBOOK_MODELS)"


def test_every_result_file_of_the_run_records_provenance(run_dir):
    """After the notebooks above (a ``mars reproduce`` run): results, checkpoints, evaluation."""
    files = [*run_dir.glob("*/results.json"), *run_dir.glob("**/ckpt-*/meta.json"),
             run_dir / "evaluation" / "metrics.json"]
    if len(files) < 3:
        pytest.skip("run the notebook tests first (they fill the run folder)")
    for path in files:
        r = json.loads(path.read_text())
        prov = r["run"]["provenance"] if path.name == "results.json" else r["provenance"]
        assert provenance_problems(prov) == [], path
        for name, row in r.get("rows", {}).items() if path.name == "metrics.json" else ():
            assert provenance_problems(row["provenance"]) == [], (path, name)


def test_same_seed_same_numbers(tmp_path, repo_untouched):
    """Notebook 01 twice with one seed: identical results.json."""
    first, second = (execute_notebook(SOURCES[0], "smoke", tmp_path / d, data_dir=tmp_path / "data")
                     for d in ("a", "b"))
    for r in (first, second):  # where it ran (out_dir) is provenance, not a number
        r["run"]["provenance"]["command"]["parameters"].pop("out_dir")
    assert first == second


def test_explorer_reports_bad_settings_instead_of_raising():
    t = np.arange(8192) / 16000
    explorer = stft_cmx_explorer((0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    good = explorer.update(n_fft=256, hop=64, r=2)
    assert not good.message and good.spec_shape == (128, 128) and good.cmx_shape == (4, 64, 64)
    assert "hop" in explorer.update(n_fft=256, hop=512).message
    assert explorer.update(n_fft=256, hop=64, r=3).message


def test_cfg_explorer_regenerates_headlessly():
    import torch

    from marslib.autoregressor import NextScaleTransformer
    from marslib.tokenizer import Tokenizer
    from marslib.widgets import cfg_explorer

    cfg = get_config("smoke")
    torch.manual_seed(0)
    tokenizer, model = Tokenizer(cfg).eval(), NextScaleTransformer(cfg.ar, cfg.tokenizer).eval()
    explorer = cfg_explorer(model, tokenizer, pitches=[48, 60, 72], families=["keyboard", "brass"],
                            cfg_scale=2.0, pitch=60, family="keyboard", estimate_pitch=False)
    view = explorer.update(cfg_scale=0.0, pitch=72, family="brass")
    assert (view.cfg_scale, view.pitch, view.family) == (0.0, 72, "brass")
    assert (explorer.scale.value, explorer.pitch.value, explorer.family.value) == (0.0, 72, "brass")
    assert view.spectrogram.shape == cfg.spec_shape and view.waveform.shape == (cfg.audio.clip_samples,)
    assert [tuple(i.shape[1:]) for i in view.indices] == list(cfg.tokenizer.scales)
    assert explorer.image.value and "<audio" in explorer.player.value
    again = explorer.update(cfg_scale=0.0, pitch=72, family="brass")   # fixed seed: same note
    assert np.array_equal(view.waveform, again.waveform)
