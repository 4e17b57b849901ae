"""Block facts to a feature matrix: one row per block, numpy only, no language assumed.

Text measures are counted with ``str.translate`` and ``re`` (C loops), never a Python loop per
character. Stop-word ratios use the stop words of the languages the model was trained for (all of
``filters.stopwords`` by default): word-based for languages written with spaces, character-based
(the single-character stop words of zh/ja) for scripts without them. The extractor runs before
language ID, so it cannot pick one language's list per page.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from filters.stopwords import STOP_WORDS
from filters.text_stats import PUNCTUATION, TERMINAL_PUNCTUATION
from pipelines.fast_extract.blocks import ANCESTOR_TAGS, CLASS_KEYWORDS, HOLDER_TAGS, Blocks

_UPPER_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÑÒÓÔÕÖØÙÚÛÜÝАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЭЮЯ"
NEIGHBOUR_OFFSETS = (-3, -2, -1, 1, 2, 3)
STOPWORD_CAP = 80  # words per block looked up in the stop-word set (enough for a stable ratio)


def stopword_sets(langs: list[str]) -> tuple[frozenset[str], np.ndarray]:
    """(stop words, code points of the single-character stop words of zh/ja) of ``langs``."""
    words: set[str] = set()
    chars: set[str] = set()
    for lang in langs:
        for w in STOP_WORDS.get(lang, ()):
            (chars if len(w) == 1 and ord(w) > 0x2E80 else words).add(w.lower())
    return frozenset(words), _code_set(chars)


def _code_set(chars) -> np.ndarray:
    return np.array(sorted({ord(c) for c in chars if len(c) == 1}), np.uint32)


_DIGITS = _code_set("0123456789")
_PUNCT = _code_set(PUNCTUATION)
_UPPER = _code_set(_UPPER_CHARS)
_SEPARATORS = _code_set("|·•»›/«‹>")
_TERMINAL = _code_set(list(TERMINAL_PUNCTUATION) + ['"', "”", "»", ")"])
_SENTENCE_TERMINAL = _code_set(".!?。！？।")
_SPACES = _code_set(" \t\n\xa0")
_NO_SPACE_RANGES = ((0x0E00, 0x0FFF), (0x1000, 0x109F), (0x1780, 0x17FF), (0x3040, 0x30FF), (0x3400, 0x4DBF),
                    (0x4E00, 0x9FFF))


def _text_measures(texts: list[str], stop_words: frozenset[str], stop_chars: np.ndarray) -> np.ndarray:
    """Per block: chars, words, digits, punctuation, uppercase, separators, no-space-script chars,
    stop-word ratio (word based), stop characters, sentence ends, ends with terminal punctuation.

    All blocks are joined into one string and classified as one array of code points, then summed
    per block (``np.add.reduceat``); words are looked up in the stop-word set with one ``map``.
    """
    n = len(texts)
    lengths = np.fromiter(map(len, texts), np.int64, n)
    cps = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), np.uint32)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])

    def per_block(mask: np.ndarray) -> np.ndarray:
        return np.add.reduceat(mask.astype(np.int64), starts)

    no_space = np.zeros(len(cps), bool)
    for lo, hi in _NO_SPACE_RANGES:
        no_space |= (cps >= lo) & (cps <= hi)
    after = np.concatenate([cps[1:], [32]])
    after[np.cumsum(lengths) - 1] = 32  # a block's last character is followed by its end
    sentence_end = np.isin(cps, _SENTENCE_TERMINAL) & (np.isin(after, _SPACES) | (cps > 0x3000))
    tokens = " \x00 ".join(texts).lower().split()
    is_sep = np.fromiter(map("\x00".__eq__, tokens), bool, len(tokens))
    block_of = np.cumsum(is_sep)
    keep = ~is_sep
    words = np.bincount(block_of[keep], minlength=n)
    stops = np.bincount(block_of[keep], weights=np.fromiter(map(stop_words.__contains__, tokens), bool,
                                                            len(tokens))[keep], minlength=n)
    last = cps[np.cumsum(lengths) - 1]
    return np.column_stack([
        lengths, words, per_block(np.isin(cps, _DIGITS)), per_block(np.isin(cps, _PUNCT)),
        per_block(np.isin(cps, _UPPER)), per_block(np.isin(cps, _SEPARATORS)), per_block(no_space),
        stops / np.maximum(words, 1), per_block(np.isin(cps, stop_chars)), per_block(sentence_end),
        np.isin(last, _TERMINAL),
    ]).astype(np.float64)


def _bits(values: list[int], width: int) -> np.ndarray:
    """Unpack integer bitmasks (any width) into a 0/1 matrix of ``width`` columns."""
    nbytes = (width + 7) // 8
    raw = np.frombuffer(b"".join(v.to_bytes(nbytes, "little") for v in values), np.uint8)
    bits = np.unpackbits(raw.reshape(len(values), nbytes), axis=1, bitorder="little")
    return bits[:, :width].astype(np.float32)


def block_features(blocks: Blocks, stop_words: frozenset[str], stop_chars: np.ndarray) -> np.ndarray:
    """The feature matrix of one page's blocks (float32, ``n_blocks x n_features``)."""
    n = len(blocks.texts)
    m = _text_measures(blocks.texts, stop_words, stop_chars) if n else np.zeros((0, 11))
    chars = np.maximum(m[:, 0], 1.0)
    words = np.maximum(m[:, 1], 1.0)
    no_space = m[:, 6] / chars
    log_chars = np.log1p(m[:, 0])
    link = np.asarray(blocks.link_chars, np.float64) / chars
    total = chars.sum()
    cum = (np.cumsum(chars) - chars / 2) / total
    counts = Counter(blocks.texts)
    repeated = np.fromiter((counts[t] > 1 for t in blocks.texts), np.float64, n)
    holder = np.zeros((n, len(HOLDER_TAGS) + 1), np.float32)
    holder[np.arange(n), np.asarray(blocks.holder, np.int64)] = 1  # -1 lands in the "other" column
    own = [
        log_chars, np.log1p(m[:, 1]), link, m[:, 2] / chars, m[:, 3] / chars, m[:, 4] / chars,
        m[:, 5] / words, no_space, m[:, 7], m[:, 8] / chars, np.log1p(m[:, 9]), m[:, 10],
        np.minimum(np.asarray(blocks.depth, np.float64), 64) / 64, np.arange(n) / max(n - 1, 1), cum,
        chars / total, repeated,
    ]
    page = [np.full(n, np.log1p(total)), np.full(n, np.log1p(n))]
    neighbours = []
    padded_len = np.concatenate([[0.0] * 3, log_chars, [0.0] * 3])
    padded_link = np.concatenate([[1.0] * 3, link, [1.0] * 3])
    for k in NEIGHBOUR_OFFSETS:
        neighbours.append(padded_len[3 + k: 3 + k + n])
        neighbours.append(padded_link[3 + k: 3 + k + n])
    dense = np.column_stack(own + page + neighbours).astype(np.float32)
    return np.hstack([
        dense, holder,
        _bits(blocks.ancestors, len(ANCESTOR_TAGS)),
        _bits(blocks.classes, len(CLASS_KEYWORDS)),
        _bits(blocks.own_classes, len(CLASS_KEYWORDS)),
    ])


def neighbour_context(prob: np.ndarray) -> np.ndarray:
    """Second-stage inputs from first-stage probabilities: the block's own, its neighbours' (±1..3,
    0 beyond the page), the mean of windows of 5 and 11 blocks, and the page's mean.

    Main text comes in runs: a short line between two kept paragraphs is usually kept too.
    """
    n = len(prob)
    padded = np.concatenate([np.zeros(5), prob, np.zeros(5)])
    cols = [prob] + [padded[5 + k: 5 + k + n] for k in NEIGHBOUR_OFFSETS]
    csum = np.concatenate([[0.0], np.cumsum(padded)])
    for half in (2, 5):
        idx = np.arange(n) + 5
        cols.append((csum[idx + half + 1] - csum[idx - half]) / (2 * half + 1))
    cols.append(np.full(n, prob.mean() if n else 0.0))
    return np.column_stack(cols).astype(np.float32)
