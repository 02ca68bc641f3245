"""Where does the timbre go?  Family accuracy and FD CREPE, stage by stage, of one trained run.

What is measured (``marslib.study.timbre_stages``), on the held-out test clips
(``evaluate.test_clips``: ``eval.max_conditions`` evenly spaced, 0 = all):

* ``real``: the test clips themselves (the reference);
* ``griffin_lim``: real -> |STFT| -> Griffin-Lim (the phase MARS drops);
* ``continuous``: real -> tokenizer encoder -> decoder with no quantiser (the autoencoder alone);
* ``scales_k``: real -> tokens -> decode of the first k scales, k = 1..K;
* ``mars``: one generated note per test (pitch, family), if ``<run>/ar`` exists;
* ``mars_from_k`` (``--continue-from``): MARS given the real note's scales 1..k, sampling
  the rest: where along the scales the transformer loses the instrument.

For each: the run's classifier's family accuracy against the family each clip was
made for (overall and per family) and FD on CREPE embeddings to the real test clips.
Every stage but ``real`` ends in the same Griffin-Lim with the same seeds.  Then the
consecutive step of the chain real -> Griffin-Lim -> continuous -> K scales -> MARS
that loses most family accuracy.

This is not a timing benchmark: it measures quality, once, and is deterministic for a
given run, seed and device.  It needs ``<run>/classifier`` (``mars train classifier``)
and ``<run>/tokenizer``.

    python benchmarks/timbre_study.py --run runs/course --profile course
    python benchmarks/timbre_study.py --run runs/course --profile course --no-crepe --continue-from 1 2 3 4 5 6
    python benchmarks/timbre_study.py --run runs/smoke --profile smoke --no-crepe --set eval.max_conditions=20
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_run_args, environment, run_config, setup, write_json  # noqa: E402

from marslib.provenance import provenance  # noqa: E402
from marslib.study import biggest_drop, chain, stage_table, timbre_stages  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=None, help="Griffin-Lim and sampling seed (default: the profile's)")
    p.add_argument("--no-crepe", action="store_true", help="skip FD CREPE (family accuracy only; faster)")
    p.add_argument("--no-generate", action="store_true", help="skip the MARS stage even if <run>/ar exists")
    p.add_argument("--continue-from", type=int, nargs="*", default=[], metavar="K",
                   help="also let MARS continue each real test note after its first K scales (one stage per K)")
    add_run_args(p, "classifier/, tokenizer/ [, ar/]", "timbre_study")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = setup(args)
    cfg, run, over = run_config(args, **({} if args.seed is None else {"seed": args.seed}))
    t0 = time.perf_counter()
    result = timbre_stages(cfg, run, seed=cfg.seed, crepe=not args.no_crepe, generate=not args.no_generate,
                           continue_from=tuple(args.continue_from))
    seconds = time.perf_counter() - t0
    table, drop = stage_table(result), biggest_drop(result)
    print(f"\ntimbre study, profile {cfg.profile}, run {run}, {result['n_test']} test clips, seed {cfg.seed}, "
          f"{device} ({torch.get_num_threads()} threads), {seconds:.0f} s\n")
    print(table)
    print(drop)
    results = {"benchmark": "timbre_study", "profile": cfg.profile, "run": str(run), "overrides": over,
               "env": environment(device), "seconds": seconds, "table": table, "chain": chain(result),
               "biggest_drop": drop, **result, "config": cfg.to_dict(), "provenance": provenance(cfg)}
    out = args.json or RESULTS / f"timbre_study_{cfg.profile}.json"
    write_json(out, results)
    print(f"-> {out}")
    return results


if __name__ == "__main__":
    main()
