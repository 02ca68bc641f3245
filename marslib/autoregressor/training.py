"""Train, load and sample the autoregressors from a config (what the CLI and notebook 03 call).

Run folder layout::

    <run>/tokenizer/    multi-scale tokenizer (notebook 02)
    <run>/ar/           next-scale transformer
    <run>/raster_tokenizer/   single-scale tokenizer of the same latent grid
    <run>/raster/       raster next-token baseline

Each folder holds checkpoints (``marslib.checkpoint``).  A transformer records the
fingerprint of the tokenizer whose tokens it learned; loading or resuming it with
any other tokenizer (retrained, extended, replaced) is refused, since its tokens
would mean something else.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import torch

from ..checkpoint import CheckpointError, load_checkpoint, read_meta
from ..config import NSYNTH_FAMILIES, Config, check_families
from ..data import ensure_dataset, feature_store
from ..data.store import LABELS, MappedRows, RowStore, build_store
from ..tokenizer import Tokenizer
from ..tokenizer.training import fit_tokenizer, load_tokenizer
from ..train import check_start, train
from .model import NextScaleTransformer
from .raster import RasterTransformer

Batch = tuple[torch.Tensor, dict[str, torch.Tensor]]


def _token_chunks(tokenizer: Tokenizer, features: RowStore, start: int, batch_size: int = 64):
    """Chunks of flattened token maps ``(n, L)`` int32 for :func:`~marslib.data.store.build_store`."""
    for begin in range(start, len(features), batch_size):
        x, labels = features.read(torch.arange(begin, min(len(features), begin + batch_size)))
        with torch.no_grad():
            tokens = torch.cat([i.flatten(1) for i in tokenizer.encode(x)], dim=1).to(torch.int32)
        y = torch.stack([labels[name] for name in LABELS], dim=1).numpy()
        yield begin + len(x), (tokens.numpy(), y, features.note_strs[begin:begin + len(x)], [])


def _weights_key(model: torch.nn.Module) -> str:
    """A fingerprint of a model's weights (names the token store of that tokenizer)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def token_rows(tokenizer: Tokenizer, cfg: Config, split: str) -> MappedRows:
    """A split as the transformer reads it: ``(teacher-forcing inputs (B, L - first_l, D), labels)``.

    The tokens are computed once per tokenizer into an on-disk store beside the
    features (keyed by the tokenizer's fingerprint); each batch read turns its
    tokens back into teacher-forcing inputs with the tokenizer's codebook.
    ``labels["tokens"]`` is ``(B, L)``: all scales flattened and concatenated,
    coarse to fine, the order the transformer predicts them in.
    """
    tokenizer.eval()
    features = feature_store(cfg, split)
    path = features.path.with_name(f"tokens-{features.path.name}-{_weights_key(tokenizer)}")
    store = build_store(path, len(features), (sum(h * w for h, w in tokenizer.quantizer.scales),), "int32",
                        lambda start: _token_chunks(tokenizer, features, start))
    scales = tokenizer.quantizer.scales

    @torch.no_grad()
    def to_inputs(batch):
        tokens, labels = batch
        tokens = tokens.long()
        idx = [t.reshape(len(tokens), h, w) for t, (h, w) in zip(tokens.split([h * w for h, w in scales], 1), scales)]
        return tokenizer.teacher_forcing_inputs(idx), {"tokens": tokens, "pitch": labels["pitch"],
                                                       "family": labels["family"]}

    return MappedRows(store, to_inputs)


def token_dataset(tokenizer: Tokenizer, cfg: Config, split: str) -> Batch:
    """:func:`token_rows` of a whole split, in memory."""
    return token_rows(tokenizer, cfg, split).read_all()


def tokenizer_fingerprint(tokenizer_dir: Path) -> dict[str, str]:
    """``{"tokenizer": weights sha}``: what a transformer records about the tokenizer it learned from."""
    return {"tokenizer": read_meta(tokenizer_dir)["weights_sha"]}


def check_tokenizer(model_dir: Path, tokenizer_dir: Path) -> None:
    """Refuse a transformer whose tokenizer has changed since it was trained."""
    recorded = read_meta(model_dir).get("made_from", {}).get("tokenizer")
    current = tokenizer_fingerprint(tokenizer_dir)["tokenizer"]
    if recorded != current:
        raise CheckpointError(f"{model_dir} was trained on tokenizer {recorded}, but {tokenizer_dir} now holds "
                              f"{current} (retrained or replaced?); its tokens mean something else now: "
                              f"retrain the transformer (mars train ar --overwrite) or restore that tokenizer")


def fit_ar(cfg: Config, run: str | Path, resume: bool = False, overwrite: bool = False,
           stop_after: int | None = None, distributed: bool = False, progress: bool = True
           ) -> tuple[NextScaleTransformer, dict]:
    """Train the next-scale transformer on the tokens of ``<run>/tokenizer``."""
    run = Path(run)
    ensure_dataset(cfg)
    tokenizer = load_tokenizer(run / "tokenizer", cfg)
    made_from = tokenizer_fingerprint(run / "tokenizer")
    check_start(run / "ar", "ar", cfg, cfg.train_ar, resume, overwrite, made_from)  # refuse before tokenizing
    train_data, valid_data = token_rows(tokenizer, cfg, "train"), token_rows(tokenizer, cfg, "valid")
    torch.manual_seed(cfg.seed)
    model = NextScaleTransformer(cfg.ar, cfg.tokenizer, n_families(cfg))
    history = train(model, cfg, cfg.train_ar, train_data, run / "ar", "ar", valid_data=valid_data,
                    resume=resume, overwrite=overwrite, stop_after=stop_after, distributed=distributed,
                    progress=progress, made_from=made_from)
    return model.eval(), history


def load_ar(run: str | Path, cfg: Config | None = None, device: str = "cpu"
            ) -> tuple[NextScaleTransformer, Tokenizer]:
    """Load ``<run>/ar`` and the tokenizer it was trained on; checks they match each other (and ``cfg``)."""
    run = Path(run)
    meta = read_meta(run / "ar")
    check_tokenizer(run / "ar", run / "tokenizer")
    trained = Config.from_dict(meta["config"])
    if cfg is not None:
        check_families(trained, cfg, run / "ar")
    model_cfg = cfg or trained
    tokenizer = load_tokenizer(run / "tokenizer", model_cfg, device)
    model = NextScaleTransformer(model_cfg.ar, model_cfg.tokenizer, n_families(trained))
    load_checkpoint(run / "ar", model, "ar", model_cfg)
    return model.to(device).eval(), tokenizer


def raster_config(cfg: Config) -> Config:
    """The same config with a single-scale tokenizer (an ordinary VQ-VAE) of the same latent grid."""
    out = Config.from_dict(cfg.to_dict())
    out.tokenizer = dataclasses.replace(out.tokenizer, scales=(tuple(cfg.latent_shape),))
    return out


def fit_raster(cfg: Config, run: str | Path, resume: bool = False, overwrite: bool = False, progress: bool = True
               ) -> tuple[RasterTransformer, Tokenizer, dict]:
    """Train a single-scale tokenizer and the raster baseline on its tokens.

    ``cfg`` carries the training schedules the raster pair gets: the budget is the
    caller's choice.  The paper comparison passes ``marslib.ablation.baseline_config(cfg)``
    (``cfg.eval.baseline_budget`` of MARS's steps, as for the truncation arm).
    """
    run, rcfg = Path(run), raster_config(cfg)
    tokenizer, _ = fit_tokenizer(rcfg, run / "raster_tokenizer", resume=resume, overwrite=overwrite,
                                 progress=progress)
    made_from = tokenizer_fingerprint(run / "raster_tokenizer")
    check_start(run / "raster", "raster", rcfg, rcfg.train_ar, resume, overwrite, made_from)
    train_data, valid_data = token_rows(tokenizer, rcfg, "train"), token_rows(tokenizer, rcfg, "valid")
    torch.manual_seed(cfg.seed)
    model = RasterTransformer(rcfg.ar, rcfg.latent_shape, rcfg.tokenizer.codebook_size, n_families(rcfg))
    history = train(model, rcfg, rcfg.train_ar, train_data, run / "raster", "raster", valid_data=valid_data,
                    resume=resume, overwrite=overwrite, progress=progress,
                    made_from=made_from)
    return model.eval(), tokenizer, history


def load_raster(run: str | Path, device: str = "cpu") -> tuple[RasterTransformer, Tokenizer]:
    """Load ``<run>/raster`` and its single-scale tokenizer ``<run>/raster_tokenizer``."""
    run = Path(run)
    check_tokenizer(run / "raster", run / "raster_tokenizer")
    tokenizer = load_tokenizer(run / "raster_tokenizer", device=device)
    rcfg = tokenizer.cfg
    model = RasterTransformer(rcfg.ar, rcfg.latent_shape, rcfg.tokenizer.codebook_size,
                              n_families(Config.from_dict(read_meta(run / "raster")["config"])))
    load_checkpoint(run / "raster", model, "raster", rcfg)
    return model.to(device).eval(), tokenizer


def n_families(cfg: Config) -> int:
    """Family classes of a conditioned model: ``len(cfg.data.family_vocabulary)`` (11 for NSynth)."""
    return len(cfg.data.family_vocabulary)


def parse_family(name: str | int, families: tuple[str, ...] = NSYNTH_FAMILIES) -> int:
    """Family name (or index) -> index into ``families`` (a model's ``cfg.data.family_vocabulary``;
    NSynth's eleven by default), with a clear error."""
    if isinstance(name, str) and name in families:
        return families.index(name)
    if isinstance(name, int) or str(name).isdigit():
        index = int(name)
        if 0 <= index < len(families):
            return index
    raise ValueError(f"unknown instrument family {name!r}; choose one of {', '.join(families)}")
