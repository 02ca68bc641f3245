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
# # 01 · From sound to image: STFT, magnitude and CMX
#
# **Question.** How do we turn a sound into an image that a VAR-style model can
# generate, without losing anything, and what does it cost if we just crop instead?
#
# MARS (Ristori, Bindini, Frasconi, arXiv 2509.26007) never models the waveform. It
# models a **magnitude spectrogram**, an image with frequency on one axis and time on
# the other, and then reshapes that image with **CMX** (channel multiplexing) into a
# small grid with many channels. This notebook builds that front-end step by step:
#
# 1. the STFT and its trade-offs (window, `n_fft`, `hop`);
# 2. magnitude vs phase: what we throw away and how Griffin-Lim gets it back;
# 3. log compression and normalisation to $[-1, 1]$;
# 4. CMX, an exact, chessboard-like space-to-depth fold;
# 5. the paper's baseline, truncation: what it loses, heard and seen;
# 6. what each representation costs in memory.
#
# Every step runs the real `marslib` code; cells that print source show it with
# `inspect.getsource` rather than copying it.

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
overrides = "{}"  # config overrides, a JSON object: '{"ar.cfg_scale": 4.0}'

# %%
import dataclasses
import inspect
import json

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import HTML, Audio, display

import marslib.runtime
from marslib import audio, cmx
from marslib import lab
from marslib.config import get_config
from marslib.data.instruments import FAMILY_INSTRUMENTS
from marslib.data.render import render_note
from marslib.plotting import (FigureSaver, plot_chessboard, plot_cmx_channels, plot_spectrogram,
                              plot_waveform)
from marslib.widgets import stft_cmx_explorer

cfg, out = marslib.runtime.setup_run("01_stft_and_cmx", profile, seed, device, data_dir, out_dir, overrides)
a = cfg.audio
sr = a.sample_rate
save = FigureSaver(out)  # save(fig, name) writes out/<name>.png
figures = save.names     # every figure file this notebook writes, for results.json


print(f"profile {cfg.profile!r}: {sr} Hz, n_fft {a.n_fft}, hop {a.hop_length}, "
      f"{a.n_frames} frames = {a.clip_seconds:.3f} s, CMX r = {cfg.cmx.factor}")
print("figures go to", out)

# %% [markdown]
# ## The whole pipeline, and where each notebook fits
#
# Before the details, the map. A training clip flows down to the token maps, which are the
# transformer's training data; a generated note starts at the transformer and flows down
# to a waveform. Each box names the `marslib` code that implements it and the notebook
# that teaches it.
#
# ```text
#  what                                    code (in marslib)                           notebook
#  ──────────────────────────────────────  ──────────────────────────────────────────  ────────
#  waveform y (N,), 16 kHz                 data (the mini-NSynth), audio.fit_length     01
#    │ STFT; keep |X|, drop the phase      audio.stft, audio.magnitude_spectrogram      01
#  magnitude |X|  (1, F, T)
#    │ dB in [-80, 0] -> [-1, 1]           audio.normalise                              01
#  image x  (1, F, T)
#    │ CMX fold: r x r cells -> r² chans   cmx.fold, cmx.to_model_input                 01
#  CMX image  (r², F/r, T/r)
#    │ encoder                             tokenizer.autoencoder.Encoder                02
#  latent f  (D, h, w)
#    │ multi-scale RVQ, one codebook       tokenizer.quantizer.MultiScaleQuantizer      02
#  token maps r_1 ... r_K  (1x1 ... h x w)  -> the transformer learns from these
#  ┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄┄
#  label (pitch, family)
#    │ next-scale transformer, one pass    autoregressor.NextScaleTransformer,          03
#    │ per scale, guided by CFG            autoregressor.sample_tokens
#  generated token maps r_1 ... r_K
#    │ codes summed -> latent -> decoder   quantizer.to_latent, autoencoder.Decoder     02
#  CMX image  (r², F/r, T/r)
#    │ CMX unfold                          cmx.unfold, cmx.from_model_input             01
#  image x -> magnitude |X|                audio.denormalise                            01
#    │ Griffin-Lim: estimate a phase       audio.griffin_lim                            01
#  waveform ŷ (N,)                         autoregressor.tokens_to_audio (all of it)    03
# ```
#
# Around this pipeline: notebook **04** scores generated audio against real notes
# (`marslib.evaluate`, `marslib.metrics`), notebook **05** repeats the paper's ablation,
# CMX against truncation (`marslib.ablation`), and notebook **06** trains the paper's
# comparison systems on waveforms (`marslib.baselines`). `marslib/train.py` is the one
# training loop behind every model. The paper, what it says and what we chose instead, is
# summarised in [`docs/paper.md`](../docs/paper.md).
#
# Three names in the map come from the papers MARS builds on; each is taught later, and
# defined in one sentence now (all terms: [`docs/glossary.md`](../docs/glossary.md)):
#
# - **VAR** (visual autoregressive modelling, Tian et al. 2024) generates an image by
#   **next-scale prediction**: a transformer predicts all tokens of each finer token map
#   at once from the coarser maps, $K$ passes instead of one per token. MARS applies it to
#   spectrograms; "a VAR-style model" below means such a tokenizer + transformer pair.
# - **RVQ** (residual vector quantisation) writes a vector as a sum of codebook entries,
#   each quantising what the previous ones left over; VAR's multi-scale RVQ does this at
#   growing resolutions (notebook 02).
# - **CFG** (classifier-free guidance) sharpens conditional sampling by pushing the
#   logits away from the model's own unconditional prediction,
#   $(1+t)\,\ell_{\text{cond}} - t\,\ell_{\text{uncond}}$ (notebook 03).

# %% [markdown]
# The profile decides the sizes. Only the paper's *shape* (a 512 × 512 spectrogram,
# 16 kHz audio) is known from the paper; `n_fft`, `hop`, clip length and the dB range
# in every profile, including `paper`, are **our reproduction choices** (see
# [`docs/paper.md`](../docs/paper.md)). `smoke` and `course` shrink them so everything runs on a CPU.

# %% [markdown]
# ## 1. A real note
#
# Our dataset is a synthetic mini-NSynth rendered offline from a General-MIDI
# soundfont (notebook 02 covers it). Here we render a single note the same way the
# dataset does (4 s with a 3 s key-down, then cropped to the profile's clip length):
# an acoustic grand piano (NSynth family `keyboard`), middle C (MIDI 60),
# velocity 100.

# %%
piano = FAMILY_INSTRUMENTS["keyboard"][0]
pitch, velocity = 60, 100
y = render_note(piano.program, pitch, velocity, sample_rate=sr, seconds=4.0, note_seconds=3.0)
y = audio.fit_length(y, a.clip_samples)  # (N,) with N = n_frames * hop
assert y.shape == (a.clip_samples,) and y.dtype == np.float32
print(f"{piano.name}, MIDI {pitch} ({440 * 2 ** ((pitch - 69) / 12):.1f} Hz), "
      f"velocity {velocity}: {y.shape[0]} samples, peak {np.abs(y).max():.2f}")

fig, ax = plt.subplots(figsize=(10, 2.6), layout="constrained")
plot_waveform(ax, y, sr, title=f"{piano.name}, MIDI {pitch}: the waveform the model never sees")
save(fig, "waveform")
display(Audio(y, rate=sr))

# %% [markdown]
# ## 2. The STFT: a sound as a time–frequency image
#
# **Idea.** Cut the waveform into overlapping frames of `n_fft` samples, `hop`
# samples apart, taper each with a window $w$ and take its Fourier transform:
#
# $$X[k, m] = \sum_{n=0}^{N-1} w[n]\, y[n + mH]\, e^{-2\pi i kn/N}, \qquad N = \texttt{n\_fft},\; H = \texttt{hop}.$$
#
# Bin $k$ is the frequency $k \cdot sr / N$ Hz; frame $m$ is the time $m H / sr$ s.
# `marslib` keeps the magnitude of bins $k < N/2$ (it drops the Nyquist bin) and
# $T = \text{len}(y) / H$ frames, so the image is $F \times T$ with $F = N/2$:
# round numbers that CMX can fold. It scales $|X|$ by the window gain so that a
# full-scale sine peaks at 1 (0 dB) for every `n_fft`.

# %%
print(inspect.getsource(audio.stft))
print(inspect.getsource(audio.magnitude_spectrogram))

# %%
mag = audio.magnitude_spectrogram(y, a)  # (1, F, T)
print("magnitude spectrogram (B, F, T):", tuple(mag.shape))
assert mag.shape == (1, *cfg.spec_shape), f"expected (1, F, T) = (1, {cfg.spec_shape}), got {mag.shape}"
assert (mag >= 0).all()

# %% [markdown]
# ### 2.1 The window: why Hann
#
# A frame is a finite slice of the signal. Cutting it with a rectangle
# (`w = 1`) makes sharp edges, and the Fourier transform spreads a pure tone over
# every bin ("leakage", side lobes only 13 dB down). A tapered window such as the
# periodic Hann window (our choice, as librosa's default) trades a twice-wider
# main lobe for side lobes that fall off quickly. Below: one frame of a 1 kHz-ish
# sine that falls between two bins, seen through both windows (a didactic
# NumPy computation, not library code).

# %%
n = 256
f0 = 16.5 * sr / n  # half-way between bins 16 and 17: the worst case for leakage
t = np.arange(n) / sr
frame = np.sin(2 * np.pi * f0 * t)
windows = {"rectangular": np.ones(n), "Hann (periodic)": torch.hann_window(n, periodic=True).numpy()}
freqs = np.arange(n // 2 + 1) * sr / n

fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 3.4), layout="constrained")
for name, w in windows.items():
    ax0.plot(np.arange(n), w, label=name)
    spec_db = 20 * np.log10(np.abs(np.fft.rfft(frame * w)) / (w.sum() / 2) + 1e-12)
    ax1.plot(freqs, spec_db, label=name)
ax0.set(xlabel="sample in frame", ylabel="w[n]", title=f"windows, n_fft = {n}")
ax1.axvline(f0, color="grey", ls=":", label=f"true frequency {f0:.0f} Hz")
ax1.set(xlabel="frequency (Hz)", ylabel="magnitude (dB)", ylim=(-100, 5), xlim=(0, 4000),
        title="spectrum of one frame of a sine between two bins")
for ax_ in (ax0, ax1):
    ax_.legend(loc="lower right" if ax_ is ax0 else "upper right")
    ax_.grid(alpha=0.3)
save(fig, "window")

# %% [markdown]
# ### 2.2 `n_fft`: time resolution against frequency resolution
#
# A frame of $N$ samples lasts $N / sr$ seconds and its bins are $sr / N$ Hz apart:
# long frames resolve close frequencies but blur fast events, short frames do the
# opposite. No setting does both (the uncertainty principle of the STFT). A test
# signal makes the trade-off visible: two steady tones 125 Hz apart (1000 and
# 1125 Hz) plus a click every 0.1 s; below it, our piano note. The hop is
# $N/4$ in every column.

# %%
def stft_cfg(n_fft, hop, n_samples):
    """The profile's AudioConfig with another STFT size (T = n_samples // hop frames)."""
    return dataclasses.replace(a, n_fft=n_fft, hop_length=hop, n_frames=n_samples // hop)


tt = np.arange(a.clip_samples) / sr
test = 0.4 * np.sin(2 * np.pi * 1000 * tt) + 0.4 * np.sin(2 * np.pi * 1125 * tt)
test[(np.arange(0.05, tt[-1], 0.1) * sr).astype(int)] += 1.0  # clicks, 0.1 s apart
test = test.astype(np.float32)

n_ffts = (64, 256, 1024)
fig, axes = plt.subplots(2, 3, figsize=(14, 6.5), layout="constrained")
resolution = []
for col, n_fft in enumerate(n_ffts):
    acfg = stft_cfg(n_fft, n_fft // 4, len(test))
    resolution.append({"n_fft": n_fft, "hop": acfg.hop_length, "window_ms": 1000 * n_fft / sr,
                       "bin_spacing_hz": sr / n_fft, "F": acfg.n_bins, "T": acfg.n_frames})
    for row, (sig, name) in enumerate(((test, "test signal"), (y, "piano"))):
        im = plot_spectrogram(axes[row, col], audio.magnitude_spectrogram(sig, acfg)[0], acfg,
                              normalised=False, colorbar=False,
                              title=f"{name}: n_fft {n_fft} ({1000 * n_fft / sr:.0f} ms), "
                                    f"Δf = {sr / n_fft:.1f} Hz")
    axes[0, col].set_ylim(0, 2500)  # zoom on the two tones
    axes[1, col].set_ylim(0, 4000)
fig.colorbar(im, ax=axes, label="magnitude (dB)", shrink=0.8)
save(fig, "stft_resolution")

print(f"{'n_fft':>6} {'hop':>5} {'window (ms)':>12} {'Δf (Hz)':>9} {'F':>5} {'T':>5}")
for row in resolution:
    print(f"{row['n_fft']:>6} {row['hop']:>5} {row['window_ms']:>12.1f} {row['bin_spacing_hz']:>9.1f} "
          f"{row['F']:>5} {row['T']:>5}")

# %% [markdown]
# With `n_fft = 64` the clicks are sharp vertical lines but the two tones merge into
# one band (its fine vertical stripes are the two tones *beating* every 8 ms: a short
# window hears one tone getting louder and softer, not two frequencies); with
# `n_fft = 1024` the tones are two clean lines but every click is smeared over 64 ms. The piano note needs both: a sharp attack *and* harmonics
# 262 Hz apart. The paper's 512 × 512 image implies `n_fft` around 1024 at 16 kHz;
# `smoke` (128) and `course` (256) are our CPU-sized compromises.
#
# ### 2.3 `hop`: how many frames
#
# The hop does not change the frequency resolution; it sets how many frames the
# image has, $T = \text{len}(y)/H$, and how much the frames overlap ($N/H$ frames
# cover each sample). Griffin-Lim needs overlap (we use $H = N/4$ or $N/8$); a smaller
# hop makes a wider image that costs more to model.

# %%
hops = (a.n_fft // 8, a.n_fft // 4, a.n_fft // 2)
fig, axes = plt.subplots(1, 3, figsize=(14, 3.4), layout="constrained")
for ax_, hop in zip(axes, hops):
    acfg = stft_cfg(a.n_fft, hop, len(y))
    m = audio.magnitude_spectrogram(y, acfg)[0]
    im = plot_spectrogram(ax_, m, acfg, normalised=False, colorbar=False,
                          title=f"n_fft {a.n_fft}, hop {hop}: F x T = {m.shape[0]} x {m.shape[1]}")
fig.colorbar(im, ax=axes, label="magnitude (dB)")
save(fig, "hop")

# %% [markdown]
# ## 3. Magnitude vs phase
#
# $X[k, m]$ is complex: a magnitude $|X|$ and a phase $\angle X$. The magnitude has
# the structure an image model can learn (harmonic lines, decays); the phase, drawn
# below, looks like noise, because it winds by $2\pi f H / sr$ from one frame to the
# next. MARS keeps **only the magnitude** (known from the paper) and recovers a phase
# after generation with Griffin-Lim.

# %%
X = audio.stft(y, a.n_fft, a.hop_length)[0, : a.n_bins, :-1]  # (F, T) complex, as the magnitude
extent = (0, X.shape[1] * a.hop_length / sr, 0, a.n_bins * sr / a.n_fft)
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(13, 3.6), layout="constrained")
plot_spectrogram(ax0, mag[0], a, normalised=False, title="magnitude |X| (kept)")
im = ax1.imshow(X.angle().numpy(), origin="lower", aspect="auto", extent=extent, cmap="twilight",
                vmin=-np.pi, vmax=np.pi, interpolation="nearest")
ax1.set(xlabel="time (s)", ylabel="frequency (Hz)", title="phase ∠X (thrown away)")
fig.colorbar(im, ax=ax1, label="phase (rad)", ticks=[-np.pi, 0, np.pi]).ax.set_yticklabels(["-π", "0", "π"])
save(fig, "magnitude_phase")

# %% [markdown]
# **Griffin-Lim** (Griffin & Lim 1984; the "fast" variant with momentum of
# Perraudin et al. 2013, as in librosa) looks for a signal whose STFT magnitude
# matches $S = |X|$. Starting from a random phase, it alternates two projections:
#
# $$c_n = \operatorname{STFT}\!\big(\operatorname{iSTFT}(S \cdot e^{i\phi_n})\big), \qquad
# e^{i\phi_{n+1}} = \frac{c_n - \tfrac{\alpha}{1+\alpha} c_{n-1}}{\big|c_n - \tfrac{\alpha}{1+\alpha} c_{n-1}\big|}.$$
#
# We measure success with the **spectral convergence**
# $\mathrm{SC} = \lVert S - |\operatorname{STFT}(\hat y)| \rVert_F / \lVert S \rVert_F$
# (0 is perfect). The iteration counts and momentum $\alpha = 0.99$ are our choices.

# %%
print(inspect.getsource(audio.griffin_lim))
print(inspect.getsource(audio.spectrogram_to_waveform))


# %%
def spectral_convergence(ref_BFT, est_BFT):
    """||ref - est||_F / ||ref||_F for magnitudes (B, F, T)."""
    return float(torch.linalg.norm(ref_BFT - est_BFT) / torch.linalg.norm(ref_BFT))


# Reference: magnitude *and* the true phase give the waveform back (up to float error).
y_true_phase = torch.istft(audio.stft(y, a.n_fft, a.hop_length), a.n_fft, a.hop_length,
                           window=torch.hann_window(a.n_fft), length=len(y))
sc_true = spectral_convergence(mag, audio.magnitude_spectrogram(y_true_phase, a))
print(f"true phase: SC = {sc_true:.2e}, max |y - y_hat| = {(y_true_phase[0] - torch.from_numpy(y)).abs().max():.1e}")

gl_iters = sorted({0, 4, 16, 64, a.griffin_lim_iters})
gl = {}
for n_iter in gl_iters:
    y_hat = audio.spectrogram_to_waveform(mag, a, n_iter=n_iter, seed=seed)  # (1, N)
    assert y_hat.shape == (1, len(y))
    gl[n_iter] = (y_hat[0].numpy(), spectral_convergence(mag, audio.magnitude_spectrogram(y_hat, a)))
    print(f"Griffin-Lim {n_iter:>3} iterations: SC = {gl[n_iter][1]:.3f}"
          + ("   (random phase)" if n_iter == 0 else ""))
assert gl[max(gl_iters)][1] < gl[0][1], "Griffin-Lim should improve on a random phase"

# %%
print("original")
display(Audio(y, rate=sr))
for n_iter, (y_hat, sc) in gl.items():
    print(f"Griffin-Lim, {n_iter} iterations (SC {sc:.3f})" + (": random phase" if n_iter == 0 else ""))
    display(Audio(y_hat, rate=sr))

# %% [markdown]
# Listen: with a random phase (0 iterations) the pitch is there but the sound is
# rough and reverberant; a few dozen iterations give a clean note. Note what the
# right panel shows: the reconstructed *waveform* differs from the original even
# where it sounds right, because many waveforms share one magnitude spectrogram.

# %%
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(13, 3.4), layout="constrained")
ax0.plot(gl_iters, [gl[k][1] for k in gl_iters], "o-")
ax0.set(xscale="symlog", xlabel="Griffin-Lim iterations", ylabel="spectral convergence",
        title="SC falls with iterations (0 = random phase)", ylim=(0, None))
ax0.set_xticks(gl_iters, [str(k) for k in gl_iters])
ax0.grid(alpha=0.3)
zoom = slice(len(y) // 4, len(y) // 4 + int(0.01 * sr))  # 10 ms
t_ms = 1000 * np.arange(zoom.start, zoom.stop) / sr
ax1.plot(t_ms, y[zoom], label="original", lw=1.5)
ax1.plot(t_ms, gl[max(gl_iters)][0][zoom], label=f"Griffin-Lim {max(gl_iters)} iters", lw=1.2, alpha=0.8)
ax1.set(xlabel="time (ms)", ylabel="amplitude", title="10 ms: same magnitude, different waveform")
ax1.legend(loc="upper right")
ax1.grid(alpha=0.3)
save(fig, "griffin_lim")

# %% [markdown]
# ## 4. Log compression and normalisation
#
# Magnitudes span many orders of magnitude: a quiet harmonic 60 dB below the
# fundamental is 1000× smaller but clearly audible. Ears hear level in decibels, and
# a network trains best on values of order one, so we compress and rescale:
#
# $$x = 2\,\frac{\operatorname{clip}(20\log_{10}|X|,\ d_{\min},\ d_{\max}) - d_{\min}}{d_{\max} - d_{\min}} - 1 \in [-1, 1],$$
#
# with $d_{\min} = -80$ dB (silence, $x = -1$) and $d_{\max} = 0$ dB (a full-scale
# sine, $x = +1$), **our choices**. The inverse is exact inside the range; anything
# quieter than −80 dB is floored, the one lossy step of the front-end.

# %%
print(inspect.getsource(audio.normalise))
print(inspect.getsource(audio.denormalise))

# %%
x = audio.normalise(mag, a)  # (1, F, T) in [-1, 1]
assert x.shape == mag.shape and x.min() >= -1 and x.max() <= 1
floor = 10 ** (a.min_db / 20)
back = audio.denormalise(x, a)
max_rel_error = float(((back - mag.clamp_min(floor)).abs() / mag.clamp_min(floor)).max())
assert torch.allclose(back, mag.clamp_min(floor), rtol=1e-4, atol=0), max_rel_error
fraction_floored = float((mag < floor).float().mean())
print(f"denormalise(normalise(|X|)) = max(|X|, {floor:g}): max relative error {max_rel_error:.1e} (float32)")
print(f"values below {a.min_db:.0f} dB (floored): {100 * fraction_floored:.1f}%")

fig, axes = plt.subplots(1, 3, figsize=(15, 3.4), layout="constrained", width_ratios=[1, 1, 1.4])
axes[0].hist(mag.flatten().numpy(), bins=100, color="C0")
axes[0].set(yscale="log", xlabel="|X| (linear, 1 = full-scale sine)", ylabel="count",
            title="before: almost everything near 0")
axes[1].hist(x.flatten().numpy(), bins=100, color="C1")
axes[1].set(yscale="log", xlabel="x = normalised log-magnitude", ylabel="count",
            title="after: spread over [-1, 1]")
for ax_ in axes[:2]:
    ax_.grid(alpha=0.3)
plot_spectrogram(axes[2], x[0], a, normalised=True, title="the model's image x (F x T)")
save(fig, "log_normalise")

# %% [markdown]
# The spike at $x = -1$ is everything at or below −80 dB. This normalised image,
# of shape $(B, 1, F, T)$, is what the rest of the project calls the spectrogram.
#
# ## 5. CMX: folding the image into channels
#
# **Idea.** The paper's spectrogram is 512 × 512, too large a grid for a VAR-style
# tokenizer and transformer on modest hardware. CMX (channel multiplexing, the
# paper's contribution) moves resolution into channels: each $r \times r$ cell of
# the image is spread over $C = r^2$ channels, like the squares of a chessboard
# painted in $r^2$ colours. With $c = i r + j$,
#
# $$y[c,\, f,\, t] = x[f r + i,\; t r + j], \qquad 0 \le i, j < r,$$
#
# so $(1, F, T) \to (r^2, F/r, T/r)$. It is pure indexing: every value moves, none is
# changed or dropped, and the inverse puts each one back bit for bit. (That channel
# $c$ holds offset $(i, j)$ is the paper's idea as we read it; the exact channel order
# is our choice.)

# %%
r = cfg.cmx.factor
fig = plot_chessboard(r)
save(fig, "chessboard")

# %%
print(inspect.getsource(cmx.fold))
print(inspect.getsource(cmx.unfold))

# %% [markdown]
# A toy first: a 4 × 4 "spectrogram" holding the numbers 0…15, folded with $r = 2$.
# Channel 0 gets the even bins of the even frames, channel 1 the even bins of the odd
# frames, and so on: exactly the chessboard above.

# %%
toy = torch.arange(16).reshape(1, 1, 4, 4)  # (B, 1, F, T), row = frequency bin
toy_cmx = cmx.fold(toy, 2)                    # (B, 4, 2, 2)
print("toy (1, 1, 4, 4):\n", toy[0, 0])
for c in range(4):
    print(f"channel {c} (i={c // 2}, j={c % 2}):", toy_cmx[0, c].tolist())
assert toy_cmx.shape == (1, 4, 2, 2) and torch.equal(cmx.unfold(toy_cmx, 2), toy)

# %% [markdown]
# Now the real thing, through `cmx.to_model_input` / `cmx.from_model_input`, the two
# functions the tokenizer will call.

# %%
x_B1FT = x[:, None]                                # (1, 1, F, T)
x_BCft = cmx.to_model_input(x_B1FT, cfg.cmx)       # (1, r^2, F/r, T/r)
print(f"spectrogram (B, 1, F, T) = {tuple(x_B1FT.shape)} -> CMX (B, C, F/r, T/r) = {tuple(x_BCft.shape)}")
assert x_BCft.shape == (1, *cfg.input_shape), f"expected (1, {cfg.input_shape}), got {tuple(x_BCft.shape)}"
cmx_roundtrip_exact = torch.equal(cmx.from_model_input(x_BCft, cfg.cmx, cfg.spec_shape), x_B1FT)
assert cmx_roundtrip_exact, "CMX must be lossless"
print("unfold(fold(x)) == x bit for bit:", cmx_roundtrip_exact)

fig = plot_cmx_channels(x_BCft[0], r, title=f"our piano note after CMX: {r * r} channels of "
                                            f"{x_BCft.shape[2]} x {x_BCft.shape[3]}")
save(fig, "cmx_channels")

# %% [markdown]
# Each channel is a subsampled copy of the whole note (every $r$-th bin of every
# $r$-th frame), so neighbouring channels look almost alike: the fine detail now lives
# in the small differences *between* channels. CMX needs $F$ and $T$ divisible by $r$;
# otherwise it refuses with a message that says how to fix it:

# %%
try:
    cmx.fold(x_B1FT[..., :-1], r)  # one frame short
except cmx.CMXError as err:
    print("CMXError:", err)

# %% [markdown]
# ## 6. CMX vs truncation: what cropping loses
#
# The paper's ablation compares CMX with simply **truncating** the spectrogram to the
# same $F/r \times T/r$ grid (it reports CMX about +0.19 FAD worse but much cheaper;
# notebook 05 repeats the ablation). **FAD**, the Fréchet audio distance, compares the
# *distribution* of generated clips with that of real ones: it embeds every clip with an
# audio network, fits a Gaussian to each set and takes the Fréchet distance (**FD**)
# between the two Gaussians, so lower is better (notebook 04 §2.1;
# [glossary](../docs/glossary.md#fd-and-fad)). Which part of the image the paper's crop keeps is
# not stated; **our choice** is the lowest $F/r$ bins and the first $T/r$ frames,
# i.e. frequencies below $sr/(2r)$ and the first $1/r$ of the clip. Truncation keeps
# $1/r^2$ of the values and the inverse can only zero-fill the rest.

# %%
print(inspect.getsource(cmx.truncate))
print(inspect.getsource(cmx.truncation_loss))

# %%
trunc_cfg = dataclasses.replace(cfg.cmx, mode="truncate")
x_trunc = cmx.to_model_input(x_B1FT, trunc_cfg)                    # (1, 1, F/r, T/r)
assert x_trunc.shape == (1, 1, cfg.spec_shape[0] // r, cfg.spec_shape[1] // r)
x_trunc_full = cmx.from_model_input(x_trunc, trunc_cfg, cfg.spec_shape)  # (1, 1, F, T), -1 = silence
x_cmx_full = cmx.from_model_input(x_BCft, cfg.cmx, cfg.spec_shape)
loss = cmx.truncation_loss(mag[:, None], r)
print(f"truncation keeps {100 * loss['values_kept']:.2f}% of the values, loses "
      f"{100 * loss['energy_lost']:.1f}% of the energy (SC of the zero-filled magnitude {loss['sc']:.3f})")
print(f"kept: 0-{sr / (2 * r):.0f} Hz, 0-{a.clip_seconds / r:.3f} s of {a.clip_seconds:.3f} s")

y_trunc = audio.input_to_waveform(x_trunc_full, a, seed=seed)  # Griffin-Lim, profile's iterations
y_cmx = audio.input_to_waveform(x_cmx_full, a, seed=seed)
sc_trunc = spectral_convergence(mag, audio.magnitude_spectrogram(y_trunc, a))
sc_cmx = spectral_convergence(mag, audio.magnitude_spectrogram(y_cmx, a))
print(f"Griffin-Lim ({a.griffin_lim_iters} iters) SC vs the original: CMX {sc_cmx:.3f}, truncated {sc_trunc:.3f}")
assert sc_cmx < sc_trunc

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 3.6), layout="constrained")
for ax_, img, title in zip(axes, (x_B1FT, x_trunc_full, x_cmx_full),
                           ("original x", f"truncated to {x_trunc.shape[2]} x {x_trunc.shape[3]}, "
                                          f"zero-filled", "CMX: unfold(fold(x)), identical")):
    im = plot_spectrogram(ax_, img[0, 0], a, title=title, colorbar=False)
axes[1].add_patch(plt.Rectangle((0, 0), a.clip_seconds / r, sr / (2 * r), fill=False, ec="cyan",
                                lw=2, ls="--", label="kept area"))
axes[1].legend(loc="upper right")
fig.colorbar(im, ax=axes, label="normalised log-magnitude")
save(fig, "truncation_vs_cmx")

print(f"CMX, then Griffin-Lim (SC {sc_cmx:.3f})")
display(Audio(y_cmx[0].numpy(), rate=sr))
print(f"truncated, then Griffin-Lim (SC {sc_trunc:.3f}): muffled and cut short")
display(Audio(y_trunc[0].numpy(), rate=sr))

# %% [markdown]
# ## 7. What it costs
#
# Both CMX and truncation hand the tokenizer the same small $F/r \times T/r$ grid,
# so the encoder's activations (the memory that grows with the image) are the same;
# feeding the full image instead needs $r$ times more downsampling and far more
# activation memory. The token budget of the transformer (latent grid and scales) is
# the same in all three rows, by construction. `cmx.representation_costs` does the
# accounting (float32, batch 1; the encoder widths are our tokenizer's).

# %%
def cost_rows(run_cfg):
    """cmx.representation_costs as JSON-ready rows, one per representation."""
    return [{"variant": k.name, "input_shape": list(k.input_shape), "input_values": k.input_values,
             "encoder_activation_mb": round(k.encoder_activation_mb, 3), "latent_tokens": k.latent_tokens,
             "next_scale_tokens": k.next_scale_tokens} for k in cmx.representation_costs(run_cfg)]


memory = {cfg.profile: cost_rows(cfg), "paper": cost_rows(get_config("paper"))}
head = ["variant", "input (C, H, W)", "input values", "encoder activations (MB)", "latent tokens",
        "next-scale tokens"]
html = ""
for name, rows in memory.items():
    html += f"<h4>profile {name}</h4><table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"
    for row in rows:
        cells = [row["variant"], " x ".join(map(str, row["input_shape"])), f"{row['input_values']:,}",
                 f"{row['encoder_activation_mb']:.2f}", row["latent_tokens"], row["next_scale_tokens"]]
        html += "<tr>" + "".join(f"<td>{v}</td>" for v in cells) + "</tr>"
    html += "</table>"
display(HTML(html))
for name, rows in memory.items():  # the same numbers as text, for plain-text viewers
    print(name, [(row["variant"], row["encoder_activation_mb"]) for row in rows])

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4), layout="constrained")
for ax_, (name, rows) in zip(axes, memory.items()):
    names = [row["variant"] for row in rows]
    vals = [row["encoder_activation_mb"] for row in rows]
    bars = ax_.bar(names, vals, color=["C2", "C1", "C7"])
    ax_.bar_label(bars, fmt="%.2f MB")
    ax_.set(ylabel="encoder activations (MB / clip)", title=f"profile {name}", ylim=(0, 1.2 * max(vals)))
    ax_.grid(axis="y", alpha=0.3)
save(fig, "memory")

# %% [markdown]
# CMX keeps every value (as many as the full image) at the truncation's cost; that is
# the paper's argument. What it gives up, per the paper's ablation, is a little
# quality (+0.19 FAD), since the model must learn what the channels share.
#
# ## 8. Explore
#
# Move the sliders: `n_fft`, `hop` and the CMX factor `r`. The explorer redraws the
# spectrogram and its CMX channels and plays a Griffin-Lim reconstruction. Try
# `hop >= n_fft` or `r = 3` to see the checks. (The widget needs a live kernel; below
# it we also drive it from code, as the tests do.)

# %%
explorer = stft_cmx_explorer(y, sr, n_fft=a.n_fft, hop=a.hop_length, r=r,
                             griffin_lim_iters=a.griffin_lim_iters, base=a)
display(explorer.widget)

# %%
view = explorer.update(n_fft=a.n_fft, hop=a.hop_length, r=r)
assert view.message == "" and view.spec_shape == cfg.spec_shape and view.cmx_shape == cfg.input_shape
save(view.fig, "explorer")
bad_hop = explorer.update(n_fft=a.n_fft, hop=2 * a.n_fft if 2 * a.n_fft in explorer.hop.options else a.n_fft)
bad_r = explorer.update(n_fft=a.n_fft, hop=a.hop_length, r=3)
print("hop >= n_fft ->", bad_hop.message)
print("r = 3        ->", bad_r.message)
assert bad_hop.message and bad_hop.fig is None and bad_r.message and bad_r.cmx_shape is None
view = explorer.update(n_fft=a.n_fft, hop=a.hop_length, r=r)  # leave it at the profile's setting

# %% [markdown]
# ## 9. Results
#
# Everything this notebook measured goes to `results.json` beside its figures; the
# test suite and the reproduction report read it from there.

# %%
results = {
    "profile": cfg.profile,
    "seed": seed,
    "run": marslib.runtime.run_record(cfg, overrides),  # the overrides, the config they gave, the clips per split
    "note": {"instrument": piano.name, "program": piano.program, "pitch": pitch, "velocity": velocity},
    "spectrogram_shape": list(cfg.spec_shape),                      # [F, T]
    "cmx_input_shape": list(x_BCft.shape[1:]),                      # [C, F/r, T/r]
    "cmx_factor": r,
    "cmx_roundtrip_exact": bool(cmx_roundtrip_exact),
    "stft_resolution": resolution,
    "griffin_lim_true_phase_sc": sc_true,
    "griffin_lim_sc": {str(k): gl[k][1] for k in gl_iters},        # iterations -> SC
    "normalise_max_rel_error": max_rel_error,
    "fraction_floored": fraction_floored,
    "truncation": {"energy_lost": loss["energy_lost"], "values_kept": loss["values_kept"],
                   "sc_zero_filled": loss["sc"], "griffin_lim_sc": sc_trunc},
    "cmx_griffin_lim_sc": sc_cmx,
    "memory_table": memory,
    "explorer": {"spec_shape": list(view.spec_shape), "cmx_shape": list(view.cmx_shape),
                 "spectral_convergence": view.spectral_convergence},
    "figures": figures,
}
(out / "results.json").write_text(json.dumps(results, indent=2))
assert all((out / f).exists() for f in figures)
print(json.dumps({k: results[k] for k in ("spectrogram_shape", "cmx_input_shape", "cmx_roundtrip_exact",
                                          "griffin_lim_sc", "truncation")}, indent=1))

# %% [markdown]
# ## Summary
#
# - MARS models the **log-magnitude STFT** as an image, $F \times T$ with
#   $F = n_{fft}/2$, normalised to $[-1, 1]$; the phase is dropped and Griffin-Lim
#   recovers a convincing (not identical) waveform, as the spectral convergence shows.
# - `n_fft` trades time against frequency resolution and `hop` sets the image width;
#   these and the dB range are our reproduction choices, only the 512 × 512 shape is
#   the paper's.
# - **CMX** folds each $r \times r$ cell into $r^2$ channels: the same small grid as
#   truncation, at the same encoder cost, but exactly invertible (`torch.equal`),
#   while truncation discards $1 - 1/r^2$ of the values and audibly muffles and
#   shortens the sound.

# %% [markdown]
# ## Exercises
#
# Each exercise ends with a check cell: `lab.check` tells you whether your answer
# `ex01_k` is right and, if not, what to look at. Run the notebook above first; the
# exercises use its objects (`sr`, `a`, `y`, `mag`, `stft_cfg`, `x_B1FT`, ...).

# %%
from marslib.config import get_config  # noqa: E402  Exercise 5 builds the paper profile's configs with it

# %% [markdown]
# ### Exercise 1 · Window length in milliseconds
#
# Which `n_fft` separates two tones 50 Hz apart with a Hann window? *Hint:* the Hann
# main lobe is 4 bins wide, so you need $2 \cdot sr / n_{fft} \le 50$ Hz; take the
# smallest power of two that satisfies it. Check it with a test signal as in §2.2: two
# sines of amplitude 0.4 at 1000 and 1050 Hz, `a.clip_samples` long. Take
# `audio.magnitude_spectrogram` with hop `n_fft // 4` (use `stft_cfg`), average it over
# frames and convert to dB ($20 \log_{10}$). The **valley depth** is the lower of the
# two peak levels (the bins nearest 1000 Hz and 1050 Hz) minus the lowest level strictly
# between those bins (0 dB if there is no bin between them). Set
# `ex01_1 = {"n_fft": ..., "dip_db": ..., "dip_db_half": ...}`: your `n_fft`, the valley
# depth at that `n_fft`, and at `n_fft // 2`.
#
# *Cost: ≈ 1 second on 2 CPU cores (course); no training.*

# %% tags=["solution"]
tone_gap_hz = 50
n_fft_50 = int(2 ** np.ceil(np.log2(2 * sr / tone_gap_hz)))  # 2 sr / n_fft <= 50 Hz, rounded up to 2^k
two_tones = (0.4 * np.sin(2 * np.pi * 1000 * tt) + 0.4 * np.sin(2 * np.pi * 1050 * tt)).astype(np.float32)


def frame_mean_db(n_fft):
    """Frame-averaged magnitude of the two tones in dB, (F,), and its frequencies in Hz."""
    acfg = stft_cfg(n_fft, n_fft // 4, len(two_tones))
    m = audio.magnitude_spectrogram(two_tones, acfg)[0].mean(1).numpy()
    return 20 * np.log10(m + 1e-12), np.arange(len(m)) * sr / n_fft


def valley_db(n_fft):
    """How far the spectrum dips between the 1000 and 1050 Hz peaks (dB); 0 = one merged peak."""
    db, _ = frame_mean_db(n_fft)
    lo, hi = round(1000 * n_fft / sr), round(1050 * n_fft / sr)
    return float(min(db[lo], db[hi]) - db[lo + 1:hi].min()) if hi - lo >= 2 else 0.0


ex01_1 = {"n_fft": n_fft_50, "dip_db": valley_db(n_fft_50), "dip_db_half": valley_db(n_fft_50 // 2)}
print(f"n_fft >= 2 * {sr} / {tone_gap_hz} = {2 * sr / tone_gap_hz:.0f} -> {n_fft_50} "
      f"({1000 * n_fft_50 / sr:.0f} ms window)")
print(ex01_1)

fig, ax = plt.subplots(figsize=(7, 3), layout="constrained")
for n_fft in (n_fft_50 // 2, n_fft_50):
    db, hz = frame_mean_db(n_fft)
    ax.plot(hz, db, "o-", ms=3, label=f"n_fft {n_fft}: valley {valley_db(n_fft):.1f} dB")
for f_tone in (1000, 1050):
    ax.axvline(f_tone, color="grey", ls=":")
ax.set(xlim=(900, 1150), ylim=(-40, 0), xlabel="frequency (Hz)", ylabel="magnitude (dB)",
       title="two tones 50 Hz apart")
ax.legend()
ax.grid(alpha=0.3)

# %% [markdown] tags=["solution"]
# At the rule's `n_fft` the two tones are two peaks with a clear valley between them;
# at half of it they merge into one broad peak (a valley of a fraction of a dB). The
# price is a window of 64 ms at 16 kHz, which smears every attack: resolving close
# partials and sharp onsets at once is impossible with one STFT.

# %%
lab.check("01.1", ex01_1, sr=sr, n_samples=a.clip_samples)

# %% [markdown]
# ### Exercise 2 · Griffin-Lim and overlap
#
# Rerun §3 with `hop = n_fft // 2` instead of the profile's `n_fft // 4` (build the
# configs with `stft_cfg(a.n_fft, hop, len(y))`, run `audio.spectrogram_to_waveform`
# with `n_iter=a.griffin_lim_iters, seed=seed`). Measure the spectral convergence of each
# reconstruction twice: (1) `sc_own`, against the magnitude at its *own* hop, as §3 does;
# (2) `sc_fine`, on a common yardstick: the magnitude of the original and of the
# reconstruction both taken with hop `a.n_fft // 8`. Which hop gives the better
# reconstruction, and why do the two measures disagree? *Hint:* fewer overlapping frames
# means fewer constraints tying the phases of neighbouring frames. Set
# `ex01_2 = {"sc_own": {"n_fft//4": ..., "n_fft//2": ...}, "sc_fine": {...the same keys},
# "better": "n_fft//4" or "n_fft//2"}`.
#
# *Cost: ≈ 1 second on 2 CPU cores (course); no training.*

# %% tags=["solution"]
fine_cfg = stft_cfg(a.n_fft, a.n_fft // 8, len(y))
mag_fine = audio.magnitude_spectrogram(y, fine_cfg)  # the common yardstick, (1, F, 8 T / 4)
sc_own, sc_fine = {}, {}
for name, hop in (("n_fft//4", a.n_fft // 4), ("n_fft//2", a.n_fft // 2)):
    hop_cfg = stft_cfg(a.n_fft, hop, len(y))
    mag_hop = audio.magnitude_spectrogram(y, hop_cfg)
    y_hop = audio.spectrogram_to_waveform(mag_hop, hop_cfg, n_iter=a.griffin_lim_iters, seed=seed)
    sc_own[name] = spectral_convergence(mag_hop, audio.magnitude_spectrogram(y_hop, hop_cfg))
    sc_fine[name] = spectral_convergence(mag_fine, audio.magnitude_spectrogram(y_hop, fine_cfg))
    print(f"hop {hop:>3} ({name}): SC at its own hop {sc_own[name]:.3f}, on the hop-{a.n_fft // 8} "
          f"yardstick {sc_fine[name]:.3f}")
ex01_2 = {"sc_own": sc_own, "sc_fine": sc_fine, "better": min(sc_fine, key=sc_fine.get)}
print("better:", ex01_2["better"])

# %% [markdown] tags=["solution"]
# At its own hop, `n_fft // 2` looks *better*: each sample is covered by 2 frames instead
# of 4, so there are fewer equations for Griffin-Lim to satisfy and the SC falls further.
# On a common yardstick it is clearly worse: the phases of neighbouring frames are
# barely tied together, so the waveform drifts from the original between frame centres.
# An error measure is only comparable when it is measured the same way.

# %%
lab.check("01.2", ex01_2, y=y, a=a, seed=seed)

# %% [markdown]
# ### Exercise 3 · A different crop
#
# Truncation here keeps the lowest bins and the first frames. Write a crop that keeps
# the lowest $F/r$ bins of the *middle* $T/r$ frames instead (starting at frame
# $(T - T/r) // 2$) and compare the fraction of energy ($\sum |X|^2$) it loses on the piano
# note `mag` with `loss["energy_lost"]` of §6. *Hint:* a piano's energy is in its attack.
# Set `ex01_3 = {"energy_lost_first": ..., "energy_lost_middle": ..., "keeps_more": "first" or "middle"}`.
#
# *Cost: ≈ 1 second on 2 CPU cores (course); no training.*

# %% tags=["solution"]
mag_B1FT = mag[:, None].double()                     # (1, 1, F, T)
n_bins, n_frames = cfg.spec_shape
start = (n_frames - n_frames // r) // 2
middle = mag_B1FT[..., : n_bins // r, start:start + n_frames // r]  # (1, 1, F/r, T/r)
energy_lost_middle = float(1 - middle.pow(2).sum() / mag_B1FT.pow(2).sum())
ex01_3 = {"energy_lost_first": loss["energy_lost"], "energy_lost_middle": energy_lost_middle,
          "keeps_more": "first" if loss["energy_lost"] < energy_lost_middle else "middle"}
print(f"first {n_frames // r} frames lose {loss['energy_lost']:.1%} of the energy; frames {start}-"
      f"{start + n_frames // r - 1} lose {energy_lost_middle:.1%}")

# %% [markdown] tags=["solution"]
# The middle crop loses more: a struck or plucked note puts most of its energy into the
# attack and then decays, so the first frames are the loudest. (Where the energy is is
# not the whole story: the middle crop also throws away the attack, which the ear uses
# most to recognise an instrument.)

# %%
lab.check("01.3", ex01_3, mag=mag, r=r)

# %% [markdown]
# ### Exercise 4 · Fold order
#
# `fold` uses channel $c = i r + j$. Show that any fixed permutation of the channels is
# still lossless, and argue why the order does not matter to a convolutional encoder
# whose first layer mixes all channels. Take a random permutation `perm` of the
# $r^2$ channels, shuffle `cmx.fold(x_B1FT, r)` with it, undo it and unfold (compare with
# `torch.equal`). Then compare a convolution `W` (any shape `(out, r*r, 3, 3)`) applied to
# the unshuffled CMX tensor with `W[:, perm]` applied to the shuffled one. *Hint:* a
# permutation of input channels is a permutation of the first layer's weights. Set
# `ex01_4 = {"perm": [...], "roundtrip_exact": bool, "conv_max_diff": float, "order_matters": bool}`.
#
# *Cost: ≈ 1 second on 2 CPU cores (course); no training.*

# %% tags=["solution"]
gen = torch.Generator().manual_seed(seed)
perm = torch.randperm(r * r, generator=gen)
while torch.equal(perm, torch.arange(r * r)):  # the identity would prove nothing
    perm = torch.randperm(r * r, generator=gen)
folded = cmx.fold(x_B1FT, r)                     # (1, r^2, F/r, T/r)
shuffled = folded[:, perm]
roundtrip_exact = torch.equal(cmx.unfold(shuffled[:, torch.argsort(perm)], r), x_B1FT)
W = torch.randn(8, r * r, 3, 3, generator=gen)   # a first conv layer: 8 filters over all channels
conv_max_diff = float((torch.nn.functional.conv2d(shuffled, W[:, perm], padding=1)
                       - torch.nn.functional.conv2d(folded, W, padding=1)).abs().max())
ex01_4 = {"perm": perm.tolist(), "roundtrip_exact": roundtrip_exact, "conv_max_diff": conv_max_diff,
          "order_matters": False}
print(ex01_4)

# %% [markdown] tags=["solution"]
# Undoing the permutation gives `x` back bit for bit, so every fixed order is as lossless
# as ours. And a first layer with weights `W[:, perm]` on shuffled channels computes
# exactly what `W` computes on the original ones (up to float rounding in the sums): the
# set of functions the encoder can learn is the same, so a trained encoder cannot care
# which order we picked.

# %%
lab.check("01.4", ex01_4, x=x_B1FT, r=r)

# %% [markdown]
# ### Exercise 5 · Memory scaling
#
# Using `cmx.representation_costs` on the paper's 512 × 512 spectrogram, how do the CMX
# encoder activations change for $r = 2, 4, 8$, and what stays the same? *Hint:*
# `get_config("paper", {"cmx.factor": 8, "tokenizer.downsample": 4})` keeps the
# 16 × 16 latent grid (and so VAR's scales) valid while $r$ changes; in general
# `downsample = 512 / r / 16`. Set `ex01_5 = {"cmx_encoder_mb": {2: ..., 4: ..., 8: ...},
# "unchanged": [...], "ratio_per_doubling": ...}`: the `encoder_activation_mb` of the
# `cmx` row per $r$; which of `input_values`, `encoder_activation_mb`, `latent_tokens`,
# `next_scale_tokens` are the same for all three; and the mean factor by which the
# activations shrink when $r$ doubles.
#
# *Cost: ≈ 1 second on 2 CPU cores (course); no training.*

# %% tags=["solution"]
paper_cfg = get_config("paper")
cmx_costs = {}
for r_ in (2, 4, 8):
    downsample = paper_cfg.spec_shape[0] // r_ // paper_cfg.latent_shape[0]  # keeps the 16 x 16 latent
    cfg_r = get_config("paper", {"cmx.factor": r_, "tokenizer.downsample": downsample})
    cmx_costs[r_] = next(c for c in cmx.representation_costs(cfg_r) if c.name == "cmx")
    c = cmx_costs[r_]
    print(f"r = {r_}: input {c.input_shape}, {c.input_values:,} values, encoder {c.encoder_activation_mb:.1f} MB, "
          f"{c.latent_tokens} latent tokens, {c.next_scale_tokens} next-scale tokens")
fields = ("input_values", "encoder_activation_mb", "latent_tokens", "next_scale_tokens")
encoder_mb = {r_: c.encoder_activation_mb for r_, c in cmx_costs.items()}
ex01_5 = {"cmx_encoder_mb": encoder_mb,
          "unchanged": [f for f in fields if len({getattr(c, f) for c in cmx_costs.values()}) == 1],
          "ratio_per_doubling": float(np.mean([encoder_mb[2] / encoder_mb[4], encoder_mb[4] / encoder_mb[8]]))}
print(ex01_5)

# %% [markdown] tags=["solution"]
# Each doubling of $r$ halves the grid's height and width, so the first (widest) encoder
# stages hold about 4× fewer activations, while the input keeps all 512 × 512 values
# (just in more channels) and the latent grid, and so the transformer's token budget,
# does not move. CMX trades spatial size for channels, and the encoder pays for space.

# %%
lab.check("01.5", ex01_5)
