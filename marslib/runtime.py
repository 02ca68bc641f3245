"""Run-time plumbing shared by notebooks, CLI and training: seeds, devices, folders."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .config import Config, ConfigError, get_config

REPO_ROOT = Path(__file__).resolve().parent.parent  # the repository (editable install)
LAUNCHED_BY = "MARS_LAUNCHED_BY"  # env var: the command that started a papermill kernel (JSON argv)
_NOTEBOOK: dict | None = None     # set by setup_run inside a notebook kernel: its name and parameters


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so CPU runs repeat bit for bit."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """``"cpu"`` or ``"cuda[:i]"`` -> torch.device; a clear error if CUDA is asked for but absent."""
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but no CUDA GPU is visible; use device='cpu'")
    return torch.device(name)


def init_distributed(device: torch.device) -> tuple[int, int, torch.device]:
    """Join the ``torchrun`` process group (once); returns ``(rank, world size, this process's device)``.

    On CUDA each process uses the GPU of its ``LOCAL_RANK`` (so 8 processes on a
    machine use its 8 GPUs) and talks over NCCL; on CPU they talk over gloo.
    ``torchrun`` sets the rendezvous variables, on one machine or many.
    """
    import torch.distributed as dist

    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), device


def as_overrides(overrides: dict | str | None) -> dict:
    """Config overrides as a dict: the notebooks' ``overrides`` parameter is a JSON object string
    (``'{"ar.cfg_scale": 4.0}'``, what papermill and ``mars reproduce --set`` pass), or a dict."""
    if not overrides:
        return {}
    if isinstance(overrides, str):
        try:
            overrides = json.loads(overrides)
        except json.JSONDecodeError as err:
            raise ConfigError(f"overrides must be a JSON object such as '{{\"ar.cfg_scale\": 4.0}}', "
                              f"got {overrides!r} ({err})") from err
    if not isinstance(overrides, dict):
        raise ConfigError(f"overrides must map config keys to values, got {overrides!r}")
    for key in ("profile", "seed", "device"):
        if key in overrides:
            raise ConfigError(f"{key!r} is a parameter of its own, not an override; set {key} = ... instead")
    return dict(overrides)


def _in_kernel() -> bool:
    """True inside a Jupyter kernel (not merely a process that imported ipykernel, like pytest)."""
    if "ipykernel" not in sys.modules:
        return False
    from IPython import get_ipython

    return type(get_ipython()).__name__ == "ZMQInteractiveShell"


def setup_run(name: str, profile: str, seed: int = 0, device: str = "cpu", data_dir: str = "",
              out_dir: str = "", overrides: dict | str | None = None) -> tuple[Config, Path]:
    """What the first cell of every notebook does with its papermill parameters.

    Builds the profile's config with ``overrides`` (dotted keys, a dict or a JSON
    string, see :func:`as_overrides`; ``data_dir`` overrides ``data.root``; relative
    paths become absolute, resolved against the repository, so the notebook's
    working folder does not matter; the feature cache, unless ``data.cache_dir``
    is set, lives beside the dataset: see :func:`marslib.data.feature_cache_dir`),
    seeds everything, and creates ``<out_dir>/<name>/`` for the notebook's
    figures and ``results.json``.

    Returns:
        ``(cfg, out)`` with ``out`` the notebook's output folder.
    """
    global _NOTEBOOK
    over = {"seed": seed, "device": device, **as_overrides(overrides)}
    if data_dir:
        over["data.root"] = data_dir
    cfg = get_config(profile, over)
    if _in_kernel():  # a notebook (papermill or by hand): its argv says nothing, record this
        _NOTEBOOK = {"notebook": f"{name}.ipynb", "parameters": {
            "profile": profile, "seed": seed, "device": device, "data_dir": data_dir, "out_dir": out_dir,
            "overrides": as_overrides(overrides)}}
    root = REPO_ROOT
    cfg.data.root = str((root / cfg.data.root).resolve())
    if cfg.data.cache_dir:  # else beside data.root, wherever that is
        cfg.data.cache_dir = str((root / cfg.data.cache_dir).resolve())
    resolve_device(cfg.device)
    seed_everything(seed)
    out = Path(out_dir or root / "runs" / profile).resolve() / name
    out.mkdir(parents=True, exist_ok=True)
    return cfg, out


def run_record(cfg: Config, overrides: dict | str | None = None) -> dict:
    """What a notebook's ``results.json`` records about its run: the overrides it was given,
    the config they resolved to, how many clips per split the dataset holds that
    ``cfg.data`` keeps (None where no dataset has been rendered yet) and the run's
    :func:`provenance`."""
    from .data import SPLITS, split_dir, split_examples  # data imports this module

    dataset = {split: len(split_examples(cfg, split)) for split in SPLITS
               if (split_dir(cfg.data.root, split) / "examples.json").is_file()}
    return {"overrides": as_overrides(overrides), "config": cfg.to_dict(), "dataset": dataset or None,
            "provenance": provenance(cfg)}


# --- provenance: what made a result --------------------------------------------------

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


def _device(name: str) -> dict:
    out = {"type": name, "name": _cpu_model(), "cpu": _cpu_model(), "threads": torch.get_num_threads()}
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


def config_sha(cfg: Config) -> str:
    """16 hex digits of sha256 over the resolved config (sorted JSON): equal hashes, equal configs."""
    return hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


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


def initial_model(factory: Callable[[], torch.nn.Module], seed: int) -> torch.nn.Module:
    """``factory()`` built right after ``torch.manual_seed(seed)``, in eval mode.

    That is the model ``fit_tokenizer``, ``fit_ar`` and ``fit_classifier`` start
    training from (they seed with ``cfg.seed`` just before building it), so the
    notebooks can score it beside the trained one and show what training bought.
    The global RNG is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory().eval()


def atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """Call ``write(tmp_name)`` then rename onto ``path``: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def saved_tensor_bytes(fn: Callable[[], object], exclude: list[torch.Tensor] = ()) -> int:
    """Bytes of the tensors autograd saves for backward while ``fn`` runs its forward pass.

    That is the activation memory of a training step, independent of the device
    and the allocator.  Views of one storage count once (deduplicated by the
    storage's data pointer); tensors in ``exclude`` (the parameters, which live
    anyway) do not count.
    """
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        try:
            storage = t.untyped_storage()
        except (RuntimeError, NotImplementedError):  # e.g. tensors without storage
            return t
        ptr = storage.data_ptr()
        if ptr and ptr not in skip:
            seen[ptr] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def sync(device: torch.device) -> None:
    """Wait for queued CUDA work, so a timer measures it (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(fns: dict[str, Callable[[], object]], device: torch.device, repeats: int,
                     warmup: int = 1) -> dict[str, float]:
    """Median wall seconds of each callable; warm-up first, then repetitions interleaved."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(max(1, repeats)):
        for name, fn in fns.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}
