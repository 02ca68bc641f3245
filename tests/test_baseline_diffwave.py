"""DiffWave (marslib.baselines.diffwave): shapes, the diffusion schedule, seeded sampling, fit/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from marslib.baselines import build, fit_baseline, load_baseline
from marslib.baselines.diffwave import step_embedding
from marslib.config import get_config


@pytest.fixture
def model(smoke_cfg):
    return build("diffwave", smoke_cfg)


def _batch(cfg, b=2):
    waves = 0.3 * torch.sin(torch.linspace(0, 400, cfg.audio.clip_samples))[None].repeat(b, 1)
    return waves, {"pitch": torch.tensor([60, 72][:b]), "family": torch.tensor([0, 3][:b]),
                   "velocity": torch.full((b,), 100)}


def test_loss_finite_and_backward(model, smoke_cfg):
    torch.manual_seed(0)
    loss = model.training_losses(_batch(smoke_cfg))["loss"]
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_denoiser_starts_at_zero_and_keeps_length(model, smoke_cfg):
    """The zero-initialised output conv: eps_theta = 0 before training (the paper's init)."""
    b, s = 2, 16 * smoke_cfg.audio.hop_length
    cond = model.upsample_spec(torch.zeros(b, smoke_cfg.audio.n_bins, 16))
    assert cond.shape == (b, smoke_cfg.diffwave.cond_bins, s)  # exactly hop x longer
    eps = model.denoise(torch.randn(b, s), torch.tensor([0.0, 3.5]), cond, torch.tensor([60, 61]),
                        torch.tensor([0, 1]))
    assert eps.shape == (b, s) and torch.all(eps == 0)


def test_schedule_forward_process_and_fast_alignment(model, smoke_cfg):
    dw = smoke_cfg.diffwave
    abar = model.alpha_bar.double().numpy()
    betas = np.linspace(1e-4, dw.beta_end, dw.diffusion_steps)
    np.testing.assert_allclose(abar, np.cumprod(1 - betas), rtol=1e-5)
    assert np.all(np.diff(abar) < 0)
    # Forward process at step t: x_t has variance abar x0^2 + (1 - abar): unit for unit-variance x0.
    torch.manual_seed(0)
    x0, t = torch.randn(200_000), 20
    xt = model.alpha_bar[t].sqrt() * x0 + (1 - model.alpha_bar[t]).sqrt() * torch.randn_like(x0)
    assert abs(float(xt.var()) - 1.0) < 0.02
    assert abs(float(torch.corrcoef(torch.stack([x0, xt]))[0, 1]) - float(model.alpha_bar[t].sqrt())) < 0.01
    # Fast schedule: each inference abar lands on the training one at its (fractional) step.
    fast_betas, steps = model.schedule(fast=True)
    fast_abar = np.cumprod(1 - fast_betas)
    interp = np.interp(steps, np.arange(len(abar)), np.sqrt(abar)) ** 2  # linear in sqrt(abar)
    np.testing.assert_allclose(interp, fast_abar, rtol=1e-6)
    assert len(steps) == len(dw.inference_betas) and np.all(np.diff(steps) > 0)
    full_betas, full_steps = model.schedule(fast=False)
    np.testing.assert_allclose(full_steps, np.arange(dw.diffusion_steps))


def test_step_embedding_is_continuous():
    e = step_embedding(torch.tensor([3.0, 3.5, 4.0]))
    assert e.shape == (3, 128)
    assert torch.allclose(step_embedding(torch.tensor([3.0])), e[:1])
    assert (e[1] - e[0]).abs().max() < (e[2] - e[0]).abs().max() + 1e-6


def test_resynthesise_seeded_shape_and_range(model, smoke_cfg):
    waves, labels = _batch(smoke_cfg)
    waves = waves[:, : 32 * smoke_cfg.audio.hop_length]  # any whole number of frames; short is fast
    state = torch.get_rng_state()
    a = model.resynthesise(waves, labels["pitch"], labels["family"], seed=1)
    b = model.resynthesise(waves, labels["pitch"], labels["family"], seed=1)
    c = model.resynthesise(waves, labels["pitch"], labels["family"], seed=2)
    assert torch.equal(torch.get_rng_state(), state)  # sampling never touches the global RNG
    assert a.shape == waves.shape and torch.isfinite(a).all() and a.abs().max() <= 1.0
    assert torch.equal(a, b) and not torch.equal(a, c)
    spec = model.spectrogram(waves)[..., :4]
    full = model.vocode(spec, labels["pitch"], labels["family"], seed=1, fast=False)  # the 50-step chain
    assert full.shape == (2, 4 * smoke_cfg.audio.hop_length) and torch.isfinite(full).all()


def test_generate_refuses(model, smoke_cfg):
    waves, labels = _batch(smoke_cfg)
    with pytest.raises(ValueError, match="vocoder"):
        model.generate(labels["pitch"], labels["family"], waves)


def test_fit_and_load(tmp_path):
    cfg = get_config("smoke", {"data.root": str(tmp_path / "data"), "diffwave.train.steps": 3,
                               "diffwave.train.eval_every": 3, "diffwave.train.checkpoint_every": 3})
    model, history = fit_baseline("diffwave", cfg, tmp_path / "run", progress=False)
    assert len(history["train"]) == 3 and np.isfinite(history["valid"][-1]["loss"])
    loaded = load_baseline("diffwave", tmp_path / "run", cfg)
    for (k, v), w in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(v, w), k
