"""Run-time plumbing shared by notebooks, CLI and training: seeds, devices, folders, processes."""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .config import Config, ConfigError, get_config
from .profiles import expected_train_minutes, format_minutes
from .provenance import REPO_ROOT, provenance, record_notebook


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
    over = {"seed": seed, "device": device, **as_overrides(overrides)}
    if data_dir:
        over["data.root"] = data_dir
    cfg = get_config(profile, over)
    if _in_kernel():  # a notebook (papermill or by hand): its argv says nothing, record this
        record_notebook(name, {"profile": profile, "seed": seed, "device": device, "data_dir": data_dir,
                               "out_dir": out_dir, "overrides": as_overrides(overrides)})
    root = REPO_ROOT
    cfg.data.root = str((root / cfg.data.root).resolve())
    if cfg.data.cache_dir:  # else beside data.root, wherever that is
        cfg.data.cache_dir = str((root / cfg.data.cache_dir).resolve())
    resolve_device(cfg.device)
    seed_everything(seed)
    out = Path(out_dir or root / "runs" / profile).resolve() / name
    out.mkdir(parents=True, exist_ok=True)
    print(run_banner(name, cfg, out.parent), flush=True)
    return cfg, out


# --- what a notebook will load or train -----------------------------------------------

# The trained models each notebook needs, as folders of its run (``runs/<profile>/``).  It
# loads those it finds and trains the others (its ``fit_*(..., resume=True)`` calls).
NOTEBOOK_MODELS: dict[str, tuple[str, ...]] = {
    "01_stft_and_cmx": (),
    "02_tokenizer": ("tokenizer", "classifier"),
    "03_next_scale_autoregression": ("tokenizer", "ar"),
    "04_evaluation": ("tokenizer", "ar", "raster_tokenizer", "raster", "classifier"),
    "05_ablation_cmx_vs_truncation": ("tokenizer", "ar", "classifier", "truncate/tokenizer", "truncate/ar"),
    "06_baselines": ("tokenizer", "ar", "classifier", "ddsp", "diffwave", "wavenet_ae"),
}


def model_steps(cfg: Config, model: str) -> tuple[str, int]:
    """Checkpoint kind and training steps of ``model``, a folder of the run (see :data:`NOTEBOOK_MODELS`)."""
    leaf = model.rsplit("/", 1)[-1]
    kind = {"raster_tokenizer": "tokenizer", "raster": "raster"}.get(leaf, leaf)
    if kind in ("tokenizer", "ar", "raster"):
        schedule = cfg.train_tokenizer if kind == "tokenizer" else cfg.train_ar
        if model.startswith(("raster", "truncate/")):  # baselines: as ablation.baseline_config scales them
            schedule = schedule.scaled(cfg.eval.baseline_budget)
        return kind, schedule.steps
    if kind == "classifier":
        return kind, cfg.train_classifier.steps
    return kind, getattr(cfg, kind).train.steps  # ddsp, diffwave, wavenet_ae


def model_status(cfg: Config, run: Path, model: str) -> tuple[str, float]:
    """What happens to ``run/model`` when a notebook asks for it: ``(one phrase, expected minutes of training)``.

    The minutes are 0 for a finished checkpoint (it loads in seconds) and NaN where the
    profile's training time was never measured (:data:`marslib.profiles.MEASURED_TRAIN_MINUTES`).
    """
    from .checkpoint import has_checkpoint, read_meta

    kind, steps = model_steps(cfg, model)
    done = read_meta(run / model)["step"] if has_checkpoint(run / model) else 0
    if done >= steps:
        return f"found (step {done}): loads in seconds", 0.0
    minutes = expected_train_minutes(cfg.profile, model.rsplit("/", 1)[-1], kind, steps - done)
    what = f"found at step {done} of {steps}: resumes" if done else f"missing: trains {steps} steps"
    return f"{what}, {format_minutes(minutes)}", float("nan") if minutes is None else minutes


def run_banner(name: str, cfg: Config, run: Path) -> str:
    """The screen :func:`setup_run` prints: profile, seed, device, run folder, and for each model
    notebook ``name`` needs whether it will be loaded or trained, and for about how long."""
    lines = [f"{name}: profile {cfg.profile}, seed {cfg.seed}, device {cfg.device}",
             f"  run folder {run}  (this notebook writes {name}/)"]
    models = NOTEBOOK_MODELS.get(name, ())
    if not models:
        lines.append("  trains nothing and loads no checkpoint")
    width = max(map(len, models), default=0)
    total = 0.0
    for model in models:
        phrase, minutes = model_status(cfg, run, model)
        lines.append(f"  {model:<{width}}  {phrase}")
        total += minutes
    if total >= 1:  # NaN (a time never measured) is not >= 1 either: no total then
        lines.append(f"  in all about {total:.0f} min of training before the rest of this notebook runs")
    return "\n".join(lines)


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
