"""Which notes a mini-NSynth holds, and which split each note goes to.

``cfg.data`` picks the notes: (the first ``programs_per_family`` GM programs of each
family) x (every ``pitch_step``-th pitch the instrument can play) x (velocities).
Each family's notes are shuffled with the seed and cut by ``split_fractions``, so
every split mixes families, pitches and velocities.  Also builds NSynth's
``examples.json`` entries.  Defined in notebook 01.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import NSYNTH_FAMILIES, NSYNTH_SOURCES, Config
from .instruments import FAMILY_INSTRUMENTS, Instrument, instrument_str
from .nsynth import SPLITS

# NSynth's ten note qualities; we do not annotate them (all 0), but keep the field.
N_QUALITIES = 10


@dataclass(frozen=True)
class Note:
    """One note to render."""

    instrument: Instrument
    pitch: int
    velocity: int

    @property
    def note_str(self) -> str:
        """NSynth's id, e.g. ``keyboard_acoustic_000-060-100``."""
        return f"{instrument_str(self.instrument)}-{self.pitch:03d}-{self.velocity:03d}"


def plan_notes(cfg: Config) -> list[Note]:
    """Every note ``cfg.data`` asks for, sorted by ``note_str``.

    (first ``programs_per_family`` instruments of each family) x (the pitch grid
    inside the instrument's range) x (velocities).
    """
    d = cfg.data
    if d.pitch_step < 1:
        raise ValueError(f"data.pitch_step must be >= 1, got {d.pitch_step}")
    if not 0 < d.note_seconds <= d.render_seconds:
        raise ValueError(f"need 0 < data.note_seconds ({d.note_seconds}) <= data.render_seconds "
                         f"({d.render_seconds})")
    grid = range(d.pitch_min, d.pitch_max + 1, d.pitch_step)
    foreign = [f for f in d.families if f not in FAMILY_INSTRUMENTS]
    if foreign:
        raise ValueError(f"data.families {foreign} are not NSynth families, which is all the synthetic "
                         f"renderer plays; point data.root at a dataset that has them (your own sounds: "
                         f"mars data import FOLDER --out ROOT)")
    notes, empty = [], []
    for fam in d.families:
        insts = FAMILY_INSTRUMENTS[fam]
        if not 1 <= d.programs_per_family <= len(insts):
            raise ValueError(f"data.programs_per_family must be in 1..{len(insts)} "
                             f"(programs mapped for {fam!r}), got {d.programs_per_family}")
        fam_notes = [Note(i, p, v) for i in insts[: d.programs_per_family]
                     for p in grid if i.plays(p) for v in d.velocities]
        notes += fam_notes
        empty += [] if fam_notes else [fam]
    if empty:
        raise ValueError(f"no playable pitch of {list(grid)} for families {empty}; widen "
                         f"data.pitch_min/pitch_max or drop them from data.families")
    return sorted(notes, key=lambda n: n.note_str)


def assign_splits(notes: list[Note], fractions: tuple[float, float, float],
                  seed: int) -> dict[str, list[Note]]:
    """Split notes into train/valid/test, per family, shuffled by ``seed``.

    Splitting each family separately gives every split a mix of all families (and,
    after the shuffle, of pitches and velocities).  Every split whose fraction is
    positive gets at least one note of a family with enough notes.
    """
    # NSynth's family order is fixed, so the rng stream is reproducible.
    out = split_by_class(notes, [n.instrument.family for n in notes], NSYNTH_FAMILIES, fractions, seed)
    return {s: sorted(v, key=lambda n: n.note_str) for s, v in out.items()}


def split_by_class(items: list, classes: list[str], order: tuple[str, ...] | list[str],
                   fractions: tuple[float, float, float], seed: int) -> dict[str, list]:
    """Split ``items`` (``classes[i]`` is item i's class) into train/valid/test, per class.

    Each class's items, in their given order, are shuffled with one rng seeded by
    ``seed`` (classes visited in ``order``) and cut by ``fractions`` (at least one
    valid and one test item of a class with 3 or more).  Deterministic.
    """
    rng = np.random.default_rng(seed)
    out: dict[str, list] = {s: [] for s in SPLITS}
    for cls in order:
        members = [item for item, c in zip(items, classes) if c == cls]
        if not members:
            continue
        perm = rng.permutation(len(members))
        start = 0
        for split, count in zip(SPLITS, _split_counts(len(members), fractions)):
            out[split] += [members[i] for i in perm[start:start + count]]
            start += count
    return out


def _split_counts(n: int, fractions: tuple[float, float, float]) -> list[int]:
    valid = round(n * fractions[1])
    test = round(n * fractions[2])
    # At least one valid/test note per family when there are enough notes to spare.
    if fractions[1] > 0 and valid == 0 and n >= 3:
        valid = 1
    if fractions[2] > 0 and test == 0 and n >= 3:
        test = 1
    valid = min(valid, n)
    test = min(test, n - valid)
    return [n - valid - test, valid, test]


def examples_json(notes: list[Note], note_ids: dict[str, int], sample_rate: int) -> dict:
    """NSynth's examples.json entries (same keys and types as the real download)."""
    out = {}
    for n in notes:
        inst = n.instrument
        out[n.note_str] = {
            "note": note_ids[n.note_str],
            "note_str": n.note_str,
            "pitch": n.pitch,
            "velocity": n.velocity,
            "sample_rate": sample_rate,
            "instrument": inst.program,  # unique per instrument, as NSynth's id
            "instrument_str": instrument_str(inst),
            "instrument_family": NSYNTH_FAMILIES.index(inst.family),
            "instrument_family_str": inst.family,
            "instrument_source": NSYNTH_SOURCES.index(inst.source),
            "instrument_source_str": inst.source,
            "qualities": [0] * N_QUALITIES,  # not annotated for synthetic notes
            "qualities_str": [],
        }
    return out
