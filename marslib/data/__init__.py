"""Datasets: the synthetic mini-NSynth renderer, your own sounds, the NSynth-format reader, cached features.

::

    instruments.py   NSynth family -> GM programs of TimGM6mb.sf2 (with playable ranges)
    plan.py          which notes (instrument x pitch x velocity) and which split each goes to
    render.py        render_note / render_dataset / ensure_dataset  (NSynth folder format)
    importer.py      import_folder: your own sounds (subfolders = classes) in the same format
    nsynth.py        read_examples: examples.json + audio/*.wav, real NSynth or ours
    dataset.py       feature_store / load_features -> X (N, C, F/r, T/r) + labels, on disk;
                     wave_store -> waveforms (N, S), what the comparison systems train on
    store.py         the on-disk row store: built once, resumable, read lazily (bounded memory)

Defined in notebook 01.
"""

from .dataset import (cache_key, feature_cache_dir, feature_store, filter_report, load_clips, load_features,
                      report_filters, require_clips, split_examples, wave_store)
from .instruments import (FAMILY_INSTRUMENTS, Instrument, instrument_for_program, instrument_str,
                          soundfont_path)
from .nsynth import SPLITS, DatasetError, Example, dataset_classes, is_nsynth_root, read_examples, split_dir
from .plan import Note, assign_splits, plan_notes, split_by_class
from .render import ensure_dataset, read_manifest, render_dataset, render_note
from .store import MappedRows, RowStore, TensorRows, build_store

__all__ = [
    "DatasetError", "Example", "FAMILY_INSTRUMENTS", "Instrument", "MappedRows", "Note", "RowStore", "SPLITS",
    "TensorRows", "assign_splits", "build_store", "cache_key", "dataset_classes", "ensure_dataset", "feature_cache_dir",
    "feature_store", "filter_report", "instrument_for_program", "instrument_str", "is_nsynth_root", "load_clips",
    "load_features", "plan_notes", "read_examples", "read_manifest", "render_dataset", "render_note",
    "report_filters", "require_clips", "soundfont_path", "split_by_class", "split_dir", "split_examples",
    "wave_store",
]
