"""Balance of the shard assignment inside one file's plan, on a heavy-tailed corpus.

    .venv/bin/python bench/bench_shard_plan.py

50,000 documents with lognormal token counts (median ~500, a few up to 60,000: the corpus of
tests/test_shard.py), greedy and cumulative assignment to 4, 16 and 64 shards, max/min. The plan at
a snapshot's scale (90,000 files, the driver's memory and time) is ``bench/bench_driver_scale.py``.

Writes bench/shard_plan_results.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines.shard import assign_cumulative, assign_greedy, balance_ratio  # noqa: E402

RESULTS = REPO / "bench" / "shard_plan_results.json"


def heavy_tailed(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    tokens = np.ceil(rng.lognormal(6.2, 1.2, n)).astype(np.int64)
    tokens[:3] = [60_000, 40_000, 30_000]
    return tokens


def balance(n_docs: int = 50_000) -> dict:
    tokens = heavy_tailed(n_docs, 3)
    out = {"docs": n_docs, "median_tokens": float(np.median(tokens)), "max_tokens": int(tokens.max())}
    for n in (4, 16, 64):
        out[f"{n}_shards"] = {name: round(balance_ratio(np.bincount(fn(tokens, n), weights=tokens, minlength=n)), 5)
                              for name, fn in (("greedy", assign_greedy), ("cumulative", assign_cumulative))}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    out = {"command": "python bench/bench_shard_plan.py " + " ".join(sys.argv[1:]),
           "balance": balance()}
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
