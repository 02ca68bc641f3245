"""marslib.book on small hand-made executed notebooks (seconds; tests/test_browser.py renders
a real smoke run of notebook 01 and opens it in Chromium)."""

from __future__ import annotations

import base64
import re
import sys

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from marslib.book import build_book, freeze_widgets, main, notebook_summary, scrub_paths, path_replacements
from marslib.notebooks import REPO_ROOT

# a 1x1 PNG, and base64 that happens to contain "/tmp/" (its alphabet holds "/")
PNG = base64.b64encode(bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                                     "1f15c4890000000d49444154789c63f8cfc0f01f0005000201e2a0c1a700000000"
                                     "49454e44ae426082")).decode()
SLASHY = "AAAA/tmp/BBBB/work/CCCC"
DATA_URI = re.compile(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=\s]+")


def _widget_state() -> dict:
    """What nbclient saves for a VBox(HBox(SelectionSlider), HTML, Image) explorer."""
    def model(name, **state):
        return {"model_name": name, "model_module": "@jupyter-widgets/controls", "state": state}

    state = {
        "box": model("VBoxModel", children=["IPY_MODEL_row", "IPY_MODEL_info", "IPY_MODEL_img"]),
        "row": model("HBoxModel", children=["IPY_MODEL_nfft"]),
        "nfft": model("SelectionSliderModel", description="n_fft", _options_labels=["64", "128", "256"], index=2),
        "info": model("HTMLModel", value="F = 128 <audio controls><source src='data:audio/wav;base64,UklG'></audio>"),
        "img": {**model("ImageModel", format="png"), "buffers": [{"path": ["value"], "data": PNG, "encoding": "base64"}]},
        "odd": model("ColorPickerModel", value="#ff0000"),
    }
    return {"application/vnd.jupyter.widget-state+json": {"state": state, "version_major": 2, "version_minor": 0}}


def _widget_output(model_id: str, text: str):
    return new_output("display_data", data={
        "application/vnd.jupyter.widget-view+json": {"model_id": model_id, "version_major": 2, "version_minor": 0},
        "text/plain": text})


def _executed(nn: str, title: str, run, data) -> nbformat.NotebookNode:
    """An executed notebook as papermill leaves it: parameters injected, outputs with machine paths."""
    cells = [
        new_markdown_cell(f"# {nn} · {title}\n\n**Question.** What does {title.lower()}\ndo?\n\nMore text."),
        new_code_cell(f'out_dir = "{run}"\ndata_dir = "{data}"\n', metadata={"tags": ["injected-parameters"]}),
        new_code_cell("print(out)", outputs=[new_output("stream", name="stdout", text=(
            f"figures go to {run}/{nn}\nwarning from {sys.prefix}/lib/python3.11/site-packages/x.py:3\n"
            f"clips in {data}/nsynth-train; repo file {REPO_ROOT}/marslib/audio.py; "
            "other /work/elsewhere/checkout/marslib/cmx.py\n"))]),
        new_code_cell("fig", outputs=[new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"})]),
        new_code_cell("Audio(y)", outputs=[new_output("display_data", data={
            "text/html": f'<audio controls><source src="data:audio/wav;base64,{SLASHY}" type="audio/wav"></audio>',
            "text/plain": "<Audio>"})]),
        new_code_cell("display(explorer.widget)", outputs=[_widget_output("box", "VBox(children=...)")]),
        new_code_cell("display(picker)", outputs=[_widget_output("odd", "ColorPicker(value='#ff0000')")]),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["papermill"] = {"parameters": {"profile": "smoke", "out_dir": str(run), "data_dir": str(data)}}
    nb.metadata["widgets"] = _widget_state()
    return nb


@pytest.fixture
def run(tmp_path):
    """A run folder holding executed 01 and 03 (02 was not run), data outside it."""
    run, data = tmp_path / "runs" / "smoke", tmp_path / "data"
    (run / "notebooks").mkdir(parents=True)
    for nn, title in (("01", "Sound to image"), ("03", "Next scale")):
        nbformat.write(_executed(nn, title, run, data), run / "notebooks" / f"{nn}_x.ipynb")
    return run


EXPECTED = ["01_x", "02_x", "03_x"]


def test_summary_is_the_first_heading_and_the_question():
    nb = _executed("01", "Sound to image", "/r", "/d")
    assert notebook_summary(nb) == ("01 · Sound to image", "What does sound to image do?")
    assert notebook_summary(new_notebook(cells=[new_markdown_cell("no heading")])) == ("", "")


def test_index_links_the_executed_notebooks_and_names_the_missing_one(run, tmp_path):
    entries = build_book(run, tmp_path / "book", expected=EXPECTED)
    assert [(e.stem, e.page) for e in entries] == [("01_x", "01_x.html"), ("02_x", None), ("03_x", "03_x.html")]
    index = (tmp_path / "book" / "index.html").read_text()
    assert re.findall(r'href="([^"]+)"', index) == ["01_x.html", "03_x.html"]
    assert "01 · Sound to image</a><br><span>What does sound to image do?" in index
    missing = re.search(r'<li class="missing">(.*?)</li>', index, re.S).group(1)
    assert missing.startswith("02_x: not in this run") and "--notebooks 02" in missing
    assert sorted(p.name for p in (tmp_path / "book").iterdir()) == ["01_x.html", "03_x.html", "_static", "index.html"]


def test_pages_link_previous_and_next_and_only_relatively(run, tmp_path):
    build_book(run, tmp_path / "book", expected=EXPECTED)
    first, last = ((tmp_path / "book" / f"{nn}_x.html").read_text() for nn in ("01", "03"))
    assert 'rel="next" href="03_x.html"' in first and 'rel="prev"' not in first  # 02 is skipped
    assert 'rel="prev" href="01_x.html"' in last and 'rel="next"' not in last
    assert first.count('href="index.html"') == 2  # top and bottom
    for page in (first, last):
        assert "<title>" in page and re.search(r"<title>0[13] · ", page)
        for link in re.findall(r'(?:href|src)="([^"]+)"', page):
            assert not link.startswith(("/", "file:")), link


def test_equations_typeset_with_the_local_mathjax(run, tmp_path):
    build_book(run, tmp_path / "book", expected=EXPECTED)
    page = (tmp_path / "book" / "01_x.html").read_text()
    src = re.search(r'<script[^>]+src="([^"]*MathJax\.js[^"]*)"', page).group(1)
    assert src.startswith("_static/mathjax/MathJax.js?config=")      # on disk, not a CDN
    assert (tmp_path / "book" / src.split("?")[0]).is_file()


def test_no_absolute_machine_path_survives(run, tmp_path):
    build_book(run, tmp_path / "book", expected=EXPECTED)
    page = (tmp_path / "book" / "01_x.html").read_text()
    visible = DATA_URI.sub("", page)
    for path in (str(tmp_path), str(REPO_ROOT), sys.prefix, "/work/", "/tmp/"):
        assert path not in visible, path
    assert 'out_dir</span> <span class="o">=</span> <span class="s2">"&lt;run&gt;"' in visible
    assert "figures go to &lt;run&gt;/01" in visible and "clips in &lt;data&gt;/nsynth-train" in visible
    assert "repo file marslib/audio.py" in visible and "&lt;venv&gt;/lib/python3.11" in visible
    assert "other &lt;path&gt;/cmx.py" in visible
    assert f"base64,{SLASHY}" in page  # data URIs are left as they are
    assert str(tmp_path) not in DATA_URI.sub("", (tmp_path / "book" / "index.html").read_text())


def test_scrub_paths_keeps_urls_relative_paths_and_data_uris():
    text = ('see https://example.org/var/x and runs/tmp/y, F/r and /tmp/a/b.png '
            f'<img src="data:image/png;base64,{SLASHY}">')
    out = scrub_paths(text, path_replacements(REPO_ROOT / "runs" / "smoke"))
    assert out == ('see https://example.org/var/x and runs/tmp/y, F/r and &lt;path&gt;/b.png '
                   f'<img src="data:image/png;base64,{SLASHY}">')


def test_widgets_are_drawn_from_their_last_state(run):
    nb = nbformat.read(run / "notebooks" / "01_x.ipynb", as_version=4)
    assert freeze_widgets(nb) == 1  # the explorer; the colour picker is a kind we do not draw
    assert "widgets" not in nb.metadata  # so nbconvert adds no CDN widget script
    explorer, picker = nb.cells[5].outputs[0].data, nb.cells[6].outputs[0].data
    assert "application/vnd.jupyter.widget-view+json" not in explorer
    html = explorer["text/html"]
    assert 'n_fft <input type="range" min="0" max="2" value="2" disabled> <b>256</b>' in html
    assert "F = 128 <audio controls>" in html and f'<img src="data:image/png;base64,{PNG}"' in html
    assert html.index("n_fft") < html.index("F = 128") < html.index("<img")  # the VBox's order
    assert picker == {"text/plain": "ColorPicker(value='#ff0000')"}  # its printed fallback


def test_main_needs_a_run_with_notebooks(tmp_path, capsys):
    assert main(["--run", str(tmp_path / "nothing"), "--out", str(tmp_path / "book")]) == 2
    assert "mars reproduce" in capsys.readouterr().err
    assert not (tmp_path / "book").exists()


def test_index_renders_the_questions_emphasis():
    from marslib.book import _emphasis

    assert _emphasis("it is *a* flute, not **the** flute") == "it is <em>a</em> flute, not <strong>the</strong> flute"
    assert _emphasis("2 * 3 = 6") == "2 * 3 = 6"
