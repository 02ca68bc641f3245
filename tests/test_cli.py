import argparse
import json

import pytest
import soundfile as sf
import torch

from marslib.autoregressor import NextScaleTransformer
from marslib.autoregressor.training import tokenizer_fingerprint
from marslib.checkpoint import has_checkpoint, save_checkpoint
from marslib.cli import build_parser, main
from marslib.config import get_config
from marslib.notebooks import REPO_ROOT
from marslib.tokenizer import Tokenizer


def test_profiles(capsys):
    assert main(["profiles"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("smoke", "course", "paper"))


COMMON = ["--profile", "--seed", "--device", "--set"]
TRAIN = COMMON + ["--out", "--data-dir", "--resume", "--overwrite", "--distributed"]
HELP = {  # every command (and command group), with options its usage must name
    (): ["profiles", "data", "train", "sample", "evaluate", "report", "reproduce", "run", "lab"],
    ("profiles",): [],
    ("data",): ["synth", "info", "import"],
    ("data", "synth"): COMMON + ["--root", "--overwrite"],
    ("data", "info"): COMMON + ["--root"],
    ("data", "import"): COMMON + ["--out", "--seconds", "--min-seconds", "--velocity", "--no-normalize", "--overwrite"],
    ("train",): ["tokenizer", "ar", "raster", "truncation", "classifier", "ddsp", "diffwave", "wavenet_ae"],
    **{("train", model): TRAIN for model in ("tokenizer", "ar", "raster", "truncation", "classifier", "ddsp",
                                             "diffwave", "wavenet_ae")},
    ("sample",): ["--checkpoint", "--pitch", "--family", "--n", "--out", "--cfg", "--temperature", "--top-k",
                  "--top-p", "--seed", "--device"],
    ("evaluate",): COMMON + ["--run", "--data-dir", "--systems", "--train-classifier"],
    ("report",): ["--run", "--out"],
    ("reproduce",): COMMON + ["--out", "--data-dir", "--notebooks"],
    ("run",): ["export", "import"],
    ("run", "export"): ["RUN_DIR", "BUNDLE", "--with-notebooks"],
    ("run", "import"): ["BUNDLE", "RUN_DIR", "--profile", "--force"],
    ("lab",): ["list", "student"],
    ("lab", "list"): [],
    ("lab", "student"): ["--out"],
}


def _commands(parser: argparse.ArgumentParser, path: tuple = ()) -> dict[tuple, argparse.ArgumentParser]:
    """Every (sub)command of the parser, by its path of names."""
    found = {path: parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found |= _commands(sub, path + (name,))
    return found


def test_help_lists_every_command():
    assert set(_commands(build_parser())) == set(HELP)


@pytest.mark.parametrize("path", list(HELP), ids=lambda p: " ".join(("mars",) + p))
def test_help_exits_0_and_names_the_options(path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*path, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {' '.join(('mars',) + path)}"), out[:200]
    parser = _commands(build_parser())[path]
    options = {o for a in parser._actions for o in a.option_strings if o.startswith("--")} - {"--help"}
    assert options >= set(o for o in HELP[path] if o.startswith("--"))   # nothing expected went missing
    for word in sorted(options | set(HELP[path])):
        assert word in out, f"mars {' '.join(path)} --help does not mention {word}"


def test_bad_input_is_one_clear_line_and_exit_2(tmp_path, capsys):
    assert main(["train", "tokenizer", "--profile", "laptop"]) == 2
    assert "unknown profile 'laptop'" in capsys.readouterr().err
    assert main(["sample", "--checkpoint", str(tmp_path), "--pitch", "60", "--family", "flute",
                 "--out", str(tmp_path / "o")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_sample_writes_wavs_and_the_request(tmp_path, capsys):
    cfg = get_config("smoke")
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "tokenizer", Tokenizer(cfg), cfg, "tokenizer", 1)
    save_checkpoint(tmp_path / "ar", NextScaleTransformer(cfg.ar, cfg.tokenizer), cfg, "ar", 1,
                    made_from=tokenizer_fingerprint(tmp_path / "tokenizer"))
    out = tmp_path / "samples"
    # The families are the ones the model was trained on (here NSynth's), checked before loading it.
    assert main(["sample", "--checkpoint", str(tmp_path), "--pitch", "60", "--family", "kazoo",
                 "--out", str(out)]) == 2
    assert "unknown instrument family 'kazoo'; choose one of bass, brass" in capsys.readouterr().err
    assert not out.exists()
    assert main(["sample", "--checkpoint", str(tmp_path), "--pitch", "62", "--family", "keyboard",
                 "--n", "2", "--out", str(out)]) == 0
    request = json.loads((out / "request.json").read_text())
    assert request["pitch"] == 62 and request["family"] == "keyboard" and len(request["files"]) == 2
    assert request["status"] == "complete" and request["written"] == request["files"]
    assert request["provenance"]["command"]["argv"] and request["provenance"]["versions"]["torch"]
    assert sorted(p.name for p in out.iterdir()) == sorted(request["files"] + ["request.json"])  # no temp files
    for name in request["files"]:
        info = sf.info(out / name)
        assert info.samplerate == 16000 and info.frames == cfg.audio.clip_samples


def test_train_writes_only_where_it_is_told(tmp_path, monkeypatch, repo_untouched):
    """Dataset, feature cache and checkpoints land under --data-dir's folder and --out, not the repository."""
    monkeypatch.chdir(REPO_ROOT)  # relative defaults (data/..., runs/...) would land in the repository
    assert main(["train", "tokenizer", "--profile", "smoke", "--data-dir", str(tmp_path / "data"),
                 "--out", str(tmp_path / "run"), "--set", "train_tokenizer.steps=2",
                 "train_tokenizer.eval_every=2", "train_tokenizer.checkpoint_every=2"]) == 0
    assert has_checkpoint(tmp_path / "run" / "tokenizer")
    assert {p.name.split("-")[0] for p in (tmp_path / "cache").iterdir()} == {"train", "valid"}  # beside the data


def test_evaluate_help_names_every_row_the_evaluation_knows():
    from marslib.cli import EVALUATE_ROWS
    from marslib.evaluate import SYSTEMS

    assert EVALUATE_ROWS == tuple(SYSTEMS)


def test_reproduce_runs_the_comparison_systems_only_when_asked(monkeypatch, tmp_path):
    import marslib.notebooks as notebooks

    ran = []
    monkeypatch.setattr(notebooks, "execute_notebook", lambda src, *a, **k: ran.append(src.name[:2]))
    data = ["--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--profile", "smoke"]
    assert main(["reproduce", *data]) == 0
    assert ran == ["01", "02", "03", "04", "05"]
    ran.clear()
    assert main(["reproduce", *data, "--notebooks", "06"]) == 0
    assert ran == ["06"]


def test_reproduce_is_quiet_and_reports_progress(tmp_path, capfd):
    """No transport warning from the kernel; a progress line per section and a summary per notebook."""
    import re

    import nbformat

    from marslib.notebooks import SKIP_TAG

    assert main(["reproduce", "--profile", "smoke", "--out", str(tmp_path / "run"),
                 "--data-dir", str(tmp_path / "data"), "--notebooks", "01"]) == 0
    out, err = capfd.readouterr()  # file descriptors: the kernel is another process
    for text in ("encryption", "TCP", "eavesdropping"):
        assert text not in out + err, f"the kernel's transport warning is back: {text!r} in the output"
    progress = re.findall(r"^01_stft_and_cmx  \[(\d+)/(\d+) cells\]  \d+:\d\d elapsed  · (.+)$", out, re.M)
    assert len(progress) >= 3 and "1. A real note" in [section for _, _, section in progress], out  # per ## section
    done = [int(d) for d, _, _ in progress]
    assert done == sorted(done) and done[0] > 0
    summary = re.search(r"^01_stft_and_cmx  done: (\d+) cells in \d+:\d\d -> (.+)$", out, re.M)
    assert summary, out
    executed = nbformat.read(tmp_path / "run" / "notebooks" / "01_stft_and_cmx.ipynb", as_version=4)
    code = [c for c in executed.cells if c.cell_type == "code" and c.source.strip()]  # with papermill's
    ran = [c for c in code if SKIP_TAG not in c.metadata.get("tags", [])]
    assert int(summary[1]) == len(ran) == int(progress[0][1]) and summary[2] == str(tmp_path / "run" / "01_stft_and_cmx")
    skipped = code[len(ran):]  # the exercises, at the end: shown, not run (--exercises runs them)
    assert skipped and all(SKIP_TAG in c.metadata["tags"] and not c.outputs for c in skipped)
    assert any("lab.check(" in c.source for c in skipped) and not any("lab.check(" in c.source for c in ran)
