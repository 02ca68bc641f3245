"""Render the synthetic mini-NSynth: single GM-soundfont notes in NSynth's own format.

NSynth (Engel et al. 2017) is 4 s notes at 16 kHz: the key is held 3 s, then
released, for every (instrument, pitch, velocity).  We render the same kind of
note offline with ``tinysoundfont`` from ``TimGM6mb.sf2`` and write NSynth's
folder layout, so the reader (:mod:`marslib.data.nsynth`) is the same for the
real dataset and ours::

    root/nsynth-{train,valid,test}/examples.json     {note_str: {pitch, velocity, ...}}
    root/nsynth-{train,valid,test}/audio/<note_str>.wav   16-bit mono
    root/mini_nsynth.json                             what was rendered (our manifest)

Defined in notebook 01.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import shutil
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..audio import SILENCE_PEAK, validate_waveform, write_wav
from ..config import Config
from .instruments import soundfont_path
from .nsynth import IMPORT_MANIFEST, DatasetError, is_nsynth_root, split_dir
from .plan import assign_splits, examples_json, plan_notes

PEAK = 0.9            # a velocity-127 note peaks here (about -0.9 dBFS): headroom, no clipping
RENDERER_VERSION = 1  # bump when rendering changes, so old datasets stop "matching"
MANIFEST = "mini_nsynth.json"


# ---------------------------------------------------------------------------
# One note
# ---------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _soundfont_bytes() -> bytes:
    # Read once per process; parsing from bytes avoids re-reading the 6 MB file per note.
    return soundfont_path().read_bytes()


@functools.lru_cache(maxsize=1)
def _preset_names() -> tuple[str | None, ...]:
    import tinysoundfont
    synth = tinysoundfont.Synth()
    sfid = synth.sfload(_soundfont_bytes())
    return tuple(synth.sfpreset_name(sfid, 0, p) for p in range(128))


@functools.lru_cache(maxsize=8)
def _render_raw(program: int, pitch: int, velocity: int, sample_rate: int,
                n_samples: int, n_on: int) -> np.ndarray:
    """Unnormalised mono render ``(n_samples,)``; cached so the velocity-127 reference is reused."""
    import tinysoundfont  # imported lazily: only rendering needs it

    # A fresh synth per note: reusing one after ``reset`` leaves ~1e-7 of state behind,
    # which would make a note depend on the notes rendered before it.
    synth = tinysoundfont.Synth(samplerate=sample_rate)
    sfid = synth.sfload(_soundfont_bytes())
    synth.program_select(0, sfid, 0, program)
    synth.noteon(0, pitch, velocity)
    held = np.frombuffer(synth.generate(n_on), dtype=np.float32)
    synth.noteoff(0, pitch)
    released = np.frombuffer(synth.generate(n_samples - n_on), dtype=np.float32)
    stereo = np.concatenate([held, released]).reshape(-1, 2)  # interleaved L, R
    mono = stereo.mean(axis=1)
    mono.flags.writeable = False  # shared by the cache
    return mono


def render_note(program: int, pitch: int, velocity: int, sample_rate: int = 16000,
                seconds: float = 4.0, note_seconds: float = 3.0) -> np.ndarray:
    """Render one note of GM ``program``: key held ``note_seconds``, then released.

    Loudness: every (program, pitch) is scaled so that its velocity-127 note peaks
    at :data:`PEAK`; other velocities get the *same* gain, so the soundfont's
    velocity dynamics survive (a velocity-75 note is quieter) while the very
    different levels of the GM presets are evened out and nothing clips.

    Returns:
        ``(round(seconds * sample_rate),)`` float32 mono waveform, deterministic.
    Raises:
        ValueError: pitch outside 0..127, velocity outside 1..127, a program the
            soundfont lacks, bad durations, or a silent render.
    """
    if not 0 <= pitch <= 127:
        raise ValueError(f"pitch must be a MIDI number in 0..127, got {pitch}")
    if not 1 <= velocity <= 127:
        raise ValueError(f"velocity must be in 1..127 (0 would be a note-off), got {velocity}")
    if not 0 <= program <= 127 or _preset_names()[program] is None:
        raise ValueError(f"unknown GM program {program}: TimGM6mb.sf2 has presets 0..127 in bank 0")
    if not 0 < note_seconds <= seconds:
        raise ValueError(f"need 0 < note_seconds ({note_seconds}) <= seconds ({seconds})")
    n_samples = int(round(seconds * sample_rate))
    n_on = int(round(note_seconds * sample_rate))
    raw = _render_raw(program, pitch, velocity, sample_rate, n_samples, n_on)
    ref_peak = float(np.abs(_render_raw(program, pitch, 127, sample_rate, n_samples, n_on)).max())
    what = f"program {program} ({_preset_names()[program]}) pitch {pitch} velocity {velocity}"
    if ref_peak < SILENCE_PEAK:
        raise ValueError(f"rendering {what} gave silence; is the pitch inside the instrument's range?")
    y = raw * np.float32(PEAK / ref_peak)
    peak = float(np.abs(y).max())
    if peak > PEAK:  # a softer velocity layer can be louder than the 127 one: never clip
        y = y * np.float32(PEAK / peak)
    validate_waveform(y, name=f"rendered {what}")  # AudioError is a ValueError
    return y.astype(np.float32)


# ---------------------------------------------------------------------------
# Rendering the whole dataset
# ---------------------------------------------------------------------------

def manifest_for(cfg: Config, seed: int) -> dict:
    """The settings a rendered dataset depends on; equal manifests mean equal datasets."""
    d = cfg.data
    return {
        "format": "mini_nsynth",
        "renderer_version": RENDERER_VERSION,
        "soundfont": "TimGM6mb.sf2",
        "sample_rate": cfg.audio.sample_rate,
        "families": list(d.families),
        "pitch_min": d.pitch_min,
        "pitch_max": d.pitch_max,
        "pitch_step": d.pitch_step,
        "velocities": list(d.velocities),
        "programs_per_family": d.programs_per_family,
        "render_seconds": d.render_seconds,
        "note_seconds": d.note_seconds,
        "split_fractions": list(d.split_fractions),
        "seed": seed,
    }


def read_manifest(root: str | Path) -> dict | None:
    """The manifest of a rendered dataset (``mini_nsynth.json``) or of an imported one
    (``imported.json``, ``"format": "imported"``), or None (e.g. a real NSynth download).
    Both record the clips' length as ``render_seconds``."""
    for name, redo in ((MANIFEST, "re-render"), (IMPORT_MANIFEST, "re-import (mars data import)")):
        path = Path(root) / name
        if path.is_file():
            try:
                return json.loads(path.read_text())
            except json.JSONDecodeError as err:
                raise DatasetError(f"{path} is not valid JSON ({err}); delete {Path(root)} and {redo}") from err
    return None


def _differences(old: dict, new: dict) -> str:
    keys = sorted((set(old) | set(new)) - {"n_examples"})
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k))


def render_dataset(cfg: Config, root: str | Path | None = None, seed: int | None = None,
                   overwrite: bool = False) -> Path:
    """Render the mini-NSynth that ``cfg.data`` describes into ``root`` (default ``cfg.data.root``).

    If ``root`` already holds the same dataset (same manifest) it is returned as is.
    The dataset is built in a hidden sibling folder and renamed into place at the
    end, so an error or Ctrl-C never leaves a half-written dataset behind.

    Raises:
        DatasetError: ``root`` holds something else and ``overwrite`` is False.
    """
    if cfg.data.source == "nsynth":
        raise DatasetError(f"profile {cfg.profile!r} reads the real NSynth (data.source = 'nsynth'), which is "
                           f"never rendered; render a mini-NSynth with --profile course or smoke, or add "
                           f"--set data.source=render data.root=<another folder>")
    root = Path(root if root is not None else cfg.data.root)
    seed = cfg.seed if seed is None else seed
    manifest = manifest_for(cfg, seed)
    empty = root.is_dir() and not any(root.iterdir())
    if root.exists() and not empty and _existing_matches(root, manifest, overwrite):
        return root

    notes = plan_notes(cfg)
    splits = assign_splits(notes, cfg.data.split_fractions, seed)
    note_ids = {n.note_str: i for i, n in enumerate(notes)}
    sr = cfg.audio.sample_rate
    root.parent.mkdir(parents=True, exist_ok=True)
    # A hidden sibling (same file system, so the final rename is atomic); plain mkdir
    # rather than mkdtemp, which would make the dataset folder private (mode 700).
    tmp = root.parent / f".{root.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    split_of = {n.note_str: s for s, split_notes in splits.items() for n in split_notes}
    try:
        for split in splits:
            (split_dir(tmp, split) / "audio").mkdir(parents=True)
        # In note_str order, so the velocities of one (program, pitch) come one after
        # another and render_note's velocity-127 reference is rendered once.
        for n in tqdm(notes, desc=f"rendering {root.name}", unit="note"):
            y = render_note(n.instrument.program, n.pitch, n.velocity, sr,
                            cfg.data.render_seconds, cfg.data.note_seconds)
            write_wav(split_dir(tmp, split_of[n.note_str]) / "audio" / f"{n.note_str}.wav", y, sr)
        for split, split_notes in splits.items():
            _write_json(split_dir(tmp, split) / "examples.json", examples_json(split_notes, note_ids, sr))
        manifest["n_examples"] = {s: len(v) for s, v in splits.items()}
        _write_json(tmp / MANIFEST, manifest)
        _move_into_place(tmp, root)
    finally:
        if tmp.exists():  # only if something above failed (or was interrupted)
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def _existing_matches(root: Path, manifest: dict, overwrite: bool) -> bool:
    """True if ``root`` already is this dataset, False if it may be replaced, else raise."""
    ours = root.is_dir() and (root / MANIFEST).is_file()
    try:
        old = read_manifest(root) if ours else None
    except DatasetError:
        old = {}  # ours, but the manifest is unreadable: only overwrite helps
    if old and {k: v for k, v in old.items() if k != "n_examples"} == manifest:
        return True
    if not ours:  # never delete what we did not render (a real NSynth download, a thesis...)
        kind = "an NSynth-format dataset" if is_nsynth_root(root) else "files"
        raise DatasetError(f"{root} holds {kind} not rendered by marslib (no {MANIFEST}); "
                           f"move it away or choose another data.root")
    if not overwrite:
        raise DatasetError(f"{root} already holds a dataset rendered with other settings "
                           f"({_differences(old, manifest)}); pass overwrite=True "
                           f"(mars data synth --overwrite) or choose another data.root")
    return False


def _write_json(path: Path, obj: dict) -> None:
    # One entry per line: readable, and diff-able between renders.
    lines = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in obj.items()]
    path.write_text("{\n" + ",\n".join(lines) + "\n}\n")


def _move_into_place(tmp: Path, root: Path) -> None:
    # os.replace cannot replace a non-empty folder: move the old one aside first.
    if root.exists():
        trash = root.parent / f".{root.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
        os.replace(root, trash)
        os.replace(tmp, root)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, root)


def nsynth_missing(root: Path) -> str:
    """What to do when a profile that needs the real NSynth (``data.source = "nsynth"``) cannot find it."""
    return (f"the real NSynth is needed (data.source = 'nsynth') but {root} holds no nsynth-train/, "
            f"nsynth-valid/ or nsynth-test/ with an examples.json. Download the three json/wav archives from "
            f"https://magenta.tensorflow.org/datasets/nsynth (about 30 GB), extract them so that {root} holds "
            f"nsynth-{{train,valid,test}}/examples.json and nsynth-<split>/audio/*.wav, or pass --data-dir "
            f"where they are; check with `mars data info --profile paper --root {root}`. (No rendering here: "
            f"a synthetic stand-in would not be the paper's data.)")


def ensure_dataset(cfg: Config) -> Path:
    """``cfg.data.root`` if it holds an NSynth-format dataset (real or ours), else render it.

    Notebooks and training call this so each runs on its own.  A mini-NSynth whose
    split seed differs from ``cfg.seed`` is reused (a run's seed should not re-split
    the data); one rendered with other settings is not: :func:`render_dataset`
    raises and names the differences.
    """
    root = Path(cfg.data.root)
    if not is_nsynth_root(root):
        if cfg.data.source == "nsynth":
            raise DatasetError(nsynth_missing(root))
        return render_dataset(cfg, root)
    old = read_manifest(root)
    if old is None or old.get("format") == "imported":
        return root  # a real NSynth download, your own sounds (mars data import), another NSynth-format dataset
    return render_dataset(cfg, root, seed=old.get("seed", cfg.seed))
