"""Notebook 04's lab checks: a right answer passes, wrong ones fail with a hint.

Embeddings and clips are small random arrays and the classifier is untrained: the
checks recompute metrics from what they are given, whatever it is.
"""

import numpy as np
import pytest
import torch

from marslib import lab
from marslib.config import get_config
from marslib.lab.nb04 import same_gaussian_fd
from marslib.metrics import (SpectrogramClassifier, classify_waveforms, frechet_distance, kernel_inception_distance,
                             ndb, nearest_neighbours)
from conftest import assert_check_fails as fails, assert_check_passes as passes


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # batch-1 sampling of a tiny model


@pytest.fixture(scope="module")
def cfg():
    return get_config("smoke")


# --- 04.1 ----------------------------------------------------------------------------------

def test_more_clips(cfg):
    rng = np.random.default_rng(0)
    m, d = 12, 24
    real, one, four = rng.standard_normal((m, d)), rng.standard_normal((m, d)) + 0.3, rng.standard_normal((4 * m, d)) + 0.3
    stats = {name: (kernel_inception_distance(real, x, m // 2, cfg.eval.kid_subsets, seed=cfg.seed),
                    frechet_distance(real, x)) for name, x in (("1", one), ("4", four))}
    (k1, f1), (k4, f4) = stats["1"], stats["4"]
    right = {"n_conditions": m, "kid_1": k1, "kid_4": k4, "fd_1": f1, "fd_4": f4,
             "kid_moved_beyond_noise": abs(k4["mean"] - k1["mean"]) > max(k1["std"], k4["std"]),
             "fd_drops": f4 < f1}
    context = dict(reference=real, one=one, four=four, cfg=cfg)
    passes(lab.check("04.1", right, **context))
    assert right["fd_drops"], "with 4x the clips FD's bias must fall (d = 24 > m = 12)"
    fails(lab.check("04.1", {**right, "fd_drops": False}, **context), "fd_drops")
    fails(lab.check("04.1", {**right, "kid_moved_beyond_noise": not right["kid_moved_beyond_noise"]}, **context),
          "kid_moved_beyond_noise")
    full_subset = kernel_inception_distance(real, one, m, cfg.eval.kid_subsets, seed=cfg.seed)  # not m // 2
    fails(lab.check("04.1", {**right, "kid_1": full_subset}, **context), "kid_1")
    fails(lab.check("04.1", {**right, "n_conditions": 4 * m}, **context), "conditions")


# --- 04.2 ----------------------------------------------------------------------------------

def test_fd_bias():
    rng = np.random.default_rng(1)
    n_test, d = 12, 64
    reference = rng.standard_normal((n_test, d)) * np.linspace(3, 0.1, d)   # anisotropic, like real embeddings
    sizes = [n_test, 16, 64, 256, 1024]
    fds = [same_gaussian_fd(reference, n, seed=100 + i) for i, n in enumerate(sizes)]
    floor = 0.8 * fds[0]
    right = {"dims": d, "n": sizes, "fd": fds, "n_test": n_test, "fd_at_n_test": fds[0], "floor_fd_crepe": floor,
             "floor_mostly_bias": True}
    context = dict(reference=reference, crepe_dim=d, floor_fd=floor)
    passes(lab.check("04.2", right, **context))
    fails(lab.check("04.2", {**right, "floor_mostly_bias": False}, **context), "floor_mostly_bias")
    fails(lab.check("04.2", {**right, "dims": 32}, **context), "embed_dim")
    fails(lab.check("04.2", {**right, "n": sizes[:-1], "fd": fds[:-1]}, **context), "1000")
    # isotropic noise of the same total variance: the wrong shape, a much larger bias
    sigma = np.sqrt(reference.var(axis=0, ddof=1).sum() / d)
    iso = [frechet_distance(sigma * rng.standard_normal((n, d)), sigma * rng.standard_normal((n, d))) for n in sizes]
    fails(lab.check("04.2", {**right, "fd": iso, "fd_at_n_test": iso[0]}, **context), "covariance")


# --- 04.3 ----------------------------------------------------------------------------------

def test_no_guidance():
    rng = np.random.default_rng(2)
    cfg0, mars = rng.standard_normal((8, 100)), rng.standard_normal((8, 100))
    row0 = {"pis": 3.2, "iis": 1.8, "pitch_acc_pyin": 0.25, "pitch_acc_crepe": 0.375}
    row1 = {"pis": 4.1, "iis": 1.5, "pitch_acc_pyin": 0.5, "pitch_acc_crepe": 0.375}
    right = {"n": 8, "cfg0": row0, "mars": row1, "drops": {k: row0[k] < row1[k] for k in row0}}
    passes(lab.check("04.3", right, cfg0_waves=cfg0, mars_waves=mars))
    fails(lab.check("04.3", {**right, "drops": {**right["drops"], "iis": True}}, cfg0_waves=cfg0, mars_waves=mars),
          "iis")
    fails(lab.check("04.3", right, cfg0_waves=mars, mars_waves=mars), "cfg_scale=0")
    fails(lab.check("04.3", {**right, "cfg0": {**row0, "pis": 0.5}}, cfg0_waves=cfg0, mars_waves=mars), "outside")
    fails(lab.check("04.3", {**right, "mars": {**row1, "pitch_acc_pyin": 0.3}}, cfg0_waves=cfg0, mars_waves=mars),
          "whole number")


# --- 04.4 ----------------------------------------------------------------------------------

def test_ndb_k():
    rng = np.random.default_rng(3)
    centres = np.array([[-2, -2], [-2, 2], [2, -2], [2, 2]], dtype=float)
    blobs = lambda: np.concatenate([c + 0.6 * rng.standard_normal((150, 2)) for c in centres])  # noqa: E731
    real, good = blobs(), blobs()
    ks = [4, 16, 64]
    counts = [ndb(real, good, k=k, seed=0)["ndb"] for k in ks]
    ratios = [c / k for c, k in zip(counts, ks)]
    right = {"k": ks, "ndb": counts, "expected_by_chance": [0.2, 0.8, 3.2], "largest_over_k_at": ks[int(np.argmax(ratios))]}
    passes(lab.check("04.4", right, real=real, fake=good, seed=0))
    fails(lab.check("04.4", {**right, "ndb": [c + 1 for c in counts]}, real=real, fake=good, seed=0), "significant")
    fails(lab.check("04.4", {**right, "expected_by_chance": [0, 0, 0]}, real=real, fake=good, seed=0), "chance")
    if min(ratios) < max(ratios):
        wrong_k = ks[int(np.argmin(ratios))]
        fails(lab.check("04.4", {**right, "largest_over_k_at": wrong_k}, real=real, fake=good, seed=0), "largest")


# --- 04.5 ----------------------------------------------------------------------------------

def test_copies(cfg):
    torch.manual_seed(0)
    classifier = SpectrogramClassifier(cfg).eval()
    rng = np.random.default_rng(4)
    train = rng.standard_normal((6, cfg.audio.clip_samples)).astype(np.float32) * 0.1
    held_out = rng.standard_normal((4, cfg.audio.clip_samples)).astype(np.float32) * 0.1
    train_trunk = classify_waveforms(classifier, train, cfg)["trunk"]
    _, test_nn = nearest_neighbours(classify_waveforms(classifier, held_out, cfg)["trunk"], train_trunk)
    test_cos = test_nn[:, 0]
    copies = train[:3]
    _, copy_nn = nearest_neighbours(classify_waveforms(classifier, copies, cfg)["trunk"], train_trunk)
    distances = [float(d) for d in copy_nn[:, 0]]
    assert max(distances) < 1e-6 < test_cos.min()
    right = {"n_copies": 3, "copy_distances": distances, "closest_real_test": float(test_cos.min()),
             "copies_below_every_real_test_note": True}
    context = dict(copies=copies, classifier=classifier, cfg=cfg, train_trunk=train_trunk, test_cos=test_cos)
    passes(lab.check("04.5", right, **context))
    fails(lab.check("04.5", {**right, "copies_below_every_real_test_note": False}, **context), "conclusion")
    fails(lab.check("04.5", {**right, "copy_distances": [0.1, 0.1, 0.1]}, **context), "copy_distances")
    fails(lab.check("04.5", {**right, "closest_real_test": float(test_cos.max())}, **context), "closest_real_test")
    fails(lab.check("04.5", {**right, "n_copies": 2}, **context), "one distance")
