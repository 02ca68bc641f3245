"""The lab: every exercise has a statement with a cost, a worked solution and a check that can fail.

That every check *passes* on the instructor edition is asserted where the notebooks run
(``tests/test_notebooks.py`` reads each executed notebook's check outputs).
"""

import re

import jupytext
import pytest

from marslib import lab
from marslib.lab.edition import SOLUTION_TAG, answered_in, check_outcomes, is_solution, write_student_edition
from marslib.notebooks import notebook_sources, paired_ipynb

SOURCES = notebook_sources()
EXERCISES = lab.exercises()
HEADING = re.compile(r"^### Exercise (\d+) · (.+)$", re.MULTILINE)
COST = re.compile(r"\*Cost: [^*]+\*")


def _statements(nb) -> dict[str, str]:
    """``{"k": statement markdown}`` from a notebook's ``### Exercise k · title`` headings."""
    found = {}
    for cell in nb.cells:
        if cell.cell_type == "markdown" and not is_solution(cell):
            for match in HEADING.finditer(cell.source):
                found[match.group(1)] = cell.source
    return found


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.stem)
def test_each_exercise_has_statement_cost_solution_and_check(source):
    nb = jupytext.read(paired_ipynb(source))
    nn = source.stem[:2]
    statements = {f"{nn}.{k}": v for k, v in _statements(nb).items()}
    mine = {i: ex for i, ex in EXERCISES.items() if ex.notebook == nn}
    assert set(statements) == set(mine), "every '### Exercise k · title' heading needs a check in " \
                                         f"marslib/lab/nb{nn}.py, and every check a heading"
    assert mine, f"{source.name} has no exercises"
    for i, text in statements.items():
        assert COST.search(text), f"exercise {i}: the statement needs a '*Cost: ...*' label"
    solved = [answered_in(c, list(mine.values())).id for c in nb.cells if is_solution(c) and c.cell_type == "code"]
    assert sorted(solved) == sorted(mine), f"one solution code cell per exercise: {solved}"
    checked = [m.group(1) for c in nb.cells if c.cell_type == "code"
               for m in re.finditer(r"""lab\.check\(\s*["'](\d\d\.\d+)["']""", c.source)]
    assert sorted(checked) == sorted(mine), f"one check cell per exercise: {checked}"
    for c in nb.cells:  # the check cell is not a solution: the student edition keeps it
        if "lab.check(" in c.source:
            assert not is_solution(c)


def test_student_edition_has_no_solution_and_a_stub_per_exercise(tmp_path):
    written = write_student_edition(tmp_path)
    assert sorted(p.name for p in written) == sorted(f"{s.stem}{x}" for s in SOURCES for x in (".ipynb", ".py"))
    for source in SOURCES:
        teacher = jupytext.read(paired_ipynb(source))
        student = jupytext.read(tmp_path / f"{source.stem}.ipynb")
        assert not any(SOLUTION_TAG in c.metadata.get("tags", []) for c in student.cells)
        student_text = "\n".join(c.source for c in student.cells)
        for cell in (c for c in teacher.cells if is_solution(c)):
            for line in cell.source.splitlines():  # no line of substance of any solution survives
                line = line.strip()
                if len(line) > 24 and not line.startswith("#"):
                    assert line not in student_text, f"{source.name}: solution line kept: {line}"
        nn = source.stem[:2]
        for ex in (e for e in EXERCISES.values() if e.notebook == nn):
            assert f"{ex.answer} = None" in student_text
        py = (tmp_path / f"{source.stem}.py").read_text()
        assert "Student edition" in py and 'tags=["solution"]' not in py


@pytest.mark.parametrize("exercise_id", sorted(EXERCISES))
def test_every_check_fails_on_the_unanswered_stub(exercise_id):
    result = lab.check(exercise_id, None)
    assert not result and "not answered" in repr(result) and repr(result).startswith(lab.FAIL)


def test_check_names_unknown_exercises_and_shows_one_line():
    with pytest.raises(KeyError, match="no exercise"):
        lab.check("99.9", 1)
    ex = lab.Exercise("01.9", "demo", "an int", lambda a: "right")
    assert ex.answer == "ex01_9" and ex.notebook == "01"
    assert repr(lab.CheckResult(ex, True, "right")) == "✓ Exercise 01.9 (demo): right"
    assert not lab.CheckResult(ex, False, "not yet: too small")


def test_check_outcomes_read_from_an_executed_notebook(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    ok, bad = nbformat.v4.new_code_cell('lab.check("01.1", x)'), nbformat.v4.new_code_cell('lab.check("01.2", y)')
    ok.outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "✓ Exercise 01.1 (a): right"})]
    bad.outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "✗ Exercise 01.2 (b): not yet"})]
    nb.cells = [ok, bad]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, str(path))
    assert check_outcomes(path) == {"01.1": True, "01.2": False}
