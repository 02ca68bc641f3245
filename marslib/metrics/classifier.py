"""A pitch + instrument-family classifier: the "Inception network" of our evaluation.

GANSynth-era audio metrics (Engel et al. 2019; Nistal et al. 2020, arXiv
2006.09266) replace ImageNet's Inception with a classifier trained on the
dataset itself.  Ours is a small CNN on the *full, unfolded* normalised
log-magnitude spectrogram ``(B, 1, F, T)``: it never sees CMX folding or the
truncation baseline, so it judges real audio, the CMX arm and the truncation
arm of the ablation with the same yardstick.  Generated clips are judged from
their Griffin-Lim *waveforms* (:func:`classify_waveforms`), as real ones are.

Which output of :meth:`SpectrogramClassifier.features` feeds which metric
(computed in the evaluation pipeline with :mod:`marslib.metrics.distribution`)::

    pitch_probs      (B, 128) -> PIS  pitch Inception Score  = exp E_x KL(p(y|x) || p(y))
    family_probs     (B, K)   -> IIS  instrument Inception Score (same formula, family head;
                                 K = len(cfg.data.family_vocabulary), NSynth's 11 by default)
    pitch_embedding  (B, E)   -> PKID pitch Kernel Inception Distance (real vs generated)
    family_embedding (B, E)   -> IKID instrument KID;  also NDB/k (k-means bins on real
                                 embeddings) and the "FD-classifier" Frechet distance

High IS: confident *and* varied predictions; low KID / FD: generated embeddings
distributed like real ones; NDB/k: fraction of the k bins whose share of
generated clips differs significantly from the real share.  An embedding is
the penultimate activation of its head, ``GELU(Linear(trunk))``, as Inception's
pool features are.

The architecture keeps frequency resolution and discards time early: pitch is
*where* the harmonics are (adjacent semitones are a quarter of a bin apart at
C4 with the course STFT), so the trunk pools over time only and keeps the
frequency axis; a global pool over frequency would make the features pitch-shift
invariant, the opposite of what a pitch classifier needs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..audio import fit_length, waveform_to_input
from ..checkpoint import load_checkpoint, read_meta
from ..cmx import from_model_input
from ..config import NSYNTH_FAMILIES, Config, check_families
from ..data import ensure_dataset, feature_store
from ..data.store import MappedRows
from ..train import check_start, train

N_PITCHES = 128                    # MIDI numbers 0..127: fixed, whatever range the data covers
N_FAMILIES = len(NSYNTH_FAMILIES)  # 11, NSynth's; a classifier has len(cfg.data.family_vocabulary)
KIND = "classifier"                # checkpoint kind
# STFT fields that define the spectrogram the classifier reads (Griffin-Lim settings do not).
_STFT_FIELDS = ("sample_rate", "n_fft", "hop_length", "n_frames", "window", "min_db", "max_db")

Batch = tuple[torch.Tensor, dict[str, torch.Tensor]]


def _stage(c_in: int, c_out: int, stride: tuple[int, int]) -> nn.Sequential:
    # A strided conv downsamples at the cost of a conv at the *output* resolution,
    # far cheaper on a CPU than convolving at full size and then pooling.
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.GELU())


def _head(d_in: int, embed: int, n_classes: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, embed), nn.GELU(), nn.Linear(embed, n_classes))


class SpectrogramClassifier(nn.Module):
    """Pitch (128 MIDI classes) and family (``K = len(cfg.data.family_vocabulary)`` classes, NSynth's 11
    by default) from a full spectrogram ``(B, 1, F, T)``.

    Four conv3x3-BN-GELU stages of widths ``c, 2c, 4c, 4c`` (``c =
    cfg.eval.classifier_channels``).  The first strides time by 4 only; the others
    stride both axes by 2, so the last map is ``(4c, F/8, T/32)``.  Its time mean,
    flattened over channels and the ``F/8`` frequency rows, is the trunk feature
    ``(B, 4c * F/8)``.  Each head is ``Linear(trunk, E) -> GELU -> Linear(E, K)``,
    ``E = cfg.eval.classifier_embed``.
    """

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        f, t = cfg.spec_shape
        if f % 8 or t % 32:
            raise ValueError(f"the classifier needs F divisible by 8 and T by 32, got F = {f}, T = {t}")
        c, e = cfg.eval.classifier_channels, cfg.eval.classifier_embed
        self.body = nn.Sequential(_stage(1, c, (1, 4)), _stage(c, 2 * c, (2, 2)),
                                  _stage(2 * c, 4 * c, (2, 2)), _stage(4 * c, 4 * c, (2, 2)))
        self.trunk_dim = 4 * c * (f // 8)
        self.dropout = nn.Dropout(0.1)  # the flattened trunk is wide; the dataset is small
        self.pitch_head = _head(self.trunk_dim, e, N_PITCHES)
        self.family_head = _head(self.trunk_dim, e, len(cfg.data.family_vocabulary))

    def _check(self, x: torch.Tensor) -> None:
        f, t = self.cfg.spec_shape
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, f, t):
            raise ValueError(f"the classifier expects full spectrograms (B, 1, {f}, {t}), got "
                             f"{tuple(x.shape)}; unfold CMX / truncated inputs with cmx.from_model_input")
        if not torch.isfinite(x).all():
            raise ValueError("the classifier got NaN/Inf in its input spectrogram")

    def trunk(self, x_B1FT: torch.Tensor) -> torch.Tensor:
        """``(B, 1, F, T)`` -> ``(B, trunk_dim)``: conv stages, mean over time, flatten."""
        self._check(x_B1FT)
        return self.body(x_B1FT).mean(dim=-1).flatten(1)

    def forward(self, x_B1FT: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"pitch_logits": (B, 128), "family_logits": (B, K)}``."""
        h = self.dropout(self.trunk(x_B1FT))
        return {"pitch_logits": self.pitch_head(h), "family_logits": self.family_head(h)}

    def features(self, x_B1FT: torch.Tensor) -> dict[str, torch.Tensor]:
        """Everything the metrics need, from one pass (call in eval mode).

        Returns ``trunk (B, trunk_dim)``, ``pitch_embedding``/``family_embedding``
        ``(B, E)`` (penultimate activations of each head), ``pitch_probs (B, 128)``
        and ``family_probs (B, K)`` (softmax posteriors).
        """
        h = self.dropout(self.trunk(x_B1FT))
        out = {"trunk": h}
        for name, head in (("pitch", self.pitch_head), ("family", self.family_head)):
            emb = head[1](head[0](h))
            out[f"{name}_embedding"] = emb
            out[f"{name}_probs"] = head[2](emb).softmax(dim=-1)
        return out

    def augment(self, x_B1FT: torch.Tensor) -> torch.Tensor:
        """Cheap training-time augmentation: onset jitter, a level change, one SpecAugment time mask.

        None of it moves energy in frequency (that would change the pitch label).
        Random numbers come from torch's CPU generator, which the training loop
        saves and restores, so resumed runs stay exact.
        """
        b, _, f, t = x_B1FT.shape
        a, dev = self.cfg.audio, x_B1FT.device
        frames = torch.arange(t)[None]                                    # (1, T)
        # Delay the onset by up to T/16 frames, filling with silence (-1): generated notes
        # need not start on the very first frame.
        src = frames - torch.randint(0, t // 16 + 1, (b, 1))              # (B, T) source frame
        x = x_B1FT.gather(3, src.clamp_min(0).to(dev)[:, None, None, :].expand(b, 1, f, t))
        x = x.masked_fill((src < 0).to(dev)[:, None, None, :], -1.0)
        # +-6 dB level change on what is not already at the silence floor.
        gain = ((torch.rand(b, 1, 1, 1) * 2 - 1) * 12.0 / (a.max_db - a.min_db)).to(dev)
        x = torch.where(x > -1, (x + gain).clamp(-1, 1), x)
        # One time mask of up to T/10 frames (SpecAugment, Park et al. 2019).
        width = torch.randint(0, t // 10 + 1, (b, 1))
        start = (torch.rand(b, 1) * (t - width + 1)).long()
        masked = (frames >= start) & (frames < start + width)
        return x.masked_fill(masked.to(dev)[:, None, None, :], -1.0)

    def training_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """``loss = CE(pitch) + CE(family)``; ``pitch_acc`` and ``family_acc`` are logged."""
        x, labels = batch
        if self.training:
            x = self.augment(x)
        out = self(x)
        pitch, family = labels["pitch"], labels["family"]
        ce_pitch = F.cross_entropy(out["pitch_logits"], pitch)
        ce_family = F.cross_entropy(out["family_logits"], family)
        return {"loss": ce_pitch + ce_family, "ce_pitch": ce_pitch.detach(), "ce_family": ce_family.detach(),
                "pitch_acc": (out["pitch_logits"].argmax(-1) == pitch).float().mean(),
                "family_acc": (out["family_logits"].argmax(-1) == family).float().mean()}


# ---------------------------------------------------------------------------
# Data, training, loading
# ---------------------------------------------------------------------------

def classifier_rows(cfg: Config, split: str) -> MappedRows:
    """Full spectrograms of a split, read lazily: rows ``(1, F, T)`` float32 and their labels.

    Read through the CMX feature store (lossless, so unfolding gives the exact
    spectrogram) even when ``cfg`` is a truncation config.
    """
    cmx_cfg = dataclasses.replace(cfg, cmx=dataclasses.replace(cfg.cmx, mode="cmx"))
    return MappedRows(feature_store(cmx_cfg, split),
                      lambda batch: (from_model_input(batch[0], cmx_cfg.cmx, cfg.spec_shape).contiguous(), batch[1]))


def classifier_dataset(cfg: Config, split: str) -> Batch:
    """Full spectrograms of a split in memory: ``(X (N, 1, F, T) float32, {"pitch", "family", "velocity"})``.

    About 160 MB for the course profile's ~1,200 training clips; training reads
    :func:`classifier_rows` instead.
    """
    return classifier_rows(cfg, split).read_all()


def fit_classifier(cfg: Config, run_dir: str | Path, resume: bool = False, overwrite: bool = False,
                   progress: bool = True, stop_after: int | None = None) -> tuple[SpectrogramClassifier, dict]:
    """Train the classifier on the train split (``cfg.train_classifier``), validating on valid.

    Checkpoints go to ``run_dir``.  Returns ``(model in eval mode, history)``.
    """
    ensure_dataset(cfg)
    check_start(run_dir, KIND, cfg, cfg.train_classifier, resume, overwrite)  # refuse before any work
    train_data, valid_data = classifier_rows(cfg, "train"), classifier_rows(cfg, "valid")
    torch.manual_seed(cfg.seed)  # the initial weights
    model = SpectrogramClassifier(cfg)
    history = train(model, cfg, cfg.train_classifier, train_data, run_dir, KIND, valid_data=valid_data,
                    resume=resume, overwrite=overwrite, stop_after=stop_after,
                    progress=progress)
    return model.eval(), history


def load_classifier(run_dir: str | Path, cfg: Config | None = None, device: str = "cpu") -> SpectrogramClassifier:
    """Load ``run_dir``'s newest checkpoint; with ``cfg``, first check its audio and classifier settings match.

    CMX / tokenizer settings may differ: one classifier judges every arm.
    """
    trained = Config.from_dict(read_meta(run_dir)["config"])
    if cfg is not None:
        check_families(trained, cfg, run_dir)
    model = SpectrogramClassifier(cfg or trained)
    load_checkpoint(run_dir, model, KIND, cfg)
    return model.to(device).eval()


# ---------------------------------------------------------------------------
# Using it
# ---------------------------------------------------------------------------

@torch.no_grad()
def classify_spectrograms(model: SpectrogramClassifier, x_B1FT: torch.Tensor | np.ndarray,
                          batch_size: int = 64) -> dict[str, np.ndarray]:
    """:meth:`SpectrogramClassifier.features` of ``(B, 1, F, T)`` spectrograms, in batches, as float32 numpy."""
    x_B1FT = torch.as_tensor(x_B1FT, dtype=torch.float32)
    model._check(x_B1FT)
    if len(x_B1FT) == 0:
        raise ValueError("classify_spectrograms got an empty batch")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    chunks: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(x_B1FT), batch_size):
        for k, v in model.features(x_B1FT[start:start + batch_size].to(device)).items():
            chunks.setdefault(k, []).append(v.float().cpu().numpy())
    model.train(was_training)
    return {k: np.concatenate(v) for k, v in chunks.items()}


def check_stft(model: SpectrogramClassifier, cfg: Config) -> None:
    """Raise ``ValueError`` if ``cfg.audio`` makes spectrograms other than those the classifier learnt on."""
    theirs, ours = model.cfg.audio, cfg.audio
    diff = [f"{k}: {getattr(ours, k)!r} != {getattr(theirs, k)!r}" for k in _STFT_FIELDS
            if getattr(ours, k) != getattr(theirs, k)]
    if diff:
        raise ValueError(f"cfg.audio differs from the classifier's STFT ({'; '.join(diff)})")


@torch.no_grad()
def classify_waveforms(model: SpectrogramClassifier, waves: torch.Tensor | np.ndarray, cfg: Config,
                       batch_size: int = 64) -> dict[str, np.ndarray]:
    """Features of waveforms ``(B, S)``: cropped/zero-padded to the clip length, as the dataset does,
    then STFT -> normalised log-magnitude ``(B, 1, F, T)`` (:func:`marslib.audio.waveform_to_input`).

    Silent clips are allowed (a generator may produce them); NaN/Inf are not.
    """
    waves = waves.detach().cpu().numpy() if isinstance(waves, torch.Tensor) else np.asarray(waves)
    if waves.ndim != 2 or waves.size == 0:
        raise ValueError(f"classify_waveforms expects waveforms (B, S), got shape {waves.shape}")
    if not np.isfinite(waves).all():
        raise ValueError("classify_waveforms got NaN/Inf samples")
    check_stft(model, cfg)
    ours = cfg.audio
    waves = fit_length(waves.astype(np.float32), ours.clip_samples)
    chunks = [classify_spectrograms(model, waveform_to_input(torch.from_numpy(waves[s:s + batch_size]), ours),
                                    batch_size) for s in range(0, len(waves), batch_size)]
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


@torch.no_grad()
def classifier_accuracy(model: SpectrogramClassifier, x_B1FT: torch.Tensor, labels: dict[str, torch.Tensor],
                        batch_size: int = 64) -> dict:
    """Held-out accuracy: ``pitch_acc``, ``pitch_within_1`` (+-1 semitone), ``family_acc``, ``n``
    and ``confusion_family`` (K x K counts, row = true family, column = predicted)."""
    out = classify_spectrograms(model, x_B1FT, batch_size)
    pitch = np.asarray(labels["pitch"])
    family = np.asarray(labels["family"])
    p_hat, f_hat = out["pitch_probs"].argmax(1), out["family_probs"].argmax(1)
    k = model.family_head[-1].out_features
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (family, f_hat), 1)
    return {"pitch_acc": float((p_hat == pitch).mean()),
            "pitch_within_1": float((np.abs(p_hat - pitch) <= 1).mean()),
            "family_acc": float((f_hat == family).mean()), "n": int(len(pitch)),
            "confusion_family": confusion.tolist()}
