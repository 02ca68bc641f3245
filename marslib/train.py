"""One training loop for both models (tokenizer and autoregressor).

A model plugs in by defining ``training_losses(batch) -> dict`` whose ``"loss"``
entry is minimised; every other entry is logged.  The loop adds what a serious
run needs and nothing model-specific:

* AdamW (no decay on biases, norms, embeddings), linear warm-up then cosine decay,
  gradient clipping, AMP (bfloat16) on CUDA only;
* a stateless batch order (epoch ``e`` is ``randperm(N, seed + e)``) and the torch
  RNG saved in every checkpoint, so a run killed at any instant and resumed from
  its last checkpoint reproduces the uninterrupted one bit for bit on CPU;
* checkpoints taken between steps only (Ctrl-C waits for the step to end and saves
  it), written atomically (``marslib.checkpoint``); resuming refuses a checkpoint
  made with another training setup, and training never overwrites one unasked;
* periodic validation, tqdm progress;
* data parallel over processes launched by ``torchrun`` (``distributed=True``):
  each rank takes every ``world``-th example of the global batch.

Defined in notebook 02.
"""

from __future__ import annotations

import json
import math
import signal
import threading
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from .checkpoint import (TRAINING_CONFIG, CheckpointError, clear_checkpoints, config_diff, has_checkpoint,
                         load_checkpoint, read_meta, save_checkpoint)
from .config import Config, TrainConfig
from .runtime import atomic_write, resolve_device

Batch = tuple[torch.Tensor, dict[str, torch.Tensor]]


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


def _select(data: Batch, idx: torch.Tensor, device: torch.device) -> Batch:
    x, labels = data
    return x[idx].to(device), {k: v[idx].to(device) for k, v in labels.items()}


@torch.no_grad()
def evaluate(model: nn.Module, data: Batch, batch_size: int, device: torch.device) -> dict[str, float]:
    """Mean of every ``training_losses`` term over a dataset, in eval mode."""
    was_training = model.training
    model.eval()
    totals: dict[str, float] = {}
    n = len(data[0])
    for start in range(0, n, batch_size):
        idx = torch.arange(start, min(n, start + batch_size))
        for k, v in model.training_losses(_select(data, idx, device)).items():
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


def _resume_state(run_dir: Path, model: nn.Module, kind: str, cfg: Config, tcfg: TrainConfig,
                  optimizer, scheduler, made_from: dict[str, str]) -> tuple[int, dict]:
    """Load the run's newest checkpoint for resuming; refuse one made by another run.

    Everything that decides what is learned must match (``TRAINING_CONFIG``: the
    model, the data filters, the schedule, the seed, and the checkpoints the model
    was made from); only ``steps`` may grow.
    """
    saved = read_meta(run_dir)
    section = {"tokenizer": "train_tokenizer", "classifier": "train_classifier"}.get(kind, "train_ar")
    fields = TRAINING_CONFIG.get(kind, ("seed", "audio", "cmx", "tokenizer", section))
    diff = config_diff(Config.from_dict(saved["config"]), cfg, fields, ignore=(f"{section}.steps",))
    diff += [f"{name} checkpoint: {saved.get('made_from', {}).get(name)} -> {sha}"
             for name, sha in made_from.items() if saved.get("made_from", {}).get(name) != sha]
    if diff:
        raise CheckpointError(f"{run_dir} holds a {kind} run with a different training setup "
                              f"({'; '.join(diff)}); resume with the same settings, or start again with "
                              f"--overwrite (or another --out)")
    if saved["step"] > tcfg.steps:
        raise CheckpointError(f"{run_dir} has already trained {saved['step']} steps, more than "
                              f"{section}.steps = {tcfg.steps}; ask for at least {saved['step']}")
    meta = load_checkpoint(run_dir, model, kind, cfg, optimizer, scheduler)
    return meta["step"], meta["extra"]["history"]


def train(model: nn.Module, cfg: Config, tcfg: TrainConfig, train_data: Batch, run_dir: str | Path,
          kind: str, valid_data: Batch | None = None, resume: bool = False, overwrite: bool = False,
          stop_after: int | None = None, distributed: bool = False, progress: bool = True,
          made_from: dict[str, str] | None = None) -> dict:
    """Train ``model`` for ``tcfg.steps`` steps; checkpoints go to ``run_dir`` (``marslib.checkpoint``).

    Args:
        train_data, valid_data: ``(X (N, ...), {label: (N,)})`` tensors in memory.
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
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
    run_dir, made_from = Path(run_dir), made_from or {}
    model.to(device).train()
    optimizer = make_optimizer(model, tcfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, tcfg.warmup_steps, tcfg.steps))
    history: dict[str, list] = {"train": [], "valid": [], "schedule": []}
    start = 0
    if has_checkpoint(run_dir) and not resume:
        if not overwrite:
            raise CheckpointError(f"{run_dir} already holds a trained {kind}; continue it with --resume "
                                  f"or replace it with --overwrite")
        if rank == 0:
            clear_checkpoints(run_dir)
    elif resume and has_checkpoint(run_dir):
        start, history = _resume_state(run_dir, model, kind, cfg, tcfg, optimizer, scheduler, made_from)
    if start == 0:  # a resumed run restored the RNG from the checkpoint instead
        torch.manual_seed(cfg.seed + rank)
    if not history["schedule"] or history["schedule"][-1]["steps"] != tcfg.steps:
        history["schedule"].append({"from_step": start, "steps": tcfg.steps})
    step_fn = _Losses(model)
    if distributed:
        step_fn = nn.parallel.DistributedDataParallel(step_fn, find_unused_parameters=True)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if tcfg.amp and device.type == "cuda" else nullcontext()
    last = tcfg.steps if stop_after is None else min(tcfg.steps, stop_after)
    bar = tqdm(total=tcfg.steps, initial=start, desc=f"train {kind}", disable=not progress or rank != 0)

    def checkpoint(step: int) -> None:
        if rank == 0:
            save_checkpoint(run_dir, model, cfg, kind, step, optimizer, scheduler,
                            extra={"history": history}, made_from=made_from)
            atomic_write(run_dir / "history.json", lambda tmp: Path(tmp).write_text(json.dumps(history)))

    with _DeferredInterrupt() as interrupt:
        try:
            for step in range(start, last):
                idx = batch_indices(len(train_data[0]), tcfg.batch_size, cfg.seed, step)[rank::world]
                with amp:
                    terms = step_fn(_select(train_data, idx, device))
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
