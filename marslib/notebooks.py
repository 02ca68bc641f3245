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
import threading
import time
import uuid
from pathlib import Path
from typing import TextIO

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


def local_kernel_manager():
    """The kernel manager class :func:`execute_notebook` gives papermill: a kernel on this machine
    that talks to us over Unix sockets (IPC), not TCP.

    Over TCP, ipykernel warns on every start that the traffic is unencrypted, because anyone on
    the machine could connect to its ports; IPC sockets are files readable by us alone, which is
    the remedy the warning itself names.  The sockets sit beside the connection file in Jupyter's
    runtime folder and go with it when the kernel shuts down.  Windows has no IPC transport: TCP there.
    """
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.paths import jupyter_runtime_dir
    from traitlets import default

    class LocalKernelManager(AsyncKernelManager):
        @default("transport")
        def _transport_default(self) -> str:
            return "tcp" if os.name == "nt" else "ipc"

        @default("connection_file")
        def _connection_file_default(self) -> str:
            # Absolute, so that the sockets' paths (derived from it) mean the same to the kernel,
            # which runs in notebooks/, and to us.
            runtime = Path(jupyter_runtime_dir())
            runtime.mkdir(parents=True, exist_ok=True)
            return str(runtime / f"kernel-{uuid.uuid4()}.json")

    return LocalKernelManager


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}" if minutes >= 60 else f"{minutes}:{secs:02d}"


class NotebookProgress:
    """Cells done / total and elapsed time of one executing notebook, fed by nbclient's cell hooks.

    On a terminal one line is rewritten in place (``\\r``) every second, so the clock keeps
    running through a long training cell.  Elsewhere (a CI log, a file) a line is printed when a
    section (a ``## `` heading) starts, and after ``every`` seconds without one.  :meth:`close`
    ends with one summary line::

        02_tokenizer  [37/81 cells]  4:12 elapsed  · 4. Training
        02_tokenizer  done: 81 cells in 31:40
    """

    def __init__(self, name: str, total: int, stream: TextIO | None = None, every: float = 30.0) -> None:
        self.name, self.total, self.every = name, total, every
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.done, self.section, self._width = 0, "", 0
        self.start = self.last_shown = time.monotonic()
        self._lock = threading.Lock()  # the hooks (papermill's thread) and the clock's thread both write
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._run_clock, daemon=True)
        self._ticker.start()

    def line(self) -> str:
        section = f"  · {self.section}" if self.section else ""
        return f"{self.name}  [{self.done}/{self.total} cells]  {_clock(time.monotonic() - self.start)} elapsed{section}"

    def _write(self, text: str, end: str = "") -> None:
        with self._lock:
            if self.tty:  # padded: a shorter line must cover the longer one it replaces
                self.stream.write("\r" + text.ljust(self._width) + end)
                self._width = len(text)
            else:
                self.stream.write(text + "\n")
            self.stream.flush()
            self.last_shown = time.monotonic()

    def _run_clock(self) -> None:
        while not self._stop.wait(1.0 if self.tty else min(self.every, 5.0)):
            if self.tty or time.monotonic() - self.last_shown >= self.every:
                self._write(self.line())

    def on_cell_start(self, cell, cell_index: int) -> None:
        """nbclient hook, before every cell: a markdown ``## heading`` opens a section."""
        if cell.cell_type == "markdown" and cell.source.startswith("## "):
            self.section = cell.source.splitlines()[0][3:].strip()
            if not self.tty:
                self._write(self.line())

    def on_cell_executed(self, cell, cell_index: int, execute_reply) -> None:
        """nbclient hook, after each code cell has run (failed or not)."""
        self.done += 1
        if self.tty:
            self._write(self.line())

    def close(self, ok: bool = True, where: Path | None = None) -> str:
        """Stop the clock and print the summary line (``-> where`` the results are); returns it."""
        self._stop.set()
        self._ticker.join()
        elapsed = _clock(time.monotonic() - self.start)
        summary = (f"{self.name}  done: {self.total} cells in {elapsed}" if ok else
                   f"{self.name}  failed in cell {self.done} of {self.total} after {elapsed}")
        summary += f" -> {where}" if where and ok else ""
        self._write(summary, end="\n")
        return summary


EXERCISES_HEADING = "## Exercises"   # every notebook ends with its exercises (marslib.lab)
SKIP_TAG = "skip-execution"           # nbclient leaves a code cell with this tag unexecuted


def code_cells(nb) -> int:
    """Code cells nbclient will execute in ``nb`` (it skips empty ones and those tagged :data:`SKIP_TAG`)."""
    return sum(1 for c in nb.cells if c.cell_type == "code" and c.source.strip()
               and SKIP_TAG not in c.metadata.get("tags", []))


def skip_exercises(nb):
    """Tag every code cell from the ``## Exercises`` heading on with :data:`SKIP_TAG` (in place).

    A reproduction runs the lesson, not the lab: the worked solutions retrain models (minutes
    in course) and are run by the lab's students and by the tests (smoke).  The executed copy
    still shows the exercises, without outputs.  Returns ``nb``.
    """
    start = next((i for i, c in enumerate(nb.cells)
                  if c.cell_type == "markdown" and c.source.lstrip().startswith(EXERCISES_HEADING)), len(nb.cells))
    for cell in nb.cells[start:]:
        if cell.cell_type == "code":
            cell.metadata["tags"] = [*cell.metadata.get("tags", []), SKIP_TAG]
    return nb


def execute_notebook(source: Path, profile: str, out_dir: Path, data_dir: Path | None = None,
                     seed: int = 0, device: str = "cpu", timeout: int = 3600,
                     overrides: dict | None = None, progress: bool = False, exercises: bool = False) -> dict:
    """Run one notebook with papermill; return the ``results.json`` it wrote.

    ``exercises``: also run the exercises' worked solutions and checks (the tests do, in
    smoke); otherwise they are left unexecuted (:func:`skip_exercises`).
    ``overrides`` (dotted config keys -> values, as ``get_config`` takes them) reach
    the notebook's config through its ``overrides`` parameter.  ``progress`` prints
    cells done and time elapsed as it runs, then a summary line (:class:`NotebookProgress`).
    The kernel runs over IPC (:func:`local_kernel_manager`).

    Raises ``RuntimeError`` naming the notebook if it fails or writes no results.
    """
    import nbformat
    import papermill as pm

    from .provenance import LAUNCHED_BY

    out_dir = Path(out_dir).resolve()
    executed = out_dir / "notebooks" / paired_ipynb(source).name
    executed.parent.mkdir(parents=True, exist_ok=True)
    params = {"profile": profile, "seed": seed, "device": device, "out_dir": str(out_dir),
              "data_dir": str(Path(data_dir).resolve()) if data_dir else "",
              "overrides": json.dumps(overrides or {})}
    nb = nbformat.read(paired_ipynb(source), as_version=4)
    if not exercises:
        skip_exercises(nb)
    hooks = {}
    if progress:  # + 1: the cell of parameters papermill injects
        bar = NotebookProgress(source.stem, code_cells(nb) + 1)
        hooks = {"on_cell_start": bar.on_cell_start, "on_cell_executed": bar.on_cell_executed}
    # The kernel inherits the environment: its results record this command as what launched it.
    before = os.environ.get(LAUNCHED_BY)
    os.environ[LAUNCHED_BY] = json.dumps(sys.argv)
    ok = False
    try:
        pm.execute_notebook(nb, str(executed), parameters=params,
                            kernel_name="python3", cwd=str(source.parent), progress_bar=False,
                            execution_timeout=timeout, kernel_manager_class=local_kernel_manager(), **hooks)
        ok = True
    except pm.PapermillExecutionError as err:
        raise RuntimeError(f"notebook {source.name} failed in cell {err.exec_count}: "
                           f"{err.ename}: {err.evalue}\n(executed copy: {executed})") from err
    finally:
        if progress:
            bar.close(ok, out_dir / source.stem)
        if before is None:
            os.environ.pop(LAUNCHED_BY, None)
        else:
            os.environ[LAUNCHED_BY] = before
    results = out_dir / source.stem / "results.json"
    if not results.exists():
        raise RuntimeError(f"notebook {source.name} ran but wrote no {results}")
    return json.loads(results.read_text())
