"""Text normalisation, shingling, MinHash signatures and LSH banding for near-duplicate detection.

Pure functions over Arrow arrays and numpy, no I/O and no Ray: `pipelines.dedup` runs them inside
Ray tasks, and the tests call them directly (parity with datasketch, exact Jaccard ground truth).

Why it is written this way (measured on one core, 3 KB documents, 5-word shingles, 117 hashes):

* **Normalisation** (`normalize`): lower-case, every Unicode punctuation run (``\\pP``) becomes a
  space, whitespace runs collapse. It runs in Arrow's C++ kernels over a whole batch (~7.5k docs/s
  with the split below). No NFKC: Arrow's ``utf8_normalize`` alone costs as much as all the hashing,
  and web duplicates almost never differ only by compatibility forms. Exact-duplicate hashes and
  shingles are both taken on this normalised text, so "exact" means "same words in the same order,
  ignoring case, punctuation and spacing".
* **Segmentation** (`segment`): languages written with spaces are split on whitespace (of the
  normalised text) in Arrow. ``filters.text_stats.split_words`` -- the spaCy-compatible tokenizer the
  quality rules need -- runs ~200 docs/s, 20x slower than the hashing; its extra work (peeling
  punctuation, splitting contractions) is undone by the normalisation anyway. Languages written
  without spaces (zh, ja, th, lo, km, my, bo, per ``text_stats.is_no_space_lang``) do go through
  ``text_stats.split_words``, which cuts them into grapheme clusters (and honours splitters
  registered with ``register_word_splitter``, e.g. jieba). ``filters`` ships in the same package, so
  there is no fallback: shingles cut another way would make signatures incomparable across runs.
* **Hashing**: each distinct token of a batch is hashed once with xxh3 (Zipf: a batch of 1,000
  documents has ~500k tokens but ~30k distinct ones), shingle hashes are a polynomial over the n
  token hashes plus a 64-bit finaliser, vectorised over the batch.
* **Permutations**: ``h_k(x) = ((a_k * x + b_k) mod 2**64) >> 32`` with random odd 64-bit ``a_k``
  (Dietzfelbinger's multiply-add-shift, a universal family). datasketch's ``(a*x + b) mod p`` needs
  128-bit products that numpy does not have (datasketch's own numpy code silently wraps at 2**64),
  and ``%`` on uint64 is slow. The shift commutes with ``min``, so it is applied once per
  signature entry, not per shingle. ~4.5-6.5k docs/s per core versus datasketch ``MinHash.bulk``
  ~0.7k and rensa ~2.5k (rensa needs one Python string per shingle) in the same run; see
  ``bench/bench_dedup.py``. ``tests/test_dedup_minhash.py`` keeps the estimates at parity with
  datasketch's.
* **LSH**: bands x rows come from datasketch's ``_optimal_param`` for the configured threshold
  (weights 0.5/0.5); only bands x rows permutations are computed (e.g. 9 x 13 = 117 of 128 at 0.8).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from filters.text_stats import is_no_space_lang, split_words

__all__ = [
    "MinHasher",
    "doc_tokens",
    "exact_hashes",
    "jaccard",
    "lsh_params",
    "mix64",
    "normalize",
    "segment",
    "shingle_hashes",
    "shingle_set",
    "signature_jaccard",
    "string_hashes",
]

_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
_SHINGLE_MULT = np.uint64(0x9E3779B97F4A7C15)
_BAND_MULT = np.uint64(0xD6E8FEB86659FD93)
_U32_MAX = 0xFFFFFFFF
#: Shingles hashed per block when computing signatures: small enough for the L2 cache.
_BLOCK_SHINGLES = 1 << 15


def mix64(x: np.ndarray | int) -> np.ndarray:
    """splitmix64's finaliser over a uint64 array: a bijection that spreads every input bit."""
    x = np.array(x, dtype=np.uint64, copy=True)
    x ^= x >> np.uint64(30)
    x *= np.uint64(_M1)
    x ^= x >> np.uint64(27)
    x *= np.uint64(_M2)
    x ^= x >> np.uint64(31)
    return x


# --------------------------------------------------------------------------------------------------
# Normalisation and segmentation
# --------------------------------------------------------------------------------------------------


def normalize(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Lower-case, punctuation runs to spaces, outer whitespace trimmed (nulls become empty strings)."""
    texts = pc.fill_null(texts, "")
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if pa.types.is_large_string(texts.type):
        texts = texts.cast(pa.string())
    spaced = pc.replace_substring_regex(pc.utf8_lower(texts), pattern=r"\pP+", replacement=" ")
    return pc.utf8_trim_whitespace(spaced)


def is_no_space(lang: str | None) -> bool:
    """True when ``lang`` is written without spaces between words (segmented into characters)."""
    return is_no_space_lang(lang)


def segment(normalized: str, lang: str | None) -> list[str]:
    """Tokens of one normalised text: whitespace words, or characters for no-space languages.

    This is the adapter to ``filters.text_stats`` (see the module docstring for why space
    languages do not use its full tokenizer).
    """
    if not is_no_space(lang):
        return normalized.split()
    return [t for t in split_words(normalized, lang) if not t.isspace()]


def doc_tokens(normalized: pa.Array, langs: Sequence[str | None] | None = None) -> tuple[pa.Array, np.ndarray]:
    """All tokens of a batch, flat, with per-document offsets (``offsets[i]:offsets[i+1]``).

    The common case (no document in a no-space language) stays in Arrow: no Python per token.
    """
    n_docs = len(normalized)
    no_space = (
        np.zeros(n_docs, dtype=bool)
        if langs is None
        else np.fromiter((is_no_space(lang) for lang in langs), dtype=bool, count=n_docs)
    )
    if no_space.any():
        values = normalized.to_pylist()
        lists = [
            segment(v, langs[i]) if no_space[i] else v.split()  # type: ignore[index]
            for i, v in enumerate(values)
        ]
        arr = pa.array(lists, type=pa.list_(pa.string()))
        return arr.flatten(), arr.offsets.to_numpy().astype(np.int64)
    split = pc.utf8_split_whitespace(normalized)
    flat = split.flatten()
    offsets = split.offsets.to_numpy().astype(np.int64)
    # Inner whitespace runs are one separator and `normalize` trimmed the ends, so the only empty
    # "tokens" are the single [""] Arrow gives for an empty text: drop those documents' tokens.
    empty_docs = pc.equal(pc.binary_length(normalized), 0).to_numpy(zero_copy_only=False)
    if empty_docs.any():
        counts = np.diff(offsets)
        counts[empty_docs] = 0
        keep = np.repeat(~empty_docs, np.diff(offsets))
        flat = flat.filter(pa.array(keep))
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return flat, offsets


def string_hashes(values: pa.Array) -> np.ndarray:
    """xxh3-64 of each string, each distinct value hashed once (dictionary-encoded first)."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.uint64)
    enc = pc.dictionary_encode(values)
    uniques = enc.dictionary.cast(pa.binary()).to_pylist()
    table = np.fromiter((xxhash.xxh3_64_intdigest(u) for u in uniques), dtype=np.uint64, count=len(uniques))
    return table[enc.indices.to_numpy(zero_copy_only=False)]


def exact_hashes(tokens: pa.Array, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(xxh3-64 of each document's tokens joined by one space, True where it has no token)."""
    n_docs = len(offsets) - 1
    lists = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), tokens)
    joined = pc.binary_join(lists, " ").cast(pa.binary()).to_pylist()
    out = np.fromiter((xxhash.xxh3_64_intdigest(j) for j in joined), dtype=np.uint64, count=n_docs)
    return out, np.diff(offsets) == 0


def shingle_hashes(token_hashes: np.ndarray, offsets: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of every n-token window of every document, and how many each document has.

    A document with fewer than ``n`` (but at least one) tokens gets one shingle of all its tokens,
    so short texts can still match their copies; an empty document gets none.
    """
    counts_tok = np.diff(offsets)
    n_tok = len(token_hashes)
    if n_tok >= n:
        g = token_hashes[: n_tok - n + 1].copy()
        for k in range(1, n):
            g *= _SHINGLE_MULT
            g += token_hashes[k : n_tok - n + 1 + k]
    else:
        g = np.zeros(0, dtype=np.uint64)
    counts = np.maximum(counts_tok - n + 1, 0)
    starts = offsets[:-1]
    # windows starting at starts[d] .. starts[d] + counts[d] - 1 stay inside document d
    out_starts = np.concatenate([[0], np.cumsum(counts)[:-1]]) if len(counts) else np.zeros(0, np.int64)
    idx = np.repeat(starts - out_starts, counts) + np.arange(int(counts.sum()), dtype=np.int64)
    hashes = g[idx]
    short = np.flatnonzero((counts_tok > 0) & (counts_tok < n))
    if len(short):  # rare: build their single shingle one by one and splice them in
        extra = np.empty(len(short), dtype=np.uint64)
        for i, d in enumerate(short):
            h = 0
            for t in token_hashes[offsets[d] : offsets[d + 1]].tolist():
                h = (h * int(_SHINGLE_MULT) + t) & 0xFFFFFFFFFFFFFFFF
            extra[i] = h
        counts = counts.copy()
        counts[short] = 1
        insert_at = out_starts[short]
        hashes = np.insert(hashes, insert_at, extra)
    return mix64(hashes), counts


# --------------------------------------------------------------------------------------------------
# MinHash and LSH
# --------------------------------------------------------------------------------------------------


@functools.cache
def lsh_params(threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) minimising the weighted false positive/negative areas (datasketch's routine)."""
    from datasketch.lsh import _optimal_param

    b, r = _optimal_param(threshold, num_perm, fp_weight, fn_weight)
    return int(b), int(r)


class MinHasher:
    """MinHash signatures of ``num_perm`` 32-bit values from 64-bit shingle hashes.

    The permutations are drawn from ``seed``: every worker builds the same ones, so signatures
    computed on different machines are comparable.
    """

    def __init__(self, num_perm: int, seed: int = 1) -> None:
        rng = np.random.default_rng(seed)
        self.num_perm = num_perm
        self.a = rng.integers(0, 2**64, size=num_perm, dtype=np.uint64, endpoint=False) | np.uint64(1)
        self.b = rng.integers(0, 2**64, size=num_perm, dtype=np.uint64, endpoint=False)

    def signatures(self, shingles: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """(documents, num_perm) uint32; a document without shingles gets all 0xFFFFFFFF."""
        n_docs = len(counts)
        out = np.full((n_docs, self.num_perm), _U32_MAX, dtype=np.uint32)
        ends = np.cumsum(counts)
        starts = ends - counts
        docs = np.flatnonzero(counts > 0)
        i = 0
        while i < len(docs):
            # a block of whole documents holding about _BLOCK_SHINGLES shingles (at least one doc)
            first = starts[docs[i]]
            j = int(np.searchsorted(ends[docs], first + _BLOCK_SHINGLES, side="right"))
            j = max(j, i + 1)
            block = docs[i:j]
            x = shingles[first : ends[block[-1]]]
            segs = starts[block] - first
            buf = np.empty_like(x)
            mins = np.empty((self.num_perm, len(block)), dtype=np.uint64)
            for k in range(self.num_perm):
                np.multiply(x, self.a[k], out=buf)
                np.add(buf, self.b[k], out=buf)
                mins[k] = np.minimum.reduceat(buf, segs)
            out[block] = (mins.T >> np.uint64(32)).astype(np.uint32)
            i = j
        return out


def band_hashes(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(documents, bands) uint64: one hash per band of ``rows`` signature values, salted by band."""
    n_docs = signatures.shape[0]
    out = np.empty((n_docs, bands), dtype=np.uint64)
    for j in range(bands):
        h = np.full(n_docs, mix64(j + 1), dtype=np.uint64)
        for c in range(j * rows, (j + 1) * rows):
            h ^= signatures[:, c].astype(np.uint64)
            h *= _BAND_MULT
        out[:, j] = mix64(h)
    return out


SKETCH_COLLISION = 1 / 256  # chance that two different signature values share their low byte


def signature_sketch(signatures: np.ndarray) -> np.ndarray:
    """The low byte of every signature value: (documents, num_perm) uint8, a quarter of the size.

    Two sketches agree wherever the signatures agree, and elsewhere by chance (1/256), so the share
    of agreeing bytes estimates Jaccard as J + (1 - J) / 256: enough to verify a candidate pair.
    """
    return (signatures & np.uint32(0xFF)).astype(np.uint8)


def sketch_agreement_needed(threshold: float) -> float:
    """Share of agreeing sketch bytes that corresponds to Jaccard ``threshold`` (collisions added)."""
    return threshold + (1.0 - threshold) * SKETCH_COLLISION


def signature_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """MinHash estimate of the Jaccard similarity: the share of equal signature entries."""
    return float(np.mean(a == b))


# --------------------------------------------------------------------------------------------------
# Exact ground truth (tests, benchmark)
# --------------------------------------------------------------------------------------------------


def shingle_set(text: str, lang: str | None, n: int) -> set[tuple[str, ...]]:
    """The exact shingle set the signatures approximate (same normalisation and segmentation)."""
    norm = normalize(pa.array([text])).to_pylist()[0]
    words = segment(norm, lang)
    if not words:
        return set()
    if len(words) < n:
        return {tuple(words)}
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: set, b: set) -> float:
    """Exact Jaccard similarity of two sets (1.0 for two empty sets)."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)
