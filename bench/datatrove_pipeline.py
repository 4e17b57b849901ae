"""datatrove doing the same work as ``cptcorpus run``, for the benchmark (FineWeb's pipeline shape).

WarcReader -> Trafilatura -> LanguageFilter (the same local lid.176 model) -> Gopher repetition ->
Gopher quality -> C4 -> FineWeb quality -> JsonlWriter, then MinHash signatures -> buckets ->
cluster -> filter -> ParquetWriter. Run as a script; prints a JSON line with per-phase wall times.

    python bench/datatrove_pipeline.py INPUT_DIR WORK_DIR --tasks N
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import datatrove.utils.hashes.xxhash as dt_xxhash
import datatrove.utils.lid as dt_lid
import xxhash

from classifiers.langid import bundled_lid_model

# datatrove's LanguageFilter downloads lid.176.bin; point it at the same model our langid stage uses.
dt_lid.cached_asset_path_or_download = lambda *args, **kwargs: bundled_lid_model()
# datatrove 0.10 hands str to xxhash, which xxhash >= 4 refuses; encode first (its default hash stays).
dt_xxhash.xxhash64 = lambda data: xxhash.xxh64_intdigest(data.encode() if isinstance(data, str) else data)
dt_xxhash.xxhash32 = lambda data: xxhash.xxh32_intdigest(data.encode() if isinstance(data, str) else data)

LANGUAGES = ["pt", "en", "es", "de"]


def main() -> None:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        LanguageFilter,
    )
    from datatrove.pipeline.readers import JsonlReader, WarcReader
    from datatrove.pipeline.writers import JsonlWriter, ParquetWriter
    from datatrove.utils.hashing import HashConfig

    parser = argparse.ArgumentParser()
    parser.add_argument("input_dir")
    parser.add_argument("work_dir")
    parser.add_argument("--tasks", type=int, default=1)
    args = parser.parse_args()
    work = Path(args.work_dir)
    shutil.rmtree(work, ignore_errors=True)
    tasks = args.tasks
    minhash = MinhashConfig(hash_config=HashConfig(precision=64), num_buckets=14, hashes_per_bucket=8, n_grams=5)
    times: dict[str, float] = {}

    def run(name: str, pipeline: list, n_tasks: int) -> None:
        started = time.perf_counter()
        LocalPipelineExecutor(pipeline=pipeline, tasks=n_tasks, workers=min(n_tasks, tasks),
                              logging_dir=str(work / "logs" / name), skip_completed=False).run()
        times[name] = time.perf_counter() - started

    run("main", [
        WarcReader(args.input_dir, glob_pattern="bench-*.warc.gz", default_metadata={"dump": "bench"}),
        Trafilatura(favour_precision=True, timeout=5.0, deduplicate=False),
        LanguageFilter(languages=LANGUAGES, language_threshold=0.65),
        GopherRepetitionFilter(),
        GopherQualityFilter(),
        C4QualityFilter(filter_no_terminal_punct=False),
        FineWebQualityFilter(),
        JsonlWriter(str(work / "filtered")),
    ], tasks)
    run("minhash_signatures", [JsonlReader(str(work / "filtered")),
                               MinhashDedupSignature(output_folder=str(work / "sigs"), config=minhash)], tasks)
    run("minhash_buckets", [MinhashDedupBuckets(input_folder=str(work / "sigs"), output_folder=str(work / "buckets"),
                                                config=minhash)], minhash.num_buckets)
    run("minhash_cluster", [MinhashDedupCluster(input_folder=str(work / "buckets"),
                                                output_folder=str(work / "remove_ids"), config=minhash)], 1)
    run("minhash_filter", [JsonlReader(str(work / "filtered")),
                           MinhashDedupFilter(input_folder=str(work / "remove_ids")),
                           ParquetWriter(str(work / "output"))], tasks)
    kept = sum(1 for _ in (work / "output").rglob("*.parquet"))
    print(json.dumps({"phase_seconds": times, "output_files": kept}))


if __name__ == "__main__":
    main()
