"""The student edition of the notebooks, and the check outcomes of an executed notebook.

The notebooks in ``notebooks/`` are the instructor edition: they hold every worked
solution, in cells tagged ``solution``.  The student edition is the same notebooks
with those cells removed; each solution's code becomes a stub that names the answer
variable and what to put in it.  Checks stay, so a student runs them on their answer.
"""

from __future__ import annotations

import re
from pathlib import Path

from . import FAIL, PASS, SOLUTION_TAG, Exercise, exercises
from ..notebooks import NOTEBOOK_DIR, notebook_sources, paired_ipynb

STUDENT_NOTE = ("> **Student edition.** The worked solutions are removed: each exercise has a cell "
                "`exNN_k = None` for your answer and a check cell below it that tells you whether "
                "it is right. Run the notebook's cells above an exercise first.")
_CHECK_CALL = re.compile(r"""lab\.check\(\s*["'](\d\d\.\d+)["']""")


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def is_solution(cell) -> bool:
    return SOLUTION_TAG in _tags(cell)


def answered_in(cell, candidates: list[Exercise]) -> Exercise:
    """The exercise whose answer variable a solution code cell assigns (exactly one)."""
    hits = [ex for ex in candidates if re.search(rf"^{ex.answer}\s*=", cell.source, re.MULTILINE)]
    if len(hits) != 1:
        raise ValueError(f"a solution cell must assign exactly one answer variable; it assigns "
                         f"{[ex.answer for ex in hits] or 'none'}:\n{cell.source[:200]}")
    return hits[0]


def stub_source(ex: Exercise) -> str:
    return f"# Exercise {ex.id}: your code here.\n{ex.answer} = None  # {ex.expects}"


def student_notebook(nb):
    """A copy of notebook ``nb`` (nbformat) without solutions; stubs in place of solution code."""
    import copy

    import nbformat

    nb = copy.deepcopy(nb)
    stem_exercises = list(exercises().values())
    cells = [nbformat.v4.new_markdown_cell(STUDENT_NOTE)]
    for cell in nb.cells:
        if not is_solution(cell):
            cells.append(cell)
        elif cell.cell_type == "code":
            ex = answered_in(cell, stem_exercises)
            stub = nbformat.v4.new_code_cell(stub_source(ex))
            stub.metadata["tags"] = ["answer"]
            cells.append(stub)
    for i, cell in enumerate(cells):  # stable, unique ids after removing and adding cells
        cell.id = f"cell-{i:03d}"
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.cells = cells
    return nb


def write_student_edition(out_dir: str | Path, notebook_dir: Path = NOTEBOOK_DIR) -> list[Path]:
    """Write every notebook's student edition (``.ipynb`` and its ``py:percent`` twin) to ``out_dir``."""
    import jupytext

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for source in notebook_sources(notebook_dir):
        nb = student_notebook(jupytext.read(paired_ipynb(source)))
        for suffix, fmt in ((".ipynb", "ipynb"), (".py", "py:percent")):
            path = out_dir / f"{source.stem}{suffix}"
            jupytext.write(nb, path, fmt=fmt)
            written.append(path)
    return written


def check_outcomes(executed_ipynb: str | Path) -> dict[str, bool]:
    """``{exercise id: passed}`` for every check cell of an executed notebook, read from its output."""
    import nbformat

    nb = nbformat.read(str(executed_ipynb), as_version=4)
    outcomes = {}
    for cell in nb.cells:
        match = cell.cell_type == "code" and _CHECK_CALL.search(cell.source)
        if not match:
            continue
        text = "".join(o.get("data", {}).get("text/plain", "") + o.get("text", "") for o in cell.outputs)
        outcomes[match.group(1)] = text.lstrip().startswith(PASS) and FAIL not in text.split("\n")[0]
    return outcomes
