"""NSynth instrument families -> General-MIDI programs of the ``TimGM6mb.sf2`` soundfont.

Our default dataset is a synthetic *mini-NSynth*: single notes rendered offline
from the small General-MIDI soundfont that ships inside the ``pretty_midi``
package (no download).  Each NSynth family is played by a few GM programs; the
first ``cfg.data.programs_per_family`` of each tuple are rendered, so the order
matters (the first two differ in timbre or source so even ``smoke`` sees variety).

``source`` follows NSynth: *acoustic* (a recorded acoustic instrument),
*electronic* (an electric/electronic instrument: electric bass, e-piano,
drawbar organ) and *synthetic* (a synthesiser).  ``pitch_min``/``pitch_max``
are the real instrument's playable range (concert pitch, MIDI numbers), so a
cello never plays a piccolo's notes.  Defined in notebook 01.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Instrument:
    """One GM program standing in for an NSynth instrument."""

    program: int      # GM program, 0-based (0 = Acoustic Grand Piano)
    name: str         # GM instrument name
    family: str       # one of NSYNTH_FAMILIES
    source: str       # one of NSYNTH_SOURCES
    pitch_min: int    # lowest playable MIDI pitch (concert), inclusive
    pitch_max: int    # highest playable MIDI pitch (concert), inclusive

    def plays(self, pitch: int) -> bool:
        """True if ``pitch`` is inside the instrument's playable range."""
        return self.pitch_min <= pitch <= self.pitch_max


_I = Instrument
FAMILY_INSTRUMENTS: dict[str, tuple[Instrument, ...]] = {
    "bass": (
        _I(32, "Acoustic Bass", "bass", "acoustic", 28, 67),       # double bass E1-G4
        _I(38, "Synth Bass 1", "bass", "synthetic", 24, 72),       # C1-C5
        _I(33, "Electric Bass (finger)", "bass", "electronic", 28, 67),  # 4 strings, 24 frets
    ),
    "brass": (
        _I(56, "Trumpet", "brass", "acoustic", 52, 84),            # E3-C6
        _I(62, "Synth Brass 1", "brass", "synthetic", 36, 96),     # 61-key synth C2-C7
        _I(57, "Trombone", "brass", "acoustic", 40, 77),           # E2-F5
    ),
    "flute": (
        _I(73, "Flute", "flute", "acoustic", 60, 96),              # C4-C7
        _I(75, "Pan Flute", "flute", "acoustic", 60, 91),          # C4-G6
        _I(74, "Recorder", "flute", "acoustic", 65, 91),           # alto recorder F4-G6
    ),
    "guitar": (
        _I(24, "Acoustic Guitar (nylon)", "guitar", "acoustic", 40, 83),   # E2-B5, 19 frets
        _I(27, "Electric Guitar (clean)", "guitar", "electronic", 40, 86),  # E2-D6, 22 frets
        _I(25, "Acoustic Guitar (steel)", "guitar", "acoustic", 40, 84),   # E2-C6, 20 frets
    ),
    "keyboard": (
        _I(0, "Acoustic Grand Piano", "keyboard", "acoustic", 21, 108),  # A0-C8
        _I(4, "Electric Piano 1", "keyboard", "electronic", 28, 100),    # 73-key Rhodes E1-E7
        _I(6, "Harpsichord", "keyboard", "acoustic", 29, 89),            # F1-F6
    ),
    "mallet": (
        _I(12, "Marimba", "mallet", "acoustic", 45, 96),           # 4.3 octaves A2-C7
        _I(11, "Vibraphone", "mallet", "acoustic", 53, 89),        # F3-F6
        _I(13, "Xylophone", "mallet", "acoustic", 65, 108),        # sounds F4-C8
    ),
    "organ": (
        _I(20, "Reed Organ", "organ", "acoustic", 36, 96),         # harmonium C2-C7
        # The two below sound a 16' (sub-octave) stop as loud as the 8' one, as real
        # drawbar and pipe organs do: their lowest partial is an octave below the key.
        _I(16, "Drawbar Organ", "organ", "electronic", 36, 96),    # 61-key manual C2-C7
        _I(19, "Church Organ", "organ", "acoustic", 36, 96),       # pipe organ manual C2-C7
    ),
    "reed": (
        # Tenor, not alto: TimGM6mb's alto sax renders silence at E4 (MIDI 64).
        _I(66, "Tenor Sax", "reed", "acoustic", 44, 76),           # Ab2-E5
        _I(71, "Clarinet", "reed", "acoustic", 50, 94),            # Bb clarinet D3-Bb6
        _I(70, "Bassoon", "reed", "acoustic", 34, 75),             # Bb1-Eb5
    ),
    "string": (
        _I(40, "Violin", "string", "acoustic", 55, 100),           # G3-E7
        _I(42, "Cello", "string", "acoustic", 36, 81),             # C2-A5
        _I(41, "Viola", "string", "acoustic", 48, 88),             # C3-E6
    ),
    "synth_lead": (
        _I(80, "Lead 1 (square)", "synth_lead", "synthetic", 36, 96),   # 61-key synth C2-C7
        _I(81, "Lead 2 (sawtooth)", "synth_lead", "synthetic", 36, 96),
        _I(87, "Lead 8 (bass + lead)", "synth_lead", "synthetic", 36, 96),
    ),
    "vocal": (
        _I(52, "Choir Aahs", "vocal", "acoustic", 40, 81),         # bass E2 to soprano A5
        _I(54, "Synth Voice", "vocal", "synthetic", 36, 91),       # soundfont zone ends at G6
        _I(53, "Voice Oohs", "vocal", "acoustic", 40, 81),
    ),
}
del _I


def instrument_for_program(program: int) -> Instrument:
    """The :class:`Instrument` mapped to a GM ``program`` (ValueError if none is)."""
    for insts in FAMILY_INSTRUMENTS.values():
        for inst in insts:
            if inst.program == program:
                return inst
    raise ValueError(f"GM program {program} is not in FAMILY_INSTRUMENTS")


def instrument_str(inst: Instrument) -> str:
    """NSynth-style instrument name ``<family>_<source>_<nnn>``, e.g. ``keyboard_acoustic_000``.

    ``nnn`` counts instruments of the same family and source in table order, so the
    names do not depend on how many programs a profile renders.
    """
    same = [i for i in FAMILY_INSTRUMENTS[inst.family] if i.source == inst.source]
    return f"{inst.family}_{inst.source}_{same.index(inst):03d}"


def soundfont_path() -> Path:
    """Path of ``TimGM6mb.sf2`` inside the installed ``pretty_midi`` package."""
    try:
        import pretty_midi
    except ImportError as err:
        raise FileNotFoundError("the TimGM6mb.sf2 soundfont ships with pretty_midi, which is not "
                                "installed: pip install pretty_midi") from err
    path = Path(os.path.dirname(pretty_midi.__file__)) / "TimGM6mb.sf2"
    if not path.is_file():
        raise FileNotFoundError(f"soundfont not found at {path}; reinstall pretty_midi "
                                f"(pip install --force-reinstall pretty_midi), which ships it")
    return path
