"""Input validation at the edges: every bad input ends in one clear error, nothing half-written.

Sampling options, examples.json entries, truncated or short wavs, corrupt feature
caches and the ``mars`` CLI.  Everything writes under ``tmp_path``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
from pathlib import Path

import pytest
import soundfile as sf
import torch
from conftest import harmonic_note
from safetensors import SafetensorError

from marslib import audio, autoregressor, cli
from marslib.audio import AudioError, load_audio, write_wav
from marslib.autoregressor import NextScaleTransformer, RasterTransformer, sample_tokens
from marslib.autoregressor.blocks import sample_logits
from marslib.autoregressor.training import tokenizer_fingerprint
from marslib.checkpoint import CheckpointError, save_checkpoint
from marslib.cli import main
from marslib.config import ConfigError, get_config
from marslib.data import (
    DatasetError,
    feature_store,
    load_clips,
    load_features,
    read_examples,
    render_dataset,
    split_examples,
)
from marslib.tokenizer import Tokenizer

PITCH, FAMILY = torch.tensor([60]), torch.tensor([4])


# ---------------------------------------------------------------------------
# Sampling options
# ---------------------------------------------------------------------------

BAD_SAMPLING = [  # (keyword, value, what the message says)
    ("temperature", 0.0, "temperature must be a number > 0, got 0.0"),
    ("temperature", -1.0, "temperature must be a number > 0, got -1.0"),
    ("temperature", math.nan, "temperature must be a number > 0, got nan"),
    ("top_k", -1, "top_k must be a whole number >= 0, got -1"),
    ("top_k", 2.5, "top_k must be a whole number >= 0, got 2.5"),
    ("top_p", 5.0, "top_p must be a probability mass in [0, 1], got 5.0"),
    ("top_p", -0.1, "top_p must be a probability mass in [0, 1], got -0.1"),
    ("cfg_scale", -1.0, "cfg_scale must be a finite number >= 0, got -1.0"),
    ("cfg_scale", math.inf, "cfg_scale must be a finite number >= 0, got inf"),
]


@pytest.fixture(scope="module")
def tiny_models():
    cfg = get_config("smoke")
    torch.manual_seed(0)
    return Tokenizer(cfg).eval(), NextScaleTransformer(cfg.ar, cfg.tokenizer).eval()


@pytest.mark.parametrize("key, value, message", BAD_SAMPLING)
def test_sample_tokens_refuses_bad_options(tiny_models, key, value, message):
    tok, ar = tiny_models
    with pytest.raises(ConfigError, match=re.escape(message)):
        sample_tokens(ar, tok, PITCH, FAMILY, **{key: value})


@pytest.mark.parametrize("key, value, message", BAD_SAMPLING)
def test_raster_sample_refuses_bad_options(key, value, message):
    cfg = get_config("smoke")
    raster = RasterTransformer(cfg.ar, (1, 2), 8)
    with pytest.raises(ConfigError, match=re.escape(message)):
        raster.sample(PITCH, FAMILY, **{key: value})


@pytest.mark.parametrize("key, value, message", [b for b in BAD_SAMPLING if b[0] != "cfg_scale"])
def test_sample_logits_refuses_bad_options(key, value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        sample_logits(torch.zeros(1, 2, 8), **{key: value})


@pytest.mark.parametrize("key, value, message", [b for b in BAD_SAMPLING if b[1] != 2.5])  # 2.5: not an int
def test_config_refuses_bad_sampling_fields(key, value, message):
    with pytest.raises(ConfigError, match=re.escape("ar." + message)):
        get_config("smoke", {f"ar.{key}": value})


def test_edge_values_of_the_sampling_options_are_accepted(tiny_models):
    tok, ar = tiny_models
    get_config("smoke", {"ar.top_p": 1.0, "ar.top_k": 0, "ar.cfg_scale": 0.0, "ar.temperature": 0.5})
    sample_tokens(ar, tok, PITCH, FAMILY, top_p=1.0, top_k=0, cfg_scale=0.0, temperature=0.5)


def test_mars_sample_refuses_bad_options_before_loading(tmp_path, capsys):
    # No checkpoint exists: the options are checked first, so that is not what is reported.
    args = ["sample", "--checkpoint", str(tmp_path), "--pitch", "60", "--family", "flute",
            "--out", str(tmp_path / "o")]
    assert main(args + ["--temperature", "-1", "--top-p", "5"]) == 2
    assert capsys.readouterr().err == ("error: --temperature must be a number > 0, got -1.0 "
                                       "(1 = the model's own distribution, lower = safer, higher = wilder)\n")
    assert main(args + ["--top-p", "5"]) == 2
    assert capsys.readouterr().err == "error: --top-p must be a probability mass in [0, 1], got 5.0 (0 = off)\n"
    assert main(args + ["--top-k", "-3"]) == 2
    assert capsys.readouterr().err == "error: --top-k must be a whole number >= 0, got -3 (0 = off)\n"
    assert main(args + ["--cfg", "-2"]) == 2
    assert capsys.readouterr().err == "error: --cfg must be a finite number >= 0, got -2.0 (0 = no guidance)\n"
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------
# examples.json entries
# ---------------------------------------------------------------------------

NOTE = "keyboard_acoustic_000-060-100"
GOOD_ENTRY = {"note": 0, "note_str": NOTE, "pitch": 60, "velocity": 100, "sample_rate": 16000,
              "instrument": 0, "instrument_str": "keyboard_acoustic_000", "instrument_family": 4,
              "instrument_family_str": "keyboard", "instrument_source": 0,
              "instrument_source_str": "acoustic", "qualities": [0] * 10, "qualities_str": []}


def _examples_json(tmp_path: Path, **changes) -> Path:
    path = tmp_path / "nsynth-test" / "examples.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({NOTE: {**GOOD_ENTRY, **changes}}))
    return path


def test_a_good_entry_is_read(tmp_path):
    _examples_json(tmp_path)
    (tmp_path / "nsynth-test" / "audio").mkdir()
    (tmp_path / "nsynth-test" / "audio" / f"{NOTE}.wav").touch()
    [ex] = read_examples(tmp_path, "test")
    assert (ex.pitch, ex.velocity, ex.sample_rate, ex.source_str) == (60, 100, 16000, "acoustic")


@pytest.mark.parametrize("field, value, must", [
    ("pitch", 200, "a MIDI number, an int in 0..127"),
    ("pitch", -1, "a MIDI number, an int in 0..127"),
    ("pitch", 60.5, "a MIDI number, an int in 0..127"),
    ("pitch", "60", "a MIDI number, an int in 0..127"),
    ("velocity", 0, "a MIDI velocity, an int in 1..127"),
    ("velocity", 128, "a MIDI velocity, an int in 1..127"),
    ("velocity", True, "a MIDI velocity, an int in 1..127"),
    ("sample_rate", 0, "a positive int (Hz)"),
    ("sample_rate", 16000.0, "a positive int (Hz)"),
])
def test_bad_numbers_in_examples_json_name_the_file_entry_and_field(tmp_path, field, value, must):
    path = _examples_json(tmp_path, **{field: value})
    with pytest.raises(DatasetError) as err:
        read_examples(tmp_path, "test")
    assert str(err.value) == (f"{path}: entry {NOTE!r} has {field} {value!r}, but it must be {must}; "
                              f"fix the entry, or re-render / re-download the dataset")


def test_an_unknown_source_in_examples_json_is_an_error(tmp_path):
    path = _examples_json(tmp_path, instrument_source_str="sampled")
    with pytest.raises(DatasetError) as err:
        read_examples(tmp_path, "test")
    assert str(err.value) == (f"{path}: entry {NOTE!r} has instrument_source_str 'sampled', not one of "
                              f"NSynth's ('acoustic', 'electronic', 'synthetic'); fix the entry, or "
                              f"re-render / re-download the dataset")


# ---------------------------------------------------------------------------
# Truncated and short wavs
# ---------------------------------------------------------------------------

def _tiny_cfg(tmp: Path, root: Path | None = None, **overrides):
    # 2 families x 2 programs x 3 pitches x 1 velocity: renders in about a second.
    return get_config("smoke", {"data.root": str(root or tmp / "tiny"), "data.cache_dir": str(tmp / "cache"),
                                "data.families": ("keyboard", "string"), "data.pitch_step": 12, **overrides})


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    cfg = _tiny_cfg(tmp_path_factory.mktemp("tiny"))
    return render_dataset(cfg)


@pytest.fixture
def tiny(tiny_root, tmp_path):
    """A private copy of the rendered dataset (tests damage it) and its config."""
    root = tmp_path / "data"
    shutil.copytree(tiny_root, root)
    return _tiny_cfg(tmp_path, root)


def _truncate(path: Path) -> int:
    """Cut a 16-bit mono wav to half its bytes, as an interrupted copy does; returns the samples left."""
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    return (len(data) // 2 - 44) // 2  # 44-byte header, 2 bytes a sample


def test_load_audio_refuses_a_truncated_wav(tmp_path, note):
    path = tmp_path / "note.wav"
    sf.write(path, note, 16000, subtype="PCM_16")
    left = _truncate(path)
    assert sf.info(path).frames == left  # libsndfile alone cannot tell
    with pytest.raises(AudioError) as err:
        load_audio(path, 16000)
    assert str(err.value) == (f"{path} is truncated: its WAV header declares {len(note)} samples but the file "
                              f"holds only {left} (an interrupted write, copy or download?); "
                              f"re-render or re-download it")


def test_a_truncated_dataset_wav_is_an_error_not_a_padded_clip(tiny):
    examples = split_examples(tiny, "train")
    left = _truncate(examples[1].path)
    root = Path(tiny.data.root)
    with pytest.raises(DatasetError) as err:
        load_features(tiny, "train")
    assert str(err.value) == (f"{examples[1].path} is truncated: its WAV header declares 64000 samples but "
                              f"the file holds only {left} (an interrupted write, copy or download?); "
                              f"re-render or re-download it. To repair the dataset, delete {root} and "
                              f"render it again (mars data synth) (or set data.skip_bad_notes=True to skip "
                              f"such notes)")
    stores = [p for p in Path(tiny.data.cache_dir).glob("train-*") if p.is_dir()]
    assert [p.name.endswith(".partial") for p in stores] in ([], [True])   # nothing stored as if whole


def test_skip_bad_notes_reports_and_records_what_it_left_out(tiny, capsys):
    examples = split_examples(tiny, "train")
    _truncate(examples[1].path)
    skipping = dataclasses.replace(tiny, data=dataclasses.replace(tiny.data, skip_bad_notes=True))
    store = feature_store(skipping, "train")
    assert len(store) == len(examples) - 1 and examples[1].note_str not in store.note_strs
    assert f"skipping {examples[1].note_str}: {examples[1].path} is truncated" in capsys.readouterr().out
    [(note, reason)] = store.meta["skipped"]
    assert note == examples[1].note_str and "is truncated" in reason


def test_a_short_dataset_wav_is_an_error_naming_the_file(tiny):
    examples = split_examples(tiny, "train")
    sf.write(examples[0].path, harmonic_note(seconds=0.25), 16000, subtype="PCM_16")  # whole, but short
    root = Path(tiny.data.root)
    with pytest.raises(DatasetError) as err:
        load_clips(tiny, examples)
    assert str(err.value) == (f"{examples[0].path} is too short: it holds 4000 samples (0.250 s at 16000 Hz) "
                              f"but needs 8192 (the clips of {root} are 4 s, the config uses 0.512 s); the "
                              f"file is damaged or not from this dataset: delete {root} and render it again "
                              f"(mars data synth)")
    (root / "mini_nsynth.json").unlink()  # a real NSynth download: the fix is another
    with pytest.raises(DatasetError, match=re.escape(f"re-download or re-extract NSynth into {root}")):
        load_clips(tiny, examples)


def test_padding_by_design_still_loads(tiny):
    # The paper profile's clips (4.096 s) are longer than NSynth's 4 s notes: the rest is padded.
    long = _tiny_cfg(Path(tiny.data.cache_dir).parent, tiny.data.root, **{
        "audio.n_frames": 2048, "tokenizer.scales": ((1, 1), (4, 128))})
    assert long.audio.clip_samples == 65536
    examples = split_examples(long, "train")[:2]
    clips = load_clips(long, examples)
    assert clips.shape == (2, 65536) and not clips[:, 64000:].any() and clips[:, :64000].any()
    (Path(tiny.data.root) / "mini_nsynth.json").unlink()  # also as a real NSynth download
    assert load_clips(long, examples).shape == (2, 65536)


# ---------------------------------------------------------------------------
# Damaged feature caches
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["meta", "truncated", "missing labels"])
def test_a_damaged_feature_store_is_rebuilt_with_a_warning(tiny, damage):
    x, labels = load_features(tiny, "train")
    [path] = [p for p in Path(tiny.data.cache_dir).glob("train-*") if p.is_dir()]
    rows = path / "rows.bin"
    if damage == "meta":
        (path / "meta.json").write_text("{not json")
        problem = "unreadable meta.json: .*"
    elif damage == "truncated":
        rows.write_bytes(rows.read_bytes()[:rows.stat().st_size // 2])
        problem = re.escape(f"rows.bin should hold {x.numel() * 4} bytes, has {x.numel() * 2}")
    else:
        (path / "labels.bin").unlink()
        problem = re.escape(f"labels.bin should hold {len(x) * 3 * 8} bytes, has none")
    with pytest.warns(UserWarning) as record:
        x2, labels2 = load_features(tiny, "train")
    assert len(record) == 1 and re.fullmatch(
        re.escape(f"feature store {path} is damaged (") + problem
        + re.escape("); deleting it and computing it again"), str(record[0].message))
    assert torch.equal(x, x2) and all(torch.equal(labels[k], labels2[k]) for k in labels)
    assert rows.stat().st_size == x.numel() * 4  # rewritten whole


# ---------------------------------------------------------------------------
# The CLI: one line, exit code 2 (130 for Ctrl-C), nothing half-written
# ---------------------------------------------------------------------------

@pytest.fixture
def run(tmp_path) -> Path:
    """A run folder with an (untrained) smoke tokenizer and next-scale model."""
    cfg = get_config("smoke")
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "run" / "tokenizer", Tokenizer(cfg), cfg, "tokenizer", 1)
    save_checkpoint(tmp_path / "run" / "ar", NextScaleTransformer(cfg.ar, cfg.tokenizer), cfg, "ar", 1,
                    made_from=tokenizer_fingerprint(tmp_path / "run" / "tokenizer"))
    return tmp_path / "run"


def _sample(run: Path, out: Path, *extra: str) -> int:
    return main(["sample", "--checkpoint", str(run), "--pitch", "62", "--family", "keyboard", "--n", "2",
                 "--out", str(out), *extra])


def test_sample_out_that_is_a_file_is_one_line(run, tmp_path, capsys):
    out = tmp_path / "taken.wav"
    out.write_bytes(b"mine")
    assert _sample(run, out) == 2
    assert capsys.readouterr().err == (f"error: --out {out} is a file, not a folder; give a folder for the "
                                       f"wavs and request.json\n")
    assert _sample(run, out / "sub") == 2
    assert capsys.readouterr().err == (f"error: --out {out / 'sub'} cannot be created: {out} is a file, not a "
                                       f"folder; choose another --out\n")
    assert out.read_bytes() == b"mine"


@pytest.mark.parametrize("error, line", [
    (FileExistsError(17, "File exists", "/runs/x"), "error: File exists: /runs/x"),
    (NotADirectoryError(20, "Not a directory", "/runs/x/request.json"),
     "error: Not a directory: /runs/x/request.json"),
    (PermissionError(13, "Permission denied", "/runs/x"), "error: Permission denied: /runs/x"),
    (OSError(28, "No space left on device"), "error: No space left on device"),
    (SafetensorError("Error while deserializing header: header too large"),
     "error: Error while deserializing header: header too large"),
    (CheckpointError("no checkpoint at runs/x/ar/last.json;\n train one first"),
     "error: no checkpoint at runs/x/ar/last.json; train one first"),
])
def test_user_facing_errors_are_one_line_and_exit_2(monkeypatch, capsys, error, line):
    def fail(args):
        raise error
    monkeypatch.setattr(cli, "cmd_profiles", fail)
    assert main(["profiles"]) == 2
    assert capsys.readouterr().err == line + "\n"


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys):
    def interrupt(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "cmd_profiles", interrupt)
    assert main(["profiles"]) == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_sample_writes_the_request_first_and_a_failed_clip_leaves_it_incomplete(run, tmp_path, monkeypatch,
                                                                               capsys):
    out = tmp_path / "samples"
    seen = {}
    real_sample = autoregressor.sample_tokens

    def sample_and_look(*args, **kwargs):  # the record must already be there
        seen["request"] = json.loads((out / "request.json").read_text())
        return real_sample(*args, **kwargs)

    def write_one_then_fail(path, y, sample_rate):
        if list(out.glob("*.wav")):
            raise OSError(28, "No space left on device")
        return write_wav(path, y, sample_rate)

    monkeypatch.setattr(autoregressor, "sample_tokens", sample_and_look)
    monkeypatch.setattr(audio, "write_wav", write_one_then_fail)
    assert _sample(run, out) == 2
    err = capsys.readouterr().err  # after the progress bar, one line
    assert err.endswith("\nerror: No space left on device\n") and "Traceback" not in err
    planned = ["keyboard_062_00.wav", "keyboard_062_01.wav"]
    assert seen["request"]["status"] == "writing" and seen["request"]["files"] == planned
    assert seen["request"]["written"] == []
    request = json.loads((out / "request.json").read_text())
    assert request["status"] == "writing" and request["files"] == planned
    assert request["written"] == planned[:1]
    assert sorted(p.name for p in out.iterdir()) == ["keyboard_062_00.wav", "request.json"]  # no temp files

    monkeypatch.setattr(audio, "write_wav", write_wav)
    assert _sample(run, out) == 0
    request = json.loads((out / "request.json").read_text())
    assert request["status"] == "complete" and request["written"] == request["files"] == planned


def test_too_few_test_notes_stop_the_evaluation_naming_the_counts_and_the_filter(tiny):
    from marslib.evaluate import test_clips as held_out_clips  # (not a test: pytest would collect "test_*")

    (Path(tiny.data.root) / "mini_nsynth.json").unlink()  # as a real NSynth download, where filters only filter
    narrow = dataclasses.replace(tiny, data=dataclasses.replace(tiny.data, velocities=(75,)))
    with pytest.raises(DatasetError, match=r"the evaluation needs at least 4 test notes, but nsynth-test: kept 0 "
                                           r"of \d+ notes \(data.velocities \(75,\) removed \d+\)"):
        held_out_clips(narrow)
