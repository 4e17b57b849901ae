"""Benchmark of the decontaminate stage against datatrove's n-gram decontamination, on one core.

    .venv/bin/python bench/bench_decontaminate.py                  # 10,000 items, 5,000 documents
    .venv/bin/python bench/bench_decontaminate.py --items 10000 --docs 20000 --datatrove-docs 2000

In one run, so both see the same machine load:

1. a synthetic benchmark of ``--items`` items (20-60 Zipf words, English) and ``--docs`` documents
   (200-800 Zipf words, ~3 KB), 2% of them with a 20-word fragment of an item planted inside;
2. builds our index (``pipelines.decontaminate.build_index``): seconds, n-grams, bytes held and the
   allocation peak while building (tracemalloc), both per 1M n-grams;
3. times our ``DecontaminateStage.process_batch`` over the documents (docs/s on this one core);
4. times datatrove's ``NGramsDecontFilter.filter`` (spaCy English tokenizer, as in its pipelines) over
   the first ``--datatrove-docs`` documents, and compares the two systems' decisions on them;
5. writes ``bench/decontaminate_results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: numpy must not spread its work

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_dedup import _vocabulary  # noqa: E402
from bench.datatrove_decont import datatrove_filter, datatrove_flags  # noqa: E402
from pipelines.config import parse_config  # noqa: E402
from pipelines.decontaminate import DecontaminateStage, build_index  # noqa: E402

RESULTS = ROOT / "bench" / "decontaminate_results.json"
N = 13


def corpus(n_items: int, n_docs: int, seed: int = 0) -> tuple[list[str], list[str], list[int]]:
    """(item texts, document texts, indexes of documents with a planted fragment)."""
    rng = np.random.default_rng(seed)
    vocab = np.array(_vocabulary(rng, 30_000).to_pylist())
    zipf = 1.0 / np.arange(1, len(vocab) + 1) ** 1.05
    zipf /= zipf.sum()

    def text(lo: int, hi: int) -> list[str]:
        return list(vocab[rng.choice(len(vocab), size=int(rng.integers(lo, hi)), p=zipf)])

    items = [" ".join(text(20, 61)) for _ in range(n_items)]
    docs, planted = [], []
    for k in range(n_docs):
        words = text(200, 801)
        if rng.random() < 0.02:
            item = items[int(rng.integers(n_items))].split()
            start = int(rng.integers(0, max(1, len(item) - 20)))
            at = int(rng.integers(len(words)))
            words[at:at] = [w.capitalize() + "," for w in item[start : start + 20]]
            planted.append(k)
        docs.append(" ".join(words))
    return items, docs, planted


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--docs", type=int, default=5_000)
    ap.add_argument("--datatrove-docs", type=int, default=1_000, help="documents timed through datatrove")
    args = ap.parse_args(argv)
    items, docs, planted = corpus(args.items, args.docs)
    work = Path(tempfile.mkdtemp(prefix="bench-decont-"))
    bench_file = work / "items.jsonl"
    bench_file.write_text("".join(json.dumps({"text": t}) + "\n" for t in items))
    config = parse_config({"decontaminate": {"enabled": True, "n": N, "benchmarks": [
        {"name": "synthetic", "path": str(bench_file), "fields": ["text"], "lang": "en"}]}})

    tracemalloc.start()
    started = time.perf_counter()
    index = build_index(config.decontaminate)
    build_s = time.perf_counter() - started
    build_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    stage = DecontaminateStage(config)
    stage.index = index
    stage.setup()

    table = pa.table({"id": [f"d{k}" for k in range(len(docs))], "text": docs, "lang": ["en"] * len(docs)})
    started = time.perf_counter()
    flagged: list[bool] = []
    for start in range(0, table.num_rows, stage.batch_rows):
        _, reasons, _ = stage.process_batch(table.slice(start, stage.batch_rows))
        flagged.extend(r is not None for r in reasons.to_pylist())
    ours_s = time.perf_counter() - started

    sub = docs[: args.datatrove_docs]
    dt_filter = datatrove_filter({"synthetic": items}, work / "datatrove-index", N, "en")
    dt_filter.load_index_hashes()  # index loading is not part of the per-document time
    started = time.perf_counter()
    reference = datatrove_flags(dt_filter, sub)
    dt_s = time.perf_counter() - started

    ours_rate, dt_rate = len(docs) / ours_s, len(sub) / dt_s
    agree = sum((r is not None) == f for r, f in zip(reference, flagged, strict=False))
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs visible, one used",
        "n": N,
        "items": args.items,
        "docs": len(docs),
        "docs_bytes": sum(map(len, docs)),
        "planted_docs": len(planted),
        "index": {
            "ngrams": int(len(index.hashes)),
            "bytes": int(index.nbytes),
            "build_seconds": round(build_s, 3),
            "bytes_per_1m_ngrams": round(index.nbytes / len(index.hashes) * 1e6),
            "build_peak_bytes_per_1m_ngrams": round(build_peak / len(index.hashes) * 1e6),
        },
        "cptcorpus": {"docs_per_s_per_core": round(ours_rate, 1), "flagged": int(sum(flagged)),
                      "planted_found": sum(flagged[k] for k in planted)},
        "datatrove": {"docs": len(sub), "docs_per_s_per_core": round(dt_rate, 1),
                      "flagged": sum(r is not None for r in reference), "tokenizer": "spaCy en (datatrove default)"},
        "ratio_docs_per_s": round(ours_rate / dt_rate, 2),
        "decisions_agree_on_datatrove_docs": f"{agree}/{len(sub)}",
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
