"""Sampling speed: next-scale (K passes) vs raster (L passes) vs one teacher-forced pass.

What is measured, per token grid (the ``tokenizer.scales`` of a profile) and batch:

* ``next-scale``: ``marslib.autoregressor.sample_tokens`` (KV cache, CFG) - one
  forward pass per scale, K passes in all;
* ``raster``: ``RasterTransformer.sample`` (KV cache, CFG) over the same *finest*
  grid (h x w tokens), one pass per token;
* ``forward``: one teacher-forced forward pass of the next-scale model over all
  L tokens at the same effective batch (2B with CFG) - the physical floor of
  next-scale sampling, which computes the same attention in K pieces.

Both models share one ARConfig (``--model``'s profile), are untrained (timing
does not depend on the weights) and use the same guidance (``--cfg-scale``, so
both run a batch of 2B).  Then the real-time factor of one clip end to end at
batch 1 (sampling + tokenizer decode + Griffin-Lim, ``tokens_to_audio``) for
``--rtf``'s profile: generation seconds / ``cfg.audio.clip_seconds``.

Why: the point of next-scale prediction (VAR, MARS) is that it needs K passes
instead of h*w; the targets of the issue are printed beside the numbers.

    python benchmarks/sampling_speed.py --repeats 5 --json out.json
    python benchmarks/sampling_speed.py --model paper --device cuda   # d16-sized models
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_common_args, environment, markdown_table, setup, write_json  # noqa: E402

from marslib.autoregressor import NextScaleTransformer, RasterTransformer, sample_tokens, tokens_to_audio  # noqa: E402
from marslib.config import get_config  # noqa: E402
from marslib.runtime import time_interleaved  # noqa: E402
from marslib.tokenizer import Tokenizer  # noqa: E402

TARGET_RASTER = 8.0    # next-scale >= 8x faster than raster at batch 1 on the paper grid
TARGET_FORWARD = 1.5   # next-scale sampling within 1.5x of one teacher-forced forward
TARGET_RTF = 1.0       # course: generating a clip takes less time than playing it


def labels(b: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.arange(b, device=device) % 48 + 36, torch.arange(b, device=device) % 11)


def grid_fns(grid: str, model_profile: str, b: int, cfg_scale: float, device: torch.device) -> dict:
    """The three timed callables for one token grid and batch size."""
    cfg, ar = get_config(grid), get_config(model_profile).ar
    torch.manual_seed(0)
    tok = Tokenizer(cfg).to(device).eval()  # sampling only uses tok.quantizer
    ns = NextScaleTransformer(ar, cfg.tokenizer).to(device).eval()
    raster = RasterTransformer(ar, cfg.latent_shape, cfg.tokenizer.codebook_size).to(device).eval()
    pitch, family = labels(b, device)
    be = 2 * b if cfg_scale else b  # effective batch with guidance
    tf_pitch, tf_family = labels(be, device)
    tf_x = torch.randn(be, ns.L - ns.first_l, cfg.tokenizer.latent_dim, device=device)

    @torch.no_grad()
    def forward():
        ns(tf_pitch, tf_family, tf_x)

    return {
        "next-scale": lambda: sample_tokens(ns, tok, pitch, family, cfg_scale=cfg_scale),
        "raster": lambda: raster.sample(pitch, family, cfg_scale=cfg_scale),
        "forward": forward,
    }, {"grid": grid, "latent": "x".join(map(str, cfg.latent_shape)), "K": len(cfg.tokenizer.scales),
        "L next-scale": ns.L, "L raster": raster.L, "batch": b}


def real_time_factor(profile: str, cfg_scale: float, device: torch.device, repeats: int, warmup: int) -> dict:
    """Seconds to generate one clip (batch 1) / its duration, with a breakdown."""
    cfg = get_config(profile)
    torch.manual_seed(0)
    tok = Tokenizer(cfg).to(device).eval()
    ns = NextScaleTransformer(cfg.ar, cfg.tokenizer).to(device).eval()
    pitch, family = labels(1, device)
    indices = sample_tokens(ns, tok, pitch, family, cfg_scale=cfg_scale)
    t = time_interleaved({
        "sample": lambda: sample_tokens(ns, tok, pitch, family, cfg_scale=cfg_scale),
        "decode": lambda: tok.decode(indices),
        "decode + griffin-lim": lambda: tokens_to_audio(tok, indices),
        "end to end": lambda: tokens_to_audio(tok, sample_tokens(ns, tok, pitch, family, cfg_scale=cfg_scale)),
    }, device, repeats, warmup)
    clip = cfg.audio.clip_seconds
    return {"profile": profile, "clip seconds": clip, "griffin-lim iters": cfg.audio.griffin_lim_iters,
            **{f"{k} (s)": v for k, v in t.items()}, "RTF": t["end to end"] / clip}


def torch_profile(fn, device: torch.device, rows: int = 15) -> str:
    """Top operators of one call (CPU self time; CUDA time too on GPU)."""
    acts = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        acts.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=acts) as prof:
        fn()
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows)


def verdict(value: float, target: float, below: bool) -> str:
    return "PASS" if (value < target if below else value >= target) else "MISS"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grids", nargs="+", default=["course", "paper"], help="profiles whose token grid is used")
    p.add_argument("--model", default="course", help="profile whose ARConfig sizes both models (paper = d16)")
    p.add_argument("--rtf", default="course", help="profile for the end-to-end real-time factor ('none' skips)")
    p.add_argument("--profile", default=None, help="shortcut: use this profile for --grids, --model and --rtf")
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 16])
    p.add_argument("--cfg-scale", type=float, default=1.5, help="guidance for both samplers (0 = off)")
    p.add_argument("--torch-profile", action="store_true",
                   help="print torch.profiler's top operators of one next-scale and one raster sampling call")
    add_common_args(p, repeats=5)
    args = p.parse_args(argv)
    if args.profile:
        args.grids, args.model, args.rtf = [args.profile], args.profile, args.profile
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = setup(args)
    rows = []
    for grid in args.grids:
        for b in args.batch_sizes:
            fns, row = grid_fns(grid, args.model, b, args.cfg_scale, device)
            t = time_interleaved(fns, device, args.repeats, args.warmup)
            row.update({f"{k} (ms)": v * 1000 for k, v in t.items()})
            row["raster / next-scale"] = t["raster"] / t["next-scale"]
            row["next-scale / forward"] = t["next-scale"] / t["forward"]
            row["next-scale ms / clip"] = row["next-scale (ms)"] / b
            rows.append(row)
            if args.torch_profile and b == args.batch_sizes[0]:
                for name in ("next-scale", "raster"):
                    print(f"\n## torch.profiler: {name}, grid {grid}, batch {b}\n")
                    print(torch_profile(fns[name], device))
    rtf = None if args.rtf == "none" else real_time_factor(args.rtf, args.cfg_scale, device, args.repeats,
                                                            args.warmup)
    targets = [{"target": "raster / next-scale, paper grid, batch 1", "goal": f">= {TARGET_RASTER}",
                "measured": r["raster / next-scale"],
                "verdict": verdict(r["raster / next-scale"], TARGET_RASTER, below=False)}
               for r in rows if r["grid"] == "paper" and r["batch"] == 1]
    for r in rows:
        targets.append({"target": f"next-scale / forward, {r['grid']} grid, batch {r['batch']}",
                        "goal": f"<= {TARGET_FORWARD}", "measured": r["next-scale / forward"],
                        "verdict": "PASS" if r["next-scale / forward"] <= TARGET_FORWARD else "MISS"})
    if rtf is not None:
        targets.append({"target": f"real-time factor, {rtf['profile']}, batch 1", "goal": f"< {TARGET_RTF}",
                        "measured": rtf["RTF"], "verdict": verdict(rtf["RTF"], TARGET_RTF, below=True)})

    ar = get_config(args.model).ar
    print(f"\nsampling, model = {args.model} ARConfig (depth {ar.depth}, width {ar.width}, heads {ar.heads}), "
          f"cfg_scale {args.cfg_scale}, {device} ({torch.get_num_threads()} threads), median of {args.repeats}\n")
    print(markdown_table(rows, ["grid", "latent", "K", "L next-scale", "L raster", "batch", "next-scale (ms)",
                                "raster (ms)", "forward (ms)", "raster / next-scale", "next-scale / forward",
                                "next-scale ms / clip"]))
    if rtf is not None:
        print(f"\nend to end, {rtf['profile']} profile (its own ARConfig), batch 1\n")
        print(markdown_table([rtf], list(rtf)))
    print("\ntargets\n")
    print(markdown_table(targets, ["target", "goal", "measured", "verdict"]))
    results = {"benchmark": "sampling_speed", "model": args.model, "ar": vars(ar), "cfg_scale": args.cfg_scale,
               "repeats": args.repeats, "env": environment(device), "rows": rows, "rtf": rtf, "targets": targets}
    write_json(args.json, results)
    return results


if __name__ == "__main__":
    main()
