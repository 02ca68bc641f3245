"""Your own sounds: any folder of audio files -> an NSynth-format dataset (``mars data import``).

::

    FOLDER/<class>/.../<file>.wav|flac|ogg|aiff|mp3     subfolders are classes: drum kinds, instruments, ...
  ->
    ROOT/nsynth-{train,valid,test}/examples.json       the reader's format (marslib.data.nsynth)
    ROOT/nsynth-{train,valid,test}/audio/<note_str>.wav  16-bit mono at cfg.audio.sample_rate, every clip
                                                       cropped or zero-padded to the same length
    ROOT/classes.json        {"classes": [...]}: the dataset's families, free text (sorted folder names)
    ROOT/imported.json       how it was imported: clip length (render_seconds), seed, fractions, ...
    ROOT/import_report.json  every file: imported (class, pitch and where it came from, split) or skipped (why)

Rules, per file (in sorted path order):

* **Class**: the first folder under FOLDER.  Files directly in FOLDER are skipped.
  A class becomes a family: train with ``--set data.families='["kick", "snare"]'``.
* **Readable**: decoded by libsndfile (wav, flac, ogg, aiff, mp3, ...); undecodable,
  truncated (fewer samples than the WAV header declares), empty or NaN/Inf -> skipped.
  Other extensions -> skipped; hidden files (``.DS_Store``) are ignored.
* **Sample rate**: mixed to mono; resampled with librosa to ``cfg.audio.sample_rate``.
* **Length**: shorter than ``min_seconds`` -> skipped; otherwise the first ``seconds``
  are kept, shorter files zero-padded (``seconds`` defaults to the profile's clip).
* **Silence**: all zero or peaking below :data:`marslib.audio.SILENCE_PEAK` (-80 dBFS),
  in the file or in the part kept -> skipped.  Kept clips are peak-normalised to 0.9
  (``normalize=False`` keeps their level).
* **Pitch** (a MIDI number 0..127, what the models embed), the first that applies:
  1. the file name: ``midi60`` / ``midi_60``; an NSynth ``note_str`` (``..._033-060-100``);
     a note name as its own word (``C4``, ``F#3``, ``Bb2``; C4 = 60, upper-case letter);
     else the last number that is its own word (``kick_60``, ``piano-72``) if it lies
     in 21..127 (smaller ones are read as take numbers: ``kick_01``);
  2. ``librosa.pyin`` (C1..C8): pitched if at least half of the sounding frames are
     voiced and their pitch is steady (median deviation <= 1 semitone); the median;
  3. otherwise **unpitched: pitch 0** (C-1, 8 Hz, no instrument's note), with
     ``"pitch_source": "unpitched"`` in its examples.json entry.  Training keeps
     pitch 0 only if ``data.pitch_min`` is 0.
* **Velocity**: one for all (NSynth's field; 127 if the profile keeps it, else its loudest).
* **Split**: per class, shuffled with the seed, cut by ``data.split_fractions``
  (:func:`marslib.data.plan.split_by_class`, as the renderer splits): deterministic.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from ..audio import SILENCE_PEAK, fit_length, wav_declared_frames, write_wav
from ..config import NSYNTH_VELOCITIES, Config, family_vocabulary
from .nsynth import (CLASSES_FILE, IMPORT_MANIFEST, IMPORTED_SOURCE, SPLITS, DatasetError, is_nsynth_root,
                     split_dir)
from .plan import N_QUALITIES, split_by_class
from .render import PEAK, _move_into_place, _write_json

IMPORTER_VERSION = 1
REPORT = "import_report.json"
UNPITCHED = 0          # the pitch label of a sound with no pitch (see the module docstring)
MIN_SECONDS = 0.05     # shorter files are skipped
AUDIO_EXTENSIONS = (".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".aif", ".aiff", ".aifc", ".mp3",
                    ".au", ".snd", ".w64", ".caf")
BARE_NUMBER_RANGE = (21, 127)  # a bare number in a file name is a MIDI pitch only in here (A0 and up)

_SEP = r"[\s_\-.,()\[\]]"
_MIDI_WORD = re.compile(rf"(?i)(?:^|{_SEP})midi[\s_\-]?(\d{{1,3}})(?={_SEP}|$)")
_NSYNTH = re.compile(r"-(\d{3})-(\d{3})$")
_NOTE = re.compile(rf"(?:^|(?<={_SEP}))([A-G])(#|♯|b|♭|s)?(-1|\d)(?={_SEP}|$)")
_NUMBER = re.compile(rf"(?:^|(?<={_SEP}))(\d{{1,3}})(?={_SEP}|$)")
_PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_ACCIDENTAL = {None: 0, "#": 1, "♯": 1, "s": 1, "b": -1, "♭": -1}


def pitch_from_name(stem: str) -> tuple[int, str] | None:
    """``(MIDI pitch, the text it was read from)`` if the file name carries one, else None.

    >>> pitch_from_name("kick_60"), pitch_from_name("piano F#3 soft"), pitch_from_name("kick_01")
    ((60, '60'), (54, 'F#3'), None)
    """
    for match in _MIDI_WORD.finditer(stem):
        if int(match.group(1)) <= 127:
            return int(match.group(1)), match.group(0).strip(" _-.,()[]")
    match = _NSYNTH.search(stem)
    if match and int(match.group(1)) <= 127:
        return int(match.group(1)), match.group(0)
    for match in _NOTE.finditer(stem):
        letter, accidental, octave = match.groups()
        midi = 12 * (int(octave) + 1) + _PITCH_CLASS[letter] + _ACCIDENTAL[accidental]
        if 0 <= midi <= 127:
            return midi, match.group(0)
    lo, hi = BARE_NUMBER_RANGE
    numbers = [m for m in _NUMBER.finditer(stem) if lo <= int(m.group(1)) <= hi]
    if numbers:
        return int(numbers[-1].group(1)), numbers[-1].group(1)
    return None


def estimate_pitch(y: np.ndarray, sample_rate: int) -> int | None:
    """A steady pitch by ``librosa.pyin`` (MIDI, rounded), or None if the sound has none."""
    import librosa  # slow to import: only when a file name carries no pitch

    frame = 2048
    fmin, fmax = librosa.note_to_hz("C1"), min(librosa.note_to_hz("C8"), 0.45 * sample_rate)
    f0, voiced, prob = librosa.pyin(y, fmin=fmin, fmax=fmax, sr=sample_rate, frame_length=frame)
    rms = librosa.feature.rms(y=y, frame_length=frame, hop_length=frame // 4)[0]
    n = min(len(rms), len(voiced))
    sounding = rms[:n] > rms[:n].max() * 10 ** (-40 / 20)  # within 40 dB of the loudest frame
    voiced = voiced[:n] & sounding & np.isfinite(f0[:n])
    # Noise: few voiced frames, a low voicing probability (~0.01 vs > 0.5 for a note).
    if voiced.sum() < 3 or voiced.sum() < 0.5 * sounding.sum() or prob[:n][sounding].mean() < 0.3:
        return None
    midi = librosa.hz_to_midi(f0[:n][voiced])
    centre = float(np.median(midi))
    if float(np.median(np.abs(midi - centre))) > 1.0:  # gliding or jumping: no one pitch
        return None
    if not librosa.hz_to_midi(fmin) + 1 < centre < librosa.hz_to_midi(fmax) - 1:  # pinned to the search range
        return None
    return int(np.clip(round(centre), 0, 127))


@dataclass
class ImportReport:
    """What ``import_folder`` did: per file, imported or skipped and why."""

    source: str
    root: str
    settings: dict
    imported: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    train_with: str = ""

    def to_dict(self) -> dict:
        counts = {c: {s: sum(1 for r in self.imported if r["class"] == c and r["split"] == s) for s in SPLITS}
                  for c in self.classes}
        return {"source": self.source, "root": self.root, "settings": self.settings, "classes": self.classes,
                "counts": counts, "n_imported": len(self.imported), "n_skipped": len(self.skipped),
                "train_with": self.train_with, "warnings": self.warnings,
                "imported": self.imported, "skipped": self.skipped}

    def summary(self) -> str:
        """What to print: counts per class and split, every skipped file and why, how to train."""
        d = self.to_dict()
        lines = [f"imported {d['n_imported']} clips from {self.source} into {self.root} "
                 f"({d['n_skipped']} skipped)"]
        for cls, by_split in d["counts"].items():
            mine = [r["pitch_source"] for r in self.imported if r["class"] == cls]
            lines.append(f"  {cls}: " + ", ".join(f"{s} {n}" for s, n in by_split.items())
                         + f"  (pitch from the file name {mine.count('name')}, by pyin {mine.count('pyin')}, "
                           f"unpitched {mine.count('unpitched')})")
        for item in self.skipped:
            lines.append(f"  skipped {item['file']}: {item['reason']}")
        lines += [f"  warning: {w}" for w in self.warnings]
        lines.append(f"train with: --data-dir {self.root} --set {self.train_with}")
        return "\n".join(lines)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "class"


def _read(path: Path, sample_rate: int) -> tuple[np.ndarray | None, str, dict]:
    """``(mono float32 at sample_rate, "", facts)`` or ``(None, why it is skipped, facts)``."""
    try:
        y, sr = sf.read(path, dtype="float32", always_2d=True)
    except Exception as err:  # libsndfile's own error types: not audio, corrupt, unsupported
        return None, f"unreadable: {' '.join(str(err).split()) or type(err).__name__}", {}
    facts = {"sample_rate": int(sr), "channels": int(y.shape[1]), "seconds": round(len(y) / sr, 4)}
    declared = wav_declared_frames(path)
    if declared is not None and len(y) < declared:
        return None, f"truncated: the WAV header declares {declared} samples, the file holds {len(y)}", facts
    if len(y) == 0:
        return None, "empty (0 samples)", facts
    y = y.mean(axis=1)
    if not np.all(np.isfinite(y)):
        return None, "contains NaN or Inf samples", facts
    peak = float(np.max(np.abs(y)))
    if peak < SILENCE_PEAK:
        return None, f"silent (peak {peak:.2g} below {SILENCE_PEAK:g}, -80 dBFS)", facts
    if sr != sample_rate:
        import librosa
        y = librosa.resample(y, orig_sr=sr, target_sr=sample_rate).astype(np.float32)
        facts["resampled_from"] = int(sr)
    return y, "", facts


def import_folder(cfg: Config, folder: str | Path, root: str | Path, seconds: float | None = None,
                  min_seconds: float = MIN_SECONDS, velocity: int | None = None, normalize: bool = True,
                  overwrite: bool = False, progress: bool = True) -> ImportReport:
    """Import ``folder`` (subfolders = classes) into an NSynth-format dataset at ``root``.

    ``cfg`` gives the sample rate (``audio.sample_rate``), the default clip length
    (``audio.clip_seconds``), the split (``data.split_fractions``, ``seed``) and the
    default velocity (127 if ``data.velocities`` holds it, else their largest).
    The dataset is built in a hidden sibling folder and renamed into place, so a
    failure never leaves half a dataset; ``overwrite`` replaces an earlier import at
    ``root`` (never anything else).  See the module docstring for the rules.

    Raises:
        DatasetError: ``folder`` missing, nothing importable, ``root`` taken, bad settings.
    """
    folder, root = Path(folder).resolve(), Path(root).resolve()
    sr = cfg.audio.sample_rate
    seconds = round(cfg.audio.clip_seconds, 6) if seconds is None else float(seconds)
    velocity = velocity or (127 if 127 in cfg.data.velocities else max(cfg.data.velocities))
    if not folder.is_dir():
        raise DatasetError(f"{folder} is not a folder; give a folder whose subfolders (classes) hold audio files")
    if not 0 < min_seconds <= seconds:
        raise DatasetError(f"need 0 < min_seconds ({min_seconds}) <= seconds ({seconds})")
    if velocity not in NSYNTH_VELOCITIES:
        raise DatasetError(f"velocity must be one of NSynth's {NSYNTH_VELOCITIES}, got {velocity}")
    if root == folder or folder in root.parents:
        raise DatasetError(f"--out {root} is inside the folder being imported; choose a folder elsewhere")
    _check_root(root, overwrite)

    settings = {"sample_rate": sr, "seconds": seconds, "min_seconds": min_seconds, "velocity": velocity,
                "normalize": normalize, "split_fractions": list(cfg.data.split_fractions), "seed": cfg.seed,
                "unpitched_pitch": UNPITCHED}
    report = ImportReport(source=str(folder), root=str(root), settings=settings)
    n_keep, n_min = int(round(seconds * sr)), int(round(min_seconds * sr))
    files = sorted(p for p in folder.rglob("*") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    clips: list[tuple[dict, np.ndarray]] = []
    for path in tqdm(files, desc=f"importing {folder.name}", unit="file", disable=not progress):
        rel = path.relative_to(folder).as_posix()
        if len(path.relative_to(folder).parts) < 2:
            report.skipped.append({"file": rel, "reason": "not in a class subfolder (put it in FOLDER/<class>/)"})
            continue
        if path.suffix.lower() not in AUDIO_EXTENSIONS:
            report.skipped.append({"file": rel, "reason": f"not an audio file (extension {path.suffix or 'none'!r})"})
            continue
        y, why, facts = _read(path, sr)
        if y is not None and len(y) < n_min:
            y, why = None, f"too short: {len(y) / sr:.3f} s, under the minimum {min_seconds:g} s"
        if y is not None:
            y = fit_length(y, n_keep)
            peak = float(np.max(np.abs(y)))
            if peak < SILENCE_PEAK:
                y, why = None, f"silent in the {seconds:g} s kept (peak {peak:.2g})"
        if y is None:
            report.skipped.append({"file": rel, "reason": why, **facts})
            continue
        if normalize:
            y = (y * np.float32(PEAK / peak)).astype(np.float32)
        named = pitch_from_name(path.stem)
        if named is not None:
            pitch, source, token = named[0], "name", named[1]
        else:
            estimated = estimate_pitch(y, sr)
            pitch, source, token = ((estimated, "pyin", None) if estimated is not None
                                    else (UNPITCHED, "unpitched", None))
        record = {"file": rel, "class": path.relative_to(folder).parts[0], "pitch": pitch,
                  "pitch_source": source, **({"pitch_text": token} if token else {}), **facts,
                  "padded": facts["seconds"] < seconds, "cropped": facts["seconds"] > seconds}
        clips.append((record, y))
    if not clips:
        raise DatasetError(f"nothing to import from {folder}: "
                           + ("no files" if not report.skipped else
                              f"all {len(report.skipped)} files skipped, e.g. {report.skipped[0]['file']}: "
                              f"{report.skipped[0]['reason']}")
                           + "; put audio files in FOLDER/<class>/ subfolders")

    report.classes = sorted({r["class"] for r, _ in clips})
    vocabulary = family_vocabulary(report.classes)
    for k, (record, _) in enumerate(clips):
        record["note_str"] = (f"{_slug(record['class'])}_{IMPORTED_SOURCE}_{k:03d}-{record['pitch']:03d}-"
                              f"{velocity:03d}")
    splits = split_by_class(list(range(len(clips))), [r["class"] for r, _ in clips], report.classes,
                            cfg.data.split_fractions, cfg.seed)
    for split, members in splits.items():
        for i in members:
            clips[i][0]["split"] = split
    report.imported = [record for record, _ in clips]
    for split in SPLITS:
        if not splits[split]:
            report.warnings.append(f"the {split} split is empty (too few files per class); training needs "
                                   f"train and valid clips, evaluation test clips: add files")
    pitches = [r["pitch"] for r, _ in clips]
    report.train_with = (f"data.families='{json.dumps(report.classes)}' data.pitch_min={min(pitches)} "
                         f"data.pitch_max={max(pitches)} data.velocities='[{velocity}]'")

    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        entries: dict[str, dict] = {s: {} for s in SPLITS}
        for k, (record, y) in enumerate(clips):
            split = record["split"]
            write_wav(split_dir(tmp, split) / "audio" / f"{record['note_str']}.wav", y, sr)
            entries[split][record["note_str"]] = {
                "note": k, "note_str": record["note_str"], "pitch": record["pitch"], "velocity": velocity,
                "sample_rate": sr, "instrument": k, "instrument_str": record["note_str"].rsplit("-", 2)[0],
                "instrument_family": vocabulary.index(record["class"]), "instrument_family_str": record["class"],
                "instrument_source": -1, "instrument_source_str": IMPORTED_SOURCE,
                "qualities": [0] * N_QUALITIES, "qualities_str": [],
                "pitch_source": record["pitch_source"], "source_file": record["file"]}
        for split in SPLITS:
            split_dir(tmp, split).mkdir(parents=True, exist_ok=True)
            _write_json(split_dir(tmp, split) / "examples.json", entries[split])
        (tmp / CLASSES_FILE).write_text(json.dumps({"classes": report.classes}, indent=1) + "\n")
        manifest = {"format": "imported", "importer_version": IMPORTER_VERSION, "source": str(folder),
                    "classes": report.classes, "render_seconds": seconds, **settings,
                    "n_examples": {s: len(v) for s, v in entries.items()}}
        (tmp / IMPORT_MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        (tmp / REPORT).write_text(json.dumps(report.to_dict(), indent=1) + "\n")
        _move_into_place(tmp, root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return report


def _check_root(root: Path, overwrite: bool) -> None:
    """Refuse a ``root`` that holds anything but an earlier import (and that, unless ``overwrite``)."""
    if not root.exists() or (root.is_dir() and not any(root.iterdir())):
        return
    if not root.is_dir():
        raise DatasetError(f"--out {root} is a file; give a folder for the dataset")
    if not (root / IMPORT_MANIFEST).is_file():
        kind = "an NSynth-format dataset" if is_nsynth_root(root) else "files"
        raise DatasetError(f"{root} holds {kind} not made by mars data import; move it away or choose "
                           f"another --out")
    if not overwrite:
        raise DatasetError(f"{root} already holds an imported dataset; pass --overwrite to replace it "
                           f"or choose another --out")
