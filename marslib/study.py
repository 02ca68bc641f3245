"""Where does the timbre go?  Family accuracy, stage by stage (notebook 02, ``benchmarks/timbre_study.py``).

A generated note passes through a chain of lossy steps.  Each *stage* below is
the held-out test set (``evaluate.test_clips``) after some of them, judged from
its audio alone by the run's classifier (does it still sound like the family it
was made for?) and by FD on CREPE embeddings against the real test clips:

=====================  ==========================================================================
``real``               the real test clips (the reference)
``griffin_lim``        real -> normalised |STFT| -> Griffin-Lim (what the lost phase costs)
``continuous``         real -> tokenizer encoder -> decoder, *no quantiser*
                       (``decoder(post_quant_conv(latent(x)))``): what the autoencoder alone keeps
``scales_k``           real -> tokens -> decode of the first k scales only (``partial_decode``), k = 1..K
``mars``               MARS's generated note for each test (pitch, family), if ``<run>/ar`` exists
``mars_from_k``        MARS given the real note's first k scales, predicting scales k+1..K itself
                       (``sample_tokens(prefix=...)``): how much each scale MARS predicts costs
=====================  ==========================================================================

Every stage but ``real`` ends in the same Griffin-Lim with the same seeds, so
differences between them come from the models, not from phase recovery.  The
classifier and CREPE only judge; nothing is trained or selected with them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from .audio import input_to_waveform, waveform_to_input
from .checkpoint import has_checkpoint
from .cmx import from_model_input, to_model_input
from .config import Config
from .evaluate import (CREPE_NAME, ClipSet, _batches, _fingerprints, generated_clips, griffin_lim_clips,
                       sampled_waves, sampling_settings, test_clips)
from .metrics import classify_waveforms, crepe_analyse, frechet_distance, load_classifier

DESIGN_KEYS = {"variant": str, "change": str, "family_acc": float, "lsd_db": float, "train_minutes": float,
               "note": str}


def stage_label(stage: str, scales=None) -> str:
    """Human name of a stage (``scales_k`` needs the tokenizer's ``scales`` for its token count)."""
    fixed = {"real": "real test notes", "griffin_lim": "real → Griffin-Lim",
             "continuous": "tokenizer, continuous latent (no quantiser)", "mars": "MARS, generated"}
    if stage in fixed:
        return fixed[stage]
    k = int(stage.split("_")[-1])
    if stage.startswith("mars_from_"):
        return f"MARS, given the real scales 1..{k}"
    n = sum(h * w for h, w in scales[:k]) if scales is not None else 0
    tokens = f", {n} token{'s' * (n != 1)}" if scales is not None else ""
    return f"tokenizer, scales 1..{k}{tokens}"


@torch.no_grad()
def tokenizer_stages(run: Path, test: ClipSet, seed: int, device: str = "cpu") -> tuple[list[ClipSet], list]:
    """The test clips through ``<run>/tokenizer``: ``([continuous, scales_1, ..., scales_K], scales)``.

    Each clip set holds waves ``(N, S)``; ``scales`` is the tokenizer's ``[(h_k, w_k)] x K``.

    Per batch: audio -> input ``(B, C, F/r, T/r)`` -> latent ``(B, D, h, w)`` -> either the decoder
    directly (continuous) or tokens ``[K x (B, h_k, w_k)]`` -> ``partial_decode(.., k)``; then
    clamp to [-1, 1], CMX unfold to ``(B, 1, F, T)`` and Griffin-Lim with seed ``seed + batch``.
    """
    from .tokenizer.training import load_tokenizer

    prints = _fingerprints(run, ("tokenizer",))
    tokenizer = load_tokenizer(run / "tokenizer", device=device)
    tcfg, K = tokenizer.cfg, tokenizer.quantizer.K

    def to_audio(x_hat: torch.Tensor, s: int) -> torch.Tensor:
        spec = from_model_input(x_hat.clamp(-1, 1), tcfg.cmx, tcfg.spec_shape, fill_value=-1.0)
        return input_to_waveform(spec, tcfg.audio, seed=s).cpu()

    waves: list[list[torch.Tensor]] = [[] for _ in range(K + 1)]
    for i, sl in _batches(len(test.waves)):
        x = to_model_input(waveform_to_input(torch.from_numpy(test.waves[sl]), tcfg.audio), tcfg.cmx).to(device)
        latent = tokenizer.latent(x)
        waves[0].append(to_audio(tokenizer.decoder(tokenizer.post_quant_conv(latent)), seed + i))
        indices = tokenizer.quantizer.to_indices(latent)
        for k in range(1, K + 1):
            waves[k].append(to_audio(tokenizer.partial_decode(indices, upto=k), seed + i))
    names = ["continuous"] + [f"scales_{k}" for k in range(1, K + 1)]
    sets = [ClipSet(name, torch.cat(w).numpy(), test.pitch, test.family, prints) for name, w in zip(names, waves)]
    return sets, [list(s) for s in tokenizer.quantizer.scales]


def timbre_stages(cfg: Config, run: str | Path, test: ClipSet | None = None, seed: int = 0, crepe: bool = True,
                  generate: bool = True, continue_from: tuple[int, ...] = ()) -> dict:
    """Family accuracy and FD CREPE of every stage (see the module docstring), in chain order.

    Needs ``<run>/classifier`` and ``<run>/tokenizer``; adds the ``mars`` stage when
    ``generate`` and ``<run>/ar`` exists (one clip per test condition, ``cfg.ar``'s sampling),
    then a ``mars_from_k`` stage for each k in ``continue_from`` (each in 1..K-1).
    ``test``: the clips to use (default ``evaluate.test_clips(cfg)``, N of them); ``crepe=False``
    skips FD (``fd_crepe`` None).  Returns ``{"rows": [row, ...], "families": [name, ...],
    "n_test": N, "scales": [[h, w], ...], "seed", "crepe", "checkpoints"}``, each row
    ``{"stage", "label", "n", "family_acc", "per_family": {name: acc}, "per_family_n": {name: n},
    "fd_crepe"}``; families are those present in ``test``, named by ``cfg.data.family_vocabulary``.
    """
    run = Path(run)
    test = test_clips(cfg) if test is None else test
    checkpoints = _fingerprints(run, ("classifier",))
    classifier = load_classifier(run / "classifier", cfg, device=cfg.device)
    sets = [test, griffin_lim_clips(cfg, test, seed)]
    decoded, scales = tokenizer_stages(run, test, seed, cfg.device)
    sets += decoded
    if generate and has_checkpoint(run / "ar"):
        one = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, clips_per_condition=1))
        bad = [k for k in continue_from if not 1 <= k < len(scales)]
        if bad:
            raise ValueError(f"continue_from: each k must be in 1..{len(scales) - 1}, got {bad}")
        sets.append(generated_clips(one, run, test, seed, "mars"))
        sets += [continuation_clips(cfg, run, test, seed, k) for k in continue_from]
    for s in sets:
        checkpoints |= s.checkpoints
    vocab = cfg.data.family_vocabulary
    present = sorted(set(int(f) for f in test.family))
    e = cfg.eval
    embed = (lambda w: crepe_analyse(w, cfg.audio.sample_rate, capacity=e.crepe_capacity, n_frames=e.crepe_frames,
                                     device=cfg.device)["embedding"])
    reference = embed(test.waves) if crepe else None
    rows = []
    for s in sets:
        if not np.isfinite(s.waves).all():
            raise ValueError(f"stage {s.name!r} made NaN or Inf samples")
        predicted = classify_waveforms(classifier, s.waves, cfg)["family_probs"].argmax(1)
        correct = predicted == s.family
        fd = None
        if crepe:
            fd = 0.0 if s is test else frechet_distance(reference, embed(s.waves))
        rows.append({
            "stage": "real" if s is test else s.name, "label": stage_label("real" if s is test else s.name, scales),
            "n": int(len(s.waves)), "family_acc": float(correct.mean()),
            "per_family": {vocab[f]: float(correct[s.family == f].mean()) for f in present},
            "per_family_n": {vocab[f]: int((s.family == f).sum()) for f in present},
            "fd_crepe": fd})
    return {"rows": rows, "families": [vocab[f] for f in present], "n_test": int(len(test.waves)),
            "scales": scales, "seed": seed, "checkpoints": checkpoints,
            "crepe": CREPE_NAME.format(capacity=e.crepe_capacity, frames=e.crepe_frames) if crepe else None}

@torch.no_grad()
def continuation_clips(cfg: Config, run: Path, test: ClipSet, seed: int, given: int) -> ClipSet:
    """MARS continuing each test note: its real tokens of scales 1..``given`` kept, the rest sampled.

    Same labels, sampling settings (``evaluate.sampling_settings``), seeds and Griffin-Lim as the
    ``mars`` stage, so ``given = 0`` would be that stage and ``given = K`` the tokenizer's.
    """
    from .autoregressor import sample_tokens
    from .autoregressor.training import load_ar

    prints = _fingerprints(run, ("tokenizer", "ar"))
    model, tokenizer = load_ar(run, device=cfg.device)
    tcfg, settings = tokenizer.cfg, sampling_settings(cfg)

    def continue_real(p, f, s, rows):
        x = to_model_input(waveform_to_input(torch.from_numpy(test.waves[rows]), tcfg.audio), tcfg.cmx)
        real = tokenizer.encode(x.to(cfg.device))
        return sample_tokens(model, tokenizer, p, f, seed=s, prefix=real[:given], **settings)

    waves = sampled_waves(continue_real, tokenizer, test.pitch, test.family, seed, cfg.device)
    return ClipSet(f"mars_from_{given}", waves, test.pitch, test.family, prints, settings)


def stage_table(result: dict) -> str:
    """Markdown: one row per stage; stage, family accuracy, FD CREPE, then one column per family."""
    fams = result["families"]
    lines = ["| stage | family acc ↑ | FD CREPE ↓ | " + " | ".join(fams) + " |",
             "|---|---:|---:|" + "---:|" * len(fams)]
    for r in result["rows"]:
        fd = "—" if r["fd_crepe"] is None else f"{r['fd_crepe']:.2f}"
        cells = [f"{r['per_family'][f]:.0%}" for f in fams]
        lines.append(f"| {r['label']} | {r['family_acc']:.1%} | {fd} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def chain(result: dict) -> list[str]:
    """The stages a generated note passes through, in order: real, Griffin-Lim, continuous, all K scales, MARS.

    (The partial scales 1..k < K are not on it: no note is ever made from them.)
    """
    names = [r["stage"] for r in result["rows"]]
    path = ["real", "griffin_lim", "continuous", f"scales_{len(result['scales'])}", "mars"]
    return [s for s in path if s in names]


def biggest_drop(result: dict, stages: list[str] | None = None) -> str:
    """One line naming the consecutive pair of ``stages`` (default :func:`chain`) that loses most family accuracy."""
    rows = {r["stage"]: r for r in result["rows"]}
    path = chain(result) if stages is None else stages
    pairs = [(rows[a]["family_acc"] - rows[b]["family_acc"], a, b) for a, b in zip(path, path[1:])]
    if not pairs:
        raise ValueError("biggest_drop needs at least two stages")
    drop, a, b = max(pairs, key=lambda p: p[0])  # the first of equal drops
    ra, rb = rows[a], rows[b]
    if drop <= 0:
        return f"no step loses family accuracy along {' → '.join(path)}"
    return (f"largest family-accuracy loss: {ra['label']} → {rb['label']}, "
            f"{ra['family_acc']:.1%} → {rb['family_acc']:.1%} (−{100 * drop:.1f} points)")


def design_table(path: str | Path) -> str:
    """Markdown table of tokenizer design variants from a JSON file.

    The file: ``{"rows": [{"variant": str, "change": str, "family_acc": float in [0, 1],
    "lsd_db": float, "train_minutes": float, "note": str}, ...]}``.  A file of another shape
    raises ``ValueError`` naming the row and field.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list) or not data["rows"]:
        raise ValueError(f"{path}: expected {{\"rows\": [...]}} with at least one row")
    lines = ["| variant | change | tokenizer family acc ↑ | LSD (dB) ↓ | train (min) | note |",
             "|---|---|---:|---:|---:|---|"]
    for i, row in enumerate(data["rows"]):
        if not isinstance(row, dict):
            raise ValueError(f"{path}: row {i} is not an object")
        missing = [k for k in DESIGN_KEYS if k not in row]
        if missing:
            raise ValueError(f"{path}: row {i} lacks {', '.join(missing)} (needs {', '.join(DESIGN_KEYS)})")
        for key, kind in DESIGN_KEYS.items():
            value = row[key]
            ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)
                  if kind is float else isinstance(value, str))
            if not ok:
                want = "a finite number" if kind is float else "a string"
                raise ValueError(f"{path}: row {i} field {key!r} should be {want}, got {value!r}")
        if not 0 <= row["family_acc"] <= 1:
            raise ValueError(f"{path}: row {i} family_acc should be a fraction in [0, 1], got {row['family_acc']!r}")
        cells = [row["variant"], row["change"], f"{row['family_acc']:.1%}", f"{row['lsd_db']:.2f}",
                 f"{row['train_minutes']:.1f}", row["note"]]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
