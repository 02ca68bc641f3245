"""``mars data import``: a folder of your own sounds becomes an NSynth-format dataset whose
families are its subfolders, and the whole pipeline trains and samples on it unchanged."""

import json

import numpy as np
import pytest
import soundfile as sf

from marslib.autoregressor.training import load_ar
from marslib.cli import main
from marslib.config import ConfigError, get_config
from marslib.data import DatasetError, dataset_classes, read_examples, split_examples
from marslib.data.importer import UNPITCHED, import_folder, pitch_from_name

SR = 16000


def tone(midi: float, seconds: float = 0.6, sr: int = SR) -> np.ndarray:
    """A decaying harmonic tone at MIDI pitch ``midi``."""
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    t = np.arange(int(seconds * sr)) / sr
    y = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    return (0.5 * y / np.abs(y).max() * np.exp(-1.5 * t)).astype(np.float32)


def hit(seed: int, seconds: float = 0.3) -> np.ndarray:
    """A decaying noise burst: no pitch."""
    t = np.arange(int(seconds * SR)) / SR
    return (0.6 * np.random.default_rng(seed).uniform(-1, 1, len(t)) * np.exp(-12 * t)).astype(np.float32)


GOOD = {  # file -> (pitch it must get, where from)
    "tone/tone_C4.wav": (60, "name"),
    "tone/tone_64.wav": (64, "name"),
    "tone/tone midi_67.wav": (67, "name"),
    "tone/tone_F#3.wav": (54, "name"),
    "tone/tone_A4_22k.flac": (69, "name"),     # 22.05 kHz: resampled
    "tone/tone_plain.wav": (57, "pyin"),       # no pitch in the name
    "hit/hit_01.wav": (UNPITCHED, "unpitched"),  # 01: a take number, not MIDI 1
    "hit/hit_02.wav": (UNPITCHED, "unpitched"),
    "hit/hit_03.wav": (UNPITCHED, "unpitched"),
    "hit/hit_04.wav": (UNPITCHED, "unpitched"),
    "hit/stereo/hit_long.wav": (UNPITCHED, "unpitched"),  # deeper folders belong to their class; 2 s: cropped
}
BAD = {  # file -> what its skip reason says
    "hit/broken.wav": "unreadable",
    "hit/silent.wav": "silent",
    "tone/tiny.wav": "too short",
    "hit/notes.txt": "not an audio file",
    "loose.wav": "not in a class subfolder",
}


def make_folder(folder):
    midi = {"tone_C4": 60, "tone_64": 64, "tone midi_67": 67, "tone_F#3": 54, "tone_A4_22k": 69, "tone_plain": 57}
    for name, pitch in midi.items():
        path = folder / "tone" / (name + (".flac" if "22k" in name else ".wav"))
        path.parent.mkdir(parents=True, exist_ok=True)
        sr = 22050 if "22k" in name else SR
        sf.write(path, tone(pitch, sr=sr), sr)
    (folder / "hit" / "stereo").mkdir(parents=True)
    for i in range(1, 5):
        sf.write(folder / "hit" / f"hit_{i:02d}.wav", hit(i), SR)
    sf.write(folder / "hit" / "stereo" / "hit_long.wav", np.stack([hit(9, 2.0), hit(10, 2.0)], 1), SR)
    (folder / "hit" / "broken.wav").write_bytes(np.random.default_rng(0).bytes(3000))  # corrupt
    sf.write(folder / "hit" / "silent.wav", np.zeros(SR // 2, np.float32), SR)
    sf.write(folder / "tone" / "tiny.wav", tone(60, seconds=0.01), SR)
    (folder / "hit" / "notes.txt").write_text("recorded on Tuesday")
    sf.write(folder / "loose.wav", tone(60), SR)
    (folder / "hit" / ".DS_Store").write_bytes(b"\0\1")  # hidden: ignored


@pytest.mark.parametrize("stem, pitch", [
    ("kick_60", 60), ("C4", 60), ("piano F#3 soft", 54), ("Bb2", 46), ("c4", None), ("snare_01", None),
    ("pad-C-1", 0), ("x_midi127", 127), ("bass_synthetic_033-022-050", 22), ("take2", None),
    ("hat_2023_117", 117), ("A0", 21), ("loop_140bpm", None),
])
def test_pitch_from_the_file_name(stem, pitch):
    found = pitch_from_name(stem)
    assert (found and found[0]) == pitch or (found is None and pitch is None), found


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("import")
    make_folder(tmp / "sounds")
    return tmp


def test_import_writes_the_nsynth_layout_and_a_report(imported, capsys):
    root = imported / "dataset"
    assert main(["data", "import", str(imported / "sounds"), "--out", str(root), "--profile", "smoke"]) == 0
    out = capsys.readouterr().out
    for name in BAD:
        assert f"skipped {name}: {BAD[name]}" in out, out
    report = json.loads((root / "import_report.json").read_text())
    assert {r["file"]: (r["pitch"], r["pitch_source"]) for r in report["imported"]} == GOOD
    assert {r["file"]: r["reason"].split(":")[0].split(" (")[0] for r in report["skipped"]} == {
        "hit/broken.wav": "unreadable", "hit/silent.wav": "silent", "tone/tiny.wav": "too short",
        "hit/notes.txt": "not an audio file", "loose.wav": "not in a class subfolder"}
    assert report["classes"] == ["hit", "tone"] and dataset_classes(root) == ("hit", "tone")
    assert [r for r in report["imported"] if r["file"].endswith("22k.flac")][0]["resampled_from"] == 22050
    manifest = json.loads((root / "imported.json").read_text())
    cfg = get_config("smoke")
    assert manifest["render_seconds"] == pytest.approx(cfg.audio.clip_seconds)
    # Every class in every split, every clip 16-bit mono at the config's rate and the recorded length.
    examples = {s: read_examples(root, s) for s in ("train", "valid", "test")}
    assert sum(map(len, examples.values())) == len(GOOD)
    for split, exs in examples.items():
        assert {e.family_str for e in exs} == {"hit", "tone"}, split
        for e in exs:
            info = sf.info(e.path)
            assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16")
            assert info.frames == cfg.audio.clip_samples
            assert e.family == ("hit", "tone").index(e.family_str) and e.source_str == "imported"
    # Deterministic: the same folder and seed give the same dataset.
    again = import_folder(cfg, imported / "sounds", imported / "again", progress=False)
    for split in ("train", "valid", "test"):
        a = json.loads((root / f"nsynth-{split}" / "examples.json").read_text())
        assert a == json.loads((imported / "again" / f"nsynth-{split}" / "examples.json").read_text())
    assert again.classes == ["hit", "tone"]
    # An earlier import is replaced only when asked; anything else never.
    with pytest.raises(DatasetError, match="--overwrite"):
        import_folder(cfg, imported / "sounds", root, progress=False)
    with pytest.raises(DatasetError, match="not made by mars data import"):
        import_folder(cfg, imported / "sounds", imported / "sounds" / "..", progress=False)


def test_family_labels_follow_data_families(imported):
    root = imported / "dataset"
    cfg = get_config("smoke", {"data.root": str(root), "data.families": ["tone", "hit"], "data.pitch_min": 0,
                               "data.velocities": [100]})
    train = split_examples(cfg, "train")
    assert {(e.family_str, e.family) for e in train} == {("tone", 0), ("hit", 1)}  # indices into data.families
    with pytest.raises(DatasetError, match=r"unknown families \['bass'.*data.families='\[\"hit\", \"tone\"\]'"):
        split_examples(get_config("smoke", {"data.root": str(root)}), "train")   # NSynth's default


def test_the_pipeline_trains_and_samples_on_imported_sounds(imported, capsys):
    root, run = imported / "dataset", imported / "run"
    sets = ["--set", "data.families=['hit','tone']", "data.pitch_min=0", "data.pitch_max=127",
            "data.velocities=[100]", f"data.cache_dir='{imported / 'cache'}'"]
    steps = ["steps=4", "batch_size=4", "warmup_steps=1", "eval_every=2", "checkpoint_every=2"]
    common = ["--profile", "smoke", "--data-dir", str(root), "--out", str(run)]
    assert main(["data", "info", "--profile", "smoke", "--root", str(root), *sets[:5]]) == 0
    assert "hit" in capsys.readouterr().out
    assert main(["train", "tokenizer", *common, *sets, *[f"train_tokenizer.{s}" for s in steps]]) == 0
    assert main(["train", "ar", *common, *sets, *[f"train_ar.{s}" for s in steps]]) == 0
    meta = json.loads(sorted((run / "ar").glob("ckpt-*/meta.json"))[-1].read_text())
    assert meta["config"]["data"]["families"] == ["hit", "tone"]
    out = imported / "samples"
    assert main(["sample", "--checkpoint", str(run), "--pitch", "60", "--family", "tone", "--n", "1",
                 "--out", str(out)]) == 0
    request = json.loads((out / "request.json").read_text())
    assert request["status"] == "complete" and request["family"] == "tone"
    assert sf.info(out / request["files"][0]).frames == get_config("smoke").audio.clip_samples
    capsys.readouterr()
    assert main(["sample", "--checkpoint", str(run), "--pitch", "60", "--family", "keyboard",
                 "--out", str(out / "x")]) == 2
    assert "unknown instrument family 'keyboard'; choose one of hit, tone" in capsys.readouterr().err
    # A config whose labels mean other families (another order) may not use the model.
    other = get_config("smoke", {"data.families": ["tone", "hit"], "data.pitch_min": 0, "data.velocities": [100]})
    with pytest.raises(ConfigError, match=r"trained on families \('hit', 'tone'\)"):
        load_ar(run, other)


def test_a_damaged_imported_dataset_is_repaired_by_importing_again(tmp_path):
    from marslib.data.dataset import repair_hint

    (tmp_path / "imported.json").write_text(json.dumps({"format": "imported", "render_seconds": 1.0}))
    assert repair_hint(tmp_path) == (f"import it again over {tmp_path} (mars data import <your folder> "
                                     f"--out {tmp_path} --overwrite)")
