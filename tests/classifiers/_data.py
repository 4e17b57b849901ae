"""Synthetic labelled data for the classifier tests: separable by vocabulary, deterministic."""

from __future__ import annotations

import json
import random
from pathlib import Path

COMMON = [
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "is",
    "it",
    "that",
    "for",
    "on",
    "with",
    "as",
    "was",
    "at",
    "by",
    "this",
    "be",
]


def _vocab(prefix: str, n: int = 40) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def make_binary_docs(n: int = 300, seed: int = 0) -> list[dict]:
    """Positive docs draw topic words from one vocabulary, negatives from another, plus noise."""
    rng = random.Random(seed)
    pos, neg = _vocab("alpha"), _vocab("omega")
    docs = []
    for i in range(n):
        label = i % 2
        topic = pos if label else neg
        words = [rng.choice(topic) for _ in range(6)] + [rng.choice(COMMON) for _ in range(10)]
        rng.shuffle(words)
        # line breaks inside documents must be handled by normalisation
        text = " ".join(words[:8]) + "\n" + " ".join(words[8:])
        docs.append({"id": f"d{i}", "text": text, "label": label})
    return docs


def make_scored_docs(n: int = 600, seed: int = 0) -> list[dict]:
    """Docs with a 0-5 ``score``; each score has its own vocabulary (learnable buckets)."""
    rng = random.Random(seed)
    vocabs = {s: _vocab(f"s{s}w", 25) for s in range(6)}
    docs = []
    for i in range(n):
        score = i % 6
        words = [rng.choice(vocabs[score]) for _ in range(6)] + [rng.choice(COMMON) for _ in range(8)]
        rng.shuffle(words)
        docs.append({"id": f"s{i}", "text": " ".join(words), "score": score})
    return docs


def write_jsonl(path: Path, rows: list[dict], extra_lines: list[str] = ()) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
        for line in extra_lines:
            fh.write(line + "\n")
    return path


# Small fastText settings: a model trains in well under a second.
FAST = {"dim": 16, "bucket": 20_000, "epoch": 15, "lr": 0.5, "wordNgrams": 1, "thread": 1}
