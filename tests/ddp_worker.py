"""Run by test_train.py under torchrun: 2-process CPU (gloo) data-parallel training.

Usage: ``ddp_worker.py OUT_DIR RESTART_EVERY``.  The data set is
:func:`ddp_data` (shared with the test's single-process reference run); its
``"index"`` label is each example's row number.  The model's
``training_losses`` is wrapped to record the indices every step received, so
the test can check that each rank got its own disjoint part of the global batch.
Each rank writes ``rank<r>.pt`` (final state dict) and ``rank<r>.json`` (the
indices seen at every step).
"""

import json
import sys
from pathlib import Path

import torch

from marslib.config import get_config
from marslib.tokenizer import Tokenizer

N_EXAMPLES, STEPS, BATCH = 32, 6, 8


def ddp_config(restart_every: int):
    return get_config("smoke", {"train_tokenizer.steps": STEPS, "train_tokenizer.batch_size": BATCH,
                                "train_tokenizer.warmup_steps": 2, "tokenizer.restart_every": restart_every})


def ddp_data(cfg):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(N_EXAMPLES, *cfg.input_shape, generator=g) * 2 - 1
    return x, {"index": torch.arange(N_EXAMPLES)}


def recording_model(cfg) -> tuple[Tokenizer, list[list[int]]]:
    """A freshly initialised tokenizer (seed 0) whose ``training_losses`` logs the example indices."""
    torch.manual_seed(0)
    model, seen = Tokenizer(cfg), []
    losses = model.training_losses

    def record(batch):
        seen.append(batch[1]["index"].tolist())
        return losses(batch)

    model.training_losses = record
    return model, seen


if __name__ == "__main__":
    import torch.distributed as dist

    from marslib.train import train

    out, restart_every = Path(sys.argv[1]), int(sys.argv[2])
    cfg = ddp_config(restart_every)
    model, seen = recording_model(cfg)
    train(model, cfg, cfg.train_tokenizer, ddp_data(cfg), out / "run", "tokenizer", distributed=True,
          progress=False)
    rank = dist.get_rank()
    torch.save(model.state_dict(), out / f"rank{rank}.pt")
    (out / f"rank{rank}.json").write_text(json.dumps(seen))
    dist.destroy_process_group()
