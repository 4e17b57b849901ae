"""The Ray runner: one task per input shard, resume, retries, progress and a merged stage summary.

A stage is an object with ``process_shard(input_path, output_dir, shard) -> stats`` (see
``pipelines.stage``). The runner expands the inputs, skips shards whose outputs are complete, runs
the rest as Ray tasks with declared CPU and memory, and merges the per-shard stats JSON into the
stage's ``_summary.json`` and ``failures.jsonl``. It is the same code on a laptop (a local Ray
runtime started in-process) and on a cluster (``--address`` / ``RAY_ADDRESS``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import ray
from tqdm import tqdm

from pipelines import io
from pipelines.config import STAGES, Config, RayConfig

if TYPE_CHECKING:
    from pipelines.stage import Stage

log = logging.getLogger("cptcorpus")

SUMMARY_NAME = "_summary.json"
FAILURES_NAME = "failures.jsonl"  # run level; each stage directory has its own ``_failures.jsonl``
STAGE_FAILURES_NAME = "_failures.jsonl"
STATS_DIR = "_stats"  # per-shard stats; the leading underscore keeps Parquet dataset readers out
MAX_FAILURES_LISTED = 1000  # per shard: a file full of broken records must not make stats huge


def init_ray(cfg: RayConfig, address: str | None = None) -> None:
    """Connect to a cluster when an address is given, else start a local runtime (no dashboard).

    Reuses an already initialised runtime, so tests start Ray once per session.
    """
    if ray.is_initialized():
        return
    address = address or cfg.address or os.environ.get("RAY_ADDRESS")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address and address != "local":
        ray.init(address=address, logging_level=logging.WARNING)
        return
    # address="local" always starts a new runtime; without it Ray would attach to any cluster that
    # `ray start` left running on this machine, silently changing where and with what the run happens.
    kwargs: dict[str, Any] = {"address": "local", "include_dashboard": False, "logging_level": logging.WARNING}
    if cfg.num_cpus:
        kwargs["num_cpus"] = cfg.num_cpus
    if cfg.object_store_mb:
        kwargs["object_store_memory"] = cfg.object_store_mb * 1024 * 1024
    ray.init(**kwargs)


def stats_path(output_dir: str, shard: str) -> str:
    return os.path.join(output_dir, STATS_DIR, f"{shard}.json")


def load_complete_stats(output_dir: str, shard: str) -> dict | None:
    """The shard's stats if its outputs are complete (stats JSON present, listed files at their sizes)."""
    stats = io.read_json(stats_path(output_dir, shard))
    if not isinstance(stats, dict):
        return None
    for rel, size in stats.get("outputs", {}).items():
        full = os.path.join(output_dir, rel)
        if not os.path.isfile(full) or os.path.getsize(full) != size:
            return None
    return stats


def task_error(err: BaseException) -> str:
    """The last line of a failed task's error (Ray wraps the worker's traceback around it), capped."""
    text = str(err).strip()
    return text.splitlines()[-1][:500] if text else ""


def as_completed(pending: dict[ray.ObjectRef, Any]) -> Iterator[tuple[Any, Any, BaseException | None]]:
    """Yield ``(label, result, None)`` or ``(label, None, error)`` for each task as it finishes.

    Every task is waited for: one that failed after its retries never hides the others.
    """
    pending = dict(pending)
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            label = pending.pop(ref)
            try:
                result, error = ray.get(ref), None
            except Exception as err:
                result, error = None, err
            yield label, result, error


def _run_shard(stage: Stage, input_path: str, output_dir: str, shard: str) -> dict:
    started = time.perf_counter()
    stats = stage.process_shard(input_path, output_dir, shard)
    stats.setdefault("seconds", round(time.perf_counter() - started, 4))
    stats["shard"] = shard
    stats["input"] = input_path
    stats["stage"] = stage.name
    # The stats file is the completion marker: written last, after every output was renamed into place.
    io.write_json_atomic(stats_path(output_dir, shard), stats)
    return stats


def run_shards(
    stage: Stage,
    inputs: Iterable[str],
    output_dir: str,
    ray_cfg: RayConfig,
    progress: bool = True,
) -> dict:
    """Run ``stage`` over every input shard and return the stage summary (also written to disk)."""
    files = io.expand_inputs(inputs, stage.input_suffixes)
    stage.check_inputs(files)
    io.ensure_dir(output_dir)
    io.remove_stale_tmp(output_dir)
    started = time.perf_counter()

    results: list[dict] = []
    pending: dict[ray.ObjectRef, tuple[str, str]] = {}
    remote = ray.remote(_run_shard).options(
        num_cpus=ray_cfg.task_cpus,
        memory=ray_cfg.task_memory_mb * 1024 * 1024,
        max_retries=ray_cfg.max_retries,
        retry_exceptions=[OSError, ConnectionError, TimeoutError],
        name=f"cptcorpus.{stage.name}",
        **stage.ray_options(),
    )
    skipped = 0
    names = io.shard_names(files)
    stage_ref = ray.put(stage)
    for path, shard in zip(files, names, strict=True):
        done = load_complete_stats(output_dir, shard)
        if done is not None:
            results.append(done)
            skipped += 1
        else:
            pending[remote.remote(stage_ref, path, output_dir, shard)] = (path, shard)

    failed: list[dict] = []
    with tqdm(total=len(files), initial=skipped, desc=stage.name, unit="shard", disable=not progress) as bar:
        for (path, shard), result, err in as_completed(pending):
            if err is None:
                results.append(result)
            else:  # the task failed after its retries: report it, go on
                message = task_error(err)
                failed.append({"stage": stage.name, "file": path, "shard": shard,
                               "reason": f"shard_failed:{type(err).__name__}", "detail": message})
                log.error("%s: shard %s failed: %s", stage.name, path, message)
            bar.update(1)
            bar.set_postfix(docs=sum(r.get("docs_in", 0) for r in results), failed=len(failed))

    summary = merge_stats(results, stage.name, time.perf_counter() - started)
    summary["shards"] = {"total": len(files), "skipped_complete": skipped,
                         "processed": len(files) - skipped - len(failed), "failed": len(failed)}
    failures = [f for r in results for f in r.get("failures", [])] + failed
    for f in failed:
        summary["failures_by_reason"][f["reason"]] = summary["failures_by_reason"].get(f["reason"], 0) + 1
    summary["failed_shards"] = failed
    summary["inputs"] = files
    io.write_json_atomic(os.path.join(output_dir, SUMMARY_NAME), summary)
    io.write_text_atomic(
        os.path.join(output_dir, STAGE_FAILURES_NAME),
        "".join(json.dumps(f, sort_keys=True, ensure_ascii=False) + "\n" for f in failures),
    )
    return summary


def merge_stats(results: list[dict], stage: str, wall_seconds: float) -> dict:
    """Sum per-shard stats into a stage summary with throughput figures."""
    results = sorted(results, key=lambda r: r.get("shard", ""))
    total = Counter()
    reasons: Counter = Counter()
    failures: Counter = Counter()
    extra: dict[str, Counter] = {}
    for r in results:
        for key in ("docs_in", "docs_out", "docs_rejected", "bytes_in", "bytes_out", "records_in"):
            total[key] += int(r.get(key, 0) or 0)
        total["task_seconds"] += float(r.get("seconds", 0.0))
        reasons.update(r.get("reasons", {}))
        failures.update(r.get("failure_counts", {}))
        for key, counts in r.get("counters", {}).items():
            extra.setdefault(key, Counter()).update(counts)
    task_s = total["task_seconds"] or 1e-9
    wall = wall_seconds or 1e-9
    return {
        "stage": stage,
        "docs_in": total["docs_in"],
        "docs_out": total["docs_out"],
        "docs_rejected": total["docs_rejected"],
        "records_in": total["records_in"],
        "bytes_in": total["bytes_in"],
        "bytes_out": total["bytes_out"],
        "wall_seconds": round(wall_seconds, 3),
        "task_seconds": round(total["task_seconds"], 3),
        "docs_per_s": round(total["docs_in"] / wall, 2),
        "mb_per_s": round(total["bytes_in"] / wall / 1e6, 3),
        "docs_per_s_per_task": round(total["docs_in"] / task_s, 2),
        "mb_per_s_per_task": round(total["bytes_in"] / task_s / 1e6, 3),
        "reasons": dict(sorted(reasons.items())),
        "failures_by_reason": dict(sorted(failures.items())),
        "counters": {k: dict(sorted(v.items())) for k, v in sorted(extra.items())},
    }


def write_run_failures(config: Config) -> int:
    """Rebuild the run-level failures.jsonl from every stage's, in stage order; returns the count."""
    lines: list[str] = []
    for stage in STAGES:
        path = os.path.join(config.stage_dir(stage), STAGE_FAILURES_NAME)
        if stage == "manifest" or not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as fh:
            lines.extend(line for line in fh if line.strip())
    io.write_text_atomic(os.path.join(config.run_dir, FAILURES_NAME), "".join(lines))
    return len(lines)
