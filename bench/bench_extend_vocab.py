"""Benchmark of ``extend-vocab`` on the bundled sample: tokens per word before and after, and the time it takes.

The corpus is the bundled demo sample's article pages (``pipelines.demo.sample.sample_manifest``: the text a
good extractor finds, with its language), written as a small Parquet corpus with a manifest, so the bench needs
neither Ray nor a download. The base is a small ByteLevel BPE trained on the sample's English sentence pools
(English-only, so Portuguese is fragmented as it is by an English model's tokenizer). For each N the bench runs
``extend_vocab`` and records held-out Portuguese tokens per word before and after, the change in English
tokens, and the seconds taken; an N the sample cannot support is recorded with the reason the command gives.

Run: ``.venv/bin/python -m bench.bench_extend_vocab [--out bench/extend_vocab_results.json]``.
The tests reuse ``write_sample_corpus`` and ``train_bpe`` as fixtures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines import io

BASE_VOCAB = 2000
SIZES = (1000, 5000)
TEXT_COLUMNS = ("id", "text", "lang", "quality_bucket")


def write_corpus(out_dir: str, rows: list[dict], n_shards: int = 2, row_group_rows: int = 16) -> str:
    """Write ``rows`` (id, text, lang[, quality_bucket]) as Parquet shards under out_dir/corpus, with the shard
    stage's default ``token_count`` (bytes / 4), plus a minimal manifest.json (the keys the tokenizer commands
    read); returns the manifest's path."""
    from pipelines.config import ShardConfig
    from pipelines.shard import count_tokens, token_counter_info

    corpus = os.path.join(out_dir, "corpus")
    columns = [c for c in TEXT_COLUMNS if c in rows[0]]
    shards = []
    for k in range(n_shards):
        part = rows[k::n_shards]
        table = pa.table({c: pa.array([r[c] for r in part], pa.string()) for c in columns})
        table = table.append_column("token_count", pa.array(count_tokens(table.column("text"), None)))
        path = os.path.join(corpus, f"shard-{k:05d}.parquet")
        with io.atomic_path(path) as tmp:  # text not dictionary-encoded, as the shard stage writes it
            pq.write_table(table, tmp, row_group_size=row_group_rows, use_dictionary=["lang", "quality_bucket"])
        tokens = int(pc.sum(table.column("token_count")).as_py() or 0)
        shards.append({"path": os.path.basename(path), "rows": len(part), "tokens": tokens,
                       "bytes": os.path.getsize(path), "sha256": io.sha256_file(path)})
    totals = {"rows": len(rows), "tokens": sum(s["tokens"] for s in shards),
              "bytes": sum(s["bytes"] for s in shards), "shards": len(shards)}
    manifest = os.path.join(corpus, "manifest.json")
    io.write_json_atomic(manifest, {"name": os.path.basename(out_dir), "datasets": [
        {"name": "corpus", "format": "parquet", "shards": shards, "totals": totals,
         "token_counter": token_counter_info(ShardConfig())}]})
    return manifest


def sample_rows() -> list[dict]:
    """The bundled sample's article pages (pt, en, es, de, fr, it), with a quality bucket from their category."""
    from pipelines.demo.sample import LANG_KINDS, sample_manifest

    return [{"id": f"doc-{i:04d}", "text": r.text, "lang": r.lang,
             "quality_bucket": "high" if r.category in ("education", "stem") else "low"}
            for i, r in enumerate(x for x in sample_manifest() if x.kind in LANG_KINDS and x.text)]


def english_text() -> list[str]:
    """The sample's English sentence pools, the base tokenizer's training text."""
    from pipelines.demo.pools import TOPICS

    return [s for topic in TOPICS["en"].values() for s in [*topic["titles"], *topic["sentences"]]]


def train_bpe(texts: list[str], vocab_size: int, path: str) -> str:
    """Train a ByteLevel BPE (any text round-trips through it) and save it as a tokenizer.json."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>"], show_progress=False)
    tok.train_from_iterator(texts, trainer)
    io.ensure_dir(os.path.dirname(path) or ".")
    tok.save(path)
    return path


def english_change(base_path: str, ext_path: str, texts: list[str]) -> float:
    """Relative change of the English token count from the base to the extended tokenizer."""
    from pipelines.tokenizer_report import count_tokens

    before = int(count_tokens(base_path, texts).sum())
    after = int(count_tokens(ext_path, texts).sum())
    return after / before - 1


def measure(base: str, manifest: str, n: int, out_dir: str, english: list[str]) -> dict:
    """One extend-vocab run: held-out pt tokens per word before/after, English change, seconds."""
    from pipelines.extend_vocab import extend_vocab

    t0 = time.perf_counter()
    rep = extend_vocab(base, manifest, n, out_dir, lang="pt")
    seconds = time.perf_counter() - t0
    held = rep["held_out"]
    return {"new_tokens": rep["new_tokens"], "seconds": round(seconds, 3),
            "train_docs": rep["sample"]["train_docs"], "held_out_docs": rep["sample"]["held_out_docs"],
            "pt_tokens_per_word_before": round(held["before"]["tokens_per_word"], 4),
            "pt_tokens_per_word_after": round(held["after"]["tokens_per_word"], 4),
            "pt_token_reduction": round(held["token_reduction"], 4),
            "en_token_change": round(english_change(base, os.path.join(out_dir, "tokenizer.json"), english), 5)}


def run(work: str) -> dict:
    from pipelines.extend_vocab import TooFewTokens
    from pipelines.tokenizer_report import load_tokenizer

    rows = sample_rows()
    manifest = write_corpus(work, rows)
    base = train_bpe(english_text(), BASE_VOCAB, os.path.join(work, "base", "tokenizer.json"))
    english = [r["text"] for r in rows if r["lang"] == "en"]
    out: dict = {"corpus": {"docs": len(rows), "pt_docs": sum(r["lang"] == "pt" for r in rows),
                            "pt_bytes": sum(len(r["text"].encode()) for r in rows if r["lang"] == "pt")},
                 "base": {"kind": "ByteLevel BPE trained on the sample's English pools",
                          "vocab_size": load_tokenizer(base).get_vocab_size()},
                 "note": "the sample's pages are drawn from small sentence pools, so held-out pages share "
                         "sentences with the training pages: the reduction is an upper bound for real text",
                 "runs": {}}
    for n in SIZES:
        try:
            out["runs"][str(n)] = {"supported": True, **measure(base, manifest, n, os.path.join(work, f"ext-{n}"),
                                                                english)}
        except TooFewTokens as err:
            out["runs"][str(n)] = {"supported": False, "reason": str(err), "largest_supported": err.supported,
                                   **measure(base, manifest, err.supported, os.path.join(work, f"ext-{n}"),
                                             english)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "extend_vocab_results.json"))
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        result = run(work)
    result["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count()}
    result["command"] = "python -m bench.bench_extend_vocab"
    io.write_json_atomic(args.out, result)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
