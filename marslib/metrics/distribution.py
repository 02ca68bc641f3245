"""Distribution metrics: how close is a *set* of generated clips to the real set?

Every function takes embeddings (or classifier posteriors) as 2-D arrays, numpy
or torch, one row per clip, and computes in numpy float64.

* :func:`frechet_distance` -- FID (Heusel et al. 2017) / FAD (Kilgour et al. 2019):
  fit a Gaussian to each set and take ``||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^{1/2})``.
* :func:`kernel_inception_distance` -- KID (Bińkowski et al. 2018): unbiased MMD^2 with the
  cubic polynomial kernel ``k(x, y) = (x.y / d + 1)^3``, averaged over random subsets.
* :func:`inception_score` -- IS (Salimans et al. 2016): ``exp(E_x KL(p(y|x) || p(y)))``.
* :func:`ndb` -- NDB/k (Richardson & Weiss 2018): k-means bins on the real set, count the
  bins whose generated proportion differs significantly (two-proportion z-test).
* :func:`nearest_neighbours` -- cosine nearest neighbours, the memorisation check
  (the nearest training clip to each generated clip).

Nistal et al. 2020 ("Comparing representations for audio synthesis using GANs",
arXiv 2006.09266) evaluate NSynth-style generators with two classifiers, one for
pitch and one for instrument: PIS / IIS are the inception score of the pitch /
instrument classifier's posteriors, PKID / IKID the KID on that classifier's
embeddings.  Those wrappers are built elsewhere on top of these functions.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import linalg, special

ArrayLike = np.ndarray | torch.Tensor


# ---------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------

def _as_2d(x: ArrayLike, name: str, fn: str, min_rows: int = 1) -> np.ndarray:
    """``x`` as a float64 ``(N, D)`` array, or a ValueError saying what is wrong."""
    arr = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{fn}: {name} must be 2-D (N samples, D features), got shape {arr.shape}; "
                         f"reshape or flatten each sample to a vector first")
    if arr.shape[1] == 0:
        raise ValueError(f"{fn}: {name} has 0 features (shape {arr.shape})")
    if arr.shape[0] < min_rows:
        raise ValueError(f"{fn}: {name} has {arr.shape[0]} samples, need at least {min_rows}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{fn}: {name} contains NaN or Inf; check the model output that produced it")
    return arr


def _as_vector(x: ArrayLike, name: str, fn: str) -> np.ndarray:
    """``x`` as a finite float64 ``(D,)`` vector."""
    arr = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{fn}: {name} must be a 1-D mean vector (D,), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{fn}: {name} contains NaN or Inf")
    return arr


def _check_same_dim(a: np.ndarray, b: np.ndarray, fn: str, names: tuple[str, str] = ("real", "fake")) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{fn}: {names[0]} has {a.shape[1]} features but {names[1]} has {b.shape[1]}; "
                         f"embed both sets with the same model and layer")


# ---------------------------------------------------------------------------
# Fréchet distance (FID / FAD)
# ---------------------------------------------------------------------------

def frechet_distance_gaussians(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike,
                               eps: float = 1e-6) -> float:
    """Fréchet (2-Wasserstein) distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``.

    ``d^2 = ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^{1/2})`` with means
    ``(D,)`` and covariances ``(D, D)``.  As in pytorch-fid: if the matrix square root
    is not finite (near-singular product) ``eps * I`` is added to both covariances, and a
    numerically tiny imaginary part of the root is dropped.
    """
    fn = "frechet_distance_gaussians"
    mu1, mu2 = _as_vector(mu1, "mu1", fn), _as_vector(mu2, "mu2", fn)
    sigma1, sigma2 = _as_2d(sigma1, "sigma1", fn), _as_2d(sigma2, "sigma2", fn)
    d = mu1.shape[0]
    for s, n in ((sigma1, "sigma1"), (sigma2, "sigma2")):
        if s.shape != (d, d):
            raise ValueError(f"{fn}: {n} must be ({d}, {d}) to match the means, got {s.shape}")
    if mu2.shape[0] != d:
        raise ValueError(f"{fn}: mu1 has {d} features but mu2 has {mu2.shape[0]}")

    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        # A singular product (e.g. fewer samples than dimensions) can make sqrtm blow up.
        offset = np.eye(d) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        # Rounding can leave a small imaginary part; a large one means the inputs are not covariances.
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"{fn}: sqrt(sigma1 sigma2) has a large imaginary part "
                             f"({np.abs(covmean.imag).max():.3g}); are both symmetric positive semi-definite?")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def frechet_distance(real: ArrayLike, fake: ArrayLike, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to embeddings ``real (N, D)`` and ``fake (M, D)``.

    Mean and (unbiased, ``N - 1``) covariance of each set, then the formula of
    :func:`frechet_distance_gaussians`.  Needs at least 2 samples per set, and in
    practice many more than ``D`` for a stable covariance (FAD uses thousands).

    With fewer samples than dimensions (our held-out sets: ~150 clips, D = 2048)
    the ``D x D`` matrix square root is both slow and singular.  There we use an
    exact identity instead: with centred, scaled samples ``a (N, D)``, ``b (M, D)``
    (``S1 = a^T a``, ``S2 = b^T b``) the eigenvalues of ``S1 S2`` are those of
    ``(a b^T)(a b^T)^T``, so ``Tr (S1 S2)^{1/2}`` is the sum of the singular values
    of the small ``N x M`` matrix ``a b^T``.
    """
    fn = "frechet_distance"
    real = _as_2d(real, "real", fn, min_rows=2)
    fake = _as_2d(fake, "fake", fn, min_rows=2)
    _check_same_dim(real, fake, fn)
    n, m, d = len(real), len(fake), real.shape[1]
    if d <= min(n, m):
        stats_ = [(x.mean(0), np.atleast_2d(np.cov(x, rowvar=False))) for x in (real, fake)]
        return frechet_distance_gaussians(*stats_[0], *stats_[1], eps=eps)
    diff = real.mean(0) - fake.mean(0)
    a = (real - real.mean(0)) / np.sqrt(n - 1)
    b = (fake - fake.mean(0)) / np.sqrt(m - 1)
    tr_covmean = np.linalg.svd(a @ b.T, compute_uv=False).sum()
    return float(diff @ diff + (a * a).sum() + (b * b).sum() - 2 * tr_covmean)


# ---------------------------------------------------------------------------
# Kernel inception distance (KID)
# ---------------------------------------------------------------------------

def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cubic kernel ``k(x, y) = (x.y / d + 1)^3`` for all pairs: ``(n, d), (m, d) -> (n, m)``."""
    return (x @ y.T / x.shape[1] + 1) ** 3


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 between equal-size sets ``(m, d)``.

    ``sum_{i!=j} k(x_i,x_j) / (m(m-1)) + sum_{i!=j} k(y_i,y_j) / (m(m-1)) - 2 sum_{i,j} k(x_i,y_j) / m^2``
    (the diagonals of K_xx, K_yy are dropped so the estimate is unbiased; it can be < 0).
    """
    m = x.shape[0]
    k_xx, k_yy, k_xy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2 * k_xy.sum() / (m * m))


def kernel_inception_distance(real: ArrayLike, fake: ArrayLike, subset_size: int = 100, n_subsets: int = 50,
                              seed: int = 0) -> dict:
    """KID between embeddings ``real (N, D)`` and ``fake (M, D)`` (Bińkowski et al. 2018).

    For each of ``n_subsets`` draws, ``m = min(subset_size, N, M)`` rows are sampled
    without replacement from each set and the unbiased MMD^2 with the cubic kernel
    ``(x.y / d + 1)^3`` is computed (as torch-fidelity does).  Deterministic given ``seed``.

    Returns:
        ``{"mean", "std"}`` over subsets.  0 in expectation for equal distributions.
    """
    fn = "kernel_inception_distance"
    real = _as_2d(real, "real", fn, min_rows=2)
    fake = _as_2d(fake, "fake", fn, min_rows=2)
    _check_same_dim(real, fake, fn)
    if subset_size < 2 or n_subsets < 1:
        raise ValueError(f"{fn}: need subset_size >= 2 and n_subsets >= 1, got {subset_size} and {n_subsets}")
    m = min(subset_size, len(real), len(fake))
    rng = np.random.default_rng(seed)
    values = [_mmd2_unbiased(real[rng.choice(len(real), m, replace=False)],
                             fake[rng.choice(len(fake), m, replace=False)]) for _ in range(n_subsets)]
    return {"mean": float(np.mean(values)), "std": float(np.std(values))}


# ---------------------------------------------------------------------------
# Inception score (IS)
# ---------------------------------------------------------------------------

def inception_score(probs: ArrayLike, n_splits: int = 1, atol: float = 1e-3) -> dict:
    """Inception score of classifier posteriors ``probs (N, K)`` (rows are p(y|x)).

    ``IS = exp( mean_x KL(p(y|x) || p(y)) )`` with the marginal ``p(y) = mean_x p(y|x)``,
    computed on each of ``n_splits`` contiguous splits.  It ranges from 1 (every
    clip gets the same prediction) to K (confident predictions spread evenly over
    the K classes).

    Returns:
        ``{"mean", "std"}`` over the splits (std is 0 for one split).
    """
    fn = "inception_score"
    p = _as_2d(probs, "probs", fn)
    if (p < 0).any():
        raise ValueError(f"{fn}: probs has negative entries; pass softmax probabilities, not logits")
    sums = p.sum(1)
    if not np.allclose(sums, 1.0, atol=atol):
        worst = sums[np.argmax(np.abs(sums - 1))]
        raise ValueError(f"{fn}: each row of probs must sum to 1 (a row sums to {worst:.4g}); "
                         f"apply softmax to the classifier's logits")
    if not 1 <= n_splits <= len(p):
        raise ValueError(f"{fn}: n_splits must be in 1..N={len(p)}, got {n_splits}")
    scores = []
    for part in np.array_split(p, n_splits):
        marginal = part.mean(0, keepdims=True)
        # rel_entr(p, q) = p log(p / q) with 0 log 0 = 0: a class never predicted contributes nothing.
        kl = special.rel_entr(part, marginal).sum(1)
        scores.append(np.exp(kl.mean()))
    return {"mean": float(np.mean(scores)), "std": float(np.std(scores))}


# ---------------------------------------------------------------------------
# Number of statistically different bins (NDB/k)
# ---------------------------------------------------------------------------

def two_proportion_z_test(p1: np.ndarray, n1: int, p2: np.ndarray, n2: int) -> tuple[np.ndarray, np.ndarray]:
    """Pooled two-proportion z-test, elementwise: returns ``(z, two-sided p-value)``.

    ``p = (p1 n1 + p2 n2) / (n1 + n2)``, ``z = (p1 - p2) / sqrt(p (1 - p) (1/n1 + 1/n2))``.
    A bin empty in both sets (``p = 0``) has no evidence of a difference: z = 0, p-value = 1.
    """
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    z = np.divide(p1 - p2, se, out=np.zeros_like(se), where=se > 0)
    return z, 2 * special.ndtr(-np.abs(z))  # ndtr = standard normal CDF


def ndb(real: ArrayLike, fake: ArrayLike, k: int, alpha: float = 0.05, seed: int = 0, n_init: int = 10) -> dict:
    """NDB/k (Richardson & Weiss 2018, "On GANs and GMMs").

    k-means with ``k`` centroids is fitted on ``real (N, D)`` only; every real and
    fake sample goes to its nearest centroid.  Per bin, the real and fake
    proportions are compared with a pooled two-proportion z-test at level
    ``alpha``; NDB is the number of bins where they differ significantly.  A model
    that drops modes or invents new ones scores high; 0 is ideal.

    Returns:
        ``ndb`` (int), ``ndb_over_k``, ``k``, ``bins_real`` / ``bins_fake`` (proportions
        per bin, ``(k,)``), ``significant`` (bool ``(k,)``), ``p_values`` (``(k,)``).

    k-means runs on one thread: the sets are small, and scikit-learn's OpenMP
    threads fight torch's for the cores (we measured 100x slowdowns on 2 cores).
    """
    from sklearn.cluster import KMeans  # imported lazily: only NDB needs scikit-learn
    from threadpoolctl import threadpool_limits

    fn = "ndb"
    real = _as_2d(real, "real", fn)
    fake = _as_2d(fake, "fake", fn)
    _check_same_dim(real, fake, fn)
    if k < 2:
        raise ValueError(f"{fn}: need k >= 2 bins, got {k}")
    if len(real) < k:
        raise ValueError(f"{fn}: k={k} bins need at least k real samples, got {len(real)}; "
                         f"lower k (the bins should hold many samples each)")
    if not 0 < alpha < 1:
        raise ValueError(f"{fn}: alpha must be in (0, 1), got {alpha}")
    with threadpool_limits(1):
        kmeans = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(real)
        fake_bins = kmeans.predict(fake)
    bins_real = np.bincount(kmeans.labels_, minlength=k) / len(real)
    bins_fake = np.bincount(fake_bins, minlength=k) / len(fake)
    _, p_values = two_proportion_z_test(bins_real, len(real), bins_fake, len(fake))
    significant = p_values < alpha
    return {"ndb": int(significant.sum()), "ndb_over_k": float(significant.sum() / k), "k": k,
            "bins_real": bins_real, "bins_fake": bins_fake, "significant": significant, "p_values": p_values}


# ---------------------------------------------------------------------------
# Nearest neighbours (memorisation check)
# ---------------------------------------------------------------------------

def nearest_neighbours(query: ArrayLike, reference: ArrayLike, k: int = 1,
                       chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest reference rows to each query row by cosine distance.

    ``d(q, r) = 1 - q.r / (||q|| ||r||)`` in [0, 2].  With generated clips as the
    query and the training set as the reference, a distance near 0 flags a copy.

    Args:
        query: ``(Q, D)`` embeddings.  reference: ``(N, D)`` embeddings.  k: 1..N.
        chunk: queries per block, so memory stays ``O(chunk * N)``.
    Returns:
        ``indices (Q, k)`` int64 into ``reference`` and ``distances (Q, k)`` float64,
        nearest first (ties broken by the lower index).
    """
    fn = "nearest_neighbours"
    query = _as_2d(query, "query", fn)
    reference = _as_2d(reference, "reference", fn)
    _check_same_dim(query, reference, fn, names=("query", "reference"))
    if not 1 <= k <= len(reference):
        raise ValueError(f"{fn}: k must be in 1..{len(reference)} (the reference size), got {k}")
    norms_q, norms_r = np.linalg.norm(query, axis=1), np.linalg.norm(reference, axis=1)
    if (norms_q == 0).any() or (norms_r == 0).any():
        raise ValueError(f"{fn}: an all-zero embedding has no direction, so its cosine distance is undefined")
    q, r = query / norms_q[:, None], reference / norms_r[:, None]
    indices, distances = [], []
    for start in range(0, len(q), chunk):
        dist = 1 - q[start:start + chunk] @ r.T                      # (chunk, N)
        idx = np.argsort(dist, axis=1, kind="stable")[:, :k]
        indices.append(idx)
        distances.append(np.take_along_axis(dist, idx, axis=1))
    return np.concatenate(indices).astype(np.int64), np.concatenate(distances)
