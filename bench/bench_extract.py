"""The extract stage's speed options on one benchmark WARC file, in this process, one core.

    .venv/bin/python bench/bench_extract.py [--input bench/work/input-distinct/bench-0000.warc.gz] [--repeats 1]

Runs ``ExtractStage.process_shard`` with trafilatura (the default), trafilatura with
``extract.fast: true`` (no readability/jusText fallback comparison) and resiliparse, interleaved,
and writes their seconds and documents kept to bench/extract_results.json. The default input is the
first file of the distinct-pages benchmark input (``python bench/make_input.py bench/work/input-distinct``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines.config import parse_config  # noqa: E402
from pipelines.extract import ExtractStage  # noqa: E402

RESULTS = REPO / "bench" / "extract_results.json"
DEFAULT_INPUT = REPO / "bench" / "work" / "input-distinct" / "bench-0000.warc.gz"
VARIANTS = {"trafilatura": {}, "trafilatura_fast": {"fast": True}, "resiliparse": {"extractor": "resiliparse"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=DEFAULT_INPUT)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not args.input.is_file():
        sys.exit(f"--input: {args.input} does not exist (build it: python bench/make_input.py {args.input.parent})")
    runs: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    for _ in range(args.repeats):
        for name, extract in VARIANTS.items():
            stage = ExtractStage(parse_config({"extract": extract}))
            with tempfile.TemporaryDirectory() as tmp:
                started = time.perf_counter()
                stats = stage.process_shard(str(args.input), tmp, "s")
                seconds = time.perf_counter() - started
            runs[name].append({"seconds": round(seconds, 2), "docs_out": stats["docs_out"],
                               "docs_in": stats["docs_in"]})
    out = {"command": "python bench/bench_extract.py " + " ".join(sys.argv[1:]), "input": str(args.input),
           "runs": runs,
           "median_seconds": {k: round(statistics.median(r["seconds"] for r in v), 2) for k, v in runs.items()},
           "docs_out": {k: v[0]["docs_out"] for k, v in runs.items()}}
    med = out["median_seconds"]
    out["trafilatura_over_fast"] = round(med["trafilatura"] / med["trafilatura_fast"], 2)
    out["trafilatura_over_resiliparse"] = round(med["trafilatura"] / med["resiliparse"], 2)
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
