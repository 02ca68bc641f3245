"""Checkpoints that survive a kill at any instant.

A training run's folder holds its checkpoints, each a directory that appears whole
or not at all::

    <run>/ckpt-000007/            the newest complete checkpoint
        model.safetensors         model weights
        state.safetensors         optimiser tensors + torch RNG state (for exact resume)
        meta.json                 kind, step, config, history, what the run was made from,
                                  the size + sha256 of both tensor files and the run's
                                  provenance (git commit, command, versions, device); written last
    <run>/ckpt-000006/            the previous one, kept as a fall-back
    <run>/history.json            a copy of the history, for plotting

Why directories: a checkpoint is several files, and no filesystem renames several
files at once.  So we write them into a hidden ``.tmp-*`` directory and *rename the
directory* into place (one atomic step on POSIX), with a new, higher sequence
number; only then is the oldest checkpoint deleted.  A kill while writing leaves a
``.tmp-*`` directory that nobody reads (and the next save removes); a kill while
deleting leaves an older checkpoint half gone, which the loader skips.  Loading
takes the newest checkpoint whose files match their recorded fingerprints and says
so when it has to fall back to an older one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import Config
from .provenance import provenance

PREFIX = "ckpt-"
KEEP = 2  # the newest checkpoint and one fall-back


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete, corrupt or made for another config."""


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------

def file_sha256(path: Path) -> str:
    """Full sha256 (64 hex digits) of a file, read in blocks (run bundles record it whole)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    """A checkpoint file's fingerprint: the first 16 hex digits of :func:`file_sha256`."""
    return file_sha256(path)[:16]


def _fsync(path: Path) -> None:
    """Flush a file or directory to disk, so a power cut cannot reorder the rename before the data."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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


def _sequence(path: Path) -> int:
    return int(path.name[len(PREFIX):])


def _all_checkpoints(directory: Path) -> list[Path]:
    """Every ``ckpt-N`` directory, newest (highest N) first, complete or not."""
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir()
             if p.is_dir() and p.name.startswith(PREFIX) and p.name[len(PREFIX):].isdigit()]
    return sorted(found, key=_sequence, reverse=True)


def save_checkpoint(directory: str | Path, model: torch.nn.Module, cfg: Config, kind: str, step: int,
                    optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None,
                    extra: dict | None = None, made_from: dict[str, str] | None = None,
                    keep: int = KEEP) -> Path:
    """Write a new checkpoint into ``directory`` atomically; returns its folder.

    Args:
        kind: "tokenizer", "ar", "raster", "classifier": checked on load.
        optimizer, scheduler: saved (with the torch RNG state) for exact resume.
        extra: JSON-serialisable run state (the history).
        made_from: fingerprints of the checkpoints this model depends on,
            e.g. ``{"tokenizer": "<weights sha>"}`` for the transformer.
        keep: complete checkpoints to keep (older ones are deleted after the new
            one is in place).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob(".tmp-*"):  # left by a writer that was killed
        shutil.rmtree(stale, ignore_errors=True)
    existing = _all_checkpoints(directory)
    final = directory / f"{PREFIX}{(_sequence(existing[0]) + 1) if existing else 1:06d}"
    tmp = Path(tempfile.mkdtemp(dir=directory, prefix=f".tmp-{final.name}-"))
    try:
        files = {"model": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}}
        meta: dict[str, Any] = {"kind": kind, "step": step, "config": cfg.to_dict(), "extra": extra or {},
                                "made_from": made_from or {}, "files": {}, "provenance": provenance(cfg)}
        if optimizer is not None:
            files["state"], meta["optimizer"] = _flatten_optimizer(optimizer.state_dict())
            files["state"]["rng.torch"] = torch.get_rng_state()
            meta["scheduler"] = scheduler.state_dict() if scheduler is not None else None
        for name, tensors in files.items():
            path = tmp / f"{name}.safetensors"
            save_file(tensors, path)
            _fsync(path)
            meta["files"][name] = {"bytes": path.stat().st_size, "sha256": _sha256(path)}
        meta["weights_sha"] = meta["files"]["model"]["sha256"]  # the model's fingerprint
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        _fsync(tmp / "meta.json")
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700 directories
        os.rename(tmp, final)              # the atomic step: the checkpoint now exists, whole
        _fsync(directory)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    for old in existing[max(0, keep - 1):]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def clear_checkpoints(directory: str | Path) -> None:
    """Delete every checkpoint in ``directory`` (training with ``overwrite=True``)."""
    for path in _all_checkpoints(Path(directory)):
        shutil.rmtree(path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------

def _problem(path: Path, verify: bool) -> tuple[dict | None, str]:
    """``(meta, "")`` if the checkpoint at ``path`` is complete, else ``(None, what is wrong)``."""
    try:
        meta = json.loads((path / "meta.json").read_text())
    except FileNotFoundError:
        return None, "it has no meta.json (deleted halfway?)"
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        return None, f"its meta.json is corrupt ({err})"
    for name, info in meta.get("files", {}).items():
        file = path / f"{name}.safetensors"
        if not file.is_file() or file.stat().st_size != info["bytes"]:
            return None, f"{file.name} is missing or has the wrong size"
        if verify and _sha256(file) != info["sha256"]:
            return None, f"{file.name} does not match its fingerprint (corrupted on disk?)"
    return meta, ""


def _no_checkpoint(directory: Path) -> CheckpointError:
    if (directory / "last.json").exists():
        return CheckpointError(f"{directory} holds a checkpoint in the old single-file format (last.json), "
                               f"which this version does not read; retrain it (add --overwrite)")
    return CheckpointError(f"no checkpoint in {directory}; train one first "
                           f"(`mars train tokenizer`, then `mars train ar`, with the same --out)")


def find_checkpoint(directory: str | Path, verify: bool = False) -> tuple[Path, dict]:
    """The newest complete checkpoint of ``directory`` and its metadata.

    ``verify`` also checks the files' sha256 (what loading does).  Skipped
    checkpoints are reported on stderr; none complete raises :class:`CheckpointError`.
    """
    directory = Path(directory)
    skipped = []
    for path in _all_checkpoints(directory):
        meta, problem = _problem(path, verify)
        if meta is not None:
            if skipped:
                print(f"warning: {'; '.join(skipped)}; using {path.name} (step {meta['step']}) instead",
                      file=sys.stderr)
            return path, meta
        skipped.append(f"skipped checkpoint {path}: {problem}")
    if skipped:
        raise CheckpointError(f"no complete checkpoint in {directory}: {'; '.join(skipped)}")
    raise _no_checkpoint(directory)


def has_checkpoint(directory: str | Path) -> bool:
    """True if ``directory`` holds at least one complete checkpoint."""
    try:
        find_checkpoint(directory)
    except CheckpointError:
        return False
    return True


def read_meta(directory: str | Path) -> dict:
    """The metadata of ``directory``'s newest complete checkpoint (clear errors if there is none)."""
    return find_checkpoint(directory)[1]


def load_checkpoint(directory: str | Path, model: torch.nn.Module, kind: str, cfg: Config | None = None,
                    optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None) -> dict:
    """Load the newest complete checkpoint into the objects; returns its metadata.

    Checks that it is of ``kind``, that its files match their fingerprints (else
    falls back to the previous checkpoint, with a message), and, with ``cfg``,
    that it was trained for the same model config.
    """
    path, meta = find_checkpoint(directory, verify=True)
    if meta.get("kind") != kind:
        raise CheckpointError(f"{directory} holds a {meta.get('kind')!r} checkpoint, not {kind!r}")
    if cfg is not None:
        diff = config_diff(Config.from_dict(meta["config"]), cfg, MODEL_CONFIG.get(kind, DEFAULT_MODEL_CONFIG))
        if diff:
            raise CheckpointError(f"checkpoint {directory} was trained with a different model config "
                                  f"({'; '.join(diff)}); use the matching profile/overrides or retrain")
    try:
        tensors = load_file(path / "model.safetensors")
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"could not read {path / 'model.safetensors'}: {err}") from err
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path / 'model.safetensors'} does not fit this model: missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]}")
    if optimizer is not None:
        if "optimizer" not in meta:
            raise CheckpointError(f"{path} has no optimiser state (saved for inference only); cannot resume")
        state = load_file(path / "state.safetensors")
        optimizer.load_state_dict(_unflatten_optimizer(state, meta["optimizer"]))
        torch.set_rng_state(state["rng.torch"])
        if scheduler is not None and meta.get("scheduler"):
            scheduler.load_state_dict(meta["scheduler"])
    return meta


# ---------------------------------------------------------------------------
# Which parts of the config a checkpoint must agree with
# ---------------------------------------------------------------------------

# The config sections (or single "section.field"s) that shape each kind of model;
# everything else may differ between training and use.  The classifier reads full
# spectrograms, so CMX and the tokenizer do not concern it: one classifier judges every arm.
MODEL_CONFIG: dict[str, tuple[str, ...]] = {
    "ar": ("audio", "cmx", "tokenizer", "ar.depth", "ar.width", "ar.heads"),
    "raster": ("audio", "cmx", "tokenizer", "ar.depth", "ar.width", "ar.heads"),
    "classifier": ("audio", "eval.classifier_channels", "eval.classifier_embed"),
}
DEFAULT_MODEL_CONFIG = ("audio", "cmx", "tokenizer")

# What a *training run* depends on: its model, its data, its schedule and its seed.
# A resumed run must agree on all of it, except ``<train section>.steps``, which may
# grow (recorded in the history).  Paths (data.root, data.cache_dir), reading (data.workers), the device and
# sampling settings (ar.cfg_scale ...) do not change what is learned.
_DATA = tuple(f"data.{f.name}" for f in dataclasses.fields(Config().data)
              if f.name not in ("root", "cache_dir", "workers", "source"))
_AR_TRAINING = ("ar.depth", "ar.width", "ar.heads", "ar.cond_dropout", "ar.family_dropout", "ar.dropout",
                "ar.scale_balance")
TRAINING_CONFIG: dict[str, tuple[str, ...]] = {
    "tokenizer": ("seed", "audio", "cmx", *_DATA, "tokenizer", "train_tokenizer"),
    "ar": ("seed", "audio", "cmx", *_DATA, "tokenizer", *_AR_TRAINING, "train_ar"),
    "raster": ("seed", "audio", "cmx", *_DATA, "tokenizer", *_AR_TRAINING, "train_ar"),
    "classifier": ("seed", "audio", *_DATA, "eval.classifier_channels", "eval.classifier_embed",
                   "train_classifier"),
    # The comparison systems (marslib.baselines): each its own section, schedule included.
    "ddsp": ("seed", "audio", *_DATA, "ddsp"),
    "diffwave": ("seed", "audio", *_DATA, "diffwave"),
    "wavenet_ae": ("seed", "audio", *_DATA, "wavenet_ae"),
}
# Where each kind's schedule (TrainConfig) lives in the config: its ``steps`` may grow on resume.
TRAIN_SECTION = {"tokenizer": "train_tokenizer", "classifier": "train_classifier", "ar": "train_ar",
                 "raster": "train_ar", "ddsp": "ddsp.train", "diffwave": "diffwave.train",
                 "wavenet_ae": "wavenet_ae.train"}


def _get(cfg: Config, dotted: str) -> Any:
    value: Any = cfg
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def config_diff(saved: Config, wanted: Config, fields: tuple[str, ...], ignore: tuple[str, ...] = ()
                ) -> list[str]:
    """``["section.field: saved -> wanted", ...]`` for the ``fields`` (sections or fields) that differ.

    Sections are compared field by field, nested sections too (``ddsp.train.steps``).
    """
    diff = []
    for name in fields:
        a, b = _get(saved, name), _get(wanted, name)
        if dataclasses.is_dataclass(a):
            diff += config_diff(saved, wanted, tuple(f"{name}.{f.name}" for f in dataclasses.fields(a)), ignore)
        elif a != b and name not in ignore:
            diff.append(f"{name}: {a!r} -> {b!r}")
    return diff
