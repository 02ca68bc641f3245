"""Notebook 06's lab checks: a right answer passes, a wrong one fails (untrained smoke models, no training)."""

import numpy as np
import pytest
import torch

from marslib.audio import magnitude_spectrogram
from marslib.baselines.common import mu_law_decode
from marslib.baselines.ddsp import DDSP
from marslib.baselines.diffwave import DiffWave
from marslib.baselines.wavenet_ae import WaveNetAutoencoder
from marslib.checkpoint import save_checkpoint
from marslib.evaluate import ClipSet
from marslib.lab import nb06
from marslib.metrics import log_spectral_distance
from marslib.metrics.classifier import SpectrogramClassifier, classify_waveforms, load_classifier

from conftest import harmonic_note
from conftest import check_fails as _fails, check_passes as _passes

SEED = 3


@pytest.fixture(scope="module")
def cfg():
    from marslib.config import get_config

    return get_config("smoke")


@pytest.fixture(scope="module")
def test(cfg):
    """Four held-out stand-ins: decaying harmonic tones at four pitches, of families 0, 1, 2, 3."""
    a, pitch = cfg.audio, np.array([48, 55, 60, 67])
    waves = np.stack([harmonic_note(440 * 2 ** ((p - 69) / 12), a.sample_rate, a.clip_samples / a.sample_rate)
                      for p in pitch])
    return ClipSet("real_test", waves, pitch, np.arange(4))


@pytest.fixture(scope="module")
def run(cfg, tmp_path_factory):
    """A run folder holding an (untrained) judge."""
    run = tmp_path_factory.mktemp("lab06")
    torch.manual_seed(0)
    save_checkpoint(run / "classifier", SpectrogramClassifier(cfg), cfg, "classifier", 1)
    return run


def _model(cls, cfg):
    torch.manual_seed(0)
    return cls(cfg).eval()


def _lsd(real, est, cfg):
    return float(log_spectral_distance(magnitude_spectrogram(real, cfg.audio), magnitude_spectrogram(est, cfg.audio)).mean())


def test_06_1_ddsp_without_noise(cfg, test):
    ddsp, notes = _model(DDSP, cfg), [0, 2]
    waves, pitch, family = torch.from_numpy(test.waves[notes]), torch.as_tensor(test.pitch[notes]), \
        torch.as_tensor(test.family[notes])
    with torch.no_grad():
        with_noise = ddsp.resynthesise(waves, pitch, family, seed=SEED)
        without = ddsp.synthesise(pitch, family, ddsp._loudness(waves), torch.zeros_like(waves),
                                  ddsp._z(waves)).clamp(-1, 1)
    energy = [magnitude_spectrogram(w, cfg.audio).double().pow(2).sum() for w in (without, with_noise)]
    right = {"notes": notes, "energy_kept_without_noise": float(energy[0] / energy[1]),
             "lsd_with_noise": _lsd(waves, with_noise, cfg), "lsd_without_noise": _lsd(waves, without, cfg),
             "lost": "between_harmonics"}
    context = {"ddsp": ddsp, "test": test, "cfg": cfg, "seed": SEED}
    _passes("06.1", right, **context)
    _fails("06.1", {**right, "lost": "harmonics"}, **context)
    _fails("06.1", {**right, "lsd_without_noise": right["lsd_with_noise"] + 1}, **context)
    _fails("06.1", {**right, "notes": [0, 99]}, **context)


def test_06_2_fewer_diffusion_steps(cfg, test):
    dw, notes = _model(DiffWave, cfg), [1, 3]
    waves, pitch, family = torch.from_numpy(test.waves[notes]), torch.as_tensor(test.pitch[notes]), \
        torch.as_tensor(test.family[notes])
    spec = dw.spectrogram(waves)
    full = dw.vocode(spec, pitch, family, seed=SEED)
    assert torch.equal(nb06.vocode_last(dw, spec, pitch, family, 6, SEED), full)  # all levels: vocode itself
    lsd_all, lsd_3 = _lsd(waves, full, cfg), _lsd(waves, nb06.vocode_last(dw, spec, pitch, family, 3, SEED), cfg)
    right = {"notes": notes, "lsd_all_steps": lsd_all, "lsd_last_3_steps": lsd_3, "fewer_steps_worse": lsd_3 > lsd_all}
    context = {"dw": dw, "test": test, "cfg": cfg, "seed": SEED}
    _passes("06.2", right, **context)
    _fails("06.2", {**right, "fewer_steps_worse": not right["fewer_steps_worse"]}, **context)
    _fails("06.2", {**right, "lsd_last_3_steps": lsd_all}, **context)


def test_06_3_swap_the_embedding(cfg, test, run):
    wn, pair = _model(WaveNetAutoencoder, cfg), [0, 1]
    pitch = torch.as_tensor(test.pitch[pair])
    with torch.no_grad():
        waves = mu_law_decode(wn.decode(wn.encode(torch.from_numpy(test.waves[pair])).flip(0), pitch, seed=SEED),
                              cfg.wavenet_ae.quantization).numpy()
    judge = classify_waveforms(load_classifier(run / "classifier", cfg), waves, cfg)
    p_hat = judge["pitch_probs"].argmax(1).tolist()
    f_hat = [cfg.data.family_vocabulary[f] for f in judge["family_probs"].argmax(1)]
    names = [cfg.data.family_vocabulary[f] for f in test.family[pair]]
    follows = nb06._follows
    right = {"pair": pair, "waves": waves, "predicted_pitch": p_hat, "predicted_family": f_hat,
             "pitch_follows": follows(p_hat, list(test.pitch[pair]), list(test.pitch[pair[::-1]])),
             "family_follows": follows(f_hat, names, names[::-1])}
    context = {"wavenet": wn, "test": test, "run": run, "cfg": cfg, "seed": SEED}
    _passes("06.3", right, **context)
    other = next(c for c in nb06.FOLLOWS if c != right["pitch_follows"])
    _fails("06.3", {**right, "pitch_follows": other}, **context)
    _fails("06.3", {**right, "waves": waves[::-1].copy()}, **context)            # not the swapped decodes
    _fails("06.3", {**right, "predicted_family": f_hat[::-1] if f_hat[0] != f_hat[1] else ["?", "?"]}, **context)


def test_06_3_follows_counts_matches():
    assert nb06._follows([60, 64], [60, 64], [64, 60]) == "condition"
    assert nb06._follows([64, 60], [60, 64], [64, 60]) == "embedding"
    assert nb06._follows([50, 51], [60, 64], [64, 60]) == "neither"


def test_06_4_borrowed_loudness(cfg, test, run):
    ddsp = _model(DDSP, cfg)
    reference = test.waves[::-1].copy()   # "training notes" to borrow the loudness of
    judge = load_classifier(run / "classifier", cfg)
    preds = {flat: nb06.ddsp_generated_families(ddsp, judge, test.pitch, test.family, reference, cfg, SEED, flat)
             for flat in (False, True)}
    acc = {flat: float((p == test.family).mean()) for flat, p in preds.items()}
    right = {"predicted_borrowed": preds[False], "predicted_flat": preds[True], "family_acc_borrowed": acc[False],
             "family_acc_flat": acc[True], "envelope_carried_family": acc[False] > acc[True]}
    context = {"ddsp": ddsp, "test": test, "run": run, "cfg": cfg, "seed": SEED, "reference": reference}
    _passes("06.4", right, **context)
    _fails("06.4", {**right, "envelope_carried_family": not right["envelope_carried_family"]}, **context)
    _fails("06.4", {**right, "predicted_flat": (preds[True] + 1) % len(cfg.data.family_vocabulary)}, **context)
    _fails("06.4", {**right, "family_acc_flat": acc[True] + 0.5}, **context)
