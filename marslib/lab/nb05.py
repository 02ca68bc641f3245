"""Checks for notebook 05's exercises (see :mod:`marslib.lab`): CMX vs truncation.

Every check recomputes what it can from the notebook's own objects (the test
spectrograms, the tokenizers, the ceilings of §5, the step costs of §3) and then
verifies that the student's conclusion is the one their numbers imply.  Nothing here
depends on a training run going one way: smoke models are barely trained.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import Exercise, Wrong
from .answers import fields
from .. import audio, cmx
from ..config import Config


# --- shared helpers -----------------------------------------------------------------

def _number(answer: dict, key: str, low: float = -math.inf) -> float:
    try:
        value = float(answer[key])
    except (TypeError, ValueError):
        raise Wrong(f"{key!r} must be a number, got {answer[key]!r}") from None
    if not math.isfinite(value) or value < low:
        raise Wrong(f"{key!r} = {value} is not a finite number >= {low}")
    return value


def _close(got: float, want: float, what: str, rel: float = 1e-3, abs_: float = 1e-4) -> None:
    if not math.isclose(got, want, rel_tol=rel, abs_tol=abs_):
        raise Wrong(f"{what} should be {want:.4g}, you have {got:.4g}")


def _bool(answer: dict, key: str) -> bool:
    if not isinstance(answer[key], (bool, np.bool_)):
        raise Wrong(f"{key!r} must be True or False, got {answer[key]!r}")
    return bool(answer[key])


def _choice(answer: dict, key: str, options: tuple) -> object:
    if answer[key] not in options:
        raise Wrong(f"{key!r} must be one of {options}, got {answer[key]!r}")
    return answer[key]


# --- 05.1 Another crop ----------------------------------------------------------------

def energy_lost_band(mag_B1FT: torch.Tensor, r: int) -> float:
    """Fraction of energy outside the lowest ``F / r^2`` bins of all frames (the 'band' crop)."""
    f = mag_B1FT.shape[-2]
    energy = mag_B1FT.double().pow(2)
    return float(1 - energy[..., : f // (r * r), :].sum() / energy.sum())


def check_another_crop(answer, spec_test: torch.Tensor, cfg: Config, fd_corner: float) -> str:
    a = fields(answer, ("energy_lost_band", "energy_lost_corner", "fd_band", "fd_corner", "band_beats_corner"))
    r = cfg.cmx.factor
    mag = audio.denormalise(spec_test, cfg.audio)
    _close(_number(a, "energy_lost_corner", 0), cmx.truncation_loss(mag, r)["energy_lost"],
           "the corner crop's energy lost (cmx.truncation_loss on the denormalised test spectrograms)")
    band = energy_lost_band(mag, r)
    _close(_number(a, "energy_lost_band", 0), band,
           f"the band crop's energy lost (keep bins 0..{mag.shape[-2] // (r * r) - 1} of all frames)")
    _close(_number(a, "fd_corner", 0), fd_corner, "fd_corner (fd_oracle['truncation_representation'] of §5)")
    fd_band = _number(a, "fd_band", 0)
    beats = bool(fd_band < fd_corner)
    if _bool(a, "band_beats_corner") != beats:
        raise Wrong(f"your numbers say FD band {fd_band:.3f} vs corner {fd_corner:.3f}: "
                    f"band_beats_corner should be {beats}")
    return (f"band crop loses {band:.1%} of the energy (corner: {a['energy_lost_corner']:.1%}); "
            f"FD CREPE {fd_band:.2f} vs {fd_corner:.2f}: the band crop {'wins' if beats else 'does not win'}")


# --- 05.2 What the budget can change ----------------------------------------------------

def check_budget(answer, ceilings: dict, fd_mars: float) -> str:
    a = fields(answer, ("steps", "lsd_cmx", "lsd_truncation", "lsd_bound", "fd_bound", "fd_mars",
                       "equal_budget_better", "budget_can_flip"))
    if not isinstance(a["steps"], int) or a["steps"] < 1:
        raise Wrong(f"'steps' is the number of training steps each tokenizer got (an int >= 1), got {a['steps']!r}")
    bound = ceilings["truncation_representation"]
    _close(_number(a, "lsd_bound", 0), bound["lsd"], "lsd_bound (the perfect crop's LSD, §5)")
    _close(_number(a, "fd_bound", 0), bound["fd_crepe"], "fd_bound (the perfect crop's FD CREPE, §5)")
    _close(_number(a, "fd_mars", 0), fd_mars, "fd_mars (MARS's FD CREPE, §6)")
    lsd_c, lsd_t = _number(a, "lsd_cmx", 0), _number(a, "lsd_truncation", 0)
    if lsd_t < bound["lsd"] - 1e-6:
        raise Wrong(f"a truncation tokenizer cannot beat a perfect crop (LSD {bound['lsd']:.2f} dB), yet yours "
                    f"has {lsd_t:.2f} dB: score it on the full spectrogram, with reconstruction_report")
    better = _choice(a, "equal_budget_better", ("cmx", "truncation"))
    if better != ("cmx" if lsd_c < lsd_t else "truncation"):
        raise Wrong(f"at {a['steps']} steps each, LSD CMX {lsd_c:.2f} vs truncation {lsd_t:.2f} dB: "
                    "which is lower?")
    can_flip = bool(bound["fd_crepe"] < fd_mars)
    if _bool(a, "budget_can_flip") != can_flip:
        raise Wrong(f"a perfect truncation arm reaches FD {bound['fd_crepe']:.3f}, MARS {fd_mars:.3f}: "
                    f"{'even a perfect crop loses' if not can_flip else 'a perfect crop would win'}, so more "
                    f"training {'cannot' if not can_flip else 'could'} flip the comparison")
    return (f"equal budgets ({a['steps']} steps each): {better} reconstructs better; the bound says more budget "
            f"{'could' if can_flip else 'cannot'} flip the FD comparison")


# --- 05.3 Cost scaling -------------------------------------------------------------------

def factor_config(cfg: Config, r: int) -> Config:
    """``cfg`` with CMX factor ``r`` and the tokenizer's downsampling changed to keep the latent grid."""
    out = Config.from_dict(cfg.to_dict())
    tok, r0 = cfg.tokenizer, cfg.cmx.factor
    for name, factor in (("downsample", tok.downsample), ("time_downsample", tok.time_downsample)):
        if factor and (factor * r0) % r:
            raise Wrong(f"r = {r} cannot keep the latent grid: tokenizer.{name} {factor} x {r0} / {r} is not whole")
        setattr(out.tokenizer, name, factor * r0 // r if factor else 0)
    out.cmx.factor = r
    from ..config import validate
    validate(out)
    return out


def activation_mb(cfg: Config, representation: str, batch_size: int) -> float:
    """Activation memory (MB) of one tokenizer training step (deterministic, as in ``step_costs``)."""
    from ..ablation import representation_config, tokenizer_train_step
    from ..runtime import saved_tensor_bytes

    model, step = tokenizer_train_step(representation_config(cfg, representation), batch_size)
    return saved_tensor_bytes(step, list(model.parameters())) / 2 ** 20


def check_cost_scaling(answer, cfg: Config, costs: list[dict], batch_size: int) -> str:
    a = fields(answer, ("ratios", "memory_ratio_grows_with_r"))
    ratios = a["ratios"]
    if not isinstance(ratios, dict) or len(ratios) < 2:
        raise Wrong("'ratios' must map at least two CMX factors r to {'memory': ..., 'time': ...}")
    by = {c["representation"]: c for c in costs}
    full_mb = by["full"]["activation_mb"]
    for r, row in ratios.items():
        if not isinstance(row, dict) or not {"memory", "time"} <= set(row):
            raise Wrong(f"ratios[{r}] must be a dict with 'memory' and 'time'")
        _number(row, "time", 1e-9)
        want = (full_mb / by["cmx"]["activation_mb"] if int(r) == cfg.cmx.factor
                else full_mb / activation_mb(factor_config(cfg, int(r)), "cmx", batch_size))
        _close(_number(row, "memory", 0), want, f"full / CMX activation memory at r = {r}", rel=0.02)
    rs = sorted(ratios, key=int)
    memory = [float(ratios[r]["memory"]) for r in rs]
    grows = all(m1 < m2 for m1, m2 in zip(memory, memory[1:]))
    if _bool(a, "memory_ratio_grows_with_r") != grows:
        raise Wrong(f"your memory ratios by r {dict(zip(rs, np.round(memory, 2)))}: do they grow with r?")
    return "full / CMX memory by r: " + ", ".join(f"r={r}: {m:.1f}x" for r, m in zip(rs, memory))


# --- 05.4 Where does each tokenizer err? ------------------------------------------------

@torch.no_grad()
def corner_mae_per_bin(tokenizer, spec_test: torch.Tensor) -> np.ndarray:
    """Mean |x - x_hat| per frequency bin of the ``F/r x T/r`` corner (normalised log-magnitude),
    over the test notes and the corner's frames; ``tokenizer`` is either arm's."""
    c = tokenizer.cfg
    r, (f, t) = c.cmx.factor, c.spec_shape
    # one batch, as the solution does: a batch split changes float rounding, and a rounding
    # difference can move a latent to another codebook entry
    x_hat = tokenizer.decode(tokenizer.encode(cmx.to_model_input(spec_test, c.cmx))).clamp(-1, 1)
    full = cmx.from_model_input(x_hat, c.cmx, c.spec_shape)
    return (full - spec_test)[:, 0, : f // r, : t // r].abs().mean(dim=(0, 2)).numpy()


def check_tokenizer_errors(answer, tokenizer, trunc_tokenizer, spec_test: torch.Tensor) -> str:
    a = fields(answer, ("mae_per_bin_cmx", "mae_per_bin_truncation", "better_on_low_bins"))
    result = {}
    for key, tok in (("mae_per_bin_cmx", tokenizer), ("mae_per_bin_truncation", trunc_tokenizer)):
        want = corner_mae_per_bin(tok, spec_test)
        got = np.asarray(a[key], dtype=float)
        if got.shape != want.shape:
            raise Wrong(f"{key} needs one value per bin of the corner ({want.shape[0]} bins), got shape {got.shape}")
        if not np.allclose(got, want, rtol=1e-3, atol=1e-4):
            raise Wrong(f"{key} differs from the recomputed errors (mean {want.mean():.4f}, yours {got.mean():.4f}): "
                        "reconstruct through each tokenizer's own input (cmx.to_model_input) and compare the "
                        "corner's bins, averaged over notes and the corner's frames")
        result[key] = got.mean()
    better = _choice(a, "better_on_low_bins", ("cmx", "truncation"))
    truth = "cmx" if result["mae_per_bin_cmx"] < result["mae_per_bin_truncation"] else "truncation"
    if better != truth:
        raise Wrong(f"mean corner error: CMX {result['mae_per_bin_cmx']:.4f}, truncation "
                    f"{result['mae_per_bin_truncation']:.4f}: which is lower?")
    return (f"in the corner, CMX errs {result['mae_per_bin_cmx']:.3f} and truncation "
            f"{result['mae_per_bin_truncation']:.3f} on average: {truth} reconstructs the low bins better")


# --- 05.5 Listen to the bound --------------------------------------------------------------

def energy_lost_by_family(spec_test: torch.Tensor, family: np.ndarray, names, r: int, cfg_audio) -> dict[str, float]:
    """``cmx.truncation_loss(...)['energy_lost']`` pooled over each family's test notes."""
    mag = audio.denormalise(spec_test, cfg_audio)
    family = np.asarray(family)
    return {names[f]: cmx.truncation_loss(mag[torch.from_numpy(family == f)], r)["energy_lost"]
            for f in sorted(set(family.tolist()))}


def check_survivors(answer, spec_test: torch.Tensor, family, families, cfg: Config) -> str:
    a = fields(answer, ("energy_lost_by_family", "survives_best"))
    want = energy_lost_by_family(spec_test, family, families, cfg.cmx.factor, cfg.audio)
    got = a["energy_lost_by_family"]
    if not isinstance(got, dict) or set(got) != set(want):
        raise Wrong(f"energy_lost_by_family needs one entry per family of the test notes: {sorted(want)}")
    for name, value in want.items():
        _close(float(got[name]), value, f"energy lost by the crop for {name}")
    best = min(want, key=want.get)
    if a["survives_best"] != best:
        raise Wrong(f"{a['survives_best']!r} loses {want.get(a['survives_best'], float('nan')):.1%}; "
                    "the family that survives best loses the least energy")
    return f"{best} survives the crop best: it loses {want[best]:.1%} of its energy (worst: {max(want.values()):.1%})"


EXERCISES = [
    Exercise(id="05.1", title="Another crop", check=check_another_crop,
             expects="a dict: energy_lost_band, energy_lost_corner, fd_band, fd_corner (floats) and "
                     "band_beats_corner (bool)"),
    Exercise(id="05.2", title="What the budget can change", check=check_budget,
             expects="a dict: steps (int), lsd_cmx, lsd_truncation, lsd_bound, fd_bound, fd_mars (floats), "
                     "equal_budget_better ('cmx' or 'truncation') and budget_can_flip (bool)"),
    Exercise(id="05.3", title="Cost scaling", check=check_cost_scaling,
             expects="a dict: ratios {r: {'memory': full/CMX activation MB, 'time': full/CMX step time}} for "
                     "two values of r, and memory_ratio_grows_with_r (bool)"),
    Exercise(id="05.4", title="Where does each tokenizer err?", check=check_tokenizer_errors,
             expects="a dict: mae_per_bin_cmx and mae_per_bin_truncation (one mean absolute error per bin of "
                     "the F/r x T/r corner) and better_on_low_bins ('cmx' or 'truncation')"),
    Exercise(id="05.5", title="Listen to the bound", check=check_survivors,
             expects="a dict: energy_lost_by_family {family name: fraction of energy the crop loses} and "
                     "survives_best (a family name)"),
]
