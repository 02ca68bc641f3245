"""Train, load and evaluate a tokenizer from a config (what the CLI and notebook 02 call)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..audio import denormalise
from ..checkpoint import load_checkpoint, read_meta
from ..cmx import from_model_input, to_model_input
from ..config import Config
from ..data import ensure_dataset, feature_store
from ..metrics import log_spectral_distance, spectral_convergence
from ..train import check_start, train
from .model import Tokenizer


def fit_tokenizer(cfg: Config, run_dir: str | Path, resume: bool = False, overwrite: bool = False,
                  stop_after: int | None = None, distributed: bool = False, progress: bool = True
                  ) -> tuple[Tokenizer, dict]:
    """Render/load the dataset, train a tokenizer on its train split, validate on valid.

    Checkpoints go to ``run_dir`` (see :func:`marslib.train.train` for ``resume`` /
    ``overwrite``).  Returns ``(tokenizer, history)``.
    """
    ensure_dataset(cfg)
    check_start(run_dir, "tokenizer", cfg, cfg.train_tokenizer, resume, overwrite)  # refuse before any work
    train_data, valid_data = feature_store(cfg, "train"), feature_store(cfg, "valid")
    torch.manual_seed(cfg.seed)  # the initial weights
    model = Tokenizer(cfg)
    history = train(model, cfg, cfg.train_tokenizer, train_data, run_dir, "tokenizer", valid_data=valid_data,
                    resume=resume, overwrite=overwrite, stop_after=stop_after, distributed=distributed,
                    progress=progress)
    return model.eval(), history


def load_tokenizer(run_dir: str | Path, cfg: Config | None = None, device: str = "cpu") -> Tokenizer:
    """Load ``run_dir``'s newest checkpoint; with ``cfg``, first check it was trained for that config."""
    meta = read_meta(run_dir)
    model_cfg = cfg or Config.from_dict(meta["config"])
    model = Tokenizer(model_cfg)
    load_checkpoint(run_dir, model, "tokenizer", cfg)
    return model.to(device).eval()


@torch.no_grad()
def reconstruction_report(model: Tokenizer | None, spec_B1FT: torch.Tensor, cfg: Config | None = None,
                          batch_size: int = 64) -> dict[str, float]:
    """Reconstruction quality on full spectrograms, before Griffin-Lim.

    ``spec_B1FT`` holds normalised log-magnitudes of the *full* ``F x T`` clips.
    Each is turned into the model's input (CMX fold or truncation, per the
    model's config), tokenized, decoded and turned back into ``F x T`` (truncation
    zero-fills what it dropped), then compared with the original as linear
    magnitudes, so CMX and truncation are judged on the same thing.

    ``model=None`` measures the representation alone (a perfect tokenizer):
    for truncation that is the best any truncation tokenizer can do.

    Returns:
        mean ``lsd`` (log-spectral distance, dB) and ``sc`` (spectral convergence).
    """
    cfg = model.cfg if model is not None else cfg
    if cfg is None:
        raise ValueError("give a model or, for model=None, the config of the representation")
    lsd, sc = [], []
    for start in range(0, len(spec_B1FT), batch_size):
        spec = spec_B1FT[start:start + batch_size]
        x = to_model_input(spec, cfg.cmx)
        x_hat = x if model is None else model.decode(model.encode(x)).clamp(-1, 1)
        est = from_model_input(x_hat, cfg.cmx, cfg.spec_shape, fill_value=-1.0)
        ref_mag, est_mag = denormalise(spec, cfg.audio), denormalise(est, cfg.audio)
        lsd.append(log_spectral_distance(ref_mag, est_mag))
        sc.append(spectral_convergence(ref_mag, est_mag))
    return {"lsd": float(torch.cat(lsd).mean()), "sc": float(torch.cat(sc).mean())}
