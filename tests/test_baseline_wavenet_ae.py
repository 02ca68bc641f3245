"""The NSynth WaveNet autoencoder (marslib/baselines/wavenet_ae.py), smoke profile."""

from __future__ import annotations

import torch

from marslib.baselines import build, fit_baseline, load_baseline
from marslib.baselines.common import mu_law_encode
from marslib.config import get_config


def _model(cfg=None):
    return build("wavenet_ae", cfg or get_config("smoke")).eval()


def test_shapes_loss_and_backward(note):
    cfg = get_config("smoke")
    model = build("wavenet_ae", cfg).train()
    s, hop = cfg.audio.clip_samples, cfg.wavenet_ae.embedding_hop
    waves = torch.from_numpy(note[:s]).repeat(3, 1) * torch.tensor([[1.0], [0.5], [-0.3]])
    assert model.encode(waves).shape == (3, cfg.wavenet_ae.embedding_dim, s // hop)
    losses = model.training_losses((waves, {"pitch": torch.tensor([57, 60, 64]), "family": torch.zeros(3)}))
    assert torch.isfinite(losses["loss"])
    losses["loss"].backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.enc_in.weight.grad.abs().sum() > 0   # the loss reaches the encoder through the embedding


def test_decoder_is_causal():
    """Logits at t depend on samples before t only: changing samples from t0 on leaves [0, t0] alone."""
    model = _model()
    g = torch.Generator().manual_seed(0)
    q = torch.randint(0, 256, (2, 600), generator=g)
    z, pitch = torch.randn(2, model.cfg.wavenet_ae.embedding_dim, 3, generator=g), torch.tensor([60, 72])
    t0 = 300
    q2 = q.clone()
    q2[:, t0:] = torch.randint(0, 256, (2, 600 - t0), generator=g)
    a, b = model._logits(q, z, pitch), model._logits(q2, z, pitch)
    assert torch.equal(a[:, :, : t0 + 1], b[:, :, : t0 + 1])   # logits at t0 predict q[t0] from q[:t0]
    assert not torch.allclose(a[:, :, t0 + 1:], b[:, :, t0 + 1:])


def test_fast_sampler_equals_full_pass():
    """Fast WaveNet's queues give the logits of the full teacher-forced pass on the sampled sequence."""
    model = _model()
    z, pitch = torch.randn(2, model.cfg.wavenet_ae.embedding_dim, 4), torch.tensor([48, 67])
    n = 700  # > the decoder's receptive field (16 samples in smoke) and over 3 embedding frames
    q, logits = model.decode(z, pitch, seed=3, n_samples=n, return_logits=True)
    assert q.shape == (2, n) and logits.shape == (2, 256, n)
    torch.testing.assert_close(logits, model._logits(q, z, pitch), atol=1e-4, rtol=1e-4)


def test_seeded_sampling_and_generate_uses_the_requested_pitch(note):
    cfg = get_config("smoke")
    cfg.audio.n_frames = 64  # 2048-sample clips, as sampling is sequential (set after validation: the
    #                          tokenizer's scales, which it checks, do not concern this model)
    model = _model(cfg)
    s = cfg.audio.clip_samples
    ref = torch.from_numpy(note[:s]).repeat(2, 1)
    pitch, family = torch.tensor([60, 64]), torch.tensor([0, 3])
    out = model.generate(pitch, family, ref, seed=5)
    assert out.shape == (2, s) and torch.isfinite(out).all() and out.abs().max() <= 1
    # generate = the reference's embedding decoded with the requested pitch = the reference
    # resynthesised at that pitch; equal outputs of two calls also show the seed fixes the samples
    assert torch.equal(out, model.resynthesise(ref, pitch, family, seed=5))
    other = model.decode(model.encode(ref), pitch, seed=6, n_samples=500)
    assert not torch.equal(mu_law_encode(out[:, :500]), other)


def test_sampling_leaves_the_global_rng_alone():
    model = _model()
    z = torch.randn(1, model.cfg.wavenet_ae.embedding_dim, 2)
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    model.decode(z, torch.tensor([60]), seed=1, n_samples=100)
    assert torch.equal(torch.rand(3), expected)


def test_fit_and_load(tmp_path):
    cfg = get_config("smoke", {"data.root": str(tmp_path / "data")})
    model, history = fit_baseline("wavenet_ae", cfg, tmp_path / "run", overwrite=True, stop_after=4, progress=False)
    loaded = load_baseline("wavenet_ae", tmp_path / "run", cfg)
    for (k, v), (_, w) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(v, w), k
