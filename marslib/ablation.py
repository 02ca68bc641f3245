"""CMX vs truncation at the same token budget: the paper's ablation (notebook 05).

MARS folds the ``F x T`` spectrogram into ``r^2`` channels of ``F/r x T/r``
(CMX, lossless).  Its ablation compares that with *truncation*: keep only the
``F/r x T/r`` corner (the lowest frequencies of the first frames), so both arms
hand the tokenizer the same spatial grid, get the same latent grid and the same
number of tokens.  Everything else is shared; the arms differ in one config
field, ``cmx.mode``::

    <run>/tokenizer, <run>/ar                    the CMX arm (MARS itself)
    <run>/truncate/tokenizer, <run>/truncate/ar  the truncation arm

A third representation, ``full`` (no folding: ``1 x F x T`` with a tokenizer
that downsamples ``r`` times more to reach the same latent grid), is what CMX
saves compute against; :func:`step_costs` times all three.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from .cmx import to_model_input
from .config import Config, validate
from .runtime import saved_tensor_bytes, time_interleaved
from .tokenizer import Tokenizer
from .train import autocast, make_optimizer

REPRESENTATIONS = ("full", "cmx", "truncate")
TRUNCATE_DIR = "truncate"


def baseline_config(cfg: Config) -> Config:
    """``cfg`` with both training budgets scaled by ``cfg.eval.baseline_budget`` (<= 1).

    The raster baseline and the truncation arm train with this budget: never
    more than MARS itself, less where the profile says so (course: a quarter).
    """
    out = Config.from_dict(cfg.to_dict())
    out.train_tokenizer = cfg.train_tokenizer.scaled(cfg.eval.baseline_budget)
    out.train_ar = cfg.train_ar.scaled(cfg.eval.baseline_budget)
    return out


def representation_config(cfg: Config, representation: str) -> Config:
    """``cfg`` for one input representation; all three reach the same latent grid and token count."""
    if representation not in REPRESENTATIONS:
        raise ValueError(f"representation must be one of {REPRESENTATIONS}, got {representation!r}")
    out = Config.from_dict(cfg.to_dict())
    out.cmx = dataclasses.replace(out.cmx, mode="truncate" if representation == "truncate" else "cmx")
    if representation == "full":
        out.cmx.factor = 1
        tok, r = cfg.tokenizer, cfg.cmx.factor
        out.tokenizer = dataclasses.replace(tok, downsample=tok.downsample * r,
                                            time_downsample=tok.time_downsample * r)  # 0 stays "the same"
    validate(out)
    return out


def truncation_config(cfg: Config) -> Config:
    """The truncation arm: ``cmx.mode = "truncate"`` and the baseline budget."""
    return baseline_config(representation_config(cfg, "truncate"))


def fit_truncation(cfg: Config, run: str | Path, resume: bool = True, overwrite: bool = False,
                   progress: bool = True):
    """Train (or resume, or just load) the truncation arm under ``<run>/truncate``.

    ``resume`` / ``overwrite`` as in :func:`marslib.train.train`, for both of its models.

    Returns ``(transformer, tokenizer)`` in eval mode.
    """
    from .autoregressor.training import fit_ar
    from .tokenizer.training import fit_tokenizer

    tcfg, arm = truncation_config(cfg), Path(run) / TRUNCATE_DIR
    tokenizer, _ = fit_tokenizer(tcfg, arm / "tokenizer", resume=resume, overwrite=overwrite, progress=progress)
    model, _ = fit_ar(tcfg, arm, resume=resume, overwrite=overwrite, progress=progress)
    return model, tokenizer


def tokenizer_train_step(cfg: Config, batch_size: int, device: torch.device | str = "cpu"):
    """A tokenizer, its optimizer and a random batch for ``cfg``; returns ``(model, step)``.

    ``step()`` is one full training step: forward, composite loss, backward,
    gradient clipping, AdamW (bf16 autocast if ``train_tokenizer.amp``, as
    :func:`marslib.train.autocast` decides).  Random
    inputs: cost does not depend on the values.
    """
    device = torch.device(device)
    torch.manual_seed(0)
    model = Tokenizer(cfg).to(device).train()
    opt = make_optimizer(model, cfg.train_tokenizer)
    spec = torch.rand(batch_size, 1, *cfg.spec_shape, device=device) * 2 - 1  # normalised log-magnitude
    x = to_model_input(spec, cfg.cmx).contiguous()
    amp = autocast(device, cfg.train_tokenizer.amp)

    def step() -> None:
        with amp:
            loss = model.training_losses((x, {}))["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.train_tokenizer.grad_clip)
        opt.step()

    return model, step


def step_costs(cfg: Config, batch_size: int = 8, repeats: int = 3) -> list[dict]:
    """Tokenizer training-step cost of each representation, measured side by side.

    Returns one dict per representation: ``input`` shape, ``tokens``, median
    ``step_ms`` (repetitions interleaved, so background load hits every
    representation alike) and ``activation_mb`` (what autograd saves for
    backward: the memory a training step needs beyond the weights,
    device-independent).
    """
    steps, rows = {}, []
    for rep in REPRESENTATIONS:
        rcfg = representation_config(cfg, rep)
        model, steps[rep] = tokenizer_train_step(rcfg, batch_size)
        steps[rep]()  # warm-up (allocations, first-call dispatch)
        rows.append({"representation": rep, "input": "x".join(map(str, rcfg.input_shape)),
                     "tokens": sum(h * w for h, w in rcfg.tokenizer.scales),
                     "activation_mb": saved_tensor_bytes(steps[rep], list(model.parameters())) / 2 ** 20})
    times = time_interleaved(steps, torch.device("cpu"), repeats, warmup=0)
    for row in rows:
        row["step_ms"] = 1000 * times[row["representation"]]
    return rows
