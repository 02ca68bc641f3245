"""What a notebook run tells its user: ``mars reproduce``'s progress lines, ``setup_run``'s banner,
the line training prints before it starts, and the measured times they quote."""

import io

import nbformat
import pytest

from marslib.ablation import baseline_config, truncation_config
from marslib.checkpoint import save_checkpoint
from marslib.config import get_config
from marslib.notebooks import NotebookProgress, notebook_sources
from marslib.profiles import MEASURED_TRAIN_MINUTES, PROFILES, expected_train_minutes
from marslib.runtime import NOTEBOOK_MODELS, model_steps, run_banner
from marslib.tokenizer import Tokenizer
from marslib.train import training_notice


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run_cells(bar: NotebookProgress, fail: bool = False) -> None:
    cells = [nbformat.v4.new_markdown_cell("## 1. First"), nbformat.v4.new_code_cell("x = 1"),
             nbformat.v4.new_markdown_cell("## 2. Second"), nbformat.v4.new_code_cell("y = 2")]
    for i, cell in enumerate(cells):
        bar.on_cell_start(cell=cell, cell_index=i)
        if cell.cell_type == "code":
            bar.on_cell_executed(cell=cell, cell_index=i, execute_reply={})


def test_progress_rewrites_one_line_on_a_terminal():
    stream = Terminal()
    bar = NotebookProgress("02_tokenizer", 2, stream=stream)
    _run_cells(bar)
    summary = bar.close(ok=True)
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")  # one line, redrawn in place
    redraws = text[:-1].split("\r")[1:]
    assert redraws[-1].rstrip() == summary and len(redraws[-1]) == len(redraws[-2])  # padded over the last
    assert "\r02_tokenizer  [1/2 cells]  0:00 elapsed  · 1. First" in text
    assert "\r02_tokenizer  [2/2 cells]  0:00 elapsed  · 2. Second" in text
    assert summary == "02_tokenizer  done: 2 cells in 0:00"


def test_progress_prints_a_line_per_section_in_a_log():
    stream = io.StringIO()  # not a terminal: a CI log
    bar = NotebookProgress("04_evaluation", 3, stream=stream)
    _run_cells(bar)
    assert bar.close(ok=False) == "04_evaluation  failed in cell 2 of 3 after 0:00"
    assert stream.getvalue().splitlines() == [
        "04_evaluation  [0/3 cells]  0:00 elapsed  · 1. First",
        "04_evaluation  [1/3 cells]  0:00 elapsed  · 2. Second",
        "04_evaluation  failed in cell 2 of 3 after 0:00"]


def test_every_model_a_course_notebook_trains_has_a_measured_time():
    assert set(NOTEBOOK_MODELS) == {s.stem for s in notebook_sources()}  # (tests/test_notebooks.py: and no more)
    cfg = get_config("course")
    for models in NOTEBOOK_MODELS.values():
        for model in models:
            kind, steps = model_steps(cfg, model)
            minutes = expected_train_minutes("course", model.rsplit("/", 1)[-1], kind, steps)
            assert minutes is not None and minutes > 0, model
    # the table's own rows are for the course schedules: their full runs give their measured minutes
    for model, (steps, minutes) in MEASURED_TRAIN_MINUTES["course"].items():
        assert model_steps(cfg, model)[1] == steps, model
    assert expected_train_minutes("course", "tokenizer", "tokenizer", 750) == pytest.approx(5.35)
    assert expected_train_minutes("course", "elsewhere", "tokenizer", 1500) == pytest.approx(10.7)  # by kind
    assert expected_train_minutes("paper", "tokenizer", "tokenizer", 100) is None


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_banner_steps_are_the_ones_each_model_trains_with(profile):
    cfg = get_config(profile)
    baseline, truncation = baseline_config(cfg), truncation_config(cfg)
    expected = {"tokenizer": cfg.train_tokenizer.steps, "ar": cfg.train_ar.steps,
                "classifier": cfg.train_classifier.steps,
                "raster_tokenizer": baseline.train_tokenizer.steps, "raster": baseline.train_ar.steps,
                "truncate/tokenizer": truncation.train_tokenizer.steps, "truncate/ar": truncation.train_ar.steps,
                **{name: getattr(cfg, name).train.steps for name in ("ddsp", "diffwave", "wavenet_ae")}}
    assert {model for models in NOTEBOOK_MODELS.values() for model in models} == set(expected)
    assert {model: model_steps(cfg, model)[1] for model in expected} == expected


def test_training_says_what_it_will_do_before_it_starts(tmp_path):
    cfg = get_config("course")
    tcfg = cfg.train_tokenizer
    run = tmp_path / "tokenizer"
    assert training_notice(run, "tokenizer", cfg, tcfg, 0) == \
        f"Training tokenizer for 1500 steps (profile course: ≈ 11 min on 2 CPU cores) → {run}"
    assert training_notice(run, "tokenizer", cfg, tcfg, 750) == \
        f"Resuming tokenizer at step 750 of 1500 (profile course: ≈ 5 min on 2 CPU cores) → {run}"
    assert training_notice(run, "tokenizer", cfg, tcfg, 1500) == f"Loading tokenizer from {run} (trained 1500 steps)"
    smoke = get_config("smoke")
    assert "(profile smoke: ≈ 11 s on 2 CPU cores)" in training_notice(run, "tokenizer", smoke, smoke.train_tokenizer, 0)
    paper = get_config("paper")
    assert "(profile paper: time never measured for this profile)" in \
        training_notice(run, "tokenizer", paper, paper.train_tokenizer, 0)


def test_banner_says_what_loads_and_what_trains(tmp_path):
    cfg = get_config("course")
    banner = run_banner("03_next_scale_autoregression", cfg, tmp_path)
    assert banner.splitlines() == [
        "03_next_scale_autoregression: profile course, seed 0, device cpu",
        f"  run folder {tmp_path}  (this notebook writes 03_next_scale_autoregression/)",
        "  tokenizer  missing: trains 1500 steps, ≈ 11 min on 2 CPU cores",
        "  ar         missing: trains 1000 steps, ≈ 18 min on 2 CPU cores",
        "  in all about 29 min of training before the rest of this notebook runs"]
    smoke = get_config("smoke")
    save_checkpoint(tmp_path / "tokenizer", Tokenizer(smoke), smoke, "tokenizer", smoke.train_tokenizer.steps)
    lines = run_banner("03_next_scale_autoregression", smoke, tmp_path).splitlines()
    assert lines[2] == "  tokenizer  found (step 30): loads in seconds"
    assert lines[3] == "  ar         missing: trains 30 steps, ≈ 2 s on 2 CPU cores" and len(lines) == 4
    assert run_banner("01_stft_and_cmx", smoke, tmp_path).splitlines()[2] == \
        "  trains nothing and loads no checkpoint"
    assert "in all" not in run_banner("02_tokenizer", get_config("paper"), tmp_path)
