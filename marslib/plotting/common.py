"""What every figure shares: the spectrogram colour map, tensors as arrays, saving PNGs.

``save_figure`` / ``FigureSaver`` are how every notebook writes its figures (and
lists them in its ``results.json``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

SPEC_CMAP = "magma"  # perceptually uniform, dark = quiet


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().float().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Save ``fig`` as a PNG (tight bounding box) and return the path; the figure stays open."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


class FigureSaver:
    """``save(fig, name)`` writes ``<folder>/<name>.png`` and remembers the file name.

    Notebooks list ``save.names`` in their ``results.json`` so tests can check
    every promised figure exists.
    """

    def __init__(self, folder: str | Path):
        self.folder, self.names = Path(folder), []

    def __call__(self, fig: Figure, name: str) -> Path:
        path = save_figure(fig, self.folder / f"{name}.png")
        self.names.append(path.name)
        return path
