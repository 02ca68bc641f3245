"""Run by test_train.py under torchrun: 2-process CPU (gloo) data-parallel training.

Each rank writes a checksum of its final weights; the test checks they agree.
"""

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from marslib.config import get_config
from marslib.tokenizer import Tokenizer
from marslib.train import train

out = Path(sys.argv[1])
cfg = get_config("smoke", {"train_tokenizer.steps": 4, "train_tokenizer.batch_size": 8,
                           "tokenizer.restart_every": 2})
g = torch.Generator().manual_seed(0)
x = torch.rand(32, *cfg.input_shape, generator=g) * 2 - 1
torch.manual_seed(0)
model = Tokenizer(cfg)
train(model, cfg, cfg.train_tokenizer, (x, {}), out / "run", "tokenizer", distributed=True, progress=False)
checksum = sum(float(p.detach().double().sum()) for p in model.parameters())
(out / f"rank{dist.get_rank()}.txt").write_text(repr(checksum))
dist.destroy_process_group()
