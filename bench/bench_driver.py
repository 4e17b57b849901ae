"""What the driver pays per shard task: many tiny tasks through `run_shards`, on a local Ray runtime.

    .venv/bin/python bench/bench_driver.py [--tasks 50000] [--replay 1000 5000 50000] [--num-cpus 2]

Two measurements, written to bench/driver_results.json:

1. ``run_shards``: a trivial stage (one empty input file per task, one stats JSON written per task,
   as every stage does) over ``--tasks`` files, progress bar on. The driver's CPU seconds
   (``time.process_time``: every thread of the driver process, so Ray's own task submission and
   result handling are included) divided by the tasks is the figure to keep under 1 ms.
2. the bookkeeping alone: ``as_completed`` plus the progress bar's running counter over tasks that
   already finished, so no time goes to waiting; at each ``--replay`` size, and for comparison the
   earlier loop (one ``ray.wait`` per completion over all pending refs, and a sum over all results
   for the bar), which is O(n) per task and so only run up to ``--old-max`` tasks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import ray
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines.config import parse_config  # noqa: E402
from pipelines.runner import as_completed, run_shards  # noqa: E402
from pipelines.stage import Stage  # noqa: E402

RESULTS = REPO / "bench" / "driver_results.json"


class TinyStage(Stage):
    """A stage whose task does nothing but report one document: all that is left is the framework."""

    name = "tiny"
    input_suffixes = (".in",)

    def process_shard(self, input_path: str, output_dir: str, shard: str) -> dict:
        return {"docs_in": 1, "docs_out": 1, "outputs": {}}


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, driver CPU seconds) of ``fn``."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def run_shards_cost(n_tasks: int) -> dict:
    cfg = parse_config({})
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "in"
        inputs.mkdir()
        for i in range(n_tasks):
            (inputs / f"s{i:06d}.in").touch()
        summary: dict = {}

        def run() -> None:
            summary.update(run_shards(TinyStage(cfg), [str(inputs)], str(Path(tmp) / "out"), cfg.ray))

        wall, cpu = timed(run)
    assert summary["shards"]["processed"] == n_tasks, summary["shards"]
    return {"tasks": n_tasks, "wall_s": round(wall, 2), "driver_cpu_s": round(cpu, 2),
            "task_seconds": summary["task_seconds"],
            "driver_cpu_ms_per_task": round(1000 * cpu / n_tasks, 3),
            "wall_ms_per_task": round(1000 * wall / n_tasks, 3)}


@ray.remote
def _tiny(i: int) -> dict:
    return {"docs_in": 1, "shard": i}


def _finished_refs(n: int) -> dict:
    refs = [_tiny.remote(i) for i in range(n)]
    ray.wait(refs, num_returns=n, fetch_local=True)
    return {ref: i for i, ref in enumerate(refs)}


def new_loop(pending: dict) -> int:
    """The runner's loop: ``as_completed`` and a running document count for the bar."""
    docs = 0
    with tqdm(total=len(pending), file=open(os.devnull, "w")) as bar:  # noqa: SIM115 (closed with the bar)
        for _, result, _ in as_completed(pending):
            docs += result["docs_in"]
            bar.update(1)
            bar.set_postfix(docs=docs, refresh=False)
    return docs


def old_loop(pending: dict) -> int:
    """The loop before issue 13: one ``ray.wait`` per completion, the bar's count summed from scratch."""
    pending, results = dict(pending), []
    with tqdm(total=len(pending), file=open(os.devnull, "w")) as bar:  # noqa: SIM115
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                pending.pop(ref)
                results.append(ray.get(ref))
                bar.update(1)
                bar.set_postfix(docs=sum(r.get("docs_in", 0) for r in results))
    return len(results)


def replay(sizes: list[int], old_max: int) -> list[dict]:
    finished = list(_finished_refs(max(sizes)))  # one set of finished tasks; every replay reads a prefix
    rows = []
    for n in sorted(sizes):
        pending = {ref: i for i, ref in enumerate(finished[:n])}
        loops = [("as_completed", new_loop)] + ([("one_wait_per_completion", old_loop)] if n <= old_max else [])
        for name, loop in loops:
            wall, cpu = timed(lambda loop=loop, pending=pending: loop(pending))
            rows.append({"loop": name, "tasks": n, "wall_s": round(wall, 3), "driver_cpu_s": round(cpu, 3),
                         "driver_cpu_ms_per_task": round(1000 * cpu / n, 4)})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=50_000)
    parser.add_argument("--replay", type=int, nargs="+", default=[1000, 5000, 50_000])
    parser.add_argument("--old-max", type=int, default=5000, help="largest replay of the O(n) per task loop")
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False, logging_level="WARNING")
    try:
        out = {"command": "python bench/bench_driver.py " + " ".join(sys.argv[1:]),
               "machine": {"cpus": os.cpu_count(), "ray_num_cpus": args.num_cpus,
                           "python": platform.python_version(), "ray": ray.__version__},
               "bookkeeping_replay": replay(args.replay, args.old_max)}
        out["run_shards"] = run_shards_cost(args.tasks)
        print(json.dumps(out["run_shards"]), file=sys.stderr, flush=True)
    finally:
        ray.shutdown()
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
