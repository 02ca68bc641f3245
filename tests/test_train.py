import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from marslib.checkpoint import CheckpointError, has_checkpoint, load_checkpoint
from marslib.config import get_config
from marslib.tokenizer import Tokenizer
from marslib.tokenizer.training import load_tokenizer
from marslib.train import batch_indices, lr_factor, train

OVERRIDES = {"train_tokenizer.steps": 6, "train_tokenizer.eval_every": 3, "train_tokenizer.checkpoint_every": 3,
             "train_tokenizer.batch_size": 4, "tokenizer.restart_every": 2}


def _data(cfg, n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *cfg.input_shape, generator=g) * 2 - 1, {"pitch": torch.arange(n)}


def _run(cfg, run_dir, **kw):
    torch.manual_seed(0)
    model = Tokenizer(cfg)
    data = _data(cfg)
    return model, train(model, cfg, cfg.train_tokenizer, data, run_dir, "tokenizer",
                        valid_data=data, progress=False, **kw)


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    cfg = get_config("smoke", OVERRIDES)
    model_a, full = _run(cfg, tmp_path / "a")
    _run(cfg, tmp_path / "b", stop_after=3)                 # "interrupted" after 3 steps
    torch.manual_seed(1234)                                 # whatever the RNG is now ...
    model_b = Tokenizer(cfg)
    resumed = train(model_b, cfg, cfg.train_tokenizer, _data(cfg), tmp_path / "b", "tokenizer",
                    valid_data=_data(cfg), resume=True, progress=False)
    assert [r["loss"] for r in resumed["train"]] == [r["loss"] for r in full["train"]]
    assert resumed == full
    for (name, p), q in zip(model_a.state_dict().items(), model_b.state_dict().values()):
        assert torch.equal(p, q), name
    saved = json.loads((tmp_path / "a" / "history.json").read_text())
    assert len(saved["train"]) == 6 and [v["step"] for v in saved["valid"]] == [3, 6]


def test_same_seed_same_losses(tmp_path):
    cfg = get_config("smoke", OVERRIDES)
    assert _run(cfg, tmp_path / "a")[1] == _run(cfg, tmp_path / "b")[1]


def test_batch_order_is_stateless_and_covers_each_epoch():
    first_epoch = torch.cat([batch_indices(10, 5, seed=3, step=s) for s in range(2)])
    assert sorted(first_epoch.tolist()) == list(range(10))
    assert torch.equal(batch_indices(10, 5, 3, 7), batch_indices(10, 5, 3, 7))


def test_lr_schedule_warms_up_then_decays():
    f = [lr_factor(s, warmup=10, total=100) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:])) and f[-1] == pytest.approx(0.1, abs=1e-3)


def test_checkpoint_errors_are_clear(tmp_path):
    cfg = get_config("smoke", OVERRIDES)
    _run(cfg, tmp_path / "run")
    with pytest.raises(CheckpointError, match="no checkpoint in"):
        load_tokenizer(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="different model config.*codebook_size: 64 -> 128"):
        load_tokenizer(tmp_path / "run", get_config("smoke", {"tokenizer.codebook_size": 128}))
    with pytest.raises(CheckpointError, match="'tokenizer' checkpoint, not 'ar'"):
        load_checkpoint(tmp_path / "run", Tokenizer(cfg), "ar")


def test_loaded_tokenizer_equals_trained_one(tmp_path):
    cfg = get_config("smoke", OVERRIDES)
    model, _ = _run(cfg, tmp_path / "run")
    loaded = load_tokenizer(tmp_path / "run", cfg)
    x = _data(cfg)[0][:2]
    model.eval()
    assert all(torch.equal(a, b) for a, b in zip(model.encode(x), loaded.encode(x)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(out: Path, restart_every: int) -> list[dict]:
    """Run ``ddp_worker.py`` on 2 CPU processes; return each rank's ``{"state", "seen"}``."""
    worker = Path(__file__).with_name("ddp_worker.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(worker), str(out), str(restart_every)]
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [{"state": torch.load(out / f"rank{r}.pt"), "seen": json.loads((out / f"rank{r}.json").read_text())}
            for r in (0, 1)]


# Measured on CPU: the 2-process weights differ from the 1-process ones by at most
# 2.6e-6 (summation order: the mean of two half-batch gradients vs one mean), while
# 6 steps move every weight tensor by at least 7.8e-4.  Note that giving each rank
# the *whole* batch would also pass this comparison (same average gradient), hence
# the disjoint-halves check.
DDP_ATOL = 2e-5


def test_two_process_data_parallel_equals_one_process(tmp_path):
    """2 ranks x half a batch == 1 process x the whole batch, and each rank saw its own half."""
    from ddp_worker import BATCH, N_EXAMPLES, STEPS, ddp_config, ddp_data, recording_model

    # Dead-code restarts off: they draw random vectors from each rank's own half
    # batch (rank 0's win), so they cannot match a single process's draw.
    cfg = ddp_config(restart_every=0)
    ranks = _torchrun(tmp_path, restart_every=0)
    assert has_checkpoint(tmp_path / "run")  # rank 0 wrote the checkpoint
    for step in range(STEPS):
        batch = batch_indices(N_EXAMPLES, BATCH, cfg.seed, step).tolist()
        r0, r1 = ranks[0]["seen"][step], ranks[1]["seen"][step]
        assert len(r0) == len(r1) == BATCH // 2, (step, r0, r1)
        assert not set(r0) & set(r1), f"step {step}: ranks overlap {r0} {r1}"
        assert sorted(r0 + r1) == sorted(batch), f"step {step}: {r0} + {r1} != global batch {batch}"

    model, seen = recording_model(cfg)
    init = {name: p.clone() for name, p in model.state_dict().items()}
    train(model, cfg, cfg.train_tokenizer, ddp_data(cfg), tmp_path / "single", "tokenizer", progress=False)
    assert [sorted(s) for s in seen] == [sorted(a + b) for a, b in zip(ranks[0]["seen"], ranks[1]["seen"])]
    for name, p in model.state_dict().items():
        if not p.is_floating_point() or name.endswith("ema_hits_KV"):  # step counter; DDP broadcasts
            continue                                                   # rank 0's half-batch hit counts
        assert (p - init[name]).abs().max() > 20 * DDP_ATOL, f"{name} barely trained: the check is vacuous"
        for r in (0, 1):
            q = ranks[r]["state"][name]
            assert torch.allclose(q, p, rtol=0, atol=DDP_ATOL), f"rank {r} {name}: {(q - p).abs().max():.2e}"


def test_two_process_replicas_agree_with_restarts(tmp_path):
    """With dead-code restarts every 2 steps (random, per rank) rank 0's codebook is broadcast."""
    ranks = _torchrun(tmp_path, restart_every=2)
    for name, p in ranks[0]["state"].items():
        assert torch.equal(p, ranks[1]["state"][name]), name


def test_initial_model_is_the_seeded_start_and_leaves_the_rng_alone():
    from marslib.runtime import initial_model

    cfg = get_config("smoke")
    torch.manual_seed(5)
    state = torch.get_rng_state()
    model = initial_model(lambda: Tokenizer(cfg), cfg.seed)
    assert torch.equal(torch.get_rng_state(), state) and not model.training
    torch.manual_seed(cfg.seed)  # what fit_tokenizer does before building the model it trains
    for (name, p), q in zip(Tokenizer(cfg).state_dict().items(), model.state_dict().values()):
        assert torch.equal(p, q), name


def test_autocast_is_bf16_only_where_it_pays(monkeypatch):
    import marslib.train as train_mod
    cpu = torch.device("cpu")
    assert not isinstance(train_mod.autocast(cpu, enabled=False), torch.autocast)
    monkeypatch.setattr(train_mod, "cpu_has_bf16", lambda: False)   # emulated bf16 is slower: stay float32
    assert not isinstance(train_mod.autocast(cpu, enabled=True), torch.autocast)
    monkeypatch.setattr(train_mod, "cpu_has_bf16", lambda: True)
    ctx = train_mod.autocast(cpu, enabled=True)
    assert isinstance(ctx, torch.autocast)
    with ctx:
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16


def test_quantizer_stays_float32_under_autocast():
    """The tokenizer trained under bf16 autocast picks the same codes as in float32: the
    quantizer opts out, so its latent, residuals and loss are float32 whatever the caller."""
    cfg = get_config("smoke")
    torch.manual_seed(0)
    q = Tokenizer(cfg).quantizer.eval()
    f = torch.randn(3, q.D, *q.latent_hw)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        f_hat_amp, vq_amp, info_amp = q(f.bfloat16())
    assert f_hat_amp.dtype == vq_amp.dtype == torch.float32
    f_rounded = f.bfloat16().float()  # the only difference is the input's own rounding
    for a, b in zip(q(f_rounded)[2]["indices"], info_amp["indices"]):
        assert torch.equal(a, b)
    assert torch.allclose(f_hat_amp, q(f_rounded)[0])
