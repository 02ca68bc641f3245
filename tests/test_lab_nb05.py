"""Notebook 05's lab checks: a right answer passes, a wrong one fails (hand-made answers, no training)."""

import pytest
import torch

from marslib import audio, cmx
from marslib.ablation import truncation_config
from marslib.lab import nb05
from marslib.tokenizer import Tokenizer
from conftest import check_fails as _fails, check_passes as _passes


@pytest.fixture(scope="module")
def cfg():
    from marslib.config import get_config

    return get_config("smoke")


@pytest.fixture(scope="module")
def spec(cfg):
    torch.manual_seed(0)
    return torch.rand(3, 1, *cfg.spec_shape) * 2 - 1  # normalised log-magnitudes of 3 "notes"


def test_05_1_another_crop(cfg, spec):
    r, f = cfg.cmx.factor, cfg.spec_shape[0]
    energy = audio.denormalise(spec, cfg.audio).double().pow(2)
    right = {"energy_lost_band": float(1 - energy[..., : f // r ** 2, :].sum() / energy.sum()),
             "energy_lost_corner": float(1 - energy[..., : f // r, : cfg.spec_shape[1] // r].sum() / energy.sum()),
             "fd_band": 1.0, "fd_corner": 2.5, "band_beats_corner": True}
    context = {"spec_test": spec, "cfg": cfg, "fd_corner": 2.5}
    _passes("05.1", right, **context)
    _fails("05.1", {**right, "band_beats_corner": False}, **context)            # contradicts its own FDs
    _fails("05.1", {**right, "energy_lost_band": right["energy_lost_corner"]}, **context)
    _fails("05.1", {**right, "band_beats_corner": "yes"}, **context)
    _fails("05.1", {"fd_band": 1.0}, **context)


def test_05_2_budget():
    ceilings = {"truncation_representation": {"lsd": 10.0, "sc": 0.5, "fd_crepe": 2.0}}
    right = {"steps": 3, "lsd_cmx": 11.0, "lsd_truncation": 12.0, "lsd_bound": 10.0, "fd_bound": 2.0,
             "fd_mars": 1.5, "equal_budget_better": "cmx", "budget_can_flip": False}
    _passes("05.2", right, ceilings=ceilings, fd_mars=1.5)
    _passes("05.2", {**right, "fd_mars": 3.0, "budget_can_flip": True}, ceilings=ceilings, fd_mars=3.0)
    _fails("05.2", {**right, "budget_can_flip": True}, ceilings=ceilings, fd_mars=1.5)
    _fails("05.2", {**right, "lsd_truncation": 9.0, "equal_budget_better": "truncation"},  # beats the bound
           ceilings=ceilings, fd_mars=1.5)
    _fails("05.2", {**right, "equal_budget_better": "truncation"}, ceilings=ceilings, fd_mars=1.5)
    _fails("05.2", {**right, "lsd_bound": 5.0}, ceilings=ceilings, fd_mars=1.5)


def test_05_3_cost_scaling(cfg):
    batch, r = 2, cfg.cmx.factor
    full, at_r = nb05.activation_mb(cfg, "full", batch), nb05.activation_mb(cfg, "cmx", batch)
    at_2r = nb05.activation_mb(nb05.factor_config(cfg, 2 * r), "cmx", batch)
    assert nb05.factor_config(cfg, 2 * r).latent_shape == cfg.latent_shape
    costs = [{"representation": "full", "activation_mb": full}, {"representation": "cmx", "activation_mb": at_r}]
    right = {"ratios": {r: {"memory": full / at_r, "time": 3.0}, 2 * r: {"memory": full / at_2r, "time": 5.0}},
             "memory_ratio_grows_with_r": full / at_2r > full / at_r}
    context = {"cfg": cfg, "costs": costs, "batch_size": batch}
    _passes("05.3", right, **context)
    _fails("05.3", {**right, "memory_ratio_grows_with_r": not right["memory_ratio_grows_with_r"]}, **context)
    _fails("05.3", {**right, "ratios": {r: {"memory": 2 * full / at_r, "time": 3.0},
                                        2 * r: right["ratios"][2 * r]}}, **context)
    _fails("05.3", {**right, "ratios": {r: right["ratios"][r]}}, **context)      # one r is no scaling


def test_05_4_tokenizer_errors(cfg, spec):
    torch.manual_seed(0)
    tok, trunc = Tokenizer(cfg).eval(), Tokenizer(truncation_config(cfg)).eval()
    f_r, t_r = cfg.input_shape[1:]
    mae = {}
    with torch.no_grad():
        for name, t in (("cmx", tok), ("truncation", trunc)):
            x_hat = t.decode(t.encode(cmx.to_model_input(spec, t.cfg.cmx))).clamp(-1, 1)
            full = cmx.from_model_input(x_hat, t.cfg.cmx, cfg.spec_shape)
            mae[name] = (full - spec)[:, 0, :f_r, :t_r].abs().mean(dim=(0, 2))
    better = min(mae, key=lambda k: float(mae[k].mean()))
    right = {"mae_per_bin_cmx": mae["cmx"].tolist(), "mae_per_bin_truncation": mae["truncation"].tolist(),
             "better_on_low_bins": better}
    context = {"tokenizer": tok, "trunc_tokenizer": trunc, "spec_test": spec}
    _passes("05.4", right, **context)
    _fails("05.4", {**right, "better_on_low_bins": "cmx" if better == "truncation" else "truncation"}, **context)
    _fails("05.4", {**right, "mae_per_bin_cmx": mae["cmx"][:-1].tolist()}, **context)       # a bin short
    _fails("05.4", {**right, "mae_per_bin_cmx": (mae["cmx"] + 0.1).tolist()}, **context)


def test_05_5_survivors(cfg, spec):
    import numpy as np

    family, names = np.array([0, 2, 2]), cfg.data.family_vocabulary
    mag = audio.denormalise(spec, cfg.audio)
    lost = {names[f]: cmx.truncation_loss(mag[torch.from_numpy(family == f)], cfg.cmx.factor)["energy_lost"]
            for f in (0, 2)}
    right = {"energy_lost_by_family": lost, "survives_best": min(lost, key=lost.get)}
    context = {"spec_test": spec, "family": family, "families": names, "cfg": cfg}
    _passes("05.5", right, **context)
    _fails("05.5", {**right, "survives_best": max(lost, key=lost.get)}, **context)
    _fails("05.5", {**right, "energy_lost_by_family": {names[0]: lost[names[0]]}}, **context)
