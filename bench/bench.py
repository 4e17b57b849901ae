"""`make bench`: our pipeline against datatrove on the same >= 5,000-page WARC input, in one run.

For 1 and 2 workers it times `cptcorpus run` end to end (trafilatura, and resiliparse) and
datatrove's FineWeb-shaped pipeline (bench/datatrove_pipeline.py), each repeated, and reports the
medians: docs/s and MB/s per stage and end to end, per-core figures, 1 -> 2 worker scaling, peak
memory per worker process, and the ratio ours/datatrove. Writes bench/results.json and the tables
in BENCHMARKS.md (between the BENCH markers). Docs/s always counts the input's HTML responses, so
every row divides the same work by its time. The input's pages are distinct by default (every page's
text unique: what the targets are judged on); ``--input-mode repeated`` copies each page unchanged.

    python bench/bench.py [--repeats 2] [--datatrove-repeats 1] [--workers 1 2] [--skip-datatrove]
                          [--input-mode distinct|repeated] [--files 8] [--extractors trafilatura resiliparse]
                          [--results bench/results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import yaml

from pipelines import registry

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / "work"
MARK_BEGIN, MARK_END = "<!-- BENCH:BEGIN -->", "<!-- BENCH:END -->"
sys.path.insert(0, str(REPO))

from pipelines.config import PER_SHARD_STAGES  # noqa: E402
from pipelines.config import STAGES as RUN_STAGES  # noqa: E402

STAGES = tuple(s for s in RUN_STAGES if s != "manifest")  # the stages that write a _summary.json with timings


class PeakMemory:
    """Samples every process under a subprocess: peak RSS and last-seen CPU seconds per process.

    CPU seconds (user + system, summed over the tree) say how much machine a run really used, which
    wall time times workers does not: datatrove's extraction sandbox is a second process per task,
    and Ray has its own daemons. A process's last < 0.2 s is missed, so the sum is a slight undercount.
    """

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid, self.interval = pid, interval
        self.peaks: dict[int, tuple[str, int]] = {}
        self.cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                root = psutil.Process(self.pid)
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            for p in procs:
                try:
                    rss, name = p.memory_info().rss, " ".join(p.cmdline()[:3])[:80] or p.name()
                    times = p.cpu_times()
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                self.cpu[p.pid] = times.user + times.system
                if rss > self.peaks.get(p.pid, ("", 0))[1]:
                    self.peaks[p.pid] = (name, rss)
            self._stop.wait(self.interval)

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        children = [rss for pid, (_, rss) in self.peaks.items() if pid != self.pid]
        ray_workers = [rss for name, rss in self.peaks.values() if name.startswith("ray::")]
        workers = ray_workers or children  # datatrove's workers are plain child processes
        return {"driver_mb": round(self.peaks.get(self.pid, ("", 0))[1] / 2**20, 1),
                "max_worker_mb": round(max(workers, default=0) / 2**20, 1),
                "max_process_mb": round(max((r for _, r in self.peaks.values()), default=0) / 2**20, 1),
                "cpu_seconds": round(sum(self.cpu.values()), 2)}


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, dict, str]:
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=dict(os.environ, RAY_USAGE_STATS_ENABLED="0", **(env or {})))
    mem = PeakMemory(proc.pid)
    out, _ = proc.communicate()
    seconds = time.perf_counter() - started
    peaks = mem.stop()
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{text[-4000:]}")
    return seconds, peaks, text


def ours(input_dir: Path, workers: int, extractor: str, run_dir: Path) -> dict:
    shutil.rmtree(run_dir, ignore_errors=True)
    config = {"name": "bench", "output": str(run_dir), "input": [str(input_dir / "bench-*.warc.gz")],
              "ray": {"num_cpus": workers, "task_memory_mb": 1024},
              "extract": {"extractor": extractor}, "langid": {"languages": ["pt", "en", "es", "de"]},
              "shard": {"num_shards": 4}}
    path = run_dir.with_suffix(".yaml")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    seconds, peaks, _ = timed([sys.executable, "-m", "pipelines.cli", "run", "--config", str(path), "--no-progress"])
    stages = {}
    for stage in STAGES:
        path = run_dir / registry.get(stage).output / "_summary.json"
        if not path.is_file():  # a stage `run` includes only on request (decontaminate, tokenize)
            continue
        summary = json.loads(path.read_text())
        # A fused chain's wall time is shared by its stages: each stage's own cost is its task seconds.
        stages[stage] = {"name": stage, "seconds": summary.get("wall_seconds"),
                         "task_seconds": summary.get("task_seconds"),
                         "docs_in": summary.get("docs_in"), "bytes_in": summary.get("bytes_in")}
    return {"seconds": seconds, "memory": peaks, "stages": stages}


def datatrove(input_dir: Path, workers: int, work: Path) -> dict:
    seconds, peaks, out = timed([sys.executable, str(REPO / "bench" / "datatrove_pipeline.py"), str(input_dir),
                                 str(work), "--tasks", str(workers)])
    line = next(ln for ln in reversed(out.splitlines()) if ln.startswith("{"))
    return {"seconds": seconds, "memory": peaks, **json.loads(line)}


def stage_core_seconds(stage: dict, workers: int) -> float:
    """A stage's cost in core-seconds: per-shard stages sum their tasks' seconds (exact, and the only
    per-stage figure when stages run fused); dedup and shard coordinate phases from the driver, so
    their wall seconds times the workers (an upper bound) stand in."""
    if stage.get("name") in PER_SHARD_STAGES and stage.get("task_seconds") is not None:
        return float(stage["task_seconds"])
    return float(stage.get("seconds") or 0.0) * workers


def extraction_reference(path: Path) -> dict:
    """Each extraction library alone on one input file's HTML pages, in this process, one core.

    Pages are read and decoded first and extracted with the options our extract stage uses, so the
    figure is the library's own speed on this input: the ceiling for any pipeline's docs/s per core.
    """
    from pipelines.config import ExtractConfig
    from pipelines.extract import make_extractor
    from pipelines.warc import SkippedRecord, decode_html, html_decision, iter_responses

    limits = ExtractConfig()
    pages = [decode_html(r.payload, r.charset)[0]
             for r in iter_responses(str(path), limits.max_record_bytes, limits.max_decompressed_bytes)
             if not isinstance(r, SkippedRecord) and r.status and 200 <= r.status < 300 and r.payload and html_decision(r.content_type, r.payload) is None]
    out = {"file": path.name, "html_pages": len(pages), "extractors": {}}
    for name in ("trafilatura", "resiliparse", "fast"):
        extract = make_extractor(ExtractConfig(extractor=name))
        started = time.perf_counter()
        for html in pages:
            extract(html)
        seconds = time.perf_counter() - started
        out["extractors"][name] = {"seconds": round(seconds, 2), "pages_per_s": round(len(pages) / seconds, 1)}
    return out


def reference_runs(path: Path, rounds: int = 2) -> dict:
    """The libraries alone in one process, then in two processes at once on the same file.

    The second run is the machine's own scaling ceiling: two plain processes with no framework at all
    (2 x one process's time / two processes' mean time). On a VM whose cores slow each other down,
    no pipeline's 1 -> 2 worker scaling can beat it.
    """
    cmd = [sys.executable, str(Path(__file__).resolve()), "--library-alone", str(path)]
    # one BLAS thread per process, as Ray sets OMP_NUM_THREADS for a task of one CPU
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")

    def start() -> subprocess.Popen:
        return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, env=env)

    def result(proc: subprocess.Popen) -> dict:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed")
        return json.loads(out.decode().strip().splitlines()[-1])

    alones, pairs = [], []
    for _ in range(rounds):  # interleaved, medians: the machine's noise is of the size of the effect
        alones.append(result(start()))
        pairs.append([result(p) for p in [start(), start()]])
    out = {"file": alones[0]["file"], "html_pages": alones[0]["html_pages"], "rounds": rounds,
           "extractors": {}, "machine_scaling_ceiling": {}}
    for name in alones[0]["extractors"]:
        one = statistics.median(a["extractors"][name]["seconds"] for a in alones)
        both = statistics.median(r["extractors"][name]["seconds"] for pair in pairs for r in pair)
        out["extractors"][name] = {"seconds": round(one, 2), "pages_per_s": round(out["html_pages"] / one, 1),
                                   "seconds_two_at_once": round(both, 2)}
        out["machine_scaling_ceiling"][name] = round(2 * one / both, 2)
    return out


STARTUP_RECORDS = 30


def startup_input(input_dir: Path) -> Path:
    """A copy of the input's first STARTUP_RECORDS records: a run on it costs the fixed start-up only."""
    from warcio.archiveiterator import ArchiveIterator
    from warcio.warcwriter import WARCWriter

    folder = WORK / "input-startup"
    folder.mkdir(parents=True, exist_ok=True)
    with open(sorted(input_dir.glob("bench-*.warc.gz"))[0], "rb") as src, \
            open(folder / "bench-0000.warc.gz", "wb") as dst:
        writer = WARCWriter(dst, gzip=True)
        for i, record in enumerate(ArchiveIterator(src)):
            if i >= STARTUP_RECORDS:
                break
            writer.write_record(record)
    return folder


def startup_seconds(input_dir: Path, extractors: list[str], rounds: int) -> dict:
    """Seconds of a whole ``cptcorpus run`` on STARTUP_RECORDS records, per extractor (median of rounds):
    the interpreter, Ray's start and stop, worker imports and model loads, each stage's set-up. It is
    the same whatever the input's size, so a run over a crawl segment of hours pays it once."""
    folder = startup_input(input_dir)
    return {x: round(statistics.median(ours(folder, 1, x, WORK / f"startup-{x[0]}")["seconds"]
                                       for _ in range(rounds)), 2) for x in extractors}


def median_of(runs: list[dict], key: str = "seconds") -> float:
    return statistics.median(r[key] for r in runs)


def summarise(results: dict, meta: dict) -> dict:
    html, mb = meta["html_records"], meta["bytes"] / 1e6
    rows = {}
    for name, runs in results.items():
        secs = median_of(runs)
        workers = int(name.rsplit("-", 1)[1].removesuffix("w"))
        rows[name] = {"workers": workers, "median_seconds": secs, "runs": [round(r["seconds"], 2) for r in runs],
                      "docs_per_s": round(html / secs, 1), "mb_per_s": round(mb / secs, 2),
                      "docs_per_s_per_core": round(html / secs / workers, 1),
                      "cpu_seconds": round(statistics.median(r["memory"].get("cpu_seconds", 0) for r in runs), 1),
                      "peak_worker_mb": max(r["memory"]["max_worker_mb"] or r["memory"]["max_process_mb"] for r in runs),
                      "peak_process_mb": max(r["memory"]["max_process_mb"] for r in runs)}
        if "stages" in runs[0]:
            rows[name]["stages"] = {}
            for st in (s for s in STAGES if s in runs[0]["stages"]):  # the stages this run ran
                core_s = statistics.median(stage_core_seconds(r["stages"][st], workers) for r in runs)
                docs = runs[0]["stages"][st]["docs_in"] or 0
                rows[name]["stages"][st] = {"core_seconds": round(core_s, 3), "docs_in": docs,
                                            "docs_per_core_s": round(docs / max(core_s, 1e-9), 1)}
        if "phase_seconds" in runs[0]:
            rows[name]["phases"] = {p: round(statistics.median(r["phase_seconds"][p] for r in runs), 2)
                                    for p in runs[0]["phase_seconds"]}
    for r in rows.values():
        r["docs_per_cpu_s"] = round(html / r["cpu_seconds"], 1) if r["cpu_seconds"] else None
    derived = {}
    for w in (1, 2):
        a, b = rows.get(f"ours-trafilatura-{w}w"), rows.get(f"datatrove-{w}w")
        # ratios from the unrounded medians: every row divides the same documents
        if a and b:
            derived[f"ratio_ours_over_datatrove_{w}w"] = round(b["median_seconds"] / a["median_seconds"], 2)
            if a["cpu_seconds"] and b["cpu_seconds"]:
                derived[f"ratio_ours_over_datatrove_per_cpu_second_{w}w"] = round(
                    b["cpu_seconds"] / a["cpu_seconds"], 2)
    for kind in ("ours-trafilatura", "ours-resiliparse", "datatrove"):
        one, two = rows.get(f"{kind}-1w"), rows.get(f"{kind}-2w")
        if one and two:
            derived[f"scaling_1_to_2_{kind}"] = round(one["median_seconds"] / two["median_seconds"], 2)
    t1 = rows.get("ours-trafilatura-1w")
    if t1:
        st = t1["stages"]
        others = sum(v["core_seconds"] for k, v in st.items() if k != "extract")
        derived["non_extract_over_extract_trafilatura_1w"] = round(others / max(st["extract"]["core_seconds"], 1e-9), 3)
    for w in (1, 2):
        fast, traf = rows.get(f"ours-fast-{w}w"), rows.get(f"ours-trafilatura-{w}w")
        if fast and traf:  # the distilled extractor end to end against trafilatura favor_precision
            derived[f"fast_over_trafilatura_{w}w"] = round(traf["median_seconds"] / fast["median_seconds"], 2)
    startup = meta.get("startup_seconds") or {}
    fast, traf = rows.get("ours-fast-1w"), rows.get("ours-trafilatura-1w")
    if fast and traf and "fast" in startup and "trafilatura" in startup:
        derived["fast_over_trafilatura_1w_after_startup"] = round(
            (traf["median_seconds"] - startup["trafilatura"]) / (fast["median_seconds"] - startup["fast"]), 2)
    funnel = {}  # what each extractor hands the filters, and what the filters keep of it
    for name, row in rows.items():
        st = row.get("stages", {})
        if name.endswith("-1w") and name.startswith("ours-") and "filter" in st and "classify" in st:
            funnel[name.removeprefix("ours-").removesuffix("-1w")] = {
                "extracted": st["langid"]["docs_in"], "into_filters": st["filter"]["docs_in"],
                "kept_by_filters": st["classify"]["docs_in"],
                "filter_keep_share": round(st["classify"]["docs_in"] / max(st["filter"]["docs_in"], 1), 3)}
    if funnel:
        derived["funnel"] = funnel
    return {"rows": rows, "derived": derived}


def input_mode_line(meta: dict) -> str:
    """What the input's pages are: the figures mean different things on distinct and repeated pages."""
    mode = meta.get("mode", "repeated")  # inputs built before modes existed repeated their pages
    if mode == "distinct":
        return "Pages: distinct (every page's text unique, `--input-mode distinct`)."
    return (f"Pages: repeated (each page copied unchanged ~{meta.get('rounds', '?')} times, `--input-mode repeated`: "
            "caches keyed by text hit, so this flatters filter and dedup).")


def markdown(summary: dict, meta: dict, env: dict, reference: dict | None = None) -> str:
    rows, d = summary["rows"], summary["derived"]
    out = [f"Input: {meta['html_records']} HTML responses ({meta['records']} response records, "
           f"{meta['bytes'] / 1e6:.1f} MB of WARC in {meta['files']} files). {input_mode_line(meta)} "
           f"Machine: {env['cpus']} cores, "
           f"{env['python']}. Medians of {env['repeats']} runs of ours, {env['datatrove_repeats']} of datatrove "
           f"(the rows list each run's seconds); docs/s = HTML responses / wall seconds; CPU s = user + system "
           f"seconds of every process of the run (workers, daemons, driver, datatrove's sandboxes).", "",
           "| run | workers | median s (runs) | docs/s | MB/s | docs/s per core | CPU s | docs per CPU s | "
           "peak worker RSS MB (datatrove: largest process) |",
           "|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        runs = ", ".join(str(x) for x in r["runs"])
        out.append(f"| {name} | {r['workers']} | {round(r['median_seconds'], 2)} ({runs}) | {r['docs_per_s']} | {r['mb_per_s']} | "
                   f"{r['docs_per_s_per_core']} | {r.get('cpu_seconds') or '-'} | {r.get('docs_per_cpu_s') or '-'} | "
                   f"{r['peak_worker_mb']} |")
    ran = [s for s in STAGES if any(s in r.get("stages", {}) for r in rows.values())]
    out += ["", "Per stage (ours, median core-seconds: the stage's task seconds; dedup and shard: wall x workers; "
            "docs/s = the stage's own input documents per core-second):", "",
            "| run | " + " | ".join(ran) + " |", "|---|" + "---|" * len(ran)]
    for name, r in rows.items():
        if "stages" in r:
            out.append(f"| {name} | " + " | ".join(
                f"{r['stages'][s]['core_seconds']} s ({r['stages'][s]['docs_per_core_s']}/s)" if s in r["stages"]
                else "-" for s in ran) + " |")
    for name, r in rows.items():
        if "phases" in r:
            out.append("")
            out.append(f"datatrove phases ({name}): " + ", ".join(f"{k} {v} s" for k, v in r["phases"].items()))
    if reference:
        out += ["", f"Extraction libraries alone (one process, no pipeline; {reference['html_pages']} HTML pages of "
                f"{reference['file']}, decoded beforehand): " + ", ".join(
                    f"{k} {v['pages_per_s']} pages/s" for k, v in reference["extractors"].items())
                + ". This is the ceiling for any pipeline's docs/s per core on this input. Two such processes at "
                "once on the machine's two cores scale by " + ", ".join(
                    f"{k} {v}x" for k, v in reference.get("machine_scaling_ceiling", {}).items())
                + " (the machine's own 1 -> 2 ceiling, no framework involved)."]
    out += ["", "Derived:", ""] + [f"- `{k}`: {v}" for k, v in d.items()]
    return "\n".join(out)


def write_benchmarks_md(table: str) -> None:
    path = REPO / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{MARK_BEGIN}\n{MARK_END}\n"
    head, rest = text.split(MARK_BEGIN, 1)
    _, tail = rest.split(MARK_END, 1)
    path.write_text(f"{head}{MARK_BEGIN}\n{table}\n{MARK_END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs of ours per row (medians); 1 keeps make bench under 20 min here, use 2-3 for a report")
    parser.add_argument("--datatrove-repeats", type=int, default=1,
                        help="datatrove is 3-6x slower: one run per worker count keeps make bench under 20 min")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--html-records", type=int, default=5000)
    parser.add_argument("--input-mode", choices=("distinct", "repeated"), default="distinct",
                        help="distinct: every page's text unique (targets are judged on it); repeated: pages copied")
    parser.add_argument("--files", type=int, default=8, help="WARC files the input is written to")
    parser.add_argument("--extractors", nargs="+", default=["trafilatura", "resiliparse"],
                        choices=("trafilatura", "resiliparse", "fast"))
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results.json",
                        help="where the results go (a partial run should not overwrite the full one)")
    parser.add_argument("--skip-datatrove", action="store_true")
    parser.add_argument("--no-markdown", action="store_true", help="do not rewrite BENCHMARKS.md")
    parser.add_argument("--from-results", action="store_true", help="re-render bench/results.json, run nothing")
    parser.add_argument("--library-alone", type=Path, help=argparse.SUPPRESS)  # one reference run (subprocess)
    args = parser.parse_args()
    if args.library_alone:
        print(json.dumps(extraction_reference(args.library_alone)))
        return
    if args.from_results:
        saved = json.loads(args.results.read_text())
        summary = summarise(saved["raw"], saved["input"])
        table = markdown(summary, saved["input"], saved["env"], saved.get("reference"))
        args.results.write_text(json.dumps({**saved, **summary}, indent=2))
        print(table)
        if not args.no_markdown:
            write_benchmarks_md(table)
        return
    from bench.make_input import build

    input_dir = WORK / f"input-{args.input_mode}"
    meta = build(input_dir, args.html_records, args.files, args.input_mode)
    started = time.perf_counter()
    print("extraction libraries alone, one process then two ...", file=sys.stderr, flush=True)
    reference = reference_runs(sorted(input_dir.glob("bench-*.warc.gz"))[0], rounds=args.repeats)
    if "fast" in args.extractors:  # the fast extractor's ratio is read with and without the fixed start-up
        print("start-up cost of a run, per extractor ...", file=sys.stderr, flush=True)
        meta = {**meta, "startup_seconds": startup_seconds(input_dir, args.extractors, rounds=2)}
    results: dict[str, list[dict]] = {}
    plan = []
    for w in args.workers:
        plan += [(f"ours-{x}-{w}w", lambda w=w, x=x: ours(input_dir, w, x, WORK / f"ours-{x[0]}{w}"))
                 for x in args.extractors]
        if not args.skip_datatrove:
            plan.append((f"datatrove-{w}w", lambda w=w: datatrove(input_dir, w, WORK / f"datatrove-{w}")))
    for rep in range(args.repeats):
        for name, fn in plan:  # interleaved, so machine noise spreads over all rows alike
            if name.startswith("datatrove") and rep >= args.datatrove_repeats:
                continue
            print(f"[{rep + 1}/{args.repeats}] {name} ...", file=sys.stderr, flush=True)
            results.setdefault(name, []).append(fn())
            print(f"    {results[name][-1]['seconds']:.1f} s", file=sys.stderr, flush=True)
    env = {"cpus": os.cpu_count(), "python": platform.python_version(), "repeats": args.repeats,
           "datatrove_repeats": args.datatrove_repeats,
           "platform": platform.platform(), "command": "python bench/bench.py " + " ".join(sys.argv[1:]),
           "bench_wall_seconds": round(time.perf_counter() - started, 1)}
    summary = summarise(results, meta)
    out = {"input": meta, "env": env, "reference": reference, **summary, "raw": results}
    args.results.write_text(json.dumps(out, indent=2))
    table = markdown(summary, meta, env, reference)
    print(table)
    if not args.no_markdown:
        write_benchmarks_md(table)


if __name__ == "__main__":
    main()
