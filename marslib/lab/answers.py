"""Reading a student's answer: the small checks every exercise's check function shares.

Each raises :class:`~marslib.lab.Wrong` with a message a student can act on.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from . import Wrong


def fields(answer: Any, keys) -> Mapping:
    """``answer`` itself, if it is a dict holding every key of ``keys``."""
    if not isinstance(answer, Mapping):
        raise Wrong(f"the answer is a dict with keys {list(keys)}, not a {type(answer).__name__}")
    missing = [k for k in keys if k not in answer]
    if missing:
        raise Wrong(f"the dict lacks {missing}; it needs {list(keys)}")
    return answer


def close(name: str, got: Any, want: float, rel: float = 0.02, abs_: float = 1e-3) -> None:
    """``got`` is a number within ``rel`` (relative) or ``abs_`` (absolute) of the recomputed ``want``."""
    try:
        got = float(got)
    except (TypeError, ValueError):
        raise Wrong(f"{name} should be a number, got {got!r}") from None
    if not math.isclose(got, want, rel_tol=rel, abs_tol=abs_):
        raise Wrong(f"{name} = {got:.4g}, but recomputing it gives {want:.4g}")
