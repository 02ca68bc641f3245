"""Checks for notebook 04's exercises (see :mod:`marslib.lab`).

The metrics are deterministic functions of embeddings, so the checks take the
embeddings the student computed and recompute the metric; generating and embedding
clips (the slow part) stays in the notebook.  Conclusions are judged against the
student's own numbers: `smoke` models are barely trained and may go either way.
"""

from __future__ import annotations

import math

import numpy as np

from . import Exercise, Wrong
from .nb03 import agrees, require_close, require_keys


def _number(x, what):
    if not (isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)):
        raise Wrong(f"{what} must be a finite number, got {x!r}")
    return float(x)


# --- 04.1 More clips per condition -----------------------------------------------------------

def kid_fd(reference, clips, subset: int, n_subsets: int, seed: int) -> dict:
    """KID (mean, std over subsets of ``subset`` clips) and FD of ``clips`` against ``reference``."""
    from ..metrics import frechet_distance, kernel_inception_distance

    return {"kid": kernel_inception_distance(reference, clips, subset, n_subsets, seed=seed),
            "fd": frechet_distance(reference, clips)}


def check_more_clips(answer, reference, one, four, cfg) -> str:
    keys = ("n_conditions", "kid_1", "kid_4", "fd_1", "fd_4", "kid_moved_beyond_noise", "fd_drops")
    require_keys(answer, dict, keys)
    m = len(reference)
    if answer["n_conditions"] != m or len(one) != m or len(four) != 4 * m:
        raise Wrong(f"with {answer['n_conditions']!r} conditions the one-clip set needs that many clips and the "
                    f"four-clip set four times as many; got {len(reference)} reference, {len(one)} and {len(four)}")
    subset = max(2, m // 2)
    for name, clips in (("1", one), ("4", four)):
        truth = kid_fd(reference, clips, subset, cfg.eval.kid_subsets, cfg.seed)
        require_keys(answer[f"kid_{name}"], dict, ("mean", "std"))
        for stat in ("mean", "std"):
            require_close(answer[f"kid_{name}"][stat], truth["kid"][stat], 1e-9 + 1e-6 * abs(truth["kid"][stat]),
                   f"kid_{name}[{stat!r}] (subsets of m // 2 = {subset} clips, cfg.eval.kid_subsets, cfg.seed)")
        require_close(answer[f"fd_{name}"], truth["fd"], 1e-6 * max(1.0, abs(truth["fd"])), f"fd_{name}")
    k1, k4 = answer["kid_1"], answer["kid_4"]
    moved = abs(k4["mean"] - k1["mean"]) > max(k1["std"], k4["std"])
    if not agrees(answer["kid_moved_beyond_noise"], moved):
        raise Wrong(f"KID moved by {abs(k4['mean'] - k1['mean']):.4g}, its std over subsets is "
                    f"{max(k1['std'], k4['std']):.4g}: 'kid_moved_beyond_noise' should be {moved}")
    if not agrees(answer["fd_drops"], answer["fd_4"] < answer["fd_1"]):
        raise Wrong(f"FD went {answer['fd_1']:.4g} -> {answer['fd_4']:.4g}: 'fd_drops' must say whether it fell")
    return (f"KID {k1['mean']:+.4f} -> {k4['mean']:+.4f} (std {k1['std']:.4f}, {k4['std']:.4f}); "
            f"FD {answer['fd_1']:.4g} -> {answer['fd_4']:.4g}")


# --- 04.2 FD's bias in our dimensions --------------------------------------------------------

def same_gaussian_fd(reference, n: int, seed: int) -> float:
    """FD between two samples of n points of the Gaussian fitted to ``reference (N, d)``: pure bias.

    A sample is ``mu + z @ centred / sqrt(N - 1)`` with ``z (n, N)`` standard normal, so its
    covariance is the reference's own (rank N - 1: the shape of the real embeddings).
    """
    from ..metrics import frechet_distance

    rng = np.random.default_rng(seed)
    mu = reference.mean(0)
    centred = (reference - mu) / np.sqrt(len(reference) - 1)
    draw = lambda: mu + rng.standard_normal((n, len(reference))) @ centred  # noqa: E731
    return frechet_distance(draw(), draw())


def check_fd_bias(answer, reference, crepe_dim, floor_fd) -> str:
    keys = ("dims", "n", "fd", "n_test", "fd_at_n_test", "floor_fd_crepe", "floor_mostly_bias")
    require_keys(answer, dict, keys)
    if answer["dims"] != crepe_dim:
        raise Wrong(f"use the CREPE embedding size, crepe_net.embed_dim = {crepe_dim}")
    sizes, fds = list(answer["n"]), list(answer["fd"])
    if len(sizes) != len(fds) or len(sizes) < 3 or sizes != sorted(sizes):
        raise Wrong("give FD at three or more increasing numbers of clips n, one FD each")
    n_test = len(reference)
    if answer["n_test"] != n_test or n_test not in sizes:
        raise Wrong(f"include n_test = the number of test clips ({n_test}) among your n")
    if max(sizes) < 1000:
        raise Wrong("go up to at least 1000 clips per set, to see the bias fall")
    if not fds[0] > fds[-1]:
        raise Wrong(f"FD of two samples of one Gaussian should fall as n grows; you have {fds[0]:.4g} at n = "
                    f"{sizes[0]} and {fds[-1]:.4g} at n = {sizes[-1]}")
    at_test = _number(answer["fd_at_n_test"], "fd_at_n_test")
    if at_test != fds[sizes.index(n_test)]:
        raise Wrong("fd_at_n_test must be your FD at n = n_test")
    draws = np.array([same_gaussian_fd(reference, n_test, seed) for seed in range(8)])
    if abs(at_test - draws.mean()) > 4 * draws.std() + 0.05 * draws.mean():
        raise Wrong(f"at n = {n_test}, two samples of the Gaussian fitted to the test embeddings give FD "
                    f"{draws.mean():.4g} ± {draws.std():.2g}; you have {at_test:.4g}: sample with the test "
                    f"embeddings' mean and covariance")
    require_close(_number(answer["floor_fd_crepe"], "floor_fd_crepe"), floor_fd, 1e-6 * max(1.0, abs(floor_fd)),
                  "floor_fd_crepe (metrics['real_train']['fd_crepe'])")
    mostly = at_test >= 0.5 * floor_fd
    if not agrees(answer["floor_mostly_bias"], mostly):
        raise Wrong(f"the bias alone is {at_test:.4g} against the floor's {floor_fd:.4g}: 'floor_mostly_bias' "
                    f"(bias at least half the floor's FD) should be {mostly}")
    return (f"two samples of one {crepe_dim}-D Gaussian at n = {n_test}: FD {at_test:.4g}, "
            f"{at_test / floor_fd:.0%} of the floor's {floor_fd:.4g}")


# --- 04.3 No guidance ------------------------------------------------------------------------

GUIDANCE_METRICS = {"pis": (1.0, 128.0), "iis": (1.0, 11.0), "pitch_acc_pyin": (0.0, 1.0),
                    "pitch_acc_crepe": (0.0, 1.0)}


def check_no_guidance(answer, cfg0_waves, mars_waves) -> str:
    require_keys(answer, dict, ("n", "cfg0", "mars", "drops"))
    n = answer["n"]
    if not (isinstance(n, int) and n == len(cfg0_waves) == len(mars_waves)):
        raise Wrong(f"'n' must be the number of conditions scored; the clip sets hold {len(cfg0_waves)} "
                    f"and {len(mars_waves)}")
    if np.allclose(cfg0_waves, mars_waves):
        raise Wrong("your CFG-0 clips equal MARS's: generate them with cfg_scale=0")
    for row in ("cfg0", "mars", "drops"):
        require_keys(answer[row], dict, tuple(GUIDANCE_METRICS))
    for key, (lo, hi) in GUIDANCE_METRICS.items():
        for row in ("cfg0", "mars"):
            v = _number(answer[row][key], f"{row}[{key!r}]")
            if not lo - 1e-6 <= v <= hi + 1e-6:
                raise Wrong(f"{row}[{key!r}] = {v} is outside [{lo:g}, {hi:g}]: take it from Judge.score's metrics")
            if key.startswith("pitch_acc") and abs(v * n - round(v * n)) > 1e-6:
                raise Wrong(f"{row}[{key!r}] = {v} is not a whole number of clips out of {n}")
        drop = answer["cfg0"][key] < answer["mars"][key]
        if not agrees(answer["drops"][key], drop):
            raise Wrong(f"{key}: {answer['mars'][key]:.3f} guided, {answer['cfg0'][key]:.3f} without: "
                        f"drops[{key!r}] should be {drop}")
    dropped = [k for k, v in answer["drops"].items() if v]
    return f"without guidance {', '.join(dropped) or 'nothing'} dropped, on {n} conditions"


# --- 04.4 NDB's k -----------------------------------------------------------------------------

def check_ndb_k(answer, real, fake, seed) -> str:
    from ..metrics import ndb

    require_keys(answer, dict, ("k", "ndb", "expected_by_chance", "largest_over_k_at"))
    ks, counts, expected = list(answer["k"]), list(answer["ndb"]), list(answer["expected_by_chance"])
    if ks != [4, 16, 64] or len(counts) != 3 or len(expected) != 3:
        raise Wrong("use k = [4, 16, 64], one NDB and one expected count each")
    for k, c, e in zip(ks, counts, expected):
        truth = ndb(real, fake, k=k, seed=seed)["ndb"]
        if c != truth:
            raise Wrong(f"NDB at k = {k} is {truth} significant bins for the good generator, not {c!r} "
                        f"(ndb(real_blobs, good_blobs, k=k, seed=seed)['ndb'])")
        require_close(_number(e, f"expected_by_chance at k = {k}"), 0.05 * k, 1e-9,
               f"the bins significant by chance at k = {k} (alpha · k)")
    ratios = [c / k for c, k in zip(counts, ks)]
    if answer["largest_over_k_at"] not in [k for k, r in zip(ks, ratios) if r == max(ratios)]:
        raise Wrong(f"'largest_over_k_at' must be the k with the largest NDB/k: {dict(zip(ks, ratios))}")
    return ", ".join(f"k {k}: {c} significant (chance {e:g})" for k, c, e in zip(ks, counts, expected))


# --- 04.5 A copy detector --------------------------------------------------------------------

def check_copies(answer, copies, classifier, cfg, train_trunk, test_cos) -> str:
    from ..metrics import classify_waveforms, nearest_neighbours

    require_keys(answer, dict, ("n_copies", "copy_distances", "closest_real_test", "copies_below_every_real_test_note"))
    if answer["n_copies"] != len(copies) or len(answer["copy_distances"]) != len(copies) or len(copies) < 1:
        raise Wrong(f"one distance per appended training clip ({len(copies)} clips)")
    _, dist = nearest_neighbours(classify_waveforms(classifier, copies, cfg)["trunk"], train_trunk)
    for i, (d, truth) in enumerate(zip(answer["copy_distances"], dist[:, 0])):
        require_close(d, float(truth), 1e-5, f"copy_distances[{i}]")
    require_close(_number(answer["closest_real_test"], "closest_real_test"), float(np.min(test_cos)), 1e-9,
           "closest_real_test (the smallest nearest-training distance of a real test note)")
    below = max(answer["copy_distances"]) < answer["closest_real_test"]
    if not agrees(answer["copies_below_every_real_test_note"], below):
        raise Wrong(f"your copies are at most {max(answer['copy_distances']):.2e} from the training set, the "
                    f"closest real test note {answer['closest_real_test']:.2e}: the conclusion should be {below}")
    return (f"copies at {max(answer['copy_distances']):.1e} at most; the closest real test note at "
            f"{answer['closest_real_test']:.3f}")


EXERCISES = [
    Exercise("04.1", "More clips per condition",
             "a dict: n_conditions, kid_1 and kid_4 ({'mean', 'std'}), fd_1, fd_4, "
             "kid_moved_beyond_noise (bool), fd_drops (bool)", check_more_clips),
    Exercise("04.2", "FD's bias in our dimensions",
             "a dict: dims, n (list), fd (list), n_test, fd_at_n_test, floor_fd_crepe, "
             "floor_mostly_bias (bool)", check_fd_bias),
    Exercise("04.3", "No guidance",
             "a dict: n, cfg0 and mars ({'pis', 'iis', 'pitch_acc_pyin', 'pitch_acc_crepe'}), "
             "drops (the same keys, bools)", check_no_guidance),
    Exercise("04.4", "NDB's k",
             "a dict: k [4, 16, 64], ndb (significant bins per k), expected_by_chance, largest_over_k_at",
             check_ndb_k),
    Exercise("04.5", "A copy detector",
             "a dict: n_copies, copy_distances (list), closest_real_test, "
             "copies_below_every_real_test_note (bool)", check_copies),
]
