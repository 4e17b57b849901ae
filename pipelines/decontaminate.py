"""The decontaminate stage: remove (or tag) documents that contain benchmark text.

Why: gains on a benchmark whose questions and answer keys leaked into the training corpus are not
gains. This is datatrove's n-gram decontamination (``NGramsDecontFilter``), made language-aware and
run as a per-shard stage:

* **Normalisation** (``normalize_text``), as datatrove's ``simplify_text`` and a little more: Unicode
  NFKC, lower case, every number to ``0``, punctuation (every Unicode ``P*`` character and our
  ``filters.text_stats.PUNCTUATION``) to spaces, whitespace collapsed, combining marks dropped
  (``não`` matches ``nao``) -- except in unspaced scripts, where a mark is part of the character.
* **Segmentation** with ``filters.text_stats.split_words`` for the text's language: words for spaced
  languages (spaCy's rules, which datatrove uses), characters (grapheme clusters) for zh/ja/th...
  N-grams are ``n`` words, or ``n_chars`` characters in unspaced scripts.
* **Index** (``NgramIndex``): every distinct n-gram of every item, hashed to 64 bits, as two numpy
  arrays sorted by hash (uint64 hash, int32 item): 12 bytes per (n-gram, item). It is built once on the
  driver (``check_inputs``); the runner ``ray.put``s the stage once, so every task maps the same
  arrays from Ray's object store instead of rebuilding them.
* **Matching**: the n-gram hashes of a whole batch are computed with numpy (a token's hash is xxh64 of
  its text, an n-gram's a fixed linear mix of its tokens' hashes) and looked up with ``searchsorted``.
  A document is flagged for an item when it shares at least one of the item's n-grams
  (``min_overlap: 0``, datatrove's rule) or at least that share of them.

``mode: remove`` rejects with ``contaminated:<benchmark>:<item id>`` (the item with the largest share
found); ``mode: tag`` keeps every document and writes a ``contaminated`` list of ``<benchmark>:<id>``.
Counters per benchmark: documents hit, items found (one counter key per item), example n-grams.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import sys
import unicodedata
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import xxhash

from filters.text_stats import PUNCTUATION, is_no_space_lang, normalize_lang, split_words
from pipelines.benchmarks import read_benchmark
from pipelines.config import Config, ConfigError, DecontaminateConfig
from pipelines.stage import DocumentStage

log = logging.getLogger("cptcorpus")

CONTAMINATED = "contaminated"
MIN_SAFE_N = 5  # below this, common phrases of ordinary text match benchmark items
DOCS_HIT, ITEMS_HIT, EXAMPLES = "contaminated_docs", "contaminated_items", "contamination_examples"

# --------------------------------------------------------------------------------------------------
# normalisation and n-gram hashes


class _PunctuationToSpace(dict):
    """``str.translate`` table: punctuation to a space, decided per character on first sight (cached)."""

    def __missing__(self, code: int) -> str | int:
        ch = chr(code)
        value: str | int = " " if ch in PUNCTUATION or unicodedata.category(ch).startswith("P") else code
        self[code] = value
        return value


class _DropMarks(dict):
    """``str.translate`` table: combining marks (category Mn, as datatrove) removed."""

    def __missing__(self, code: int) -> str | int | None:
        value = None if unicodedata.category(chr(code)) == "Mn" else code
        self[code] = value
        return value


_PUNCT_TABLE = _PunctuationToSpace()
_MARKS_TABLE = _DropMarks()
# one or more digits (any script: str patterns match Unicode digits), with an optional decimal part
_NUMBER_PATTERN = re.compile(r"\d+(?:[.,،٫⎖⎗⎘]\d+)?")


def normalize_text(text: str, strip_accents: bool = True, numbers: bool = True) -> str:
    """Text as the index sees it: NFKC, lower case, numbers to 0, no punctuation, single spaces, no marks."""
    text = unicodedata.normalize("NFKC", text).lower()
    if numbers:
        text = _NUMBER_PATTERN.sub("0", text)
    text = text.translate(_PUNCT_TABLE)
    if strip_accents:
        text = unicodedata.normalize("NFC", unicodedata.normalize("NFD", text).translate(_MARKS_TABLE))
    return " ".join(text.split())


def segment(text: str, lang: str, cfg: DecontaminateConfig) -> list[str]:
    """The tokens n-grams are made of: words, or characters for unspaced scripts."""
    no_space = is_no_space_lang(lang)
    return split_words(normalize_text(text, cfg.strip_accents and not no_space, cfg.normalize_numbers), lang)


def ngram_size(lang: str, cfg: DecontaminateConfig) -> int:
    return cfg.n_chars if is_no_space_lang(lang) else cfg.n


_TOKEN_HASHES: dict[str, int] = {}
_TOKEN_CACHE_MAX = 1 << 21


def token_hashes(tokens: list[str]) -> np.ndarray:
    """xxh64 of each token (cached per process: web text repeats its vocabulary)."""
    cache = _TOKEN_HASHES
    if len(cache) > _TOKEN_CACHE_MAX:
        cache.clear()
    for tok in set(tokens).difference(cache):
        cache[tok] = xxhash.xxh64_intdigest(tok.encode("utf-8"))
    return np.fromiter(map(cache.__getitem__, tokens), dtype=np.uint64, count=len(tokens))


@functools.cache
def _mix_coefficients(n: int) -> np.ndarray:
    """Odd 64-bit multipliers, one per n-gram position, fixed for all runs (a seeded generator)."""
    return np.random.default_rng(0xDEC0).integers(0, 2**63, size=n, dtype=np.uint64) * np.uint64(2) + np.uint64(1)


def window_hashes(hashes: np.ndarray, n: int) -> np.ndarray:
    """Hash of every n-token window: sum of token hash x position multiplier, mod 2^64."""
    m = len(hashes) - n + 1
    if m <= 0:
        return np.zeros(0, dtype=np.uint64)
    coef = _mix_coefficients(n)
    out = hashes[:m] * coef[0]
    for j in range(1, n):
        out += hashes[j : j + m] * coef[j]
    return out


def batch_ngrams(token_lists: list[list[str]], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(hash, document, position)`` of every n-gram of several token lists, in one numpy pass."""
    lengths = np.fromiter(map(len, token_lists), dtype=np.int64, count=len(token_lists))
    flat = [tok for toks in token_lists for tok in toks]
    hashes = window_hashes(token_hashes(flat), n)
    doc = np.repeat(np.arange(len(token_lists)), lengths)[: len(hashes)]
    starts = np.cumsum(lengths) - lengths
    pos = np.arange(len(hashes)) - starts[doc]
    valid = pos + n <= lengths[doc]
    return hashes[valid], doc[valid], pos[valid]


# --------------------------------------------------------------------------------------------------
# the index


@dataclass
class NgramIndex:
    """Every (n-gram hash, item) pair of the benchmarks, sorted by hash; item metadata by item number."""

    hashes: np.ndarray  # uint64, sorted
    items: np.ndarray  # int32, item number of each hash
    item_ngrams: np.ndarray  # int32, distinct n-grams per item
    item_bench: np.ndarray  # int16, benchmark number per item
    item_ids: list[str]
    benchmarks: list[str]
    items_without_ngrams: dict[str, int]  # per benchmark: items shorter than n (never found)

    @property
    def nbytes(self) -> int:
        arrays = self.hashes.nbytes + self.items.nbytes + self.item_ngrams.nbytes + self.item_bench.nbytes
        return arrays + sum(sys.getsizeof(i) for i in self.item_ids)

    def report(self) -> dict:
        per_bench = np.bincount(self.item_bench, minlength=len(self.benchmarks))
        return {
            "benchmarks": {b: {"items": int(per_bench[k]), "items_without_ngrams": self.items_without_ngrams[b]}
                           for k, b in enumerate(self.benchmarks)},
            "ngrams": int(len(self.hashes)),
            "bytes": int(self.nbytes),
        }

    def lookup(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(query position, item)`` for every index entry whose hash equals a query hash."""
        if len(self.hashes) == 0 or len(query) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int32)
        lo = np.searchsorted(self.hashes, query, side="left")
        found = np.flatnonzero(self.hashes[np.minimum(lo, len(self.hashes) - 1)] == query)
        lo = lo[found]
        count = np.searchsorted(self.hashes, query[found], side="right") - lo
        which = np.repeat(found, count)
        offset = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
        return which, self.items[np.repeat(lo, count) + offset]


def build_index(cfg: DecontaminateConfig) -> NgramIndex:
    """Read every benchmark and hash its items' n-grams (driver side, before any task starts)."""
    if not cfg.benchmarks:
        raise ConfigError("decontaminate.benchmarks: empty; expected at least one benchmark file to look for")
    hash_parts, item_parts, item_bench, item_ids = [], [], [], []
    without: dict[str, int] = {}
    total = 0
    for b_index, bench in enumerate(cfg.benchmarks):
        ids, texts = read_benchmark(bench)
        lang = normalize_lang(bench.lang)
        hashes, item, _ = batch_ngrams([segment(t, lang, cfg) for t in texts], ngram_size(lang, cfg))
        without[bench.name] = len(ids) - len(np.unique(item))
        total += len(hashes)
        if total > cfg.max_index_ngrams:
            raise ConfigError(f"decontaminate.max_index_ngrams: the benchmarks have more than {cfg.max_index_ngrams} "
                              f"n-grams (at {bench.name}); raise it (12 bytes each) or use fewer benchmarks")
        hash_parts.append(hashes)
        item_parts.append((item + len(item_ids)).astype(np.int32))
        item_bench.extend([b_index] * len(ids))
        item_ids.extend(ids)
    hashes, items = np.concatenate(hash_parts), np.concatenate(item_parts)
    order = np.lexsort((items, hashes))
    hashes, items = hashes[order], items[order]
    distinct = np.ones(len(hashes), dtype=bool)  # an n-gram repeated inside an item counts once
    distinct[1:] = (hashes[1:] != hashes[:-1]) | (items[1:] != items[:-1])
    hashes, items = hashes[distinct], items[distinct]
    item_ngrams = np.bincount(items, minlength=len(item_ids)).astype(np.int32)
    return NgramIndex(hashes, items, item_ngrams, np.array(item_bench, np.int16), item_ids,
                      [b.name for b in cfg.benchmarks], without)


# --------------------------------------------------------------------------------------------------
# matching


@dataclass
class Match:
    """One document flagged for one item: how many of the item's n-grams it holds, and one of them."""

    doc: int
    item: int
    shared: int
    share: float
    example: str


def find_matches(index: NgramIndex, token_lists: list[list[str]], n: int, joiner: str,
                 min_overlap: float) -> list[Match]:
    """Documents (by position in ``token_lists``) that hold enough of an item's n-grams."""
    hashes, doc, pos = batch_ngrams(token_lists, n)
    which, item = index.lookup(hashes)
    if len(which) == 0:
        return []
    # distinct (document, item, n-gram) triples: an n-gram repeated in a document counts once
    triples = np.unique(np.stack([doc[which], item.astype(np.int64), hashes[which].view(np.int64)], axis=1),
                        axis=0)
    pairs, first, shared = np.unique(triples[:, :2], axis=0, return_index=True, return_counts=True)
    need = np.maximum(1, np.ceil(min_overlap * index.item_ngrams[pairs[:, 1]] - 1e-9)).astype(np.int64)
    matches = []
    for (d, it), k, count, needed in zip(pairs.tolist(), first.tolist(), shared.tolist(), need.tolist(),
                                         strict=True):
        if count < needed:
            continue
        at = which[np.flatnonzero((doc[which] == d) & (hashes[which].view(np.int64) == triples[k, 2]))[0]]
        p = int(pos[at])
        matches.append(Match(d, it, count, count / max(1, int(index.item_ngrams[it])),
                             joiner.join(token_lists[d][p : p + n])))
    return matches


class DecontaminateStage(DocumentStage):
    name = "decontaminate"

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.batch_rows = config.decontaminate.batch_rows
        self.index: NgramIndex | None = None
        self._examples_left: Counter = Counter()

    def check_inputs(self, files: list[str]) -> None:
        super().check_inputs(files)
        cfg = self.config.decontaminate
        if cfg.n < MIN_SAFE_N or cfg.n_chars < MIN_SAFE_N:
            log.warning("decontaminate: n=%d, n_chars=%d: n-grams shorter than %d tokens match common phrases "
                        "(false positives); datatrove uses 12, we default to 13", cfg.n, cfg.n_chars, MIN_SAFE_N)
        if self.index is None:
            self.index = build_index(cfg)
            report = self.index.report()
            log.info("decontaminate: index of %d n-grams from %d items, %.1f MiB (shared through Ray's "
                        "object store)", report["ngrams"], len(self.index.item_ids), report["bytes"] / 2**20)
            for name, b in report["benchmarks"].items():
                if b["items_without_ngrams"]:
                    log.warning("decontaminate: %s: %d of %d items are shorter than n and can never be found",
                                name, b["items_without_ngrams"], b["items"])

    def setup(self) -> None:
        if self.index is None:  # used without the runner's driver-side check
            self.index = build_index(self.config.decontaminate)
        self._examples_left = Counter({b: self.config.decontaminate.examples for b in self.index.benchmarks})

    def process_shard(self, input_path: str, output_dir: str, shard: str) -> dict:
        stats = super().process_shard(input_path, output_dir, shard)
        assert self.index is not None
        stats["index"] = self.index.report()
        return stats

    def process_batch(self, table: pa.Table):
        cfg = self.config.decontaminate
        assert self.index is not None
        n_rows = table.num_rows
        texts = table.column("text").to_pylist()
        langs = (table.column("lang").to_pylist() if "lang" in table.column_names else [None] * n_rows)
        langs = [normalize_lang(lang or cfg.lang) for lang in langs]
        by_doc: dict[int, list[Match]] = {}
        for unspaced in (False, True):
            rows = [i for i, lang in enumerate(langs) if is_no_space_lang(lang) == unspaced]
            if not rows:
                continue
            tokens = [segment(texts[i] or "", langs[i], cfg) for i in rows]
            n, joiner = (cfg.n_chars, "") if unspaced else (cfg.n, " ")
            for m in find_matches(self.index, tokens, n, joiner, cfg.min_overlap):
                m.doc = rows[m.doc]
                by_doc.setdefault(m.doc, []).append(m)
        return self._apply(table, by_doc)

    def _apply(self, table: pa.Table, by_doc: dict[int, list[Match]]):
        """Reasons or tags for the flagged documents, and the per-benchmark counters."""
        index, cfg = self.index, self.config.decontaminate
        assert index is not None
        docs_hit: Counter = Counter()
        items_hit: Counter = Counter()
        examples: Counter = Counter()
        labels: list[list[str]] = [[] for _ in range(table.num_rows)]
        for doc, matches in sorted(by_doc.items()):
            matches.sort(key=lambda m: (-m.share, m.item))
            for bench in sorted({index.benchmarks[index.item_bench[m.item]] for m in matches}):
                docs_hit[bench] += 1
            for m in matches:
                bench = index.benchmarks[index.item_bench[m.item]]
                label = f"{bench}:{index.item_ids[m.item]}"
                items_hit[label] += 1
                labels[doc].append(label)
                if self._examples_left[bench] > 0 and f"{bench}: {m.example}" not in examples:
                    self._examples_left[bench] -= 1
                    examples[f"{bench}: {m.example}"] += 1
        counters = {DOCS_HIT: docs_hit, ITEMS_HIT: items_hit, EXAMPLES: examples}
        if cfg.mode == "tag":
            column = pa.array(labels, pa.list_(pa.string()))
            idx = table.schema.get_field_index(CONTAMINATED)
            table = table.set_column(idx, CONTAMINATED, column) if idx >= 0 else table.append_column(CONTAMINATED,
                                                                                                     column)
            return table, None, counters
        reasons = [f"{CONTAMINATED}:{found[0]}" if found else None for found in labels]
        return table, pa.array(reasons, pa.string()), counters


def benchmark_report(counters: dict[str, dict[str, int]]) -> dict[str, dict]:
    """Per benchmark, from a stage summary's counters: documents hit, items found, example n-grams."""
    report: dict[str, dict] = {}
    for bench, docs in counters.get(DOCS_HIT, {}).items():
        report[bench] = {"docs_hit": docs, "items_found": 0, "examples": []}
    for label in counters.get(ITEMS_HIT, {}):
        bench = label.split(":", 1)[0]
        report.setdefault(bench, {"docs_hit": 0, "items_found": 0, "examples": []})["items_found"] += 1
    for label in counters.get(EXAMPLES, {}):
        bench, _, ngram = label.partition(": ")
        report.setdefault(bench, {"docs_hit": 0, "items_found": 0, "examples": []})["examples"].append(ngram)
    return report


def bytes_per_million_ngrams(index: NgramIndex) -> float:
    """Index memory per 1M n-grams (what the bench reports), from the arrays actually held."""
    return index.nbytes / max(1, len(index.hashes)) * 1e6 if len(index.hashes) else math.nan
