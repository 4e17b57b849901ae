"""Block facts to a feature matrix: one row per block, no language assumed.

Character counts come with the blocks (``chars``, counted by the C walk). ``block_features_reference``
turns them into the matrix in numpy, one pass per page; it is the specification. ``block_features``
fills the same matrix in C (``_walk.c``'s ``features``) where the extension is built: the numpy
version's ~40 array operations on a page's ~200 blocks cost more in per-call overhead than in
arithmetic (``fast_ms_per_page_by_phase_bench_input`` in bench/extractors_results.json: 0.545 ms
a page in numpy, 0.121 in C).
Stop-word ratios use the stop words of the languages the model was trained for (all of
``filters.stopwords`` by default): word-based for languages written with spaces,
character-based (the single-character stop words of zh/ja) for scripts without them. The
extractor runs before language ID, so it cannot pick one language's list per page.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from pipelines.fast_extract import blocks as _blocks
from pipelines.fast_extract.blocks import ANCESTOR_TAGS, CONCEPTS, HOLDER_TAGS, ROW_FIELDS, Blocks
from pipelines.fast_extract.chars import MEASURES

NEIGHBOUR_OFFSETS = (-3, -2, -1, 1, 2, 3)


def stopword_ratio(texts: list[str], words: np.ndarray, stop_words: frozenset[str]) -> np.ndarray:
    """Per block: the share of its words that are stop words (texts are whitespace-normalised, so a
    block's words are its single-space separated tokens; one ``map`` over the page's tokens)."""
    tokens = " ".join(texts).lower().split(" ")
    is_stop = np.fromiter(map(stop_words.__contains__, tokens), bool, len(tokens))
    return np.add.reduceat(is_stop, np.cumsum(words) - words, dtype=np.int64) / words


#: The class/id concept columns (all ancestors, nearest, own, page): the last columns of the matrix.
CLASS_COLUMNS = 4 * len(CONCEPTS)
N_DENSE = 17 + 8 + 2 + 2 * len(NEIGHBOUR_OFFSETS)  # the block's own, its container, the page, its neighbours
#: Which of the 4 x 64 unpacked bits of (ancestors, classes, near, own) are feature columns.
_BIT_COLUMNS = np.concatenate([np.arange(len(ANCESTOR_TAGS))] + [64 * k + np.arange(len(CONCEPTS)) for k in (1, 2, 3)])
_MASK_FIELDS = [ROW_FIELDS.index(f) for f in ("ancestors", "classes", "near_classes", "own_classes")]


N_HOLDER = len(HOLDER_TAGS) + 1  # the holder tags and "other"
N_FEATURES = N_DENSE + N_HOLDER + len(_BIT_COLUMNS) + len(CONCEPTS)


@lru_cache(maxsize=8)
def _stop_table(stop_words: frozenset[str]):
    """The C lookup table of ``stop_words``, built once per set (a model has one)."""
    return _blocks._walk.stop_table(stop_words)


def block_features(blocks: Blocks, stop_words: frozenset[str]) -> np.ndarray:
    """The feature matrix of one page's blocks (float32, ``n_blocks x N_FEATURES``): filled by the C
    extension where it is built, else by ``block_features_reference``; the two agree bit for bit
    (tests/test_fast_extract.py)."""
    if _blocks._walk is None:
        return block_features_reference(blocks, stop_words)
    x = np.empty((len(blocks.texts), N_FEATURES), np.float32)
    _blocks._walk.features(blocks.texts, blocks.rows, blocks.page_classes, _stop_table(stop_words), x,
                           (N_DENSE, N_HOLDER, len(ANCESTOR_TAGS), len(CONCEPTS)))
    return x


def block_features_reference(blocks: Blocks, stop_words: frozenset[str]) -> np.ndarray:
    """The feature matrix in numpy: the specification of the C ``features`` (same columns, same values)."""
    n = len(blocks.texts)
    m = blocks.rows[:, len(ROW_FIELDS) - len(MEASURES):].astype(np.float64)  # chars.MEASURES
    x = np.zeros((n, N_FEATURES), np.float32)
    if not n:
        return x
    chars = np.maximum(m[:, 0], 1.0)
    words = np.maximum(m[:, 1], 1.0)
    total = chars.sum()
    log_chars = np.log1p(m[:, 0])
    link = blocks.column("link_chars") / chars
    _, first, counts = np.unique(np.fromiter(map(hash, blocks.texts), np.int64, n), return_inverse=True,
                                 return_counts=True)
    x[:, 0] = log_chars
    x[:, 1] = np.log1p(m[:, 1])
    x[:, 2] = link
    x[:, 3:6] = m[:, 2:5] / chars[:, None]  # digits, punctuation, uppercase
    x[:, 6] = m[:, 5] / words  # separators per word
    x[:, 7] = m[:, 6] / chars  # no-space script
    x[:, 8] = stopword_ratio(blocks.texts, m[:, 1].astype(np.int64), stop_words)
    x[:, 9] = m[:, 7] / chars  # stop characters
    x[:, 10] = np.log1p(m[:, 8])  # sentence ends
    x[:, 11] = m[:, 9]  # ends with terminal punctuation
    x[:, 12] = np.minimum(blocks.column("depth"), 64) / 64
    x[:, 13] = np.arange(n) / max(n - 1, 1)
    x[:, 14] = (np.cumsum(chars) - chars / 2) / total
    x[:, 15] = chars / total
    x[:, 16] = counts[first] > 1  # the same text elsewhere on the page
    # the container: a paragraph sits among paragraphs (much text, few links), a menu item among links
    col = 17
    for name in ("parent", "grand"):
        box = blocks.column(f"{name}_chars").astype(np.float64)
        x[:, col] = np.log1p(box)
        x[:, col + 1] = blocks.column(f"{name}_link_chars") / np.maximum(box, 1.0)
        x[:, col + 2] = np.minimum(box / total, 1.0)
        col += 3
    _, sibling_of, siblings = np.unique(blocks.column("parent_id"), return_inverse=True, return_counts=True)
    x[:, col] = np.log1p(siblings[sibling_of])
    x[:, col + 1] = np.minimum(chars / np.maximum(blocks.column("parent_chars"), 1), 1.0)
    x[:, col + 2] = np.log1p(total)
    x[:, col + 3] = np.log1p(n)
    col += 4
    padded_len = np.concatenate([np.zeros(3), log_chars, np.zeros(3)])
    padded_link = np.concatenate([np.ones(3), link, np.ones(3)])
    for k in NEIGHBOUR_OFFSETS:
        x[:, col] = padded_len[3 + k: 3 + k + n]
        x[:, col + 1] = padded_link[3 + k: 3 + k + n]
        col += 2
    x[np.arange(n), col + blocks.column("holder") % N_HOLDER] = 1  # -1 lands in the "other" column
    col += N_HOLDER
    masks = np.ascontiguousarray(blocks.rows[:, _MASK_FIELDS]).view(np.uint8)
    x[:, col: col + len(_BIT_COLUMNS)] = np.unpackbits(masks, axis=1, bitorder="little")[:, _BIT_COLUMNS]
    x[:, col + len(_BIT_COLUMNS):] = _bits(np.array([blocks.page_classes], np.uint64), len(CONCEPTS))
    return x


def _bits(values: np.ndarray, width: int) -> np.ndarray:
    """Unpack uint64 bitmasks into a 0/1 matrix of ``width`` columns."""
    raw = np.ascontiguousarray(values, "<u8").view(np.uint8).reshape(len(values), 8)
    return np.unpackbits(raw, axis=1, bitorder="little")[:, :width].astype(np.float32)


N_CONTEXT = 12  # the columns neighbour_context adds for the second stage


def neighbour_context(prob: np.ndarray, blocks: Blocks) -> np.ndarray:
    """``neighbour_context_reference``'s columns, filled by the C extension where it is built (equal
    to rounding: its two page means are summed in order, numpy's pairwise)."""
    if _blocks._walk is None:
        return neighbour_context_reference(prob, blocks)
    out = np.empty((len(prob), N_CONTEXT), np.float32)
    _blocks._walk.context(np.ascontiguousarray(prob, np.float64), blocks.rows, out)
    return out


def neighbour_context_reference(prob: np.ndarray, blocks: Blocks) -> np.ndarray:
    """Second-stage inputs from first-stage probabilities: the block's own, its neighbours' (±1..3,
    0 beyond the page), the mean of windows of 5 and 11 blocks, the page's mean, the share of the
    page's text scored as content, and the text-weighted mean over the block's container (the
    blocks with the same parent) without the block itself.

    Main text comes in runs and in containers: a short line between two kept paragraphs, or in the
    element that holds the article, is usually kept too.
    """
    n = len(prob)
    padded = np.concatenate([np.zeros(5), prob, np.zeros(5)])
    cols = [prob] + [padded[5 + k: 5 + k + n] for k in NEIGHBOUR_OFFSETS]
    csum = np.concatenate([[0.0], np.cumsum(padded)])
    for half in (2, 5):
        idx = np.arange(n) + 5
        cols.append((csum[idx + half + 1] - csum[idx - half]) / (2 * half + 1))
    cols.append(np.full(n, prob.mean() if n else 0.0))
    chars = blocks.column("chars").astype(np.float64)  # counted by the walk (chars.MEASURES)
    cols.append(np.full(n, (prob * chars).sum() / chars.sum() if n else 0.0))
    _, box = np.unique(blocks.column("parent_id"), return_inverse=True)
    box_chars = np.bincount(box, weights=chars)[box] - chars
    box_score = np.bincount(box, weights=prob * chars)[box] - prob * chars
    cols.append(np.where(box_chars > 0, box_score / np.maximum(box_chars, 1.0), -1.0))
    return np.column_stack(cols).astype(np.float32)
