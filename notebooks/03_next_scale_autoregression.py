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
# # 03 · Next-scale autoregression: generating a note coarse to fine
#
# **Question.** How does a transformer generate a sound coarse to fine, a whole
# scale per step, and why is that faster than generating one token at a time?
#
# Notebook 02 turned every CMX spectrogram into a *pyramid* of token maps
# $r_1, \dots, r_K$, from a single token ($1 \times 1$) up to the full latent grid
# ($h \times w$), all drawn from one shared codebook. MARS (Ristori, Bindini,
# Frasconi, arXiv 2509.26007) generates that pyramid with a transformer doing
# **next-scale prediction**, the recipe of VAR (Tian et al. 2024): one forward pass
# predicts *every* token of the next, finer scale at once. This notebook:
#
# 1. gets the tokenizer and the transformer (trains them if this run has none yet);
# 2. writes down the factorisation and the block-causal attention mask that enforces it;
# 3. shows what the model sees at each scale during training (teacher forcing);
# 4. reads the training curves, per scale;
# 5. generates a note and watches it appear scale by scale, seen and heard;
# 6. sweeps the pitch with everything else fixed;
# 7. measures the pitch accuracy of generated notes, and sets real and generated notes of
#    every family side by side;
# 8. plays with classifier-free guidance;
# 9. times it against a raster (one-token-per-pass) baseline.
#
# As in every notebook, the cells call `marslib` and print its source with
# `inspect.getsource` where the code is the lesson.

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
import contextlib
import inspect
import json
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import HTML, Audio, display

from marslib import audio, cmx
from marslib import lab
from marslib.autoregressor import (NextScaleTransformer, RasterTransformer, block_causal_mask,
                                   sample_tokens, tokens_to_audio)
from marslib.autoregressor.training import fit_ar, token_dataset
from marslib.config import get_config
from marslib.data import load_clips, load_features, split_examples
from marslib.metrics import estimate_pitch, pitch_accuracy
from marslib.plotting import FigureSaver, plot_ar_history, plot_attention_mask, plot_family_grid, plot_spectrogram
from marslib.runtime import initial_model, run_record, seed_everything, setup_run
from marslib.tokenizer import MultiScaleQuantizer, Tokenizer
from marslib.tokenizer.training import fit_tokenizer, load_tokenizer
from marslib.train import evaluate as mean_losses  # mean of each training loss term
from marslib.widgets import cfg_explorer

cfg, out = setup_run("03_next_scale_autoregression", profile, seed, device, data_dir, out_dir, overrides)
FAMILIES = cfg.data.family_vocabulary  # the family names labels index: NSynth's, or your dataset's classes
run = out.parent  # the run folder: tokenizer/ (notebook 02) and ar/ (this notebook) live here
dev = torch.device(cfg.device)
sr = cfg.audio.sample_rate
save = FigureSaver(out)  # save(fig, name) writes out/<name>.png
figures = save.names     # every figure file this notebook writes, for results.json

# How much evaluation each profile can afford (expensive cells scale, never skip).
n_pitch_eval = {"smoke": 8, "course": 48}.get(cfg.profile, 64)  # clips scored with pYIN
timing_repeats = 5  # timings are the median of this many runs


def panel_grid(n):
    """(rows, cols) for n spectrogram panels: one row up to 5, else two or more rows of <= 6."""
    cols = n if n <= 5 else min(6, math.ceil(n / 2))
    return math.ceil(n / cols), cols


def finite_or_none(x):
    """NaN (e.g. the median cents of no voiced clip) -> None, so results.json stays strict JSON."""
    return None if x is None or not math.isfinite(x) else float(x)


print(f"profile {cfg.profile!r}: spectrogram {cfg.spec_shape}, CMX input {cfg.input_shape}, "
      f"latent grid {cfg.latent_shape}")
print("run folder", run)

# %% [markdown]
# ## 1. The tokenizer and the transformer
#
# Both models come from the same call pattern, `fit_*(cfg, folder, resume=True)`:
#
# * if the folder holds a **finished** checkpoint, the training loop resumes at its
#   last step, which is the final one, so it trains zero steps and simply loads it;
# * if it holds an **interrupted** one, training continues from there (exactly as if
#   it had never stopped, on CPU);
# * if it holds **nothing**, the model is trained from scratch.
#
# So when notebook 02 ran first in this run folder, its tokenizer is reused here;
# when this notebook runs on its own, it trains a tokenizer first. `fit_ar` then
# loads the tokenizer from `run/tokenizer` (refusing one trained for another
# config), tokenizes the train and valid splits once, and trains the next-scale
# transformer on those tokens into `run/ar`.

# %%
t0 = time.perf_counter()
tokenizer, _ = fit_tokenizer(cfg, run / "tokenizer", resume=True)
model, history = fit_ar(cfg, run, resume=True)
fit_seconds = time.perf_counter() - t0
seed_everything(seed)  # training (or loading) used the global RNG: start what follows from one state
print(f"tokenizer + transformer ready in {fit_seconds:.0f} s")

q = tokenizer.quantizer
scales = q.scales                                   # [(h_1, w_1), ..., (h_K, w_K)]
K, L = len(scales), sum(h * w for h, w in scales)
h, w = cfg.latent_shape
V, D = q.V, q.D
assert model.scales == scales and model.L == L and scales[-1] == (h, w), "model and tokenizer disagree"
n_params = sum(p.numel() for p in model.parameters())
print(f"K = {K} scales {scales}: L = {' + '.join(str(hk * wk) for hk, wk in scales)} = {L} tokens per clip")
print(f"codebook V = {V} codes of D = {D}; transformer depth {cfg.ar.depth}, width {cfg.ar.width}, "
      f"{cfg.ar.heads} heads: {n_params / 1e6:.2f} M parameters, trained {len(history['train'])} steps")

# %% [markdown]
# **What is the paper's and what is ours.** The paper tells us only that a
# transformer predicts the tokenizer's scales coarse to fine. Everything else here
# is borrowed from VAR or is **our reproduction choice**:
#
# | setting | value here | source |
# |---|---|---|
# | AdaLN blocks, class embedding as start token, block-causal mask | as VAR | VAR |
# | loss: plain mean cross-entropy over all $L$ tokens | as VAR | VAR |
# | labels dropped to a null class 10% of the time; CFG $(1+t)\,\ell_c - t\,\ell_u$, $t$ ramping over scales | as VAR | VAR |
# | condition = pitch embedding + family embedding (NSynth labels) | summed | ours |
# | residual gates start at 0 (VAR: $10^{-3}$) | 0 | ours (adaLN-Zero, DiT) |
# | plain scaled dot-product attention (VAR: L2-normalised queries and keys) | plain | ours |
# | sampling by inverse CDF, one uniform number per token | exact | ours |
# | depth / width / heads, scales, training steps, learning rate | profile-dependent | ours |
# | guidance scale, temperature, top-k, top-p | `cfg.ar` | ours |
#
# Three names in the table, in one sentence each (all in [`docs/glossary.md`](../docs/glossary.md)):
#
# - **VAR** (notebook 01): next-scale prediction, a transformer that predicts every token
#   of the next finer token map in one pass from the coarser maps.
# - **AdaLN** (adaptive LayerNorm): a LayerNorm whose output is scaled and shifted by
#   vectors computed from the condition, $\operatorname{LN}(x)(1 + \text{scale}) + \text{shift}$, so the
#   (pitch, family) label steers every block rather than only entering at the start.
# - **CFG** (classifier-free guidance, notebook 01's map): one network learns both the
#   conditional and the unconditional prediction (its labels are dropped to a null class
#   10 % of the time), and sampling extrapolates from the second to the first,
#   $(1 + t)\,\ell_c - t\,\ell_u$, which trades variety for fidelity to the label (§8).
#
# ### 1.1 Inside a block: attention and MLP, steered by the label
#
# Every layer of the transformer is one `AdaLNBlock`. Its code is the lesson:

# %%
from marslib.autoregressor.blocks import AdaLNBlock, KVCache, SelfAttention
from marslib.source import show as show_code  # displays library source as highlighted code

show_code(AdaLNBlock)

# %% [markdown]
# - `self.ada` maps the condition vector `cond_BC` (the summed pitch and family
#   embeddings, `(B, C)`) to six vectors of width $C$: two *gates* $\gamma$, two
#   *scales* and two *shifts*, one of each for the attention and for the MLP. `[:, None]`
#   gives them a length-1 token axis, so one label modulates every token of its clip alike.
# - `self.norm` has no learned affine parameters (`elementwise_affine=False`): the
#   scale and shift that an ordinary LayerNorm would learn once for all inputs are
#   instead computed per clip from its label. That is AdaLN.
# - Each branch is pre-norm and residual, `x + γ · branch(LN(x)·(1 + scale) + shift)`. The
#   `1 +` makes a zero output of `self.ada` mean "plain LayerNorm".
# - `self.ada`'s last layer starts at zero (DiT's *adaLN-Zero*; VAR starts the gates at
#   $10^{-3}$), so at initialisation every $\gamma = 0$ and every block is the identity:
#   a deep stack starts as a shallow one and learns how much each block should add.
# - `index` names this block's slot in the KV cache, the store of earlier tokens' keys and
#   values that sampling reuses instead of recomputing them (§5).
# - The final `AdaLNHead` does the same modulation once more (scale and shift only)
#   before the linear layer that gives $V$ logits per token.

# %% [markdown]
# ## 2. One scale per step: the factorisation
#
# A raster model (GPT over the flattened $h \times w$ grid) factorises the joint
# distribution token by token, $p(x_1, \dots, x_{hw} \mid c) = \prod_i p(x_i \mid x_{<i}, c)$.
# Next-scale prediction factorises it **scale by scale**:
#
# $$p(r_1, \dots, r_K \mid c) = \prod_{k=1}^{K} p(r_k \mid r_1, \dots, r_{k-1}, c),
# \qquad c = (\text{pitch}, \text{family}),$$
#
# and, within a scale, treats the $h_k w_k$ tokens as independent given the coarser
# scales: $p(r_k \mid r_{<k}, c) = \prod_{(i,j)} p(r_k^{(i,j)} \mid r_{<k}, c)$. That
# approximation is what lets one forward pass emit a whole scale. In training all
# scales go through the transformer at once; the **block-causal mask** makes sure a
# token of scale $k$ sees only its own scale and the coarser ones:

# %%
print(inspect.getsource(block_causal_mask))
print(inspect.getsource(NextScaleTransformer.forward))

# %%
mask_ns = block_causal_mask(scales)                                # (L, L), True = may attend
mask_raster = torch.ones(h * w, h * w, dtype=torch.bool).tril()    # (hw, hw), causal
assert mask_ns.shape == (L, L) and mask_ns.dtype == torch.bool
level = torch.cat([torch.full((hk * wk,), k) for k, (hk, wk) in enumerate(scales)])
assert torch.equal(mask_ns, level[:, None] >= level[None, :])      # the rule, restated
print(f"block-causal: {int(mask_ns.sum())} of {L * L} query-key pairs allowed; "
      f"raster causal: {int(mask_raster.sum())} of {(h * w) ** 2}")

fig, axes = plt.subplots(1, 2, figsize=(13, 5.6), layout="constrained")
plot_attention_mask(axes[0], mask_ns, scales,
                    title=f"next-scale: block-causal, L = {L} tokens in K = {K} scales")
plot_attention_mask(axes[1], mask_raster,
                    title=f"raster baseline: causal, h·w = {h}·{w} = {h * w} tokens")
save(fig, "attention_masks")

# %% [markdown]
# Left: each dark *block* on or below the diagonal is a scale attending to itself
# (bidirectionally: all its tokens see each other) and to every coarser scale.
# Right: the raster model's staircase, where every token sees only the tokens before
# it. The left sequence is longer ($L = \sum_k h_k w_k$ tokens against $h w$), but it
# is cut into only $K$ blocks; the right one has $h w$ steps. Sampling must take
# one forward pass per block (left) or per token (right): this is the whole speed
# argument of §9.
#
# ## 3. Teacher forcing: what the model sees at each scale
#
# During training the transformer gets the *true* coarser scales. Its input for
# scale $k > 1$ is not the tokens of scale $k-1$ but the **running reconstruction**
# of all scales before $k$, $\hat f_{<k} = \sum_{j<k} \phi_j(\text{up}(e[r_j]))$,
# area-downsampled to scale $k$'s grid, one $D$-dimensional vector per position
# (VAR's `idxBl_to_var_input`). Scale 1's input is the class embedding itself (the
# start token). The tokenizer provides these inputs:

# %%
print(inspect.getsource(MultiScaleQuantizer.teacher_forcing_inputs))

# %%
x_valid, labels_valid = load_features(cfg, "valid")      # (N, C, F/r, T/r), labels (N,)
x_train, labels_train = load_features(cfg, "train")
clip = 0
tf_pitch, tf_family = int(labels_valid["pitch"][clip]), int(labels_valid["family"][clip])
with torch.no_grad():
    idx_clip = tokenizer.encode(x_valid[clip:clip + 1].to(dev))   # K x (1, h_k, w_k)
    x_in = tokenizer.teacher_forcing_inputs(idx_clip)             # (1, L - 1, D)
    logits_tf = model(torch.tensor([tf_pitch], device=dev), torch.tensor([tf_family], device=dev), x_in)
assert [tuple(i.shape) for i in idx_clip] == [(1, hk, wk) for hk, wk in scales]
assert x_in.shape == (1, L - model.first_l, D), f"expected (1, {L - model.first_l}, {D}), got {tuple(x_in.shape)}"
assert logits_tf.shape == (1, L, V)

# Cut the sequence back into scales 2..K and lay each out on its own grid: (1, D, h_k, w_k).
grids = [t.transpose(1, 2).reshape(1, D, hk, wk)
         for t, (hk, wk) in zip(x_in.split(model.lengths[1:], dim=1), scales[1:])]
with torch.no_grad():  # the same thing computed by hand: scales < k summed, then area-downsampled
    for k in range(1, K):
        by_hand = q.downsample(q.to_latent(idx_clip, upto=k), k)
        assert torch.allclose(grids[k - 1], by_hand, atol=1e-5), f"scale {k + 1} input differs"
tokens_clip = torch.cat([i.flatten(1) for i in idx_clip], dim=1)     # (1, L) targets
ce_clip = torch.nn.functional.cross_entropy(logits_tf[0], tokens_clip[0]).item()
print(f"valid clip {clip}: {FAMILIES[tf_family]}, MIDI {tf_pitch}")
print(f"teacher-forcing inputs (B, L - 1, D) = {tuple(x_in.shape)} -> logits (B, L, V) = {tuple(logits_tf.shape)}; "
      f"cross-entropy on this clip {ce_clip:.3f} nats (uniform guess: ln V = {math.log(V):.3f})")
print(f"{'scale':>7}  {'(h, w)':8} {'input':38}    target")
for k, (hk, wk) in enumerate(scales):
    src = "class embedding (start token)" if k == 0 else f"f_hat of scales 1..{k} -> area {hk}x{wk}"
    print(f"{k + 1:>7}  {str((hk, wk)):8} {src:38} -> r_{k + 1}: {hk * wk} tokens")

# %%
fig, axes = plt.subplots(2, K, figsize=(2.6 * K + 1, 4.6), layout="constrained", squeeze=False)
norms = [g[0].norm(dim=0).cpu().numpy() for g in grids]          # (h_k, w_k) each
vmax = max(float(n.max()) for n in norms)
for k, (hk, wk) in enumerate(scales):
    top, bottom = axes[0, k], axes[1, k]
    if k == 0:
        top.text(0.5, 0.5, "start token:\nembedding of\n(pitch, family)", ha="center", va="center",
                 fontsize=9)
        top.set(xticks=[], yticks=[])
    else:
        im_in = top.imshow(norms[k - 1], origin="lower", aspect="auto", cmap="viridis", vmin=0, vmax=vmax,
                           interpolation="nearest")
    top.set_title(f"input to scale {k + 1} ({hk}x{wk})", fontsize=9)
    ids = idx_clip[k][0].cpu().numpy()
    bottom.imshow(ids, origin="lower", aspect="auto", cmap="nipy_spectral", vmin=0, vmax=V - 1,
                  interpolation="nearest")
    if hk * wk <= 16:  # small maps: print the code ids
        for (i, j), v in np.ndenumerate(ids):
            bottom.text(j, i, str(v), ha="center", va="center", fontsize=7, color="white")
    bottom.set_title(f"target r_{k + 1}: code ids", fontsize=9)
    bottom.set_xlabel("latent frame")
    for ax_ in (top, bottom) if k else (bottom,):  # pixel centres are whole latent positions
        ax_.set_xticks(np.arange(0, wk, max(1, wk // 8)))
        ax_.set_yticks(np.arange(0, hk, max(1, hk // 8)))
axes[0, 0].set_ylabel("latent bin")
axes[1, 0].set_ylabel("latent bin")
fig.colorbar(im_in, ax=axes[0, :], label="‖input vector‖ (D-dim)", shrink=0.9)
fig.suptitle(f"teacher forcing for one valid clip ({FAMILIES[tf_family]}, MIDI {tf_pitch})\n"
             f"top: what scale k is given (norm of each D-dim input vector); bottom: the tokens it must "
             f"predict (frequency upward)")
save(fig, "teacher_forcing")

# %% [markdown]
# Each input grid is a blurry summary of everything decided so far, on the grid of
# the scale to be predicted; the model's job is to output, at each position, the code
# that best explains what that summary still lacks. Training uses the *true* coarser
# scales; sampling (§5) must feed back its own, which is where errors can compound.
#
# ## 4. Training curves
#
# The loss is the cross-entropy of all $L$ tokens, averaged uniformly (VAR), so the
# finest scale ($h w$ of the $L$ tokens) dominates it. The training loop also logs
# the cross-entropy of each scale separately, `ce_k`, which shows where the model is
# still unsure.

# %%
fig = plot_ar_history(history, V, title=f"next-scale transformer, profile {cfg.profile}")
save(fig, "training_curves")
final_train, final_valid = history["train"][-1], history["valid"][-1]
ce_valid = [final_valid[f"ce_{k}"] for k in range(K)]
print(f"after {final_train['step']} steps: train loss {final_train['loss']:.3f} (one batch), "
      f"valid loss {final_valid['loss']:.3f}, valid accuracy {final_valid['accuracy']:.3f} "
      f"(uniform guess: {math.log(V):.3f} nats, {1 / V:.4f})")
print("valid cross-entropy per scale:", ", ".join(f"{k + 1}: {c:.3f}" for k, c in enumerate(ce_valid)))

# The same validation tokens scored by the weights training started from (same seed, no step taken).
valid_tokens = token_dataset(load_tokenizer(run / "tokenizer", cfg), cfg, "valid")  # as fit_ar made them
untrained = initial_model(lambda: NextScaleTransformer(cfg.ar, cfg.tokenizer), cfg.seed).to(dev)
untrained_valid = mean_losses(untrained, valid_tokens, cfg.train_ar.batch_size, dev)
print(f"untrained (initial weights): valid loss {untrained_valid['loss']:.3f}, "
      f"valid accuracy {untrained_valid['accuracy']:.3f}")
del untrained

# %% [markdown]
# How to read the per-scale curves: scale 1 is a single token predicted from the
# class alone, so its cross-entropy measures how much the *label* pins down a note's
# overall colour; the finest scales are predicted from a detailed summary of the
# note and can get much lower, unless they hold the noisy detail the class cannot
# predict. In `smoke` the model is trained for a few dozen steps: the code path is
# exercised, not the quality. It must still have *learned*: the untrained network
# (the weights training started from, printed last) scores about the uniform guess
# $\ln V$, and the test suite asserts that the trained one ends clearly below both.
#
# ## 5. A note, generated scale by scale
#
# Sampling runs the same network once per scale. A **KV cache** keeps the keys and
# values that every attention layer computed for the tokens already generated, so each
# pass feeds only the new scale's tokens and attends to the cached keys and values of
# the coarser ones ([glossary](../docs/glossary.md#kv-cache)); no mask is needed, since
# the new tokens may see each other and everything cached. The guided logits of scale $k$ are
# $(1 + t_k)\,\ell_{\text{cond}} - t_k\,\ell_{\text{uncond}}$ with
# $t_k = s \cdot k / (K - 1)$ for scales $k = 0, \dots, K-1$ (guidance scale $s$, §8).
#
# The cache and the attention that uses it:

# %%
show_code(KVCache)
show_code(SelfAttention.forward)

# %% [markdown]
# - The cache holds, per block, one `(keys, values)` pair of shape `(B, heads, l, hs)`
#   (`hs` = width / heads); `extend` appends this pass's keys and values along the token
#   axis (`dim=2`) and returns everything seen so far.
# - In `SelfAttention.forward` the queries `q` come from the new tokens only, while `k`
#   and `v` are the cache's full history after `extend`. At scale $k$, $h_k w_k$ queries
#   attend to $\sum_{j \le k} h_j w_j$ keys: exactly the rows of the block-causal mask
#   that belong to scale $k$, computed without recomputing any coarser token.
# - Without a cache (`use_cache=False` below) every pass reruns the whole prefix under
#   the mask and keeps only the last scale's rows: the same logits (a test checks it),
#   more work. A cache makes each pass cheaper; it cannot reduce the *number* of passes
#   (§9).
#
# The sampling loop over scales, whole:

# %%
show_code(sample_tokens)

# %% [markdown]
# Reading it top to bottom:
#
# - **Guidance doubles the batch.** With `cfg_scale != 0` the labels are concatenated
#   with those of the negative branch (the null class for `"joint"`, VAR's guidance), so
#   one pass over `2B` rows gives both $\ell_c$ (rows `:b`) and $\ell_u$ (rows `b:`).
# - **Scale 1's input** is the class embedding (`start_tokens`) plus scale 1's level
#   and position embeddings (`embed_scale(0, ...)`).
# - **One pass per scale**: `model.step` runs every block with the cache and returns
#   `(2B, h_k w_k, V)` logits; the guidance weight `t` grows linearly from 0 at the first
#   scale to `cfg_scale` at the last.
# - **All tokens of the scale are drawn at once** by `sample_logits` (temperature,
#   top-k, top-p, then one uniform number per token): this is where the within-scale
#   independence of §2 is used.
# - **The next input** comes from the tokenizer: `q.next_scale_input` adds the new
#   codes (upsampled and refined by $\phi$) to the running reconstruction `f_hat` and
#   area-downsamples it to the next scale's grid, the same inputs that teacher forcing
#   used in training (§3). `word_embed` maps those $D$-dimensional vectors to width $C$,
#   and the rows are duplicated again for the two guidance branches.

# %%
train_pairs = sorted(set(zip(labels_train["family"].tolist(), labels_train["pitch"].tolist())))
trained_families = sorted({f for f, _ in train_pairs})
gen_family = ("keyboard" if "keyboard" in FAMILIES and FAMILIES.index("keyboard") in trained_families
              else FAMILIES[trained_families[0]])
gen_fam = FAMILIES.index(gen_family)
family_pitches = sorted(p for f, p in train_pairs if f == gen_fam)
gen_pitch = min(family_pitches, key=lambda p: abs(p - 60))  # middle C, or the nearest trained pitch
ar = cfg.ar
sampling = dict(cfg_scale=ar.cfg_scale, temperature=ar.temperature, top_k=ar.top_k, top_p=ar.top_p,
                guidance=ar.guidance)
print(f"generating {gen_family}, MIDI {gen_pitch} with {sampling}, seed {seed}")

gen_idx = sample_tokens(model, tokenizer, torch.tensor([gen_pitch]), torch.tensor([gen_fam]), seed=seed, **sampling)
assert [tuple(i.shape) for i in gen_idx] == [(1, hk, wk) for hk, wk in scales]


@torch.no_grad()
def stage_spectrogram(indices, k):
    """Spectrogram (B, 1, F, T) decoded from scales 1..k only (frequency = row)."""
    x_hat = tokenizer.partial_decode(indices, k).clamp(-1, 1)        # (B, C, F/r, T/r)
    return cmx.from_model_input(x_hat, cfg.cmx, cfg.spec_shape)       # CMX unfold -> (B, 1, F, T)


stages = [stage_spectrogram(gen_idx, k) for k in range(1, K + 1)]
final_spec, final_wave = tokens_to_audio(tokenizer, gen_idx, seed=seed)
assert all(s.shape == (1, 1, *cfg.spec_shape) for s in stages)
assert torch.allclose(stages[-1], final_spec), "all K scales must decode to what tokens_to_audio gives"
stage_l1 = [float((s - stages[-1]).abs().mean()) for s in stages]    # distance to the final spectrogram
print("mean |stage k - final| (normalised units):", ", ".join(f"{v:.3f}" for v in stage_l1))

real = [i for i in range(len(x_train)) if int(labels_train["family"][i]) == gen_fam
        and int(labels_train["pitch"][i]) == gen_pitch]
real_spec = cmx.from_model_input(x_train[real[0]:real[0] + 1], cfg.cmx, cfg.spec_shape) if real else None

# %%
n_panels = K + (real_spec is not None)
nrows, ncols = panel_grid(n_panels)
fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.0 * nrows + 0.4), layout="constrained",
                         squeeze=False)
tokens_so_far = np.cumsum([hk * wk for hk, wk in scales])
for k, spec in enumerate(stages):
    hk, wk = scales[k]
    im = plot_spectrogram(axes.flat[k], spec[0, 0], cfg.audio, colorbar=False,
                          title=(f"scale 1 ({hk}x{wk}): {hk * wk} token{'s' * (hk * wk > 1)}" if k == 0 else
                                 f"scales 1–{k + 1} (last {hk}x{wk}): {tokens_so_far[k]} tokens"))
if real_spec is not None:
    plot_spectrogram(axes.flat[K], real_spec[0, 0], cfg.audio, colorbar=False,
                     title="a real note of this class (data)")
for ax_ in axes.flat[n_panels:]:
    ax_.axis("off")
fig.colorbar(im, ax=axes, label="normalised log-magnitude", shrink=0.8)
fig.suptitle(f"generated {gen_family}, MIDI {gen_pitch}: partial decodes, coarse to fine "
             f"(CFG {ar.cfg_scale:g}, seed {seed})")
save(fig, "generation_by_scale")

# %% [markdown]
# Listen to a few stages (partial decode → CMX unfold → Griffin-Lim). With trained
# models the coarsest stage is a smooth wash with the note's overall colour and
# envelope, and each scale adds finer structure in time and frequency (in `smoke`
# the models are too young for that: every stage looks alike). (`tokens_to_audio` decodes all $K$ scales
# only; for a prefix we call `partial_decode` ourselves, as `stage_spectrogram` does.)

# %%
play = sorted({1, (K + 1) // 2, K - 1, K} - {0})
for k in play:
    wave = final_wave if k == K else audio.input_to_waveform(stages[k - 1], cfg.audio, seed=seed)
    print(f"scales 1..{k} ({tokens_so_far[k - 1]} of {L} tokens)" + ("  = the generated note" if k == K else ""))
    display(Audio(wave[0].cpu().numpy(), rate=sr))

# %% [markdown]
# ## 6. A pitch sweep
#
# Same family, same seed, only the pitch label changes. If the pitch conditioning
# has been learned, the harmonic lines climb from panel to panel (the dashed line is
# the requested fundamental). Each panel's title gives the pitch that **pYIN** hears:
# pYIN (probabilistic YIN, `librosa.pyin`) estimates each frame's fundamental frequency
# from how well the signal matches itself shifted by one period, and decides with a
# hidden Markov model which frames are voiced ([glossary](../docs/glossary.md#pyin));
# §7 scores pitch accuracy with it. We play the notes one after another as one sound.
# The pitches are a C-major scale from middle C when the family was trained on all
# of them, otherwise (as in `smoke`) up to 8 trained pitches spread over its range.

# %%
c_major = [60, 62, 64, 65, 67, 69, 71, 72]
if set(c_major) <= set(family_pitches):
    sweep = c_major
else:
    pick = np.unique(np.round(np.linspace(0, len(family_pitches) - 1, min(8, len(family_pitches)))).astype(int))
    sweep = [family_pitches[i] for i in pick]
sweep_idx = sample_tokens(model, tokenizer, torch.tensor(sweep), torch.full((len(sweep),), gen_fam),
                          seed=seed, **sampling)
sweep_spec, sweep_wave = tokens_to_audio(tokenizer, sweep_idx, seed=seed)     # (B, 1, F, T), (B, N)
assert sweep_spec.shape == (len(sweep), 1, *cfg.spec_shape) and sweep_wave.shape == (len(sweep), cfg.audio.clip_samples)
sweep_est = [estimate_pitch(wv.cpu().numpy(), sr, expected_midi=p) for wv, p in zip(sweep_wave, sweep)]

nrows, ncols = panel_grid(len(sweep))
fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.0 * nrows + 0.4), layout="constrained",
                         squeeze=False)
for ax_, spec, p, est in zip(axes.flat, sweep_spec, sweep, sweep_est):
    f0 = 440.0 * 2 ** ((p - 69) / 12)
    im = plot_spectrogram(ax_, spec[0], cfg.audio, colorbar=False,
                          title=f"MIDI {p} ({f0:.0f} Hz); pYIN: " + (f"{est:.1f}" if np.isfinite(est) else "unvoiced"))
    ax_.axhline(f0, color="cyan", ls=(0, (2, 2)), lw=1.3, label="requested f0")
    ax_.set_ylim(0, min(sr / 2, 8 * 440.0 * 2 ** ((max(sweep) - 69) / 12)))  # up to ~the 8th harmonic
axes.flat[0].legend(loc="upper right", fontsize=8)
for ax_ in axes.flat[len(sweep):]:
    ax_.axis("off")
fig.colorbar(im, ax=axes, label="normalised log-magnitude", shrink=0.8)
fig.suptitle(f"pitch sweep: generated {gen_family}, same seed (dashed line: requested f0)")
save(fig, "pitch_sweep")

# %%
gap = np.zeros(int(0.15 * sr), dtype=np.float32)
melody = np.concatenate([np.concatenate([wv.cpu().numpy(), gap]) for wv in sweep_wave])
print(f"{gen_family}: MIDI {sweep}, one after another")
display(Audio(melody, rate=sr))

# %% [markdown]
# ## 7. Pitch accuracy of generated notes
#
# Does a generated note have the pitch it was asked for? `marslib.metrics.pitch_accuracy`
# tracks $f_0$ with pYIN (librosa) and compares the median with the requested MIDI
# number: a clip is **correct within ±1 semitone** (100 cents). An error near
# ±1200 cents is an **octave error**, reported separately rather than hidden, and a clip in
# which pYIN finds no pitch at all is **unvoiced**. Our target (ours, not the paper's) is
# **≥ 80% within ±1 semitone in the `course` profile**. In `smoke` the model is
# untrained, so whatever comes out is reported as is.
#
# The conditions are (pitch, family) pairs that occur in the training data, spread
# over families and pitches. As a reference we score real notes of the same
# conditions after the same Griffin-Lim step: the ceiling this measurement allows.

# %%
print(inspect.getsource(pitch_accuracy))

# %%
pick = np.unique(np.round(np.linspace(0, len(train_pairs) - 1, min(n_pitch_eval, len(train_pairs)))).astype(int))
conditions = [train_pairs[i] for i in pick]
conditions = (conditions * math.ceil(n_pitch_eval / len(conditions)))[:n_pitch_eval]  # repeat if data is small
eval_family = torch.tensor([f for f, _ in conditions])
eval_pitch = torch.tensor([p for _, p in conditions])
waves = []
for start in range(0, n_pitch_eval, 16):  # batches of 16, each with its own seed
    sl = slice(start, start + 16)
    idx_b = sample_tokens(model, tokenizer, eval_pitch[sl], eval_family[sl], seed=seed + start, **sampling)
    waves.append(tokens_to_audio(tokenizer, idx_b, seed=seed)[1].cpu())
waves = torch.cat(waves)                                                   # (N, samples)
assert waves.shape == (n_pitch_eval, cfg.audio.clip_samples)
acc = pitch_accuracy(waves, sr, eval_pitch.numpy())

# Reference: one real training clip per condition, spectrogram -> Griffin-Lim -> pYIN.
first = {}
for i, (f, p) in enumerate(zip(labels_train["family"].tolist(), labels_train["pitch"].tolist())):
    first.setdefault((f, p), i)
real_x = x_train[[first[c] for c in conditions]]
real_waves = audio.input_to_waveform(cmx.from_model_input(real_x, cfg.cmx, cfg.spec_shape), cfg.audio, seed=seed)
acc_data = pitch_accuracy(real_waves, sr, eval_pitch.numpy())

rows = [("generated", acc), ("real notes, Griffin-Lim", acc_data)]
html = ("<table><tr><th></th><th>within ±1 semitone</th><th>octave errors</th><th>unvoiced</th>"
        "<th>median |cents| (voiced)</th><th>n</th></tr>")
for name, r_ in rows:
    mac = r_["median_abs_cents"]
    html += (f"<tr><td>{name}</td><td>{r_['accuracy']:.0%}</td><td>{r_['octave_errors']:.0%}</td>"
             f"<td>{r_['unvoiced']:.0%}</td><td>{'—' if not np.isfinite(mac) else f'{mac:.0f}'}</td>"
             f"<td>{n_pitch_eval}</td></tr>")
display(HTML(html + "</table>"))
for name, r_ in rows:  # the same numbers as text
    print(f"{name:24} accuracy {r_['accuracy']:.3f}, octave errors {r_['octave_errors']:.3f}, "
          f"unvoiced {r_['unvoiced']:.3f}, median |cents| {r_['median_abs_cents']:.1f}")
print(f"target (course profile): accuracy >= 0.80; this run ({cfg.profile}): {acc['accuracy']:.2f}")

# %% [markdown]
# **What to expect on `course`.** `mars evaluate` on all 148 held-out conditions (course
# profile, seed 0, one note each; `docs/timbre.md` §3, `reports/REPORT.md`) measured
# **≈ 99 %** of MARS's notes within ±1 semitone (99.3 % by CREPE), against
# 94 % for real notes through Griffin-Lim: the pitch label is learnt. This notebook
# scores 48 conditions in `course`, so expect the same within a few points. In `smoke`
# the transformer has trained for seconds and any number can come out.

# %%
fig, ax = plt.subplots(figsize=(7, 5), layout="constrained")
lo, hi = cfg.data.pitch_min - 14, cfg.data.pitch_max + 14
grid = np.array([lo, hi])
ax.fill_between(grid, grid - 1, grid + 1, color="C2", alpha=0.25, label="±1 semitone (correct)")
for octave in (-12, 12):
    ax.plot(grid, grid + octave, color="grey", ls="--", lw=1)
ax.text(hi - 1, hi - 12.5, "octave below", ha="right", va="top", fontsize=8, color="grey")
ax.text(lo + 13, lo + 25.5, "octave above", ha="left", va="bottom", fontsize=8, color="grey", rotation=0)
for name, r_, color, marker in (("generated", acc, "C0", "o"), ("real notes, Griffin-Lim", acc_data, "C1", "s")):
    cents = np.array([np.nan if c is None else c for c in r_["cents"]])
    voiced = np.isfinite(cents)
    jitter = (np.arange(n_pitch_eval) % 5 - 2) * 0.15  # keep repeated pitches apart
    ax.scatter(eval_pitch.numpy()[voiced] + jitter[voiced], eval_pitch.numpy()[voiced] + cents[voiced] / 100,
               color=color, marker=marker, alpha=0.7, label=f"{name}: {r_['accuracy']:.0%} correct")
    ax.scatter(eval_pitch.numpy()[~voiced] + jitter[~voiced], np.full((~voiced).sum(), lo + 1.5 + (color == "C1")),
               color=color, marker="x", label=f"{name}: unvoiced ({(~voiced).sum()})")
ax.set(xlim=grid, ylim=grid, xlabel="requested pitch (MIDI)", ylabel="pYIN pitch (MIDI)",
       title=f"pitch accuracy, {n_pitch_eval} conditions (target ≥ 80% in course)")
ax.grid(alpha=0.3)
ax.legend(fontsize=8, loc="upper left")
save(fig, "pitch_accuracy")

# %% [markdown]
# ### 7.1 Does it sound like the instrument asked for?
#
# Pitch is half of the label; the other half is the instrument **family**. Below, one
# row per family in the data, all at the same pitch: on the left a real note of that
# family at the pitch nearest it (from the held-out test split, or from the training
# split when only that one has a note so near), on the right what MARS generates when asked for
# (that pitch, that family), with one fixed seed (the same seed gives the same figure).
# With the pitch fixed, the harmonics sit at the same heights in every row; what should
# differ from row to row is the *timbre*:
#
# * **the spectral envelope**: which harmonics are strong. A flute or an organ has a few
#   strong low harmonics, a brass or reed note many bright upper ones, a bass almost only
#   the lowest; in the spectrogram, how far up the horizontal lines reach and how their
#   brightness falls off;
# * **the time envelope**: a struck or plucked note (keyboard, mallet, guitar, bass)
#   starts at once and decays, a blown or bowed one (flute, brass, reed, string) swells
#   and holds; in the spectrogram, whether the lines fade out to the right;
# * **noise**: breath and bow noise between the harmonics, the click of an attack (a
#   vertical stripe at the start).
#
# Listen to each pair with those three in mind: if MARS's notes share the right pitch but
# all sound alike (the same dull or buzzy colour in every row), the pitch label was
# learnt and the family label was not. Expect the generated notes to sound a little
# "phasey" even when they are right: they go through Griffin-Lim, the real ones do not.
# In `smoke` the models are trained for seconds, so every generated note is a similar
# noise; the course profile is where the comparison means something.

# %%
test_examples, train_examples = split_examples(cfg, "test"), split_examples(cfg, "train")
data_pairs = {(e.family, e.pitch) for e in test_examples + train_examples}
grid_families = sorted({f for f, _ in data_pairs})                      # every family in the data
pitch_sets = [{p for f_, p in data_pairs if f_ == f} for f in grid_families]
middle = (cfg.data.pitch_min + cfg.data.pitch_max) / 2
# the pitch that most families have (all of them, when one exists), nearest the middle of the range
grid_pitch = min(set().union(*pitch_sets), key=lambda p: (-sum(p in ps for ps in pitch_sets), abs(p - middle), p))
print(f"grid pitch MIDI {grid_pitch}: present in {sum(grid_pitch in ps for ps in pitch_sets)} of "
      f"{len(grid_families)} families")


def nearest_real(f):
    """(split, example): the note of family f nearest grid_pitch; from the test split unless only
    the train split has one that near."""
    notes = [(split, e) for split, examples in (("test", test_examples), ("train", train_examples))
             for e in examples if e.family == f]  # never empty: grid_families come from these notes
    return min(notes, key=lambda n: (abs(n[1].pitch - grid_pitch), n[0] != "test", n[1].pitch, n[1].note_str))


grid_real = [nearest_real(f) for f in grid_families]
real_grid_wave = load_clips(cfg, [e for _, e in grid_real])                         # (n, S)
real_grid_spec = audio.waveform_to_input(torch.from_numpy(real_grid_wave), cfg.audio)  # (n, 1, F, T)
grid_p, grid_f = torch.full((len(grid_families),), grid_pitch), torch.tensor(grid_families)
grid_idx = sample_tokens(model, tokenizer, grid_p, grid_f, seed=seed, **sampling)
gen_grid_spec, gen_grid_wave = tokens_to_audio(tokenizer, grid_idx, seed=seed)     # (n, 1, F, T), (n, S)
again = sample_tokens(model, tokenizer, grid_p, grid_f, seed=seed, **sampling)
assert all(torch.equal(i, j) for i, j in zip(grid_idx, again)), "one seed must give the same notes"

grid_names = [FAMILIES[f] for f in grid_families]
fig = plot_family_grid(
    real_grid_spec[:, 0], gen_grid_spec[:, 0].cpu(), grid_names, cfg.audio,
    real_titles=[f"real ({split}): MIDI {e.pitch}" for split, e in grid_real],
    generated_titles=[f"MARS: {name}, MIDI {grid_pitch}" for name in grid_names],
    title=f"does it sound like the instrument asked for? MIDI {grid_pitch}, seed {seed}, "
          f"CFG {sampling['cfg_scale']:g}")
save(fig, "family_grid")

# %%
rows_html = "".join(
    f"<tr><td>{name}</td><td>{split}, MIDI {e.pitch}<br>{Audio(rw, rate=sr)._repr_html_()}</td>"
    f"<td>{Audio(gw.cpu().numpy(), rate=sr)._repr_html_()}</td></tr>"
    for name, (split, e), rw, gw in zip(grid_names, grid_real, real_grid_wave, gen_grid_wave))
display(HTML(f"<table><tr><th>family</th><th>real note</th><th>MARS, MIDI {grid_pitch}</th></tr>"
             f"{rows_html}</table>"))

# %% [markdown]
# **What to expect on `course`.** The family half of the label is where MARS falls
# short: the evaluation's classifier recognises the requested family in only **≈ 32 %**
# of MARS's notes (`docs/timbre.md` §3: 32.4 %, 95 % interval 25–40 %; 18 % before the
# loss weighed the coarse scales, `ar.scale_balance`), against 98 % for real notes and
# ≈ 52 % for the tokenizer's reconstructions (chance: 1 in 11). Expect many rows of the
# grid to share a colour; `docs/timbre.md` records where the family is lost and what we tried.

# %% [markdown]
# ## 8. Classifier-free guidance
#
# The transformer was trained with its labels replaced by a *null* class 10% of the
# time, so it can give both conditional logits $\ell_c$ and unconditional ones
# $\ell_u$. Guidance extrapolates away from the unconditional prediction,
# $(1 + t)\,\ell_c - t\,\ell_u$: $t = 0$ is plain conditional sampling, larger $t$
# pushes every token harder toward what the label explains (typically clearer pitch
# and less variety, and eventually artefacts). The ramp $t_k = s\,k/(K-1)$ leaves the
# coarsest scale unguided and guides the fine ones hardest.
#
# Move the slider (a live kernel is needed); the seed is fixed, so the random numbers
# are the same every time and only the guidance changes the note. Below the widget we
# drive it from code, as the tests do.

# %%
explorer = cfg_explorer(model, tokenizer, pitches=sorted({p for _, p in train_pairs}),
                        families=[FAMILIES[f] for f in trained_families], cfg_scale=ar.cfg_scale,
                        pitch=gen_pitch, family=gen_family, seed=seed, temperature=ar.temperature,
                        top_k=ar.top_k, top_p=ar.top_p)
display(explorer.widget)

# %%
cfg_values = sorted({0.0, 1.0, float(ar.cfg_scale), 2.0 * ar.cfg_scale})
views = [explorer.update(cfg_scale=s, pitch=gen_pitch, family=gen_family) for s in cfg_values]
for v in views:
    assert v.spectrogram.shape == cfg.spec_shape and v.waveform.shape == (cfg.audio.clip_samples,)
    assert [tuple(i.shape) for i in v.indices] == [(1, hk, wk) for hk, wk in scales]
changed = [float((torch.cat([i.flatten() for i in v.indices]) != torch.cat([i.flatten() for i in views[0].indices]))
                 .float().mean()) for v in views]
fig, axes = plt.subplots(1, len(views), figsize=(4.2 * len(views), 3.4), layout="constrained", squeeze=False)
for ax_, v, ch in zip(axes[0], views, changed):
    est = v.pitch_estimate
    im = plot_spectrogram(ax_, v.spectrogram, cfg.audio, colorbar=False,
                          title=f"CFG {v.cfg_scale:g}: pYIN " + (f"{est:.1f}" if np.isfinite(est) else "unvoiced")
                                + f"\n{ch:.0%} of tokens differ from CFG 0")
fig.colorbar(im, ax=axes, label="normalised log-magnitude", shrink=0.8)
fig.suptitle(f"{gen_family}, MIDI {gen_pitch}, seed {seed}: the same random draws under more guidance")
save(fig, "cfg_sweep")

# %%
for v in views:
    print(f"CFG {v.cfg_scale:g}")
    display(Audio(v.waveform, rate=sr))
view = explorer.update(cfg_scale=ar.cfg_scale, pitch=gen_pitch, family=gen_family)  # back to the default
save(view.fig, "cfg_explorer")

# %% [markdown]
# ## 9. Why next-scale is faster than raster
#
# A raster model must draw token $i$ before it can even *compute* the distribution of
# token $i+1$, whose input is token $i$. So sampling $h w$ tokens takes $h w$
# **sequential** forward passes, whatever the hardware. A KV cache makes each pass
# cheap (it processes one new token and reuses the keys and values of the earlier
# ones) but cannot reduce their number. Next-scale sampling draws all $h_k w_k$ tokens
# of a scale together, so it takes $K$ passes. It processes more tokens in total
# ($L = \sum_k h_k w_k > h w$), but in a few wide passes, which is what GPUs (and
# vectorised CPU code) are good at.
#
# Below we time both, KV-cached, batch 1, with guidance (on CPU with one thread, the
# median of a few runs), on this profile's grid and, cheaply, on the paper's grid
# (VAR's 10 scales up to $16 \times 16$) with the *same* small transformer and
# codebook, so that only the scale schedule differs. The raster transformer
# (`RasterTransformer`, same blocks as ours) is **untrained**: its weights do not
# change the cost of a pass, so timing it needs no training (`fit_raster` trains a
# real one). We count passes with a hook on each model's output head.

# %%
print(inspect.getsource(RasterTransformer.sample))


# %%
def sync():
    if dev.type == "cuda":
        torch.cuda.synchronize()


@contextlib.contextmanager
def one_cpu_thread():
    """On CPU, run the block on one thread: batch-1 passes of a small model are too short
    to split, and threads that wait on each other make timings erratic on a busy machine."""
    threads = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def seconds_per_clip(fn):
    """Median wall time of fn() over `timing_repeats` runs, after one warm-up."""
    with one_cpu_thread():
        fn()
        times = []
        for _ in range(timing_repeats):
            sync()
            t = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - t)
    return float(np.median(times))


def count_passes(net, fn):
    """Run fn() once and count forward passes through net's output head."""
    calls = []
    handle = net.head.register_forward_hook(lambda *_: calls.append(1))
    try:
        fn()
    finally:
        handle.remove()
    return len(calls)


def race(name, ns_model, ns_tokenizer, raster):
    """Time next-scale vs raster sampling of one clip; count their forward passes."""
    label = (torch.tensor([gen_pitch], device=dev), torch.tensor([gen_fam], device=dev))
    run_ns = lambda: sample_tokens(ns_model, ns_tokenizer, *label, seed=seed, **sampling)
    run_raster = lambda: raster.sample(*label, seed=seed, **sampling)
    grid_hw = ns_tokenizer.quantizer.scales[-1]
    with one_cpu_thread():
        passes = count_passes(ns_model, run_ns), count_passes(raster, run_raster)
    row = {"grid": name, "latent": list(grid_hw), "K": len(ns_model.scales), "L": ns_model.L,
           "n_passes_next_scale": passes[0], "n_passes_raster": passes[1]}
    timing = {"next_scale": seconds_per_clip(run_ns), "raster": seconds_per_clip(run_raster)}
    timing["speedup"] = timing["raster"] / timing["next_scale"]
    return row, timing


torch.manual_seed(seed)
raster = RasterTransformer(cfg.ar, cfg.latent_shape, V).to(dev).eval()
race_profile = race(f"{cfg.profile} ({h}x{w})", model, tokenizer, raster)

# The paper's scales, with this profile's transformer and codebook, so that only the scale
# schedule changes. (The tokenizer's convs never run while sampling tokens: keep them tiny.)
pcfg = get_config("paper", {"device": cfg.device, "tokenizer.channels": 8, "tokenizer.codebook_size": V,
                            "tokenizer.latent_dim": D, "ar.depth": ar.depth, "ar.width": ar.width,
                            "ar.heads": ar.heads})
torch.manual_seed(seed)
p_tok = Tokenizer(pcfg).to(dev).eval()
p_model = NextScaleTransformer(pcfg.ar, pcfg.tokenizer).to(dev).eval()
p_raster = RasterTransformer(pcfg.ar, pcfg.latent_shape, pcfg.tokenizer.codebook_size).to(dev).eval()
ph, pw = pcfg.latent_shape
race_paper = race(f"paper ({ph}x{pw})", p_model, p_tok, p_raster)

for row, timing in (race_profile, race_paper):
    assert row["n_passes_next_scale"] == row["K"]
    assert row["n_passes_raster"] == row["latent"][0] * row["latent"][1]
    print(f"{row['grid']:>16}: next-scale {row['n_passes_next_scale']:>3} passes over L = {row['L']} tokens, "
          f"{1000 * timing['next_scale']:.1f} ms; raster {row['n_passes_raster']:>3} passes, "
          f"{1000 * timing['raster']:.1f} ms -> {timing['speedup']:.1f}x faster")

# %%
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4), layout="constrained")
names = [race_profile[0]["grid"], race_paper[0]["grid"]]
xs = np.arange(2)
for ax_, key, unit in ((ax0, "ms", "milliseconds per clip (batch 1, KV cache)"),
                       (ax1, "passes", "sequential forward passes per clip")):
    all_vals = []
    for j, (method, color) in enumerate((("next_scale", "C0"), ("raster", "C3"))):
        if key == "ms":
            vals = [1000 * race_profile[1][method], 1000 * race_paper[1][method]]
        else:
            vals = [race_profile[0][f"n_passes_{method}"], race_paper[0][f"n_passes_{method}"]]
        all_vals += vals
        bars = ax_.bar(xs + (j - 0.5) * 0.38, vals, 0.38, color=color,
                       label="next-scale (K passes)" if method == "next_scale" else "raster (h·w passes)")
        ax_.bar_label(bars, fmt="%.1f ms" if key == "ms" else "%d", fontsize=8)
    # log axis (the values span decades); bars start well below the smallest value
    bottom = 1 if key == "passes" else 10 ** math.floor(math.log10(min(all_vals) / 2))
    ax_.set(xticks=xs, xticklabels=names, yscale="log", ylabel=unit,
            ylim=(bottom, 3 * max(all_vals)))
    ax_.grid(axis="y", alpha=0.3)
    ax_.legend(fontsize=8, loc="upper left")
ax0.set_title("sampling time (" + ", ".join(f"{r[0]['grid']}: {r[1]['speedup']:.1f}x" for r in (race_profile, race_paper))
              + f")\nwidth {ar.width}, depth {ar.depth}, on {cfg.device}"
              + (" (1 thread)" if dev.type == "cpu" else "") + "; raster weights untrained", fontsize=10)
ax1.set_title("forward passes: K vs h·w", fontsize=10)
save(fig, "speed")

# %% [markdown]
# The pass counts are exact; the times depend on the machine (and on what else runs
# on it) and are not part of any reproducibility check. Two costs compete. Every
# *pass* has a fixed cost (running each layer once, Python overhead), paid $K$ times by
# next-scale and $h w$ times by raster. Every *token* has a cost too (the blocks, and
# the output head and softmax over all $V$ codes), and next-scale pays it for
# $L = \sum_k h_k w_k$ tokens, more than raster's $h w$ (680 against 256 on the paper's
# grid), plus the tokenizer's `next_scale_input` between passes. On one CPU thread the
# per-token work is a large part of the bill, so the speed-up stays well below the
# ratio of passes (try the paper's 4096-code vocabulary in `pcfg`: its output head then
# dominates such a narrow model and the gap shrinks further). On a GPU the tokens of
# one pass are processed in parallel and the number of sequential passes dominates:
# VAR reports about 20× on ImageNet 256 (10 against 256 passes, with a far larger model).
#
# Finally, what a listener waits for: generating one clip (batch 1) *and* turning it
# into audio with Griffin-Lim, relative to the clip's duration (real-time factor;
# below 1 is faster than real time).

# %%
def generate_one():
    idx_ = sample_tokens(model, tokenizer, torch.tensor([gen_pitch]), torch.tensor([gen_fam]), seed=seed, **sampling)
    return tokens_to_audio(tokenizer, idx_, seed=seed)


gen_seconds = seconds_per_clip(generate_one)
generation_rtf = gen_seconds / cfg.audio.clip_seconds
print(f"generate + Griffin-Lim ({cfg.audio.griffin_lim_iters} iterations, timed as above): {gen_seconds:.3f} s for a "
      f"{cfg.audio.clip_seconds:.2f} s clip -> real-time factor {generation_rtf:.2f}")

# %% [markdown]
# **What to expect on `course`.** The README's results (course profile, a fresh clone's
# `make reproduce` on 2 CPU cores) give raster / next-scale = **5.3×** on the course grid
# and **4.7×** on the paper grid at batch 1, and **0.13 s** to generate one 1.02 s clip
# and turn it into audio (real-time factor 0.13).
#
# ### 9.1 Latency or throughput: batch 1 against batch 16
#
# The race above generates **one clip at a time** (batch 1): it measures the *latency*,
# how long a listener waits for one note. Someone generating thousands of notes cares
# about *throughput* instead: seconds per clip when clips are generated in batches. The
# two can disagree, because the samplers spend their time differently. On the paper's grid:
#
# - next-scale makes $K = 10$ passes, but processes $L = 680$ token positions per clip
#   (every scale of the pyramid, $1 + 4 + 9 + \dots + 256$);
# - raster processes only $h w = 256$ positions per clip, but in 256 **sequential**
#   passes, each of which needs the token drawn by the one before.
#
# A pass has a fixed cost (running each layer, Python and PyTorch overhead) and a cost per
# token (the matrix products, the output head and the softmax over $V$ codes). At batch 1
# a raster pass carries one token (two rows with guidance): it is nearly all fixed cost,
# paid 256 times. With 16 clips per batch every pass carries 16 times more tokens for
# about the same fixed cost, so that cost is shared, and what is left is the work per
# token, where raster's 256 tokens cost less than next-scale's 680. On a CPU, raster's
# sequential passes therefore cost *latency* much more than *throughput*: once the batch
# keeps the core busy, raster catches up.
#
# We time both samplers on the paper's grid with the untrained paper-grid models of §9
# (this profile's width and depth, the same guidance, one CPU thread), at batch 1 and
# batch 16, and divide each batch's time by its size. A hook on each output head counts
# the token positions a clip goes through.

# %%
from marslib.runtime import time_interleaved

batch_sizes = (1, 16)


def head_tokens_per_row(net, fn):
    """Run fn() once; token positions that one row of the batch sends through net's output head."""
    seen = []
    handle = net.head.register_forward_hook(lambda _module, _inputs, logits: seen.append(logits.shape[1]))
    try:
        fn()
    finally:
        handle.remove()
    return sum(seen)


def samplers(b):
    """The two paper-grid samplers at batch b (the §9 models, labels and sampling options)."""
    pitch_b, family_b = torch.full((b,), gen_pitch, device=dev), torch.full((b,), gen_fam, device=dev)
    return {"next_scale": lambda: sample_tokens(p_model, p_tok, pitch_b, family_b, seed=seed, **sampling),
            "raster": lambda: p_raster.sample(pitch_b, family_b, seed=seed, **sampling)}


per_clip = {"next_scale": [], "raster": []}          # seconds per clip, one entry per batch size
with one_cpu_thread():
    tokens_per_clip = {"next_scale": head_tokens_per_row(p_model, samplers(1)["next_scale"]),
                       "raster": head_tokens_per_row(p_raster, samplers(1)["raster"])}
    for b in batch_sizes:
        batch_seconds = time_interleaved(samplers(b), dev, repeats=3)  # median of 3, after a warm-up
        for method in per_clip:
            per_clip[method].append(batch_seconds[method] / b)
raster_over_ns = [r / n for r, n in zip(per_clip["raster"], per_clip["next_scale"])]
assert tokens_per_clip == {"next_scale": p_model.L, "raster": ph * pw}, tokens_per_clip

print(f"paper grid ({ph}x{pw}): next-scale {race_paper[0]['K']} passes over {tokens_per_clip['next_scale']} "
      f"token positions per clip, raster {ph * pw} passes over {tokens_per_clip['raster']}")
for i, b in enumerate(batch_sizes):
    print(f"batch {b:>2}: next-scale {1000 * per_clip['next_scale'][i]:8.1f} ms/clip, raster "
          f"{1000 * per_clip['raster'][i]:8.1f} ms/clip -> raster / next-scale = {raster_over_ns[i]:.2f}")
print(f"raster's disadvantage {'shrinks' if raster_over_ns[-1] < raster_over_ns[0] else 'does not shrink'} "
      f"from {raster_over_ns[0]:.1f}x (batch {batch_sizes[0]}) to {raster_over_ns[-1]:.1f}x (batch {batch_sizes[-1]})")

# %%
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4), layout="constrained")
xs = np.arange(len(batch_sizes))
for j, (method, color, label) in enumerate((("next_scale", "C0", "next-scale"), ("raster", "C3", "raster"))):
    bars = ax0.bar(xs + (j - 0.5) * 0.38, [1000 * v for v in per_clip[method]], 0.38, color=color, label=label)
    ax0.bar_label(bars, fmt="%.1f ms", fontsize=8)
ax0.set(xticks=xs, xticklabels=[f"batch {b}" for b in batch_sizes], yscale="log", ylabel="milliseconds per clip",
        title="paper grid: seconds per clip, batch 1 (latency) vs batch 16 (throughput)\n"
              + ", ".join(f"batch {b}: raster/next-scale {x:.1f}x" for b, x in zip(batch_sizes, raster_over_ns)))
ms_all = [1000 * v for vals in per_clip.values() for v in vals]
ax0.set_ylim(10 ** math.floor(math.log10(min(ms_all) / 2)), 4 * max(ms_all))  # log axis: bars start below
ax0.legend(fontsize=8, loc="upper right")
work = {"sequential passes": (race_paper[0]["K"], ph * pw),
        "token positions": (tokens_per_clip["next_scale"], tokens_per_clip["raster"])}
for j, (method, color, label) in enumerate((("next_scale", "C0", "next-scale"), ("raster", "C3", "raster"))):
    bars = ax1.bar(np.arange(2) + (j - 0.5) * 0.38, [v[j] for v in work.values()], 0.38, color=color, label=label)
    ax1.bar_label(bars, fmt="%d", fontsize=8)
ax1.set(xticks=np.arange(2), xticklabels=list(work), ylabel="per clip", yscale="log", ylim=(1, 3000),
        title="what each clip costs: passes (latency) vs tokens (work)")
ax1.legend(fontsize=8, loc="upper left")
for ax_ in (ax0, ax1):
    ax_.grid(axis="y", alpha=0.3)
save(fig, "latency_throughput")

# %% [markdown]
# Left, the measured seconds per clip; right, why they move. At batch 1 both samplers are
# dominated by fixed cost per pass, and raster makes 25 times more passes. At batch 16 the
# fixed cost is spread over 16 clips, and the work per token, where raster does about
# 2.7 times less (256 against 680 positions), takes over: the ratio falls (how far depends
# on the machine, on the model's width and on the vocabulary size).
#
# **On a GPU** the balance is different. A GPU runs the thousands of tokens of a
# next-scale pass, even at batch 16, in little more time than it runs one: a pass costs a nearly
# fixed time (launching each layer's kernels, reading its weights from memory) that does
# not grow with its size until the batch is very large. Passes are *latency-bound*, so the
# number of sequential passes decides, and next-scale's 10 beat raster's 256 at batch 1
# and at batch 16 alike. This is why VAR reports its speed-up on GPUs.
# `benchmarks/sampling_speed.py --device cuda` measures both batch sizes there.

# %% [markdown]
# ## 10. Results
#
# Everything measured goes to `results.json` beside the figures. Timings live under
# `"timing"`: they change from run to run, everything else repeats with the seed.

# %%
results = {
    "profile": cfg.profile,
    "seed": seed,
    "run": run_record(cfg, overrides),  # the overrides, the config they gave, the clips per split
    "scales": [list(s) for s in scales],
    "latent_shape": [h, w],
    "tokens_per_clip": L,
    "n_passes_next_scale": race_profile[0]["n_passes_next_scale"],
    "n_passes_raster": race_profile[0]["n_passes_raster"],
    "codebook_size": V,
    "ar": {
        "depth": ar.depth, "width": ar.width, "heads": ar.heads, "n_params": n_params,
        "train_steps": final_train["step"],
        "final_train": {"loss": final_train["loss"], "accuracy": final_train["accuracy"]},
        "final_valid": {"loss": final_valid["loss"], "accuracy": final_valid["accuracy"]},
        "ce_per_scale_valid": ce_valid,
        "uniform_ce": math.log(V),
        "untrained_valid": {"loss": untrained_valid["loss"], "accuracy": untrained_valid["accuracy"]},
    },
    "teacher_forcing": {"input_shape": list(x_in.shape), "logits_shape": list(logits_tf.shape),
                        "clip_ce": ce_clip},
    "generation": {"family": gen_family, "pitch": gen_pitch, **sampling,
                   "stage_l1_to_final": stage_l1},
    "pitch_sweep": {"family": gen_family, "pitches": sweep, "pyin_midi": [finite_or_none(e) for e in sweep_est]},
    "pitch_accuracy": {"accuracy": acc["accuracy"], "octave_errors": acc["octave_errors"],
                       "unvoiced": acc["unvoiced"], "median_abs_cents": finite_or_none(acc["median_abs_cents"]),
                       "n": n_pitch_eval, "target_course": 0.8,
                       "conditions": [[p, FAMILIES[f]] for f, p in conditions], "cents": acc["cents"]},
    "pitch_accuracy_data": {"accuracy": acc_data["accuracy"], "octave_errors": acc_data["octave_errors"],
                            "unvoiced": acc_data["unvoiced"],
                            "median_abs_cents": finite_or_none(acc_data["median_abs_cents"]), "n": n_pitch_eval},
    "family_grid": {"pitch": grid_pitch, "families": grid_names, "seed": seed,
                    "real": [{"split": split, "note": e.note_str, "pitch": e.pitch} for split, e in grid_real]},
    "cfg_sweep": [{"cfg_scale": v.cfg_scale, "pyin_midi": finite_or_none(v.pitch_estimate),
                   "tokens_changed_vs_cfg0": ch} for v, ch in zip(views, changed)],
    "speed": [race_profile[0], race_paper[0]],
    "timing": {
        "sampling_seconds_per_clip": {"next_scale": race_profile[1]["next_scale"], "raster": race_profile[1]["raster"]},
        "speedup": race_profile[1]["speedup"],
        "paper_grid": race_paper[1],
        "latency_vs_throughput": {                      # paper grid, §9.1: batch 1 vs batch 16
            "grid": race_paper[0]["grid"], "batch_sizes": list(batch_sizes),
            "seconds_per_clip": per_clip, "raster_over_next_scale": raster_over_ns,
            "tokens_per_clip": tokens_per_clip,
            "passes_per_clip": {"next_scale": race_paper[0]["n_passes_next_scale"],
                                "raster": race_paper[0]["n_passes_raster"]},
            "threads": 1 if dev.type == "cpu" else None,
        },
        "generation_seconds": gen_seconds,
        "generation_rtf": generation_rtf,
        "fit_seconds": fit_seconds,
        "device": cfg.device,
    },
    "figures": figures,
}
(out / "results.json").write_text(json.dumps(results, indent=2, allow_nan=False))
assert all((out / f).exists() for f in figures)
for key in ("scales", "tokens_per_clip", "n_passes_next_scale", "n_passes_raster"):
    print(f"{key}: {results[key]}")
print("valid loss / accuracy:", results["ar"]["final_valid"])
print("pitch accuracy:", {k: v for k, v in results["pitch_accuracy"].items() if k not in ("conditions", "cents")})
print("timing:", {k: results["timing"][k] for k in ("sampling_seconds_per_clip", "speedup", "generation_rtf")})

# %% [markdown]
# ## Summary
#
# - Next-scale prediction factorises a note's token pyramid as
#   $\prod_k p(r_k \mid r_{<k}, c)$: one transformer, trained on all scales at once
#   under a **block-causal mask**, whose input for scale $k$ is the running
#   reconstruction of the coarser scales downsampled to scale $k$'s grid.
# - Sampling takes one pass per scale: the note appears as a coarse envelope first
#   and gains detail scale by scale; classifier-free guidance, ramped over the scales,
#   trades variety for adherence to the (pitch, family) label, and pYIN pitch accuracy
#   checks the pitch part of that label (target ≥ 80% in `course`).
# - A raster model needs $h w$ sequential passes for the same grid, next-scale only
#   $K$ (10 against 256 on the paper's grid; this profile's counts are printed in §9);
#   that, not cheaper passes, is where the speed comes from. The sizes, scales,
#   guidance and sampling settings are our reproduction choices.
#
# ## Exercises
#
# Each exercise ends with a check cell: set the answer variable `ex03_k` and run the
# check, which regenerates what it can (sampling is deterministic given the seed) and
# tells you what is right or what to look at again. Run the notebook above first.

# %% [markdown]
# ### Exercise 1 · No guidance
#
# Drive the guidance explorer of §8 from code with `explorer.update(cfg_scale=s,
# pitch=gen_pitch, family=gen_family)` for `s` = 0, 4 and 8 (the slider does the same
# in a live kernel) and listen: does the pitch get clearer? For each scale record the
# fraction of the $L$ tokens that differ from the CFG-0 note (compare the views'
# `.indices`) and pYIN's estimate (`.pitch_estimate`). Then rerun the pitch accuracy of
# §7 **on a subset**: at most 16 of its conditions, evenly spaced, once with
# `cfg_scale=0` and once with this run's `sampling` (same seed), scored with
# `pitch_accuracy`. The subset keeps the exercise to about a minute in `course` (§7
# scores 48 clips; here 2 × 16); its accuracy moves in steps of $1/n$, so read small
# differences as noise.
# *Hint:* compare `accuracy` and listen for artefacts at high guidance; more guidance
# means less variety across seeds.
#
# Set `ex03_1` to a dict: `cfg_scales` `[0, 4, 8]`, `tokens_changed_vs_cfg0` and
# `pyin_midi` (one per scale), `n` (conditions scored), `accuracy_cfg0`,
# `accuracy_default`, and `guidance_helps_pitch` (a bool: is the guided accuracy higher?).
#
# *Cost: ≈ 1 min on 2 CPU cores (course): generates 2 × 16 notes and tracks their pitch with pYIN; no training.*

# %% tags=["solution"]
guidance_views = [explorer.update(cfg_scale=s, pitch=gen_pitch, family=gen_family) for s in (0, 4, 8)]
flat_tokens = [torch.cat([i.flatten() for i in v.indices]) for v in guidance_views]
n_sub = min(16, n_pitch_eval)
sub = torch.from_numpy(np.unique(np.linspace(0, n_pitch_eval - 1, n_sub).round().astype(int)))
sub_acc = {}
for name, s in (("cfg0", 0.0), ("default", sampling["cfg_scale"])):
    idx_s = sample_tokens(model, tokenizer, eval_pitch[sub], eval_family[sub], seed=seed, **{**sampling, "cfg_scale": s})
    sub_acc[name] = pitch_accuracy(tokens_to_audio(tokenizer, idx_s, seed=seed)[1], sr, eval_pitch[sub].numpy())
for g_view, g_tokens in zip(guidance_views, flat_tokens):
    print(f"CFG {g_view.cfg_scale:g}: {float((g_tokens != flat_tokens[0]).float().mean()):.0%} of tokens differ "
          f"from CFG 0, pYIN {g_view.pitch_estimate:.1f} (asked {gen_pitch})")
    display(Audio(g_view.waveform, rate=sr))
print(f"pitch accuracy on {len(sub)} conditions: CFG 0 {sub_acc['cfg0']['accuracy']:.0%}, "
      f"CFG {sampling['cfg_scale']:g} {sub_acc['default']['accuracy']:.0%}")
explorer.update(cfg_scale=ar.cfg_scale, pitch=gen_pitch, family=gen_family)  # the widget back to the default
ex03_1 = {
    "cfg_scales": [v.cfg_scale for v in guidance_views],
    "tokens_changed_vs_cfg0": [float((t != flat_tokens[0]).float().mean()) for t in flat_tokens],
    "pyin_midi": [finite_or_none(v.pitch_estimate) for v in guidance_views],
    "n": len(sub),
    "accuracy_cfg0": sub_acc["cfg0"]["accuracy"],
    "accuracy_default": sub_acc["default"]["accuracy"],
    "guidance_helps_pitch": sub_acc["default"]["accuracy"] > sub_acc["cfg0"]["accuracy"],
}

# %% [markdown] tags=["solution"]
# The coarsest scale is never guided ($t_1 = 0$), so its token is the same at every
# scale; the finer scales change more and more as $s$ grows. With a trained model
# (`course`) guidance usually raises the pitch accuracy and, at 8, starts to add buzzy
# artefacts; in `smoke` the model is barely trained and the numbers only show the
# machinery. On 16 conditions one clip is 6 %: a difference of one or two clips is noise.

# %%
lab.check("03.1", ex03_1, model=model, tokenizer=tokenizer, pitch=gen_pitch, family=gen_fam, seed=seed,
          sampling=sampling)

# %% [markdown]
# ### Exercise 2 · Truncated sampling
#
# Sample the pitch sweep of §6 (same pitches, family and seed) three ways: with this
# run's `sampling` (`"default"`), with `top_k=8` (and `top_p=0`), and with `top_p=0.9`
# (and `top_k=0`); see `sample_logits` in `marslib/autoregressor/blocks.py`. Decode
# each with `stage_spectrogram(idx, K)` (§5: the spectrogram, no Griffin-Lim needed)
# and measure its **noise floor**, the median normalised log-magnitude over every bin
# of the sweep (−1 is silence; speckle between the harmonics raises it), and the number
# of **distinct codes** in the finest scale's token maps. What happens to the noise floor?
# *Hint:* both remove the unlikely codes that add speckle; too small a `top_k` makes
# notes alike.
#
# Set `ex03_2` to a dict: `noise_floor` and `distinct_codes`, each a dict over
# `"default"`, `"top_k"`, `"top_p"`, and `fewest_codes`, the name of the setting that
# used the fewest codes.
#
# *Cost: ≈ 15 seconds on 2 CPU cores (course); no training.*

# %% tags=["solution"]
truncations = {"default": {}, "top_k": {"top_k": 8, "top_p": 0.0}, "top_p": {"top_k": 0, "top_p": 0.9}}
trunc_specs, trunc_codes = {}, {}
for name, change in truncations.items():
    idx_t = sample_tokens(model, tokenizer, torch.tensor(sweep), torch.full((len(sweep),), gen_fam), seed=seed,
                          **{**sampling, **change})
    trunc_specs[name] = stage_spectrogram(idx_t, K)                       # (B, 1, F, T)
    trunc_codes[name] = int(idx_t[-1].unique().numel())
fig, ax = plt.subplots(figsize=(8, 3.6), layout="constrained")
freqs = np.linspace(0, sr / 2, cfg.spec_shape[0])
for name, spec_t in trunc_specs.items():  # the sweep's average spectrum: the floor is where it sits between peaks
    ax.plot(freqs, spec_t.mean(dim=(0, 1, 3)).cpu().numpy(),
            label=f"{name}: median {float(spec_t.median()):+.3f}, {trunc_codes[name]} codes")
ax.set(xlabel="frequency (Hz)", ylabel="mean normalised log-magnitude",
       title=f"pitch sweep ({gen_family}) under three truncations")
ax.grid(alpha=0.3)
ax.legend(fontsize=8)
plt.show()
ex03_2 = {
    "noise_floor": {name: float(spec_t.median()) for name, spec_t in trunc_specs.items()},
    "distinct_codes": trunc_codes,
    "fewest_codes": min(trunc_codes, key=trunc_codes.get),
}
print(ex03_2)

# %% [markdown] tags=["solution"]
# Truncation can only remove codes, never add any: at every position it samples from
# the top 8 codes (or from the smallest set holding 90 % of the probability). With a
# trained model that lowers the floor between the harmonics (less speckle); with a
# barely trained one (`smoke`) the distributions are nearly flat, so `top_k=8` simply
# draws from 8 arbitrary codes and the floor tells little.

# %%
lab.check("03.2", ex03_2, model=model, tokenizer=tokenizer, cfg=cfg, pitches=sweep, family=gen_fam, seed=seed,
          sampling=sampling)

# %% [markdown]
# ### Exercise 3 · Temperature
#
# Sample the note of §5 (`gen_pitch`, `gen_fam`) with `temperature` 0.5, 1.0 and 1.5,
# everything else as in `sampling`, with 4 seeds each (`seed`, `seed + 1`, `seed + 2`,
# `seed + 3`). For each temperature measure the **seed disagreement**: over the 6
# pairs of seeds, the mean fraction of the $L$ tokens that differ. Which temperature
# varies most between seeds? *Hint:* temperature divides the logits before the softmax;
# $T \to 0$ is greedy decoding.
#
# Set `ex03_3` to a dict: `temperatures` `[0.5, 1.0, 1.5]`, `seed_disagreement` (one
# per temperature) and `most_varied` (the temperature with the largest disagreement).
#
# *Cost: ≈ 10 seconds on 2 CPU cores (course); no training.*

# %% tags=["solution"]
temperature_draws = {}
for temp in (0.5, 1.0, 1.5):
    temperature_draws[temp] = [
        torch.cat([i.flatten() for i in sample_tokens(model, tokenizer, torch.tensor([gen_pitch]),
                                                      torch.tensor([gen_fam]), seed=s,
                                                      **{**sampling, "temperature": temp})])
        for s in range(seed, seed + 4)]
disagreement = {temp: float(np.mean([(draws[i] != draws[j]).float().mean().item()
                                     for i in range(4) for j in range(i + 1, 4)]))
                for temp, draws in temperature_draws.items()}
ex03_3 = {"temperatures": list(disagreement), "seed_disagreement": list(disagreement.values()),
          "most_varied": max(disagreement, key=disagreement.get)}
print(ex03_3)

# %% [markdown] tags=["solution"]
# Dividing the logits by $T < 1$ sharpens every distribution toward its most likely
# code, so different seeds draw the same token more often; $T > 1$ flattens them toward
# uniform, where two seeds agree on a token only with probability about $1/V$. A trained
# model shows the order clearly; the nearly flat distributions of `smoke` disagree a lot
# at every temperature.

# %%
lab.check("03.3", ex03_3, model=model, tokenizer=tokenizer, pitch=gen_pitch, family=gen_fam, seed=seed,
          sampling=sampling)

# %% [markdown]
# ### Exercise 4 · Count the passes
#
# For the paper's grid (`pcfg` of §9: VAR's 10 scales up to $16 \times 16$), compute by
# hand, for each method, the number of sequential forward passes, the tokens processed
# and the attention query–key pairs per layer that the mask allows, for one clip: first
# with a KV cache, then without one (every pass recomputes the whole prefix, under the
# block-causal mask for next-scale and the causal one for raster). *Hint:* with a cache,
# scale $k$ attends from $h_k w_k$ queries to $\sum_{j \le k} h_j w_j$ keys and raster
# token $i$ to $i$ keys; check the cached totals against `attention_pairs_next_scale`
# and `attention_pairs_raster` in `cmx.representation_costs(pcfg)`.
#
# Set `ex03_4` to a dict with keys `"next_scale"`, `"next_scale_no_cache"`, `"raster"`,
# `"raster_no_cache"`, each a dict of ints `{"passes", "tokens", "pairs"}`.
#
# *Cost: ≈ 1 second on 2 CPU cores (course); arithmetic only, no training.*

# %% tags=["solution"]
p_lengths = [hk * wk for hk, wk in pcfg.tokenizer.scales]
p_cum = np.cumsum(p_lengths)                              # tokens of scales <= k
p_pairs = [lk * ck for lk, ck in zip(p_lengths, p_cum)]   # scale k's queries x keys
n_grid = pcfg.latent_shape[0] * pcfg.latent_shape[1]      # raster tokens, one per pass
ex03_4 = {
    "next_scale": {"passes": len(p_lengths), "tokens": int(p_cum[-1]), "pairs": int(sum(p_pairs))},
    "next_scale_no_cache": {"passes": len(p_lengths), "tokens": int(p_cum.sum()),
                            "pairs": int(np.cumsum(p_pairs).sum())},
    "raster": {"passes": n_grid, "tokens": n_grid, "pairs": sum(range(1, n_grid + 1))},
    "raster_no_cache": {"passes": n_grid, "tokens": sum(range(1, n_grid + 1)),
                        "pairs": sum(i * (i + 1) // 2 for i in range(1, n_grid + 1))},
}
p_cost = cmx.representation_costs(pcfg)[0]
assert ex03_4["next_scale"]["pairs"] == p_cost.attention_pairs_next_scale
assert ex03_4["raster"]["pairs"] == p_cost.attention_pairs_raster
for method, counts in ex03_4.items():
    print(f"{method:>20}: " + ", ".join(f"{key} {value:,}" for key, value in counts.items()))

# %% [markdown] tags=["solution"]
# With a cache next-scale attends over more pairs than raster (every token of a scale
# sees all coarser scales) but in 10 passes instead of 256. Without a cache raster pays
# the most: each of its 256 passes recomputes a growing prefix, so its tokens and pairs
# grow as $n^2/2$ and $n^3/6$; next-scale recomputes only 10 prefixes.

# %%
lab.check("03.4", ex03_4, cfg=pcfg)

# %% [markdown]
# ### Exercise 5 · Cache or no cache
#
# Sample the note of §5 twice with `sample_tokens(..., return_logits=True)`, once with
# the KV cache (`use_cache=True`, the default) and once without (`use_cache=False`),
# same seed and `sampling`. Compare the guided logits of every scale (the largest
# absolute difference) and the token maps, then time both with `seconds_per_clip` of §9.
# *Hint:* they should agree to float precision; the time shows what the cache saves.
#
# Set `ex03_5` to a dict: `max_abs_logit_diff`, `same_tokens` (bool), `seconds_cache`,
# `seconds_no_cache`, and `cache_faster` (bool, from your two times).
#
# *Cost: ≈ 10 seconds on 2 CPU cores (course); no training.*

# %% tags=["solution"]
cache_label = torch.tensor([gen_pitch]), torch.tensor([gen_fam])
with_cache = sample_tokens(model, tokenizer, *cache_label, seed=seed, return_logits=True, **sampling)
no_cache = sample_tokens(model, tokenizer, *cache_label, seed=seed, use_cache=False, return_logits=True, **sampling)
cache_times = [seconds_per_clip(lambda c=c: sample_tokens(model, tokenizer, *cache_label, seed=seed, use_cache=c,
                                                          **sampling)) for c in (True, False)]
ex03_5 = {
    "max_abs_logit_diff": max(float((a - b).abs().max()) for a, b in zip(with_cache[1], no_cache[1])),
    "same_tokens": all(torch.equal(a, b) for a, b in zip(with_cache[0], no_cache[0])),
    "seconds_cache": cache_times[0],
    "seconds_no_cache": cache_times[1],
    "cache_faster": cache_times[0] < cache_times[1],
}
print(ex03_5)

# %% [markdown] tags=["solution"]
# The two paths compute the same function (the mask of the uncached path hides exactly
# what the cache never holds), so the logits agree to float rounding and the tokens are
# identical. On this profile's short sequence the cache saves little; its saving grows
# with the number of scales and tokens (Exercise 4).

# %%
lab.check("03.5", ex03_5, model=model, tokenizer=tokenizer, pitch=gen_pitch, family=gen_fam, seed=seed,
          sampling=sampling)
