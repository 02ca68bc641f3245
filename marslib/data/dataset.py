"""Model inputs for a split, computed once and cached: waveform -> spectrogram -> CMX.

For every example of a split::

    wav --load_audio, fit_length--> (N,)  --waveform_to_input--> (1, F, T)
        --to_model_input--> (C, F/r, T/r)   (CMX fold, or the truncation baseline)

Only the model input is stored; :func:`marslib.cmx.from_model_input` gives the
``(1, F, T)`` spectrogram back.  The cache is a safetensors file under
:func:`feature_cache_dir` (``cfg.data.cache_dir``; by default ``cache/`` beside the
dataset folder, so a run on a dataset in a temporary folder caches there too),
named by a hash of everything the features depend on
(audio + CMX config, data filters, and each wav's name, size and mtime), so
changing the front-end or re-rendering the data never serves stale features;
a damaged cache file is deleted and rebuilt, with a warning.
Defined in notebook 01.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ..audio import AudioError, fit_length, load_audio, waveform_to_input
from ..cmx import to_model_input
from ..config import Config
from .nsynth import NSYNTH_SECONDS, DatasetError, Example, read_examples
from .render import read_manifest

FEATURES_VERSION = 1   # bump when feature computation changes, to invalidate old caches
BATCH = 64             # waveforms per batched STFT
LABELS = ("pitch", "family", "velocity")


def split_examples(cfg: Config, split: str) -> list[Example]:
    """The examples of ``split`` that ``cfg.data`` keeps (families, pitch range, velocities)."""
    d = cfg.data
    return read_examples(d.root, split, families=d.families,
                         pitch_range=(d.pitch_min, d.pitch_max), velocities=d.velocities)


def cache_key(cfg: Config, split: str, examples: list[Example]) -> str:
    """Hash of everything the cached features depend on (16 hex digits)."""
    d = cfg.data
    files = []
    for ex in examples:
        st = ex.path.stat()
        files.append((ex.note_str, st.st_size, st.st_mtime_ns))
    payload = {
        "version": FEATURES_VERSION,
        "split": split,
        "audio": dataclasses.asdict(cfg.audio),
        "cmx": dataclasses.asdict(cfg.cmx),
        "filters": [list(d.families), d.pitch_min, d.pitch_max, list(d.velocities)],
        "files": files,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def dataset_seconds(root: str | Path) -> float:
    """How long every clip of the dataset at ``root`` is: its manifest's ``render_seconds``, else NSynth's 4 s."""
    manifest = read_manifest(root)
    return float(manifest.get("render_seconds", NSYNTH_SECONDS)) if manifest else NSYNTH_SECONDS


def repair_hint(root: str | Path) -> str:
    """How to replace a damaged file of the dataset at ``root``."""
    if read_manifest(root) is not None:  # ours: a matching manifest is reused as is, so delete first
        return f"delete {root} and render it again (mars data synth)"
    return f"re-download or re-extract NSynth into {root}"


def feature_cache_dir(cfg: Config) -> Path:
    """Where :func:`load_features` caches: ``cfg.data.cache_dir``, or if that is empty (the
    default) ``cache/`` beside the dataset, ``<parent of data.root>/cache``.

    The cache follows the dataset a run is given: ``data/mini_nsynth_smoke`` caches in
    ``data/cache``, a dataset under ``/tmp/x/data`` in ``/tmp/x/cache``.
    """
    return Path(cfg.data.cache_dir) if cfg.data.cache_dir else Path(cfg.data.root).parent / "cache"


def load_clips(cfg: Config, examples: list[Example]) -> np.ndarray:
    """Waveforms ``(N, clip_samples)`` float32 of ``examples``: loaded, resampled, cropped or padded.

    Zero padding only ever covers what the dataset's clips lack *by design* (the
    paper profile's 4.096 s from NSynth's 4 s notes).  A clip shorter than both its
    dataset's clip length and ``clip_samples`` is damaged: :class:`DatasetError`
    names the file, never a silently padded clip.
    """
    sr, n = cfg.audio.sample_rate, cfg.audio.clip_samples
    need: dict[Path, int] = {}  # dataset root -> samples every clip must hold
    clips = []
    for ex in examples:
        root = ex.path.parents[2]  # root/nsynth-<split>/audio/<note_str>.wav
        if root not in need:
            need[root] = min(n, int(dataset_seconds(root) * sr))
        try:
            y = load_audio(ex.path, sr)
        except AudioError as err:
            raise DatasetError(f"{err}. To repair the dataset, {repair_hint(root)}") from err
        if len(y) < need[root]:
            raise DatasetError(f"{ex.path} is too short: it holds {len(y)} samples ({len(y) / sr:.3f} s at "
                               f"{sr} Hz) but needs {need[root]} (the clips of {root} are "
                               f"{dataset_seconds(root):g} s, the config uses {n / sr:.3f} s); the file is "
                               f"damaged or not from this dataset: {repair_hint(root)}")
        clips.append(fit_length(y, n))
    return np.stack(clips)


def _compute(cfg: Config, examples: list[Example]) -> torch.Tensor:
    """``(N, C, F/r, T/r)`` float32 model inputs, STFT batched ``BATCH`` clips at a time."""
    chunks = []
    for start in tqdm(range(0, len(examples), BATCH), desc="spectrograms", unit="batch",
                      disable=len(examples) <= BATCH):
        waves_BN = load_clips(cfg, examples[start:start + BATCH])
        spec_B1FT = waveform_to_input(torch.from_numpy(waves_BN), cfg.audio)
        chunks.append(to_model_input(spec_B1FT, cfg.cmx).contiguous())
    return torch.cat(chunks).float()


def _save_atomic(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".safetensors.tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_features(cfg: Config, split: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """All model inputs and labels of a split (cached on disk, in :func:`feature_cache_dir`).

    Returns:
        ``X``: ``(N, C, F/r, T/r)`` float32, ``cfg.input_shape`` per example;
        ``labels``: ``{"pitch", "family", "velocity"}`` each ``(N,)`` int64
        (family = index into ``NSYNTH_FAMILIES``).  Order: sorted by ``note_str``.
    """
    examples = split_examples(cfg, split)
    if not examples:
        d = cfg.data
        raise DatasetError(f"split {split!r} of {d.root} has no examples for families {d.families}, "
                           f"pitches {d.pitch_min}..{d.pitch_max}, velocities {d.velocities}")
    path = feature_cache_dir(cfg) / f"{split}-{cache_key(cfg, split, examples)}.safetensors"
    expected = (len(examples), *cfg.input_shape)
    tensors = _read_cache(path, expected) if path.is_file() else None
    if tensors is None:
        tensors = {"x": _compute(cfg, examples)}
        for name in LABELS:
            tensors[name] = torch.tensor([getattr(ex, name) for ex in examples], dtype=torch.long)
        _save_atomic(path, tensors, {"note_strs": json.dumps([ex.note_str for ex in examples])})
    return tensors["x"], {name: tensors[name] for name in LABELS}


def _read_cache(path: Path, expected: tuple[int, ...]) -> dict[str, torch.Tensor] | None:
    """The cached tensors, or None after deleting a file that is unreadable or of the wrong shape.

    A cache is only ever a copy: a damaged one (a full disk, a killed copy) is
    rebuilt with a warning rather than stopping the run.
    """
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError) as err:  # cut short, overwritten, not safetensors at all
        tensors, problem = {}, f"unreadable: {err}"
    else:
        want = {"x": expected, **{name: expected[:1] for name in LABELS}}
        got = {name: tuple(tensors[name].shape) if name in tensors else None for name in want}
        problem = None if got == want else f"holds shapes {got}, expected {want}"
    if problem is None:
        return tensors
    warnings.warn(f"feature cache {path} is damaged ({problem}); deleting it and recomputing the features",
                  stacklevel=3)
    path.unlink(missing_ok=True)
    return None


class SpectrogramDataset(Dataset):
    """A split as a torch Dataset: ``(x (C, F/r, T/r), {"pitch", "family", "velocity"})``.

    Everything is held in memory (see :func:`load_features`); the default collate
    turns a batch into ``(B, C, F/r, T/r)`` and a dict of ``(B,)`` LongTensors.
    """

    def __init__(self, cfg: Config, split: str) -> None:
        self.split = split
        self.x, self.labels = load_features(cfg, split)

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, int]]:
        return self.x[i], {name: int(t[i]) for name, t in self.labels.items()}
