"""DDSP: a harmonic plus filtered-noise synthesiser driven by a small decoder.

Engel, Hantrakul, Gu & Roberts, "DDSP: Differentiable Digital Signal Processing",
ICLR 2020.  Their NSynth autoencoder, which we follow:

* inputs per frame (one per ``audio.hop_length`` samples): f0, A-weighted loudness and a
  latent ``z``.  f0 comes from the note's MIDI label (constant over the note; the paper used
  CREPE's estimate), loudness from the audio (:func:`common.loudness`), ``z`` from the
  audio's MFCCs (:class:`MFCCEncoder`, ``z_dim`` channels).  As MARS is conditioned on
  family, a learned family embedding is a fourth input;
* decoder: an MLP per input (3 x Dense + LayerNorm + leaky ReLU), a GRU over the
  concatenation, an MLP over [GRU output, inputs], one linear layer -> controls;
* controls, squashed by DDSP's ``exp_sigmoid`` (positive, at most 2, gradients at small
  values): an overall harmonic amplitude, a harmonic distribution (harmonics at or above
  Nyquist zeroed, then normalised to sum 1, as DDSP does rather than a softmax) and the
  magnitudes of ``n_noise_bands`` noise filter bands (bias -5: the noise starts quiet);
* synthesiser: an additive bank of ``n_harmonics`` sinusoids at the sample rate (phase =
  cumulative sum of 2 pi f0 / sr, amplitudes linearly upsampled from the frames) plus
  white noise filtered per frame by a linear-phase FIR designed by frequency sampling;
  optionally a learned reverb (off in our profiles: NSynth notes are dry);
* loss: the multi-scale spectral loss (:func:`common.multiscale_spectral_loss`).

Why ``z``, and why dropped at random: a family holds many instruments, and one family
embedding can only hold their average envelope (without ``z``, 48 % of course
resynthesised notes were recognised, organs and reeds almost never).  ``z`` carries the
note's own envelope into resynthesis.  A generator has no note to take ``z`` from, so
during training ``z_dropout`` of the notes get a learned "no z" vector instead (as
classifier-free guidance drops labels): the same model then generates from f0, loudness
and family alone.

``resynthesise`` takes loudness and ``z`` from the given audio; ``generate`` has no audio
of the note to ask for, and DDSP has no model of loudness, so it takes the loudness
envelope of ``reference``, a training note of the requested family at the nearest pitch
(a performance "drawn from the family's training notes"), with the requested pitch's f0,
the family and "no z".  Nothing else of the reference is used.

Noise at inference comes from ``seed`` (its own generator); in training from the global RNG.
"""

from __future__ import annotations

import math

import librosa
import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config
from .common import loudness, midi_to_hz, multiscale_spectral_loss, seeded_noise, upsample


def exp_sigmoid(x: torch.Tensor, exponent: float = 10.0, max_value: float = 2.0, threshold: float = 1e-7
                ) -> torch.Tensor:
    """DDSP's output nonlinearity: ``max * sigmoid(x) ** log(exponent) + threshold``."""
    return max_value * torch.sigmoid(x) ** math.log(exponent) + threshold


def mlp(n_in: int, width: int, layers: int = 3) -> nn.Sequential:
    """DDSP's fc stack: ``layers`` x (Linear, LayerNorm, leaky ReLU)."""
    mods = []
    for i in range(layers):
        mods += [nn.Linear(n_in if i == 0 else width, width), nn.LayerNorm(width), nn.LeakyReLU()]
    return nn.Sequential(*mods)


def harmonic_synth(f0_BT: torch.Tensor, amps_BTK: torch.Tensor, n_samples: int, sample_rate: int) -> torch.Tensor:
    """Additive synthesis: ``K`` sinusoids at ``k * f0`` (k = 1..K) with frame-rate amplitudes -> ``(B, S)``.

    Frame ``t`` sits at sample ``t * hop`` (as the centred loudness frames do); between frames
    the amplitudes are linearly interpolated, the last frame held.  Interpolating inside each
    hop as two batched matmuls never builds the ``(B, S, K)`` upsampled amplitudes, a third
    less time per training step than upsampling them.
    """
    b, t, k = amps_BTK.shape
    hop = n_samples // t
    harmonic = torch.arange(1, k + 1, device=f0_BT.device)
    f0_BS = upsample(f0_BT[..., None], n_samples)[..., 0]
    # float64 cumsum, wrapped to [0, 2 pi): float32 phase of a 1 s note at 4 kHz is off by
    # ~1e-3 rad, times 30 harmonics -- audible detuning of the upper partials.
    phase_BS = torch.remainder(torch.cumsum(2 * math.pi * f0_BS.double() / sample_rate, 1), 2 * math.pi).float()
    sines = torch.sin(phase_BS[:, : t * hop, None] * harmonic).reshape(b, t, hop, k)
    alpha = (torch.arange(hop, device=f0_BT.device) / hop)[:, None]          # (hop, 1) position in the hop
    nxt = torch.cat([amps_BTK[:, 1:], amps_BTK[:, -1:]], 1)                   # frame t + 1, last one held
    y = (sines * (1 - alpha)) @ amps_BTK[..., None] + (sines * alpha) @ nxt[..., None]   # (B, T, hop, 1)
    return y.reshape(b, t * hop)


def filtered_noise(noise_BS: torch.Tensor, mags_BTN: torch.Tensor) -> torch.Tensor:
    """White noise cut into ``T`` frames, each filtered by a zero-phase FIR whose response is ``mags`` -> ``(B, S)``.

    Frequency sampling (DDSP's ``frequency_filter``): ``N`` magnitudes are ``N`` rFFT bins of an
    impulse response of ``2 (N - 1)`` taps; shifting it to the centre and a Hann window make it a
    smooth, linear-phase FIR.  Frames are convolved by FFT and overlap-added; the filter's
    delay (half its length) is trimmed so noise stays aligned with the harmonics.
    """
    b, t, n = mags_BTN.shape
    hop = noise_BS.shape[-1] // t
    ir = torch.fft.irfft(mags_BTN.to(torch.complex64), dim=-1)              # (B, T, 2(N-1)), zero-phase
    n_ir = ir.shape[-1]
    ir = torch.roll(ir, n_ir // 2, -1) * torch.hann_window(n_ir, device=ir.device)
    length = hop + n_ir - 1                                                 # full linear convolution
    n_fft = 1 << (length - 1).bit_length()
    frames = noise_BS[:, : t * hop].reshape(b, t, hop)
    y = torch.fft.irfft(torch.fft.rfft(frames, n_fft) * torch.fft.rfft(ir, n_fft), n_fft)[..., :length]
    # overlap-add frame i at sample i * hop: fold treats the (B, length, T) columns as 1-D patches
    out = F.fold(y.transpose(1, 2), (1, (t - 1) * hop + length), (1, length), stride=(1, hop))
    return out[:, 0, 0, n_ir // 2: n_ir // 2 + noise_BS.shape[-1]]


def dct_matrix(n_out: int, n_in: int) -> torch.Tensor:
    """The orthonormal DCT-II as a matrix ``(n_out, n_in)``: MFCCs are its product with log-mel energies."""
    n, k = torch.arange(n_in).double(), torch.arange(n_out).double()[:, None]
    m = torch.cos(math.pi / n_in * (n + 0.5) * k) * math.sqrt(2.0 / n_in)
    m[0] /= math.sqrt(2.0)
    return m.float()


class MFCCEncoder(nn.Module):
    """DDSP's ``z`` encoder: MFCCs per frame -> LayerNorm -> GRU -> Linear -> ``z (B, T, z_dim)``.

    30 MFCCs of a 128-band mel spectrogram (FFT 1024), one frame per hop, as the paper's
    autoencoder: a smooth summary of the spectral envelope, the timbre that f0 and loudness
    leave open (which instrument of the family; an organ's missing partials).
    """

    N_FFT, N_MELS, N_MFCC = 1024, 128, 30

    def __init__(self, cfg: Config):
        super().__init__()
        a, c = cfg.audio, cfg.ddsp
        self.hop = a.hop_length
        mel = librosa.filters.mel(sr=a.sample_rate, n_fft=self.N_FFT, n_mels=self.N_MELS)
        self.register_buffer("mel", torch.as_tensor(mel, dtype=torch.float32), persistent=False)
        self.register_buffer("dct", dct_matrix(self.N_MFCC, self.N_MELS), persistent=False)
        self.norm = nn.LayerNorm(self.N_MFCC)
        self.gru = nn.GRU(self.N_MFCC, c.hidden, batch_first=True)
        self.out = nn.Linear(c.hidden, c.z_dim)

    def forward(self, waves_BS: torch.Tensor) -> torch.Tensor:
        window = torch.hann_window(self.N_FFT, device=waves_BS.device)
        power = torch.stft(waves_BS, self.N_FFT, self.hop, window=window, return_complex=True).abs().pow(2)
        mel_db = 10 * torch.log10(self.mel @ power + 1e-10)                     # (B, mels, T + 1)
        mfcc = (self.dct @ mel_db)[..., : waves_BS.shape[-1] // self.hop]       # (B, 30, T)
        h, _ = self.gru(self.norm(mfcc.transpose(1, 2)))
        return self.out(h)


class DDSP(nn.Module):
    """Decoder (f0, loudness, family -> controls) + harmonic/noise synthesiser; waveforms ``(B, S)``."""

    LD_RANGE = 120.0  # dB: DDSP scales loudness as ld / 120 + 1 (about [0, 1])

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        c, a = cfg.ddsp, cfg.audio
        self.f0_mlp, self.ld_mlp = mlp(1, c.hidden), mlp(1, c.hidden)
        self.family = nn.Embedding(len(cfg.data.family_vocabulary), c.hidden)
        n_in = 3 + bool(c.z_dim)  # inputs through their own MLP (or embedding): f0, loudness, family [, z]
        if c.z_dim:
            self.z_encoder, self.z_mlp = MFCCEncoder(cfg), mlp(c.z_dim, c.hidden)
            self.z_null = nn.Parameter(torch.zeros(c.z_dim))  # "no z": what generate decodes with
        self.gru = nn.GRU(n_in * c.hidden, c.hidden, batch_first=True)
        self.out_mlp = mlp((n_in + 1) * c.hidden, c.hidden)
        self.out = nn.Linear(c.hidden, 1 + c.n_harmonics + c.n_noise_bands)
        # DDSP's trainable reverb: a learned impulse response (0.25 s here), its tap 0 held at 0
        # so the dry signal passes once, added to the wet.
        self.ir = nn.Parameter(1e-3 * torch.randn(a.sample_rate // 4)) if c.reverb else None

    def controls(self, pitch_B: torch.Tensor, family_B: torch.Tensor, ld_BT: torch.Tensor,
                 z_BTZ: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Frame-rate controls: ``f0 (B, T)`` Hz, harmonic amplitudes ``(B, T, K)``, noise magnitudes ``(B, T, N)``.

        ``z_BTZ``: the latent of the note (``None``: the learned "no z" vector, see ``z_dropout``).
        """
        c, sr = self.cfg.ddsp, self.cfg.audio.sample_rate
        t = ld_BT.shape[1]
        f0_BT = midi_to_hz(pitch_B)[:, None].expand(-1, t)
        f0_in = (pitch_B.float() / 127.0)[:, None, None].expand(-1, t, 1)  # DDSP: midi / 127
        ld_in = (ld_BT / self.LD_RANGE + 1.0)[..., None]
        fam = self.family(family_B)[:, None].expand(-1, t, -1)
        x = [self.f0_mlp(f0_in), self.ld_mlp(ld_in), fam]
        if c.z_dim:
            x.append(self.z_mlp(self.z_null.expand(len(pitch_B), t, -1) if z_BTZ is None else z_BTZ))
        x = torch.cat(x, -1)                                              # (B, T, 3H or 4H)
        h, _ = self.gru(x)
        raw = self.out(self.out_mlp(torch.cat([h, x], -1)))               # (B, T, 1 + K + N)
        amp, dist, noise = raw.split([1, c.n_harmonics, c.n_noise_bands], -1)
        # harmonics at or above Nyquist would alias: zero them before normalising, so the
        # amplitude the decoder asks for goes to the audible ones.
        k = torch.arange(1, c.n_harmonics + 1, device=raw.device)
        dist = exp_sigmoid(dist) * (f0_BT[..., None] * k < sr / 2)
        dist = dist / dist.sum(-1, keepdim=True).clamp_min(1e-7)
        return f0_BT, exp_sigmoid(amp) * dist, exp_sigmoid(noise - 5.0)

    def synthesise(self, pitch_B: torch.Tensor, family_B: torch.Tensor, ld_BT: torch.Tensor,
                   noise_BS: torch.Tensor, z_BTZ: torch.Tensor | None = None) -> torch.Tensor:
        """Controls -> audio ``(B, S)``, ``S = noise_BS.shape[1]`` (white noise in, filtered)."""
        f0_BT, harm_BTK, mags_BTN = self.controls(pitch_B, family_B, ld_BT, z_BTZ)
        s = noise_BS.shape[-1]
        audio = harmonic_synth(f0_BT, harm_BTK, s, self.cfg.audio.sample_rate) + filtered_noise(noise_BS, mags_BTN)
        if self.ir is not None:
            ir = torch.cat([self.ir.new_zeros(1), self.ir[1:]])
            n = 1 << (s + ir.shape[0] - 2).bit_length()
            audio = audio + torch.fft.irfft(torch.fft.rfft(audio, n) * torch.fft.rfft(ir, n), n)[:, :s]
        return audio

    def _loudness(self, waves_BS: torch.Tensor) -> torch.Tensor:
        return loudness(waves_BS, self.cfg.audio.sample_rate, self.cfg.audio.hop_length)

    def _z(self, waves_BS: torch.Tensor) -> torch.Tensor | None:
        return self.z_encoder(waves_BS) if self.cfg.ddsp.z_dim else None

    def training_losses(self, batch) -> dict[str, torch.Tensor]:
        """Resynthesise the batch's notes (global-RNG noise) and compare spectra at several scales.

        With a latent, ``z_dropout`` of the notes (in training) get the "no z" vector instead of
        their own ``z``, so that one model both resynthesises (with ``z``) and generates (without).
        """
        waves, labels = batch
        z = self._z(waves)
        if z is not None and self.training and self.cfg.ddsp.z_dropout:
            drop = torch.rand(len(waves), device=waves.device) < self.cfg.ddsp.z_dropout
            z = torch.where(drop[:, None, None], self.z_null.expand_as(z), z)
        audio = self.synthesise(labels["pitch"], labels["family"], self._loudness(waves), torch.randn_like(waves), z)
        return {"loss": multiscale_spectral_loss(audio, waves, tuple(self.cfg.ddsp.loss_ffts))}

    def _render(self, pitch_B, family_B, ld_BT, seed: int, z_BTZ=None) -> torch.Tensor:
        s = self.cfg.audio.clip_samples
        noise = seeded_noise((len(pitch_B), s), seed, device=ld_BT.device)
        # a synthesiser is not bounded: clip the rare overshoot to the valid range
        return self.synthesise(pitch_B, family_B, ld_BT, noise, z_BTZ).clamp(-1.0, 1.0)

    @torch.no_grad()
    def resynthesise(self, waves_BS: torch.Tensor, pitch_B: torch.Tensor, family_B: torch.Tensor,
                     seed: int = 0) -> torch.Tensor:
        """Notes ``(B, S)`` -> their loudness and ``z``, the label's f0 and family -> synthesised ``(B, S)``."""
        return self._render(pitch_B, family_B, self._loudness(waves_BS), seed, self._z(waves_BS))

    @torch.no_grad()
    def generate(self, pitch_B: torch.Tensor, family_B: torch.Tensor, reference_BS: torch.Tensor,
                 seed: int = 0) -> torch.Tensor:
        """A note per (pitch, family), played with the loudness envelope of ``reference_BS``, without
        a ``z`` (the learned "no z" vector; see module doc)."""
        return self._render(pitch_B, family_B, self._loudness(reference_BS), seed)
