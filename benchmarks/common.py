"""Timing and memory helpers shared by the benchmark scripts.

Every benchmark compares *variants measured side by side in one run*: each
variant is warmed up, then the repetitions are interleaved (A B A B ...) so a
burst of background load hits all variants alike, and the median is reported.
Ratios between variants are the meaningful output; absolute times depend on
the machine and on whatever else it is running.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

import torch

from marslib.config import Config, get_config, parse_overrides
from marslib.runtime import sync


def add_common_args(parser: argparse.ArgumentParser, repeats: int = 5) -> None:
    """``--repeats --warmup --threads --device --json``, the options every benchmark takes."""
    parser.add_argument("--repeats", type=int, default=repeats, help="timed repetitions per variant (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per variant before timing")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch.set_num_threads (0 = leave torch's default)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")


def add_run_args(parser: argparse.ArgumentParser, needs: str, name: str) -> None:
    """The options of a benchmark that judges a trained run (not a timing one): ``--run --profile
    --data-dir --set`` first, then ``--threads --device --json`` (call it last: the ones it adds end
    the help).  ``needs`` lists the run's folders; results go by default to ``results/<name>_<profile>.json``."""
    parser.add_argument("--run", type=Path, default=None, help=f"run folder with {needs} (default: runs/<profile>)")
    parser.add_argument("--profile", default="course", help="the run's profile (default: course)")
    parser.add_argument("--data-dir", default=None, help="dataset folder (default: the profile's data.root)")
    parser.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                        help="config overrides, e.g. eval.max_conditions=50 (as `mars --set`)")
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0 = leave torch's default)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--json", type=Path, default=None,
                        help=f"where to write the results (default: benchmarks/results/{name}_<profile>.json)")


def run_config(args: argparse.Namespace, **overrides) -> tuple[Config, Path, dict]:
    """``(cfg, run, overrides)`` from :func:`add_run_args`' options (plus ``overrides``, e.g. a seed)."""
    over = parse_overrides(args.set)
    if args.data_dir:
        over["data.root"] = args.data_dir
    over.update(overrides)
    cfg = get_config(args.profile, {**over, "device": args.device})
    return cfg, args.run or Path("runs") / cfg.profile, over


def setup(args: argparse.Namespace) -> torch.device:
    """Apply ``--threads`` and return the ``--device`` (a clear error if CUDA is missing)."""
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda asked for, but no CUDA GPU is visible; use --device cpu")
    return torch.device(args.device)


def environment(device: torch.device) -> dict:
    """What the numbers were measured on (goes into the JSON)."""
    env = {"torch": torch.__version__, "device": str(device), "threads": torch.get_num_threads()}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def cuda_peak_bytes(fn: Callable[[], object], device: torch.device) -> int | None:
    """``torch.cuda.max_memory_allocated`` during one call of ``fn`` (None on CPU)."""
    if device.type != "cuda":
        return None
    sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    sync(device)
    return torch.cuda.max_memory_allocated(device)


def fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    """A GitHub markdown table of ``rows`` (missing keys print empty)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: Path | None, results: dict) -> None:
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2))
