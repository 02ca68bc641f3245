"""The three named profiles: plain Python functions that each return a :class:`Config`.

* ``smoke``  - CI and any laptop: tiny data and models, every code path in seconds.
* ``course`` - a student laptop CPU: recognisable pitched notes; all five notebooks in under an hour.
* ``paper``  - one GPU: the paper's spectrogram size (512 x 512) and VAR-like models.

Values the paper does not state are *our reproduction choices* (see ``config.py``
for each field's meaning and ``shared/PAPER.md`` for the reasoning).  Add a
profile by writing a function here and listing it in :data:`PROFILES`.
"""

from __future__ import annotations

from .config import (NSYNTH_VELOCITIES, ARConfig, AudioConfig, CMXConfig, Config, DataConfig, EvalConfig,
                     TokenizerConfig, TrainConfig)


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
    )


def _course() -> Config:
    # A laptop CPU: 1 s notes, 128 x 256 spectrograms folded to 16 x 32 x 64, an
    # 8 x 16 latent.  Pitches start at C4: with 62.5 Hz STFT bins the harmonics of
    # lower notes sit 1-4 bins apart, and a tokenizer this small smears them (we
    # measured most reconstructions below MIDI 62 losing their pitch); the paper
    # profile (n_fft 1024) keeps NSynth's full range.
    return Config(
        profile="course",
        data=DataConfig(pitch_min=60, pitch_max=84),
        tokenizer=TokenizerConfig(channels=32),
        train_tokenizer=TrainConfig(steps=1500, batch_size=32, lr=3e-4, warmup_steps=50,
                                    eval_every=250, checkpoint_every=250),
        train_ar=TrainConfig(steps=1000, batch_size=32, lr=5e-4, warmup_steps=50,
                             eval_every=250, checkpoint_every=250),
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
        ar=ARConfig(depth=16, width=1024, heads=16),
        train_tokenizer=TrainConfig(steps=100_000, batch_size=64, lr=2e-4, warmup_steps=2000,
                                    eval_every=2000, checkpoint_every=5000, amp=True),
        train_ar=TrainConfig(steps=200_000, batch_size=64, lr=2e-4, warmup_steps=2000,
                             eval_every=2000, checkpoint_every=5000, amp=True),
        eval=EvalConfig(classifier_channels=64, classifier_embed=256, clips_per_condition=4),
        train_classifier=TrainConfig(steps=20_000, batch_size=64, lr=1e-3, warmup_steps=500,
                                     eval_every=1000, checkpoint_every=2000, amp=True),
    )


PROFILES = {"smoke": _smoke, "course": _course, "paper": _paper}
