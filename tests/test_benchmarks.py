"""Smoke runs of the benchmark scripts (smoke profile, one repetition): rows and positive numbers.

The scripts live in ``benchmarks/`` (not a package); they are imported from their files.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name: str):
    if str(BENCH) not in sys.path:  # the scripts import benchmarks/common.py by name
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_tokenizer_cmx_vs_full(tmp_path):
    out = tmp_path / "tok.json"
    res = _load("tokenizer_cmx_vs_full").main(["--profile", "smoke", "--repeats", "1", "--json", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(res))
    rows = {r["variant"]: r for r in res["rows"]}
    assert list(rows) == ["cmx", "full", "truncate"]
    for r in rows.values():
        for key in ("params (M)", "ms / step", "activations (MB)", "time / cmx", "memory / cmx"):
            assert _positive(r[key]), (r["variant"], key, r[key])
    assert len({r["tokens"] for r in rows.values()}) == 1           # same token budget
    assert len({r["latent"] for r in rows.values()}) == 1
    assert rows["cmx"]["input (C,H,W)"] == "4x32x128" and rows["full"]["input (C,H,W)"] == "1x64x256"
    # saved-for-backward bytes are deterministic: the full spectrogram needs more
    assert rows["full"]["activations (MB)"] > rows["cmx"]["activations (MB)"]


def test_sampling_speed(tmp_path):
    out = tmp_path / "sampling.json"
    res = _load("sampling_speed").main(["--profile", "smoke", "--repeats", "1", "--batch-sizes", "1", "2",
                                        "--json", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(res))
    assert [(r["grid"], r["batch"]) for r in res["rows"]] == [("smoke", 1), ("smoke", 2)]
    for r in res["rows"]:
        assert (r["L next-scale"], r["L raster"], r["K"]) == (1 + 2 + 8 + 16 + 64, 64, 5)
        for key in ("next-scale (ms)", "raster (ms)", "forward (ms)", "raster / next-scale", "next-scale / forward"):
            assert _positive(r[key]), (key, r[key])
    rtf = res["rtf"]
    assert rtf["profile"] == "smoke" and _positive(rtf["RTF"]) and _positive(rtf["end to end (s)"])
    assert {t["verdict"] for t in res["targets"]} <= {"PASS", "MISS"} and len(res["targets"]) == 3
