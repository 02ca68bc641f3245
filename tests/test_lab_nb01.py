"""Notebook 01's lab checks: a right answer passes, a wrong one fails with a hint (no training, seconds)."""

import numpy as np
import pytest
import torch

from marslib import audio, cmx
from marslib.config import get_config
from marslib.lab import nb01
from conftest import check_fails as fails, check_passes as passes

CFG = get_config("smoke")
A, SR, R = CFG.audio, CFG.audio.sample_rate, CFG.cmx.factor


@pytest.fixture(scope="module")
def note():
    """A decaying harmonic tone: energy in the first frames, like the notebook's piano note."""
    t = np.arange(A.clip_samples) / SR
    y = sum(np.sin(2 * np.pi * 262 * h * t) / h for h in (1, 2, 3)) * np.exp(-6 * t)
    return (0.5 * y).astype(np.float32)


def test_01_1_window_length():
    n = nb01.smallest_resolving_n_fft(SR)
    assert n == 1024  # 2 * 16000 / 50 = 640 -> the next power of two
    right = {"n_fft": n, "dip_db": nb01.two_tone_dip_db(SR, n, A.clip_samples),
             "dip_db_half": nb01.two_tone_dip_db(SR, n // 2, A.clip_samples)}
    passes("01.1", right, sr=SR, n_samples=A.clip_samples)
    fails("01.1", {**right, "n_fft": 512}, "smallest power of two", sr=SR, n_samples=A.clip_samples)
    fails("01.1", {**right, "n_fft": 640}, "smallest power of two", sr=SR, n_samples=A.clip_samples)
    fails("01.1", {**right, "dip_db": right["dip_db"] + 3}, "dip_db", sr=SR, n_samples=A.clip_samples)
    fails("01.1", 1024, "a dict", sr=SR, n_samples=A.clip_samples)


def test_01_2_griffin_lim_overlap(note):
    want = nb01.griffin_lim_overlap(note, A, seed=0)
    # the lesson: less overlap scores better at its own hop and worse on a common yardstick
    assert want["sc_own"]["n_fft//2"] < want["sc_own"]["n_fft//4"]
    assert want["sc_fine"]["n_fft//4"] < want["sc_fine"]["n_fft//2"]
    passes("01.2", {**want, "better": "n_fft//4"}, y=note, a=A, seed=0)
    fails("01.2", {**want, "better": "n_fft//2"}, "common yardstick", y=note, a=A, seed=0)
    swapped = {"n_fft//4": want["sc_own"]["n_fft//2"], "n_fft//2": want["sc_own"]["n_fft//4"]}
    fails("01.2", {**want, "sc_own": swapped, "better": "n_fft//4"}, "recomputing", y=note, a=A, seed=0)


def test_01_3_crop(note):
    mag = audio.magnitude_spectrogram(note, A)  # (1, F, T), as in the notebook
    first = cmx.truncation_loss(mag[:, None], R)["energy_lost"]
    middle = nb01.crop_energy_lost(mag[:, None], R, "middle")
    assert first < middle
    right = {"energy_lost_first": first, "energy_lost_middle": middle, "keeps_more": "first"}
    passes("01.3", right, mag=mag, r=R)
    fails("01.3", {**right, "keeps_more": "middle"}, "your own numbers", mag=mag, r=R)
    fails("01.3", {**right, "energy_lost_middle": 1 - middle}, "recomputing", mag=mag, r=R)


def test_01_4_fold_order():
    x = torch.randn(1, 1, *CFG.spec_shape)
    perm = [1, 0, 3, 2]
    right = {"perm": perm, "roundtrip_exact": True, "conv_max_diff": 2e-6, "order_matters": False}
    passes("01.4", right, x=x, r=R)
    fails("01.4", {**right, "perm": [0, 1, 2, 3]}, "identity", x=x, r=R)
    fails("01.4", {**right, "perm": [0, 0, 1, 2]}, "permutation", x=x, r=R)
    fails("01.4", {**right, "order_matters": True}, "same thing", x=x, r=R)
    fails("01.4", {**right, "roundtrip_exact": False}, "torch.equal", x=x, r=R)
    fails("01.4", {**right, "conv_max_diff": 0.5}, "float error", x=x, r=R)


def test_01_5_memory_scaling():
    mb = {r: nb01.paper_cmx_costs(r).encoder_activation_mb for r in (2, 4, 8)}
    assert mb[2] > mb[4] > mb[8]
    right = {"cmx_encoder_mb": mb, "unchanged": ["input_values", "latent_tokens", "next_scale_tokens"],
             "ratio_per_doubling": (mb[2] / mb[4] + mb[4] / mb[8]) / 2}
    passes("01.5", right)
    fails("01.5", {**right, "unchanged": ["latent_tokens", "next_scale_tokens"]}, "every field")
    fails("01.5", {**right, "unchanged": ["encoder_activation_mb", "input_values", "latent_tokens",
                                          "next_scale_tokens"]}, "every field")
    fails("01.5", {**right, "ratio_per_doubling": 2.0}, "ratio_per_doubling")
    fails("01.5", {**right, "cmx_encoder_mb": {2: mb[2], 4: mb[4]}}, "one entry per r")
