"""Checks for notebook 06's exercises (see :mod:`marslib.lab`): inside the comparison systems.

Every sampler here is seeded (DDSP's noise, DiffWave's chain, the WaveNet's draws), so a
check recomputes the student's numbers from the trained models the notebook passes in,
then verifies that the conclusion is the one those numbers imply.  The smoke models are
barely trained: no check expects a particular outcome of training, only consistency.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import Exercise, Wrong
from ..audio import magnitude_spectrogram
from ..config import Config
from ..metrics.spectral import log_spectral_distance
from .answers import fields
from .nb05 import _bool, _choice, _close, _number  # reading an answer dict: shared with 05

FOLLOWS = ("condition", "embedding", "neither")
WAVENET_PREFIX = 256  # samples of the swapped decodes that 06.3's check re-samples (the sampler is sequential)


def _notes(answer: dict, n_test: int, key: str = "notes", low: int = 1, high: int = 8) -> list[int]:
    notes = answer[key]
    if (not isinstance(notes, (list, tuple)) or not low <= len(notes) <= high
            or not all(isinstance(i, (int, np.integer)) and 0 <= i < n_test for i in notes)):
        raise Wrong(f"{key!r} must list {low} to {high} indices of held-out notes (0 .. {n_test - 1})")
    return [int(i) for i in notes]


def lsd_to(real_BS: torch.Tensor, est_BS: torch.Tensor, cfg: Config) -> float:
    """Mean log-spectral distance (dB) between real and estimated waveforms, on linear STFT magnitudes."""
    return float(log_spectral_distance(magnitude_spectrogram(real_BS, cfg.audio),
                                       magnitude_spectrogram(est_BS, cfg.audio)).mean())


def _batch(test, notes: list[int]):
    return (torch.from_numpy(test.waves[notes]), torch.as_tensor(test.pitch[notes]),
            torch.as_tensor(test.family[notes]))


# --- 06.1 DDSP without noise -----------------------------------------------------------------

@torch.no_grad()
def ddsp_with_and_without_noise(ddsp, waves_BS, pitch_B, family_B, seed: int):
    """DDSP resynthesis ``(B, S)`` with its noise branch, and the same controls with silent noise."""
    ld, z = ddsp._loudness(waves_BS), ddsp._z(waves_BS)
    with_noise = ddsp.resynthesise(waves_BS, pitch_B, family_B, seed=seed)
    without = ddsp.synthesise(pitch_B, family_B, ld, torch.zeros_like(waves_BS), z).clamp(-1.0, 1.0)
    return with_noise, without


def check_ddsp_noise(answer, ddsp, test, cfg: Config, seed: int) -> str:
    a = fields(answer, ("notes", "energy_kept_without_noise", "lsd_with_noise", "lsd_without_noise", "lost"))
    notes = _notes(a, len(test.waves))
    waves, pitch, family = _batch(test, notes)
    with_noise, without = ddsp_with_and_without_noise(ddsp, waves, pitch, family, seed)
    energy = [magnitude_spectrogram(w, cfg.audio).double().pow(2).sum() for w in (without, with_noise)]
    _close(_number(a, "energy_kept_without_noise", 0), float(energy[0] / energy[1]),
           "the energy of the noiseless resynthesis over that of the normal one (STFT magnitudes squared)")
    _close(_number(a, "lsd_with_noise", 0), lsd_to(waves, with_noise, cfg), "LSD of the resynthesis with noise")
    _close(_number(a, "lsd_without_noise", 0), lsd_to(waves, without, cfg), "LSD of the resynthesis without noise")
    if _choice(a, "lost", ("between_harmonics", "harmonics", "pitch")) != "between_harmonics":
        raise Wrong("the harmonic synthesiser still plays every partial at k x f0 (f0 from the label): "
                    "what is left when the filtered noise is gone?")
    return (f"without noise DDSP keeps {a['energy_kept_without_noise']:.1%} of the energy; LSD "
            f"{a['lsd_with_noise']:.1f} -> {a['lsd_without_noise']:.1f} dB: what goes is the energy between the harmonics")


# --- 06.2 Fewer diffusion steps ----------------------------------------------------------------

@torch.no_grad()
def vocode_last(dw, spec_BFT, pitch_B, family_B, keep: int, seed: int = 0) -> torch.Tensor:
    """DiffWave's fast reverse chain run over only its ``keep`` smallest noise levels.

    The same loop as ``DiffWave.vocode`` (``keep`` = all of them gives the same waveform),
    started from pure noise at step ``keep - 1`` instead of the last one.
    """
    from ..baselines.common import seeded_noise

    betas, steps = dw.schedule(fast=True)
    abar = np.cumprod(1 - betas)
    b, dev = spec_BFT.shape[0], spec_BFT.device
    shape = (b, spec_BFT.shape[-1] * dw.hop)
    x, cond = seeded_noise(shape, seed, dev), dw.upsample_spec(spec_BFT)
    for n in range(keep - 1, -1, -1):
        eps = dw.denoise(x, torch.full((b,), float(steps[n]), device=dev), cond, pitch_B, family_B)
        x = (x - betas[n] / math.sqrt(1 - abar[n]) * eps) / math.sqrt(1 - betas[n])
        if n > 0:
            x = x + math.sqrt((1 - abar[n - 1]) / (1 - abar[n]) * betas[n]) * seeded_noise(shape, seed * 1000 + n, dev)
        x = x.clamp(-1.0, 1.0)
    return x


def check_diffusion_steps(answer, dw, test, cfg: Config, seed: int) -> str:
    a = fields(answer, ("notes", "lsd_all_steps", "lsd_last_3_steps", "fewer_steps_worse"))
    notes = _notes(a, len(test.waves))
    waves, pitch, family = _batch(test, notes)
    spec = dw.spectrogram(waves)
    n_all = len(dw.schedule(fast=True)[0])
    lsd_all = lsd_to(waves, dw.vocode(spec, pitch, family, seed=seed), cfg)
    lsd_3 = lsd_to(waves, vocode_last(dw, spec, pitch, family, 3, seed), cfg)
    _close(_number(a, "lsd_all_steps", 0), lsd_all, f"LSD with all {n_all} fast steps (dw.vocode)")
    _close(_number(a, "lsd_last_3_steps", 0), lsd_3,
           "LSD with the last 3 steps only (the chain started from noise at step index 2, down to 0)")
    worse = lsd_3 > lsd_all
    if _bool(a, "fewer_steps_worse") != worse:
        raise Wrong(f"LSD {lsd_3:.2f} dB with 3 steps vs {lsd_all:.2f} dB with {n_all}: is fewer worse?")
    return f"LSD {lsd_all:.1f} dB with {n_all} steps, {lsd_3:.1f} dB with the last 3: fewer steps are " \
           f"{'worse' if worse else 'not worse here'}"


# --- 06.3 Swap the embedding ----------------------------------------------------------------------

def _follows(predicted: list, own: list, other: list) -> str:
    """'condition' if more predictions match the note's own condition than the embedding's source."""
    hits_own = sum(p == o for p, o in zip(predicted, own))
    hits_other = sum(p == o for p, o in zip(predicted, other))
    return "condition" if hits_own > hits_other else "embedding" if hits_other > hits_own else "neither"


def check_swap(answer, wavenet, test, run, cfg: Config, seed: int) -> str:
    from ..baselines.common import mu_law_decode
    from ..metrics.classifier import classify_waveforms, load_classifier

    a = fields(answer, ("pair", "waves", "predicted_pitch", "predicted_family", "pitch_follows", "family_follows"))
    pair = _notes(a, len(test.waves), "pair", 2, 2)
    if test.pitch[pair[0]] == test.pitch[pair[1]] or test.family[pair[0]] == test.family[pair[1]]:
        raise Wrong("pick two notes that differ in both pitch and family, or the swap cannot tell them apart")
    waves = np.asarray(a["waves"], dtype=np.float32)
    if waves.shape != (2, cfg.audio.clip_samples):
        raise Wrong(f"'waves' must be the two decoded clips, shape (2, {cfg.audio.clip_samples}), got {waves.shape}")
    x = torch.from_numpy(test.waves[pair])
    with torch.no_grad():  # note k: the other note's embedding, its own pitch; the sampler is sequential,
        q = wavenet.decode(wavenet.encode(x).flip(0), torch.as_tensor(test.pitch[pair]), seed,  # so a prefix
                           WAVENET_PREFIX)                                                       # re-samples
    if not np.allclose(mu_law_decode(q, cfg.wavenet_ae.quantization).numpy(), waves[:, :WAVENET_PREFIX], atol=1e-6):
        raise Wrong("'waves' are not the swapped decodes: decode wavenet.encode(notes).flip(0) with the notes' own "
                    "pitches (torch.as_tensor(test.pitch[pair])), seed=seed, and mu_law_decode the classes")
    probs = classify_waveforms(load_classifier(run / "classifier", cfg), waves, cfg)
    pitch_hat = probs["pitch_probs"].argmax(1).tolist()
    family_hat = [cfg.data.family_vocabulary[f] for f in probs["family_probs"].argmax(1)]
    if [int(p) for p in a["predicted_pitch"]] != pitch_hat:
        raise Wrong(f"the judge hears MIDI {pitch_hat} in the two decodes, you have {a['predicted_pitch']}")
    if list(a["predicted_family"]) != family_hat:
        raise Wrong(f"the judge hears {family_hat} in the two decodes, you have {a['predicted_family']}")
    own, other = pair, pair[::-1]
    names = cfg.data.family_vocabulary
    want = {"pitch_follows": _follows(pitch_hat, [int(test.pitch[i]) for i in own], [int(test.pitch[i]) for i in other]),
            "family_follows": _follows(family_hat, [names[test.family[i]] for i in own],
                                       [names[test.family[i]] for i in other])}
    for key, truth in want.items():
        if _choice(a, key, FOLLOWS) != truth:
            raise Wrong(f"{key}: the judge's labels {pitch_hat if key.startswith('pitch') else family_hat} match the "
                        "note's own condition (its pitch, its family) or the embedding's source note how often?")
    said = {k: "neither source" if v == "neither" else f"the {v}" for k, v in want.items()}
    return f"decoded with swapped embeddings, pitch follows {said['pitch_follows']} and family " \
           f"{said['family_follows']} (the judge hears MIDI {pitch_hat}, {family_hat})"


# --- 06.4 Borrowed loudness -----------------------------------------------------------------------

FLAT_CHECKED = 16  # 06.4's check re-renders the first batch (16 conditions, as the solution) to verify it


@torch.no_grad()
def ddsp_generated_families(ddsp, classifier, pitch, family, reference, cfg: Config, seed: int, flat: bool
                            ) -> np.ndarray:
    """The judge's family for DDSP notes generated with the reference's loudness, or a flat curve at its mean."""
    from ..metrics.classifier import classify_waveforms

    out = []
    for s in range(0, len(pitch), 16):
        ld = ddsp._loudness(torch.as_tensor(reference[s:s + 16]))
        if flat:
            ld = ld.mean(1, keepdim=True).expand_as(ld)
        p, f = torch.as_tensor(pitch[s:s + 16]), torch.as_tensor(family[s:s + 16])
        waves = ddsp._render(p, f, ld, seed)
        out.append(classify_waveforms(classifier, waves, cfg)["family_probs"].argmax(1))
    return np.concatenate(out)


def check_flat_loudness(answer, ddsp, test, run, cfg: Config, seed: int, reference: np.ndarray | None = None) -> str:
    """``reference``: the training notes whose loudness DDSP borrows (default: ``real_train_clips``)."""
    from ..evaluate import real_train_clips
    from ..metrics.classifier import load_classifier

    a = fields(answer, ("predicted_borrowed", "predicted_flat", "family_acc_borrowed", "family_acc_flat",
                       "envelope_carried_family"))
    n = len(test.pitch)
    preds = {}
    for key in ("predicted_borrowed", "predicted_flat"):
        p = np.asarray(a[key])
        if p.shape != (n,):
            raise Wrong(f"{key} needs the judge's family index for each of the {n} held-out conditions")
        preds[key] = p
    k = min(FLAT_CHECKED, n)
    reference = (real_train_clips(cfg, test).waves if reference is None else reference)[:k]
    classifier = load_classifier(run / "classifier", cfg)
    for key, flat in (("predicted_borrowed", False), ("predicted_flat", True)):
        want = ddsp_generated_families(ddsp, classifier, test.pitch[:k], test.family[:k], reference, cfg, seed, flat)
        if not np.array_equal(preds[key][:k], want):
            raise Wrong(f"{key} differs from the recomputed judge's families for the first {k} conditions: generate "
                        "with ddsp._render(pitch, family, loudness, seed) (loudness from real_train_clips; flat: "
                        "its mean over frames), batches of 16 as in the solution, and classify_waveforms")
    acc = {key: float((preds[key] == test.family).mean()) for key in preds}
    _close(_number(a, "family_acc_borrowed", 0), acc["predicted_borrowed"], "family_acc_borrowed")
    _close(_number(a, "family_acc_flat", 0), acc["predicted_flat"], "family_acc_flat")
    carried = acc["predicted_borrowed"] > acc["predicted_flat"]
    if _bool(a, "envelope_carried_family") != carried:
        raise Wrong(f"family accuracy {acc['predicted_borrowed']:.0%} with the borrowed envelope, "
                    f"{acc['predicted_flat']:.0%} flat: did the envelope help the judge?")
    return (f"family accuracy {acc['predicted_borrowed']:.0%} with the borrowed envelope, {acc['predicted_flat']:.0%} "
            f"with a flat one: the envelope {'carried' if carried else 'did not carry'} family information here")


EXERCISES = [
    Exercise(id="06.1", title="DDSP without noise", check=check_ddsp_noise,
             expects="a dict: notes (test indices), energy_kept_without_noise, lsd_with_noise, lsd_without_noise "
                     "(floats) and lost ('between_harmonics', 'harmonics' or 'pitch')"),
    Exercise(id="06.2", title="Fewer diffusion steps", check=check_diffusion_steps,
             expects="a dict: notes (test indices), lsd_all_steps, lsd_last_3_steps (floats) and "
                     "fewer_steps_worse (bool)"),
    Exercise(id="06.3", title="Swap the embedding", check=check_swap,
             expects="a dict: pair (two test indices), waves (the two swapped decodes), predicted_pitch, "
                     "predicted_family (the judge's labels), pitch_follows and family_follows "
                     "('condition', 'embedding' or 'neither')"),
    Exercise(id="06.4", title="Borrowed loudness", check=check_flat_loudness,
             expects="a dict: predicted_borrowed, predicted_flat (the judge's family index per held-out condition), "
                     "family_acc_borrowed, family_acc_flat (floats) and envelope_carried_family (bool)"),
]
