"""The executed notebooks of a run as a static HTML book: ``make book``.

::

    python -m marslib.book --run runs/course --out book/

    book/index.html               contents: one line per notebook (its title and question)
    book/01_stft_and_cmx.html     one page per notebook that ran, with previous/next links

``mars reproduce`` leaves the executed notebooks in ``<run>/notebooks/NN_*.ipynb``
with every output inside them: figures as base64 PNGs, audio players as ``<audio>``
tags with data URIs, and (nbclient saves it) the last state of every ipywidget.
nbconvert's HTML exporter turns each into one self-contained page, so the book is a
folder of files with relative links only: it opens from disk, from a zip, or from
any static web host.

Two things are done to the notebooks on the way:

* **widgets.**  nbconvert would embed the widget state together with a script that
  rebuilds the widgets from a CDN in the reader's browser, which needs the network.
  We draw the widget's last state ourselves, as plain HTML (sliders at their last
  position, the text, the audio player and the picture it showed), and drop the
  state, so the pages need no JavaScript for it.  A widget we cannot draw keeps the
  text the kernel printed for it.
* **maths.**  nbconvert's pages typeset LaTeX with MathJax from a CDN.  When the
  ``jupyter-server-mathjax`` package (in the ``lab`` extra) is installed, its copy of
  MathJax goes into ``book/_static/mathjax/`` and the pages load it from there, so
  the equations render offline too.
* **paths.**  Outputs and the papermill parameters cell hold absolute paths of the
  machine that ran them (``out_dir = "/home/.../runs/course"``).  They are rewritten
  as ``<run>``, ``<data>``, paths relative to the repository, ``<venv>``, or, for
  any other absolute path, ``<path>/<file name>``.
"""

from __future__ import annotations

import argparse
import base64
import html
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from .notebooks import REPO_ROOT, notebook_sources

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


# ---------------------------------------------------------------------------
# What a notebook is about
# ---------------------------------------------------------------------------

def notebook_summary(nb) -> tuple[str, str]:
    """``(title, question)`` of a notebook: its first ``# `` heading and the text after
    ``**Question.**`` in the same markdown cell ("" where there is none)."""
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        title = next((line[2:].strip() for line in cell.source.splitlines() if line.startswith("# ")), "")
        if not title:
            continue
        match = re.search(r"\*\*Question\.\*\*\s*(.+?)(?:\n\s*\n|$)", cell.source, re.S)
        return title, " ".join(match.group(1).split()) if match else ""
    return "", ""


# ---------------------------------------------------------------------------
# Widgets: their last state, drawn as static HTML
# ---------------------------------------------------------------------------

def _model_id(ref: str) -> str:
    return ref.removeprefix("IPY_MODEL_")


def _slider_html(state: dict) -> str:
    """A disabled range input at the slider's last position, with its label and value."""
    if "_options_labels" in state:  # SelectionSlider: the value is an index into the labels
        labels, index = state["_options_labels"], state.get("index") or 0
        low, high, shown = 0, max(len(labels) - 1, 0), labels[index] if labels else ""
        value = index
    else:  # IntSlider / FloatSlider
        low, high, value = state.get("min", 0), state.get("max", 100), state.get("value", 0)
        shown = value
    label = html.escape(str(state.get("description", "")))
    return (f'<label class="mars-slider">{label} '
            f'<input type="range" min="{low}" max="{high}" value="{value}" disabled> '
            f"<b>{html.escape(str(shown))}</b></label>")


def widget_html(model_id: str, models: dict) -> str | None:
    """The widget ``model_id`` (and its children) as static HTML, from the saved
    ``models`` (``{id: {"model_name", "state", "buffers"}}``); ``None`` if a part of it
    is a kind of widget we do not draw."""
    model = models.get(model_id)
    if model is None:
        return None
    name, state = model["model_name"], model["state"]
    if name in ("VBoxModel", "HBoxModel", "BoxModel"):
        parts = [widget_html(_model_id(child), models) for child in state.get("children", [])]
        if any(part is None for part in parts):
            return None
        direction = "row" if name == "HBoxModel" else "column"
        return (f'<div class="mars-widget-box" style="display:flex;flex-direction:{direction};gap:6px">'
                + "".join(parts) + "</div>")
    if name in ("SelectionSliderModel", "IntSliderModel", "FloatSliderModel"):
        return _slider_html(state)
    if name == "HTMLModel":
        return f"<div>{state.get('value', '')}</div>"
    if name == "LabelModel":
        return f"<div>{html.escape(state.get('value', ''))}</div>"
    if name == "ImageModel":
        data = next((b["data"] for b in model.get("buffers", []) if b["path"] == ["value"]), None)
        if data is None:  # an image widget that never got a picture
            return "<div></div>"
        base64.b64decode(data, validate=True)  # a corrupt buffer stops here, not in the reader's browser
        return f'<img src="data:image/{state.get("format", "png")};base64,{data}" alt="widget image">'
    return None


def freeze_widgets(nb) -> int:
    """Replace every widget output of ``nb`` by the static HTML of its last state and drop
    the saved widget state (in place).  Returns how many widget outputs were drawn."""
    saved = nb.metadata.pop("widgets", {}).get(WIDGET_STATE, {})
    models = saved.get("state", {})
    drawn = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view is None:
                continue
            static = widget_html(view["model_id"], models)
            del output["data"][WIDGET_VIEW]  # nbconvert falls back to text/plain without a state
            if static is not None:
                note = ('<p class="mars-widget-note"><i>The widget as the run left it (a static copy: '
                        "open the notebook in JupyterLab, <code>make lab</code>, to move it).</i></p>")
                output["data"]["text/html"] = f'<div class="mars-widget">{static}{note}</div>'
                drawn += 1
    return drawn


# ---------------------------------------------------------------------------
# Paths of the machine that ran the notebooks
# ---------------------------------------------------------------------------

DATA_URI = re.compile(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=\s]+")
# Absolute paths under the usual roots; not the path part of a URL ("example.org/var/x")
# or of a relative path ("runs/tmp/x").
ABSOLUTE_PATH = re.compile(r"(?<![\w.-])/(?:home|Users|root|tmp|private|var|work|opt|mnt|srv|scratch|"
                           r"usr|data|nix|gpfs|lustre|storage|media|Volumes)/[^\s\"'<>&`)\]]*")


def path_replacements(run: Path, data_dir: str = "") -> list[tuple[str, str]]:
    """``(absolute prefix, what to show instead)``, longest prefix first."""
    pairs = {str(run.resolve()): "<run>", str(REPO_ROOT) + os.sep: "", str(REPO_ROOT): ".",
             sys.prefix: "<venv>", sys.base_prefix: "<python>", str(Path.home()): "~"}
    if data_dir:
        pairs[str(Path(data_dir).resolve())] = "<data>"
        pairs[data_dir] = "<data>"
    return sorted(((k, v) for k, v in pairs.items() if len(k) > 1), key=lambda kv: -len(kv[0]))


def scrub_paths(page: str, replacements: list[tuple[str, str]]) -> str:
    """The HTML ``page`` with every absolute machine path rewritten (see the module
    docstring; what replaces them is HTML-escaped, ``&lt;run&gt;``); base64 data URIs
    are left alone (their alphabet holds ``/``)."""
    def scrub(piece: str) -> str:
        for prefix, shown in replacements:
            piece = piece.replace(prefix, html.escape(shown))
        return ABSOLUTE_PATH.sub(lambda m: "&lt;path&gt;/" + m.group(0).rstrip("/").rsplit("/", 1)[-1], piece)

    out, last = [], 0
    for m in DATA_URI.finditer(page):
        out += [scrub(page[last:m.start()]), m.group(0)]
        last = m.end()
    return "".join(out + [scrub(page[last:])])


# ---------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------

STYLE = """
body.mars-index { font-family: system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.45; }
.mars-index li { margin: 0.7rem 0; }
.mars-index .missing { color: #8a1c1c; }
nav.mars-nav { font-family: system-ui, sans-serif; display: flex; justify-content: space-between;
               padding: 0.6rem 1rem; background: #f3f3f3; border-bottom: 1px solid #ddd; }
nav.mars-nav.bottom { border-top: 1px solid #ddd; border-bottom: none; margin-top: 2rem; }
.mars-slider { font-family: system-ui, sans-serif; margin-right: 1rem; }
.mars-widget img { max-width: 100%; }
"""


@dataclass
class Entry:
    """One notebook of the book: its page (``None`` if the run does not hold it)."""

    stem: str
    source: Path | None          # the executed notebook, if the run has it
    title: str = ""
    question: str = ""

    @property
    def page(self) -> str | None:
        return f"{self.stem}.html" if self.source else None


def _nav(prev: Entry | None, nxt: Entry | None, where: str) -> str:
    def link(entry: Entry | None, rel: str, text: str) -> str:
        return f'<a rel="{rel}" href="{entry.page}">{html.escape(text)}</a>' if entry else "<span></span>"

    return (f'<nav class="mars-nav {where}">'
            f'{link(prev, "prev", "← " + (prev.title if prev else ""))}'
            f'<a href="index.html">Contents</a>'
            f'{link(nxt, "next", (nxt.title if nxt else "") + " →")}</nav>')


MATHJAX_DIR = "_static/mathjax"
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full"


def copy_mathjax(out: Path) -> str | None:
    """Copy a local MathJax into ``out/_static/mathjax``; its URL relative to the pages, or None
    (the pages then keep nbconvert's CDN URL) when ``jupyter-server-mathjax`` is not installed."""
    import shutil

    try:
        import jupyter_server_mathjax
    except ImportError:
        return None
    static = Path(jupyter_server_mathjax.__file__).parent / "static"
    if not (static / "MathJax.js").exists():
        return None
    shutil.copytree(static, out / MATHJAX_DIR, dirs_exist_ok=True)
    return f"{MATHJAX_DIR}/MathJax.js?config={MATHJAX_CONFIG}"


def render_page(nb, prev: Entry | None, nxt: Entry | None, replacements: list[tuple[str, str]],
                mathjax_url: str | None = None) -> str:
    """One executed notebook as a standalone HTML page with previous/contents/next links."""
    from nbconvert import HTMLExporter

    freeze_widgets(nb)
    nb.metadata["title"] = notebook_summary(nb)[0] or "notebook"  # the page's <title>
    exporter = HTMLExporter(template_name="lab", **({"mathjax_url": mathjax_url} if mathjax_url else {}))
    body, _ = exporter.from_notebook_node(nb)
    body = body.replace("</head>", f"<style>{STYLE}</style>\n</head>", 1)
    body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + _nav(prev, nxt, "top"), body, count=1)
    body = body.replace("</body>", _nav(prev, nxt, "bottom") + "\n</body>", 1)
    return scrub_paths(body, replacements)


def _run_label(run: Path) -> str:
    """How the index names the run: relative to the repository when inside it, else ``<run>``."""
    try:
        return str(run.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return "<run>"


def _emphasis(text: str) -> str:
    """The markdown emphasis a notebook's question uses (``*a* flute``) as HTML."""
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", re.sub(r"(?<!\*)\*([^*]+)\*(?!\*)", r"<em>\1</em>", text))


def render_index(entries: list[Entry], run: Path, profile: str) -> str:
    items = []
    for e in entries:
        nn = e.stem.split("_", 1)[0]
        if e.page:
            question = f"<br><span>{_emphasis(html.escape(e.question))}</span>" if e.question else ""
            items.append(f'<li><a href="{e.page}">{html.escape(e.title or e.stem)}</a>{question}</li>')
        else:
            items.append(f'<li class="missing">{html.escape(e.stem)}: not in this run '
                         f"(<code>mars reproduce --profile {html.escape(profile or '&lt;profile&gt;')} "
                         f"--out {html.escape(_run_label(run))} --notebooks {nn}</code> runs it)</li>")
    about = f"profile <code>{html.escape(profile)}</code>, " if profile else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>MARS reproduction: the notebooks</title>
<style>{STYLE}</style></head>
<body class="mars-index">
<h1>MARS reproduction: the notebooks</h1>
<p>Audio generation by next-scale autoregression over CMX-folded spectrograms, rebuilt step by step.
These pages are the notebooks as they ran ({about}run <code>{html.escape(_run_label(run))}</code>),
with their figures, tables, audio and the widgets' last state.</p>
<ol>
{chr(10).join(items)}
</ol>
</body></html>
"""


def build_book(run: Path, out: Path, expected: list[str] | None = None) -> list[Entry]:
    """Write ``out/index.html`` and one page per executed notebook of ``run``.

    ``expected``: the notebook names (``NN_name``) the contents list, by default those
    in ``notebooks/``; the run's other executed notebooks are added after them.  A
    notebook the run lacks gets a line saying so.  Returns the contents' entries.
    """
    import nbformat

    run, out = Path(run), Path(out)
    executed = {p.stem: p for p in sorted((run / "notebooks").glob("[0-9][0-9]_*.ipynb"))}
    stems = list(expected if expected is not None else [p.stem for p in notebook_sources()])
    stems += [s for s in executed if s not in stems]
    entries, notebooks, profile = [], {}, ""
    for stem in stems:
        entry = Entry(stem, executed.get(stem))
        if entry.source:
            nb = nbformat.read(entry.source, as_version=4)
            entry.title, entry.question = notebook_summary(nb)
            profile = profile or nb.metadata.get("papermill", {}).get("parameters", {}).get("profile", "")
            notebooks[stem] = nb
        entries.append(entry)
    out.mkdir(parents=True, exist_ok=True)
    pages = [e for e in entries if e.page]
    mathjax_url = copy_mathjax(out) if pages else None
    for i, entry in enumerate(pages):
        nb = notebooks[entry.stem]
        params = nb.metadata.get("papermill", {}).get("parameters", {})
        replacements = path_replacements(run, params.get("data_dir", ""))
        prev, nxt = pages[i - 1] if i else None, pages[i + 1] if i + 1 < len(pages) else None
        (out / entry.page).write_text(render_page(nb, prev, nxt, replacements, mathjax_url), encoding="utf-8")
    index = render_index(entries, run, profile)
    (out / "index.html").write_text(scrub_paths(index, path_replacements(run)), encoding="utf-8")
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m marslib.book", description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, default=Path("runs/course"),
                        help="run folder whose notebooks/ holds the executed notebooks (default runs/course)")
    parser.add_argument("--out", type=Path, default=Path("book"), help="where to write the HTML (default book/)")
    args = parser.parse_args(argv)
    if not (args.run / "notebooks").is_dir():
        print(f"{args.run}/notebooks/ does not exist: run `mars reproduce --out {args.run}` first",
              file=sys.stderr)
        return 2
    entries = build_book(args.run, args.out)
    done = [e.stem for e in entries if e.page]
    missing = [e.stem for e in entries if not e.page]
    print(f"{args.out / 'index.html'}: {len(done)} notebook page(s)"
          + (f"; not in the run: {', '.join(missing)}" if missing else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
