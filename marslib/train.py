"""One training loop for both models (tokenizer and autoregressor).

A model plugs in by defining ``training_losses(batch) -> dict`` whose ``"loss"``
entry is minimised; every other entry is logged.  The loop adds what a serious
run needs and nothing model-specific:

* AdamW (no decay on biases, norms, embeddings), linear warm-up then cosine decay,
  gradient clipping, bf16 autocast (``amp``) on CUDA and on CPUs with native bf16
  (:func:`autocast`);
* a stateless batch order (epoch ``e`` is ``randperm(N, seed + e)``) and the torch
  RNG saved in every checkpoint, so a run killed at any instant and resumed from
  its last checkpoint reproduces the uninterrupted one bit for bit on CPU;
* checkpoints taken between steps only (Ctrl-C waits for the step to end and saves
  it), written atomically (``marslib.checkpoint``); resuming refuses a checkpoint
  made with another training setup, and training never overwrites one unasked;
* periodic validation, tqdm progress, and one line before it starts saying what it
  trains, for how many steps and for about how long (:func:`training_notice`);
* data read from an on-disk store through a ``DataLoader`` (``data.workers``
  processes read ahead), so memory is bounded by a batch, not the dataset;
* data parallel over processes launched by ``torchrun`` on one or many machines
  (``distributed=True``): each rank reads every ``world``-th example of the global
  batch, uses the GPU of its ``LOCAL_RANK``, and only rank 0 writes.

Defined in notebook 02.
"""

from __future__ import annotations

import json
import math
import signal
import threading
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .checkpoint import (TRAIN_SECTION, TRAINING_CONFIG, CheckpointError, clear_checkpoints, config_diff,
                         has_checkpoint, load_checkpoint, read_meta, save_checkpoint)
from .config import Config, TrainConfig
from .data.store import as_rows
from .profiles import expected_train_minutes, format_minutes
from .provenance import cpu_has_bf16
from .runtime import atomic_write, init_distributed, resolve_device

Batch = tuple[torch.Tensor, dict[str, torch.Tensor]]


def autocast(device: torch.device, enabled: bool) -> AbstractContextManager:
    """The training step's mixed precision: bf16 autocast when ``enabled`` on CUDA, or on
    a CPU with native bf16; float32 otherwise (nothing to gain from emulated bf16).

    bf16 keeps float32's exponent range, so no loss scaling; weights, gradients and AdamW
    state stay float32.  What must stay exact opts out inside the model (the quantizer's
    nearest-code search, ``MultiScaleQuantizer.forward``).
    """
    if enabled and (device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16())):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


class _Losses(nn.Module):
    """Makes ``training_losses`` the forward pass, so DDP can hook it."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        return self.model.training_losses(batch)


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> torch.Tensor:
    """Example indices of global batch ``step``: a function of its arguments only."""
    per_epoch = max(1, n // batch_size)
    epoch, i = divmod(step, per_epoch)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    return perm[i * batch_size:(i + 1) * batch_size]


def lr_factor(step: int, warmup: int, total: int, floor: float = 0.1) -> float:
    """Linear warm-up to 1, then cosine decay to ``floor``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(model: nn.Module, tcfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices and conv kernels only (nanoGPT's rule, minus embeddings)."""
    no_decay = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay, rest = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 and id(p) not in no_decay else rest).append(p)
    groups = [{"params": decay, "weight_decay": tcfg.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=tcfg.lr, betas=(0.9, 0.95))


def _to(batch: Batch, device: torch.device) -> Batch:
    x, labels = batch
    return x.to(device, non_blocking=True), {k: v.to(device, non_blocking=True) for k, v in labels.items()}


class _StepBatches(Dataset):
    """Item ``step`` is this rank's share of global batch ``step``, read from ``rows``.

    This is the loop's distributed sampler: global batch ``step`` is a function of
    (seed, step) alone (:func:`batch_indices`), and rank ``r`` of ``world`` reads
    only its rows ``r::world`` of it from the store.  Being indexed by step, the
    order survives a resume exactly, and ``DataLoader`` workers can read ahead.
    """

    def __init__(self, rows, batch_size: int, seed: int, rank: int, world: int) -> None:
        self.rows, self.batch_size, self.seed, self.rank, self.world = rows, batch_size, seed, rank, world

    def __len__(self) -> int:
        return 2 ** 62  # indexed by step; the sampler says which steps

    def __getitem__(self, step: int) -> Batch:
        idx = batch_indices(len(self.rows), self.batch_size, self.seed, step)[self.rank::self.world]
        return self.rows.read(idx)


def _loader(rows, tcfg: TrainConfig, cfg: Config, steps: range, rank: int, world: int, device) -> DataLoader:
    workers = cfg.data.workers
    # Its own generator: a DataLoader draws a seed for its workers on every iteration, which
    # would otherwise advance the global RNG and make a resumed run differ from an unbroken one.
    return DataLoader(_StepBatches(rows, tcfg.batch_size, cfg.seed, rank, world), sampler=steps, batch_size=None,
                      num_workers=workers, prefetch_factor=2 if workers else None,
                      pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(cfg.seed))


@torch.no_grad()
def evaluate(model: nn.Module, data, batch_size: int, device: torch.device) -> dict[str, float]:
    """Mean of every ``training_losses`` term over a dataset (``(X, labels)`` or a row store), in eval mode."""
    rows = as_rows(data)
    was_training = model.training
    model.eval()
    totals: dict[str, float] = {}
    n = len(rows)
    for start in range(0, n, batch_size):
        idx = torch.arange(start, min(n, start + batch_size))
        for k, v in model.training_losses(_to(rows.read(idx), device)).items():
            totals[k] = totals.get(k, 0.0) + float(v) * len(idx)
    model.train(was_training)
    return {k: v / n for k, v in totals.items()}


class _DeferredInterrupt:
    """Hold Ctrl-C (SIGINT) until the current step ends, so the checkpoint is taken between steps.

    A second Ctrl-C stops at once: the last complete checkpoint is safe on disk anyway.
    Signal handlers can only be set from the main thread; elsewhere this does nothing.
    """

    def __init__(self) -> None:
        self.pending = False

    def _handler(self, signum, frame) -> None:
        if self.pending:
            raise KeyboardInterrupt
        self.pending = True

    def __enter__(self) -> "_DeferredInterrupt":
        self._active = threading.current_thread() is threading.main_thread()
        if self._active:
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        if self._active:
            signal.signal(signal.SIGINT, self._previous)


def check_start(run_dir: str | Path, kind: str, cfg: Config, tcfg: TrainConfig, resume: bool = False,
                overwrite: bool = False, made_from: dict[str, str] | None = None) -> bool:
    """May a ``kind`` training run start in ``run_dir``?  True: it resumes from the newest checkpoint.

    :func:`train` asks this, and so do the ``fit_*`` functions before loading any data,
    so that a refusal comes at once.  A checkpoint is never replaced unless
    ``overwrite``, and a resumed run must agree on everything that decides what is
    learned (``TRAINING_CONFIG``: the model, the data filters, the schedule, the seed,
    and the checkpoints the model was made from); only ``steps`` may grow.

    Raises:
        CheckpointError: naming what to do (``--resume``, ``--overwrite``) or each difference.
    """
    run_dir = Path(run_dir)
    if not has_checkpoint(run_dir):
        return False
    if not resume:
        if not overwrite:
            raise CheckpointError(f"{run_dir} already holds a trained {kind}; continue it with --resume "
                                  f"or replace it with --overwrite")
        return False
    saved = read_meta(run_dir)
    section = TRAIN_SECTION.get(kind, "train_ar")
    fields = TRAINING_CONFIG.get(kind, ("seed", "audio", "cmx", "tokenizer", section))
    diff = config_diff(Config.from_dict(saved["config"]), cfg, fields, ignore=(f"{section}.steps",))
    diff += [f"{name} checkpoint: {saved.get('made_from', {}).get(name)} -> {sha}"
             for name, sha in (made_from or {}).items() if saved.get("made_from", {}).get(name) != sha]
    if diff:
        raise CheckpointError(f"{run_dir} holds a {kind} run with a different training setup "
                              f"({'; '.join(diff)}); resume with the same settings, or start again with "
                              f"--overwrite (or another --out)")
    if saved["step"] > tcfg.steps:
        raise CheckpointError(f"{run_dir} has already trained {saved['step']} steps, more than "
                              f"{section}.steps = {tcfg.steps}; ask for at least {saved['step']}")
    return True


def training_notice(run_dir: Path, kind: str, cfg: Config, tcfg: TrainConfig, start: int) -> str:
    """The line :func:`train` prints before its first step (or instead of training, when the
    checkpoint in ``run_dir`` is already at ``tcfg.steps``).

    A student about to wait half an hour is told so first: the expected time is the measured
    one for the profile (:data:`marslib.profiles.MEASURED_TRAIN_MINUTES`), scaled to the steps left.
    """
    model = run_dir.name  # tokenizer, ar, raster, ddsp, ...: the model's folder in the run
    if start >= tcfg.steps:
        return f"Loading {model} from {run_dir} (trained {start} steps)"
    minutes = expected_train_minutes(cfg.profile, model, kind, tcfg.steps - start)
    what = f"Resuming {model} at step {start} of {tcfg.steps}" if start else f"Training {model} for {tcfg.steps} steps"
    return f"{what} (profile {cfg.profile}: {format_minutes(minutes)}) → {run_dir}"


def train(model: nn.Module, cfg: Config, tcfg: TrainConfig, train_data: Batch, run_dir: str | Path,
          kind: str, valid_data: Batch | None = None, resume: bool = False, overwrite: bool = False,
          stop_after: int | None = None, distributed: bool = False, progress: bool = True,
          made_from: dict[str, str] | None = None) -> dict:
    """Train ``model`` for ``tcfg.steps`` steps; checkpoints go to ``run_dir`` (``marslib.checkpoint``).

    Args:
        train_data, valid_data: a row store (:mod:`marslib.data.store`, read lazily,
            through a ``DataLoader`` with ``data.workers`` processes) or
            ``(X (N, ...), {label: (N,)})`` tensors in memory.
        kind: checkpoint kind ("tokenizer", "ar", ...), checked on resume.
        resume: continue from the newest checkpoint in ``run_dir`` if there is one
            (refused if it was made with another training setup).
        overwrite: start afresh even if ``run_dir`` holds checkpoints (they are
            deleted); without it (and without ``resume``) existing work is never replaced.
        stop_after: stop (with a checkpoint) after this many steps, as an
            interruption would; used to test exact resume.
        distributed: this process is one of a ``torchrun`` group (gloo on CPU).
        made_from: fingerprints of the checkpoints the model depends on (the
            transformer's tokenizer), recorded and checked on resume.

    Returns:
        the history ``{"train": [...], "valid": [...], "schedule": [...]}`` (also in
        ``run_dir/history.json``); ``schedule`` records the ``steps`` asked for at the
        start and at each resume.
    """
    device = resolve_device(cfg.device)
    rank, world = 0, 1
    if distributed:
        rank, world, device = init_distributed(device)
    run_dir, made_from = Path(run_dir), made_from or {}
    train_rows = as_rows(train_data)
    model.to(device).train()
    optimizer = make_optimizer(model, tcfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, tcfg.warmup_steps, tcfg.steps))
    history: dict[str, list] = {"train": [], "valid": [], "schedule": []}
    start = 0
    if check_start(run_dir, kind, cfg, tcfg, resume, overwrite, made_from):
        meta = load_checkpoint(run_dir, model, kind, cfg, optimizer, scheduler)
        start, history = meta["step"], meta["extra"]["history"]
    elif has_checkpoint(run_dir) and rank == 0:  # overwrite: the old run goes
        clear_checkpoints(run_dir)
    if start == 0:  # a resumed run restored the RNG from the checkpoint instead
        torch.manual_seed(cfg.seed + rank)
    if not history["schedule"] or history["schedule"][-1]["steps"] != tcfg.steps:
        history["schedule"].append({"from_step": start, "steps": tcfg.steps})
    step_fn = _Losses(model)
    if distributed:
        step_fn = nn.parallel.DistributedDataParallel(step_fn, find_unused_parameters=True)
    amp = autocast(device, tcfg.amp)
    last = tcfg.steps if stop_after is None else min(tcfg.steps, stop_after)
    if rank == 0:
        bf16 = "; bf16 autocast" if isinstance(amp, torch.autocast) and start < tcfg.steps else ""
        print(training_notice(run_dir, kind, cfg, tcfg, start) + bf16, flush=True)
    bar = tqdm(total=tcfg.steps, initial=start, desc=f"train {kind}", disable=not progress or rank != 0)

    def checkpoint(step: int) -> None:
        if rank == 0:
            save_checkpoint(run_dir, model, cfg, kind, step, optimizer, scheduler,
                            extra={"history": history}, made_from=made_from)
            atomic_write(run_dir / "history.json", lambda tmp: Path(tmp).write_text(json.dumps(history)))

    batches = _loader(train_rows, tcfg, cfg, range(start, last), rank, world, device)
    with _DeferredInterrupt() as interrupt:
        try:
            for step, batch in zip(range(start, last), batches):
                with amp:
                    terms = step_fn(_to(batch, device))
                loss = terms["loss"]
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"{kind} loss became {float(loss)} at step {step}; "
                                             f"lower train lr or check the data")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
                optimizer.step()
                scheduler.step()
                record = {"step": step + 1, "lr": scheduler.get_last_lr()[0], "grad_norm": float(grad_norm)}
                history["train"].append(record | {k: float(v.detach()) for k, v in terms.items()})
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.4f}")
                done = step + 1
                if valid_data is not None and rank == 0 and (done % tcfg.eval_every == 0 or done == tcfg.steps):
                    history["valid"].append({"step": done} | evaluate(model, valid_data, tcfg.batch_size, device))
                if done % tcfg.checkpoint_every == 0 or done == last or interrupt.pending:
                    checkpoint(done)
                if interrupt.pending:  # Ctrl-C arrived during this step: it is saved, now stop
                    bar.write(f"interrupted: checkpoint saved at step {done}; continue with --resume")
                    raise KeyboardInterrupt
        finally:
            bar.close()
    return history
