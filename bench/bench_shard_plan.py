"""The shard stage's plan, on the driver: balance on a heavy-tailed corpus, time and memory per document.

    .venv/bin/python bench/bench_shard_plan.py [--docs 1000000] [--inputs 100] [--shards 64]

1. balance: 50,000 documents with lognormal token counts (median ~500, a few up to 60,000: the
   corpus of tests/test_shard.py), greedy and cumulative assignment to 4, 16 and 64 shards, max/min;
2. ``make_plan`` over ``--docs`` documents in ``--inputs`` files (default config: greedy, no
   rehydration): wall and CPU seconds (medians of 3; on a shared machine CPU is the steadier) and the peak bytes it allocates per document
   (tracemalloc, which sees numpy's buffers), plus the bytes the finished plan keeps per document.

Writes bench/shard_plan_results.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines.config import ShardConfig  # noqa: E402
from pipelines.shard import assign_cumulative, assign_greedy, balance_ratio, make_plan  # noqa: E402

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


def plan_cost(n_docs: int, n_inputs: int, n_shards: int) -> dict:
    tokens = heavy_tailed(n_docs, 0)
    per_input = np.array_split(tokens, n_inputs)
    clusters = [np.ones(len(t), dtype=np.int64) for t in per_input]
    cfg = ShardConfig()
    seconds, cpu = [], []
    for _ in range(3):
        started, cpu_started = time.perf_counter(), time.process_time()
        make_plan(per_input, clusters, n_shards, cfg)
        seconds.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    tracemalloc.start()
    plan = make_plan(per_input, clusters, n_shards, cfg)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    kept = sum(a.nbytes for a in (plan.offsets, plan.base, plan.repeat, plan.tokens, plan.shard, plan.pos))
    inputs_bytes = sum(t.nbytes for t in per_input) + sum(c.nbytes for c in clusters)
    return {"docs": n_docs, "inputs": n_inputs, "shards": n_shards, "balance": cfg.balance,
            "seconds_runs": [round(s, 3) for s in seconds], "seconds_median": round(statistics.median(seconds), 3),
            "cpu_seconds_median": round(statistics.median(cpu), 3),
            "peak_bytes_per_doc_during_plan": round(peak / n_docs, 1),
            "plan_bytes_per_doc": round(kept / n_docs, 1),
            "input_arrays_bytes_per_doc": round(inputs_bytes / n_docs, 1),
            "max_over_min": round(balance_ratio(plan.shard_tokens), 5)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--inputs", type=int, default=100)
    parser.add_argument("--shards", type=int, default=64)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    out = {"command": "python bench/bench_shard_plan.py " + " ".join(sys.argv[1:]),
           "balance": balance(), "plan": plan_cost(args.docs, args.inputs, args.shards)}
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
