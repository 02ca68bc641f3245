"""Model inputs for a split, computed once and cached: waveform -> spectrogram -> CMX.

For every example of a split::

    wav --load_audio, fit_length--> (N,)  --waveform_to_input--> (1, F, T)
        --to_model_input--> (C, F/r, T/r)   (CMX fold, or the truncation baseline)

Only the model input is stored; :func:`marslib.cmx.from_model_input` gives the
``(1, F, T)`` spectrogram back.  The features live in an on-disk store
(:mod:`marslib.data.store`: built once, resumable, read lazily, so memory stays
bounded by a batch however large the split) under :func:`feature_cache_dir`
(``cfg.data.cache_dir``; by default ``cache/`` beside the dataset folder, so a run
on a dataset in a temporary folder caches there too), named by a hash of
everything the features depend on (audio + CMX config, data filters, and each
wav's name, size and mtime), so changing the front-end or re-rendering the data
never serves stale features; a damaged store is deleted and rebuilt, with a warning.
Defined in notebook 01.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..audio import AudioError, fit_length, load_audio, waveform_to_input
from ..cmx import to_model_input
from ..config import NSYNTH_FAMILIES, Config
from .nsynth import NSYNTH_SECONDS, DatasetError, Example, read_examples
from .render import read_manifest
from .store import LABELS, RowStore, build_store

FEATURES_VERSION = 2   # 2: on-disk row stores.  Bump when feature computation changes, to invalidate old caches
BATCH = 64             # waveforms per batched STFT


def split_examples(cfg: Config, split: str) -> list[Example]:
    """The examples of ``split`` that ``cfg.data`` keeps (families, pitch range, velocities)."""
    d = cfg.data
    return read_examples(d.root, split, families=d.families,
                         pitch_range=(d.pitch_min, d.pitch_max), velocities=d.velocities)


def filter_report(cfg: Config, split: str) -> str:
    """What ``cfg.data``'s filters kept of a split, and what each one removed, in one line.

    E.g. ``nsynth-test: kept 3 of 29 notes (velocities (100,) removed 26)``.
    """
    d = cfg.data
    left = read_examples(d.root, split)
    total, removed = len(left), []
    for name, value, keep in (
            ("families", "all" if set(d.families) == set(NSYNTH_FAMILIES) else d.families,
             lambda e: e.family_str in d.families),
            ("pitch", f"{d.pitch_min}..{d.pitch_max}", lambda e: d.pitch_min <= e.pitch <= d.pitch_max),
            ("velocities", d.velocities, lambda e: e.velocity in d.velocities)):
        kept = [e for e in left if keep(e)]
        if len(kept) < len(left):
            removed.append(f"data.{name} {value} removed {len(left) - len(kept)}")
        left = kept
    why = f" ({'; '.join(removed)})" if removed else ""
    return f"nsynth-{split}: kept {len(left)} of {total} notes{why}"


_REPORTED: set[tuple] = set()


def report_filters(cfg: Config, split: str) -> None:
    """Print :func:`filter_report` once per process for each dataset, split and filter set."""
    d = cfg.data
    key = (str(Path(d.root).resolve()), split, d.families, d.pitch_min, d.pitch_max, d.velocities)
    if key not in _REPORTED:
        _REPORTED.add(key)
        print(f"{d.root}/{filter_report(cfg, split)}", flush=True)


def require_clips(cfg: Config, split: str, n: int, needed_for: str) -> None:
    """Stop with a message naming the counts and the filters if ``split`` keeps fewer than ``n`` notes."""
    kept = len(split_examples(cfg, split))
    if kept < n:
        raise DatasetError(f"{needed_for} needs at least {n} {split} notes, but {filter_report(cfg, split)} "
                           f"in {cfg.data.root}; widen the filters (--set data.velocities=... data.pitch_min=...) "
                           f"or use a larger dataset")


def cache_key(cfg: Config, split: str, examples: list[Example]) -> str:
    """Hash of everything the cached features depend on (16 hex digits)."""
    d = cfg.data
    files = []
    for ex in examples:
        st = ex.path.stat()
        files.append((ex.note_str, st.st_size, st.st_mtime_ns))
    payload = {
        "version": FEATURES_VERSION,
        "skip_bad_notes": d.skip_bad_notes,
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
    manifest = read_manifest(root)
    if manifest is not None and manifest.get("format") == "imported":
        return f"import it again over {root} (mars data import <your folder> --out {root} --overwrite)"
    if manifest is not None:  # ours: a matching manifest is reused as is, so delete first
        return f"delete {root} and render it again (mars data synth)"
    return f"re-download or re-extract NSynth into {root}"


def feature_cache_dir(cfg: Config) -> Path:
    """Where :func:`load_features` caches: ``cfg.data.cache_dir``, or if that is empty (the
    default) ``cache/`` beside the dataset, ``<parent of data.root>/cache``.

    The cache follows the dataset a run is given: ``data/mini_nsynth_smoke`` caches in
    ``data/cache``, a dataset under ``/tmp/x/data`` in ``/tmp/x/cache``.
    """
    return Path(cfg.data.cache_dir) if cfg.data.cache_dir else Path(cfg.data.root).parent / "cache"


def load_clip(cfg: Config, ex: Example) -> np.ndarray:
    """One waveform ``(clip_samples,)`` float32: loaded, resampled, cropped or padded.

    Zero padding only ever covers what the dataset's clips lack *by design* (the
    paper profile's 4.096 s from NSynth's 4 s notes).  A clip shorter than both its
    dataset's clip length and ``clip_samples`` is damaged: :class:`DatasetError`
    names the file, never a silently padded clip.
    """
    sr, n = cfg.audio.sample_rate, cfg.audio.clip_samples
    root = ex.path.parents[2]  # root/nsynth-<split>/audio/<note_str>.wav
    need = min(n, int(dataset_seconds(root) * sr))
    try:
        y = load_audio(ex.path, sr)
    except AudioError as err:
        raise DatasetError(f"{err}. To repair the dataset, {repair_hint(root)}") from err
    if len(y) < need:
        raise DatasetError(f"{ex.path} is too short: it holds {len(y)} samples ({len(y) / sr:.3f} s at "
                           f"{sr} Hz) but needs {need} (the clips of {root} are "
                           f"{dataset_seconds(root):g} s, the config uses {n / sr:.3f} s); the file is "
                           f"damaged or not from this dataset: {repair_hint(root)}")
    return fit_length(y, n)


def load_clips(cfg: Config, examples: list[Example]) -> np.ndarray:
    """Waveforms ``(N, clip_samples)`` float32 of ``examples`` (see :func:`load_clip`)."""
    return np.stack([load_clip(cfg, ex) for ex in examples])


def _chunks(cfg: Config, examples: list[Example], start: int, to_rows, row_shape: tuple[int, ...], what: str):
    """Chunks of rows for :func:`~marslib.data.store.build_store`, from example ``start`` on.

    ``to_rows`` turns a batch of waveforms ``(n, clip_samples)`` into the store's rows.
    A note that cannot be read stops the build, naming the file, unless
    ``data.skip_bad_notes`` is set: then it is reported, left out, and recorded in
    the store's ``meta.json``.
    """
    for begin in tqdm(range(start, len(examples), BATCH), desc=what, unit="batch",
                      disable=len(examples) - start <= BATCH):
        chunk, waves, kept, skipped = examples[begin:begin + BATCH], [], [], []
        for ex in chunk:
            try:
                waves.append(load_clip(cfg, ex))
                kept.append(ex)
            except DatasetError as err:
                if not cfg.data.skip_bad_notes:
                    raise DatasetError(f"{err} (or set data.skip_bad_notes=True to skip such notes)") from err
                print(f"skipping {ex.note_str}: {err}", flush=True)
                skipped.append((ex.note_str, str(err)))
        x = to_rows(np.stack(waves)) if waves else np.zeros((0, *row_shape), dtype=np.float32)
        labels = np.array([[getattr(ex, name) for name in LABELS] for ex in kept], dtype=np.int64)
        yield begin + len(chunk), (x, labels.reshape(-1, len(LABELS)), [ex.note_str for ex in kept], skipped)


def _model_inputs(cfg: Config):
    def to_rows(waves: np.ndarray) -> np.ndarray:
        spec_B1FT = waveform_to_input(torch.from_numpy(waves), cfg.audio)
        return to_model_input(spec_B1FT, cfg.cmx).contiguous().float().numpy()
    return to_rows


def _store(cfg: Config, split: str, prefix: str, row_shape: tuple[int, ...], to_rows, what: str) -> RowStore:
    report_filters(cfg, split)
    require_clips(cfg, split, 1, f"the {split} split")
    examples = split_examples(cfg, split)
    path = feature_cache_dir(cfg) / f"{prefix}{split}-{cache_key(cfg, split, examples)}"
    store = build_store(path, len(examples), row_shape, "float32",
                        lambda start: _chunks(cfg, examples, start, to_rows, row_shape, what))
    if not len(store):
        raise DatasetError(f"every note of the {split} split of {cfg.data.root} was skipped as unreadable "
                           f"(see {path / 'meta.json'})")
    return store


def feature_store(cfg: Config, split: str) -> RowStore:
    """The model inputs of a split, on disk: built on first use (resumable), then read lazily.

    Rows are ``(C, F/r, T/r)`` float32 (``cfg.input_shape``); labels ``{"pitch",
    "family", "velocity"}`` (family = index into ``NSYNTH_FAMILIES``), sorted by
    ``note_str``.  Prints what the data filters kept; an empty selection is an
    error naming the filters.
    """
    return _store(cfg, split, "", cfg.input_shape, _model_inputs(cfg), "spectrograms")


def wave_store(cfg: Config, split: str) -> RowStore:
    """The waveforms of a split, on disk, as :func:`feature_store` keeps model inputs.

    Rows are ``(clip_samples,)`` float32 at ``audio.sample_rate``, the clips every
    system is judged on; the comparison systems (:mod:`marslib.baselines`) train on them.
    """
    return _store(cfg, split, "waves-", (cfg.audio.clip_samples,), lambda w: w.astype(np.float32), "waveforms")


def load_features(cfg: Config, split: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """All model inputs and labels of a split, in memory (small splits: plots, evaluation).

    Returns:
        ``X``: ``(N, C, F/r, T/r)`` float32; ``labels``: ``{"pitch", "family",
        "velocity"}`` each ``(N,)`` int64.  Training reads :func:`feature_store` instead.
    """
    return feature_store(cfg, split).read_all()
