"""The NSynth WaveNet autoencoder (Engel, Resnick, Roberts, Dieleman, Eck, Simonyan & Norouzi,
"Neural Audio Synthesis of Musical Notes with WaveNet Autoencoders", ICML 2017).

A temporal encoder squeezes a note into a slow embedding (``embedding_dim`` channels, one
frame per ``embedding_hop`` samples: 16 x 32 ms in the paper); a WaveNet decoder rebuilds the
waveform one mu-law sample at a time, conditioned at every layer on that embedding and on
the note's MIDI pitch.  Shapes: waves ``x_BS``, embedding ``z_BDF`` (F = S // hop).

* Encoder (paper Fig. 1): a 1-wide conv, then ``encoder_layers`` non-causal residual blocks
  (ReLU -> dilated conv, kernel 3 -> ReLU -> 1x1, added back), dilations 1 .. 2^(cycle-1)
  repeated, a 1x1 to ``embedding_dim`` and average pooling by ``embedding_hop``.
* Decoder: a causal WaveNet (kernel 2, as van den Oord et al. 2016) on the previous sample's
  mu-law value scaled to [-1, 1] (the NSynth code feeds the scaled value, not a one-hot);
  gated residual layers, each biased by 1x1 projections of the embedding (repeated to the
  sample rate, the paper's nearest upsampling) and of a learned pitch embedding (the paper's
  pitch conditioning); skips -> ReLU -> 1x1 -> ReLU -> 1x1 -> ``quantization`` logits,
  trained by cross-entropy on each next sample's class.
* Training sees random crops of ``crop_samples`` starting at a multiple of ``embedding_hop``,
  so every pooled frame covers the same samples it would in the full clip.
* Sampling is Fast WaveNet (Paine et al. 2016): each layer keeps a queue of its last
  ``dilation`` inputs, so a new sample costs one matrix product per layer instead of a pass
  over the whole past; :meth:`_logits` (the full, teacher-forced pass) gives the same logits
  (tests/test_baseline_wavenet_ae.py).  Samples are drawn from the softmax with the call's
  own ``torch.Generator``; all clips of a call advance together, one sample per step.

``resynthesise`` encodes the held-out note and decodes it with its own pitch.  ``generate``
is what NSynth offers for a new (pitch, family): it has no prior over embeddings, so it takes
the *embedding* of ``reference`` (a training note of the family at the nearest pitch, which
carries the family's timbre and envelope) and decodes it with the *requested* pitch, the
paper's pitch-conditioning experiment (Sec. 5.3).  Nothing else of the reference is used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config
from .common import mu_law_decode, mu_law_encode, random_crop


def _dilations(layers: int, cycle: int) -> list[int]:
    return [2 ** (i % cycle) for i in range(layers)]


class WaveNetAutoencoder(nn.Module):
    """Temporal encoder + pitch-conditioned WaveNet decoder on 8-bit mu-law samples."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        w = cfg.wavenet_ae
        if w.crop_samples % w.embedding_hop or cfg.audio.clip_samples % w.embedding_hop:
            raise ValueError("crop_samples and clip_samples must be multiples of embedding_hop")
        ec, c, d = w.encoder_channels, w.channels, w.embedding_dim
        # encoder: non-causal ('same' padding), so a frame hears the whole note around it
        self.enc_in = nn.Conv1d(1, ec, 3, padding=1)
        self.enc_dil = nn.ModuleList(nn.Conv1d(ec, ec, 3, dilation=k, padding=k)
                                     for k in _dilations(w.encoder_layers, w.dilation_cycle))
        self.enc_res = nn.ModuleList(nn.Conv1d(ec, ec, 1) for _ in range(w.encoder_layers))
        self.enc_out = nn.Conv1d(ec, d, 1)
        # decoder: causal kernel-2 convs, left-padded by their dilation
        self.dilations = _dilations(w.layers, w.dilation_cycle)
        self.dec_in = nn.Conv1d(1, c, 1)
        self.dec_dil = nn.ModuleList(nn.Conv1d(c, 2 * c, 2, dilation=k) for k in self.dilations)
        # one 1x1 for all layers' conditioning biases (each layer reads its 2c slice)
        self.cond = nn.Conv1d(d, 2 * c * w.layers, 1)
        self.pitch = nn.Embedding(128, 2 * c * w.layers)
        # residual (c) and skip (c) outputs of a layer from one 1x1
        self.dec_out = nn.ModuleList(nn.Conv1d(c, 2 * c, 1) for _ in self.dilations)
        self.head1, self.head2 = nn.Conv1d(c, c, 1), nn.Conv1d(c, w.quantization, 1)

    # --- encoder -------------------------------------------------------------
    def encode(self, x_BS: torch.Tensor) -> torch.Tensor:
        """Waveform ``(B, S)`` -> embedding ``z_BDF (B, embedding_dim, S // embedding_hop)``."""
        h = self.enc_in(x_BS[:, None])
        for dil, res in zip(self.enc_dil, self.enc_res):
            h = h + res(F.relu(dil(F.relu(h))))
        return F.avg_pool1d(self.enc_out(h), self.cfg.wavenet_ae.embedding_hop)

    def _conditioning(self, z_BDF: torch.Tensor, pitch_B: torch.Tensor) -> torch.Tensor:
        """Every layer's bias at frame rate ``(B, layers * 2c, F)``: embedding + pitch projections."""
        pitch = self.pitch(pitch_B.long().clamp(0, 127))          # (B, layers*2c)
        return self.cond(z_BDF) + pitch[:, :, None]

    # --- decoder: the full (teacher-forced) pass ------------------------------
    def _logits(self, q_BS: torch.Tensor, z_BDF: torch.Tensor, pitch_B: torch.Tensor) -> torch.Tensor:
        """Classes ``q_BS`` -> logits ``(B, Q, S)``; logits at t predict ``q[t]`` from ``q[:t]``."""
        w = self.cfg.wavenet_ae
        x = mu_law_decode_scaled(q_BS, w.quantization)
        x = F.pad(x, (1, 0))[:, :-1]                               # shift right: t sees up to t-1
        # split at frame rate, repeat per layer: slicing a (B, layers*2c, S) tensor costs a
        # full-size zero fill per layer in backward
        conds = self._conditioning(z_BDF, pitch_B).chunk(w.layers, 1)
        h, skip = self.dec_in(x[:, None]), 0.0
        for cond, dil, out, k in zip(conds, self.dec_dil, self.dec_out, self.dilations):
            a = dil(F.pad(h, (k, 0))) + cond.repeat_interleave(w.embedding_hop, dim=2)[:, :, : x.shape[1]]
            tanh_in, gate_in = a.chunk(2, 1)
            res, sk = out(torch.tanh(tanh_in) * torch.sigmoid(gate_in)).chunk(2, 1)
            h, skip = h + res, skip + sk
        return self.head2(F.relu(self.head1(F.relu(skip))))

    def training_losses(self, batch):
        waves_BS, labels = batch
        w = self.cfg.wavenet_ae
        if self.training:
            x_BS, _ = random_crop(waves_BS, w.crop_samples, multiple=w.embedding_hop)
        else:  # validation: the same window every time, and no draw from the global RNG
            x_BS = waves_BS[:, : w.crop_samples]
        q_BS = mu_law_encode(x_BS, w.quantization)
        logits = self._logits(q_BS, self.encode(x_BS), labels["pitch"])
        return {"loss": F.cross_entropy(logits, q_BS)}

    # --- decoder: Fast WaveNet sampling -----------------------------------------
    @torch.no_grad()
    def decode(self, z_BDF: torch.Tensor, pitch_B: torch.Tensor, seed: int = 0, n_samples: int | None = None,
               return_logits: bool = False):
        """Sample ``(B, n_samples)`` classes autoregressively from the embedding and pitch.

        Layer i's kernel-2 conv needs its input from ``dilation_i`` steps back: a ring buffer
        ``(dilation_i, B, c)`` per layer holds exactly those (zeros at first = the causal padding).
        Returns the classes, and with ``return_logits`` also the logits ``(B, Q, n)`` used.
        """
        # each step is thousands of tiny ops on (B, 2c): on CPU, intra-op threads only add
        # synchronisation (25x slower at 2 threads on a busy machine), so sample on one
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._decode(z_BDF, pitch_B, seed, n_samples, return_logits)
        finally:
            torch.set_num_threads(threads)

    def _decode(self, z_BDF, pitch_B, seed, n_samples, return_logits):
        w, c = self.cfg.wavenet_ae, self.cfg.wavenet_ae.channels
        b, dev = z_BDF.shape[0], z_BDF.device
        n = n_samples or z_BDF.shape[-1] * w.embedding_hop
        cond_FBLC = self._conditioning(z_BDF, pitch_B).permute(2, 0, 1).reshape(-1, b, w.layers, 2 * c)
        # weights as matrices: [past, now] @ W_dil, h @ W_out, laid out for addmm
        w_dil = [torch.cat([m.weight[:, :, 0], m.weight[:, :, 1]], 1).T for m in self.dec_dil]  # (2c, 2c)
        w_out = [m.weight[:, :, 0].T for m in self.dec_out]                                      # (c, 2c)
        w_in, b_in = self.dec_in.weight[:, 0, 0], self.dec_in.bias
        queues = [torch.zeros(k, b, c, device=dev) for k in self.dilations]
        gen = torch.Generator(device=dev).manual_seed(int(seed))
        x = torch.zeros(b, 1, device=dev)                     # the "previous sample" before t = 0
        q_out = torch.empty(b, n, dtype=torch.long, device=dev)
        logits_all = [] if return_logits else None
        for t in range(n):
            cond = cond_FBLC[t // w.embedding_hop]            # (B, layers, 2c)
            h, skip = torch.addcmul(b_in, x, w_in), 0.0        # (B, c)
            for i, k in enumerate(self.dilations):
                past = queues[i][t % k]
                a = torch.addmm(self.dec_dil[i].bias, torch.cat([past, h], 1), w_dil[i]) + cond[:, i]
                queues[i][t % k] = h                           # h is a fresh tensor: no aliasing
                rs = torch.addmm(self.dec_out[i].bias, torch.tanh(a[:, :c]) * torch.sigmoid(a[:, c:]), w_out[i])
                h, skip = h + rs[:, :c], skip + rs[:, c:]
            hid = F.relu(F.linear(F.relu(skip), self.head1.weight[:, :, 0], self.head1.bias))
            logits = F.linear(hid, self.head2.weight[:, :, 0], self.head2.bias)       # (B, Q)
            q = torch.multinomial(torch.softmax(logits, 1), 1, generator=gen)          # (B, 1)
            q_out[:, t] = q[:, 0]
            x = mu_law_decode_scaled(q, w.quantization)
            if return_logits:
                logits_all.append(logits)
        return (q_out, torch.stack(logits_all, 2)) if return_logits else q_out

    # --- the two uses ----------------------------------------------------------
    @torch.no_grad()
    def resynthesise(self, waves_BS, pitch_B, family_B, seed: int = 0) -> torch.Tensor:
        """Held-out notes ``(B, S)`` -> embedding -> decoded with their own pitch ``(B, S)``."""
        q = self.decode(self.encode(waves_BS.float()), pitch_B, seed, waves_BS.shape[-1])
        return mu_law_decode(q, self.cfg.wavenet_ae.quantization)

    @torch.no_grad()
    def generate(self, pitch_B, family_B, reference_BS, seed: int = 0) -> torch.Tensor:
        """The reference's embedding decoded with the *requested* pitch (see the module docstring)."""
        n = self.cfg.audio.clip_samples
        q = self.decode(self.encode(reference_BS.float()[:, :n]), pitch_B, seed, n)
        return mu_law_decode(q, self.cfg.wavenet_ae.quantization)


def mu_law_decode_scaled(q: torch.Tensor, classes: int) -> torch.Tensor:
    """Classes -> the mu-law *companded* value in [-1, 1] (the decoder's input, as in NSynth)."""
    return 2 * q.float() / (classes - 1) - 1
