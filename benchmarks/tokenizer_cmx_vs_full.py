"""Tokenizer training step: CMX tensor vs the unfolded spectrogram (vs truncation).

What is measured: one training step (forward + composite loss + backward +
gradient clipping + AdamW step, as ``marslib.train`` does it) of the *same*
tokenizer architecture (``marslib.tokenizer.Tokenizer``) on

* ``cmx``      - the profile's CMX tensor ``(r^2, F/r, T/r)``;
* ``full``     - the unfolded spectrogram ``(1, F, T)``, with one extra x r
  downsampling in the encoder so the latent grid (the token budget) is the same;
* ``truncate`` - the truncation baseline ``(1, F/r, T/r)`` (lossy; same grid).

Reported per variant: input shape, latent grid, tokens, parameters, median time
per step, and the activation memory of the step = bytes of the tensors autograd
saves for backward (device independent; see ``marslib.runtime.saved_tensor_bytes``), plus
``torch.cuda.max_memory_allocated`` on CUDA and, with ``--rss``, the peak RSS
of two steps in a fresh child process per variant.  Ratios are relative to ``cmx``.

Why: the paper's claim for CMX is bounded memory and compute for the same
token budget, at a small quality cost (+0.19 FAD) against truncation.

    python benchmarks/tokenizer_cmx_vs_full.py --profile course --repeats 5 --json out.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_common_args, cuda_peak_bytes, environment, markdown_table, setup, write_json  # noqa: E402

from marslib.ablation import representation_config, tokenizer_train_step  # noqa: E402
from marslib.config import Config, get_config  # noqa: E402
from marslib.runtime import saved_tensor_bytes, time_interleaved  # noqa: E402

VARIANTS = ("cmx", "full", "truncate")
MB = 2 ** 20


def variant_config(profile: str, variant: str) -> Config:
    """The profile's config for one input representation (same latent grid for all three)."""
    return representation_config(get_config(profile), variant)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def child_rss(profile: str, variant: str, batch_size: int) -> None:
    """Run in a fresh process: peak RSS of two steps above the RSS before them (MB, Linux).

    Includes gradients and AdamW state (small next to activations).  Writing 5
    to ``clear_refs`` resets the peak (VmHWM), so import-time peaks do not hide
    the steps' own.
    """
    model, step = tokenizer_train_step(variant_config(profile, variant), batch_size, torch.device("cpu"))
    before = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    step()
    step()
    print(json.dumps({"rss_mb": (_status_kib("VmHWM") - before) / 1024}))


def rss_in_child(args: argparse.Namespace, variant: str, batch_size: int) -> float | None:
    cmd = [sys.executable, __file__, "--profile", args.profile, "--batch-size", str(batch_size),
           "--threads", str(args.threads), "--child-rss", variant]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        print(f"[rss child for {variant} failed]\n{out.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])["rss_mb"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="course", help="smoke | course | paper")
    p.add_argument("--batch-size", type=int, default=0, help="0 = the profile's train_tokenizer.batch_size")
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    p.add_argument("--rss", action="store_true", help="also measure peak RSS of one child process per variant (CPU)")
    p.add_argument("--child-rss", choices=VARIANTS, help=argparse.SUPPRESS)
    add_common_args(p, repeats=5)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = setup(args)
    batch = args.batch_size or get_config(args.profile).train_tokenizer.batch_size
    if args.child_rss:
        child_rss(args.profile, args.child_rss, batch)
        return {}
    rows, steps = [], {}
    for v in args.variants:
        cfg = variant_config(args.profile, v)
        model, step = tokenizer_train_step(cfg, batch, device)
        rows.append({"variant": v, "input (C,H,W)": "x".join(map(str, cfg.input_shape)),
                     "latent": "x".join(map(str, cfg.latent_shape)),
                     "tokens": cfg.latent_shape[0] * cfg.latent_shape[1],
                     "params (M)": sum(p.numel() for p in model.parameters()) / 1e6})
        steps[v] = (model, step)
    # Memory first (one step each), then the interleaved timing; an OOM marks the row.
    for row in rows:
        model, step = steps[row["variant"]]
        try:
            row["activations (MB)"] = saved_tensor_bytes(step, exclude=list(model.parameters())) / MB
            peak = cuda_peak_bytes(step, device)
            row["cuda peak (MB)"] = None if peak is None else peak / MB
        except torch.OutOfMemoryError:
            row["activations (MB)"] = "OOM"
            steps.pop(row["variant"])
            torch.cuda.empty_cache()
        if args.rss and device.type == "cpu":
            row["rss peak (MB)"] = rss_in_child(args, row["variant"], batch)
    times = time_interleaved({v: s for v, (_, s) in steps.items()}, device, args.repeats, args.warmup)
    base = rows[0]
    for row in rows:
        if row["variant"] in times:
            row["ms / step"] = times[row["variant"]] * 1000
        for key, ratio in (("ms / step", "time / " + base["variant"]),
                           ("activations (MB)", "memory / " + base["variant"])):
            if isinstance(row.get(key), float) and isinstance(base.get(key), float):
                row[ratio] = row[key] / base[key]
    columns = ["variant", "input (C,H,W)", "latent", "tokens", "params (M)", "ms / step",
               "activations (MB)", "time / " + base["variant"], "memory / " + base["variant"]]
    columns += [c for c in ("cuda peak (MB)", "rss peak (MB)") if any(r.get(c) is not None for r in rows)]
    print(f"tokenizer training step, profile {args.profile}, batch {batch}, {device} "
          f"({torch.get_num_threads()} threads), median of {args.repeats}\n")
    print(markdown_table(rows, columns))
    results = {"benchmark": "tokenizer_cmx_vs_full", "profile": args.profile, "batch_size": batch,
               "repeats": args.repeats, "env": environment(device), "rows": rows}
    write_json(args.json, results)
    return results


if __name__ == "__main__":
    main()
