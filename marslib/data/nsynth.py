"""Read NSynth-format datasets: the real NSynth download or our rendered mini-NSynth.

The format (Engel et al. 2017, https://magenta.tensorflow.org/datasets/nsynth)::

    root/nsynth-train/examples.json    {"bass_synthetic_033-022-050": {"pitch": 22, ...}, ...}
    root/nsynth-train/audio/bass_synthetic_033-022-050.wav
    root/nsynth-valid/...   root/nsynth-test/...

``note_str`` is ``<family>_<source>_<instrument index>-<pitch>-<velocity>``.  This
module only reads the JSON and checks the files exist; audio is loaded later by
:mod:`marslib.data.dataset`.  Defined in notebook 01.

Families are NSynth's eleven, unless the root holds a ``classes.json``
(``{"classes": ["kick", "snare"]}``, written by ``mars data import``): then its
classes are the dataset's families, free text.  Either way ``instrument_family`` in
examples.json indexes :func:`marslib.config.family_vocabulary` of the dataset's
families, and :attr:`Example.family` the vocabulary of the families asked for
(``cfg.data.families``), so labels and models agree with the config that reads them.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..config import NSYNTH_FAMILIES, NSYNTH_SOURCES, family_vocabulary

SPLITS: tuple[str, ...] = ("train", "valid", "test")
# The fields we rely on; the real examples.json has these and a few more (qualities, ...).
REQUIRED_FIELDS = ("pitch", "velocity", "sample_rate", "instrument_str",
                   "instrument_family", "instrument_family_str", "instrument_source_str")


NSYNTH_SECONDS = 4.0  # every note of the real NSynth is 4 s (64,000 samples at 16 kHz)
CLASSES_FILE = "classes.json"  # {"classes": [...]}: a dataset whose families are its own (mars data import)
IMPORTED_SOURCE = "imported"   # instrument_source_str of imported sounds (NSynth's three do not apply)
IMPORT_MANIFEST = "imported.json"  # what mars data import made (settings, clip length); see data/importer.py


class DatasetError(ValueError):
    """A dataset folder or file is missing or malformed; the message says which and how to fix it."""


@dataclass(frozen=True)
class Example:
    """One note of an NSynth-format dataset."""

    note_str: str          # e.g. "keyboard_acoustic_000-060-100"
    pitch: int             # MIDI 0..127
    velocity: int          # MIDI 1..127
    family: int            # index into family_vocabulary(families asked for): NSYNTH_FAMILIES by default
    family_str: str        # e.g. "keyboard" (or an imported class name)
    source_str: str        # "acoustic" / "electronic" / "synthetic"
    instrument_str: str    # e.g. "keyboard_acoustic_000"
    sample_rate: int       # Hz, as stored in examples.json
    path: Path             # the wav file


def split_dir(root: str | Path, split: str) -> Path:
    """``root/nsynth-<split>``, the folder name of the real download."""
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; use one of {SPLITS}")
    return Path(root) / f"nsynth-{split}"


def is_nsynth_root(root: str | Path) -> bool:
    """True if ``root`` has at least one ``nsynth-<split>/examples.json``."""
    return any((split_dir(root, s) / "examples.json").is_file() for s in SPLITS)


def dataset_classes(root: str | Path) -> tuple[str, ...]:
    """The families of the dataset at ``root``: its ``classes.json``, else NSynth's eleven."""
    path = Path(root) / CLASSES_FILE
    if not path.is_file():
        return NSYNTH_FAMILIES
    try:
        classes = json.loads(path.read_text()).get("classes")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as err:
        raise DatasetError(f"{path} is not a JSON object ({err}); re-import the dataset (mars data import)") from err
    if (not isinstance(classes, list) or not classes or len(set(classes)) != len(classes)
            or not all(isinstance(c, str) and c for c in classes)):
        raise DatasetError(f'{path} must hold {{"classes": [distinct names, ...]}}, got {classes!r}; '
                           f"re-import the dataset (mars data import)")
    return tuple(classes)


def _check_filter(name: str, values: Iterable[str] | None, known: tuple[str, ...], hint: str = ""
                  ) -> set[str] | None:
    if values is None:
        return None
    values = {values} if isinstance(values, str) else set(values)  # "string" is one family
    if values - set(known):
        raise DatasetError(f"unknown {name} {sorted(values - set(known))}; choose from {known}{hint}")
    return values


def _is_int(value: object) -> bool:
    # JSON true/false are Python bools, which are ints: not a pitch.  60.0 is not an int either.
    return isinstance(value, int) and not isinstance(value, bool)


def _parse(note_str: str, entry: object, json_path: Path, audio_dir: Path, classes: tuple[str, ...],
           sources: tuple[str, ...], vocabulary: tuple[str, ...]) -> Example:
    if not isinstance(entry, dict):
        raise DatasetError(f"{json_path}: entry {note_str!r} is not an object")
    missing = [k for k in REQUIRED_FIELDS if k not in entry]
    if missing:
        raise DatasetError(f"{json_path}: entry {note_str!r} lacks {missing}; is this an NSynth "
                           f"examples.json?")
    family_str, stored = entry["instrument_family_str"], family_vocabulary(classes)
    if family_str not in classes or stored.index(family_str) != entry["instrument_family"]:
        whose = "NSynth's" if classes == NSYNTH_FAMILIES else f"this dataset's ({CLASSES_FILE})"
        raise DatasetError(f"{json_path}: entry {note_str!r} has family {family_str!r} / "
                           f"{entry['instrument_family']!r}, not one of {whose} {classes}")
    for field, lo, hi, what in (("pitch", 0, 127, "a MIDI number, an int in 0..127"),
                                ("velocity", 1, 127, "a MIDI velocity, an int in 1..127"),
                                ("sample_rate", 1, math.inf, "a positive int (Hz)")):
        value = entry[field]
        if not (_is_int(value) and lo <= value <= hi):
            raise DatasetError(f"{json_path}: entry {note_str!r} has {field} {value!r}, but it must be {what}; "
                               f"fix the entry, or re-render / re-download the dataset")
    if entry["instrument_source_str"] not in sources:
        whose = "NSynth's" if sources == NSYNTH_SOURCES else "the known sources"
        raise DatasetError(f"{json_path}: entry {note_str!r} has instrument_source_str "
                           f"{entry['instrument_source_str']!r}, not one of {whose} {sources}; "
                           f"fix the entry, or re-render / re-download the dataset")
    # Not asked for (filtered out below): -1, never a label.
    family = vocabulary.index(family_str) if family_str in vocabulary else -1
    return Example(note_str=note_str, pitch=entry["pitch"], velocity=entry["velocity"],
                   family=family, family_str=family_str,
                   source_str=entry["instrument_source_str"], instrument_str=entry["instrument_str"],
                   sample_rate=entry["sample_rate"], path=audio_dir / f"{note_str}.wav")


def read_examples(
    root: str | Path,
    split: str,
    families: Iterable[str] | None = None,
    sources: Iterable[str] | None = None,
    pitch_range: tuple[int, int] | None = None,
    velocities: Iterable[int] | None = None,
) -> list[Example]:
    """The examples of one split, filtered, sorted by ``note_str``.

    Args:
        root: folder holding ``nsynth-train``/``-valid``/``-test``.
        split: ``"train"``, ``"valid"`` or ``"test"``.
        families: keep only these families (NSynth's, or the dataset's ``classes.json``);
            their order sets the labels: ``Example.family`` indexes
            ``family_vocabulary(families)`` (None: all, labels as the dataset stores them).
        sources: keep only these NSynth source names.
        pitch_range: ``(lo, hi)`` MIDI pitches, inclusive.
        velocities: keep only these velocities.
    Raises:
        FileNotFoundError: missing folder, examples.json or a listed wav.
        DatasetError: malformed examples.json, unknown split/family/source name.
    """
    classes = dataset_classes(root)
    known_sources = NSYNTH_SOURCES if classes == NSYNTH_FAMILIES else (*NSYNTH_SOURCES, IMPORTED_SOURCE)
    if families is None:
        vocabulary = family_vocabulary(classes)
    else:
        families = (families,) if isinstance(families, str) else tuple(families)
        vocabulary = family_vocabulary(families)
    hint = ("" if classes == NSYNTH_FAMILIES else
            f" (the classes of {Path(root)}: set data.families to them, e.g. "
            f"--set data.families='{json.dumps(list(classes))}')")
    families = _check_filter("families", families, classes, hint)
    sources = _check_filter("sources", sources, known_sources)
    velocities = None if velocities is None else set(velocities)
    folder = split_dir(root, split)
    json_path = folder / "examples.json"
    if not folder.is_dir():
        raise FileNotFoundError(f"no {folder.name} folder in {Path(root)}; render the dataset "
                                f"(mars data synth) or point data.root at an NSynth download")
    if not json_path.is_file():
        raise FileNotFoundError(f"{json_path} is missing; the {split} split is incomplete "
                                f"(re-render it, or re-extract the NSynth archive)")
    try:
        entries = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetError(f"{json_path} is not valid JSON ({err}); re-render or re-download it") from err
    if not isinstance(entries, dict):
        raise DatasetError(f"{json_path} must hold an object keyed by note_str, got {type(entries).__name__}")

    audio_dir = folder / "audio"
    examples = []
    for note_str in sorted(entries):
        ex = _parse(note_str, entries[note_str], json_path, audio_dir, classes, known_sources, vocabulary)
        if ((families is None or ex.family_str in families)
                and (sources is None or ex.source_str in sources)
                and (pitch_range is None or pitch_range[0] <= ex.pitch <= pitch_range[1])
                and (velocities is None or ex.velocity in velocities)):
            examples.append(ex)
    # One directory listing instead of a stat per file (NSynth's train split has 289k).
    present = set(os.listdir(audio_dir)) if audio_dir.is_dir() else set()
    missing = [ex.path.name for ex in examples if ex.path.name not in present]
    if missing:
        raise FileNotFoundError(f"{len(missing)} wav file(s) listed in {json_path} are missing from "
                                f"{audio_dir}, e.g. {missing[:3]}; re-render or re-extract the dataset")
    return examples
