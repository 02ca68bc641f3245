"""Checkpoints: ``safetensors`` weights + a small JSON, written atomically.

A checkpoint ``<dir>/<name>`` is three files::

    <name>.safetensors        model weights
    <name>.state.safetensors  optimiser tensors and the torch RNG state (for exact resume)
    <name>.json               config, step, kind, scheduler state, history; written last

Each file is written to a temporary name and renamed, and the JSON (written last)
records a fingerprint of both tensor files, so a half-written or mismatched set
is detected on load instead of silently resuming from garbage.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import Config
from .runtime import atomic_write


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete, corrupt or made for another config."""


def _fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, meta = {}, {"param_groups": state["param_groups"], "state": {}}
    for pid, slots in state["state"].items():
        meta["state"][str(pid)] = {}
        for key, value in slots.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                meta["state"][str(pid)][key] = value
    return tensors, meta


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state = {int(pid): dict(slots) for pid, slots in meta["state"].items()}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state[int(pid)][key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(directory: str | Path, name: str, model: torch.nn.Module, cfg: Config, kind: str,
                    step: int, optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None,
                    extra: dict | None = None) -> Path:
    """Write ``<directory>/<name>.*`` atomically; returns the JSON path."""
    directory = Path(directory)
    weights = directory / f"{name}.safetensors"
    state_file = directory / f"{name}.state.safetensors"
    model_tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(weights, lambda tmp: save_file(model_tensors, tmp))
    meta: dict[str, Any] = {"kind": kind, "step": step, "config": cfg.to_dict(), "extra": extra or {},
                            "weights_sha": _fingerprint(weights)}
    if optimizer is not None:
        tensors, meta["optimizer"] = _flatten_optimizer(optimizer.state_dict())
        tensors["rng.torch"] = torch.get_rng_state()
        atomic_write(state_file, lambda tmp: save_file(tensors, tmp))
        meta["state_sha"] = _fingerprint(state_file)
        meta["scheduler"] = scheduler.state_dict() if scheduler is not None else None
    path = directory / f"{name}.json"
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1)))
    return path


def read_meta(directory: str | Path, name: str) -> dict:
    """The JSON part of a checkpoint, with clear errors if it is missing or broken."""
    path = Path(directory) / f"{name}.json"
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}; train one first "
                              f"(`mars train tokenizer`, then `mars train ar`, with the same --out)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"checkpoint metadata {path} is corrupt: {err}") from err


def load_checkpoint(directory: str | Path, name: str, model: torch.nn.Module, kind: str,
                    cfg: Config | None = None, optimizer: torch.optim.Optimizer | None = None,
                    scheduler: Any = None) -> dict:
    """Load weights (and, if given, optimiser/scheduler/RNG state) into the objects.

    Checks that the checkpoint is of ``kind`` ("tokenizer", "ar", ...), that its
    files belong together, and (if ``cfg`` is given) that its model config equals
    ``cfg``'s.  Returns the metadata dict.
    """
    directory = Path(directory)
    meta = read_meta(directory, name)
    if meta.get("kind") != kind:
        raise CheckpointError(f"{directory / name} is a {meta.get('kind')!r} checkpoint, not {kind!r}")
    if cfg is not None:
        _check_same_model(Config.from_dict(meta["config"]), cfg, kind, directory / name)
    weights = directory / f"{name}.safetensors"
    if not weights.exists() or _fingerprint(weights) != meta["weights_sha"]:
        raise CheckpointError(f"{weights} is missing or does not match {name}.json "
                              f"(interrupted write?); delete the checkpoint and retrain")
    try:
        tensors = load_file(weights)
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"could not read {weights}: {err}") from err
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{weights} does not fit this model: missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]}")
    if optimizer is not None:
        state_file = directory / f"{name}.state.safetensors"
        if "optimizer" not in meta or not state_file.exists() or _fingerprint(state_file) != meta["state_sha"]:
            raise CheckpointError(f"{state_file} is missing or does not match {name}.json; cannot resume")
        state = load_file(state_file)
        optimizer.load_state_dict(_unflatten_optimizer(state, meta["optimizer"]))
        torch.set_rng_state(state["rng.torch"])
        if scheduler is not None and meta.get("scheduler"):
            scheduler.load_state_dict(meta["scheduler"])
    return meta


# The config sections (or single "section.field"s) that shape each kind of model;
# everything else may differ between training and use.  The classifier reads full
# spectrograms, so CMX and the tokenizer do not concern it: one classifier judges every arm.
MODEL_CONFIG: dict[str, tuple[str, ...]] = {
    "ar": ("audio", "cmx", "tokenizer", "ar"),
    "classifier": ("audio", "eval.classifier_channels", "eval.classifier_embed"),
}
DEFAULT_MODEL_CONFIG = ("audio", "cmx", "tokenizer")


def _check_same_model(saved: Config, wanted: Config, kind: str, where: Path) -> None:
    for name in MODEL_CONFIG.get(kind, DEFAULT_MODEL_CONFIG):
        a, b = saved, wanted
        for part in name.split("."):
            a, b = getattr(a, part), getattr(b, part)
        if a != b:
            diff = ([f"{k}: {v!r} != {getattr(b, k)!r}" for k, v in vars(a).items() if getattr(b, k) != v]
                    if dataclasses.is_dataclass(a) else [f"{a!r} != {b!r}"])
            raise CheckpointError(f"checkpoint {where} was trained with a different {name} config "
                                  f"({'; '.join(diff)}); use the matching profile/overrides or retrain")
