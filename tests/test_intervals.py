"""Bootstrap intervals over clips and the rule for a real change (marslib.metrics.intervals)."""

import numpy as np
import pytest

from marslib.evaluate import family_confusion, per_family, pitch_hits
from marslib.metrics import (bootstrap_interval, bootstrap_mean_interval, frechet_distance, intervals_separate,
                             percentile_interval, score_pitch)


def hits(n, p, seed=0):
    """``n`` clips, each right (1) with probability ``p``."""
    return (np.random.default_rng(seed).random(n) < p).astype(float)


def width(interval):
    return interval[1] - interval[0]


def test_mean_interval_contains_the_point_estimate_and_is_deterministic():
    for seed in range(10):
        x = hits(40, 0.1 + 0.08 * seed, seed)
        lo, hi = bootstrap_mean_interval(x, seed=seed)
        assert lo <= x.mean() <= hi and lo < hi
        assert bootstrap_mean_interval(x, seed=seed) == [lo, hi]           # same seed, same interval
    x = hits(40, 0.4)
    assert bootstrap_mean_interval(x, seed=0) != bootstrap_mean_interval(x, seed=1)  # the seed is used
    assert bootstrap_mean_interval(np.ones(7)) == [1.0, 1.0]                 # no spread, no width


def test_mean_interval_shrinks_with_more_clips():
    widths = [width(bootstrap_mean_interval(hits(n, 0.3, seed=1))) for n in (25, 100, 400, 1600)]
    assert all(a > b for a, b in zip(widths, widths[1:])), widths
    assert widths[0] > 3 * widths[-1]                                       # ~ 1 / sqrt(n): 8x in theory
    assert abs(widths[1] - 2 * 1.96 * np.sqrt(0.3 * 0.7 / 100)) < 0.05     # the normal approximation's width


def test_mean_interval_covers_the_true_accuracy_about_95_percent_of_the_time():
    covered = [lo <= 0.3 <= hi for lo, hi in (bootstrap_mean_interval(hits(100, 0.3, seed), 500, seed)
                                              for seed in range(200))]
    assert 0.88 <= np.mean(covered) <= 0.99, np.mean(covered)
    narrow = [lo <= 0.3 <= hi for lo, hi in (bootstrap_mean_interval(hits(100, 0.3, seed), 500, seed, level=0.5)
                                             for seed in range(200))]
    assert 0.35 <= np.mean(narrow) <= 0.65, np.mean(narrow)


def test_fd_interval_is_recentred_on_the_point_value_and_shrinks_with_more_clips():
    rng = np.random.default_rng(0)
    out = {}
    for n in (20, 80):  # fewer clips than dimensions, as our embeddings (256 to 2048-D, tens to hundreds of clips)
        real, fake = rng.standard_normal((n, 32)), rng.standard_normal((n, 32)) + 0.5
        fd = frechet_distance(real, fake)
        statistic = lambda i: frechet_distance(real, fake[i])  # noqa: E731
        raw = bootstrap_interval(statistic, n, 200, seed=3)
        recentred = bootstrap_interval(statistic, n, 200, seed=3, recentre_on=fd)
        assert recentred == bootstrap_interval(statistic, n, 200, seed=3, recentre_on=fd)   # deterministic
        assert recentred[0] <= fd <= recentred[1]
        assert np.isclose(width(raw), width(recentred))                    # same spread, shifted
        out[n] = fd, raw, recentred
    fd, raw, _ = out[20]
    assert raw[0] > fd      # resampled FDs (duplicated clips) all lie above the point value: why we recentre
    assert width(out[80][2]) < width(out[20][2])


def test_bootstrap_refuses_bad_input():
    with pytest.raises(ValueError, match="at least one clip"):
        bootstrap_mean_interval([])
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_mean_interval([1.0, np.nan])
    with pytest.raises(ValueError, match="1-D"):
        bootstrap_mean_interval(np.ones((3, 2)))
    with pytest.raises(ValueError, match="level"):
        bootstrap_mean_interval([1.0, 0.0], level=95)
    with pytest.raises(ValueError, match="NaN or Inf"):
        bootstrap_interval(lambda i: np.nan, 5, 3)
    assert np.allclose(percentile_interval(np.arange(101.0), 0.9), [5.0, 95.0])


@pytest.mark.parametrize("a, b, real", [
    ([0.1, 0.2], [0.3, 0.4], True),      # apart
    ([0.3, 0.4], [0.1, 0.2], True),      # apart, other order
    ([0.1, 0.3], [0.2, 0.4], False),     # overlapping
    ([0.1, 0.2], [0.2, 0.3], False),     # touching: overlap
    ([0.0, 1.0], [0.4, 0.5], False),     # nested
    ([5.0, 5.0], [5.0, 5.0], False),     # the same point
    ([5.0, 5.0], [5.5, 6.0], True),
])
def test_intervals_separate(a, b, real):
    assert intervals_separate(a, b) is real
    assert intervals_separate(b, a) is real


def test_intervals_separate_refuses_reversed_intervals():
    with pytest.raises(ValueError, match="lo <= hi"):
        intervals_separate([0.3, 0.1], [0.5, 0.6])


def test_pitch_hits_are_the_clips_score_pitch_counts():
    midi = np.array([60.2, np.nan, 60.9, 59.0, 48.0, 61.01, 61.0])
    target = np.full(len(midi), 60)
    assert pitch_hits(midi, target).tolist() == [True, False, True, True, False, False, True]
    assert pitch_hits(midi, target).mean() == score_pitch(midi, target)["accuracy"]


def test_per_family_and_confusion_agree():
    vocabulary = ("bass", "brass", "flute", "guitar", "keyboard")
    requested = np.array([0, 0, 2, 2, 2, 3, 0, 2])
    predicted = np.array([0, 1, 2, 4, 2, 3, 0, 0])
    pitch_hit = np.array([1, 0, 1, 1, 0, 0, 1, 1], dtype=bool)
    fam = per_family(requested, predicted == requested, pitch_hit, vocabulary)
    conf = family_confusion(requested, predicted, vocabulary)
    assert list(fam) == ["bass", "flute", "guitar"]                          # present families, vocabulary order
    assert fam["bass"] == {"n": 3, "family_acc": 2 / 3, "pitch_acc_crepe": 2 / 3}
    assert fam["flute"] == {"n": 4, "family_acc": 0.5, "pitch_acc_crepe": 0.75}
    assert conf["labels"] == ["bass", "brass", "flute", "guitar", "keyboard"]  # + families only predicted
    matrix = np.array(conf["matrix"])
    assert matrix.sum() == len(requested)
    for i, label in enumerate(conf["labels"]):
        if label in fam:
            assert matrix[i].sum() == fam[label]["n"]
            assert matrix[i, i] / matrix[i].sum() == fam[label]["family_acc"]
        else:
            assert matrix[i].sum() == 0                                      # never requested: an empty row
    assert matrix[2].tolist() == [1, 0, 2, 0, 1]                             # flute: 1 bass, 2 flute, 1 keyboard
