"""One training loop for both models (tokenizer and autoregressor).

A model plugs in by defining ``training_losses(batch) -> dict`` whose ``"loss"``
entry is minimised; every other entry is logged.  The loop adds what a serious
run needs and nothing model-specific:

* AdamW (no decay on biases, norms, embeddings), linear warm-up then cosine decay,
  gradient clipping, AMP (bfloat16) on CUDA only;
* a stateless batch order (epoch ``e`` is ``randperm(N, seed + e)``) and the torch
  RNG saved in every checkpoint, so an interrupted run resumed from its last
  checkpoint reproduces the uninterrupted one exactly on CPU;
* periodic validation, atomic checkpoints (``marslib.checkpoint``), tqdm progress;
* data parallel over processes launched by ``torchrun`` (``distributed=True``):
  each rank takes every ``world``-th example of the global batch.

Defined in notebook 02.
"""

from __future__ import annotations

import json
import math
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint, save_checkpoint
from .config import Config, TrainConfig
from .runtime import atomic_write, resolve_device

Batch = tuple[torch.Tensor, dict[str, torch.Tensor]]
CHECKPOINT = "last"


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


def train(model: nn.Module, cfg: Config, tcfg: TrainConfig, train_data: Batch, run_dir: str | Path,
          kind: str, valid_data: Batch | None = None, resume: bool = False, stop_after: int | None = None,
          distributed: bool = False, progress: bool = True) -> dict:
    """Train ``model`` for ``tcfg.steps`` steps; checkpoints go to ``run_dir/last.*``.

    Args:
        train_data, valid_data: ``(X (N, ...), {label: (N,)})`` tensors in memory.
        kind: checkpoint kind ("tokenizer", "ar", ...), checked on resume.
        resume: continue from ``run_dir/last`` if it exists (else start afresh).
        stop_after: stop (with a checkpoint) after this many steps, as an
            interruption would; used to test exact resume.
        distributed: this process is one of a ``torchrun`` group (gloo on CPU).

    Returns:
        the history ``{"train": [...], "valid": [...]}`` (also in ``run_dir/history.json``).
    """
    device = resolve_device(cfg.device)
    rank, world = 0, 1
    if distributed:
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
    run_dir = Path(run_dir)
    model.to(device).train()
    optimizer = make_optimizer(model, tcfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, tcfg.warmup_steps, tcfg.steps))
    history: dict[str, list] = {"train": [], "valid": []}
    start = 0
    if resume and (run_dir / f"{CHECKPOINT}.json").exists():
        meta = load_checkpoint(run_dir, CHECKPOINT, model, kind, cfg, optimizer, scheduler)
        start, history = meta["step"], meta["extra"]["history"]
    if start == 0:  # a resumed run restored the RNG from the checkpoint instead
        torch.manual_seed(cfg.seed + rank)
    step_fn = _Losses(model)
    if distributed:
        step_fn = nn.parallel.DistributedDataParallel(step_fn, find_unused_parameters=True)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if tcfg.amp and device.type == "cuda" else nullcontext()
    last = tcfg.steps if stop_after is None else min(tcfg.steps, stop_after)
    bar = tqdm(total=tcfg.steps, initial=start, desc=f"train {kind}", disable=not progress or rank != 0)

    def checkpoint(step: int) -> None:
        if rank == 0:
            save_checkpoint(run_dir, CHECKPOINT, model, cfg, kind, step, optimizer, scheduler,
                            extra={"history": history})
            atomic_write(run_dir / "history.json", lambda tmp: Path(tmp).write_text(json.dumps(history)))

    step = start
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
            if done % tcfg.checkpoint_every == 0 or done == last:
                checkpoint(done)
    except KeyboardInterrupt:
        checkpoint(len(history["train"]))  # resume picks up from here
        raise
    finally:
        bar.close()
    return history

