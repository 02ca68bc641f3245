"""DDSP (marslib.baselines.ddsp): shapes, determinism, the synthesiser's physics, fit and load (smoke)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from marslib.baselines import build, fit_baseline, load_baseline
from marslib.baselines.ddsp import filtered_noise, harmonic_synth
from marslib.config import get_config


@pytest.fixture
def cfg():
    return get_config("smoke")


def _batch(cfg, b=3):
    s = cfg.audio.clip_samples
    t = torch.arange(s) / cfg.audio.sample_rate
    waves = 0.3 * torch.sin(2 * np.pi * 440.0 * t)[None].repeat(b, 1) * torch.linspace(1, 0.2, b)[:, None]
    labels = {"pitch": torch.tensor([69, 60, 84][:b]), "family": torch.tensor([0, 3, 10][:b]),
              "velocity": torch.full((b,), 100)}
    return waves, labels


@pytest.mark.parametrize("reverb", [False, True])
def test_losses_backward_and_shapes(cfg, reverb):
    cfg.ddsp.reverb = reverb
    model = build("ddsp", cfg)
    waves, labels = _batch(cfg)
    loss = model.training_losses((waves, labels))["loss"]
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    out = model.eval().resynthesise(waves, labels["pitch"], labels["family"])
    assert out.shape == waves.shape and torch.isfinite(out).all() and out.abs().max() <= 1.0


def test_seeded_and_deterministic(cfg):
    model = build("ddsp", cfg).eval()
    waves, labels = _batch(cfg)
    p, f = labels["pitch"], labels["family"]
    state = torch.get_rng_state()
    a, b, c = (model.resynthesise(waves, p, f, seed=s) for s in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    g1, g2 = model.generate(p, f, waves, seed=5), model.generate(p, f, waves, seed=5)
    assert torch.equal(g1, g2) and g1.shape == waves.shape
    assert torch.equal(state, torch.get_rng_state())  # sampling never touched the global RNG


def test_harmonic_synth_puts_energy_at_f0():
    sr, s, t = 16000, 16000, 250
    amps = torch.zeros(2, t, 8)
    amps[0, :, 0] = 0.5                 # note 1: the fundamental only
    amps[1, :, 2] = 0.5                 # note 2: the third harmonic only
    f0 = torch.tensor([[330.0], [200.0]]).expand(-1, t)
    y = harmonic_synth(f0, amps, s, sr).numpy()
    freqs = np.fft.rfftfreq(s, 1 / sr)
    peaks = freqs[np.abs(np.fft.rfft(y, axis=-1)).argmax(-1)]
    np.testing.assert_allclose(peaks, [330.0, 600.0], atol=1.0)
    np.testing.assert_allclose(np.abs(y).max(-1), 0.5, atol=1e-3)


def test_model_zeroes_harmonics_above_nyquist(cfg):
    model = build("ddsp", cfg)
    ld = torch.full((1, cfg.audio.n_frames), -30.0)
    f0, harm, _ = model.controls(torch.tensor([100]), torch.tensor([0]), ld)  # 2.6 kHz: 3rd harmonic > 4 kHz
    k_max = int(cfg.audio.sample_rate / 2 // f0[0, 0])
    assert (harm[..., k_max:] == 0).all() and (harm[..., :k_max] > 0).all()


def test_filtered_noise_follows_the_filter():
    t, hop, bands = 64, 64, 33
    mags = torch.zeros(1, t, bands)
    mags[..., 8:16] = 1.0               # pass 2-4 kHz of 0-8 kHz
    y = filtered_noise(torch.randn(1, t * hop, generator=torch.Generator().manual_seed(0)), mags)[0].numpy()
    power = np.abs(np.fft.rfft(y)) ** 2
    freqs = np.fft.rfftfreq(len(y), 1 / 16000)
    inside = power[(freqs > 2200) & (freqs < 3800)].mean()
    outside = power[(freqs < 1500) | (freqs > 4500)].mean()
    assert y.shape == (t * hop,) and inside > 100 * outside


def test_fit_then_load(tmp_path):
    cfg = get_config("smoke", {"data.root": str(tmp_path / "data")})  # fit_baseline renders the smoke set
    cfg.ddsp.train.steps, cfg.ddsp.train.eval_every, cfg.ddsp.train.checkpoint_every = 2, 2, 2
    model, history = fit_baseline("ddsp", cfg, tmp_path / "ddsp", progress=False)
    assert len(history["train"]) >= 1 and np.isfinite(history["train"][-1]["loss"])
    loaded = load_baseline("ddsp", tmp_path / "ddsp", cfg)
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_resynthesis_hears_the_notes_z_and_generation_decodes_without_it(cfg):
    from marslib.baselines.common import seeded_noise

    model = build("ddsp", cfg).eval()
    waves, labels = _batch(cfg)
    p, f = labels["pitch"], labels["family"]
    z = model.z_encoder(waves)
    assert z.shape == (3, cfg.audio.n_frames, cfg.ddsp.z_dim)
    resynth, generated = model.resynthesise(waves, p, f, seed=1), model.generate(p, f, waves, seed=1)
    assert not torch.allclose(resynth, generated)  # the note's own z vs the learned "no z"
    noise = seeded_noise(tuple(waves.shape), 1)
    no_z = model.z_null.expand(3, cfg.audio.n_frames, -1)
    expected = model.synthesise(p, f, model._loudness(waves), noise, no_z).clamp(-1, 1)
    assert torch.allclose(generated, expected, atol=1e-6)  # generate: the reference's loudness, no z
    assert torch.allclose(resynth, model.synthesise(p, f, model._loudness(waves), noise, z).clamp(-1, 1), atol=1e-6)
