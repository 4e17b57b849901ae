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


_started_here = False  # whether init_ray started the local runtime (tests and notebooks bring their own)


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
    global _started_here
    _started_here = True


def shutdown_ray() -> None:
    """Stop the local runtime if this process started it (Ray's exit hook would first sleep 0.5 s)."""
    global _started_here
    if _started_here and ray.is_initialized():
        ray.shutdown()
    _started_here = False


def stats_path(output_dir: str, shard: str) -> str:
    return os.path.join(output_dir, STATS_DIR, f"{shard}.json")


def load_complete_stats(output_dir: str, shard: str) -> dict | None:
    """The shard's stats if its outputs are complete (stats JSON present, listed files at their sizes)."""
    stats = io.read_json(stats_path(output_dir, shard))
    if not isinstance(stats, dict):
        return None
    for rel, size in stats.get("outputs", {}).items():
        full = os.path.join(output_dir, rel)
        if not io.isfile(full) or io.file_size(full) != size:
            return None
    return stats


def task_error(err: BaseException) -> str:
    """The last line of a failed task's error (Ray wraps the worker's traceback around it), capped."""
    text = str(err).strip()
    return text.splitlines()[-1][:500] if text else ""


WAIT_BATCH_SHARE = 8  # each ray.wait asks for 1/8 of what is pending ...
WAIT_TIMEOUT_S = 0.5  # ... or whatever finished within this time, whichever comes first


def as_completed(pending: dict[ray.ObjectRef, Any]) -> Iterator[tuple[Any, Any, BaseException | None]]:
    """Yield ``(label, result, None)`` or ``(label, None, error)`` for each task as it finishes.

    Every task is waited for: one that failed after its retries never hides the others. A
    ``ray.wait`` scans every ref it is given, so one call per completion would cost the driver
    O(n^2) over n tasks (bench/bench_driver.py measures both). Each call here asks for an eighth of what is
    pending, with a time limit: a call that scans k refs hands back k/8 of them (O(1) per task),
    and one that times out costs its scan once per ``WAIT_TIMEOUT_S``, not once per task.
    """
    labels = dict(pending)
    refs = list(labels)
    while refs:
        ready, refs = ray.wait(refs, num_returns=max(1, len(refs) // WAIT_BATCH_SHARE), timeout=WAIT_TIMEOUT_S)
        for ref in ready:
            label = labels.pop(ref)
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


RETRY_ON = [OSError, ConnectionError, TimeoutError]  # worker loss is always retried; these errors too


def remote_task(fn: Any, name: str, ray_cfg: RayConfig, **options: Any) -> Any:
    """``fn`` as a Ray task with the CPU, memory and retries that ``ray`` config declares per task.

    Every stage's tasks go through here (``name`` shows in Ray's state API as ``cptcorpus.<name>``).
    """
    env = io.storage_env()
    if env:  # object-store options (not credentials) reach workers on every node
        options.setdefault("runtime_env", {"env_vars": env})
    return ray.remote(fn).options(
        num_cpus=ray_cfg.task_cpus,
        memory=ray_cfg.task_memory_mb * 1024 * 1024,
        max_retries=ray_cfg.max_retries,
        retry_exceptions=RETRY_ON,
        name=f"cptcorpus.{name}",
        **options,
    )


def error_name(err: BaseException) -> str:
    """The failed task's own exception type (``ValueError``), not Ray's wrapper (``RayTaskError(ValueError)``)."""
    cause = getattr(err, "cause", None)
    return type(cause if isinstance(cause, BaseException) else err).__name__


def _shard_failure(stage: str, path: str, shard: str, err: BaseException) -> dict:
    message = task_error(err)
    log.error("%s: shard %s failed: %s", stage, path, message)
    return {"stage": stage, "file": path, "shard": shard,
            "reason": f"shard_failed:{error_name(err)}", "detail": message}


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
    remote = remote_task(_run_shard, stage.name, ray_cfg, **stage.ray_options())
    skipped = 0
    stage_ref = ray.put(stage)
    for path, shard in zip(files, io.shard_names(files), strict=True):
        done = load_complete_stats(output_dir, shard)
        if done is not None:
            results.append(done)
            skipped += 1
        else:
            pending[remote.remote(stage_ref, path, output_dir, shard)] = (path, shard)

    failed: list[dict] = []
    docs = sum(r.get("docs_in", 0) for r in results)  # a running count: O(1) per completion, not O(shards)
    with tqdm(total=len(files), initial=skipped, desc=stage.name, unit="shard", disable=not progress) as bar:
        for (path, shard), result, err in as_completed(pending):
            if err is None:
                results.append(result)
                docs += result.get("docs_in", 0)
            else:  # the task failed after its retries: report it, go on
                failed.append(_shard_failure(stage.name, path, shard, err))
            bar.update(1)
            bar.set_postfix(docs=docs, failed=len(failed), refresh=False)  # tqdm redraws at its own pace
    return finish_stage(stage.name, files, output_dir, results, failed, skipped, time.perf_counter() - started)


def finish_stage(name: str, files: list[str], output_dir: str, results: list[dict], failed: list[dict],
                 skipped: int, wall_seconds: float, fused_with: list[str] | None = None) -> dict:
    """Merge a stage's shard stats into ``_summary.json`` and ``_failures.jsonl``; returns the summary."""
    summary = merge_stats(results, name, wall_seconds)
    if fused_with:
        summary["fused_with"] = fused_with  # wall_seconds is the fused chain's; task_seconds is this stage's own
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


def _run_chain(stages: list[Stage], input_path: str, output_dirs: list[str], shard: str) -> list[dict]:
    """One input file through several stages in one task: each stage reads the previous one's output.

    Every stage still writes its own outputs and stats marker, so a retried or resumed chain starts
    at the first stage whose outputs are not complete.
    """
    results, path = [], input_path
    for stage, output_dir in zip(stages, output_dirs, strict=True):
        stats = load_complete_stats(output_dir, shard)
        results.append(stats if stats is not None else _run_shard(stage, path, output_dir, shard))
        path = os.path.join(output_dir, f"{shard}.parquet")
    return results


def run_chain(
    stages: list[Stage],
    inputs: Iterable[str],
    output_dirs: list[str],
    ray_cfg: RayConfig,
    progress: bool = True,
) -> list[dict]:
    """Run consecutive per-shard stages as one Ray task per input file; returns each stage's summary.

    The outputs are the ones the stages write when run one by one (same files, stats, summaries), but
    no stage waits for the slowest shard of the one before it and each worker keeps its shard's
    files warm, which matters most with few, uneven input files. ``wall_seconds`` of every summary is
    the whole chain's; each stage's own cost is its ``task_seconds``.
    """
    files = io.expand_inputs(inputs, stages[0].input_suffixes)
    stages[0].check_inputs(files)
    for stage in stages[1:]:  # their input files do not exist yet: only the driver-side checks run
        stage.check_inputs([])
    for output_dir in output_dirs:
        io.ensure_dir(output_dir)
        io.remove_stale_tmp(output_dir)
    started = time.perf_counter()
    names = [s.name for s in stages]
    options: dict = {}
    for stage in stages:  # a chain declares what its most demanding stage needs
        for key, value in stage.ray_options().items():
            options[key] = max(options.get(key, 0), value)
    remote = remote_task(_run_chain, "+".join(names), ray_cfg, **options)
    stages_ref = ray.put(stages)
    results: list[list[dict]] = [[] for _ in stages]
    failed: list[list[dict]] = [[] for _ in stages]
    skipped = [0] * len(stages)
    pending: dict[ray.ObjectRef, tuple[str, str]] = {}
    for path, shard in zip(files, io.shard_names(files), strict=True):
        done = [load_complete_stats(d, shard) for d in output_dirs]
        if all(s is not None for s in done):
            for k, stats in enumerate(done):
                results[k].append(stats)
                skipped[k] += 1
        else:
            for k, stats in enumerate(done):
                skipped[k] += stats is not None
            pending[remote.remote(stages_ref, path, output_dirs, shard)] = (path, shard)

    desc = f"{names[0]}..{names[-1]}"
    docs, counted = 0, 0  # running count of the first stage's documents: O(1) per completion
    with tqdm(total=len(files), initial=len(files) - len(pending), desc=desc, unit="shard",
              disable=not progress) as bar:
        for (path, shard), result, err in as_completed(pending):
            if err is None:
                for k, stats in enumerate(result):
                    results[k].append(stats)
            else:  # the chain stopped at its first stage without complete outputs; later stages never ran
                for k, output_dir in enumerate(output_dirs):
                    stats = load_complete_stats(output_dir, shard)
                    if stats is None:
                        failed[k].append(_shard_failure(names[k], path, shard, err))
                        break
                    results[k].append(stats)
            docs += sum(r.get("docs_in", 0) for r in results[0][counted:])
            counted = len(results[0])
            bar.update(1)
            bar.set_postfix(docs=docs, failed=sum(map(len, failed)), refresh=False)
    wall = time.perf_counter() - started
    summaries = []
    for k, (stage, output_dir) in enumerate(zip(stages, output_dirs, strict=True)):
        stage_files = files if k == 0 else sorted(os.path.join(output_dirs[k - 1], f"{r['shard']}.parquet")
                                                   for r in results[k - 1])
        summaries.append(finish_stage(stage.name, stage_files, output_dir, results[k], failed[k], skipped[k],
                                      wall, fused_with=names))
    return summaries


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
        if stage == "manifest" or not io.isfile(path):
            continue
        with io.open_input(path, "r", encoding="utf-8") as fh:
            lines.extend(line for line in fh if line.strip())
    io.write_text_atomic(os.path.join(config.run_dir, FAILURES_NAME), "".join(lines))
    return len(lines)
