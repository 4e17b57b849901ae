"""Character classes of block text and the per-block counts made from them.

One table maps every code point to a bitmask of classes (digit, punctuation, uppercase, ...). The C
walk (``_walk.c``) counts them per block while it normalises the block's whitespace, so no page is
ever re-encoded or re-scanned in Python; ``char_measures`` is the same count in numpy, the
specification the C counts are tested against and what the Python walk uses.
"""

from __future__ import annotations

import numpy as np

from filters.stopwords import STOP_WORDS
from filters.text_stats import PUNCTUATION, TERMINAL_PUNCTUATION

DIGIT, PUNCT, UPPER, SEPARATOR, NO_SPACE, SENTENCE_END, SPACE, TERMINAL, STOP_CHAR = (1 << i for i in range(9))
#: The classes counted per block, in the order of MEASURES' count columns (the C walk follows it).
COUNTED = (DIGIT, PUNCT, UPPER, SEPARATOR, NO_SPACE, STOP_CHAR)
#: Per-block measures, after the walk's own columns: characters, words, the COUNTED classes,
#: sentence ends (terminal punctuation before a space, the block's end or a CJK character), and
#: whether the block's last character is terminal punctuation.
MEASURES = ("chars", "words", "digits", "punctuation", "uppercase", "separators", "no_space_chars", "stop_chars",
            "sentence_ends", "ends_terminal")

_UPPER_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÑÒÓÔÕÖØÙÚÛÜÝАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЭЮЯ"
#: Scripts written without spaces between words (Thai, Tibetan, Myanmar, Khmer, kana, CJK): counted
#: here per character, and tokenised per character for labels and agreement (``train``).
NO_SPACE_RANGES = ((0x0E00, 0x0FFF), (0x1000, 0x109F), (0x1780, 0x17FF), (0x3040, 0x30FF), (0x3400, 0x4DBF),
                    (0x4E00, 0x9FFF))


def _base_table() -> np.ndarray:
    table = np.zeros(0x110000, np.uint16)
    for chars, bit in (("0123456789", DIGIT), (PUNCTUATION, PUNCT), (_UPPER_CHARS, UPPER), ("|·•»›/«‹>", SEPARATOR),
                       (".!?。！？।", SENTENCE_END), (" \t\n\xa0", SPACE),
                       (list(TERMINAL_PUNCTUATION) + ['"', "”", "»", ")"], TERMINAL)):
        table[[ord(c) for c in chars if len(c) == 1]] |= bit
    for lo, hi in NO_SPACE_RANGES:
        table[lo:hi + 1] |= NO_SPACE
    return table


BASE_TABLE = _base_table()


def char_table(langs: list[str]) -> tuple[frozenset[str], np.ndarray]:
    """(stop words, character-class table) for ``langs``: the table marks the single-character stop
    words of zh/ja with STOP_CHAR on top of the fixed classes."""
    words: set[str] = set()
    chars: set[str] = set()
    for lang in langs:
        for w in STOP_WORDS.get(lang, ()):
            (chars if len(w) == 1 and ord(w) > 0x2E80 else words).add(w.lower())
    table = BASE_TABLE.copy()
    table[[ord(c) for c in chars]] |= STOP_CHAR
    return frozenset(words), table


def char_measures(texts: list[str], table: np.ndarray) -> np.ndarray:
    """The MEASURES of whitespace-normalised block texts (int64, ``len(texts) x len(MEASURES)``).

    The page's code points are classified by one table lookup and summed per block in one
    ``np.add.reduceat``.
    """
    n = len(texts)
    out = np.zeros((n, len(MEASURES)), np.int64)
    if not n:
        return out
    lengths = np.fromiter(map(len, texts), np.int64, n)
    cps = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), np.uint32)
    classes = table[np.minimum(cps, 0x10FFFF)]
    ends = np.cumsum(lengths)
    after = np.empty_like(classes)
    after[:-1] = classes[1:]
    after[ends - 1] = SPACE  # a block's last character is followed by its end
    sentence_end = ((classes & SENTENCE_END) != 0) & (((after & SPACE) != 0) | (cps > 0x3000))
    counted = np.array((SPACE, *COUNTED), np.uint16)
    counts = np.add.reduceat(np.column_stack([(classes[:, None] & counted) != 0, sentence_end]), ends - lengths,
                             axis=0, dtype=np.int64)
    out[:, 0] = lengths
    out[:, 1] = counts[:, 0] + 1  # normalised text: words are single-space separated
    out[:, 2:9] = counts[:, 1:]
    out[:, 9] = (classes[ends - 1] & TERMINAL) != 0
    return out
