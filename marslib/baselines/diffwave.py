"""DiffWave (Kong, Ping, Huang, Zhao & Catanzaro, ICLR 2021) as a vocoder of our spectrogram.

A denoising diffusion model on the raw waveform.  Training corrupts a clip ``x0`` with
Gaussian noise at a random step ``t`` of a fixed schedule (``beta_t`` linear 1e-4 ..
``beta_end`` over ``diffusion_steps``), ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``,
and teaches ``eps_theta(x_t, t, c)`` to predict ``eps`` (the paper's unweighted L2).
Sampling runs the reverse chain from pure noise.

The denoiser is the paper's (Fig. 2): an input 1x1 conv; ``layers`` residual layers, each
a dilated conv (dilation ``2^(i % dilation_cycle)``) of ``x + step embedding``, plus the
conditioner, through the gate ``tanh * sigmoid``, then 1x1 convs to a residual and a skip
output; the skips summed / sqrt(layers) -> ReLU -> 1x1 -> ReLU -> 1x1 (zero-initialised,
so training starts from ``eps_theta = 0``).  The step embedding is the paper's sinusoid
(128) -> FC-swish -> FC-swish (512) -> one FC per layer; we evaluate the sinusoid at the
fractional steps of fast sampling directly (the official code lerps a table: the same).

What we chose:

* Condition: our normalised log-magnitude ``waveform_to_input`` ``(B, 1, F, T)``, the
  same spectrogram MARS's tokenizer reconstructs (DiffWave learns the phase Griffin-Lim
  guesses).  A learned 1x1 conv maps its F = 128 linear bins to ``cond_bins`` bands (the
  paper conditions on 80 mel bands, a fixed map; fewer bands make every layer's per-sample
  1x1 conv cheaper); two transposed 2-D convs bring them to the sample rate (hop 64 = 8 x 8;
  the paper's hop 256 is 16 x 16; leaky ReLU 0.4), then a 1x1 conv per layer.  Family and
  pitch embeddings are added to the step embedding as global conditions: free (one vector
  per clip), and both are labels the evaluation supplies.
* Training sees random crops of ``crop_frames`` frames and the matching
  ``crop_frames * hop`` samples; the spectrogram is computed on the full clip first, so a
  crop's frames are exactly those of the whole note (frame ``t`` is centred on sample
  ``t * hop``).
* Sampling: the paper's fast 6-step schedule (``inference_betas``) with its step
  alignment (each inference step's ``abar`` placed on the training schedule by
  interpolation, official ``inference.py``), or the full ``diffusion_steps`` chain
  (``fast=False``).  Noise comes from ``seed`` through its own generator.

``generate`` is not offered: DiffWave here is a vocoder, and a note from a label alone
would need its unconditional / class-conditional mode (the paper's SC09 model: 36 layers,
1M steps), far beyond the course budget.  Vocoding ``reference`` would only copy a
training note, so the generation row comes from the other systems; ``generate`` raises.

Shapes: waveforms ``x_BS``; spectrogram ``spec_BFT``; hidden ``h_BCS``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..audio import waveform_to_input
from ..config import Config
from .common import random_crop, seeded_noise


def step_embedding(t_B: torch.Tensor, dim: int = 128) -> torch.Tensor:
    """Diffusion step (may be fractional) -> ``(B, dim)`` sinusoid: [sin(t 10^(4i/63)), cos(...)]."""
    half = dim // 2
    freqs = 10.0 ** (torch.arange(half, device=t_B.device) * 4.0 / (half - 1))
    angles = t_B.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResidualLayer(nn.Module):
    """One gated residual layer: ``(h, step, cond) -> (residual out, skip)``."""

    def __init__(self, channels: int, dilation: int, embed_dim: int, n_bins: int):
        super().__init__()
        self.step_proj = nn.Linear(embed_dim, channels)
        self.cond = nn.Conv1d(n_bins, 2 * channels, 1)
        self.dilated = nn.Conv1d(channels, 2 * channels, 3, padding=dilation, dilation=dilation)
        self.out = nn.Conv1d(channels, 2 * channels, 1)

    def forward(self, h_BCS, emb_BE, cond_BFS):
        y = self.dilated(h_BCS + self.step_proj(emb_BE)[:, :, None]) + self.cond(cond_BFS)
        gate, filt = y.chunk(2, dim=1)
        residual, skip = self.out(torch.sigmoid(gate) * torch.tanh(filt)).chunk(2, dim=1)
        return (h_BCS + residual) / math.sqrt(2.0), skip


class DiffWave(nn.Module):
    """DiffWave vocoder: ``eps_theta(x_t, t, spectrogram, pitch, family)`` and its sampler."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg, dw = cfg, cfg.diffwave
        c, embed = dw.residual_channels, 512
        self.hop = cfg.audio.hop_length
        s1 = max(d for d in range(1, int(math.sqrt(self.hop)) + 1) if self.hop % d == 0)  # hop = s1 x s2
        # A learned linear map of the F = 128 linear bins to cond_bins bands at frame rate, where it
        # is cheap (the paper's condition is 80 mel bands, a fixed map): every layer's 1x1 conv
        # of the upsampled condition runs at the sample rate and costs cond_bins x 2C per sample.
        self.bands = nn.Conv1d(cfg.audio.n_bins, dw.cond_bins, 1)
        # Transposed convs (kernel 2s, padding s/2): exactly s x longer each, bands kept.
        self.upsample = nn.ModuleList(nn.ConvTranspose2d(1, 1, (3, 2 * s), stride=(1, s), padding=(1, s // 2))
                                      for s in (s1, self.hop // s1))
        self.embed = nn.Sequential(nn.Linear(128, embed), nn.SiLU(), nn.Linear(embed, embed), nn.SiLU())
        self.pitch_embed = nn.Embedding(128, embed)
        self.family_embed = nn.Embedding(len(cfg.data.family_vocabulary), embed)
        self.input = nn.Conv1d(1, c, 1)
        self.layers = nn.ModuleList(ResidualLayer(c, 2 ** (i % dw.dilation_cycle), embed, dw.cond_bins)
                                    for i in range(dw.layers))
        self.skip_out = nn.Conv1d(c, c, 1)
        self.output = nn.Conv1d(c, 1, 1)
        nn.init.zeros_(self.output.weight)  # the paper: eps_theta starts at 0
        nn.init.zeros_(self.output.bias)
        nn.init.zeros_(self.pitch_embed.weight)  # global conditions start neutral
        nn.init.zeros_(self.family_embed.weight)
        betas = torch.linspace(1e-4, dw.beta_end, dw.diffusion_steps, dtype=torch.float64)
        self.register_buffer("alpha_bar", torch.cumprod(1 - betas, 0).float(), persistent=False)

    def upsample_spec(self, spec_BFT):
        """Spectrogram ``(B, F, T)`` -> bands ``(B, cond_bins, T * hop)`` at the sample rate (x, t
        independent: the sampler computes it once for all its steps)."""
        cond = self.bands(spec_BFT)[:, None]
        for up in self.upsample:
            cond = F.leaky_relu(up(cond), 0.4)
        return cond[:, 0]

    def denoise(self, x_BS, t_B, cond_BFS, pitch_B, family_B):
        """``eps_theta``: noisy audio ``(B, S)``, steps ``(B,)`` (fractional allowed), upsampled
        spectrogram ``(B, F, S)`` -> predicted noise ``(B, S)``."""
        emb = self.embed(step_embedding(t_B)) + self.pitch_embed(pitch_B.long().clamp(0, 127)) \
            + self.family_embed(family_B.long())
        h, skips = F.relu(self.input(x_BS[:, None])), 0.0
        for layer in self.layers:
            h, skip = layer(h, emb, cond_BFS)
            skips = skips + skip
        h = F.relu(self.skip_out(skips / math.sqrt(len(self.layers))))
        return self.output(h)[:, 0]

    def spectrogram(self, waves_BS):
        """``(B, S)`` -> ``(B, F, S // hop)``: the condition, exactly the MARS tokenizer's input."""
        return waveform_to_input(waves_BS, self.cfg.audio)[:, 0]

    def training_losses(self, batch):
        waves, labels = batch
        spec, k = self.spectrogram(waves), self.cfg.diffwave.crop_frames
        # One aligned crop per clip: samples [f * hop, (f + k) * hop) and frames [f, f + k).
        x0, starts = random_crop(waves, k * self.hop, multiple=self.hop)
        frames = (starts[:, None] // self.hop + torch.arange(k)[None]).to(waves.device)
        spec = spec.gather(2, frames[:, None].expand(-1, spec.shape[1], -1))
        t = torch.randint(0, len(self.alpha_bar), (waves.shape[0],), device=waves.device)
        noise = self.prior(torch.randn_like(x0), spec)
        abar = self.alpha_bar[t][:, None]
        x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
        eps = self.denoise(x_t, t, self.upsample_spec(spec), labels["pitch"], labels["family"])
        return {"loss": self.noise_error(eps - noise, spec)}

    def prior(self, white_BS: torch.Tensor, spec_BFT: torch.Tensor) -> torch.Tensor:
        """The diffusion's noise from white noise ``(B, S)`` given the condition ``(B, F, T)``.

        DiffWave's prior is white, ``N(0, I)``.  A hook, so that a study can try a prior shaped
        by the condition (PriorGrad, SpecGrad: ``benchmarks/diffwave_diagnosis.py``).
        """
        return white_BS

    def noise_error(self, err_BS: torch.Tensor, spec_BFT: torch.Tensor) -> torch.Tensor:
        """The training loss of a noise-prediction error ``(B, S)``: its squared norm under the
        prior's covariance, which for a white prior is the paper's plain mean squared error."""
        return err_BS.pow(2).mean()

    def schedule(self, fast: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """``(betas, steps)`` of the reverse chain: inference betas and the (fractional) training
        step each is fed as, found where the training ``abar`` equals the inference one."""
        train_abar = self.alpha_bar.double().cpu().numpy()
        if not fast:
            betas = np.linspace(1e-4, self.cfg.diffwave.beta_end, len(train_abar))
            return betas, np.arange(len(train_abar), dtype=np.float64)
        betas = np.asarray(self.cfg.diffwave.inference_betas, dtype=np.float64)
        abar = np.cumprod(1 - betas)
        steps = []
        for a in abar:  # official inference.py: linear in sqrt(abar) between neighbouring steps
            t = int(np.clip(np.searchsorted(-train_abar, -a) - 1, 0, len(train_abar) - 2))
            hi, lo = np.sqrt(train_abar[t]), np.sqrt(train_abar[t + 1])
            steps.append(t + (hi - np.sqrt(a)) / (hi - lo))
        return betas, np.asarray(steps)

    @torch.no_grad()
    def vocode(self, spec_BFT, pitch_B, family_B, seed: int = 0, fast: bool = True):
        """Spectrogram ``(B, F, T)`` -> waveform ``(B, T * hop)`` by the reverse chain (paper Alg. 2)."""
        b, dev = spec_BFT.shape[0], spec_BFT.device
        betas, steps = self.schedule(fast)
        abar = np.cumprod(1 - betas)
        shape = (b, spec_BFT.shape[-1] * self.hop)
        x, cond = self.prior(seeded_noise(shape, seed, dev), spec_BFT), self.upsample_spec(spec_BFT)
        for n in range(len(betas) - 1, -1, -1):
            t = torch.full((b,), float(steps[n]), device=dev)
            eps = self.denoise(x, t, cond, pitch_B, family_B)
            x = (x - betas[n] / math.sqrt(1 - abar[n]) * eps) / math.sqrt(1 - betas[n])
            if n > 0:  # posterior std sigma_n = sqrt(beta~_n); the last step adds no noise
                sigma = math.sqrt((1 - abar[n - 1]) / (1 - abar[n]) * betas[n])
                x = x + sigma * self.prior(seeded_noise(shape, seed * 1000 + n, dev), spec_BFT)
            x = x.clamp(-1.0, 1.0)
        return x

    @torch.no_grad()
    def resynthesise(self, waves_BS, pitch_B, family_B, seed: int = 0):
        """Held-out notes -> their spectrogram -> DiffWave: the same spectrogram as the tokenizer
        row, with a learned phase instead of Griffin-Lim's."""
        return self.vocode(self.spectrogram(waves_BS), pitch_B, family_B, seed)

    @torch.no_grad()
    def generate(self, pitch_B, family_B, reference_BS, seed: int = 0):
        raise ValueError("DiffWave here is a spectrogram vocoder: it cannot make a note from (pitch, family) "
                         "alone, and vocoding the reference would copy a training note; the generation "
                         "row comes from the other systems (see marslib.baselines.diffwave)")
