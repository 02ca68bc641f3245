import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from marslib.cmx import (CMXError, fold, from_model_input, representation_costs, to_model_input,
                         truncate, truncation_loss, unfold, untruncate)
from marslib.config import get_config

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.uint8]


@settings(max_examples=60, deadline=None)
@given(r=st.integers(1, 4), fb=st.integers(1, 6), tb=st.integers(1, 6), b=st.integers(1, 3),
       c=st.integers(1, 2), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**31 - 1))
def test_fold_unfold_is_bit_exact(r, fb, tb, b, c, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(b, c, fb * r, tb * r, generator=g) * 100).to(dtype)
    y = fold(x, r)
    assert y.shape == (b, c * r * r, fb, tb) and y.dtype == dtype
    assert torch.equal(unfold(y, r), x)


def test_fold_is_the_chessboard_pattern():
    r = 2
    x = torch.arange(16).reshape(1, 1, 4, 4)
    y = fold(x, r)
    # channel i*r + j holds x[i::r, j::r]
    for i in range(r):
        for j in range(r):
            assert torch.equal(y[0, i * r + j], x[0, 0, i::r, j::r])
    assert y[0, :, 0, 0].tolist() == [0, 1, 4, 5]  # one 2x2 cell spread over 4 channels


def test_fold_error_names_the_pad():
    with pytest.raises(CMXError, match=r"F = 65 by r = 2: pad F by 1 \(to 66\)"):
        fold(torch.zeros(1, 1, 65, 64), 2)
    with pytest.raises(CMXError, match="T = 63 by r = 4: pad T by 1"):
        fold(torch.zeros(1, 1, 64, 63), 4)
    with pytest.raises(CMXError, match=r"\(B, C, F, T\)"):
        fold(torch.zeros(64, 64), 2)
    with pytest.raises(CMXError, match="multiple of r"):
        unfold(torch.zeros(1, 3, 8, 8), 2)


def test_truncation_keeps_low_corner_and_zero_fills():
    x = torch.rand(2, 1, 8, 12) + 0.1
    kept = truncate(x, 2)
    assert kept.shape == (2, 1, 4, 6) and torch.equal(kept, x[:, :, :4, :6])
    back = untruncate(kept, (8, 12))
    assert torch.equal(back[:, :, :4, :6], kept) and back[:, :, 4:].abs().sum() == 0


def test_truncation_loss_figures():
    x = torch.ones(1, 1, 8, 8)
    loss = truncation_loss(x, 2)
    assert loss["values_kept"] == 0.25
    assert loss["energy_lost"] == pytest.approx(0.75)
    assert loss["sc"] == pytest.approx(0.75 ** 0.5)


@pytest.mark.parametrize("mode", ["cmx", "truncate"])
def test_model_input_round_trip(mode):
    cfg = get_config("smoke", {"cmx.mode": mode})
    x = torch.rand(2, 1, *cfg.spec_shape) * 2 - 1
    z = to_model_input(x, cfg.cmx)
    assert tuple(z.shape[1:]) == cfg.input_shape
    back = from_model_input(z, cfg.cmx, cfg.spec_shape)
    if mode == "cmx":
        assert torch.equal(back, x)
    else:
        f, t = z.shape[-2:]
        assert torch.equal(back[..., :f, :t], z) and (back[..., f:, :] == -1).all()
    with pytest.raises(CMXError, match="channel"):
        from_model_input(torch.zeros(2, 5, *z.shape[-2:]), cfg.cmx, cfg.spec_shape)


def test_representation_costs():
    cfg = get_config("paper")
    costs = {c.name: c for c in representation_costs(cfg)}
    cmx, full, trunc = costs["cmx"], costs["full (no CMX)"], costs["truncate"]
    assert cmx.input_values == full.input_values == 512 * 512 == 16 * trunc.input_values
    assert cmx.latent_tokens == full.latent_tokens == 256
    assert cmx.next_scale_tokens == 680                     # VAR's 680 tokens for 16 x 16
    assert cmx.encoder_activation_mb < full.encoder_activation_mb / 4
    assert cmx.attention_pairs_raster == 256 * 257 // 2
