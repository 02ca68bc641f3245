"""Why the course DiffWave vocoder makes noise: its sampler, its training, or its prior?

Notebook 06 scores DiffWave by resynthesis: a held-out note's own spectrogram, vocoded.
On the course profile (1,200 steps, 9 min on 2 cores) those notes name the right pitch
in 2 % of cases (CREPE); the spectrograms are broadband noise.  This script separates
the explanations, on ``--clips`` held-out notes (evenly spaced over the test split):

* ``trained, fast``: the run's DiffWave through the paper's 6-step schedule (what the
  evaluation scores);
* ``trained, full``: the same model through the whole ``diffusion_steps`` chain (slow:
  the first ``--full-clips`` notes only).  If this were good, the schedule would be to blame;
* ``untrained, fast``: a fresh DiffWave, whose zero-initialised output layer makes
  ``eps_theta = 0``: what the sampler alone returns, the row every trained one must beat;
* with ``--prior``: the same two rows for DiffWave with a *spectrally shaped* noise prior
  (PriorGrad, Lee et al. ICLR 2022; SpecGrad, Koizumi et al. Interspeech 2022).  The noise
  is white noise filtered, frame by frame, by the condition's own magnitude (relative to
  the clip's peak, floored at ``--prior-floor``), ``eps = L w`` with ``L = iSTFT . D . STFT``,
  and the loss is ``||L^-1 (eps_theta - eps)||^2``.  Trained here for the course schedule
  into ``<run>/diffwave_spectral_prior`` (or loaded from there).

Each row: pYIN pitch accuracy (within a semitone), the run's classifier's family
accuracy, ``spec L1`` (mean absolute difference of the normalised log-magnitudes to the
real note; images live in [-1, 1]) and the RMS level relative to the real notes.  The
classifier judges; it never trains or chooses anything here.

Not a timing benchmark; deterministic for a run, seed and device.

    python benchmarks/diffwave_diagnosis.py --run runs/course --profile course --prior
    python benchmarks/diffwave_diagnosis.py --run runs/smoke --profile smoke --clips 8 --full-clips 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_run_args, environment, run_config, setup, write_json  # noqa: E402

from marslib.audio import denormalise, waveform_to_input  # noqa: E402
from marslib.baselines import load_baseline, run_batched  # noqa: E402
from marslib.baselines.diffwave import DiffWave  # noqa: E402
from marslib.data import ensure_dataset, wave_store  # noqa: E402
from marslib.evaluate import test_clips  # noqa: E402
from marslib.metrics import load_classifier  # noqa: E402
from marslib.metrics.classifier import classify_waveforms  # noqa: E402
from marslib.metrics.pitch import pitch_accuracy  # noqa: E402
from marslib.provenance import provenance  # noqa: E402
from marslib.train import train  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


class SpectralPriorDiffWave(DiffWave):
    """DiffWave whose noise has the condition's spectrum (PriorGrad / SpecGrad), for this study only.

    Not in ``marslib``: the row it earns is measured below against the same prior with
    nothing learned, and that control, not the network, supplies the pitch.
    """

    FLOOR = 0.02  # the filter's default floor, relative to the clip's peak magnitude (-34 dB)

    def __init__(self, cfg, floor: float = FLOOR):
        super().__init__(cfg)
        self.floor = floor

    def filter_BFT(self, spec_BFT: torch.Tensor) -> torch.Tensor:
        """Normalised log-magnitude ``(B, F, T)`` -> the noise filter ``D`` ``(B, F + 1, T + 1)``."""
        mag = denormalise(spec_BFT, self.cfg.audio)
        mag = mag / mag.amax(dim=(1, 2), keepdim=True).clamp_min(1e-8)
        mag = F.pad(mag[:, None], (0, 1, 0, 1), mode="replicate")[:, 0]  # the Nyquist bin and last frame
        return mag.clamp_min(self.floor)

    def shape(self, x_BS: torch.Tensor, filter_BFT: torch.Tensor) -> torch.Tensor:
        """``iSTFT(D * STFT(x))``: ``L x`` (or ``L^-1 x`` with ``1 / D``), the model's own STFT."""
        n_fft = self.cfg.audio.n_fft
        window = torch.hann_window(n_fft, device=x_BS.device)
        spec = torch.stft(x_BS, n_fft, self.hop, window=window, return_complex=True)
        return torch.istft(spec * filter_BFT[..., : spec.shape[-1]], n_fft, self.hop, window=window,
                           length=x_BS.shape[-1])

    def prior(self, white_BS: torch.Tensor, spec_BFT: torch.Tensor) -> torch.Tensor:
        """``L x``: white noise given the condition's spectrum (every draw, the chain's start as well)."""
        return self.shape(white_BS, self.filter_BFT(spec_BFT))

    def noise_error(self, err_BS: torch.Tensor, spec_BFT: torch.Tensor) -> torch.Tensor:
        """``||L^-1 err||^2``: the Mahalanobis norm of the error under the shaped prior."""
        return self.shape(err_BS, 1.0 / self.filter_BFT(spec_BFT)).pow(2).mean()


def fresh(cls: type, cfg, **kwargs) -> DiffWave:
    torch.manual_seed(cfg.seed)
    return cls(cfg, **kwargs).eval()


def spectral_prior_model(cfg, run: Path, floor: float, progress: bool) -> SpectralPriorDiffWave:
    """The prior variant trained for ``cfg.diffwave.train`` into ``<run>/diffwave_spectral_prior``
    (loaded when that checkpoint is complete; a stopped one resumes)."""
    model = fresh(SpectralPriorDiffWave, cfg, floor=floor).train()
    train(model, cfg, cfg.diffwave.train, wave_store(cfg, "train"), run / "diffwave_spectral_prior", "diffwave",
          valid_data=wave_store(cfg, "valid"), resume=True, progress=progress)
    return model.eval()


def judge(name: str, waves: np.ndarray, real, classifier, cfg, seconds: float) -> dict:
    n = len(waves)
    spec = lambda w: waveform_to_input(torch.as_tensor(w), cfg.audio)  # noqa: E731
    family = classify_waveforms(classifier, waves, cfg)["family_probs"].argmax(1)
    return {"variant": name, "clips": n,
            "pitch_pyin": float(pitch_accuracy(waves, cfg.audio.sample_rate, real.pitch[:n])["accuracy"]),
            "family": float((family == real.family[:n]).mean()),
            "spec_l1": float((spec(waves) - spec(real.waves[:n])).abs().mean()),
            "rms_ratio": float(np.sqrt((waves ** 2).mean() / (real.waves[:n] ** 2).mean())),
            "seconds": round(seconds, 1)}


def table(rows: list[dict]) -> str:
    lines = ["| variant | clips | pitch (pYIN) | family | spec L1 | RMS / real |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['variant']} | {r['clips']} | {r['pitch_pyin']:.1%} | {r['family']:.1%} | {r['spec_l1']:.3f} | "
              f"{r['rms_ratio']:.2f} |" for r in rows]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=48, help="held-out notes judged (evenly spaced; default 48)")
    p.add_argument("--full-clips", type=int, default=16,
                   help="of those, how many go through the full chain (default 16; 0 = skip the row)")
    p.add_argument("--prior", action="store_true",
                   help="add the spectral-prior rows (trains <run>/diffwave_spectral_prior if absent)")
    p.add_argument("--prior-floor", type=float, default=SpectralPriorDiffWave.FLOOR,
                   help="the prior filter's floor relative to the clip's peak (default 0.02)")
    add_run_args(p, "diffwave/ and classifier/", "diffwave_diagnosis")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = setup(args)
    cfg, run, over = run_config(args)
    if not (run / "diffwave").exists():
        raise SystemExit(f"{run / 'diffwave'} not found: train it first (mars train diffwave --out {run})")
    ensure_dataset(cfg)
    test = test_clips(cfg)
    pick = np.unique(np.linspace(0, len(test.waves) - 1, min(args.clips, len(test.waves))).round().astype(int))
    test.waves, test.pitch, test.family = test.waves[pick], test.pitch[pick], test.family[pick]
    classifier = load_classifier(run / "classifier", device=cfg.device)

    models = {"trained": load_baseline("diffwave", run / "diffwave", cfg, device=cfg.device),
              "untrained": fresh(DiffWave, cfg).to(cfg.device)}
    if args.prior:
        models["prior, untrained"] = fresh(SpectralPriorDiffWave, cfg, floor=args.prior_floor).to(cfg.device)
        models["prior, trained"] = spectral_prior_model(cfg, run, args.prior_floor, progress=True).to(cfg.device)
    plan = [("trained, fast", "trained", True, len(pick)), ("trained, full", "trained", False, args.full_clips),
            ("untrained, fast", "untrained", True, len(pick))]
    if args.prior:
        plan += [("prior, untrained, fast", "prior, untrained", True, len(pick)),
                 ("prior, trained, fast", "prior, trained", True, len(pick))]

    rows = [judge("real (held out)", test.waves, test, classifier, cfg, 0.0)]
    for name, key, fast, n in plan:
        if n <= 0:
            continue
        model, t0 = models[key], time.perf_counter()
        spec = model.spectrogram(torch.as_tensor(test.waves[:n]).to(cfg.device))
        waves = run_batched(lambda s, p, f, seed: model.vocode(s, p, f, seed, fast=fast),  # noqa: B023
                            spec.cpu().numpy(), test.pitch[:n], test.family[:n], seed=cfg.seed, device=cfg.device)
        rows.append(judge(name, waves, test, classifier, cfg, time.perf_counter() - t0))
        print(f"{name}: {rows[-1]}", flush=True)

    text = table(rows)
    print(f"\nDiffWave diagnosis, profile {cfg.profile}, run {run}, {len(pick)} held-out notes, "
          f"{device} ({torch.get_num_threads()} threads)\n\n{text}")
    results = {"benchmark": "diffwave_diagnosis", "profile": cfg.profile, "run": str(run), "overrides": over,
               "env": environment(device), "rows": rows, "table": text, "prior_floor": args.prior_floor,
               "config": cfg.to_dict(), "provenance": provenance(cfg)}
    out = args.json or RESULTS / f"diffwave_diagnosis_{cfg.profile}.json"
    write_json(out, results)
    print(f"-> {out}")
    return results


if __name__ == "__main__":
    main()
