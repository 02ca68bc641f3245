import pytest
import torch

from marslib.metrics import (log_spectral_distance, mae, mse, multi_resolution_stft_distance,
                             spectral_convergence)


def test_identical_inputs_give_zero():
    x = torch.rand(3, 1, 16, 20) + 0.1
    for fn in (mse, mae, spectral_convergence, log_spectral_distance):
        assert torch.allclose(fn(x, x), torch.zeros(3))


def test_known_values():
    ref = torch.ones(1, 4, 5)
    assert mse(ref, ref * 3).item() == pytest.approx(4.0)
    assert mae(ref, ref * 3).item() == pytest.approx(2.0)
    assert spectral_convergence(ref, ref * 3).item() == pytest.approx(2.0)
    assert log_spectral_distance(ref, ref * 10).item() == pytest.approx(20.0)  # 10x = 20 dB


def test_multi_resolution_distance_orders_by_similarity():
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(2, 8192, generator=g)
    close = ref + 0.01 * torch.randn(2, 8192, generator=g)
    far = torch.randn(2, 8192, generator=g)
    d_close, d_far = multi_resolution_stft_distance(ref, close), multi_resolution_stft_distance(ref, far)
    assert (d_close < d_far).all() and multi_resolution_stft_distance(ref, ref).abs().max() < 1e-5


def test_bad_inputs():
    with pytest.raises(ValueError, match="differ"):
        mse(torch.zeros(1, 3), torch.zeros(1, 4))
    with pytest.raises(ValueError, match="NaN"):
        mae(torch.zeros(1, 3), torch.tensor([[0.0, float("nan"), 0.0]]))
    with pytest.raises(ValueError, match="all zeros"):
        spectral_convergence(torch.zeros(1, 3), torch.ones(1, 3))
