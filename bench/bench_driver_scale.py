"""What the driver holds and how long it plans, at one Common Crawl snapshot for one language.

    .venv/bin/python bench/bench_driver_scale.py [--files 90000] [--docs 60000000] [--shards 60]

Synthetic inputs of that size (plans, not documents; no real data needed):

1. **shard plan** — the driver gets one totals dict per input file (``scan_input``'s return),
   computes the shard count, then maps each file's shard labels onto shards from the files' label
   loads (``relabel_files``; the loads come from batched tasks, computed here one file after the
   other with heavy-tailed token counts). Measured: the driver's time and the bytes it holds
   (tracemalloc), one file's plan time (``docs/files`` rows), and the balance of the corpus's shards,
   with the relabelling and without it.
2. **dedup plan** — ``dedup.make_plan`` over ``--files`` real Parquet files (one tiny file copied,
   so only footers are read): wall seconds, peak driver memory, and bytes per file.
3. **index selection** — a synthetic columnar index of ``--index-records`` rows in ``--index-files``
   parts, every row selected: the one-pass selection (``scan_index`` over every part, what
   ``plan_index`` did before) against ``plan_index`` per partition, each in a fresh process: peak
   Arrow memory (Arrow's pool, which tracemalloc does not see) and RSS.

Writes bench/driver_scale_results.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines import dedup  # noqa: E402
from pipelines.config import ShardConfig, parse_config  # noqa: E402
from pipelines.shard import _assign_file, balance_ratio, n_shards_for, relabel_files  # noqa: E402

RESULTS = REPO / "bench" / "driver_scale_results.json"
WORK = REPO / "bench" / "work" / "driver_scale"


def heavy_tailed(n: int, rng: np.random.Generator) -> np.ndarray:
    """Token counts: lognormal, median ~500, a long tail (the corpus of tests/test_shard.py)."""
    return np.ceil(rng.lognormal(6.2, 1.2, n)).astype(np.int64)


def shard_plan(n_files: int, n_docs: int, n_shards: int) -> dict:
    per_file = n_docs // n_files
    rng = np.random.default_rng(0)
    cfg = ShardConfig(num_shards=n_shards)
    # what scan tasks return: totals per file (the driver's whole input to the plan)
    tracemalloc.start()
    totals = [{"rows": per_file, "expanded_rows": per_file, "tokens": int(per_file * 950), "bytes": per_file * 3800,
               "bytes_in": per_file * 3800, "histograms": {}, "cached": False} for _ in range(n_files)]
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    started = time.perf_counter()
    n = n_shards_for(cfg, sum(t["tokens"] for t in totals), sum(t["bytes"] for t in totals),
                     sum(t["expanded_rows"] for t in totals))
    driver_s = time.perf_counter() - started
    # every file's label loads, as the batched label_loads tasks compute them (timed per file)
    loads, task_s = [], []
    for i in range(n_files):
        scan = {"tokens": heavy_tailed(per_file, rng), "cluster": np.ones(per_file, dtype=np.int64)}
        t0 = time.perf_counter()
        part = _assign_file(scan, n, cfg, i)
        task_s.append(time.perf_counter() - t0)
        loads.append(np.bincount(part["label"], weights=part["tokens"], minlength=n).astype(np.int64))
    # the driver: relabel every file (memory: the label loads it receives plus the maps it keeps)
    tracemalloc.start()
    started = time.perf_counter()
    relabels = relabel_files(loads, n)
    relabel_s = time.perf_counter() - started
    _, relabel_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    loads_bytes = sum(v.nbytes for v in loads)
    shard_tokens = np.zeros(n, dtype=np.int64)
    unbalanced = np.zeros(n, dtype=np.int64)
    for v, r in zip(loads, relabels, strict=True):
        np.add.at(shard_tokens, r, v)
        unbalanced += v
    driver_total = held + loads_bytes + relabel_peak
    return {"files": n_files, "docs": per_file * n_files, "docs_per_file": per_file, "shards": n,
            "driver_shard_count_seconds": round(driver_s, 4), "driver_relabel_seconds": round(relabel_s, 2),
            "driver_bytes_totals": held, "driver_bytes_label_loads": loads_bytes,
            "driver_bytes_relabel_peak": relabel_peak, "driver_bytes_total": driver_total,
            "driver_bytes_per_file": round(driver_total / n_files, 1),
            "driver_bytes_per_doc": round(driver_total / (per_file * n_files), 3),
            "file_plan_seconds_per_file_median": round(float(np.median(task_s)), 5),
            "file_plan_cpu_seconds_all_files": round(sum(task_s), 1),
            "max_over_min": balance_ratio(shard_tokens),
            "max_over_min_without_relabel": balance_ratio(unbalanced), "tokens": int(shard_tokens.sum())}


def dedup_plan(n_files: int) -> dict:
    src = WORK / "parquet" / "one.parquet"
    src.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"id": ["a", "b"], "text": ["x y z", "u v w"], "lang": ["pt", "pt"]}), src)
    files_dir = WORK / "parquet" / "files"
    if not files_dir.is_dir() or len(list(files_dir.iterdir())) != n_files:
        shutil.rmtree(files_dir, ignore_errors=True)
        files_dir.mkdir()
        data = src.read_bytes()
        for i in range(n_files):
            (files_dir / f"CC-MAIN-{i:06d}.parquet").write_bytes(data)
    files = sorted(str(p) for p in files_dir.iterdir())
    config = parse_config({"name": "scale", "output": str(WORK / "run")})
    tracemalloc.start()
    started = time.perf_counter()
    plan = dedup.make_plan(config, files, str(WORK / "run" / "dedup"))
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"files": n_files, "seconds": round(seconds, 2), "files_per_s": round(n_files / seconds),
            "peak_bytes": peak, "peak_bytes_per_file": round(peak / n_files, 1), "partitions": plan.partitions,
            "footer_threads": dedup.FOOTER_THREADS, "storage": "local disk (an object store adds its latency "
            "per footer, overlapped FOOTER_THREADS at a time)"}


def _write_index(n_records: int, n_files: int) -> list[str]:
    """A synthetic columnar URL index: ``n_files`` Parquet parts, records of 900 WARC files in each."""
    out = WORK / f"index-{n_records}-{n_files}"
    paths = sorted(str(p) for p in out.glob("*.parquet"))
    if len(paths) == n_files:
        return paths
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    warcs = [f"crawl-data/CC-MAIN-2024-10/segments/1707947{i:06d}.41/warc/CC-MAIN-20240220-{i:05d}.warc.gz"
             for i in range(900)]
    per = n_records // n_files
    for k in range(n_files):
        ids = range(k * per, (k + 1) * per)
        pq.write_table(pa.table({
            "url": [f"https://www.example{i % 50_000}.com.br/path/{i}/artigo-{i}.html" for i in ids],
            "warc_filename": [warcs[i] for i in rng.integers(0, len(warcs), per)],
            "warc_record_offset": rng.integers(0, 1 << 30, per),
            "warc_record_length": rng.integers(2_000, 60_000, per),
            "fetch_status": np.full(per, 200, dtype=np.int32),
            "content_mime_detected": ["text/html"] * per,
            "content_languages": ["por"] * per,
        }), out / f"part-{k:05d}.parquet")
    return sorted(str(p) for p in out.glob("*.parquet"))


def _index_run(mode: str, paths: list[str]) -> dict:
    """One selection in a fresh process: its peak Arrow memory and RSS (Arrow's pool is not traced)."""
    code = (
        "import json, resource, sys, time, tempfile; import pyarrow as pa\n"
        "from pipelines import commoncrawl as cc\nfrom pipelines.config import CommonCrawlInput\n"
        "c = CommonCrawlInput(index=sys.argv[2:], languages=['por'])\nt = time.perf_counter()\n"
        "if sys.argv[1] == 'whole':\n    n = cc.scan_index(c).num_rows\n"
        "else:\n    n = len(cc.plan_index(c, tempfile.mkdtemp()))\n"
        "print(json.dumps({'seconds': round(time.perf_counter() - t, 2), 'result': n,"
        " 'arrow_peak_bytes': pa.default_memory_pool().max_memory(),"
        " 'max_rss_bytes': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))\n")
    proc = subprocess.run([sys.executable, "-c", code, mode, *paths], cwd=REPO, capture_output=True, text=True,
                          check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def index_selection(n_records: int, n_files: int, extrapolate_to: int) -> dict:
    """The old one-pass selection (``scan_index`` over every file) against ``plan_index`` per partition."""
    paths = _write_index(n_records, n_files)
    whole = _index_run("whole", paths)
    whole["records_selected"] = whole.pop("result")
    partitioned = _index_run("partitioned", paths)
    partitioned["plans"] = partitioned.pop("result")
    per_record = whole["arrow_peak_bytes"] / n_records
    return {"records": n_records, "index_files": n_files,
            "one_pass": {**whole, "arrow_bytes_per_record": round(per_record, 1),
                         "extrapolated_gb_at": {"records": extrapolate_to,
                                                "gb": round(per_record * extrapolate_to / 1e9, 2)}},
            "per_partition": partitioned,
            "arrow_peak_ratio_one_pass_over_partitioned": round(whole["arrow_peak_bytes"]
                                                                / max(partitioned["arrow_peak_bytes"], 1), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=90_000)
    parser.add_argument("--docs", type=int, default=60_000_000)
    parser.add_argument("--shards", type=int, default=60)
    parser.add_argument("--index-records", type=int, default=1_000_000)
    parser.add_argument("--index-files", type=int, default=10)
    parser.add_argument("--skip", nargs="*", default=[], choices=("dedup", "index", "shard"),
                        help="sections to leave out (their previous results are kept)")
    args = parser.parse_args()
    out = json.loads(RESULTS.read_text()) if RESULTS.exists() and args.skip else {}
    out["command"] = "python bench/bench_driver_scale.py " + " ".join(sys.argv[1:])
    if "dedup" not in args.skip:
        print("dedup plan ...", file=sys.stderr, flush=True)
        out["dedup_plan"] = dedup_plan(args.files)
    if "index" not in args.skip:
        print("index selection ...", file=sys.stderr, flush=True)
        out["index_selection"] = index_selection(args.index_records, args.index_files, args.docs)
    if "shard" not in args.skip:
        print("shard plan ...", file=sys.stderr, flush=True)
        out["shard_plan"] = shard_plan(args.files, args.docs, args.shards)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
