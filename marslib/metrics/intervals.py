"""Bootstrap intervals over clips: is a change between two runs more than noise?

Every headline number of the evaluation (an accuracy, an FD) is computed from a
few dozen or hundred clips; another draw of clips would give another number.  The
**percentile bootstrap** (Efron & Tibshirani 1993) estimates that spread from the
clips we have: draw ``n`` of the ``n`` clips *with replacement*, recompute the
statistic, repeat ``B`` times, and take the 2.5th and 97.5th percentiles of the
``B`` values as the 95 % interval.  Deterministic for a seed.

* :func:`bootstrap_mean_interval` -- a per-clip score averaged over clips (an
  accuracy: each clip is right, 1, or wrong, 0); vectorised, ``B = 1000``.
* :func:`bootstrap_interval` -- any statistic of resampled clip indices.  FD
  resamples the *generated* clips' embeddings against the fixed real reference
  (``B = 200``: each FD needs a matrix square root).
* :func:`intervals_separate` -- **the rule**: a change between two runs (or two rows)
  is called *real* only when their 95 % intervals do not overlap.

What the intervals do and do not cover.  They cover the sampling of clips (which
notes were drawn, which seeds the generator got), not that of training runs: two
trainings with other seeds can differ by more.  Non-overlapping 95 % intervals is a
conservative test (stricter than a 5 % two-sample test), and overlapping intervals
do not show that two runs are equal, only that these clips cannot tell them apart.
FD is biased upwards by few clips (notebook 04, §2.3), and a resample holds only
about 63 % *distinct* clips, so every resampled FD lies well above the FD of the
whole set (by more than the spread: 400 clips, 256-D, FD 107, resampled FDs
138-147).  A plain percentile interval of FD would then exclude its own point
value.  FD's interval is therefore the percentile interval of the resampled values
*recentred* on the point value (``recentre_on``: the bootstrap estimate of bias,
mean of the resampled values minus the point value, is subtracted): its width is
the bootstrap's, its centre the FD reported.  Compare FD intervals only between
rows of the same number of clips (every row of one evaluation), as the FDs themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

LEVEL = 0.95          # two-sided coverage of every interval
N_RESAMPLES = 1000    # bootstrap resamples of a mean (accuracies)
N_RESAMPLES_FD = 200  # bootstrap resamples of an FD (one matrix square root each)


def _check(n: int, n_resamples: int, level: float, fn: str) -> None:
    if n < 1:
        raise ValueError(f"{fn}: need at least one clip, got {n}")
    if n_resamples < 1:
        raise ValueError(f"{fn}: need n_resamples >= 1, got {n_resamples}")
    if not 0 < level < 1:
        raise ValueError(f"{fn}: level must be in (0, 1), got {level}")


def percentile_interval(values: Sequence[float] | np.ndarray, level: float = LEVEL) -> list[float]:
    """``[lo, hi]``: the central ``level`` of ``values`` (2.5th and 97.5th percentiles at 95 %)."""
    tail = 50 * (1 - level)
    lo, hi = np.percentile(np.asarray(values, dtype=np.float64), [tail, 100 - tail])
    return [float(lo), float(hi)]


def bootstrap_mean_interval(scores: Sequence[float] | np.ndarray, n_resamples: int = N_RESAMPLES, seed: int = 0,
                            level: float = LEVEL) -> list[float]:
    """Percentile-bootstrap interval ``[lo, hi]`` of the mean of per-clip ``scores`` ``(n,)``.

    For an accuracy, ``scores`` is 1 where a clip is right and 0 where it is wrong.
    """
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"bootstrap_mean_interval: scores must be 1-D (one per clip), got shape {x.shape}")
    _check(len(x), n_resamples, level, "bootstrap_mean_interval")
    if not np.isfinite(x).all():
        raise ValueError("bootstrap_mean_interval: scores contain NaN or Inf")
    rng = np.random.default_rng(seed)
    means = [x[rng.integers(0, len(x), size=(min(100, n_resamples - s), len(x)))].mean(1)  # 100 at a time:
             for s in range(0, n_resamples, 100)]                                          # memory bounded
    return percentile_interval(np.concatenate(means), level)


def bootstrap_interval(statistic: Callable[[np.ndarray], float], n: int, n_resamples: int = N_RESAMPLES,
                       seed: int = 0, level: float = LEVEL, recentre_on: float | None = None) -> list[float]:
    """Percentile-bootstrap interval ``[lo, hi]`` of ``statistic(indices)`` over ``n`` clips.

    Each of ``n_resamples`` draws passes ``n`` indices drawn with replacement from
    ``range(n)``; e.g. ``lambda i: frechet_distance(real, fake[i])`` for FD against
    a fixed reference.  With ``recentre_on`` (the statistic of all ``n`` clips) the
    resampled values are first shifted by ``recentre_on - mean(values)``, removing the
    bootstrap's estimate of the statistic's bias (needed for FD: see the module docstring).
    """
    _check(n, n_resamples, level, "bootstrap_interval")
    rng = np.random.default_rng(seed)
    values = np.array([float(statistic(rng.integers(0, n, size=n))) for _ in range(n_resamples)])
    if not np.isfinite(values).all():
        raise ValueError("bootstrap_interval: the statistic returned NaN or Inf on a resample")
    if recentre_on is not None:
        values += float(recentre_on) - values.mean()
    return percentile_interval(values, level)


def intervals_separate(a: Sequence[float], b: Sequence[float]) -> bool:
    """True when intervals ``a = [lo, hi]`` and ``b`` do not overlap: the change from ``a`` to ``b`` is *real*.

    Touching intervals (``a``'s ``hi`` equal to ``b``'s ``lo``) overlap: not real.
    """
    (a_lo, a_hi), (b_lo, b_hi) = (map(float, a), map(float, b))
    if not (a_lo <= a_hi and b_lo <= b_hi):
        raise ValueError(f"intervals_separate: intervals must be [lo, hi] with lo <= hi, got {list(a)} and {list(b)}")
    return a_hi < b_lo or b_hi < a_lo
