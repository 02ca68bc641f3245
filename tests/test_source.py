"""marslib.source: the code a notebook shows is the code that runs, sliced by line or by text."""

import inspect

import pytest

from marslib.source import source
from marslib.train import lr_factor


def test_whole_object_names_its_file_and_lines():
    s = source(lr_factor)
    lines, start = inspect.getsourcelines(lr_factor)
    assert s.path == "marslib/train.py" and (s.first, s.last) == (start, start + len(lines) - 1)
    assert s.code.startswith("def lr_factor(") and not (s.elided_before or s.elided_after)
    assert s._repr_markdown_().startswith("`lr_factor`: marslib/train.py, lines")


def test_slice_by_text_and_by_number_is_dedented_and_marked_elided():
    lines, start = inspect.getsourcelines(lr_factor)
    by_number = source(lr_factor, (2, 3))
    assert by_number.first == start + 1 and by_number.last == start + 2
    assert by_number.elided_before and by_number.elided_after
    assert by_number.code.splitlines()[0] == lines[1].strip()     # dedented: reads as code
    by_text = source(lr_factor, ("def lr_factor", "def lr_factor"))
    assert by_text.code.startswith("def lr_factor(") and by_text.last == by_text.first == start


def test_bad_slices_are_clear_errors():
    with pytest.raises(ValueError, match="outside"):
        source(lr_factor, (1, 10_000))
    with pytest.raises(ValueError, match="contains"):
        source(lr_factor, ("def lr_factor", "no such text anywhere"))
