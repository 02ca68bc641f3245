"""The lab's cheap path: exercises that retrain a model train a short one, in a folder of its own.

A notebook trains its model once, on the profile's full schedule, into the run folder
that later notebooks reuse.  An exercise that asks "what if we trained it differently?"
must not touch that folder, and cannot afford the full schedule either (the course
tokenizer takes ~11 min on 2 CPU cores; a quick run, 2 min).  So it calls, for example::

    model, history, qcfg = quick_tokenizer(cfg, {"tokenizer.lookup": "cosine"})

which trains the notebook's config with the exercise's overrides for a fifth of the
profile's steps (:data:`STEP_FRACTION`; at least :data:`MIN_STEPS`), with the warm-up
and the dead-code restart interval scaled alike, in a fresh temporary folder that is
deleted when training ends.  Only the schedule changes: same data, same model sizes,
same seed.
Compare a quick run with a quick baseline (``quick_tokenizer(cfg)``), never with the
notebook's fully trained model: they differ by 5x in training.

The same quick run asked twice in one Python process is trained once (the model is
kept in memory), so several exercises can share the quick baseline.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Mapping

from ..config import Config

STEP_FRACTION = 5   # a quick run has 1 / STEP_FRACTION of the profile's steps ...
MIN_STEPS = 10      # ... but at least this many
_TRAINED: dict[str, tuple[Any, dict]] = {}


def quick_config(cfg: Config, overrides: Mapping[str, Any] | None = None, steps: int | None = None) -> Config:
    """``cfg`` with ``overrides`` (dotted keys, as ``get_config`` takes them) and a short tokenizer schedule.

    ``steps`` defaults to ``max(MIN_STEPS, cfg.train_tokenizer.steps // STEP_FRACTION)``.  What
    is counted in steps shrinks in proportion: the warm-up and the dead-code restart
    interval (so a quick run re-seeds its codebook as many times as a full one); validation
    and the checkpoint happen once, at the end.  The data paths, seed and device stay the
    notebook's.
    """
    full = cfg.train_tokenizer
    steps = steps or max(MIN_STEPS, full.steps // STEP_FRACTION)
    wanted = Config.from_dict({**cfg.to_dict(), **dict(overrides or {})})
    restart = wanted.tokenizer.restart_every
    schedule = {"train_tokenizer.steps": steps,
                "train_tokenizer.warmup_steps": max(1, round(full.warmup_steps * steps / full.steps)),
                "train_tokenizer.eval_every": steps, "train_tokenizer.checkpoint_every": steps,
                "tokenizer.restart_every": max(1, round(restart * steps / full.steps)) if restart else 0}
    return Config.from_dict({**wanted.to_dict(), **schedule})


def quick_tokenizer(cfg: Config, overrides: Mapping[str, Any] | None = None, steps: int | None = None):
    """Train a tokenizer on :func:`quick_config` in a temporary folder; ``(model, history, quick_cfg)``.

    Nothing is written outside that folder, which is removed once training ends (the
    feature cache beside the dataset is shared, as for every run).  ``model`` is in eval
    mode on the config's device; ``history`` is :func:`marslib.train.train`'s.
    """
    from ..tokenizer.training import fit_tokenizer

    qcfg = quick_config(cfg, overrides, steps)
    key = json.dumps(qcfg.to_dict(), sort_keys=True, default=str)
    if key not in _TRAINED:
        with tempfile.TemporaryDirectory(prefix="mars-lab-tokenizer-") as tmp:
            _TRAINED[key] = fit_tokenizer(qcfg, Path(tmp) / "run", progress=False)
    model, history = _TRAINED[key]
    return model, history, qcfg
