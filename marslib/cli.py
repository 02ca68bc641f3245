"""The ``mars`` command line.

    mars profiles                              what each profile sets
    mars data synth --profile course           render the mini-NSynth dataset
    mars data info  --profile course           count clips per split and family
    mars data import FOLDER --out ROOT         your own sounds (subfolders = classes) -> NSynth format
    mars train tokenizer --profile course      train the tokenizer (--resume to continue)
    mars train ar --profile course             train the next-scale transformer on its tokens
    mars train raster|truncation|classifier    the baselines and the evaluation classifier
    mars train ddsp|diffwave|wavenet_ae        the paper's comparison systems (notebook 06)
    mars sample --checkpoint runs/course --pitch 60 --family keyboard --n 8 --out samples/
    mars evaluate --run runs/course            every metric, every row -> runs/course/evaluation/
    mars report --run runs/course              the reproduction report -> reports/REPORT.md
    mars reproduce  --profile smoke --out runs/smoke   dataset + notebooks 01-05 + the report
    mars reproduce  --notebooks 06             the comparison systems, then the report again
    mars run export runs/course course.tar.gz  hand out a trained run (models + evaluation)
    mars run import course.tar.gz runs/course --profile course   checked, then unpacked: notebooks load, not train
    mars lab list                              every exercise: id, title, notebook
    mars lab student --out student/            the notebooks without their worked solutions

Every command takes ``--profile``, ``--seed`` and ``--set key=value`` overrides
(e.g. ``--set audio.n_fft=512 cmx.mode=truncate``).  ``--set`` accepts only the keys
the command reads (:data:`USES`; ``reproduce`` hands them to every notebook, and
``evaluate`` samples with its own ``ar.cfg_scale``/``temperature``/``top_k``/``top_p``,
not the checkpoint's); any other key is refused.  Bad input ends with a one-line
``error: ...`` that names the problem, and exit code 2.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import sys
import time
from pathlib import Path

from .config import Config, ConfigError, get_config, parse_overrides
from .profiles import PROFILES


# --- what each command reads from the config ---------------------------------------
#
# ``--set`` may change only what the command reads: anything else would be silently
# ignored, so it is refused (exit code 2, naming the key).  An entry is a section
# ("data"), one field ("ar.top_k"), or, after a "-", a field of such a section that the
# command does not read.  "seed" and "device" say whether the command takes --seed and
# --device; "*" is everything.  Models that a command loads from checkpoints bring
# their own config, so e.g. ``evaluate`` reads no ``tokenizer.*`` or ``train_*``.
AR_MODEL = ("ar.depth", "ar.width", "ar.heads", "ar.cond_dropout", "ar.family_dropout", "ar.dropout", "ar.scale_balance")      # shape and train a transformer
AR_SAMPLING = ("ar.cfg_scale", "ar.temperature", "ar.top_k", "ar.top_p", "ar.guidance")  # read by the command that samples
CLASSIFIER = ("eval.classifier_channels", "eval.classifier_embed", "train_classifier")
USES: dict[str, tuple[str, ...]] = {
    "data synth": ("seed", "audio.sample_rate", "data", "-data.cache_dir"),
    "data info": ("data.root", "data.families", "data.pitch_min", "data.pitch_max", "data.velocities"),
    "data import": ("seed", "audio.sample_rate", "audio.hop_length", "audio.n_frames", "data.split_fractions",
                    "data.velocities"),
    "train tokenizer": ("seed", "device", "audio", "cmx", "data", "tokenizer", "train_tokenizer"),
    "train ar": ("seed", "device", "audio", "cmx", "data", "tokenizer", *AR_MODEL, "train_ar"),
    "train raster": ("seed", "device", "audio", "cmx", "data", "tokenizer", "-tokenizer.scales",  # one scale
                     *AR_MODEL, "train_tokenizer", "train_ar", "eval.baseline_budget"),
    "train truncation": ("seed", "device", "audio", "cmx.factor", "data", "tokenizer",  # cmx.mode: truncate
                         *AR_MODEL, "train_tokenizer", "train_ar", "eval.baseline_budget"),
    "train classifier": ("seed", "device", "audio", "data", *CLASSIFIER),
    "train ddsp": ("seed", "device", "audio", "data", "ddsp"),
    "train diffwave": ("seed", "device", "audio", "data", "diffwave"),
    "train wavenet_ae": ("seed", "device", "audio", "data", "wavenet_ae"),
    "evaluate": ("seed", "device", "audio", "data", "eval", "-eval.classifier_channels",
                 "-eval.classifier_embed", "-eval.baseline_budget", *AR_SAMPLING),
    "evaluate --train-classifier": ("seed", "device", "audio", "data", "eval", "-eval.baseline_budget",
                                    "train_classifier", *AR_SAMPLING),
    "reproduce": ("*",),  # everything the notebooks read
}
FLAGS = ("profile", "seed", "device")  # top-level fields with options of their own
# The rows `mars evaluate --systems` knows, as marslib.evaluate.SYSTEMS lists them (spelled out here so that
# --help needs no torch; tests/test_cli.py checks the two agree).
EVALUATE_ROWS = ("real_train", "griffin_lim", "tokenizer", "ddsp_resynth", "diffwave_resynth", "wavenet_ae_resynth",
                 "mars", "ddsp", "wavenet_ae", "raster", "truncation_tokenizer", "truncation")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="course", help=f"one of {', '.join(PROFILES)} (default: course)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the profile's, 0)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: the profile's)")
    # "extend": --set a=1 --set b=2 keeps both (the default "store" would silently keep only b=2)
    p.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                   help="override config fields the command uses, e.g. --set audio.n_fft=512 data.pitch_step=2 "
                        "(repeatable)")


def _command(args: argparse.Namespace) -> str:
    """The command's name as :data:`USES` spells it, e.g. ``"train tokenizer"``."""
    words = [args.command, getattr(args, "data_command", None), getattr(args, "model", None)]
    return " ".join(w for w in words if w)


def _flat_keys(overrides: dict, prefix: str = "") -> list[str]:
    """Dotted keys of an overrides dict; a section given as a dict counts as its fields."""
    keys = []
    for key, value in overrides.items():
        full = f"{prefix}{key}"
        keys += _flat_keys(value, f"{full}.") if isinstance(value, dict) else [full]
    return keys


def _covers(entry: str, key: str) -> bool:
    return entry == "*" or key == entry or key.startswith(entry + ".")


def check_uses(command: str, keys: list[str], seed: bool = False, device: bool = False) -> None:
    """Refuse (:class:`ConfigError`) an override, ``--seed`` or ``--device`` that ``command`` ignores."""
    uses = USES[command]
    used = [u for u in uses if not u.startswith("-") and u not in ("seed", "device")]
    unused = [u[1:] for u in uses if u.startswith("-")]
    but = {u: [n[len(u) + 1:] for n in unused if _covers(u, n)] for u in used}
    listed = [u + (f" (not {', '.join(but[u])})" if but[u] else "") for u in used]
    listed += [f"--{flag}" for flag in ("seed", "device") if flag in uses]
    where = f"'mars {command}' (it uses: {', '.join(listed)})"
    for key in keys:
        if key in FLAGS:
            raise ConfigError(f"--set {key} is not a config override; use --{key}")
        if not any(_covers(u, key) for u in used) or any(_covers(n, key) for n in unused):
            raise ConfigError(f"--set {key} is not used by {where}")
    for flag, given in (("seed", seed), ("device", device)):
        if given and flag not in uses and "*" not in uses:
            raise ConfigError(f"--{flag} is not used by {where}")


def _config(args: argparse.Namespace, **extra) -> Config:
    """The command's config: profile, --seed, --device, then ``--set`` (only keys the command uses)."""
    over = parse_overrides(args.set)
    get_config(args.profile, over)  # unknown keys and bad values first: they name the problem
    command = _command(args) + (" --train-classifier" if getattr(args, "train_classifier", False) else "")
    check_uses(command, _flat_keys(over), seed=args.seed is not None, device=args.device is not None)
    over = {**({"seed": args.seed} if args.seed is not None else {}), **over, **extra}
    if args.device:
        over["device"] = args.device
    return get_config(args.profile, over)


# --- commands ----------------------------------------------------------------------

def cmd_profiles(args: argparse.Namespace) -> None:
    print(f"{'profile':8} {'audio':24} {'F x T':>9} {'model input':>14} {'latent':>7} "
          f"{'tokens':>6} {'codebook':>9}  transformer")
    for name in PROFILES:
        c = get_config(name)
        a = c.audio
        print(f"{name:8} {f'{a.sample_rate} Hz, {a.clip_seconds:.2f} s':24} "
              f"{'%dx%d' % c.spec_shape:>9} {'%dx%dx%d' % c.input_shape:>14} "
              f"{'%dx%d' % c.latent_shape:>7} {sum(h * w for h, w in c.tokenizer.scales):>6} "
              f"{f'{c.tokenizer.codebook_size}x{c.tokenizer.latent_dim}':>9}  "
              f"depth {c.ar.depth}, width {c.ar.width}")


def cmd_data_synth(args: argparse.Namespace) -> None:
    from .data import render_dataset

    cfg = _config(args, **({"data.root": args.root} if args.root else {}))
    t0 = time.time()
    root = render_dataset(cfg, overwrite=args.overwrite)
    print(f"dataset ready at {root} ({time.time() - t0:.1f} s)")
    _print_counts(cfg)


def cmd_data_info(args: argparse.Namespace) -> None:
    cfg = _config(args, **({"data.root": args.root} if args.root else {}))
    _print_counts(cfg)


def cmd_data_import(args: argparse.Namespace) -> None:
    from .data.importer import REPORT, import_folder

    cfg = _config(args)
    report = import_folder(cfg, args.folder, args.out, seconds=args.seconds, min_seconds=args.min_seconds,
                           velocity=args.velocity, normalize=not args.no_normalize, overwrite=args.overwrite)
    print(report.summary())
    print(f"report: {Path(report.root) / REPORT}")


def _print_counts(cfg: Config) -> None:
    """Clips per split and family that ``cfg.data`` keeps (families, pitch range, velocities)."""
    from .data import split_examples

    for split in ("train", "valid", "test"):
        examples = split_examples(cfg, split)
        by_family = collections.Counter(e.family_str for e in examples)
        print(f"{split:5} {len(examples):5} clips  " + ", ".join(f"{k} {v}" for k, v in sorted(by_family.items())))


def cmd_train(args: argparse.Namespace) -> None:
    cfg = _config(args, **({"data.root": args.data_dir} if args.data_dir else {}))
    run = Path(args.out or f"runs/{cfg.profile}")
    t0 = time.time()
    if args.model == "tokenizer":
        from .tokenizer.training import fit_tokenizer
        _, history = fit_tokenizer(cfg, run / "tokenizer", resume=args.resume, overwrite=args.overwrite,
                                   distributed=args.distributed)
    elif args.model == "ar":
        from .autoregressor.training import fit_ar
        _, history = fit_ar(cfg, run, resume=args.resume, overwrite=args.overwrite, distributed=args.distributed)
    elif args.model == "raster":
        from .ablation import baseline_config
        from .autoregressor.training import fit_raster
        _, _, history = fit_raster(baseline_config(cfg), run, resume=args.resume, overwrite=args.overwrite)
    elif args.model == "truncation":
        from .ablation import TRUNCATE_DIR, fit_truncation
        fit_truncation(cfg, run, resume=args.resume, overwrite=args.overwrite)
        history = json.loads((run / TRUNCATE_DIR / "ar" / "history.json").read_text())
    elif args.model == "classifier":
        from .metrics import fit_classifier
        _, history = fit_classifier(cfg, run / "classifier", resume=args.resume, overwrite=args.overwrite)
    else:  # a comparison system: marslib.baselines
        from .baselines import fit_baseline
        _, history = fit_baseline(args.model, cfg, run / args.model, resume=args.resume, overwrite=args.overwrite,
                                  distributed=args.distributed)
    last = history["valid"][-1] if history["valid"] else history["train"][-1]
    print(f"{args.model} trained in {time.time() - t0:.0f} s -> {run}")
    print("  " + ", ".join(f"{k} {v:.4g}" for k, v in last.items() if "_" not in k))


SAMPLE_FLAGS = {"temperature": "--temperature", "top_k": "--top-k", "top_p": "--top-p", "cfg_scale": "--cfg",
                "guidance": "--guidance"}


def cmd_sample(args: argparse.Namespace) -> None:
    import torch

    from .audio import write_wav
    from .autoregressor import sample_tokens, tokens_to_audio
    from .autoregressor.training import load_ar, parse_family
    from .checkpoint import read_meta
    from .config import check_sampling
    from .provenance import provenance

    if not 0 <= args.pitch <= 127:
        raise ValueError(f"--pitch must be a MIDI number in 0..127, got {args.pitch}")
    if args.n < 1:
        raise ValueError(f"--n must be at least 1, got {args.n}")
    check_sampling(args.temperature, args.top_k, args.top_p, 0.0 if args.cfg is None else args.cfg,
                   names=SAMPLE_FLAGS, guidance=args.guidance or "joint")  # before the (slow) model load
    # The family names are the ones the model was trained on (NSynth's, or an imported dataset's classes).
    trained = Config.from_dict(read_meta(Path(args.checkpoint) / "ar")["config"])
    family = parse_family(args.family, trained.data.family_vocabulary)
    out = Path(args.out)
    _check_out_dir(out)
    model, tokenizer = load_ar(args.checkpoint, device=args.device or "cpu")
    model_cfg = tokenizer.cfg
    cfg_scale = model_cfg.ar.cfg_scale if args.cfg is None else args.cfg
    guidance = args.guidance or model_cfg.ar.guidance
    names = [f"{args.family}_{args.pitch:03d}_{i:02d}.wav" for i in range(args.n)]
    request = {"checkpoint": str(args.checkpoint), "pitch": args.pitch, "family": args.family, "n": args.n,
               "cfg_scale": cfg_scale, "guidance": guidance, "temperature": args.temperature, "top_k": args.top_k,
               "top_p": args.top_p, "seed": args.seed, "files": names, "written": [], "status": "writing",
               "provenance": provenance(dataclasses.replace(model_cfg, seed=args.seed,
                                                            device=args.device or "cpu"))}
    # The record comes first and is rewritten after every clip: a run that fails or is
    # interrupted leaves one saying "writing" and which of the planned files exist.
    _write_request(out, request)
    pitch, fam = torch.full((args.n,), args.pitch), torch.full((args.n,), family)
    indices = sample_tokens(model, tokenizer, pitch, fam, cfg_scale=cfg_scale, guidance=guidance,
                            temperature=args.temperature,
                            top_k=args.top_k, top_p=args.top_p, seed=args.seed, progress=True)
    _, waves = tokens_to_audio(tokenizer, indices, seed=args.seed)
    for name, wave in zip(names, waves):
        wave = wave / max(1.0, float(wave.abs().max()) / 0.99)  # Griffin-Lim may overshoot: no clipping
        write_wav(out / name, wave, model_cfg.audio.sample_rate)  # atomic: never half a wav
        request["written"].append(name)
        request["status"] = "complete" if len(request["written"]) == len(names) else "writing"
        _write_request(out, request)
    print(f"wrote {len(names)} clips to {out}")


def _check_out_dir(out: Path) -> None:
    """Refuse an ``--out`` that is a file or cannot be created, before any slow work."""
    import os

    target = out.absolute()
    existing = next(p for p in (target, *target.parents) if p.exists())  # the root always exists
    if not existing.is_dir():
        if existing == target:
            raise ValueError(f"--out {out} is a file, not a folder; give a folder for the wavs and request.json")
        raise ValueError(f"--out {out} cannot be created: {existing} is a file, not a folder; "
                         f"choose another --out")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out} is not writable (no write permission on {existing}); "
                         f"choose another --out")


def _write_request(out: Path, request: dict) -> None:
    from .runtime import atomic_write

    atomic_write(out / "request.json", lambda tmp: Path(tmp).write_text(json.dumps(request, indent=1)))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from .evaluate import evaluate, results_table

    cfg = _config(args, **({"data.root": args.data_dir} if args.data_dir else {}))
    run = Path(args.run or f"runs/{cfg.profile}")
    if args.train_classifier:
        from .metrics import fit_classifier
        fit_classifier(cfg, run / "classifier", resume=True)
    t0 = time.time()
    results = evaluate(cfg, run, systems=args.systems)
    print(results_table(results))
    print(f"evaluated in {time.time() - t0:.0f} s -> {run / 'evaluation'}")


# Notebooks `mars reproduce` runs only when --notebooks names them: 06 trains the paper's comparison
# systems, ~40 min in course, on top of the reproduction's hour (`make baselines`).
ON_REQUEST = ("06",)
REPORTED_PROFILES = ("course", "paper")  # the reproductions whose report is committed in reports/


def default_report_dir(profile: str, run: Path) -> Path:
    """``reports/`` for the course and paper profiles; other profiles (smoke, gpu_ci) report in ``<run>/report``."""
    return Path("reports") if profile in REPORTED_PROFILES else run / "report"


def cmd_report(args: argparse.Namespace) -> None:
    from .report import build_report

    run = Path(args.run)
    if not run.is_dir():
        raise FileNotFoundError(f"run folder {run} does not exist; train and evaluate first "
                                f"(`mars reproduce --profile course` does everything)")
    out = Path(args.out) if args.out else None
    if out is None:
        from .checkpoint import has_checkpoint, read_meta

        trained = has_checkpoint(run / "ar")
        out = default_report_dir(read_meta(run / "ar")["config"]["profile"] if trained else "smoke", run)
    print(f"report written to {build_report(run, out)}")


def cmd_reproduce(args: argparse.Namespace) -> None:
    from .notebooks import execute_notebook, notebook_sources

    cfg = _config(args)
    overrides = parse_overrides(args.set)  # every notebook builds its config with them
    out = Path(args.out or f"runs/{cfg.profile}").resolve()
    sources = notebook_sources()
    if args.notebooks:
        sources = [s for s in sources if s.name[:2] in args.notebooks]
        if not sources:
            raise ValueError(f"no notebook matches {args.notebooks}; numbers are like 01 02")
    else:  # the reproduction itself; the comparison systems (06) have a budget of their own
        sources = [s for s in sources if s.name[:2] not in ON_REQUEST]
    # Resolve the dataset once, here, and hand the same folder to every notebook.
    data_dir = Path(args.data_dir or cfg.data.root).resolve()
    cfg.data.root = str(data_dir)
    from .data import ensure_dataset
    print(f"dataset: {ensure_dataset(cfg)}", flush=True)
    t0 = time.time()
    for src in sources:  # each prints its progress (cells done, time) and a summary line
        execute_notebook(src, cfg.profile, out, data_dir=data_dir, seed=cfg.seed, device=cfg.device,
                         overrides=overrides, progress=True, exercises=args.exercises)
    print(f"{len(sources)} notebook(s) (profile {cfg.profile}) in {time.time() - t0:.0f} s; all outputs under {out}")
    if (out / "evaluation" / "metrics.json").exists() and (out / "ar").is_dir():
        from .report import build_report
        print(f"report written to {build_report(out, default_report_dir(cfg.profile, out))}")


def cmd_run_export(args: argparse.Namespace) -> None:
    from .runpack import export_run

    t0 = time.time()
    manifest = export_run(args.run_dir, args.bundle, with_notebooks=args.with_notebooks)
    size = Path(args.bundle).stat().st_size
    print(f"wrote {args.bundle} ({size / 1e6:.1f} MB, {len(manifest['files'])} files, profile "
          f"{manifest['profile']!r}) in {time.time() - t0:.0f} s")
    for folder, record in manifest["checkpoints"].items():
        print(f"  {folder:20} {record['kind']:10} step {record['step']:>6}  weights {record['weights_sha']}")
    if not args.with_notebooks:
        print("  (notebook outputs left out; add --with-notebooks to carry them)")


def cmd_run_import(args: argparse.Namespace) -> None:
    from .runpack import import_run, notebook_readiness

    result = import_run(args.bundle, args.run_dir, profile=args.profile, force=args.force)
    manifest = result.manifest
    if result.status == "unchanged":
        print(f"{args.run_dir} already holds everything in {args.bundle}; nothing written")
    else:
        replaced = f" (replaced: {'; '.join(result.replaced)})" if result.replaced else ""
        print(f"imported {args.bundle} into {args.run_dir}: {len(manifest['files'])} files, "
              f"checkpoints {', '.join(manifest['checkpoints'])}{replaced}")
    profile = args.profile or manifest["profile"]
    ready = notebook_readiness(args.run_dir, get_config(profile))
    print(f"notebooks with profile {profile!r} will load: {', '.join(f for f, why in ready.items() if why is None)}")
    for folder, why in ready.items():
        if why is not None:
            print(f"  {folder}: {why}")


def cmd_lab_list(args: argparse.Namespace) -> None:
    from .lab import exercises
    from .notebooks import notebook_sources

    names = {src.name[:2]: src.stem for src in notebook_sources()}
    table = exercises()
    for ex in table.values():
        print(f"{ex.id:6} {ex.title:44} {names.get(ex.notebook, ex.notebook)}")
    print(f"{len(table)} exercises" if table else "no exercises yet")


def cmd_lab_student(args: argparse.Namespace) -> None:
    from .lab import exercises
    from .lab.edition import write_student_edition

    written = write_student_edition(args.out)
    notebooks = sorted({p.stem for p in written})
    print(f"wrote the student edition to {args.out}: {len(notebooks)} notebooks (.ipynb + .py), "
          f"{len(exercises())} exercises with their solutions removed")
    for path in written:
        print(f"  {path}")


# --- parser ------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mars", description="MARS reproduction: next-scale autoregression over CMX spectrograms.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  mars data synth --profile course\n  mars reproduce --profile smoke")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("profiles", help="show what each profile sets")
    p.set_defaults(func=cmd_profiles)

    data = sub.add_parser("data", help="build or inspect a dataset").add_subparsers(dest="data_command",
                                                                                    required=True)
    p = data.add_parser("synth", help="render the synthetic mini-NSynth dataset (NSynth folder format)")
    _add_common(p)
    p.add_argument("--root", help="output folder (default: the profile's data.root)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing, different dataset")
    p.set_defaults(func=cmd_data_synth)
    p = data.add_parser("info", help="count clips per split and instrument family")
    _add_common(p)
    p.add_argument("--root", help="dataset folder (default: the profile's data.root)")
    p.set_defaults(func=cmd_data_info)
    p = data.add_parser("import", help="turn a folder of audio files (subfolders = classes) into an "
                                       "NSynth-format dataset")
    _add_common(p)
    p.add_argument("folder", help="folder whose subfolders are classes (e.g. kick/, snare/) holding audio files")
    p.add_argument("--out", required=True, help="dataset folder to create (train with --data-dir OUT)")
    p.add_argument("--seconds", type=float, default=None,
                   help="clip length: longer files are cropped, shorter zero-padded (default: the profile's clip)")
    p.add_argument("--min-seconds", type=float, default=0.05, help="skip files shorter than this (default 0.05)")
    p.add_argument("--velocity", type=int, default=None,
                   help="velocity label of every clip (default: 127 if the profile keeps it, else its loudest)")
    p.add_argument("--no-normalize", action="store_true", help="keep each file's level (default: peak 0.9)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier import at --out")
    p.set_defaults(func=cmd_data_import)

    train_cmd = sub.add_parser("train", help="train a model (checkpoints resume with --resume)")
    models = train_cmd.add_subparsers(dest="model", required=True)
    for name, text in (("tokenizer", "the multi-scale residual VQ tokenizer -> <out>/tokenizer"),
                       ("ar", "the next-scale transformer on <out>/tokenizer's tokens -> <out>/ar"),
                       ("raster", "single-scale tokenizer + raster next-token baseline -> <out>/raster"),
                       ("truncation", "the ablation's truncation arm (tokenizer + ar) -> <out>/truncate"),
                       ("classifier", "the pitch/family classifier the evaluation uses -> <out>/classifier"),
                       ("ddsp", "DDSP, harmonic + noise synthesiser (Engel et al. 2020) -> <out>/ddsp"),
                       ("diffwave", "DiffWave, diffusion vocoder (Kong et al. 2021) -> <out>/diffwave"),
                       ("wavenet_ae", "NSynth WaveNet autoencoder (Engel et al. 2017) -> <out>/wavenet_ae")):
        p = models.add_parser(name, help=text)
        _add_common(p)
        p.add_argument("--out", help="run folder (default: runs/<profile>)")
        p.add_argument("--data-dir", help="dataset folder (default: the profile's data.root)")
        p.add_argument("--resume", action="store_true",
                       help="continue from the newest checkpoint if there is one (same settings; steps may grow)")
        p.add_argument("--overwrite", action="store_true",
                       help="delete existing checkpoints in the folder and train from scratch")
        p.add_argument("--distributed", action="store_true",
                       help="data parallel; launch with torchrun --nproc_per_node N -m marslib.cli ...")
        p.set_defaults(func=cmd_train)

    p = sub.add_parser("sample", help="generate notes with a trained next-scale model")
    p.add_argument("--checkpoint", required=True, help="run folder holding tokenizer/ and ar/ (e.g. runs/course)")
    p.add_argument("--pitch", type=int, required=True, help="MIDI pitch, e.g. 60 for middle C")
    p.add_argument("--family", required=True,
                   help="a family the model was trained on: NSynth's (e.g. keyboard) or an imported class")
    p.add_argument("--n", type=int, default=4, help="how many clips (default: 4)")
    p.add_argument("--out", required=True, help="folder for the wavs and request.json")
    p.add_argument("--cfg", type=float, default=None, help="guidance strength (default: the model's config)")
    p.add_argument("--guidance", choices=("joint", "family"), default=None,
                   help="guide toward (pitch, family) vs neither, or toward the family alone "
                        "(needs a model trained with ar.family_dropout; default: the model's config)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0, help="keep the k most likely tokens (0 = off)")
    p.add_argument("--top-p", type=float, default=0.0, help="nucleus sampling mass (0 = off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu (default) or cuda")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("evaluate", help="generate, embed and score every system against held-out audio")
    _add_common(p)
    p.add_argument("--run", help="run folder with tokenizer/, ar/, classifier/ ... (default: runs/<profile>)")
    p.add_argument("--data-dir", help="dataset folder (default: the profile's data.root)")
    p.add_argument("--systems", nargs="*", default=None,
                   help="rows to (re)score (default: all whose checkpoints exist): " + " ".join(EVALUATE_ROWS))
    p.add_argument("--train-classifier", action="store_true",
                   help="train (or resume) <run>/classifier first if it is missing or unfinished")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("report", help="write the reproduction report from an evaluated run")
    p.add_argument("--run", required=True, help="evaluated run folder (e.g. runs/course)")
    p.add_argument("--out", help="report folder (default: reports/, or <run>/report for smoke)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("reproduce", help="render the data, execute every notebook, write the report")
    _add_common(p)
    p.add_argument("--out", help="run folder (default: runs/<profile>)")
    p.add_argument("--data-dir", help="dataset folder (default: the profile's data.root)")
    p.add_argument("--notebooks", nargs="*",
                   help="only these notebook numbers, e.g. 01 03 (default: 01-05; 06, the paper's comparison "
                        "systems, runs when named: --notebooks 06)")
    p.add_argument("--exercises", action="store_true",
                   help="also run the exercises' worked solutions and checks (minutes per notebook in course; "
                        "by default they are left unexecuted)")
    p.set_defaults(func=cmd_reproduce)

    runs = sub.add_parser("run", help="hand out a trained run: export it to a bundle, import it elsewhere"
                          ).add_subparsers(dest="run_command", required=True)
    p = runs.add_parser("export", help="pack a run's trained models and evaluation into a .tar.gz",
                        description="Pack the newest checkpoint of every model in RUN_DIR, its evaluation "
                                    "and a MANIFEST.json (profile, fingerprints, sha256 of every file) "
                                    "into BUNDLE.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="trained run folder, e.g. runs/course")
    p.add_argument("bundle", metavar="BUNDLE", help="the .tar.gz to write, e.g. course.tar.gz")
    p.add_argument("--with-notebooks", action="store_true",
                   help="also carry each notebook's outputs (NN_name/: results.json, figures) and the "
                        "executed notebooks (notebooks/)")
    p.set_defaults(func=cmd_run_export)
    p = runs.add_parser("import", help="check a bundle, then unpack it into a run folder",
                        description="Check BUNDLE (manifest, sha256 of every file, paths, checkpoint "
                                    "fingerprints, profile) and unpack it into RUN_DIR; nothing is written "
                                    "if any check fails.  Then `fit_*(..., resume=True)` in the notebooks "
                                    "loads these models instead of training them.")
    p.add_argument("bundle", metavar="BUNDLE", help="a bundle written by `mars run export`")
    p.add_argument("run_dir", metavar="RUN_DIR", help="run folder to fill, e.g. runs/course (the notebooks' out_dir)")
    p.add_argument("--profile", choices=tuple(PROFILES), default=None,
                   help="refuse a bundle trained for another profile (default: accept the bundle's)")
    p.add_argument("--force", action="store_true",
                   help="replace checkpoints in RUN_DIR that differ from the bundle's (default: refuse)")
    p.set_defaults(func=cmd_run_import)

    lab = sub.add_parser("lab", help="the notebooks' exercises: list them, write the student edition"
                         ).add_subparsers(dest="lab_command", required=True)
    p = lab.add_parser("list", help="every exercise: id, title and its notebook")
    p.set_defaults(func=cmd_lab_list)
    p = lab.add_parser("student", help="write the notebooks without their worked solutions")
    p.add_argument("--out", required=True, help="folder for the student edition (.ipynb + .py per notebook)")
    p.set_defaults(func=cmd_lab_student)
    return parser


def _one_line(err: BaseException) -> str:
    """An error's message on one line; an OSError as ``what: file`` without the errno noise."""
    if isinstance(err, OSError) and err.strerror:
        msg = err.strerror + "".join(f": {f}" for f in (err.filename, err.filename2) if f is not None)
    else:
        msg = str(err) or type(err).__name__
    return " ".join(msg.split())


def main(argv: list[str] | None = None) -> int:
    from safetensors import SafetensorError

    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    # What bad input, files or disks cause (ConfigError, DatasetError, AudioError and
    # CheckpointError are ValueErrors; json's errors too): one line, no traceback.
    # Anything else is a bug, and its traceback is what a bug report needs.
    except (ValueError, OSError, RuntimeError, SafetensorError) as err:
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
