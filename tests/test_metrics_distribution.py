"""Distribution metrics: FD, KID, IS, NDB and nearest neighbours against closed forms and brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import linalg, stats

from marslib.metrics.distribution import (frechet_distance, frechet_distance_gaussians, inception_score,
                                          kernel_inception_distance, ndb, nearest_neighbours,
                                          two_proportion_z_test)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# --- Fréchet distance -------------------------------------------------------

def test_fd_identical_sets_is_zero(rng):
    x = rng.normal(size=(500, 8))
    assert abs(frechet_distance(x, x)) < 1e-8
    assert abs(frechet_distance(torch.from_numpy(x).float(), x.astype(np.float32))) < 1e-4  # torch in, numpy in


def test_fd_gaussians_closed_form_exact():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    a = np.array([[2.0, 0.3, 0.0], [0.3, 1.0, 0.1], [0.0, 0.1, 0.5]])
    b = np.array([[1.0, 0.0, 0.2], [0.0, 3.0, 0.0], [0.2, 0.0, 0.7]])
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(a + b - 2 * linalg.sqrtm(a @ b).real)
    assert frechet_distance_gaussians(mu1, a, mu2, b) == pytest.approx(expected, rel=1e-10)
    # Diagonal covariances: Tr(S1 + S2 - 2 sqrt(S1 S2)) = sum (s1 - s2)^2 with s = std.
    s1, s2 = np.array([1.0, 2.0]), np.array([3.0, 0.5])
    d = frechet_distance_gaussians(np.zeros(2), np.diag(s1 ** 2), np.ones(2), np.diag(s2 ** 2))
    assert d == pytest.approx(2 + np.sum((s1 - s2) ** 2), rel=1e-10)


def test_fd_samples_match_closed_form(rng):
    mu1, mu2 = np.array([0.0, 0.5, -1.0, 2.0]), np.array([1.0, 0.0, 0.0, 2.5])
    sd1, sd2 = np.array([1.0, 2.0, 0.5, 1.5]), np.array([0.5, 1.0, 1.0, 3.0])
    x = mu1 + sd1 * rng.normal(size=(20000, 4))
    y = mu2 + sd2 * rng.normal(size=(20000, 4))
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((sd1 - sd2) ** 2)
    assert frechet_distance(x, y) == pytest.approx(expected, rel=0.05)


def test_fd_singular_covariance_is_finite(rng):
    # Fewer samples than dimensions: singular covariances; still finite and positive.
    x, y = rng.normal(size=(3, 10)), rng.normal(size=(3, 10)) + 1
    d = frechet_distance(x, y)
    assert np.isfinite(d) and d > 0


def test_fd_few_samples_route_equals_the_covariance_formula(rng):
    # N < D takes the N x M singular-value route; it must equal the D x D matrix square root.
    x, y = rng.normal(size=(40, 60)), 0.5 * rng.normal(size=(30, 60)) + 0.3
    stats = [(a.mean(0), np.cov(a, rowvar=False)) for a in (x, y)]
    exact = frechet_distance_gaussians(*stats[0], *stats[1], eps=0.0)
    assert frechet_distance(x, y) == pytest.approx(exact, rel=1e-6)


# --- KID --------------------------------------------------------------------

def _mmd2_reference(x, y):
    """Direct double loop of the unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3."""
    m, d = len(x), x.shape[1]
    k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_matches_reference_on_one_subset(rng):
    x, y = rng.normal(size=(20, 5)), rng.normal(size=(20, 5)) + 0.5
    # subset_size = N = M: the subset is a permutation of all rows, and MMD^2 is permutation invariant.
    kid = kernel_inception_distance(x, y, subset_size=20, n_subsets=3)
    assert kid["mean"] == pytest.approx(_mmd2_reference(x, y), rel=1e-10)
    assert kid["std"] == pytest.approx(0.0, abs=1e-10)


def test_kid_identical_near_zero_shifted_positive(rng):
    x = rng.normal(size=(400, 16))
    same = kernel_inception_distance(x, rng.normal(size=(400, 16)), subset_size=100, n_subsets=20)
    shifted = kernel_inception_distance(x, rng.normal(size=(400, 16)) + 1.0, subset_size=100, n_subsets=20)
    assert abs(same["mean"]) < 0.05 and abs(kernel_inception_distance(x, x)["mean"]) < 0.05
    assert shifted["mean"] > 100 * abs(same["mean"]) and shifted["mean"] > 5 * shifted["std"]


def test_kid_deterministic_and_caps_subset(rng):
    x, y = rng.normal(size=(30, 4)), rng.normal(size=(12, 4))
    a = kernel_inception_distance(x, y, subset_size=100, n_subsets=5, seed=3)
    assert a == kernel_inception_distance(x, y, subset_size=100, n_subsets=5, seed=3)
    assert a != kernel_inception_distance(x, y, subset_size=100, n_subsets=5, seed=4)


# --- Inception score --------------------------------------------------------

def test_is_bounds():
    k = 7
    assert inception_score(np.full((50, k), 1 / k))["mean"] == pytest.approx(1.0)
    one_hot = np.eye(k)[np.arange(70) % k]
    assert inception_score(one_hot)["mean"] == pytest.approx(k)
    # All clips confidently the same class: IS = 1 too.
    assert inception_score(np.eye(k)[np.zeros(20, dtype=int)])["mean"] == pytest.approx(1.0)


def test_is_matches_scipy_entropy_and_splits(rng):
    logits = rng.normal(size=(60, 5)) * 2
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    expected = np.exp(np.mean([stats.entropy(row, p.mean(0)) for row in p]))
    assert inception_score(torch.from_numpy(p))["mean"] == pytest.approx(expected, rel=1e-10)
    split = inception_score(p, n_splits=3)
    parts = [np.exp(np.mean([stats.entropy(r, q.mean(0)) for r in q])) for q in np.split(p, 3)]
    assert split["mean"] == pytest.approx(np.mean(parts)) and split["std"] == pytest.approx(np.std(parts))


# --- NDB --------------------------------------------------------------------

@pytest.fixture(autouse=True)
def _single_openmp_thread():
    # k-means runs many tiny OpenMP regions; on a small shared machine with torch's 2 threads
    # (conftest) the spinning barriers make it ~100x slower, so this module uses one thread.
    from threadpoolctl import threadpool_limits
    with threadpool_limits(1, user_api="openmp"):
        yield


def test_ndb_identical_is_zero(rng):
    x = rng.normal(size=(300, 2))
    out = ndb(x, x, k=10)
    assert out["ndb"] == 0 and out["ndb_over_k"] == 0 and out["k"] == 10
    np.testing.assert_allclose(out["bins_real"], out["bins_fake"])
    assert out["bins_real"].sum() == pytest.approx(1.0) and out["significant"].shape == (10,)


def test_ndb_shifted_most_bins_differ(rng):
    real = rng.normal(size=(1000, 2))
    out = ndb(real, rng.normal(size=(1000, 2)) + 2.0, k=10)
    assert out["ndb"] >= 7 and out["ndb_over_k"] == out["ndb"] / 10


def test_ndb_z_test_matches_manual(rng):
    real, fake = rng.normal(size=(400, 2)), rng.normal(size=(300, 2)) * 1.5
    out = ndb(real, fake, k=8, alpha=0.05)
    p1, p2 = out["bins_real"][0], out["bins_fake"][0]
    pooled = (p1 * 400 + p2 * 300) / 700
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1 / 400 + 1 / 300))
    p_value = 2 * (1 - stats.norm.cdf(abs(z)))
    assert out["p_values"][0] == pytest.approx(p_value, rel=1e-8)
    assert out["significant"][0] == (p_value < 0.05)
    z_all, _ = two_proportion_z_test(np.array([0.0]), 10, np.array([0.0]), 10)  # empty bin: no evidence
    assert z_all[0] == 0


def test_ndb_deterministic(rng):
    real, fake = rng.normal(size=(200, 3)), rng.normal(size=(150, 3)) + 0.3
    a, b = ndb(real, fake, k=6, seed=1), ndb(real, fake, k=6, seed=1)
    np.testing.assert_array_equal(a["bins_fake"], b["bins_fake"])


# --- Nearest neighbours -----------------------------------------------------

def test_nearest_neighbours_brute_force(rng):
    q, r = rng.normal(size=(13, 6)), rng.normal(size=(40, 6))
    idx, dist = nearest_neighbours(q, r, k=3, chunk=5)  # chunk < Q exercises the blocking
    cos = 1 - np.array([[a @ b / np.linalg.norm(a) / np.linalg.norm(b) for b in r] for a in q])
    ref = np.argsort(cos, axis=1)[:, :3]
    np.testing.assert_array_equal(idx, ref)
    np.testing.assert_allclose(dist, np.take_along_axis(cos, ref, 1), atol=1e-12)
    assert idx.shape == dist.shape == (13, 3) and idx.dtype == np.int64


def test_nearest_neighbours_finds_copies(rng):
    r = rng.normal(size=(50, 8))
    idx, dist = nearest_neighbours(torch.from_numpy(r[[7, 3]] * 2.0), r)  # scaled copies: cosine distance 0
    np.testing.assert_array_equal(idx[:, 0], [7, 3])
    np.testing.assert_allclose(dist[:, 0], 0, atol=1e-12)


# --- Bad input --------------------------------------------------------------

@pytest.mark.parametrize("call, match", [
    (lambda x: frechet_distance(x[:, 0], x), "must be 2-D"),
    (lambda x: frechet_distance(x, x[:, :3]), "has 4 features but fake has 3"),
    (lambda x: frechet_distance(x[:1], x), "need at least 2"),
    (lambda x: frechet_distance(np.where(x > 1, np.nan, x), x), "NaN or Inf"),
    (lambda x: frechet_distance(x, np.full_like(x, np.inf)), "NaN or Inf"),
    (lambda x: frechet_distance_gaussians(np.zeros(4), np.eye(3), np.zeros(4), np.eye(4)), r"sigma1 must be \(4, 4\)"),
    (lambda x: frechet_distance_gaussians(np.zeros(4), np.eye(4), np.zeros(3), np.eye(4)), "mu2 has 3"),
    (lambda x: kernel_inception_distance(x, x[:1]), "need at least 2"),
    (lambda x: kernel_inception_distance(x, x[:, :2]), "features"),
    (lambda x: kernel_inception_distance(x, x, subset_size=1), "subset_size >= 2"),
    (lambda x: kernel_inception_distance(x[None], x), "must be 2-D"),
    (lambda x: inception_score(x), "negative entries"),
    (lambda x: inception_score(np.abs(x)), "sum to 1"),
    (lambda x: inception_score(np.full((4, 2), 0.5), n_splits=5), "n_splits"),
    (lambda x: inception_score(np.full(4, 0.25)), "must be 2-D"),
    (lambda x: ndb(x[:5], x, k=10), "at least k real samples"),
    (lambda x: ndb(x, x[:, :2], k=3), "features"),
    (lambda x: ndb(x, x, k=1), "k >= 2"),
    (lambda x: ndb(x, x, k=3, alpha=1.5), "alpha"),
    (lambda x: nearest_neighbours(x, x, k=21), "k must be in 1..20"),
    (lambda x: nearest_neighbours(x, np.zeros((3, 4))), "all-zero"),
    (lambda x: nearest_neighbours(x, x[:, :2]), "query has 4 features but reference has 2"),
])
def test_bad_input_raises(call, match):
    x = np.random.default_rng(1).normal(size=(20, 4))
    with pytest.raises(ValueError, match=match):
        call(x)
