"""The notebooks' exercises as a graded lab: statements in the notebooks, checks here.

An exercise lives in its notebook as a small run of cells::

    ### Exercise 2 · Cosine lookup            (markdown: the statement)
    *Cost: ≈ 3 min on 2 CPU cores (course): retrains a small tokenizer.*

    # %% tags=["solution"]                   (the worked solution; it sets the answer)
    ex02_1 = ...

    # %% [markdown] tags=["solution"]        (optional: what the solution shows)

    # %%                                     (the check, in every edition)
    lab.check("02.1", ex02_1, ...)

Exercise ``"NN.k"`` is the k-th exercise of notebook NN; its answer is always the
variable ``exNN_k``.  :func:`marslib.lab.edition.write_student_edition` drops
every cell tagged ``solution`` and leaves, in place of the solution's code, a stub
``exNN_k = None`` that says what to compute.  :func:`check` then tells a student
whether the answer is right, and why not: an unanswered exercise never passes.

Each notebook's checks live in ``marslib/lab/nbNN.py`` as :class:`Exercise` entries.
A check function takes the answer (and what the notebook passes as context) and
raises :class:`Wrong` with a hint, or returns a short message saying what was right.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

SOLUTION_TAG = "solution"
NOTEBOOK_MODULES = ("nb01", "nb02", "nb03", "nb04", "nb05", "nb06")
PASS, FAIL = "✓", "✗"


class Wrong(Exception):
    """Raised by a check function: the answer is wrong; the message says how, or hints."""


@dataclass(frozen=True)
class Exercise:
    """One checkable exercise.

    ``id``: ``"NN.k"`` (notebook NN, exercise k); ``expects``: what the answer is, as
    the student edition's stub states it (``"an int: the smallest n_fft that ..."``);
    ``check(answer, **context) -> str`` raises :class:`Wrong` or returns what was right.
    """
    id: str
    title: str
    expects: str
    check: Callable[..., str]

    @property
    def answer(self) -> str:
        """The variable the student sets: ``"02.1"`` -> ``ex02_1``."""
        notebook, k = self.id.split(".")
        return f"ex{notebook}_{k}"

    @property
    def notebook(self) -> str:
        return self.id.split(".")[0]


@dataclass(frozen=True)
class CheckResult:
    """What :func:`check` returns: truthy when the answer is right; shows as one line."""
    exercise: Exercise
    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        mark = PASS if self.passed else FAIL
        return f"{mark} Exercise {self.exercise.id} ({self.exercise.title}): {self.message}"


def exercises() -> dict[str, Exercise]:
    """Every exercise of every notebook, by id, in notebook order."""
    found: dict[str, Exercise] = {}
    for name in NOTEBOOK_MODULES:
        for ex in importlib.import_module(f"{__name__}.{name}").EXERCISES:
            if ex.id in found:
                raise ValueError(f"exercise {ex.id} is defined twice")
            if ex.notebook != name[2:]:
                raise ValueError(f"exercise {ex.id} is listed in marslib/lab/{name}.py")
            found[ex.id] = ex
    return found


def unanswered(answer: Any) -> bool:
    """The student edition's stub (``None``) or a bare ``...``."""
    return answer is None or answer is Ellipsis


def check(exercise_id: str, answer: Any, **context) -> CheckResult:
    """Judge ``answer`` to exercise ``exercise_id``; ``context`` is what the notebook knows
    (its config, its data) and the check needs.  Never raises for a wrong answer: it says so."""
    table = exercises()
    if exercise_id not in table:
        raise KeyError(f"no exercise {exercise_id!r}; known: {', '.join(table)}")
    ex = table[exercise_id]
    if unanswered(answer):
        return CheckResult(ex, False, f"not answered yet: set `{ex.answer}` to {ex.expects}")
    try:
        return CheckResult(ex, True, ex.check(answer, **context))
    except Wrong as err:
        return CheckResult(ex, False, f"not yet: {err}")
