"""Shared fixtures of the tokenizer tests: a small corpus with a manifest, and an English base BPE.

The corpus is the bundled sample's article pages (pt, en, es, de, fr, it; see bench.bench_extend_vocab) plus
Thai documents recombined from the Thai text the filter tests ship, for a language written without spaces.
Nothing is downloaded: the tokenizers are trained here, in well under a second.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.bench_extend_vocab import BASE_VOCAB, english_text, sample_rows, train_bpe, write_corpus

THAI_DOCS = 40
_GOOD_DOCS = Path(__file__).parent / "filters" / "data" / "good_docs.yaml"


def thai_rows(n: int = THAI_DOCS, seed: int = 0) -> list[dict]:
    """Thai documents of 6-10 phrases each, drawn (seeded) from the shipped Thai text's phrases."""
    phrases = yaml.safe_load(_GOOD_DOCS.read_text(encoding="utf-8"))["th"].split()
    rng = random.Random(seed)
    return [{"id": f"th-{i:03d}", "text": " ".join(rng.sample(phrases, rng.randint(6, 10))), "lang": "th",
             "quality_bucket": "high"} for i in range(n)]


@dataclass
class TokenizerCorpus:
    run_dir: str
    manifest: str
    base: str
    rows: list[dict]

    def texts(self, lang: str | None = None) -> list[str]:
        return [r["text"] for r in self.rows if lang is None or r["lang"] == lang]


def build(root: str, with_bucket: bool = True) -> TokenizerCorpus:
    """A run directory with corpus/manifest.json, and base/tokenizer.json (English ByteLevel BPE)."""
    rows = sample_rows() + thai_rows()
    if not with_bucket:
        rows = [{k: v for k, v in r.items() if k != "quality_bucket"} for r in rows]
    run_dir = os.path.join(root, "run")
    manifest = write_corpus(run_dir, rows)
    base = train_bpe(english_text(), BASE_VOCAB, os.path.join(root, "base", "tokenizer.json"))
    return TokenizerCorpus(run_dir, manifest, base, rows)
