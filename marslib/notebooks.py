"""Execute the course notebooks with papermill, and keep .py/.ipynb pairs in sync.

The ``py:percent`` file in ``notebooks/`` is the source of truth; its ``.ipynb``
twin is committed without outputs.  Executed copies go to the run directory::

    runs/<profile>/notebooks/01_stft_and_cmx.ipynb      executed notebook
    runs/<profile>/01_stft_and_cmx/results.json          numbers it computed
    runs/<profile>/01_stft_and_cmx/*.png                 figures it drew

Every notebook takes the same papermill parameters: ``profile``, ``seed``,
``device``, ``data_dir``, ``out_dir`` and ``overrides`` (config overrides as a JSON
object string, e.g. ``'{"ar.cfg_scale": 4.0}'``); each records the overrides, the
config they resolved to and the run's provenance (the notebook, these parameters, the
command that launched it, git commit, versions, device) under ``"run"`` in its ``results.json``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = REPO_ROOT / "notebooks"


def notebook_sources(notebook_dir: Path = NOTEBOOK_DIR) -> list[Path]:
    """The ``NN_name.py`` notebook sources, in teaching order."""
    return sorted(p for p in notebook_dir.glob("[0-9][0-9]_*.py"))


def paired_ipynb(source: Path) -> Path:
    return source.with_suffix(".ipynb")


def _cells(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def pair_in_sync(source: Path) -> bool:
    """True if ``source`` (.py) and its .ipynb hold the same cells (ignoring outputs)."""
    import jupytext

    ipynb = paired_ipynb(source)
    if not ipynb.exists():
        return False
    return _cells(jupytext.read(source)) == _cells(jupytext.read(ipynb))


def sync_pair(source: Path) -> Path:
    """Rewrite the .ipynb from the .py source (no outputs).  Returns the .ipynb path."""
    import jupytext

    nb = jupytext.read(source)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for i, cell in enumerate(nb.cells):  # stable ids: re-syncing an unchanged notebook changes nothing
        cell.id = f"cell-{i:03d}"
    ipynb = paired_ipynb(source)
    jupytext.write(nb, ipynb)
    return ipynb


def execute_notebook(source: Path, profile: str, out_dir: Path, data_dir: Path | None = None,
                     seed: int = 0, device: str = "cpu", timeout: int = 3600,
                     overrides: dict | None = None) -> dict:
    """Run one notebook with papermill; return the ``results.json`` it wrote.

    ``overrides`` (dotted config keys -> values, as ``get_config`` takes them) reach
    the notebook's config through its ``overrides`` parameter.

    Raises ``RuntimeError`` naming the notebook if it fails or writes no results.
    """
    import papermill as pm

    from .provenance import LAUNCHED_BY

    out_dir = Path(out_dir).resolve()
    executed = out_dir / "notebooks" / paired_ipynb(source).name
    executed.parent.mkdir(parents=True, exist_ok=True)
    params = {"profile": profile, "seed": seed, "device": device, "out_dir": str(out_dir),
              "data_dir": str(Path(data_dir).resolve()) if data_dir else "",
              "overrides": json.dumps(overrides or {})}
    # The kernel inherits the environment: its results record this command as what launched it.
    before = os.environ.get(LAUNCHED_BY)
    os.environ[LAUNCHED_BY] = json.dumps(sys.argv)
    try:
        pm.execute_notebook(str(paired_ipynb(source)), str(executed), parameters=params,
                            kernel_name="python3", cwd=str(source.parent), progress_bar=False,
                            execution_timeout=timeout)
    except pm.PapermillExecutionError as err:
        raise RuntimeError(f"notebook {source.name} failed in cell {err.exec_count}: "
                           f"{err.ename}: {err.evalue}\n(executed copy: {executed})") from err
    finally:
        if before is None:
            os.environ.pop(LAUNCHED_BY, None)
        else:
            os.environ[LAUNCHED_BY] = before
    results = out_dir / source.stem / "results.json"
    if not results.exists():
        raise RuntimeError(f"notebook {source.name} ran but wrote no {results}")
    return json.loads(results.read_text())
