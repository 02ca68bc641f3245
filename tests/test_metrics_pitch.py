import numpy as np
import pytest
from conftest import harmonic_note

from marslib.data.render import render_note
from marslib.metrics import pitch_accuracy


def test_right_wrong_and_octave_pitches():
    sr = 16000
    a3 = harmonic_note(220.0, sr, seconds=0.6)         # MIDI 57
    waves = np.stack([a3, a3, a3])
    result = pitch_accuracy(waves, sr, [57, 59, 69])      # right, 2 semitones off, one octave off
    assert result["cents"][0] == pytest.approx(0, abs=15)
    assert result["accuracy"] == pytest.approx(1 / 3)
    assert result["octave_errors"] == pytest.approx(1 / 3)


def test_rendered_note_and_bad_input():
    wave = render_note(40, 64, 100, seconds=0.6, note_seconds=0.5)  # violin, E4
    assert pitch_accuracy(wave[None], 16000, 64)["accuracy"] == 1.0
    with pytest.raises(ValueError, match="NaN"):
        pitch_accuracy(np.full((1, 1000), np.nan), 16000, 60)
    with pytest.raises(ValueError, match=r"\(B, N\)"):
        pitch_accuracy(np.zeros(1000), 16000, 60)
