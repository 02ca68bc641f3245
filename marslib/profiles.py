"""The named profiles: plain Python functions that each return a :class:`Config`.

* ``smoke``  - CI and any laptop: tiny data and models, every code path in seconds.
* ``course`` - a student laptop CPU: recognisable pitched notes; all five notebooks in under an hour.
* ``paper``  - one GPU: the paper's spectrogram size (512 x 512) and VAR-like models.
* ``gpu_ci`` - the GPU CI workflow (``.github/workflows/gpu.yml``): the paper's shapes on
  CUDA with bf16, narrower models and short schedules, every notebook in minutes on one GPU.

Values the paper does not state are *our reproduction choices* (see ``config.py``
for each field's meaning and ``docs/paper.md`` for the reasoning).  Add a
profile by writing a function here and listing it in :data:`PROFILES`.
"""

from __future__ import annotations

import dataclasses

from .config import (NSYNTH_VELOCITIES, ARConfig, AudioConfig, CMXConfig, Config, DataConfig, DDSPConfig,
                     DiffWaveConfig, EvalConfig, TokenizerConfig, TrainConfig, WaveNetAEConfig)


def _smoke() -> Config:
    # Tiny everything: proves every code path on 2 CPU cores in seconds.
    return Config(
        profile="smoke",
        audio=AudioConfig(n_fft=128, hop_length=32, n_frames=256, griffin_lim_iters=16),
        cmx=CMXConfig(factor=2),                                  # 4 x 32 x 128
        data=DataConfig(root="data/mini_nsynth_smoke", pitch_min=48, pitch_max=72, pitch_step=6,
                        velocities=(100,), programs_per_family=2),  # 100 clips (ranges drop a few)
        tokenizer=TokenizerConfig(channels=16, downsample=8, latent_dim=8, codebook_size=64,
                                  scales=((1, 1), (1, 2), (2, 4), (2, 8), (4, 16))),
        ar=ARConfig(depth=2, width=64, heads=2),
        train_tokenizer=TrainConfig(steps=30, batch_size=8, warmup_steps=5, eval_every=15,
                                    checkpoint_every=15),
        train_ar=TrainConfig(steps=30, batch_size=8, warmup_steps=5, eval_every=15,
                             checkpoint_every=15),
        eval=EvalConfig(classifier_channels=8, classifier_embed=32, crepe_capacity="tiny", crepe_frames=4,
                        ndb_bins=5, kid_subset=20, kid_subsets=10),
        train_classifier=TrainConfig(steps=30, batch_size=8, lr=1e-3, warmup_steps=5, eval_every=15,
                                     checkpoint_every=15),
        # The comparison systems (notebook 06): tiny, every code path.
        ddsp=DDSPConfig(n_harmonics=16, n_noise_bands=17, hidden=32, loss_ffts=(512, 256, 128, 64),
                        train=_smoke_schedule()),
        diffwave=DiffWaveConfig(residual_channels=8, layers=4, dilation_cycle=2, cond_bins=8, crop_frames=16,
                                train=_smoke_schedule(steps=40, lr=5e-3)),
        wavenet_ae=WaveNetAEConfig(channels=8, layers=4, dilation_cycle=4, encoder_channels=8, encoder_layers=4,
                                   embedding_dim=4, embedding_hop=256, crop_samples=1024,
                                   train=_smoke_schedule(steps=60, lr=1e-2)),
    )


def _smoke_schedule(steps: int = 20, lr: float = 1e-3) -> TrainConfig:
    # Seconds each; the sample-level models need more steps and a larger rate to show they learn.
    return TrainConfig(steps=steps, batch_size=4, lr=lr, warmup_steps=5, eval_every=10, checkpoint_every=10)


def _course() -> Config:
    # A laptop CPU: 1 s notes, 128 x 256 spectrograms folded to 16 x 32 x 64, a
    # 16 x 8 latent (frequency x time).  Pitches start at C4: with 62.5 Hz STFT bins the
    # harmonics of lower notes sit 1-4 bins apart, and a tokenizer this small smears them
    # (we measured most reconstructions below MIDI 62 losing their pitch); the paper
    # profile (n_fft 1024) keeps NSynth's full range.
    # The latent is anisotropic: the encoder halves frequency once and time three times,
    # so the 128 finest tokens hold 16 frequency rows (an 8 x 16 grid held 8) and the
    # gradient-difference term keeps partials sharp.  Measured on the 148 held-out clips
    # (benchmarks/results/timbre_design_course.json): the classifier recognises the
    # family of 54 % of reconstructions (8 x 16 grid: 41 %), LSD 5.3 dB (6.1), at the
    # same 261 tokens; the tokenizer trains ~1.7x longer.
    return Config(
        profile="course",
        data=DataConfig(pitch_min=60, pitch_max=84),
        tokenizer=TokenizerConfig(channels=32, downsample=2, time_downsample=8, detail_weight=1.0,
                                  scales=((1, 1), (2, 1), (4, 2), (6, 3), (8, 4), (12, 6), (16, 8))),
        # Both models train under bf16 autocast where the CPU has native bf16 (AVX512-BF16 or
        # AMX; float32 elsewhere, marslib.train.autocast): ~1.6x faster steps, the same
        # quality within the intervals (docs/timbre.md §4).
        train_tokenizer=TrainConfig(steps=1500, batch_size=32, lr=3e-4, warmup_steps=50,
                                    eval_every=250, checkpoint_every=250, amp=True),
        # The transformer's loss weighs every scale half as VAR does (per token) and half alike
        # (ar.scale_balance): the first scales, a handful of tokens that fix the whole note,
        # otherwise weigh 11/261.  Measured on the 148 held-out conditions (docs/timbre.md §3):
        # family recognised 32 % [25-40] (VAR's weighting: 18 % [12-25]), pitch 99 %, FD CREPE
        # 734 (853), at the same cost; every scale alike (1.0) gave 31 % but 95 % pitch, FD 1065.
        ar=ARConfig(scale_balance=0.5),
        train_ar=TrainConfig(steps=1000, batch_size=32, lr=5e-4, warmup_steps=50,
                             eval_every=250, checkpoint_every=250, amp=True),
        # The baselines (raster, truncation) get a quarter of MARS's steps so that all five
        # notebooks fit in an hour on 2 cores; notebook 05 shows why this cannot flip the result.
        eval=EvalConfig(baseline_budget=0.25, crepe_frames=4),
    )


def _paper() -> Config:
    # The paper's 512 x 512 spectrogram (8 s at 16 kHz in its example; NSynth's 4 s
    # with n_fft 1024 / hop 128 here), CMX r = 4 -> 16 x 128 x 128, VAR's 10 scales.
    return Config(
        profile="paper",
        device="cuda",
        audio=AudioConfig(n_fft=1024, hop_length=128, n_frames=512, griffin_lim_iters=100),
        cmx=CMXConfig(factor=4),
        data=DataConfig(root="data/nsynth", source="nsynth", pitch_min=21, pitch_max=108,
                        velocities=NSYNTH_VELOCITIES, workers=8),
        tokenizer=TokenizerConfig(channels=128, downsample=8, latent_dim=32, codebook_size=4096,
                                  scales=tuple((s, s) for s in (1, 2, 3, 4, 5, 6, 8, 10, 13, 16))),
        ar=ARConfig(depth=16, width=1024, heads=16, scale_balance=0.5),  # the course's measured weighting
        train_tokenizer=TrainConfig(steps=100_000, batch_size=64, lr=2e-4, warmup_steps=2000,
                                    eval_every=2000, checkpoint_every=5000, amp=True),
        train_ar=TrainConfig(steps=200_000, batch_size=64, lr=2e-4, warmup_steps=2000,
                             eval_every=2000, checkpoint_every=5000, amp=True),
        eval=EvalConfig(classifier_channels=64, classifier_embed=256, clips_per_condition=4),
        train_classifier=TrainConfig(steps=20_000, batch_size=64, lr=1e-3, warmup_steps=500,
                                     eval_every=1000, checkpoint_every=2000, amp=True),
        # The comparison systems at their published sizes (schedules ours, for one GPU).
        ddsp=DDSPConfig(n_harmonics=100, n_noise_bands=65, hidden=512,
                        train=TrainConfig(steps=100_000, batch_size=32, lr=1e-3, warmup_steps=1000,
                                          eval_every=5000, checkpoint_every=5000)),
        diffwave=DiffWaveConfig(residual_channels=64, layers=30, dilation_cycle=10, cond_bins=80, crop_frames=62,
                                train=TrainConfig(steps=200_000, batch_size=16, lr=2e-4, warmup_steps=1000,
                                                  eval_every=5000, checkpoint_every=5000, amp=True)),
        wavenet_ae=WaveNetAEConfig(channels=512, layers=30, dilation_cycle=10, encoder_channels=128,
                                   encoder_layers=30, crop_samples=6144,
                                   train=TrainConfig(steps=200_000, batch_size=32, lr=2e-4, warmup_steps=1000,
                                                     eval_every=5000, checkpoint_every=5000, amp=True)),
    )


def _gpu_ci() -> Config:
    # The GPU CI workflow (.github/workflows/gpu.yml) runs every notebook with this profile:
    # the paper profile with everything that decides the *shapes* the GPU code paths see
    # (512 x 512 spectrogram, CMX r = 4 -> 16 x 128 x 128, a 16 x 16 latent, VAR's 10
    # scales = 680 tokens, a 4096 x 32 codebook, bf16 autocast on CUDA), shrinking only
    # the data, the widths and the schedules.  Training compute, counted with
    # torch.utils.flop_counter on one step: tokenizer 61 GFLOP per clip (paper: 239),
    # transformer 0.11 TFLOP per clip (paper: 1.3); about 15 PFLOP for the five notebooks,
    # ~13 min at a sustained 20 TFLOP/s (an L4/A10-class GPU in bf16), ~3 min on an H100.
    # Numbers are ours, chosen for that budget, not for quality.
    cfg = _paper()
    cfg.profile = "gpu_ci"
    # Rendered, never downloaded, in its own root: 4 s notes at 16 kHz as NSynth, NSynth's
    # MIDI range 21-108 (each instrument plays its own part of it), 2 of its 5 velocities,
    # 3 GM programs per family: 3,214 notes (2,570 for training), rendered and turned into
    # features in a few minutes on the runner's CPU.
    cfg.data = DataConfig(root="data/mini_nsynth_gpu", pitch_min=21, pitch_max=108, velocities=(75, 127),
                          programs_per_family=3, workers=4)
    cfg.tokenizer.channels = 64                              # half the paper's conv width: ~4x fewer FLOPs
    cfg.ar = ARConfig(depth=8, width=512, heads=8, scale_balance=0.5)  # 41 M parameters (d16: 309 M)
    # 2,000 steps of 32 clips (~25 epochs of the train split): pitched reconstructions and
    # samples worth listening to; validation and checkpoints every 500 steps exercise both
    # paths four times.
    cfg.train_tokenizer = TrainConfig(steps=2000, batch_size=32, lr=3e-4, warmup_steps=100,
                                      eval_every=500, checkpoint_every=500, amp=True)
    cfg.train_ar = dataclasses.replace(cfg.train_tokenizer)
    # 96 held-out conditions (of ~320): pYIN runs on the CPU at ~0.4 s per 4 s clip, and
    # notebooks 04/05 score 8 clip sets, so ~5 min.  Baselines at a quarter of MARS's steps,
    # as in course.  The course classifier's width (4.6 GFLOP per 512 x 512 clip), 600 steps
    # (the course classifier reaches ~99 % pitch accuracy in 300).
    cfg.eval = EvalConfig(max_conditions=96, baseline_budget=0.25)
    cfg.train_classifier = TrainConfig(steps=600, batch_size=32, lr=1e-3, warmup_steps=50, eval_every=200,
                                       checkpoint_every=200, amp=True)
    # The comparison systems (notebook 06): DDSP and DiffWave at their published sizes, a narrower WaveNet
    # (its sampler takes one sequential step per sample: 65,536 per 4 s clip), 2,000 steps each.
    short = TrainConfig(steps=2000, batch_size=16, lr=3e-4, warmup_steps=100, eval_every=500, checkpoint_every=500,
                        amp=True)
    cfg.ddsp.train = dataclasses.replace(short, lr=1e-3, amp=False)  # the synthesiser's float64 phase: keep fp32
    cfg.diffwave.train = dataclasses.replace(short)
    cfg.wavenet_ae = dataclasses.replace(cfg.wavenet_ae, channels=128, layers=20, encoder_channels=64,
                                         encoder_layers=20, train=dataclasses.replace(short))
    return cfg


PROFILES = {"smoke": _smoke, "course": _course, "paper": _paper, "gpu_ci": _gpu_ci}


# --- how long training takes ---------------------------------------------------------
# Measured wall minutes of each model's training on 2 CPU cores, as ``(steps, minutes)``:
# what training announces before its first step (``marslib.train.training_notice``) and what
# ``setup_run``'s banner lists.  Keyed by the model's folder in the run (``runs/<profile>/<model>``)
# or, for a folder not listed (``truncate/tokenizer``, an exercise's run), by checkpoint kind.
# Other step counts scale linearly.  The numbers are honest, not tidy: the machines were shared,
# so the same work took up to twice as long from one run to the next; treat them as "about".
MEASURED_TRAIN_MINUTES: dict[str, dict[str, tuple[int, float]]] = {
    "course": {
        # bf16 autocast (this CPU has AVX512-BF16), each alone on the two cores, `mars train`'s
        # wall time (docs/timbre.md §4); in float32 a fresh `make reproduce` took 15.2 and ≈ 24 min
        "tokenizer": (1500, 10.7),
        "ar": (1000, 18.5),
        # the same run, from its checkpoints' times: 100 steps in 27 s (plus reading the dataset)
        "classifier": (300, 1.5),
        # the same run, notebook 04 (timing.fit_seconds 401 s in all): 3.9 min + 2.8 min
        "raster_tokenizer": (375, 3.9),
        "raster": (250, 2.8),
        # marslib/config.py's DDSPConfig (1,800 steps, 11 min on 2 idle cores; a fresh run, a7d572a:
        # 1,200 steps in 469 s); diffwave and wavenet_ae from that run's notebook 06,
        # budgets.<name>.seconds_here, 518 s and 363 s
        "ddsp": (1800, 11.0),
        "diffwave": (1200, 8.6),
        "wavenet_ae": (1800, 6.0),
    },
    "smoke": {
        # each fit_* alone on a fresh smoke dataset, 1 thread, cores shared (seconds / 60); the
        # first to read the data (tokenizer, raster_tokenizer, ddsp) also build its feature store
        "tokenizer": (30, 11.0 / 60), "ar": (30, 2.2 / 60), "classifier": (30, 1.6 / 60),
        "raster_tokenizer": (30, 14.7 / 60), "raster": (30, 1.3 / 60),
        "ddsp": (20, 14.4 / 60), "diffwave": (40, 2.5 / 60), "wavenet_ae": (60, 4.9 / 60),
    },
}


def expected_train_minutes(profile: str, model: str, kind: str, steps: int) -> float | None:
    """Measured minutes for ``steps`` steps of ``model`` (folder name) or, failing that, of
    ``kind`` in ``profile`` (see :data:`MEASURED_TRAIN_MINUTES`); None if never measured."""
    table = MEASURED_TRAIN_MINUTES.get(profile, {})
    measured = table.get(model) or table.get(kind)
    if measured is None:
        return None
    measured_steps, minutes = measured
    return minutes * steps / measured_steps


def format_minutes(minutes: float | None) -> str:
    """``"≈ 28 min on 2 CPU cores"``, ``"≈ 40 s on 2 CPU cores"`` under a minute, or why there is no estimate."""
    if minutes is None:
        return "time never measured for this profile"
    return f"≈ {minutes * 60:.0f} s on 2 CPU cores" if minutes < 1 else f"≈ {minutes:.0f} min on 2 CPU cores"
