"""Show library code inside a notebook, Annotated-Transformer style.

The notebooks teach by running ``marslib`` and showing the code that ran, never a
copy of it that could drift.  :func:`show` displays the source of a function,
method or class, whole or a slice of it, as highlighted Python with a caption
naming its file and lines; the notebook's next cell explains exactly those lines::

    from marslib.source import show
    show(AdaLNBlock.forward)                          # the whole method
    show(train, lines=("for step, batch", "scheduler.step()"))   # the core of the loop

A slice is given by its first and last line, each either a 1-based line number
within the object's source or a piece of text that line contains (text survives
edits to the code above it; numbers do not).  Defined in notebook 02.
"""

from __future__ import annotations

import inspect
import textwrap
from dataclasses import dataclass
from pathlib import Path

LineRef = int | str

_REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Source:
    """A slice of a source file: ``code`` spans lines ``first..last`` of ``path`` (1-based)."""

    name: str
    path: str
    first: int
    last: int
    code: str
    elided_before: bool = False
    elided_after: bool = False

    @property
    def caption(self) -> str:
        return f"`{self.name}`: {self.path}, lines {self.first}–{self.last}"

    def _repr_markdown_(self) -> str:
        body = ("# ...\n" if self.elided_before else "") + self.code + ("\n# ..." if self.elided_after else "")
        return f"{self.caption}\n\n```python\n{body}\n```"

    def __repr__(self) -> str:  # what plain-text viewers of an executed notebook see
        return f"{self.name}: {self.path}, lines {self.first}-{self.last}\n{self.code}"


def _find(lines: list[str], ref: LineRef, start: int, name: str) -> int:
    """0-based index of line ``ref`` (1-based number, or the first line at or after ``start`` containing text)."""
    if isinstance(ref, int):
        if not 1 <= ref <= len(lines):
            raise ValueError(f"line {ref} is outside {name}'s {len(lines)} lines")
        return ref - 1
    for i in range(start, len(lines)):
        if ref in lines[i]:
            return i
    raise ValueError(f"no line of {name} (from line {start + 1} on) contains {ref!r}")


def source(obj, lines: tuple[LineRef, LineRef] | None = None) -> Source:
    """The source of ``obj`` (function, method, class), or lines ``(first, last)`` of it, inclusive.

    The slice is dedented so that it reads as code; ``Source.first``/``last`` are
    line numbers in the file, so a reader can find the lines in their context.

    Raises:
        ValueError: if a line number is out of range, no line contains a text
            reference, or ``last`` comes before ``first``.
    """
    name = getattr(obj, "__qualname__", getattr(obj, "__name__", repr(obj)))
    src_lines, start_line = inspect.getsourcelines(obj)
    src_lines = [line.rstrip("\n") for line in src_lines]
    path = Path(inspect.getsourcefile(inspect.unwrap(obj))).resolve()  # a decorator's file is not the code's
    shown = path.relative_to(_REPO_ROOT).as_posix() if path.is_relative_to(_REPO_ROOT) else path.name
    i, j = 0, len(src_lines) - 1
    if lines is not None:
        i = _find(src_lines, lines[0], 0, name)
        j = _find(src_lines, lines[1], i, name)
        if j < i:
            raise ValueError(f"last line {lines[1]!r} comes before first line {lines[0]!r} in {name}")
    code = textwrap.dedent("\n".join(src_lines[i:j + 1]))
    return Source(name, shown, start_line + i, start_line + j, code, elided_before=i > 0,
                  elided_after=j < len(src_lines) - 1)


def show(obj, lines: tuple[LineRef, LineRef] | None = None) -> None:
    """Display :func:`source` ``(obj, lines)`` as highlighted code in a notebook.

    Returns nothing, so that a cell ending in ``show(...)`` displays the code once.
    """
    from IPython.display import display

    display(source(obj, lines))
