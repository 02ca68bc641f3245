"""In a real browser: notebook 01 in JupyterLab (run all, move the explorer's slider) and the static book.

Chromium is the system's (Debian's ``chromium`` package, which .ci/run installs), driven by
playwright's Python package through ``executable_path``; ``playwright install`` (a browser
download) is never needed.  Without chromium or playwright these tests skip, except in CI
(``CI`` set), where they fail.  Screenshots go to ``$MARS_ARTEFACTS/browser/`` (CI sets it to
``artefacts/``), else to pytest's temporary folder.

Nothing is written into the repository: JupyterLab serves a copy of the notebook, given
papermill-style parameters that send its outputs under ``tmp_path``, and keeps its
settings, workspaces and runtime files there too.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from marslib.notebooks import NOTEBOOK_DIR, REPO_ROOT

pytestmark = pytest.mark.slow

NOTEBOOK = "01_stft_and_cmx"


def _chromium() -> str:
    """The system Chromium's path, and playwright importable; else skip (outside CI) or fail (in CI)."""
    names = ("chromium", "chromium-browser", "google-chrome")  # Debian's; Ubuntu's; GitHub's runners have both
    path = os.environ.get("MARS_CHROMIUM") or next(filter(None, map(shutil.which, names)), None)
    problem = None
    if path is None:
        problem = "no chromium on PATH (apt-get install chromium, or set MARS_CHROMIUM)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "playwright is not installed: pip install -e '.[test]'"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    return path


@pytest.fixture
def browser():
    path = _chromium()  # skips or fails first, so a missing playwright is reported, not raised
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # --no-sandbox: CI containers run as root, where Chromium's sandbox cannot start
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("MARS_ARTEFACTS") or tmp_path).resolve() / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> dict | list:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def _parameterised_copy(folder: Path, run: Path) -> Path:
    """Notebook 01's .ipynb in ``folder``, with papermill's injected-parameters cell pointing its
    outputs into ``run`` (as ``mars reproduce`` does), so running it from Lab writes nowhere else."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    nb = load_notebook_node(str(NOTEBOOK_DIR / f"{NOTEBOOK}.ipynb"))
    nb = parameterize_notebook(nb, {"profile": "smoke", "out_dir": str(run / "out"),
                                    "data_dir": str(run / "data")})
    nb.metadata.pop("jupytext", None)  # no paired .py beside the copy for jupytext to look for
    folder.mkdir(parents=True)
    path = folder / f"{NOTEBOOK}.ipynb"
    nbformat.write(nb, path)
    return path


class JupyterLab:
    """A JupyterLab server on a free localhost port, with a token, everything it keeps under ``home``."""

    def __init__(self, root: Path, home: Path):
        self.port, self.token = _free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        settings = home / "config" / "lab" / "user-settings" / "@jupyterlab"
        for plugin, values in {"notebook-extension/tracker": {"windowingMode": "none"},  # every cell in the DOM
                               "apputils-extension/notification": {"fetchNews": "false"}}.items():  # no pop-up
            (settings / f"{plugin}.jupyterlab-settings").parent.mkdir(parents=True, exist_ok=True)
            (settings / f"{plugin}.jupyterlab-settings").write_text(json.dumps(values))
        env = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
               "JUPYTER_DATA_DIR": str(home / "data"), "IPYTHONDIR": str(home / "ipython"),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
        env.pop("MARS_PROFILE", None)  # the notebook's default profile: smoke
        self.log = (home / "server.log").open("w")
        # Started the way a student starts it, `make lab`, on a copy of the notebooks: the
        # Makefile's target is what this test checks (its own process group, so that stop()
        # reaches the server under make).
        lab_args = ["--no-browser", "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={self.token}",
                    "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        self.process = subprocess.Popen(
            ["make", "-s", "-C", str(REPO_ROOT), "lab", f"PORT={self.port}", f"LAB_DIR={root}",
             f"LAB_ARGS={' '.join(lab_args)}"],
            cwd=root, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.home = home

    def api(self, path: str):
        return _get(f"{self.url}/api/{path}?token={self.token}")

    def wait_until_up(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"JupyterLab exited:\n{self.log_tail()}"
            try:
                self.api("status")
                return
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"JupyterLab did not answer in {timeout} s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        self.log.flush()
        return (self.home / "server.log").read_text()[-3000:]

    def stop(self) -> None:
        group = os.getpgid(self.process.pid)
        os.killpg(group, signal.SIGTERM)  # make and the server; the server shuts its kernels down
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(group, signal.SIGKILL)
            self.process.wait()
        self.log.close()


def _wait_for_one_idle_kernel(page, lab: JupyterLab, timeout: float = 120) -> str:
    """Wait until the notebook's kernel is up and settled: one kernel, idle, the same one for 3 s
    (Lab may replace the first kernel it starts while it opens the notebook).  Returns its id."""
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=timeout * 1000)
    deadline, seen, since = time.monotonic() + timeout, None, time.monotonic()
    while time.monotonic() < deadline:
        kernels = lab.api("kernels")
        now = kernels[0]["id"] if len(kernels) == 1 and kernels[0]["execution_state"] == "idle" else None
        if now != seen:
            seen, since = now, time.monotonic()
        elif now and time.monotonic() - since >= 3:
            return now
        time.sleep(0.5)
    raise AssertionError(f"no settled idle kernel in {timeout} s: {lab.api('kernels')}\n{lab.log_tail()}")


PROMPTS = """() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt')]
                   .map(e => e.textContent.trim())"""


def _wait_for_run_all(page, lab: JupyterLab, kernel: str, timeout: float = 300) -> list[str]:
    """Wait until every code cell shows an execution count and the kernel is idle; fail on a
    traceback or if the kernel is no longer the one the cells were sent to."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kernels = lab.api("kernels")
        assert [k["id"] for k in kernels] == [kernel], f"the kernel changed: {kernels}\n{lab.log_tail()}"
        prompts = page.evaluate(PROMPTS)
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
                              has_text="Traceback")
        if errors.count():
            raise AssertionError("a cell failed:\n" + errors.first.inner_text()[-2000:])
        done = prompts and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts)
        if done and kernels[0]["execution_state"] == "idle":
            return prompts
        time.sleep(1)
    raise AssertionError(f"Run All did not finish in {timeout} s; prompts {prompts}\n{lab.log_tail()}")


def test_jupyterlab_runs_notebook_01_and_its_explorer_reacts_to_the_slider(browser, shots, tmp_path,
                                                                             repo_untouched):
    if not (REPO_ROOT / ".venv" / ".installed").exists():  # `make lab` serves from the project's venv
        problem = "no project venv: run `make setup` first (the test starts JupyterLab with `make lab`)"
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    root = tmp_path / "notebooks"
    _parameterised_copy(root, tmp_path / "run")
    pair = root / "pair"  # the repository's pair, to check that Lab (jupytext) opens the .py as a notebook
    pair.mkdir()
    for suffix in (".py", ".ipynb"):
        shutil.copy(NOTEBOOK_DIR / f"{NOTEBOOK}{suffix}", pair)
    lab = JupyterLab(root, tmp_path / "jupyter")
    try:
        lab.wait_until_up()
        as_notebook = _get(f"{lab.url}/api/contents/pair/{NOTEBOOK}.py?type=notebook&token={lab.token}")
        assert as_notebook["type"] == "notebook"
        assert len(as_notebook["content"]["cells"]) == len(nbformat.read(pair / f"{NOTEBOOK}.ipynb", 4).cells)
        extensions = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"],
                                    capture_output=True, text=True, timeout=60)
        listed = extensions.stdout + extensions.stderr
        assert "@jupyter-widgets/jupyterlab-manager" in listed and "jupyterlab-jupytext" in listed, listed

        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{lab.url}/lab/tree/{NOTEBOOK}.ipynb?token={lab.token}")
        page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=90_000)
        kernel = _wait_for_one_idle_kernel(page, lab)
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        prompts = _wait_for_run_all(page, lab, kernel)
        assert len(prompts) == sum(c.cell_type == "code" for c in nbformat.read(root / f"{NOTEBOOK}.ipynb", 4).cells)
        assert (tmp_path / "run" / "out" / NOTEBOOK / "results.json").exists()  # it ran here, not in runs/

        explorer = page.locator(".jp-OutputArea-output .widget-vbox").filter(
            has=page.locator(".widget-slider", has_text="n_fft")).first
        explorer.scroll_into_view_if_needed()
        slider = explorer.locator(".widget-slider", has_text="n_fft")
        picture = explorer.locator(".widget-image")
        assert explorer.locator("audio").count() >= 1  # the Griffin-Lim reconstruction's player
        info = explorer.locator(".widget-html", has_text="spectrogram (F, T)")
        before_value, before_info = slider.locator(".widget-readout").inner_text(), info.inner_text()
        before = picture.screenshot(path=str(shots / "lab_explorer_before.png"))
        page.screenshot(path=str(shots / "lab_notebook_run.png"))

        slider.locator(".noUi-handle").focus()
        page.keyboard.press("ArrowRight")  # n_fft: the next option up
        deadline = time.monotonic() + 60
        while slider.locator(".widget-readout").inner_text() == before_value or picture.screenshot() == before:
            assert time.monotonic() < deadline, "the explorer's picture did not change after the slider moved"
            time.sleep(0.5)
        after_value = slider.locator(".widget-readout").inner_text()
        assert int(after_value) > int(before_value), (before_value, after_value)
        page.wait_for_timeout(500)  # let the kernel's last redraw land before the screenshot
        after = picture.screenshot(path=str(shots / "lab_explorer_after.png"))
        assert after != before
        assert info.inner_text() != before_info and f"= ({int(after_value) // 2}, " in info.inner_text()  # F = n_fft / 2
        explorer.screenshot(path=str(shots / "lab_explorer_widget.png"))
    finally:
        lab.stop()


def test_the_book_of_a_smoke_run_renders_in_chromium(browser, shots, tmp_path, repo_untouched):
    from marslib.book import build_book
    from marslib.notebooks import execute_notebook, notebook_sources

    run = tmp_path / "run"
    execute_notebook(NOTEBOOK_DIR / f"{NOTEBOOK}.py", "smoke", run, data_dir=tmp_path / "data")
    book = tmp_path / "book"
    if (REPO_ROOT / ".venv" / ".installed").exists():  # as a reader makes it: `make book`
        made = subprocess.run(["make", "-s", "-C", str(REPO_ROOT), "book", f"OUT={run}", f"BOOK={book}"],
                              capture_output=True, text=True, timeout=300)
        assert made.returncode == 0, made.stdout + made.stderr
        assert "1 notebook page(s)" in made.stdout, made.stdout
    elif os.environ.get("CI"):
        pytest.fail("no project venv: `make book` needs `make setup`")
    else:
        build_book(run, book)
    assert sorted(p.name for p in book.glob("*.html")) == sorted([f"{NOTEBOOK}.html", "index.html"])

    text = (book / f"{NOTEBOOK}.html").read_text()
    visible = re.sub(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=\s]+", "", text)
    for machine_path in {str(tmp_path), str(run.resolve()), str(REPO_ROOT), sys.prefix, "/tmp/", "/work/", "/home/"}:
        assert machine_path not in visible, machine_path
    assert "&lt;run&gt;" in visible  # the injected out_dir, rewritten

    page = browser.new_page(viewport={"width": 1200, "height": 900})
    # offline, like a reader with the folder on disk: the template's CDN scripts (MathJax) fail fast
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort())
    page.goto((book / "index.html").as_uri())
    links = page.locator("ol li a")
    assert links.count() == 1 and links.first.get_attribute("href") == f"{NOTEBOOK}.html"
    assert page.locator("li.missing").count() == len(notebook_sources()) - 1  # notebooks this run did not execute
    page.screenshot(path=str(shots / "book_index.png"))

    links.first.click()
    page.wait_for_load_state()
    assert page.url.endswith(f"{NOTEBOOK}.html")
    figure = page.locator(".jp-RenderedImage img").first
    figure.scroll_into_view_if_needed()
    assert page.evaluate("img => img.complete && img.naturalWidth", figure.element_handle()) > 0
    assert page.locator("audio").count() >= 1
    widget_picture = page.locator(".mars-widget img")
    assert widget_picture.count() == 1  # the explorer's last state, drawn without a kernel
    assert page.evaluate("img => img.naturalWidth", widget_picture.element_handle()) > 0
    assert page.locator(".mars-widget input[type=range]").count() == 3
    page.locator(".mars-widget").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "book_page_widget.png"))
    page.locator("nav.mars-nav a", has_text="Contents").first.click()
    page.wait_for_load_state()
    assert page.url.endswith("index.html")
