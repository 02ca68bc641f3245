import numpy as np
import pytest
import torch
from conftest import harmonic_note

from marslib.audio import waveform_to_input
from marslib.cmx import to_model_input

from marslib.config import ConfigError, get_config
from marslib.tokenizer import MultiScaleQuantizer, Tokenizer

SCALE_LISTS = [
    [(1, 1), (2, 2), (4, 4)],
    [(1, 1), (1, 2), (2, 4), (3, 6), (4, 8)],                       # rectangular, like spectrograms
    [(1, 1), (1, 4), (2, 8), (4, 16)],
    [(s, s) for s in (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)],            # VAR's ten scales
]


def _latent(scales, b=3, d=8, seed=0):
    h, w = scales[-1]
    return torch.randn(b, d, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("scales", SCALE_LISTS)
def test_shapes_for_every_scale_list(scales):
    q = MultiScaleQuantizer(32, 8, scales)
    f = _latent(scales)
    f_hat, vq_loss, info = q(f)
    assert f_hat.shape == f.shape and vq_loss.ndim == 0
    idx = q.to_indices(f)
    assert [tuple(i.shape) for i in idx] == [(3, *s) for s in scales]
    assert all(i.dtype == torch.long and 0 <= i.min() and i.max() < 32 for i in idx)
    tf = q.teacher_forcing_inputs(idx)
    assert tf.shape == (3, sum(h * w for h, w in scales) - 1, 8)
    assert info["usage"].shape == info["perplexity"].shape == (len(scales),)


def test_phi_sharing_follows_var():
    q = MultiScaleQuantizer(16, 4, SCALE_LISTS[3], n_phi=4)
    assert q.phi.index == [0, 0, 1, 1, 1, 2, 2, 3, 3, 3]


@pytest.mark.parametrize("scales", SCALE_LISTS[:2])
def test_partial_decode_builds_up_to_full_decode(scales):
    q = MultiScaleQuantizer(32, 8, scales).eval()
    f = _latent(scales)
    idx = q.to_indices(f)
    full = q.to_latent(idx)
    assert torch.equal(q.to_latent(idx, upto=len(scales)), full)
    # the running sum of scales: each partial latent plus the next scale's term
    for k in range(1, len(scales)):
        step = q.upsample(q.embed(idx[k]), k)
        assert torch.equal(q.to_latent(idx, upto=k) + step, q.to_latent(idx, upto=k + 1))
    # training view gives the same quantised latent as encode/decode
    f_hat, _, info = q(f)
    assert torch.equal(f_hat, full)
    assert all(torch.equal(a, b) for a, b in zip(info["indices"], idx))


def test_teacher_forcing_matches_step_by_step_sampling():
    scales = SCALE_LISTS[1]
    q = MultiScaleQuantizer(32, 8, scales).eval()
    idx = q.to_indices(_latent(scales))
    f_hat, inputs = 0, []
    for k in range(len(scales)):
        f_hat, nxt = q.next_scale_input(k, f_hat, idx[k])
        if k < len(scales) - 1:
            inputs.append(nxt)
    assert torch.allclose(torch.cat(inputs, 1), q.teacher_forcing_inputs(idx), atol=1e-6)
    assert torch.allclose(f_hat, q.to_latent(idx), atol=1e-6)


def test_one_codebook_shared_by_all_scales():
    q = MultiScaleQuantizer(64, 8, SCALE_LISTS[1])
    tensors = [p for n, p in q.named_parameters() if "codebook" in n]
    assert len(tensors) == 1 and tensors[0].shape == (64, 8)
    tok = Tokenizer(get_config("smoke"))
    assert sum(isinstance(m, torch.nn.Embedding) for m in tok.modules()) == 1


def test_cosine_lookup_picks_the_best_aligned_code():
    q = MultiScaleQuantizer(3, 2, [(1, 1)], lookup="cosine")
    q.codebook.weight.data = torch.tensor([[1.0, 0.0], [0.0, 5.0], [-1.0, 0.0]])
    z = torch.tensor([[0.1, 0.9]]).view(1, 2, 1, 1)
    assert q.nearest_code(z).item() == 1
    q.lookup = "l2"
    assert q.nearest_code(z).item() == 0  # L2 prefers the nearer, shorter code


def test_gradients_reach_the_encoder_through_the_straight_through_path():
    cfg = get_config("smoke")
    tok = Tokenizer(cfg)
    x = torch.rand(2, *cfg.input_shape) * 2 - 1
    x_hat, _, _ = tok(x)
    torch.nn.functional.mse_loss(x_hat, x).backward()  # reconstruction only, no VQ term
    grads = [p.grad for p in tok.encoder.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
    assert tok.quantizer.codebook.weight.grad is None or tok.quantizer.codebook.weight.grad.abs().sum() == 0


def test_vq_loss_trains_the_codebook():
    q = MultiScaleQuantizer(16, 4, SCALE_LISTS[0])
    _, vq_loss, _ = q(_latent(SCALE_LISTS[0], d=4))
    vq_loss.backward()
    assert q.codebook.weight.grad.abs().sum() > 0


def test_dead_codes_are_restarted_from_batch_residuals():
    q = MultiScaleQuantizer(64, 4, SCALE_LISTS[0], restart_every=1)
    q.codebook.weight.data[:] = 100.0  # every code far away: all but one will never be hit
    q.codebook.weight.data[0] = 0.0
    f = _latent(SCALE_LISTS[0], b=8, d=4)
    q.train()
    for _ in range(3):
        q(f)
    _, _, info = q(f)
    assert info["usage"].max() > 2 / 64  # codes other than 0 are in use again
    assert (q.codebook.weight.data.abs() < 50).sum() > 4 * 4


def test_tokenizer_api_round_trip_shapes():
    cfg = get_config("smoke")
    tok = Tokenizer(cfg).eval()
    x = torch.rand(2, *cfg.input_shape) * 2 - 1
    idx = tok.encode(x)
    assert [tuple(i.shape[1:]) for i in idx] == [tuple(s) for s in cfg.tokenizer.scales]
    assert tok.decode(idx).shape == x.shape
    assert torch.equal(tok.partial_decode(idx, len(idx)), tok.decode(idx))
    assert tok.partial_decode(idx, 1).shape == x.shape


def _note_batch(cfg):
    """CMX tensors of a few harmonic notes: (4, C, F/r, T/r)."""
    waves = np.stack([harmonic_note(f0, seconds=1.0)[: cfg.audio.clip_samples] for f0 in (110, 196, 262, 440)])
    return to_model_input(waveform_to_input(torch.from_numpy(waves), cfg.audio), cfg.cmx)


def test_loss_decreases_on_a_fixed_batch():
    torch.manual_seed(0)
    cfg = get_config("smoke")
    tok = Tokenizer(cfg)
    x = _note_batch(cfg)
    opt = torch.optim.Adam(tok.parameters(), lr=2e-3)
    losses = []
    for _ in range(30):
        loss = tok.training_losses((x, {}))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert min(losses[-5:]) < 0.5 * losses[0], losses


def test_gan_term_is_switchable():
    cfg = get_config("smoke", {"tokenizer.gan_weight": 0.1})
    tok = Tokenizer(cfg)
    terms = tok.training_losses((torch.rand(2, *cfg.input_shape), {}))
    assert {"gan_g", "gan_d"} <= set(terms)
    terms["loss"].backward()
    assert all(p.grad is not None for p in tok.discriminator.parameters())
    assert "gan_g" not in Tokenizer(get_config("smoke")).training_losses((torch.rand(2, *cfg.input_shape), {}))


def test_truncation_mode_has_one_channel():
    cfg = get_config("smoke", {"cmx.mode": "truncate"})
    tok = Tokenizer(cfg)
    x = torch.rand(2, 1, *cfg.input_shape[1:])
    assert tok(x)[0].shape == x.shape


@pytest.mark.parametrize("bad, message", [
    (torch.zeros(2, 3, 32, 128), r"expects input \(B, 4, 32, 128\)"),
    (torch.zeros(2, 4, 32, 64), "expects input"),
    (torch.zeros(4, 32, 128), "expects input"),
])
def test_bad_input_shapes(bad, message):
    tok = Tokenizer(get_config("smoke"))
    with pytest.raises(ValueError, match=message):
        tok.encode(bad)


def test_bad_scale_lists_and_indices():
    with pytest.raises(ConfigError, match="must increase"):
        MultiScaleQuantizer(8, 4, [(1, 1), (4, 4), (2, 2)])
    with pytest.raises(ConfigError, match="must equal the latent grid"):
        get_config("smoke", {"tokenizer.scales": [[1, 1], [2, 2]]})
    q = MultiScaleQuantizer(8, 4, [(1, 1), (2, 2)])
    with pytest.raises(ValueError, match="token ids must lie in"):
        q.to_latent([torch.zeros(1, 1, 1, dtype=torch.long), torch.full((1, 2, 2), 9)])
    with pytest.raises(ValueError, match=r"expected token map \(B, 2, 2\)"):
        q.to_latent([torch.zeros(1, 1, 1, dtype=torch.long), torch.zeros(1, 3, 3, dtype=torch.long)])
    with pytest.raises(ValueError, match="expected a latent"):
        q.to_indices(torch.zeros(1, 4, 3, 3))
