"""Benchmark of the dedup stage against datatrove's MinHash pipeline on the same documents.

    .venv/bin/python bench/bench_dedup.py --docs 100000            # both systems
    .venv/bin/python bench/bench_dedup.py --docs 1000000 --skip-datatrove

What it does, in one run (so both systems see the same machine load):

1. writes N synthetic documents (Zipf words, 200-800 words, ~3 KB) as Parquet shards, with planted
   near-duplicates (a few words replaced) and exact copies (re-cased, re-punctuated) of earlier docs;
2. times single-core MinHash signature throughput on a sample: ours (`pipelines.minhash`),
   datasketch ``MinHash.bulk`` and rensa (when installed) -- the numbers behind the choice;
3. runs `pipelines.dedup.run_dedup` on a local Ray runtime (``--workers`` CPUs), in a subprocess;
4. runs datatrove's MinhashDedupSignature -> Buckets -> Cluster -> Filter with
   ``LocalPipelineExecutor`` (same n-grams, bands and rows, ``--workers`` processes), in a subprocess;
5. writes ``bench/dedup_results.json`` and prints a markdown table with the ratios.

Memory is sampled every 0.2 s over the subprocess and all its descendants (Ray's raylet and workers,
datatrove's pool), from /proc: the peak of the sum and the peak of the largest single process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BENCH_DIR = ROOT / "bench"
PAGE = os.sysconf("SC_PAGE_SIZE")


# --------------------------------------------------------------------------------------------------
# Synthetic corpus
# --------------------------------------------------------------------------------------------------


def _vocabulary(rng: np.random.Generator, size: int) -> pa.Array:
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
    lengths = rng.integers(2, 11, size=size)
    chars = rng.choice(letters, size=int(lengths.sum()))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pa.StringArray.from_buffers(size, pa.py_buffer(offsets), pa.py_buffer(chars.tobytes()))


def generate(directory: Path, n_docs: int, shards: int, seed: int = 0, near_share: float = 0.08,
             exact_share: float = 0.04) -> dict:
    """Write the corpus; returns the planted pairs (duplicate id -> source id) and sizes.

    Near-duplicates replace 0.5-3% of a source's words (Jaccard of 5-shingles ~0.74-0.97); exact copies
    are the source upper-cased with extra punctuation (identical after normalisation).
    """
    marker = directory / "_corpus.json"
    if marker.is_file():
        meta = json.loads(marker.read_text())
        if meta["docs"] == n_docs and meta["shards"] == shards and meta["seed"] == seed:
            return meta
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    vocab = _vocabulary(rng, 50_000)
    zipf = 1.0 / np.arange(1, len(vocab) + 1) ** 1.05
    zipf /= zipf.sum()
    max_words = 800
    per_shard = -(-n_docs // shards)
    planted: dict[str, str] = {}
    kinds = {"near": 0, "exact": 0}
    total_bytes = 0
    source_pool: list[tuple[int, np.ndarray]] = []  # a few recent docs to copy from (bounded memory)
    for s in range(shards):
        lo, hi = s * per_shard, min(n_docs, (s + 1) * per_shard)
        n = hi - lo
        if n <= 0:
            break
        ids = rng.choice(len(vocab), size=(n, max_words), p=zipf).astype(np.int32)
        lengths = rng.integers(200, max_words + 1, size=n)
        role = rng.random(n)
        upper = np.zeros(n, dtype=bool)
        for i in range(n):
            if source_pool and role[i] < near_share + exact_share:
                src_id, src_words = source_pool[int(rng.integers(len(source_pool)))]
                ids[i] = src_words
                lengths[i] = int((src_words >= 0).sum())
                if role[i] < near_share:
                    k = max(1, int(lengths[i] * rng.uniform(0.005, 0.03)))
                    ids[i, rng.integers(0, lengths[i], size=k)] = rng.integers(0, len(vocab), size=k)
                    kinds["near"] += 1
                else:
                    upper[i] = True
                    kinds["exact"] += 1
                planted[f"d{lo + i:08d}"] = f"d{src_id:08d}"
            elif rng.random() < 0.02:
                words = ids[i].copy()
                words[lengths[i] :] = -1
                if len(source_pool) < 2000:
                    source_pool.append((lo + i, words))
                else:
                    source_pool[int(rng.integers(len(source_pool)))] = (lo + i, words)
        mask = np.arange(max_words)[None, :] < lengths[:, None]
        flat = vocab.take(pa.array(ids[mask]))
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        texts = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), flat), " ")
        if upper.any():
            shouted = pc.binary_join_element_wise(pc.utf8_upper(texts), pa.scalar("!!"), "")
            texts = pc.if_else(pa.array(upper), shouted, texts)
        table = pa.table({
            "id": pa.array([f"d{lo + i:08d}" for i in range(n)]),
            "text": texts,
            "lang": pa.array(["en"] * n),
            "edu_score": pa.array(rng.random(n).astype(np.float32) * 5),
        })
        total_bytes += int(pc.sum(pc.binary_length(texts)).as_py())
        pq.write_table(table, directory / f"shard-{s:04d}.parquet", row_group_size=5000)
    meta = {"docs": n_docs, "shards": shards, "seed": seed, "bytes": total_bytes, "planted": kinds,
            "pairs": planted}
    marker.write_text(json.dumps(meta))
    return meta


# --------------------------------------------------------------------------------------------------
# Memory sampling over a process tree
# --------------------------------------------------------------------------------------------------


class TreeRss:
    """Peak RSS of a process and its descendants, sampled from /proc in a thread."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_total = 0
        self.peak_single = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    stat = fh.read()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(entry))
        todo, total, single = [self.pid], 0, 0
        while todo:
            pid = todo.pop()
            todo.extend(children.get(pid, []))
            try:
                with open(f"/proc/{pid}/statm", "rb") as fh:
                    rss = int(fh.read().split()[1]) * PAGE
            except OSError:
                continue
            total += rss
            single = max(single, rss)
        self.peak_total = max(self.peak_total, total)
        self.peak_single = max(self.peak_single, single)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)


def run_child(args: list[str], timeout: float) -> tuple[dict, float, TreeRss]:
    """Run this script with ``args`` in a subprocess; returns its JSON result, wall time, memory."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=str(ROOT))
    with TreeRss(proc.pid) as mem:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
            raise RuntimeError(f"{args[0]} timed out after {timeout} s: {stderr[-2000:]}") from None
    if proc.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({proc.returncode}): {stderr[-4000:]}")
    return json.loads(stdout.strip().splitlines()[-1]), time.perf_counter() - started, mem


# --------------------------------------------------------------------------------------------------
# Single-core signature throughput
# --------------------------------------------------------------------------------------------------


def signature_microbench(input_dir: Path, n_docs: int, bands: int, rows: int, ngram: int) -> dict:
    """Docs/s of each MinHash implementation on one core, each timed from the raw text of the same
    documents (normalisation and tokenisation included), best of two passes against machine noise."""
    from pipelines import minhash as mh

    texts = pq.read_table(sorted(input_dir.glob("*.parquet"))[0], columns=["text"]).column("text")
    texts = texts.combine_chunks().slice(0, n_docs)
    pylist = texts.to_pylist()
    k = bands * rows
    hasher = mh.MinHasher(k, 1)

    def ours() -> None:
        for start in range(0, len(texts), 1024):
            norm = mh.normalize(texts.slice(start, 1024))
            tokens, offsets = mh.doc_tokens(norm)
            mh.exact_hashes(tokens, offsets)
            shingles, counts = mh.shingle_hashes(mh.string_hashes(tokens), offsets, ngram)
            mh.band_hashes(hasher.signatures(shingles, counts), bands, rows)

    def words() -> list[list[str]]:
        return [t.split() for t in mh.normalize(texts).to_pylist()]

    def shingle_strings(w: list[str]) -> list[str]:
        return [" ".join(w[i : i + ngram]) for i in range(max(1, len(w) - ngram + 1))]

    def datasketch_bulk() -> None:
        from datasketch import MinHash

        MinHash.bulk([[s.encode() for s in shingle_strings(w)] for w in words()], num_perm=k)

    candidates = {"cptcorpus_numpy": ours, "datasketch_bulk": datasketch_bulk}
    try:
        import rensa
    except ImportError:
        rensa = None
    if rensa is not None:
        def rensa_rminhash() -> None:
            for w in words():
                m = rensa.RMinHash(k, 42)
                m.update(shingle_strings(w))
                m.digest()

        candidates["rensa_rminhash"] = rensa_rminhash
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature

    for name, language in (("datatrove_whitespace", WhitespaceTokenizer()), ("datatrove_spacy_en", "en")):
        sig = MinhashDedupSignature(output_folder="/tmp/unused-datatrove-sigs", language=language,
                                    config=MinhashConfig(n_grams=ngram, num_buckets=bands, hashes_per_bucket=rows))
        sig._hash_func = _xxh64_str
        docs = pylist if language != "en" else pylist[:50]  # spaCy: ~15 docs/s

        def run(sig: MinhashDedupSignature = sig, docs: list[str] = docs) -> None:
            for text in docs:
                sig.get_signature(sig.get_shingles(text))

        candidates[name] = (run, len(docs))  # type: ignore[assignment]
    out: dict[str, float | None] = {"rensa_rminhash": None} if rensa is None else {}
    for name, fn in candidates.items():
        fn, count = fn if isinstance(fn, tuple) else (fn, len(texts))
        best = float("inf")
        for _ in range(2 if name != "datatrove_spacy_en" else 1):
            started = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - started)
        out[name] = round(count / best, 1)
    return out


# --------------------------------------------------------------------------------------------------
# The two systems (each in its own subprocess)
# --------------------------------------------------------------------------------------------------


def child_ours(input_dir: str, output_dir: str, workers: int, partitions: int) -> dict:
    import logging

    import ray

    from pipelines.config import parse_config
    from pipelines.dedup import run_dedup

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    shutil.rmtree(output_dir, ignore_errors=True)
    started = time.perf_counter()
    ray.init(num_cpus=workers, include_dashboard=False, logging_level=logging.WARNING)
    ray_start = time.perf_counter() - started
    cfg = parse_config({"name": "bench", "dedup": {"partitions": partitions, "scope": "language"},
                        "ray": {"task_memory_mb": 512}})
    started = time.perf_counter()
    summary = run_dedup(cfg, [input_dir], output_dir, progress=False)
    wall = time.perf_counter() - started
    ray.shutdown()
    rejected = pa.concat_tables(pq.read_table(p, columns=["id"]) for p in sorted(Path(output_dir, "rejected").glob(
        "*.parquet")))
    return {"wall_s": round(wall, 2), "ray_start_s": round(ray_start, 2), "summary": {
        k: summary[k] for k in ("docs_in", "docs_out", "docs_rejected", "reasons", "phases", "lsh")},
        "counters": summary["counters"]["dedup"], "removed_ids": rejected.column("id").to_pylist()}


try:  # datatrove is a dev dependency: without it, run with --skip-datatrove
    from datatrove.utils.word_tokenizers import WordTokenizer
except ImportError:  # pragma: no cover
    WordTokenizer = object  # type: ignore[misc,assignment]


class WhitespaceTokenizer(WordTokenizer):  # type: ignore[misc,valid-type]
    """datatrove word tokenizer that splits on whitespace, as cptcorpus does for space languages.

    datatrove's English default is spaCy's tokenizer (~35 docs/s per core on these 3 KB documents),
    which would make the comparison one of tokenizers rather than of dedup pipelines.
    """

    def __init__(self) -> None:
        self.language = "en"

    def word_tokenize(self, text: str) -> list[str]:
        return text.split()

    def sent_tokenize(self, text: str) -> list[str]:
        return [text]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return [(0, len(text))]


def _xxh64_str(text: str) -> int:
    import xxhash

    return xxhash.xxh64_intdigest(text.encode("utf-8"))


def child_datatrove(input_dir: str, work: str, workers: int, bands: int, rows: int, ngram: int,
                    tokenizer: str) -> dict:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter

    shutil.rmtree(work, ignore_errors=True)
    n_files = len(list(Path(input_dir).glob("*.parquet")))
    cfg = MinhashConfig(n_grams=ngram, num_buckets=bands, hashes_per_bucket=rows, seed=1)
    w = Path(work)

    def reader() -> ParquetReader:
        return ParquetReader(input_dir, glob_pattern="*.parquet", text_key="text", id_key="id")

    language = WhitespaceTokenizer() if tokenizer == "whitespace" else "en"
    signature = MinhashDedupSignature(output_folder=str(w / "sigs"), config=cfg, language=language)
    # datatrove 0.10.1's default xxhash path passes str to xxhash, which xxhash >= 4 rejects
    # ("Strings must be encoded before hashing"): keep its default hash, encode first.
    signature._hash_func = _xxh64_str
    stages = [
        ("signatures", [reader(), signature], n_files),
        ("buckets", [MinhashDedupBuckets(input_folder=str(w / "sigs"), output_folder=str(w / "buckets"),
                                         config=cfg)], bands),
        ("cluster", [MinhashDedupCluster(input_folder=str(w / "buckets"), output_folder=str(w / "remove"),
                                         config=cfg)], 1),
        ("filter", [reader(), MinhashDedupFilter(input_folder=str(w / "remove"),
                                                 exclusion_writer=ParquetWriter(str(w / "removed"))),
                    ParquetWriter(str(w / "kept"))], n_files),
    ]
    timings = {}
    for name, pipeline, tasks in stages:
        started = time.perf_counter()
        LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=min(workers, tasks),
                              logging_dir=str(w / "logs" / name)).run()
        timings[name] = round(time.perf_counter() - started, 2)
    removed = [pq.read_table(p, columns=["id"]) for p in (w / "removed").rglob("*.parquet")]
    removed_ids = pa.concat_tables(removed).column("id").to_pylist() if removed else []
    return {"wall_s": round(sum(timings.values()), 2), "phases": timings, "removed_ids": removed_ids}


# --------------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------------


def _quality(pairs: dict[str, str], removed: set[str]) -> dict:
    """Per planted family (a source and its copies): how many members stay.

    A family fully resolved keeps exactly one member. Near copies below the threshold may
    legitimately stay, so this compares systems run with the same LSH parameters rather than
    grading either; ``removed_outside_planted`` counts removals no planted copy explains.
    """
    families: dict[str, set[str]] = {}
    for dup, src in pairs.items():
        families.setdefault(src, {src}).add(dup)
    kept = [len(members - removed) for members in families.values()]
    planted_ids = set(pairs) | set(pairs.values())
    return {"families": len(families), "families_one_kept": round(sum(k == 1 for k in kept) / max(1, len(kept)), 4),
            "copies_planted": len(pairs), "copies_left": int(sum(max(0, k - 1) for k in kept)),
            "removed": len(removed), "removed_outside_planted": len(removed - planted_ids)}


def _memory(mem: TreeRss) -> dict:
    return {"peak_tree_mb": round(mem.peak_total / 2**20, 1), "peak_process_mb": round(mem.peak_single / 2**20, 1)}


def _table(results: dict) -> str:
    ours, dt = results["cptcorpus"], results.get("datatrove")
    n = results["corpus"]["docs"]

    def ratio(a: float | None, b: float | None) -> str:
        return f"{a / b:.1f}x" if a and b else "-"

    lines = [f"### Dedup benchmark: {n:,} docs, {results['corpus']['bytes'] / 1e6:.0f} MB, "
             f"{results['workers']} CPUs ({results['machine']})", "",
             "| | cptcorpus (Ray) | datatrove (local) | datatrove / cptcorpus |", "|---|---|---|---|"]
    ow, dw = ours["wall_s"], dt["wall_s"] if dt else None
    dw_s = f"{dw:.1f}" if dw is not None else "-"
    lines.append(f"| end-to-end dedup wall (s) | {ow:.1f} | {dw_s} | {ratio(dw, ow)} |")
    sig_ours = ours["summary"]["phases"]["signatures"]["seconds"]
    sig_dt = dt["phases"]["signatures"] if dt else None
    sig_dt_s = f"{sig_dt:.1f}" if sig_dt is not None else "-"
    lines.append(f"| signatures phase wall (s) | {sig_ours:.1f} | {sig_dt_s} | {ratio(sig_dt, sig_ours)} |")
    dps_dt = f"{n / sig_dt:,.0f}" if sig_dt else "-"
    lines.append(f"| signatures docs/s (all CPUs) | {n / sig_ours:,.0f} | {dps_dt} | "
                 f"{ratio(n / sig_ours, n / sig_dt if sig_dt else None)} |")
    rest_ours = ow - sig_ours
    rest_dt = dw - sig_dt if dt else None
    rest_dt_s = f"{rest_dt:.1f}" if rest_dt is not None else "-"
    lines.append(f"| after signatures: pairs..write / buckets+cluster+filter (s) | {rest_ours:.1f} | {rest_dt_s} | "
                 f"{ratio(rest_dt, rest_ours)} |")
    mo, md = ours["memory"], dt["memory"] if dt else None
    tree_dt = f"{md['peak_tree_mb']:,.0f}" if md else "-"
    proc_dt = f"{md['peak_process_mb']:,.0f}" if md else "-"
    lines.append(f"| peak RSS, whole process tree (MB) | {mo['peak_tree_mb']:,.0f} | {tree_dt} | |")
    lines.append(f"| peak RSS, largest process (MB) | {mo['peak_process_mb']:,.0f} | {proc_dt} | |")
    qo, qd = ours["quality"], dt["quality"] if dt else None
    one_dt = f"{qd['families_one_kept']:.3f}" if qd else "-"
    left_dt = f"{qd['copies_left']:,} / {qd['copies_planted']:,}" if qd else "-"
    removed_dt = f"{qd['removed']:,} ({qd['removed_outside_planted']})" if qd else "-"
    lines.append(f"| planted families left with one member | {qo['families_one_kept']:.3f} | {one_dt} | |")
    lines.append(f"| planted copies left / planted | {qo['copies_left']:,} / {qo['copies_planted']:,} | {left_dt} | |")
    lines.append(f"| docs removed (outside planted pairs) | {qo['removed']:,} ({qo['removed_outside_planted']}) | "
                 f"{removed_dt} | |")
    micro = results["signature_microbench_docs_per_s_1core"]
    lines += ["", "Signature throughput, one core, same documents (docs/s): "
              + ", ".join(f"{k} {v:,.0f}" for k, v in micro.items() if v)]
    phases = ours["summary"]["phases"]
    lines += ["", "cptcorpus phases (wall s): " + ", ".join(f"{k} {v['seconds']:.1f}" for k, v in phases.items())
              + f"; CC steps {phases.get('cc', {}).get('steps', 0)}"]
    if dt:
        lines.append("datatrove stages (wall s): " + ", ".join(f"{k} {v:.1f}" for k, v in dt["phases"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--shards", type=int, default=None, help="input shards (default: docs / 12,500)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="CPUs for both systems")
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--work", default=str(BENCH_DIR / "work"))
    parser.add_argument("--out", default=str(BENCH_DIR / "dedup_results.json"))
    parser.add_argument("--skip-datatrove", action="store_true")
    parser.add_argument("--datatrove-tokenizer", choices=["whitespace", "default"], default="whitespace",
                        help="datatrove's word tokenizer: whitespace (as ours) or its English default (spaCy)")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--child", choices=["ours", "datatrove"], help=argparse.SUPPRESS)
    parser.add_argument("--child-args", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kw = json.loads(args.child_args)
        result = child_ours(**kw) if args.child == "ours" else child_datatrove(**kw)
        print(json.dumps(result))
        return 0

    from pipelines import minhash as mh

    bands, rows = mh.lsh_params(0.8, 128)
    ngram = 5
    work = Path(args.work)
    shards = args.shards or max(2, args.docs // 12_500)
    input_dir = work / f"input-{args.docs}"
    started = time.perf_counter()
    meta = generate(input_dir, args.docs, shards)
    print(f"corpus: {args.docs:,} docs, {meta['bytes'] / 1e6:.0f} MB in {shards} shards, planted {meta['planted']} "
          f"({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    results: dict = {"corpus": {k: v for k, v in meta.items() if k != "pairs"}, "workers": args.workers,
                     "machine": f"{platform.machine()}, {os.cpu_count()} CPUs visible",
                     "lsh": {"bands": bands, "rows": rows, "ngram": ngram, "threshold": 0.8}}
    results["signature_microbench_docs_per_s_1core"] = signature_microbench(input_dir, 2000, bands, rows, ngram)
    print(f"signatures, one core: {results['signature_microbench_docs_per_s_1core']}", file=sys.stderr)

    kw = {"input_dir": str(input_dir), "output_dir": str(work / f"ours-{args.docs}"), "workers": args.workers,
          "partitions": args.partitions}
    ours, wall, mem = run_child(["--child", "ours", "--child-args", json.dumps(kw)], args.timeout)
    ours["memory"] = _memory(mem)
    ours["quality"] = _quality(meta["pairs"], set(ours.pop("removed_ids")))
    results["cptcorpus"] = ours
    print(f"cptcorpus: {ours['wall_s']} s, {ours['memory']}", file=sys.stderr)
    if not args.skip_datatrove:
        kw = {"input_dir": str(input_dir), "work": str(work / f"datatrove-{args.docs}"), "workers": args.workers,
              "bands": bands, "rows": rows, "ngram": ngram, "tokenizer": args.datatrove_tokenizer}
        dt, wall, mem = run_child(["--child", "datatrove", "--child-args", json.dumps(kw)], args.timeout)
        dt["memory"] = _memory(mem)
        dt["quality"] = _quality(meta["pairs"], set(dt.pop("removed_ids")))
        dt["tokenizer"] = args.datatrove_tokenizer
        results["datatrove"] = dt
        print(f"datatrove: {dt['wall_s']} s, {dt['memory']}", file=sys.stderr)
    table = _table(results)
    results["table_markdown"] = table
    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.is_file() else {}
    previous = previous if isinstance(previous, dict) and "runs" in previous else {"runs": {}}
    previous["runs"][str(args.docs)] = results
    out.write_text(json.dumps(previous, indent=2) + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
