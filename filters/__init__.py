"""Heuristic text rules: pure functions and small classes over a document's text, no I/O, no Ray.

Each rule has ``check(text, stats=None) -> reason | None`` (None = keep); a reason reads
``"<rule>:<statistic>=<value>"``. Build one `TextStats` per document and pass it to every rule so
they share segmentation work; `RuleChain.from_preset(load_preset(lang))` does all of that.
"""

from filters.base import Rule, make_reason
from filters.c4 import C4Filter
from filters.chain import RuleChain
from filters.fineweb import FineWebQualityFilter
from filters.gopher import GopherQualityFilter, GopherRepetitionFilter
from filters.pii import normalize_pii
from filters.presets import (
    RULE_ORDER,
    available_presets,
    build_rules,
    default_preset,
    derive_preset,
    load_preset,
    merge_overrides,
    reference_statistics,
)
from filters.stopwords import STOP_WORDS, get_stop_words
from filters.text_stats import (
    TextStats,
    count_sentences,
    normalize_lang,
    register_word_splitter,
    split_lines,
    split_paragraphs,
    split_words,
    word_ngrams,
)
from filters.url import UrlBlocklist

__all__ = [
    "RULE_ORDER",
    "STOP_WORDS",
    "C4Filter",
    "FineWebQualityFilter",
    "GopherQualityFilter",
    "GopherRepetitionFilter",
    "Rule",
    "RuleChain",
    "TextStats",
    "UrlBlocklist",
    "available_presets",
    "build_rules",
    "count_sentences",
    "default_preset",
    "derive_preset",
    "get_stop_words",
    "load_preset",
    "make_reason",
    "merge_overrides",
    "normalize_lang",
    "normalize_pii",
    "reference_statistics",
    "register_word_splitter",
    "split_lines",
    "split_paragraphs",
    "split_words",
    "word_ngrams",
]
