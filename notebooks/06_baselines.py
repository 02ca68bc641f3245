# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · The paper's comparison systems: DDSP, DiffWave, the NSynth WaveNet autoencoder
#
# **Question.** MARS (Ristori, Bindini, Frasconi, arXiv 2509.26007) says it is
# *competitive with or better than* **DiffWave**, **DDSP** and **NSynth** on NSynth, by
# NDB/k, PKID, IKID, PIS, IIS, MSE, MAE and FAD, the systems and metrics of Vinay & Lerch,
# "Evaluating Generative Audio Systems and Their Metrics" (ISMIR 2022). Trained on the same
# notes and judged by the same evaluation as MARS (notebook 04), where does MARS stand?
#
# The three systems make sound in three different ways, and none of them through a
# spectrogram and Griffin-Lim as MARS does:
#
# | system | what it models | what it needs to make a note |
# |---|---|---|
# | **DDSP** (Engel et al. 2020) | a synthesiser's *controls*: harmonic amplitudes and a noise filter, frame by frame | f0, loudness, a condition |
# | **DiffWave** (Kong et al. 2021) | the *waveform*, denoised from Gaussian noise in a few steps | here a spectrogram: a vocoder |
# | **NSynth WaveNet AE** (Engel et al. 2017) | the *waveform*, one 8-bit sample at a time | a learned embedding and a pitch |
#
# Each is a short module of `marslib.baselines`, written from its paper, trained by the
# same training loop as MARS (checkpoints, resume, progress) on the waveforms of the same
# train split. Each is used two ways:
#
# * **resynthesis**: a held-out note through the system and back, the row beside the MARS
#   tokenizer's reconstruction: what the system *can represent*;
# * **generation**: a note for a requested (pitch, family), the row beside MARS's own
#   generations. DDSP and the WaveNet autoencoder need more than a label to make a note
#   (a loudness curve, an embedding); both take it from a *training* note of the requested
#   family at the nearest pitch, the same note the evaluation's floor row plays. DiffWave
#   here is a vocoder and is compared by resynthesis only (§4 says why).
#
# This notebook:
#
# 1. trains (or loads) the three systems and MARS, and says what budget each got;
# 2. looks inside each system: one figure and its key code;
# 3. reads the training curves, against the weights training started from;
# 4. scores every row with the evaluation of notebook 04 and sets them side by side;
# 5. shows and plays the same conditions from every system;
# 6. answers the paper's claim, metric by metric, and says what our budget means.

# %% [markdown]
# **Profile.** Every notebook runs at one of three sizes: `smoke` (seconds; barely
# trained, what CI runs), `course` (what a laptop's CPU does in about an hour) and
# `paper` (the paper's sizes, for a GPU). The cell below takes the profile from the
# environment variable `MARS_PROFILE`, `smoke` when it is unset: start Jupyter with
# `MARS_PROFILE=course make lab`, or edit the cell. Checkpoints, figures and
# `results.json` go to the run folder `runs/<profile>/` unless `out_dir` is set. The
# next cell (imports, then `setup_run`) prints the profile, the run folder and, for each
# model this notebook needs, whether it will load it (seconds) or train it, and for
# about how many minutes.

# %% tags=["parameters"]
import os

profile = os.environ.get("MARS_PROFILE", "smoke")  # "smoke", "course" or "paper": see above
seed = 0
device = "cpu"
data_dir = ""
out_dir = ""
overrides = "{}"  # config overrides, a JSON object: '{"ddsp.train.steps": 500}'

# %%
import inspect
import json
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Audio, Markdown, display

from marslib.audio import waveform_to_input
from marslib.autoregressor.training import fit_ar
from marslib.baselines import BASELINES, fit_baseline, model_class
from marslib.config import get_config
from marslib.data import wave_store
from marslib.evaluate import (BASELINE_ROWS, COLUMNS, ClipSet, baseline_clips, evaluate, fresh_rows, make_clips,
                              metric_cell, test_clips)
from marslib.metrics import fit_classifier
from marslib.plotting import FigureSaver, plot_spectrogram
from marslib.report import COMPARISON, PAPER_METRICS, comparison_directions
from marslib.runtime import initial_model, run_record, setup_run
from marslib.tokenizer.training import fit_tokenizer
from marslib.train import evaluate as mean_losses  # mean of each training loss term

cfg, out = setup_run("06_baselines", profile, seed, device, data_dir, out_dir, overrides)
FAMILIES = cfg.data.family_vocabulary
run = out.parent  # the run folder: tokenizer/, ar/, classifier/ (notebooks 02-04), ddsp/, diffwave/, wavenet_ae/
a = cfg.audio
sr = a.sample_rate
save = FigureSaver(out)
figures = save.names
SYSTEMS = list(BASELINES)  # ddsp, diffwave, wavenet_ae
NAMES = {name: label for name, (_, _, label) in BASELINES.items()}  # DDSP, DiffWave, NSynth WaveNet AE
print(f"profile {cfg.profile!r}: {a.clip_seconds:.2f} s clips at {sr} Hz; run folder {run}")

# %% [markdown]
# ## 1. Train (or load) every system
#
# `fit_baseline(name, cfg, folder, resume=True)` is the same idempotent call as
# `fit_tokenizer` and `fit_ar`: a finished checkpoint is loaded, an interrupted one
# continued, a missing one trained. Each system reads its own config section
# (`cfg.ddsp`, `cfg.diffwave`, `cfg.wavenet_ae`) and its schedule from it (`.train`);
# the waves come from `wave_store`, an on-disk store of the split's clips, built once.
# MARS and the judge come from notebooks 02–04 (trained here if missing).

# %%
print(inspect.getsource(fit_baseline))

# %%
t0 = time.perf_counter()
fit_tokenizer(cfg, run / "tokenizer", resume=True)
fit_ar(cfg, run, resume=True)
fit_classifier(cfg, run / "classifier", resume=True)
mars_seconds = time.perf_counter() - t0
models, fit_seconds = {}, {}
for name in SYSTEMS:
    t0 = time.perf_counter()
    models[name], _ = fit_baseline(name, cfg, run / name, resume=True)
    fit_seconds[name] = time.perf_counter() - t0
    print(f"{NAMES[name]:>18}: ready in {fit_seconds[name]:.0f} s")
print(f"MARS and the judge ready in {mars_seconds:.0f} s")

budgets = {}
for name, model in models.items():
    tcfg = getattr(cfg, name).train
    paper_model = initial_model(lambda: model_class(name)(get_config("paper")), 0)  # never trained: for its size
    budgets[name] = {"steps": tcfg.steps, "batch_size": tcfg.batch_size,
                     "parameters": sum(p.numel() for p in model.parameters()),
                     "paper_parameters": sum(p.numel() for p in paper_model.parameters()),
                     "seconds_here": round(fit_seconds[name], 1)}
    del paper_model
    b = budgets[name]
    print(f"{NAMES[name]:>18}: {b['parameters'] / 1e6:6.2f} M parameters (published size: "
          f"{b['paper_parameters'] / 1e6:6.1f} M), {b['steps']} steps of {b['batch_size']} clips")

# %% [markdown]
# ## 2. Inside each system
#
# One held-out note, through each system, and the code that is the system's idea.
#
# ### 2.1 DDSP: a synthesiser with learned controls
#
# DDSP never outputs a sample directly. Its decoder reads, frame by frame, the note's f0
# (here from the label), its loudness and a latent `z` (30 MFCCs through a GRU) plus the
# family, and outputs the *controls* of a fixed synthesiser: how loud the harmonic
# partials are overall, how that loudness is shared among the partials, and the
# magnitude response of a filter applied to white noise. The synthesiser is exact
# physics: sinusoids at integer multiples of f0 (so the pitch cannot be wrong), and
# noise filtered frame by frame. The loss compares spectra at six FFT sizes, so no
# phase has to match.

# %%
from marslib.baselines import ddsp as ddsp_module  # noqa: E402  (the module, for its source)

print(inspect.getsource(ddsp_module.harmonic_synth))
print(inspect.getsource(ddsp_module.DDSP.controls))

# %%
test = test_clips(cfg)
k = len(test.waves) // 2  # one held-out note
wave_1S = torch.from_numpy(test.waves[k:k + 1])
pitch_1, family_1 = torch.tensor(test.pitch[k:k + 1]), torch.tensor(test.family[k:k + 1])
ddsp = models["ddsp"]
with torch.no_grad():
    ld = ddsp._loudness(wave_1S)
    f0, harm, noise_mags = ddsp.controls(pitch_1, family_1, ld, ddsp._z(wave_1S))
    resynth = ddsp.resynthesise(wave_1S, pitch_1, family_1, seed=seed)
fig, axes = plt.subplots(1, 4, figsize=(16, 3.2))
plot_spectrogram(axes[0], waveform_to_input(wave_1S, a)[0, 0], a, title=f"real: {FAMILIES[family_1]} {int(pitch_1)}")
axes[1].imshow(harm[0].T.clamp_min(1e-5).log10(), origin="lower", aspect="auto", cmap="magma")
axes[1].set(title="harmonic amplitudes (log10)", xlabel="frame", ylabel="harmonic k")
axes[2].imshow(noise_mags[0].T.clamp_min(1e-5).log10(), origin="lower", aspect="auto", cmap="magma")
axes[2].set(title="noise filter magnitudes (log10)", xlabel="frame", ylabel="band")
plot_spectrogram(axes[3], waveform_to_input(resynth, a)[0, 0], a, title="DDSP resynthesis")
fig.tight_layout()
save(fig, "ddsp_controls")
plt.show()
display(Audio(wave_1S[0].numpy(), rate=sr), Audio(resynth[0].numpy(), rate=sr, normalize=False))

# %% [markdown]
# ### 2.2 DiffWave: a waveform denoised from noise
#
# DiffWave learns to predict the noise in a corrupted waveform $x_t = \sqrt{\bar\alpha_t}\,x_0
# + \sqrt{1 - \bar\alpha_t}\,\epsilon$, given the step $t$ and a condition: here our
# log-magnitude spectrogram, so DiffWave is a *vocoder*, the learned counterpart of
# Griffin-Lim. Sampling starts from pure noise and removes it step by step; the paper's
# fast schedule takes 6 steps instead of the 50 it was trained with, each placed on the
# training schedule where its noise level $\bar\alpha$ matches.

# %%
dw = models["diffwave"]
print(inspect.getsource(dw.vocode))
betas, steps = dw.schedule(fast=True)
full_abar = dw.alpha_bar.cpu().numpy()
with torch.no_grad():
    vocoded = dw.resynthesise(wave_1S, pitch_1, family_1, seed=seed)
fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
axes[0].plot(np.sqrt(1 - full_abar), label=f"training ({len(full_abar)} steps)")
axes[0].plot(steps, np.sqrt(1 - np.cumprod(1 - betas)), "o", label=f"fast sampling ({len(betas)} steps)")
axes[0].set(title="noise level per step", xlabel="training step t", ylabel="noise std $\\sqrt{1-\\bar\\alpha_t}$")
axes[0].legend(fontsize=8)
plot_spectrogram(axes[1], waveform_to_input(wave_1S, a)[0, 0], a, title="the condition (real note)")
plot_spectrogram(axes[2], waveform_to_input(vocoded, a)[0, 0], a, title="DiffWave, 6 fast steps")
fig.tight_layout()
save(fig, "diffwave_schedule")
plt.show()
display(Audio(vocoded[0].numpy(), rate=sr, normalize=False))

# %% [markdown]
# ### 2.3 The NSynth WaveNet autoencoder: one sample at a time
#
# An encoder squeezes the note into a slow embedding (16 channels, one frame per 512
# samples, 32 ms); a causal WaveNet decoder then rebuilds the waveform one 8-bit mu-law
# sample at a time, each conditioned on every sample before it, on the embedding and on
# the pitch. Sampling 1 s is 16,384 sequential steps: the "Fast WaveNet" queues below keep
# each step to one small matrix product per layer, yet it remains the slowest system here.

# %%
wn = models["wavenet_ae"]
print(inspect.getsource(wn._decode))
with torch.no_grad():
    z = wn.encode(wave_1S)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
im = axes[0].imshow(z[0].numpy(), origin="lower", aspect="auto", cmap="coolwarm")
axes[0].set(title=f"embedding: {z.shape[1]} channels x {z.shape[2]} frames", xlabel="frame (512 samples)",
            ylabel="channel")
fig.colorbar(im, ax=axes[0])
plot_spectrogram(axes[1], waveform_to_input(wave_1S, a)[0, 0], a, title="the note it encodes")
fig.tight_layout()
save(fig, "wavenet_embedding")
plt.show()

# %% [markdown]
# ## 3. Did each system learn?
#
# Each training loss, on the validation notes, for the trained weights and for the
# weights training started from (same seed, no step taken: `initial_model`). The losses
# differ per system (a spectral distance for DDSP, the noise-prediction error for
# DiffWave, the next sample's cross-entropy in nats for the WaveNet), so each is compared
# with itself only.

# %%
learning = {}
valid = wave_store(cfg, "valid")
fig, axes = plt.subplots(1, len(SYSTEMS), figsize=(4.2 * len(SYSTEMS), 3.2))
for ax, name in zip(axes, SYSTEMS):
    history = json.loads((run / name / "history.json").read_text())
    untrained = initial_model(lambda: model_class(name)(cfg), cfg.seed).to(cfg.device)
    torch.manual_seed(cfg.seed)  # the losses draw crops and noise: the same draws for both
    before = mean_losses(untrained, valid, getattr(cfg, name).train.batch_size, torch.device(cfg.device))["loss"]
    torch.manual_seed(cfg.seed)
    after = mean_losses(models[name], valid, getattr(cfg, name).train.batch_size, torch.device(cfg.device))["loss"]
    learning[name] = {"valid_loss": after, "valid_loss_untrained": before}
    steps = [h["step"] for h in history["train"]]
    ax.plot(steps, [h["loss"] for h in history["train"]], lw=0.8, alpha=0.6, label="train")
    ax.plot([h["step"] for h in history["valid"]], [h["loss"] for h in history["valid"]], "o-", label="valid")
    ax.axhline(before, color="grey", ls=":", label="untrained (valid)")
    ax.set(title=NAMES[name], xlabel="step", ylabel="loss")
    ax.legend(fontsize=8)
    print(f"{NAMES[name]:>18}: valid loss {before:.4g} untrained -> {after:.4g} trained")
    del untrained
fig.tight_layout()
save(fig, "training_curves")
plt.show()

# %% [markdown]
# ## 4. Every row, the same judge
#
# `evaluate(cfg, run, systems=...)` scores the comparison systems' rows exactly as
# notebook 04 scored MARS: the same held-out conditions, the same classifier and CREPE
# network, the same bootstrap intervals, and merges them into
# `run/evaluation/metrics.json`. A resynthesis row starts from the held-out note itself;
# a generated row from its condition only:

# %%
print(inspect.getsource(baseline_clips))
print("row -> (system, use):", BASELINE_ROWS)

# %%
t0 = time.perf_counter()
others = ["real_train", "griffin_lim", "tokenizer", "mars"]  # scored by notebook 04 unless stale or missing
fresh = fresh_rows(cfg, run)
results = evaluate(cfg, run, systems=[s for s in others if s not in fresh] + list(BASELINE_ROWS))
eval_seconds = time.perf_counter() - t0
rows = results["rows"]
SHOWN = ("fd_crepe", "pkid", "ikid", "pis", "iis", "ndb_k", "mse", "mae", "pitch_acc_crepe", "classifier_family_acc")
table = ["| system | " + " | ".join(COLUMNS[k][0] for k in SHOWN) + " |", "|---" * (len(SHOWN) + 1) + "|"]
for name, row in rows.items():
    if name in others or name in BASELINE_ROWS:
        table.append(f"| {row['label']} | " + " | ".join(metric_cell(row, k) for k in SHOWN) + " |")
display(Markdown("\n".join(table)))
print(f"scored {len(others) + len(BASELINE_ROWS)} rows in {eval_seconds:.0f} s")

# %% [markdown]
# Read the table in two halves. **Resynthesis** (DDSP, DiffWave, WaveNet AE
# resynthesis beside the MARS tokenizer): each system was handed the held-out note, so
# MSE / MAE compare it with that very note, and pitch and family accuracy say what
# survives the trip. **Generation** (MARS, DDSP and the WaveNet AE generated): only the
# condition was given, so the distribution distances (FD, KID, NDB/k) and the
# conditioning accuracies are the ones that matter; MSE / MAE against one held-out note
# mostly measure how alike two notes of one condition are.

# %% [markdown]
# ## 5. The same conditions, from every system
#
# Four held-out conditions, spread over the families: the real note, MARS's note, and
# each comparison system's.

# %%
picked = np.unique(np.linspace(0, len(test.waves) - 1, 4).round().astype(int))
few = ClipSet("real_test", test.waves[picked], test.pitch[picked], test.family[picked])  # the four conditions
show = {"real": few.waves}
for name in ["mars", *BASELINE_ROWS]:
    show[name] = make_clips(name, cfg, run, few).waves
labels = {"real": "real (held out)", **{k: rows[k]["label"].replace(" resynthesis", "\nresynthesis").replace(", ", ",\n")
                                        for k in show if k != "real"}}
fig, axes = plt.subplots(len(picked), len(show), figsize=(2.1 * len(show), 1.9 * len(picked)), squeeze=False,
                         sharex=True, sharey=True)
for j, (name, waves) in enumerate(show.items()):
    spec = waveform_to_input(torch.from_numpy(np.ascontiguousarray(waves)), a)[:, 0]
    for i in range(len(picked)):
        im = plot_spectrogram(axes[i, j], spec[i], a, title=labels[name] if i == 0 else "", colorbar=False)
        axes[i, j].set(xlabel="time (s)" if i == len(picked) - 1 else "",
                       ylabel=f"{FAMILIES[few.family[i]]}, MIDI {few.pitch[i]}\nHz" if j == 0 else "")
        axes[i, j].title.set_fontsize(8)
fig.colorbar(im, ax=axes, label="normalised log-magnitude", shrink=0.6)
save(fig, "systems_spectrograms")
plt.show()

# %%
for i in range(2):
    display(Markdown(f"**{FAMILIES[few.family[i]]}, MIDI {few.pitch[i]}**"))
    for name, waves in show.items():
        display(Markdown(labels[name]), Audio(waves[i], rate=sr, normalize=False))

# %% [markdown]
# ## 6. The paper's claim, metric by metric
#
# "Competitive with or better than DiffWave, DDSP and NSynth." For each system, MARS's
# generated notes against the system's generated notes on the paper's eight metrics
# (FAD: our FD on CREPE embeddings, notebook 04); DiffWave, a vocoder here, by
# resynthesis: the MARS tokenizer's reconstructions against DiffWave's, of the same
# held-out notes. "Within noise" where both rows carry 95 % intervals and they overlap.

# %%
print(inspect.getsource(comparison_directions))
claims = comparison_directions(rows)
directions = {}
for name, what, text in claims:
    print(f"vs {name} ({what}): {text}")
for generated, resynth, label in COMPARISON:
    ours, theirs = ("mars", generated) if generated in rows else ("tokenizer", resynth)
    if theirs in rows:
        directions[label] = {m: rows[ours]["metrics"][k] - rows[theirs]["metrics"][k] for m, k in PAPER_METRICS.items()}

# %% [markdown]
# ## 7. What our budget means for each system
#
# Every number above comes from models far smaller, and trained far shorter, than the
# published ones (the table below computes both sizes from the `paper` profile, which
# holds each system's published size). What that costs differs per system:
#
# * **DDSP** is the cheapest to train: its synthesiser is fixed, exactly harmonic and
#   given the note's f0, so pitch is right by construction and the network only learns
#   a spectral envelope per frame. Its weakness is in what the synthesiser cannot make:
#   inharmonic partials (mallets, bells) and attacks sharper than a frame.
# * **DiffWave** must learn the waveform's fine structure from noise. After a few
#   minutes of CPU training (1,200 steps in `course`; the published vocoder trains for a
#   million) it has learned where the note's energy lies but not its waveform: what it
#   resynthesises is noise shaped like the spectrogram, with no pitch for CREPE to find,
#   through the fast schedule and the full 50-step chain alike
#   (`benchmarks/diffwave_diagnosis.py`, `docs/baselines.md`). A vocoder's quality is
#   also bounded by the spectrogram it is given (the same log-magnitude MARS uses).
# * **The WaveNet autoencoder** is the most expensive: a sample-level autoregressive
#   decoder needs hundreds of thousands of steps to sound clean, and its sampling is
#   sequential, one sample at a time, which is what MARS's scale-wise generation avoids.

# %%
budget_rows = ["| system | parameters | published size | steps × clips | trained or loaded here |",
               "|---|---:|---:|---:|---:|"]
for name, b in budgets.items():
    budget_rows.append(f"| {NAMES[name]} | {b['parameters'] / 1e6:.2f} M | {b['paper_parameters'] / 1e6:.1f} M | "
                       f"{b['steps']} × {b['batch_size']} | {b['seconds_here']:.0f} s |")
display(Markdown("\n".join(budget_rows)))

# %% [markdown]
# Everything measured goes to `results.json` beside the figures; `mars report` puts
# the comparison rows and the claim's row into `reports/REPORT.md`.

# %%
headline = ("classifier_family_acc", "pitch_acc_crepe", "fd_crepe")
results_json = {
    "profile": cfg.profile, "seed": cfg.seed, "figures": figures,
    "budgets": budgets, "learning": learning,
    "rows": {name: {k: rows[name]["metrics"][k] for k in (*PAPER_METRICS.values(), *headline, "lsd_db")}
             for name in rows if name in BASELINE_ROWS or name in others},
    "claims": [{"system": name, "compared": what, "directions": text} for name, what, text in claims],
    "mars_minus_system": directions,
    "eval_seconds": round(eval_seconds, 1),
    "run": run_record(cfg, overrides),
}
(out / "results.json").write_text(json.dumps(results_json, indent=2, allow_nan=False))
assert all((out / f).exists() for f in figures)
print(json.dumps({k: results_json[k] for k in ("learning", "claims")}, indent=1))

# %% [markdown]
# ## Summary
#
# - DDSP, DiffWave and the NSynth WaveNet autoencoder, written from their papers, trained
#   by the same loop on the same notes and judged by the same evaluation as MARS.
# - Resynthesis says what each can represent; generation, what each makes from a
#   condition. DDSP and the WaveNet AE borrow a training note's loudness or embedding to
#   generate; MARS needs only the label.
# - §6 gives the paper's claim our measured direction per metric; §7 says how far our
#   budget is from the published one, and why it hurts the sample-level models most.

# %% [markdown]
# ## Exercises
#
# Each exercise below sets one answer variable, `ex06_k`, and a check cell tells you
# whether it is right (and, if not, what to look at). They use the systems trained
# above (`models`), the held-out notes (`test`) and the judge of notebook 04; none
# trains anything.

# %%
from marslib import lab  # noqa: E402  (the exercises' checks)

# %% [markdown]
# ### Exercise 1 · DDSP without noise
#
# Zero the noise branch of the trained DDSP at synthesis time: call
# `ddsp.synthesise(pitch, family, ddsp._loudness(waves), torch.zeros_like(waves), ddsp._z(waves))`
# (silent noise in, so the filtered noise is silent too; clamp to [-1, 1] as `_render`
# does) and compare it with `ddsp.resynthesise(waves, pitch, family, seed=seed)` for
# four held-out notes of a breathy family (flute or reed; any four notes if the test
# split has none). Measure, on the STFT magnitudes `magnitude_spectrogram(w, a)` (from
# `marslib.audio`):
#
# * the energy (sum of squared magnitudes) of the noiseless resynthesis over that of the normal one;
# * the LSD of each to the real notes (`marslib.metrics.log_spectral_distance`, averaged).
#
# Look at the spectrograms: what does the noiseless one lose?
#
# Set `ex06_1 = {"notes": [4 test indices], "energy_kept_without_noise": ...,
# "lsd_with_noise": ..., "lsd_without_noise": ..., "lost": "between_harmonics" or
# "harmonics" or "pitch"}`.
#
# *Hint:* the space between the harmonics.
#
# *Cost: a few seconds on 2 CPU cores (course); no training.*

# %% tags=["solution"]
from marslib.audio import magnitude_spectrogram  # noqa: E402
from marslib.metrics import log_spectral_distance  # noqa: E402

breathy = [i for i, f in enumerate(test.family) if FAMILIES[f] in ("flute", "reed")][:4] or list(range(4))
b_waves = torch.from_numpy(test.waves[breathy])
b_pitch, b_family = torch.as_tensor(test.pitch[breathy]), torch.as_tensor(test.family[breathy])
with torch.no_grad():
    with_noise = ddsp.resynthesise(b_waves, b_pitch, b_family, seed=seed)
    no_noise = ddsp.synthesise(b_pitch, b_family, ddsp._loudness(b_waves), torch.zeros_like(b_waves),
                               ddsp._z(b_waves)).clamp(-1.0, 1.0)
mags = {name: magnitude_spectrogram(w, a) for name, w in (("real", b_waves), ("with noise", with_noise),
                                                           ("without noise", no_noise))}
lsd_noise = {name: float(log_spectral_distance(mags["real"], mags[name]).mean()) for name in ("with noise", "without noise")}
fig, axes = plt.subplots(1, 3, figsize=(13, 3.2), layout="constrained")
for ax, (name, w) in zip(axes, (("real", b_waves), ("with noise", with_noise), ("without noise", no_noise))):
    plot_spectrogram(ax, waveform_to_input(w[:1], a)[0, 0], a, colorbar=False,
                     title=f"{name}: {FAMILIES[b_family[0]]} {int(b_pitch[0])}"
                     + (f", LSD {lsd_noise[name]:.1f} dB" if name in lsd_noise else ""))
plt.show()
display(Audio(with_noise[0].numpy(), rate=sr, normalize=False), Audio(no_noise[0].numpy(), rate=sr, normalize=False))
ex06_1 = {"notes": breathy,
          "energy_kept_without_noise": float(mags["without noise"].double().pow(2).sum()
                                             / mags["with noise"].double().pow(2).sum()),
          "lsd_with_noise": lsd_noise["with noise"], "lsd_without_noise": lsd_noise["without noise"],
          "lost": "between_harmonics"}
print(json.dumps(ex06_1, indent=1))

# %% [markdown] tags=["solution"]
# The harmonic synthesiser alone plays only partials at $k \cdot f_0$: the pitch and
# the harmonics survive untouched, and the valleys between them go silent (dark
# stripes between the partials, and the breath of the attack). How much that costs
# in LSD depends on how much noise the decoder learned to ask for; a breathy family
# is where it should matter most.

# %%
lab.check("06.1", ex06_1, ddsp=ddsp, test=test, cfg=cfg, seed=seed)

# %% [markdown]
# ### Exercise 2 · Fewer diffusion steps
#
# DiffWave's fast sampler (`dw.vocode`, printed in §2.2) walks 6 noise levels, the
# largest first. Run the same loop over only the **last 3** (the 3 smallest: start from
# pure noise at index `n = 2` of `dw.schedule(fast=True)` and go down to 0, with the same
# seeded noise as `vocode`), and with all 6 (`dw.vocode`), for four held-out notes
# (their spectrogram: `dw.spectrogram(waves)`). Listen, and measure the LSD of each to
# the real notes (on `magnitude_spectrogram`, as in exercise 1).
#
# Set `ex06_2 = {"notes": [4 test indices], "lsd_all_steps": ..., "lsd_last_3_steps": ...,
# "fewer_steps_worse": True or False}`.
#
# *Hint:* the large noise levels come first; dropping them hands pure noise to a step
# that expects an almost clean signal, so the remaining steps cannot remove it all.
#
# *Cost: ≈ 20 seconds on 2 CPU cores (course); no training.*

# %% tags=["solution"]
import math  # noqa: E402

from marslib.baselines.common import seeded_noise  # noqa: E402


@torch.no_grad()
def vocode_from(spec_BFT, pitch_B, family_B, keep, seed=0):
    """dw.vocode's reverse chain over the `keep` smallest of the fast noise levels."""
    betas, train_step = dw.schedule(fast=True)  # noise level n is fed to the denoiser as step train_step[n]
    abar = np.cumprod(1 - betas)
    shape = (spec_BFT.shape[0], spec_BFT.shape[-1] * dw.hop)
    x, cond = seeded_noise(shape, seed), dw.upsample_spec(spec_BFT)
    for n in range(keep - 1, -1, -1):
        eps = dw.denoise(x, torch.full((shape[0],), float(train_step[n])), cond, pitch_B, family_B)
        x = (x - betas[n] / math.sqrt(1 - abar[n]) * eps) / math.sqrt(1 - betas[n])
        if n > 0:
            x = x + math.sqrt((1 - abar[n - 1]) / (1 - abar[n]) * betas[n]) * seeded_noise(shape, seed * 1000 + n)
        x = x.clamp(-1.0, 1.0)
    return x


four = list(picked)  # the four conditions of §5
f_waves = torch.from_numpy(test.waves[four])
f_pitch, f_family = torch.as_tensor(test.pitch[four]), torch.as_tensor(test.family[four])
f_spec = dw.spectrogram(f_waves)
by_steps = {6: dw.vocode(f_spec, f_pitch, f_family, seed=seed), 3: vocode_from(f_spec, f_pitch, f_family, 3, seed)}
assert torch.allclose(vocode_from(f_spec, f_pitch, f_family, 6, seed), by_steps[6])  # the same chain as vocode
lsd_steps = {k: float(log_spectral_distance(magnitude_spectrogram(f_waves, a), magnitude_spectrogram(w, a)).mean())
             for k, w in by_steps.items()}
for k, w in by_steps.items():
    print(f"{k} steps: LSD {lsd_steps[k]:.2f} dB")
    display(Audio(w[0].numpy(), rate=sr, normalize=False))
ex06_2 = {"notes": [int(i) for i in four], "lsd_all_steps": lsd_steps[6], "lsd_last_3_steps": lsd_steps[3],
          "fewer_steps_worse": lsd_steps[3] > lsd_steps[6]}

# %% [markdown] tags=["solution"]
# The chain's first steps remove most of the noise (β = 0.5, 0.2, 0.05 of the fast
# schedule); started at the third-smallest level, the sampler treats unit-variance noise
# as an almost clean signal and leaves most of it in: louder noise in the clip. A trained
# DiffWave (course) shows it clearly; the smoke model barely denoises at all, so there
# the two may differ little.

# %%
lab.check("06.2", ex06_2, dw=dw, test=test, cfg=cfg, seed=seed)

# %% [markdown]
# ### Exercise 3 · Swap the embedding
#
# Encode a keyboard note and a flute note of the held-out split with the WaveNet
# autoencoder (`wn.encode`; any two notes that differ in pitch *and* family if there is
# no such pair), swap their embeddings (`z.flip(0)`) and decode each with its *own*
# pitch: `wn.decode(z.flip(0), pitch, seed=seed)`, then `mu_law_decode(q,
# cfg.wavenet_ae.quantization)` (from `marslib.baselines.common`). Ask the judge of
# notebook 04 (`load_classifier(run / "classifier", cfg)` and `classify_waveforms` from
# `marslib.metrics.classifier`) which pitch (argmax of `pitch_probs`, a MIDI number) and
# which family (argmax of `family_probs`, named by `FAMILIES`) it hears in each decode.
# Which attributes follow the pitch condition, and which the embedding?
#
# Set `ex06_3 = {"pair": [i, j], "waves": <the two decodes, (2, S)>, "predicted_pitch":
# [..], "predicted_family": [..], "pitch_follows": ..., "family_follows": ...}`, each
# "follows" being `"condition"` (the judge's label matches the note whose pitch was
# used more often than the note whose embedding was used), `"embedding"` (the other
# way round) or `"neither"`.
#
# *Cost: ≈ 30 seconds on 2 CPU cores (course): the WaveNet samples 16,384 steps one after another; no training.*

# %% tags=["solution"]
from marslib.baselines.common import mu_law_decode  # noqa: E402
from marslib.metrics.classifier import classify_waveforms, load_classifier  # noqa: E402

names_test = [FAMILIES[f] for f in test.family]
keyboards = [i for i, n in enumerate(names_test) if n == "keyboard"]
flutes = [i for i, n in enumerate(names_test) if n == "flute"]
pair = [keyboards[0], flutes[0]] if keyboards and flutes else next(
    [i, j] for i in range(len(test.waves)) for j in range(i + 1, len(test.waves))
    if test.pitch[i] != test.pitch[j] and test.family[i] != test.family[j])
swap_pitch = torch.as_tensor(test.pitch[pair])
t0 = time.perf_counter()
with torch.no_grad():
    z_pair = wn.encode(torch.from_numpy(test.waves[pair]))
    swapped = mu_law_decode(wn.decode(z_pair.flip(0), swap_pitch, seed=seed), cfg.wavenet_ae.quantization)
judge = classify_waveforms(load_classifier(run / "classifier", cfg), swapped, cfg)
heard_pitch = judge["pitch_probs"].argmax(1).tolist()
heard_family = [FAMILIES[f] for f in judge["family_probs"].argmax(1)]
for k, (own, other) in enumerate((pair, pair[::-1])):
    print(f"decode {k}: pitch of note {own} ({names_test[own]} {int(test.pitch[own])}), embedding of note {other} "
          f"({names_test[other]} {int(test.pitch[other])}) -> the judge hears {heard_family[k]} {heard_pitch[k]}")
    display(Audio(swapped[k].numpy(), rate=sr, normalize=False))
print(f"decoded in {time.perf_counter() - t0:.0f} s")


def follows(heard, own, other):
    hits_own, hits_other = sum(h == o for h, o in zip(heard, own)), sum(h == o for h, o in zip(heard, other))
    return "condition" if hits_own > hits_other else "embedding" if hits_other > hits_own else "neither"


ex06_3 = {"pair": pair, "waves": swapped.numpy(), "predicted_pitch": heard_pitch, "predicted_family": heard_family,
          "pitch_follows": follows(heard_pitch, [int(test.pitch[i]) for i in pair],
                                   [int(test.pitch[i]) for i in pair[::-1]]),
          "family_follows": follows(heard_family, [names_test[i] for i in pair], [names_test[i] for i in pair[::-1]])}
print({k: v for k, v in ex06_3.items() if k != "waves"})

# %% [markdown] tags=["solution"]
# The decoder is told the pitch at every layer, while the embedding carries the rest of
# the note: its envelope, its brightness, what makes it a flute. A well-trained NSynth
# autoencoder follows the pitch condition for pitch and the embedding for timbre (the
# paper's "timbre transfer" by swapping embeddings). With our small budget the judge
# may hear neither: the decodes are noisy, and "neither" is then the honest answer.

# %%
lab.check("06.3", ex06_3, wavenet=wn, test=test, run=run, cfg=cfg, seed=seed)

# %% [markdown]
# ### Exercise 4 · Borrowed loudness
#
# DDSP's generated notes take their loudness curve from a training note of the
# requested family (`real_train_clips(cfg, test)`, from `marslib.evaluate`). For every
# held-out condition, generate DDSP's note twice with `ddsp._render(pitch, family,
# loudness, seed)` (no `z`, as `generate` does): once with the borrowed curve
# `ddsp._loudness(reference)`, once with a **flat** curve at its mean over the frames.
# Work in batches of 16 conditions, each rendered with `seed`. Ask the judge of notebook
# 04 for the family of each note (`classify_waveforms`, argmax of `family_probs`), and
# compute both family accuracies against `test.family`. What did the envelope carry?
#
# Set `ex06_4 = {"predicted_borrowed": <family index per condition>, "predicted_flat": <...>,
# "family_acc_borrowed": ..., "family_acc_flat": ..., "envelope_carried_family": True or False}`
# (carried = a higher accuracy with the borrowed envelope).
#
# *The cheap path:* the classifier alone, instead of the whole evaluation (`evaluate`
# also runs CREPE and the distribution metrics), is enough for a family accuracy.
#
# *Cost: ≈ 30 seconds on 2 CPU cores (course): 2 x 148 DDSP notes and the classifier; no training.*

# %% tags=["solution"]
from marslib.evaluate import real_train_clips  # noqa: E402

reference = real_train_clips(cfg, test).waves
classifier = load_classifier(run / "classifier", cfg)
predicted = {"borrowed": [], "flat": []}
with torch.no_grad():
    for s in range(0, len(test.pitch), 16):
        ld = ddsp._loudness(torch.from_numpy(reference[s:s + 16]))
        p, f = torch.as_tensor(test.pitch[s:s + 16]), torch.as_tensor(test.family[s:s + 16])
        for name, curve in (("borrowed", ld), ("flat", ld.mean(1, keepdim=True).expand_as(ld))):
            notes = ddsp._render(p, f, curve, seed)
            predicted[name].append(classify_waveforms(classifier, notes, cfg)["family_probs"].argmax(1))
predicted = {k: np.concatenate(v) for k, v in predicted.items()}
family_acc = {k: float((v == test.family).mean()) for k, v in predicted.items()}
print(f"family accuracy of DDSP's generated notes: {family_acc['borrowed']:.0%} with the borrowed envelope, "
      f"{family_acc['flat']:.0%} with a flat one ({len(test.pitch)} conditions)")
ex06_4 = {"predicted_borrowed": predicted["borrowed"], "predicted_flat": predicted["flat"],
          "family_acc_borrowed": family_acc["borrowed"], "family_acc_flat": family_acc["flat"],
          "envelope_carried_family": family_acc["borrowed"] > family_acc["flat"]}

# %% [markdown] tags=["solution"]
# Without `z`, DDSP's generated note is the family embedding, the pitch and the
# loudness curve: the curve is the only thing that tells a plucked string (sharp attack,
# long decay) from an organ (flat) of the same pitch. Flattening it removes that cue;
# the accuracy that is lost is what the borrowed envelope carried, a performance
# "drawn from the family's training notes" that MARS, which needs only the label, does
# without.

# %%
lab.check("06.4", ex06_4, ddsp=ddsp, test=test, run=run, cfg=cfg, seed=seed)
