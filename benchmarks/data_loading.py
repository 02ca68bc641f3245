"""Reading training batches: the on-disk feature store vs the whole split in RAM.

What is measured: reading ``--batches`` random batches of the profile's
``train_tokenizer.batch_size`` through the path training uses,
``marslib.train._loader`` (a ``DataLoader`` over ``_StepBatches``, with
``--workers`` processes; default the profile's ``data.workers``), from

* ``store`` - the split's :class:`marslib.data.store.RowStore` (what
  ``feature_store(cfg, split)`` returns), each batch's rows read with ``os.preadv``;
* ``ram``   - the old approach: the whole split loaded as one tensor first
  (``load_features(cfg, split)``, i.e. ``RowStore.read_all()``), batches indexed
  from memory (``TensorRows``, what training does with ``(X, labels)`` tensors),

at 1x, 4x and 16x a dataset of ``--rows`` rows of the profile's model-input shape
(``cfg.input_shape`` float32; course: 16 x 32 x 64, 128 KiB a row).  Each
(arm, size) runs in a fresh child process, so its peak RSS is its own; the
children of the ``--repeats`` rounds are interleaved and the medians reported.
Reported per child: load time (the RAM arm's read of the whole split; the store
only opens it), peak RSS (``VmHWM`` of ``/proc/self/status``), RSS above the
child's RSS before loading (its peak from there on), clips/s
(wall time; also per CPU second of the child, which background load disturbs
less), and the ratios 16x / 1x and store / RAM.  (``ru_maxrss`` is not used: in
a child started by exec, Linux also counts the parent's peak in it.)

The datasets are synthetic rows written straight into stores with
:func:`marslib.data.store.build_store` (one base block of random rows, repeated
N times under new note names): the read path is exactly the one a
``feature_store`` built from wavs has, without rendering and transforming
thousands of wavs first (the STFT is not what is measured).  The files are
freshly written, so both arms read from the page cache; on a machine whose
page cache cannot hold the 16x store, the store arm would read from disk.

Targets of the issue, printed with PASS/MISS: the store's peak RSS flat from 1x
to 16x (ratio <= 1.1), and its clips/s at least 0.8 of the RAM arm's at every size.

    python benchmarks/data_loading.py --profile course --rows 2048 --json runs/bench/data_loading.json
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_common_args, environment, markdown_table, setup, write_json  # noqa: E402

from marslib.config import get_config  # noqa: E402
from marslib.data.store import RowStore, TensorRows, build_store  # noqa: E402

ARMS = ("store", "ram")
SCALES = (1, 4, 16)
TARGET_RSS = 1.1       # store peak RSS 16x / 1x at most this (flat within 10 %)
TARGET_SPEED = 0.8     # store clips/s at least this fraction of the RAM arm's
MB = 2 ** 20
CHUNK = 256            # rows per build chunk


def _status_kib(field: str) -> int:
    """``VmRSS`` (resident now) or ``VmHWM`` (resident peak) of this process, KiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def build_datasets(folder: Path, row_shape: tuple[int, ...], rows: int, scales=SCALES, seed: int = 0) -> dict:
    """One store per scale under ``folder``: ``scale * rows`` rows, the base block repeated ``scale`` times."""
    rng = np.random.default_rng(seed)
    base = (rng.random((rows, *row_shape), dtype=np.float32) * 2 - 1)
    labels = np.stack([rng.integers(21, 109, rows), rng.integers(0, 11, rows), rng.integers(1, 128, rows)], 1)
    paths = {}
    for scale in scales:
        n = scale * rows

        def chunks(start: int, n=n):
            for begin in range(start, n, CHUNK):
                idx = np.arange(begin, min(n, begin + CHUNK)) % rows
                notes = [f"copy{i // rows:02d}-note{i % rows:06d}" for i in range(begin, begin + len(idx))]
                yield begin + len(idx), (base[idx], labels[idx], notes, [])

        store = build_store(folder / f"x{scale}", n, row_shape, "float32", chunks)
        paths[scale] = str(store.path)
    return paths


def measure(path: str, arm: str, profile: str, workers: int, batches: int, warmup: int) -> dict:
    """Run in a fresh child process: load (RAM arm), then read batches as training does."""
    from marslib.train import _loader

    cfg = get_config(profile, {"data.workers": workers})
    tcfg = cfg.train_tokenizer
    import_peak, before = _status_kib("VmHWM"), _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS: from here on, the data's own peak
    t0 = time.perf_counter()
    store = RowStore(path)
    rows = TensorRows(*store.read_all()) if arm == "ram" else store
    load_s = time.perf_counter() - t0
    it = iter(_loader(rows, tcfg, cfg, range(warmup + batches), 0, 1, torch.device("cpu")))
    for _ in range(warmup):
        next(it)
    clips, t0, cpu0 = 0, time.perf_counter(), time.process_time()
    for _ in range(batches):
        x, labels = next(it)
        clips += len(x)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - cpu0
    del it
    data_peak = _status_kib("VmHWM")
    workers_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss if workers else 0  # KiB
    return {"rows": len(rows), "load_s": load_s, "clips": clips, "seconds": seconds, "cpu_seconds": cpu_seconds,
            "peak_rss_mb": max(import_peak, data_peak) / 1024, "data_rss_mb": (data_peak - before) / 1024,
            "before_mb": before / 1024, "workers_peak_rss_mb": workers_peak / 1024}


def run_child(args: argparse.Namespace, path: str, arm: str) -> dict:
    cmd = [sys.executable, __file__, "--child", arm, path, "--profile", args.profile, "--workers", str(args.workers),
           "--batches", str(args.batches), "--warmup", str(args.warmup), "--threads", str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"child {arm} {path} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="course", help="row shape (cfg.input_shape) and batch size of this profile")
    p.add_argument("--rows", type=int, default=1024, help="rows of the 1x dataset (course: 128 KiB a row)")
    p.add_argument("--batches", type=int, default=1000, help="timed batches per child")
    p.add_argument("--workers", type=int, default=None,
                   help="DataLoader processes (default: the profile's data.workers)")
    p.add_argument("--dir", type=Path, default=None, help="where the stores are written (default: a temporary folder, "
                   "deleted afterwards)")
    p.add_argument("--child", nargs=2, metavar=("ARM", "PATH"), help=argparse.SUPPRESS)
    add_common_args(p, repeats=3)
    args = p.parse_args(argv)
    if args.workers is None:
        args.workers = get_config(args.profile).data.workers
    return args


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = setup(args)
    if args.child:
        print(json.dumps(measure(args.child[1], args.child[0], args.profile, args.workers, args.batches,
                                 args.warmup)))
        return {}
    if device.type != "cpu":
        raise SystemExit("this benchmark reads on the CPU; the loader's output would be copied to the GPU by "
                         "training either way")
    cfg = get_config(args.profile)
    shape, batch = cfg.input_shape, cfg.train_tokenizer.batch_size
    row_mb = int(np.prod(shape)) * 4 / MB
    with tempfile.TemporaryDirectory(prefix="data_loading-") as tmp:
        folder = Path(args.dir) if args.dir else Path(tmp)
        t0 = time.perf_counter()
        paths = build_datasets(folder, shape, args.rows)
        build_s = time.perf_counter() - t0
        runs: dict[tuple[str, int], list[dict]] = {(a, s): [] for s in SCALES for a in ARMS}
        for _ in range(max(1, args.repeats)):  # interleaved: a burst of load hits every configuration alike
            for scale in SCALES:
                for arm in ARMS:
                    runs[arm, scale].append(run_child(args, paths[scale], arm))
    rows = []
    for arm, scale in [(a, s) for a in ARMS for s in SCALES]:
        rs = runs[arm, scale]
        rows.append({"arm": arm, "size": f"{scale}x", "rows": rs[0]["rows"], "data (MB)": rs[0]["rows"] * row_mb,
                     "load (s)": _median([r["load_s"] for r in rs]),
                     "peak RSS (MB)": _median([r["peak_rss_mb"] for r in rs]),
                     "RSS before (MB)": _median([r["before_mb"] for r in rs]),
                "data RSS (MB)": _median([r["data_rss_mb"] for r in rs]),
                     "clips / s": _median([r["clips"] / r["seconds"] for r in rs]),
                "clips / CPU s": _median([r["clips"] / r["cpu_seconds"] for r in rs])})
        if args.workers:
            rows[-1]["worker peak RSS (MB)"] = _median([r["workers_peak_rss_mb"] for r in rs])
    by = {(r["arm"], r["size"]): r for r in rows}
    for r in rows:
        r["peak RSS / 1x"] = r["peak RSS (MB)"] / by[r["arm"], "1x"]["peak RSS (MB)"]
        r["clips / s vs ram"] = r["clips / s"] / by["ram", r["size"]]["clips / s"]
    growth = {arm: {"peak RSS 16x / 1x": by[arm, "16x"]["peak RSS / 1x"],
                    "data RSS 16x / 1x": by[arm, "16x"]["data RSS (MB)"] / by[arm, "1x"]["data RSS (MB)"]}
              for arm in ARMS}
    targets = [{"target": "store peak RSS, 16x / 1x", "goal": f"<= {TARGET_RSS}",
                "measured": growth["store"]["peak RSS 16x / 1x"],
                "verdict": "PASS" if growth["store"]["peak RSS 16x / 1x"] <= TARGET_RSS else "MISS"}]
    for scale in SCALES:
        ratio = by["store", f"{scale}x"]["clips / s vs ram"]
        targets.append({"target": f"store clips/s / RAM clips/s, {scale}x", "goal": f">= {TARGET_SPEED}",
                        "measured": ratio, "verdict": "PASS" if ratio >= TARGET_SPEED else "MISS"})

    print(f"reading training batches, profile {args.profile}: rows {'x'.join(map(str, shape))} float32 "
          f"({row_mb * 1024:.0f} KiB), batch {batch}, {args.batches} batches per child, {args.workers} DataLoader "
          f"worker(s), {torch.get_num_threads()} threads, median of {args.repeats} fresh children "
          f"(stores built in {build_s:.0f} s)\n")
    columns = ["arm", "size", "rows", "data (MB)", "load (s)", "peak RSS (MB)", "data RSS (MB)", "peak RSS / 1x",
               "clips / s", "clips / s vs ram", "clips / CPU s"]
    if args.workers:
        columns.append("worker peak RSS (MB)")
    print(markdown_table(rows, columns))
    print("\ngrowth from 1x to 16x (data RSS = peak RSS minus the child's RSS before loading)\n")
    print(markdown_table([{"arm": a, **g} for a, g in growth.items()], ["arm", "peak RSS 16x / 1x",
                                                                        "data RSS 16x / 1x"]))
    print("\ntargets\n")
    print(markdown_table(targets, ["target", "goal", "measured", "verdict"]))
    results = {"benchmark": "data_loading", "profile": args.profile, "row_shape": list(shape), "batch_size": batch,
               "rows_1x": args.rows, "batches": args.batches, "workers": args.workers, "repeats": args.repeats,
               "env": environment(device), "rows": rows, "growth": growth, "targets": targets}
    write_json(args.json, results)
    return results


if __name__ == "__main__":
    main()
