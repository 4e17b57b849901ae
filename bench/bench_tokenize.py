"""Tokenize stage throughput against datatrove's ``MegatronDocumentTokenizer``, same documents, one run.

    .venv/bin/python bench/bench_tokenize.py [--docs 20000] [--scale 4] [--vocab 16000]

What it does:

1. generates ``--docs`` distinct documents (Zipf words from a syllable vocabulary, Portuguese-like
   sentences with some Japanese and Thai, ~2 KB each) as one Parquet shard, and ``--scale`` times as
   many as a second shard (to show that memory per task does not grow with the shard);
2. trains a byte-level BPE tokenizer (``--vocab`` ids) on a sample of them (no download);
3. tokenizes the shard with our stage (``TokenizeStage.process_shard``) and with datatrove's
   ``ParquetReader -> MegatronDocumentTokenizer`` (``LocalPipelineExecutor``, 1 task), each in its own
   subprocess on one core (``RAYON_NUM_THREADS=1``, ``TOKENIZERS_PARALLELISM=false``), alternating
   ``--repeats`` times, and keeps each side's best time; peak RSS from ``wait4``;
4. checks that both wrote the same bytes, and writes ``bench/tokenize_results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.bench_extend_vocab import train_bpe  # noqa: E402

RESULTS = ROOT / "bench" / "tokenize_results.json"
SINGLE_CORE = {"RAYON_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


def generate(path: Path, n_docs: int, seed: int) -> int:
    """Distinct documents: Zipf-distributed syllable words, with Japanese and Thai sentences mixed in."""
    rng = np.random.default_rng(seed)
    syllables = ["ca", "de", "ção", "ma", "pro", "re", "so", "ta", "ões", "men", "ni", "qu", "lh", "ar", "es"]
    vocab = ["".join(rng.choice(syllables, rng.integers(1, 5))) for _ in range(20_000)]
    weights = 1 / np.arange(1, len(vocab) + 1)
    weights /= weights.sum()
    other = ["日本語のテキストです。", "東京の学校で勉強します。", "ภาษาไทยง่ายนิดเดียว", "สวัสดีครับ ขอบคุณ"]
    texts = []
    for i in range(n_docs):
        words = rng.choice(vocab, rng.integers(150, 450), p=weights)
        body = " ".join(words)
        texts.append(f"{i} {body}. {other[i % 4] if i % 3 == 0 else ''}")
    table = pa.table({"id": [f"doc-{seed}-{i}" for i in range(n_docs)], "text": texts})
    pq.write_table(table, path, row_group_size=2000)
    return int(sum(len(t.encode()) for t in texts))


OURS = """
import sys, time, json
from pipelines.config import parse_config
from pipelines.tokens import TokenizeStage
shard, out, tok = sys.argv[1:4]
stage = TokenizeStage(parse_config({"name": "b", "tokenize": {"tokenizer": tok}}))
t = time.perf_counter()
stats = stage.process_shard(shard, out, "shard")
print(json.dumps({"seconds": time.perf_counter() - t, "tokens": stats["tokenized"]["tokens"]
                  + stats["tokenized"]["special_tokens"], "docs": stats["docs_out"]}))
"""

DATATROVE = """
import sys, time, json, logging
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import ParquetReader
from datatrove.pipeline.tokens import MegatronDocumentTokenizer
from datatrove.utils.logging import logger
logger.remove()
shard, out, tok = sys.argv[1:4]
import os
t = time.perf_counter()
LocalPipelineExecutor([ParquetReader(os.path.dirname(shard), glob_pattern=os.path.basename(shard)),
                       MegatronDocumentTokenizer(output_folder=out, tokenizer_name_or_path=tok,
                                                 eos_token="<|endoftext|>")],
                      tasks=1, workers=1, logging_dir=out + "/logs", skip_completed=False).run()
print(json.dumps({"seconds": time.perf_counter() - t}))
"""


def run(code: str, *args: str) -> dict:
    """``code`` in a fresh single-core interpreter; its JSON line plus its peak RSS (MiB, from wait4)."""
    env = {**os.environ, **SINGLE_CORE, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE, cwd=ROOT)
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"benchmark subprocess failed ({proc.returncode})")
    return {**json.loads(out.decode().strip().splitlines()[-1]), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--scale", type=int, default=4, help="the second, larger shard is this many times bigger")
    parser.add_argument("--vocab", type=int, default=16_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-tokenize-") as tmp_dir:
        tmp = Path(tmp_dir)
        (tmp / "small").mkdir()
        (tmp / "large").mkdir()
        small, large = tmp / "small" / "shard.parquet", tmp / "large" / "shard.parquet"
        text_bytes = generate(small, args.docs, 0)
        large_bytes = generate(large, args.docs * args.scale, 1)
        tok = tmp / "tokenizer.json"
        train_bpe(pq.read_table(small, columns=["text"]).column(0).to_pylist()[:3000], args.vocab, str(tok))
        ours, theirs = [], []
        for r in range(args.repeats):
            ours.append(run(OURS, str(small), str(tmp / f"ours{r}"), str(tok)))
            theirs.append(run(DATATROVE, str(small), str(tmp / f"dt{r}"), str(tok)))
        same = all((tmp / "ours0" / f"shard.{e}").read_bytes() == (tmp / "dt0" / f"00000_tokens.{e}").read_bytes()
                   for e in ("bin", "idx"))
        big = run(OURS, str(large), str(tmp / "ours_large"), str(tok))
    best_ours = min(ours, key=lambda r: r["seconds"])
    best_dt = min(theirs, key=lambda r: r["seconds"])
    tokens = best_ours["tokens"]
    result = {
        "command": "python bench/bench_tokenize.py " + " ".join(sys.argv[1:]),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores_visible": os.cpu_count(),
                    "python": platform.python_version()},
        "corpus": {"documents": args.docs, "text_mb": round(text_bytes / 1e6, 2), "tokens": tokens,
                   "vocab_size": args.vocab},
        "ours": {"seconds": round(best_ours["seconds"], 3),
                 "tokens_per_s_per_core": round(tokens / best_ours["seconds"]),
                 "peak_rss_mib": best_ours["peak_rss_mib"], "runs": ours},
        "datatrove": {"seconds": round(best_dt["seconds"], 3),
                      "tokens_per_s_per_core": round(tokens / best_dt["seconds"]),
                      "peak_rss_mib": best_dt["peak_rss_mib"], "runs": theirs},
        "ratio_ours_over_datatrove": round(best_dt["seconds"] / best_ours["seconds"], 3),
        "byte_identical": same,
        "memory_vs_shard_size": {"small": {"text_mb": round(text_bytes / 1e6, 2), "peak_rss_mib":
                                           best_ours["peak_rss_mib"]},
                                 "large": {"text_mb": round(large_bytes / 1e6, 2), "peak_rss_mib":
                                           big["peak_rss_mib"], "tokens_per_s_per_core":
                                           round(big["tokens"] / big["seconds"])}},
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"| | tokens/s per core | peak RSS MiB |\n|---|---|---|\n"
          f"| ours | {result['ours']['tokens_per_s_per_core']:,} | {result['ours']['peak_rss_mib']} |\n"
          f"| datatrove | {result['datatrove']['tokens_per_s_per_core']:,} | {result['datatrove']['peak_rss_mib']} |")
    print(f"ratio ours/datatrove: {result['ratio_ours_over_datatrove']}x; byte-identical: {same}; "
          f"memory {text_bytes / 1e6:.0f} MB shard: {best_ours['peak_rss_mib']} MiB, "
          f"{large_bytes / 1e6:.0f} MB shard: {big['peak_rss_mib']} MiB")


if __name__ == "__main__":
    main()
