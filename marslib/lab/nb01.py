"""Checks for notebook 01's exercises (see :mod:`marslib.lab`).

Every check recomputes what it can from the notebook's context (the sample rate, the
piano note's magnitude, the CMX input) with its own few lines of code, so an answer
passes only if its numbers are the notebook's, and its conclusion is what they say.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np
import torch

from . import Exercise, Wrong
from .answers import close, fields

TONES_HZ = (1000.0, 1050.0)  # exercise 1: two tones 50 Hz apart
RESOLVED_DIP_DB = 6.0        # exercise 1: two peaks count as separate when the valley between is this deep


def smallest_resolving_n_fft(sr: int, spacing_hz: float = TONES_HZ[1] - TONES_HZ[0]) -> int:
    """The smallest power of two ``n`` with a Hann main lobe (2 bins each side) ``2 sr / n <= spacing``."""
    n = 1
    while 2 * sr / n > spacing_hz:
        n *= 2
    return n


def two_tone_dip_db(sr: int, n_fft: int, n_samples: int) -> float:
    """Depth (dB) of the valley between the two tones of :data:`TONES_HZ` in a Hann STFT.

    The spectrum is ``audio.magnitude_spectrogram`` (hop ``n_fft // 4``) averaged over
    frames, in dB; the peak levels are those of the bins nearest each tone, the valley
    the lowest bin strictly between them (0 dB when the two bins are neighbours or the same).
    """
    from .. import audio
    from ..config import AudioConfig

    t = np.arange(n_samples) / sr
    sig = sum(0.4 * np.sin(2 * np.pi * f * t) for f in TONES_HZ).astype(np.float32)
    acfg = AudioConfig(sample_rate=sr, n_fft=n_fft, hop_length=n_fft // 4, n_frames=n_samples // (n_fft // 4))
    db = 20 * np.log10(audio.magnitude_spectrogram(sig, acfg)[0].mean(1).numpy() + 1e-12)  # (F,)
    lo, hi = (round(f * n_fft / sr) for f in TONES_HZ)
    if hi - lo < 2:
        return 0.0
    return float(min(db[lo], db[hi]) - db[lo + 1:hi].min())


def check_window(answer, sr: int, n_samples: int) -> str:
    ans = fields(answer, ("n_fft", "dip_db", "dip_db_half"))
    want = smallest_resolving_n_fft(sr)
    if ans["n_fft"] != want:
        raise Wrong(f"n_fft = {ans['n_fft']!r}: the smallest power of two with 2·sr/n_fft <= 50 Hz at "
                    f"sr = {sr} Hz is not that (solve 2·{sr}/n_fft <= 50 for n_fft, then round up to a power of two)")
    dip, dip_half = two_tone_dip_db(sr, want, n_samples), two_tone_dip_db(sr, want // 2, n_samples)
    close("dip_db", ans["dip_db"], dip, abs_=0.3)
    close("dip_db_half", ans["dip_db_half"], dip_half, abs_=0.3)
    if not dip >= RESOLVED_DIP_DB > dip_half:  # guards the exercise itself, not the student
        raise Wrong(f"the test signal does not separate as expected (dips {dip:.1f} / {dip_half:.1f} dB)")
    return (f"n_fft = {want} ({1000 * want / sr:.0f} ms): a {dip:.1f} dB valley between the tones; "
            f"at {want // 2} only {dip_half:.1f} dB, one blurred peak")


# -- 01.2 -------------------------------------------------------------------------------

def _sc(ref, est) -> float:
    return float(torch.linalg.norm(ref - est) / torch.linalg.norm(ref))


def griffin_lim_overlap(y: np.ndarray, a, seed: int) -> dict[str, dict[str, float]]:
    """SC of Griffin-Lim at hop n_fft//4 and n_fft//2, at its own hop and at a common finer one (n_fft//8)."""
    from .. import audio

    def at(hop):
        return dataclasses.replace(a, hop_length=hop, n_frames=len(y) // hop)

    fine = at(a.n_fft // 8)
    ref_fine = audio.magnitude_spectrogram(y, fine)
    own, common = {}, {}
    for name, hop in (("n_fft//4", a.n_fft // 4), ("n_fft//2", a.n_fft // 2)):
        acfg = at(hop)
        mag = audio.magnitude_spectrogram(y, acfg)
        y_hat = audio.spectrogram_to_waveform(mag, acfg, n_iter=a.griffin_lim_iters, seed=seed)
        own[name] = _sc(mag, audio.magnitude_spectrogram(y_hat, acfg))
        common[name] = _sc(ref_fine, audio.magnitude_spectrogram(y_hat, fine))
    return {"sc_own": own, "sc_fine": common}


def check_overlap(answer, y, a, seed: int) -> str:
    ans = fields(answer, ("sc_own", "sc_fine", "better"))
    want = griffin_lim_overlap(y, a, seed)
    for kind in ("sc_own", "sc_fine"):
        got = fields(ans[kind], ("n_fft//4", "n_fft//2"))
        for hop in ("n_fft//4", "n_fft//2"):
            close(f"{kind}[{hop!r}]", got[hop], want[kind][hop], rel=0.05, abs_=2e-3)
    fine = want["sc_fine"]
    truly_better = min(fine, key=fine.get)
    if ans["better"] not in fine:
        raise Wrong(f"better is one of {list(fine)}, the hop whose reconstruction is closer to the sound")
    if ans["better"] != truly_better:
        raise Wrong(f"on the common yardstick (the same fine STFT for both) the SCs are "
                    f"{fine['n_fft//4']:.3f} (n_fft//4) and {fine['n_fft//2']:.3f} (n_fft//2): a lower SC at "
                    f"its own hop only means fewer constraints were easier to satisfy")
    own = want["sc_own"]
    return (f"{truly_better} wins where it counts (SC {fine[truly_better]:.3f} on a common STFT), although at "
            f"its own hop n_fft//2 scores {own['n_fft//2']:.3f} vs {own['n_fft//4']:.3f}: less overlap, fewer "
            f"constraints on the phase, easier to satisfy and worse to hear")


# -- 01.3 -------------------------------------------------------------------------------

def crop_energy_lost(mag_B1FT: torch.Tensor, r: int, where: str) -> float:
    """Energy fraction outside the lowest F/r bins and T/r frames starting at the first or middle frame."""
    f, t = mag_B1FT.shape[-2:]
    start = 0 if where == "first" else (t - t // r) // 2
    kept = mag_B1FT[..., : f // r, start:start + t // r].double()
    return float(1 - kept.pow(2).sum() / mag_B1FT.double().pow(2).sum())


def check_crop(answer, mag, r: int) -> str:
    ans = fields(answer, ("energy_lost_first", "energy_lost_middle", "keeps_more"))
    mag_B1FT = mag if mag.dim() == 4 else mag[:, None]
    first, middle = crop_energy_lost(mag_B1FT, r, "first"), crop_energy_lost(mag_B1FT, r, "middle")
    close("energy_lost_first", ans["energy_lost_first"], first, abs_=1e-3)
    close("energy_lost_middle", ans["energy_lost_middle"], middle, abs_=1e-3)
    winner = "first" if first < middle else "middle"
    if ans["keeps_more"] not in ("first", "middle"):
        raise Wrong("keeps_more is 'first' or 'middle': the crop that keeps more of the energy")
    if ans["keeps_more"] != winner:
        raise Wrong(f"your own numbers say otherwise: the first frames lose {first:.1%}, the middle {middle:.1%}")
    return (f"the first frames lose {first:.1%} of the energy, the middle ones {middle:.1%}: "
            f"a struck note is loudest at its attack")


# -- 01.4 -------------------------------------------------------------------------------

def check_fold_order(answer, x, r: int) -> str:
    from .. import cmx

    ans = fields(answer, ("perm", "roundtrip_exact", "conv_max_diff", "order_matters"))
    perm = [int(p) for p in ans["perm"]]
    if sorted(perm) != list(range(r * r)):
        raise Wrong(f"perm must be a permutation of range({r * r}) (one entry per CMX channel)")
    if perm == list(range(r * r)):
        raise Wrong("the identity proves nothing: shuffle the channels")
    folded = cmx.fold(x, r)[:, perm]                                   # (B, r^2, F/r, T/r), shuffled
    inverse = torch.argsort(torch.tensor(perm))
    exact = torch.equal(cmx.unfold(folded[:, inverse], r), x)
    if ans["roundtrip_exact"] is not exact:
        raise Wrong(f"roundtrip_exact should be the bool torch.equal gives: undoing perm and unfolding is "
                    f"{'exact' if exact else 'not exact'}")
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(8, r * r, 3, 3, generator=gen)
    diff = float((torch.nn.functional.conv2d(folded, weight[:, perm], padding=1)
                  - torch.nn.functional.conv2d(cmx.fold(x, r), weight, padding=1)).abs().max())
    try:
        claimed = float(ans["conv_max_diff"])
    except (TypeError, ValueError):
        raise Wrong("conv_max_diff is a number: max |conv(shuffled, W[:, perm]) - conv(x, W)|") from None
    if not 0 <= claimed <= 1e-4:
        raise Wrong(f"conv_max_diff = {claimed:.3g}: permuting the first layer's input weights the same way "
                    f"as the channels gives the same output up to float error (here {diff:.1e})")
    if ans["order_matters"] is not False:
        raise Wrong("with the weights permuted alongside, the first layer computes the same thing, so "
                    "a learned encoder cannot tell one fixed order from another")
    return f"any fixed channel order is lossless and equivalent for the encoder (conv difference {diff:.0e})"


# -- 01.5 -------------------------------------------------------------------------------

MEMORY_FIELDS = ("input_values", "encoder_activation_mb", "latent_tokens", "next_scale_tokens")


def paper_cmx_costs(r: int):
    """``cmx.representation_costs`` of the paper profile's CMX row, keeping the 16 x 16 latent grid."""
    from .. import cmx
    from ..config import get_config

    base = get_config("paper")
    downsample = base.spec_shape[0] // r // base.latent_shape[0]
    cfg = get_config("paper", {"cmx.factor": r, "tokenizer.downsample": downsample})
    return next(c for c in cmx.representation_costs(cfg) if c.name == "cmx")


def check_memory(answer) -> str:
    ans = fields(answer, ("cmx_encoder_mb", "unchanged", "ratio_per_doubling"))
    costs = {r: paper_cmx_costs(r) for r in (2, 4, 8)}
    mb = ans["cmx_encoder_mb"]
    if not isinstance(mb, Mapping) or sorted(mb) != [2, 4, 8]:
        raise Wrong("cmx_encoder_mb is a dict {2: MB, 4: MB, 8: MB}, one entry per r")
    for r, cost in costs.items():
        close(f"cmx_encoder_mb[{r}]", mb[r], cost.encoder_activation_mb, rel=0.01)
    same = {f for f in MEMORY_FIELDS if len({getattr(c, f) for c in costs.values()}) == 1}
    got = set(ans["unchanged"]) if not isinstance(ans["unchanged"], str) else {ans["unchanged"]}
    if got != same:
        raise Wrong(f"unchanged should list every field of {list(MEMORY_FIELDS)} that is equal for r = 2, 4, 8 "
                    f"(and no other); you listed {sorted(got)}")
    ratios = [costs[r].encoder_activation_mb / costs[2 * r].encoder_activation_mb for r in (2, 4)]
    close("ratio_per_doubling", ans["ratio_per_doubling"], float(np.mean(ratios)), rel=0.05)
    return (f"doubling r divides the CMX encoder's activations by ~{np.mean(ratios):.1f} "
            f"({mb[2]:.1f} -> {mb[4]:.1f} -> {mb[8]:.1f} MB), while {', '.join(sorted(same))} stay the same")


EXERCISES = [
    Exercise(id="01.1", title="Window length in milliseconds",
             expects="a dict {'n_fft': int, 'dip_db': float, 'dip_db_half': float}: the smallest power-of-two "
                     "n_fft that separates tones 50 Hz apart, and the valley depth between 1000 and 1050 Hz "
                     "at that n_fft and at half of it",
             check=check_window),
    Exercise(id="01.2", title="Griffin-Lim and overlap",
             expects="a dict {'sc_own': {'n_fft//4': SC, 'n_fft//2': SC}, 'sc_fine': {...same keys}, "
                     "'better': 'n_fft//4' or 'n_fft//2'}",
             check=check_overlap),
    Exercise(id="01.3", title="A different crop",
             expects="a dict {'energy_lost_first': float, 'energy_lost_middle': float, "
                     "'keeps_more': 'first' or 'middle'}",
             check=check_crop),
    Exercise(id="01.4", title="Fold order",
             expects="a dict {'perm': list of r*r ints, 'roundtrip_exact': bool, 'conv_max_diff': float, "
                     "'order_matters': bool}",
             check=check_fold_order),
    Exercise(id="01.5", title="Memory scaling",
             expects="a dict {'cmx_encoder_mb': {2: MB, 4: MB, 8: MB}, 'unchanged': list of field names, "
                     "'ratio_per_doubling': float}",
             check=check_memory),
]
