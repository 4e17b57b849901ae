"""What each rule parameter may be: the ranges `filter.rules` overrides (and presets) are checked against.

Why: a rule compares a statistic with its threshold and nothing more, so ``dup_line_frac: 7`` (a
fraction that can never be exceeded), ``min_doc_words: -5`` or a minimum above its maximum would run
without complaint and quietly keep or drop everything. ``None`` turns a threshold off, as in the rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FRACTION = "a fraction between 0 and 1"
RATIO = "a number >= 0"
COUNT = "a whole number >= 0"
FLAG = "true or false"
NGRAM_PAIRS = "a list of [n, fraction] pairs, n a whole number >= 1 and fraction between 0 and 1"
STRINGS = "a list of strings"

#: Rule -> parameter -> kind. ``None`` (threshold off) is allowed for every kind except FLAG, NGRAM_PAIRS
#: and the parameters in `_REQUIRED`.
PARAM_KINDS: dict[str, dict[str, str]] = {
    "gopher_repetition": {
        "enabled": FLAG, "dup_line_frac": FRACTION, "dup_para_frac": FRACTION, "dup_line_char_frac": FRACTION,
        "dup_para_char_frac": FRACTION, "top_n_grams": NGRAM_PAIRS, "dup_n_grams": NGRAM_PAIRS,
    },
    "gopher_quality": {
        "enabled": FLAG, "min_doc_words": COUNT, "max_doc_words": COUNT, "min_avg_word_length": RATIO,
        "max_avg_word_length": RATIO, "max_symbol_word_ratio": RATIO, "max_bullet_lines_ratio": FRACTION,
        "max_ellipsis_lines_ratio": FRACTION, "max_non_alpha_words_ratio": FRACTION, "min_stop_words": COUNT,
        "stop_words": STRINGS,
    },
    "c4": {
        "enabled": FLAG, "remove_citations": FLAG, "filter_no_terminal_punct": FLAG, "min_num_sentences": COUNT,
        "min_words_per_line": COUNT, "max_word_length": COUNT, "filter_lorem_ipsum": FLAG,
        "filter_javascript": FLAG, "filter_curly_bracket": FLAG, "filter_policy": FLAG,
    },
    "fineweb_quality": {
        "enabled": FLAG, "line_punct_thr": FRACTION, "line_punct_exclude_zero": FLAG, "stop_chars": STRINGS,
        "short_line_thr": FRACTION, "short_line_length": COUNT, "char_duplicates_ratio": FRACTION,
        "new_line_ratio": RATIO,
    },
}  # fmt: skip

#: Parameters without an "off" value.
_REQUIRED = frozenset({("fineweb_quality", "short_line_length")})

#: (rule, minimum, maximum): pairs where the minimum must not exceed the maximum.
MIN_MAX_PAIRS = (
    ("gopher_quality", "min_doc_words", "max_doc_words"),
    ("gopher_quality", "min_avg_word_length", "max_avg_word_length"),
)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _valid(kind: str, value: Any) -> bool:
    if kind == FLAG:
        return isinstance(value, bool)
    if kind == FRACTION:
        return _is_number(value) and 0 <= value <= 1
    if kind == RATIO:
        return _is_number(value) and value >= 0
    if kind == COUNT:
        return _is_number(value) and value >= 0 and float(value).is_integer()
    if kind == STRINGS:
        return isinstance(value, str) or (isinstance(value, list | tuple) and all(isinstance(v, str) for v in value))
    return isinstance(value, list | tuple) and all(
        isinstance(p, list | tuple) and len(p) == 2 and _valid(COUNT, p[0]) and p[0] >= 1 and _valid(FRACTION, p[1])
        for p in value
    )


def param_problems(rules: Mapping[str, Any]) -> list[tuple[str, Any, str]]:
    """``(rule.parameter, value, expectation)`` for each value of ``{rule: {parameter: value}}`` out of range.

    Unknown rules and parameters are left to `filters.presets.merge_overrides`, which names them.
    """
    problems = []
    for rule, params in rules.items():
        kinds = PARAM_KINDS.get(rule)
        if kinds is None or not isinstance(params, Mapping):
            continue
        for key, value in params.items():
            kind = kinds.get(key)
            if kind is None or (value is None and kind not in (FLAG, NGRAM_PAIRS) and (rule, key) not in _REQUIRED):
                continue
            if not _valid(kind, value):
                off = "" if kind in (FLAG, NGRAM_PAIRS) or (rule, key) in _REQUIRED else " (or null: check off)"
                problems.append((f"{rule}.{key}", value, f"expected {kind}{off}"))
    return problems


def min_max_problems(preset: Mapping[str, Any]) -> list[tuple[str, Any, str]]:
    """``(rule.minimum, value, expectation)`` for each minimum above its maximum in a (merged) preset."""
    problems = []
    for rule, low, high in MIN_MAX_PAIRS:
        params = preset.get(rule) or {}
        lo, hi = params.get(low), params.get(high)
        if _is_number(lo) and _is_number(hi) and lo > hi:
            problems.append((f"{rule}.{low}", lo, f"expected at most {rule}.{high}, which is {hi}"))
    return problems
