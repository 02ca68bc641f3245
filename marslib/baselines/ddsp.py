"""DDSP: a harmonic plus filtered-noise synthesiser driven by a small decoder.

Engel, Hantrakul, Gu & Roberts, "DDSP: Differentiable Digital Signal Processing",
ICLR 2020.  Their NSynth model without a latent ``z`` (their "RnnFcDecoder"), which we follow:

* inputs per frame (one per ``audio.hop_length`` samples): f0 and A-weighted loudness.
  f0 comes from the note's MIDI label (constant over the note; the paper used CREPE's
  estimate), loudness from the audio (:func:`common.loudness`).  As MARS is conditioned
  on family, a learned family embedding is a third input;
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

No latent ``z`` (the paper's MFCC encoder): timbre comes from the family embedding only,
the same condition MARS gets, so ``generate`` needs no encoder of a reference's timbre.

``resynthesise`` takes loudness from the given audio; ``generate`` has no audio of the
note to ask for, and DDSP has no model of loudness, so it takes the loudness envelope
of ``reference``, a training note of the requested family at the nearest pitch (a
performance "drawn from the family's training notes"), with the requested pitch's f0
and family.  Nothing else of the reference is used.

Noise at inference comes from ``seed`` (its own generator); in training from the global RNG.
"""

from __future__ import annotations

import math

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


class DDSP(nn.Module):
    """Decoder (f0, loudness, family -> controls) + harmonic/noise synthesiser; waveforms ``(B, S)``."""

    LD_RANGE = 120.0  # dB: DDSP scales loudness as ld / 120 + 1 (about [0, 1])

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        c, a = cfg.ddsp, cfg.audio
        self.f0_mlp, self.ld_mlp = mlp(1, c.hidden), mlp(1, c.hidden)
        self.family = nn.Embedding(len(cfg.data.family_vocabulary), c.hidden)
        self.gru = nn.GRU(3 * c.hidden, c.hidden, batch_first=True)
        self.out_mlp = mlp(4 * c.hidden, c.hidden)
        self.out = nn.Linear(c.hidden, 1 + c.n_harmonics + c.n_noise_bands)
        # DDSP's trainable reverb: a learned impulse response (0.25 s here), its tap 0 held at 0
        # so the dry signal passes once, added to the wet.
        self.ir = nn.Parameter(1e-3 * torch.randn(a.sample_rate // 4)) if c.reverb else None

    def controls(self, pitch_B: torch.Tensor, family_B: torch.Tensor, ld_BT: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Frame-rate controls: ``f0 (B, T)`` Hz, harmonic amplitudes ``(B, T, K)``, noise magnitudes ``(B, T, N)``."""
        c, sr = self.cfg.ddsp, self.cfg.audio.sample_rate
        t = ld_BT.shape[1]
        f0_BT = midi_to_hz(pitch_B)[:, None].expand(-1, t)
        f0_in = (pitch_B.float() / 127.0)[:, None, None].expand(-1, t, 1)  # DDSP: midi / 127
        ld_in = (ld_BT / self.LD_RANGE + 1.0)[..., None]
        fam = self.family(family_B)[:, None].expand(-1, t, -1)
        x = torch.cat([self.f0_mlp(f0_in), self.ld_mlp(ld_in), fam], -1)   # (B, T, 3H)
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
                   noise_BS: torch.Tensor) -> torch.Tensor:
        """Controls -> audio ``(B, S)``, ``S = noise_BS.shape[1]`` (white noise in, filtered)."""
        f0_BT, harm_BTK, mags_BTN = self.controls(pitch_B, family_B, ld_BT)
        s = noise_BS.shape[-1]
        audio = harmonic_synth(f0_BT, harm_BTK, s, self.cfg.audio.sample_rate) + filtered_noise(noise_BS, mags_BTN)
        if self.ir is not None:
            ir = torch.cat([self.ir.new_zeros(1), self.ir[1:]])
            n = 1 << (s + ir.shape[0] - 2).bit_length()
            audio = audio + torch.fft.irfft(torch.fft.rfft(audio, n) * torch.fft.rfft(ir, n), n)[:, :s]
        return audio

    def _loudness(self, waves_BS: torch.Tensor) -> torch.Tensor:
        return loudness(waves_BS, self.cfg.audio.sample_rate, self.cfg.audio.hop_length)

    def training_losses(self, batch) -> dict[str, torch.Tensor]:
        """Resynthesise the batch's notes (global-RNG noise) and compare spectra at several scales."""
        waves, labels = batch
        audio = self.synthesise(labels["pitch"], labels["family"], self._loudness(waves), torch.randn_like(waves))
        return {"loss": multiscale_spectral_loss(audio, waves, tuple(self.cfg.ddsp.loss_ffts))}

    def _render(self, pitch_B, family_B, ld_BT, seed: int) -> torch.Tensor:
        s = self.cfg.audio.clip_samples
        noise = seeded_noise((len(pitch_B), s), seed, device=ld_BT.device)
        # a synthesiser is not bounded: clip the rare overshoot to the valid range
        return self.synthesise(pitch_B, family_B, ld_BT, noise).clamp(-1.0, 1.0)

    @torch.no_grad()
    def resynthesise(self, waves_BS: torch.Tensor, pitch_B: torch.Tensor, family_B: torch.Tensor,
                     seed: int = 0) -> torch.Tensor:
        """Notes ``(B, S)`` -> their loudness, the label's f0 and family -> synthesised ``(B, S)``."""
        return self._render(pitch_B, family_B, self._loudness(waves_BS), seed)

    @torch.no_grad()
    def generate(self, pitch_B: torch.Tensor, family_B: torch.Tensor, reference_BS: torch.Tensor,
                 seed: int = 0) -> torch.Tensor:
        """A note per (pitch, family), played with the loudness envelope of ``reference_BS`` (see module doc)."""
        return self._render(pitch_B, family_B, self._loudness(reference_BS), seed)
