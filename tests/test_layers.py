"""The layer rule: the core of marslib never imports the experiments or the views built on it.

Two layers, by top-level module or package of ``marslib``:

* **core**: what a model *is* and how it trains: audio, cmx, config, profiles, tokenizer,
  autoregressor, data, metrics, baselines, train, checkpoint, runtime, provenance (and
  ``marslib/__init__.py``).
* **experiments and views**: what is done with the core and how it is shown: ablation,
  study, evaluate, report, cli, notebooks, plotting, widgets, lab.

A core module never imports the second layer, not even inside a function (a lazy
import is still a dependency): an experiment passes what it decides (a training
budget, a config) down as an argument instead.  The views and experiments import the
core and each other freely.  No core module needs a view or an experiment today (the
one that did, ``autoregressor/training.py`` importing ``ablation.baseline_config`` for
the raster baseline's budget, now scales the budget itself with ``scale_training``).

Imports are read from the source with ``ast`` (relative ones resolved against the
module's package), so the rule is checked without importing the modules it reads.  Imports by
string (``importlib.import_module``) are not seen; marslib uses them only for a
package's own submodules (``marslib.baselines``, ``marslib.lab``).
"""

import ast
from pathlib import Path

import pytest

import marslib

ROOT = Path(marslib.__file__).parent
CORE = {"__init__", "audio", "cmx", "config", "profiles", "tokenizer", "autoregressor", "data", "metrics",
        "baselines", "train", "checkpoint", "runtime", "provenance"}
UPPER = {"ablation", "study", "evaluate", "report", "cli", "notebooks", "plotting", "widgets", "lab", "runpack", "source", "book"}


def layer_of(top: str) -> str:
    """``"core"`` or ``"upper"`` for a top-level name of marslib (a module or a subpackage)."""
    if top in CORE:
        return "core"
    if top in UPPER:
        return "upper"
    raise AssertionError(f"marslib.{top} is in no layer: add it to CORE or UPPER in {__file__}")


def marslib_imports(source: str, path: Path) -> list[tuple[int, str]]:
    """``(line, "marslib.x.y")`` for every import of a marslib module in ``source`` (the file at ``path``).

    ``from . import audio`` yields ``marslib.audio``; ``from ..ablation import f`` in
    ``marslib/autoregressor/training.py`` yields ``marslib.ablation``.
    """
    rel = path.relative_to(ROOT.parent).with_suffix("")            # marslib/autoregressor/training
    package = list(rel.parts[:-1])                                 # [marslib, autoregressor]
    found = []
    for node in ast.walk(ast.parse(source)):                       # walk: function-level imports too
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: level 1 is this package, 2 its parent, ...
                base = ".".join(package[:len(package) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module
            if node.module is None:  # "from . import audio, cmx": the names are modules
                found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, module))
    return [(line, name) for line, name in found if name == "marslib" or name.startswith("marslib.")]


def top_level(module: str) -> str:
    """``marslib.autoregressor.training`` -> ``autoregressor``; ``marslib`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def upward_imports(path: Path, source: str | None = None) -> list[str]:
    """The imports in ``path`` (or in ``source``, read as that file) that break the layer rule."""
    here = top_level(".".join(path.relative_to(ROOT.parent).with_suffix("").parts))
    if layer_of(here) != "core":
        return []
    source = path.read_text() if source is None else source
    return [f"{path.relative_to(ROOT.parent)}:{line} imports {name}"
            for line, name in marslib_imports(source, path)
            if layer_of(top_level(name)) == "upper"]


MODULES = sorted(ROOT.rglob("*.py"))


def test_every_module_is_in_a_layer():
    tops = {p.relative_to(ROOT).parts[0].removesuffix(".py") for p in MODULES}
    assert tops <= CORE | UPPER, f"unclassified: {sorted(tops - CORE - UPPER)}"
    assert not CORE & UPPER


def test_core_never_imports_experiments_or_views():
    broken = [b for path in MODULES for b in upward_imports(path)]
    assert not broken, "core modules reaching up a layer:\n" + "\n".join(broken)


@pytest.mark.parametrize("snippet, where, found", [
    ("def f():\n    from ..ablation import baseline_config\n", "autoregressor/training.py", "marslib.ablation"),
    ("from . import plotting\n", "audio.py", "marslib.plotting"),
    ("import marslib.evaluate as ev\n", "metrics/pitch.py", "marslib.evaluate"),
    ("from marslib.widgets.explorer import _Explorer\n", "data/render.py", "marslib.widgets.explorer"),
    ("from .lab import check\n", "__init__.py", "marslib.lab"),
])
def test_the_checker_sees_upward_imports(snippet, where, found):
    """The rule would catch each way of writing an upward import (a lazy one included)."""
    assert [name for _, name in marslib_imports(snippet, ROOT / where)] == [found]
    assert len(upward_imports(ROOT / where, snippet)) == 1


def test_the_checker_lets_the_core_import_itself_and_the_views_import_anything():
    assert upward_imports(ROOT / "autoregressor/training.py", "from ..tokenizer import Tokenizer\n"
                                                             "from .model import NextScaleTransformer\n") == []
    assert upward_imports(ROOT / "report.py", "from .plotting import save_figure\nfrom .evaluate import x\n") == []
