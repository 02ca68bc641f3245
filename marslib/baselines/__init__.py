"""The paper's comparison systems, written from their papers and trained on our data.

MARS claims to be competitive with three systems on NSynth, the set and metrics of
Vinay & Lerch (ISMIR 2022).  Each is one short module here, trained on waveforms
(:func:`marslib.data.wave_store`) by the one training loop (:mod:`marslib.train`:
resume, checkpoints, progress) and judged by the same evaluation as MARS::

    ddsp.py         DDSP (Engel et al. 2020): harmonic + filtered-noise synthesiser
    diffwave.py     DiffWave (Kong et al. 2021): diffusion vocoder on our log-magnitude spectrogram
    wavenet_ae.py   the NSynth WaveNet autoencoder (Engel et al. 2017)
    common.py       what they share: pitch in Hz, loudness, the multi-scale spectral loss

Every system has the same two uses (:class:`Baseline`):

* ``resynthesise(waves, pitch, family)``: held-out notes through the system, the row
  beside the tokenizer's reconstruction (what the system can represent);
* ``generate(pitch, family, reference)``: a note for a (pitch, family) condition, the row
  beside MARS's generations.  What ``reference`` supplies (a training note of the
  family at the nearest pitch) and why differs per system: see each module.

Defined in notebook 06.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from ..checkpoint import load_checkpoint, read_meta
from ..config import Config
from ..data import ensure_dataset, wave_store
from ..train import check_start, train

# name -> (module, class, the name tables and the report give it); checkpoints go to <run>/<name>
BASELINES: dict[str, tuple[str, str, str]] = {
    "ddsp": ("ddsp", "DDSP", "DDSP"),                                  # Engel et al. 2020
    "diffwave": ("diffwave", "DiffWave", "DiffWave"),                  # Kong et al. 2021
    "wavenet_ae": ("wavenet_ae", "WaveNetAutoencoder", "NSynth WaveNet AE"),  # Engel et al. 2017
}


class Baseline(Protocol):
    """What every comparison system offers (an ``nn.Module`` built from a :class:`Config`)."""

    cfg: Config

    def training_losses(self, batch: tuple[torch.Tensor, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """``batch = (waves (B, S), {"pitch", "family", "velocity"})``; ``"loss"`` is minimised."""

    def resynthesise(self, waves: torch.Tensor, pitch: torch.Tensor, family: torch.Tensor,
                     seed: int = 0) -> torch.Tensor:
        """Held-out notes ``(B, S)`` through the system -> ``(B, S)``."""

    def generate(self, pitch: torch.Tensor, family: torch.Tensor, reference: torch.Tensor,
                 seed: int = 0) -> torch.Tensor:
        """Notes ``(B, S)`` for conditions ``pitch, family (B,)``; ``reference (B, S)``: a training
        note of each family at the nearest pitch."""


def _check_name(name: str) -> None:
    if name not in BASELINES:
        raise ValueError(f"unknown comparison system {name!r}; choose from {', '.join(BASELINES)}")


def model_class(name: str) -> type:
    """The ``nn.Module`` class of system ``name`` (imported on first use)."""
    _check_name(name)
    module, cls, _ = BASELINES[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def build(name: str, cfg: Config) -> torch.nn.Module:
    """A fresh, untrained system ``name`` for ``cfg`` (weights from ``cfg.seed``)."""
    torch.manual_seed(cfg.seed)
    return model_class(name)(cfg)


def fit_baseline(name: str, cfg: Config, run_dir: str | Path, resume: bool = False, overwrite: bool = False,
                 stop_after: int | None = None, distributed: bool = False, progress: bool = True
                 ) -> tuple[torch.nn.Module, dict]:
    """Train system ``name`` on the train split's waveforms, validating on valid.

    Checkpoints go to ``run_dir`` (e.g. ``runs/course/ddsp``); the schedule is
    ``cfg.<name>.train``.  See :func:`marslib.train.train` for ``resume`` / ``overwrite``.
    Returns ``(model, history)``.
    """
    _check_name(name)
    tcfg = getattr(cfg, name).train
    ensure_dataset(cfg)
    check_start(run_dir, name, cfg, tcfg, resume, overwrite)  # refuse before any work
    train_data, valid_data = wave_store(cfg, "train"), wave_store(cfg, "valid")
    model = build(name, cfg)
    history = train(model, cfg, tcfg, train_data, run_dir, name, valid_data=valid_data, resume=resume,
                    overwrite=overwrite, stop_after=stop_after, distributed=distributed, progress=progress)
    return model.eval(), history


def load_baseline(name: str, run_dir: str | Path, cfg: Config | None = None, device: str = "cpu"
                  ) -> torch.nn.Module:
    """Load system ``name`` from ``run_dir``'s newest checkpoint (with ``cfg``: check it was trained for it)."""
    _check_name(name)
    model = model_class(name)(cfg or Config.from_dict(read_meta(run_dir)["config"]))
    load_checkpoint(run_dir, model, name, cfg)
    return model.to(device).eval()


@torch.no_grad()
def run_batched(fn, *arrays: np.ndarray, batch_size: int = 16, seed: int = 0, device: str = "cpu") -> np.ndarray:
    """``fn(*tensors, seed=...)`` over ``arrays`` in batches (batch ``i`` gets ``seed + i``) -> ``(N, S)`` numpy."""
    n, out = len(arrays[0]), []
    for i, start in enumerate(range(0, n, batch_size)):
        parts = [torch.as_tensor(a[start:start + batch_size]).to(device) for a in arrays]
        out.append(fn(*parts, seed=seed + i).float().cpu().numpy())
    return np.concatenate(out)


__all__ = ["BASELINES", "Baseline", "build", "fit_baseline", "load_baseline", "model_class", "run_batched"]
