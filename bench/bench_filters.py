"""Filter stage throughput against datatrove's reference filters, on the same documents, in one run.

Documents: the real archives in ../shared/data/warc extracted by our extract stage (or any Parquet
of documents given with --input). Both sides apply FineWeb's English chain (Gopher repetition, Gopher
quality, C4, FineWeb quality) with the same thresholds to every document, so the work is the same;
the script also reports how many keep/reject decisions agree.

    python bench/bench_filters.py [--input docs.parquet ...] [--repeats 3]

Writes bench/filters_results.json (``--output``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "warc"
RESULTS = REPO / "bench" / "filters_results.json"
sys.path.insert(0, str(REPO))


def extracted_shared_docs(tmp: Path) -> pa.Table:
    from pipelines.config import parse_config
    from pipelines.extract import ExtractStage

    stage = ExtractStage(parse_config({}))
    tables = []
    for i, path in enumerate(sorted(SHARED.glob("*.warc.gz"))):
        stage.process_shard(str(path), str(tmp), f"s{i}")
        tables.append(pq.read_table(tmp / f"s{i}.parquet"))
    return pa.concat_tables(tables)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", nargs="+")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    from datatrove.data import Document
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    from pipelines.config import parse_config
    from pipelines.filter import FilterStage

    with tempfile.TemporaryDirectory() as tmp:
        table = (pa.concat_tables(pq.read_table(p) for p in args.input) if args.input
                 else extracted_shared_docs(Path(tmp)))
    table = table.select(["id", "text"]).append_column("lang", pa.array(["en"] * table.num_rows))
    texts = table.column("text").to_pylist()
    mb = sum(len(t.encode()) for t in texts) / 1e6
    ours = FilterStage(parse_config({"filter": {"preset": "en", "url_filter": False, "normalize_pii": False}}))
    theirs = [GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(filter_no_terminal_punct=False),
              FineWebQualityFilter()]

    def run_theirs() -> list[bool]:
        keep = []
        for i, text in enumerate(texts):
            doc = Document(text=text, id=str(i))
            ok = True
            for f in theirs:
                res = f.filter(doc)
                if not (res[0] if isinstance(res, tuple) else res):
                    ok = False
                    break
            keep.append(ok)
        return keep

    def run_ours() -> list[bool]:
        _, reasons, _ = ours.process_batch(table)
        return [r is None for r in reasons.to_pylist()]

    timings: dict[str, list[float]] = {"ours": [], "datatrove": []}
    decisions = {}
    for _ in range(args.repeats):
        for name, fn in (("ours", run_ours), ("datatrove", run_theirs)):
            started = time.perf_counter()
            decisions[name] = fn()
            timings[name].append(time.perf_counter() - started)
    n = len(texts)
    agree = sum(a == b for a, b in zip(decisions["ours"], decisions["datatrove"], strict=True))
    print(f"{n} documents ({mb:.1f} MB), medians of {args.repeats} runs, one core:")
    for name, secs in timings.items():
        med = statistics.median(secs)
        print(f"  {name:10s} {n / med:8.1f} docs/s  {mb / med:6.2f} MB/s  (kept {sum(decisions[name])})")
    ratio = statistics.median(timings["datatrove"]) / statistics.median(timings["ours"])
    print(f"  ours/datatrove speed: {ratio:.1f}x; same decision on {agree}/{n} documents")
    result = {"command": "python bench/bench_filters.py " + " ".join(sys.argv[1:]),
              "input": args.input or f"{SHARED} extracted by our extract stage", "documents": n,
              "mb": round(mb, 2), "repeats": args.repeats,
              "seconds": {k: [round(x, 3) for x in v] for k, v in timings.items()},
              "docs_per_s": {k: round(n / statistics.median(v), 1) for k, v in timings.items()},
              "kept": {k: sum(v) for k, v in decisions.items()},
              "ours_over_datatrove_speed": round(ratio, 2), "same_decision": agree}
    args.output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
