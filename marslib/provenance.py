"""Provenance: what made a result (code, command, config, packages, machine), recorded in every result file.

Notebook ``results.json`` (via :func:`marslib.runtime.run_record`), checkpoint
``meta.json``, ``evaluation/metrics.json`` and its rows, and ``mars sample``'s
``request.json`` each carry :func:`provenance`; the report prints it and warns when
results come from several commits or a modified tree.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from .config import Config

REPO_ROOT = Path(__file__).resolve().parent.parent  # the repository (editable install)
LAUNCHED_BY = "MARS_LAUNCHED_BY"  # env var: the command that started a papermill kernel (JSON argv)
_NOTEBOOK: dict | None = None     # inside a notebook kernel: its name and parameters (record_notebook)


def record_notebook(name: str, parameters: dict) -> None:
    """Say that this process is notebook ``name`` run with ``parameters`` (a kernel's argv says nothing)."""
    global _NOTEBOOK
    _NOTEBOOK = {"notebook": f"{name}.ipynb", "parameters": parameters}


def _git(*args: str) -> str | None:
    """stdout of ``git args`` in the repository, None if git is missing, fails or hangs."""
    try:
        done = subprocess.run(["git", "--no-optional-locks", *args], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def git_state() -> dict:
    """``{"commit", "dirty", "changed"}`` of the checkout marslib runs from, once per process.

    All None when marslib is not a git checkout (an installed copy, a tarball, no git):
    ``dirty`` is whether ``git status`` lists anything (edits or untracked files not
    ignored), ``changed`` its first 20 paths.
    """
    out = _git("rev-parse", "--show-toplevel", "HEAD")
    lines = (out or "").splitlines()
    # marslib copied into some other repository is not that repository's commit.
    if len(lines) != 2 or Path(lines[0]).resolve() != REPO_ROOT:
        return {"commit": None, "dirty": None, "changed": None}
    status = _git("status", "--porcelain")
    changed = None if status is None else [line[3:] for line in status.splitlines() if line.strip()]
    return {"commit": lines[1].strip(), "dirty": None if changed is None else bool(changed),
            "changed": None if changed is None else changed[:20]}


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)  # no import: librosa takes seconds to import
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX, by oneDNN's check).

    Elsewhere torch emulates bf16 matmuls and convolutions, slower than float32.
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN: no fast bf16
        return False


def _device(name: str) -> dict:
    out = {"type": name, "name": _cpu_model(), "cpu": _cpu_model(), "threads": torch.get_num_threads(),
           "cpu_bf16": cpu_has_bf16()}  # decides whether `amp` trains in bf16 on the CPU
    if name.startswith("cuda") and torch.cuda.is_available():
        out["name"] = torch.cuda.get_device_name(torch.device(name))
        out["cuda"] = torch.version.cuda
    return out


def _command() -> dict:
    """The command line (``argv``, ``cwd``); in a notebook kernel, whose argv is only a connection
    file, the notebook, its parameters and the command that launched it (None if run by hand)."""
    if _NOTEBOOK is None:
        return {"argv": list(sys.argv), "cwd": os.getcwd()}
    launched = os.environ.get(LAUNCHED_BY)
    try:
        launched = json.loads(launched) if launched else None
    except json.JSONDecodeError:
        pass
    return {**_NOTEBOOK, "launched_by": launched, "cwd": os.getcwd()}


def config_dict_sha(config: dict) -> str:
    """16 hex digits of sha256 over a config as a dict (sorted JSON): equal hashes, equal configs."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def config_sha(cfg: Config) -> str:
    """:func:`config_dict_sha` of the resolved config."""
    return config_dict_sha(cfg.to_dict())


def provenance(cfg: Config) -> dict:
    """Where a result came from, recorded in every result file.

    ``git`` (commit, dirty flag, changed paths; None outside a git checkout),
    ``command`` (``sys.argv`` and the working folder; in a notebook the notebook's
    name, its papermill parameters and the argv that launched it), ``profile``,
    ``seed``, ``config_sha256`` (:func:`config_sha`; the full config sits beside it:
    ``run.config`` in a notebook's results.json, ``config`` in a checkpoint's
    meta.json and in ``evaluation/metrics.json``), ``versions`` (python, torch, numpy,
    librosa, marslib), ``device`` (``cfg.device``, the CPU model or CUDA GPU name),
    ``hostname`` and ``platform``.  Cheap: git runs once per process.
    """
    return {
        "git": {k: list(v) if isinstance(v, list) else v for k, v in git_state().items()},
        "command": _command(),
        "profile": cfg.profile,
        "seed": cfg.seed,
        "config_sha256": config_sha(cfg),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
                     "librosa": _version("librosa"), "marslib": _version("marslib")},
        "device": _device(cfg.device),
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
    }


# What every recorded provenance holds (checked by the tests and the report).
PROVENANCE_FIELDS = {"git": ("commit", "dirty"), "command": (), "profile": (), "seed": (),
                     "config_sha256": (), "versions": ("python", "torch", "numpy", "librosa"),
                     "device": ("type", "name")}


def provenance_problems(prov: object) -> list[str]:
    """The :data:`PROVENANCE_FIELDS` that ``prov`` (a recorded provenance) lacks; ``[]`` if complete.

    ``git.commit`` and ``git.dirty`` may be None (not a git checkout) but must be present;
    ``command`` holds ``argv`` or (a notebook) ``notebook`` and ``parameters``.
    """
    if not isinstance(prov, dict):
        return ["provenance"]
    missing = []
    command = prov.get("command")
    if command is not None and not (isinstance(command, dict) and ("argv" in command or
                                                                    {"notebook", "parameters"} <= set(command))):
        missing.append("command.argv")
    for key, subkeys in PROVENANCE_FIELDS.items():
        if key not in prov:
            missing.append(key)
        elif subkeys:
            missing += [f"{key}.{k}" for k in subkeys if not isinstance(prov[key], dict) or k not in prov[key]]
    return missing
