"""Gopher's quality and repetition rules (Rae et al. 2021, "Scaling Language Models", appendix A).

Both rules follow datatrove's `GopherQualityFilter` / `GopherRepetitionFilter` -- the versions
FineWeb and FineWeb2 ran -- statistic by statistic and in the same order, so a threshold taken from
a FineWeb(2) config means the same thing here. Defaults are FineWeb English's (the paper's).
Differences, all deliberate:

* A document with no words or no lines is rejected with a reason instead of raising
  ZeroDivisionError (which datatrove does when ``min_doc_words`` is off).
* An empty stop-word list switches the stop-word test off instead of rejecting everything.
* Repetition: n-grams are compared as word sequences (datatrove compares the words glued together
  without spaces, so ``["ab", "c"]`` equals ``["a", "bc"]`` there; never seen in practice), and
  computed with integer ids and numpy instead of joined strings (see `TextStats.ngram_ids`), which
  is what makes this rule fast on long pages.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from filters.base import TextRule
from filters.stopwords import get_stop_words
from filters.text_stats import TextStats, find_duplicates

__all__ = ["GopherQualityFilter", "GopherRepetitionFilter"]

_BULLETS = ("•", "-")
_ELLIPSES = ("...", "…")


class GopherQualityFilter(TextRule):
    """Rejects documents whose words don't look like prose.

    Keyword names are datatrove's (so FineWeb2 configs apply as they are). Any threshold set to
    None or 0 is off. Note ``max_non_alpha_words_ratio`` is, despite its name, the *minimum* share
    of tokens that contain a letter (Gopher's "80% of words contain an alphabetic character").

    Statistics, in the order tested (reason names in brackets):
    words that are not pure punctuation within [min_doc_words, max_doc_words] (``word_count``);
    their mean length within [min_avg_word_length, max_avg_word_length] (``mean_word_length``);
    "#" per token and "..."/"…" per token at most max_symbol_word_ratio (``hash_word_ratio``,
    ``ellipsis_word_ratio``); share of lines starting with a bullet ("•" or "-") at most
    max_bullet_lines_ratio (``bullet_line_ratio``); share of lines ending with an ellipsis at most
    max_ellipsis_lines_ratio (``ellipsis_line_ratio``); share of tokens with a letter at least
    max_non_alpha_words_ratio (``alpha_word_ratio``); distinct stop words present at least
    min_stop_words (``stop_word_count``).
    """

    name = "gopher_quality"

    def __init__(
        self,
        min_doc_words: int | None = 50,
        max_doc_words: int | None = 100_000,
        min_avg_word_length: float | None = 3,
        max_avg_word_length: float | None = 10,
        max_symbol_word_ratio: float | None = 0.1,
        max_bullet_lines_ratio: float | None = 0.9,
        max_ellipsis_lines_ratio: float | None = 0.3,
        max_non_alpha_words_ratio: float | None = 0.8,
        min_stop_words: int | None = 2,
        stop_words: Iterable[str] | None = None,
        lang: str | None = "en",
    ) -> None:
        super().__init__(lang)
        self.min_doc_words = min_doc_words
        self.max_doc_words = max_doc_words
        self.min_avg_word_length = min_avg_word_length
        self.max_avg_word_length = max_avg_word_length
        self.max_symbol_word_ratio = max_symbol_word_ratio
        self.max_bullet_lines_ratio = max_bullet_lines_ratio
        self.max_ellipsis_lines_ratio = max_ellipsis_lines_ratio
        self.max_non_alpha_words_ratio = max_non_alpha_words_ratio
        self.min_stop_words = min_stop_words
        self.stop_words = frozenset(get_stop_words(lang) if stop_words is None else stop_words)

    def check(self, text: str, stats: TextStats | None = None) -> str | None:
        """None if `text` passes, else ``"gopher_quality:<statistic>=<value>"`` (see class doc)."""
        st = self.stats_for(text, stats)
        n_words = st.word_count
        if self.min_doc_words and n_words < self.min_doc_words:
            return self.reason("word_count", n_words)
        if self.max_doc_words and n_words > self.max_doc_words:
            return self.reason("word_count", n_words)

        mean = st.mean_word_length
        if mean is not None:
            if self.min_avg_word_length and mean < self.min_avg_word_length:
                return self.reason("mean_word_length", mean)
            if self.max_avg_word_length and mean > self.max_avg_word_length:
                return self.reason("mean_word_length", mean)

        n_tokens = st.token_count
        if n_tokens == 0:
            return self.reason("token_count", 0)
        if self.max_symbol_word_ratio:
            ratio = text.count("#") / n_tokens
            if ratio > self.max_symbol_word_ratio:
                return self.reason("hash_word_ratio", ratio)
            ratio = (text.count("...") + text.count("…")) / n_tokens
            if ratio > self.max_symbol_word_ratio:
                return self.reason("ellipsis_word_ratio", ratio)

        lines = st.lines
        if lines:
            if self.max_bullet_lines_ratio:
                ratio = sum(1 for line in lines if line.lstrip().startswith(_BULLETS)) / len(lines)
                if ratio > self.max_bullet_lines_ratio:
                    return self.reason("bullet_line_ratio", ratio)
            if self.max_ellipsis_lines_ratio:
                ratio = sum(1 for line in lines if line.rstrip().endswith(_ELLIPSES)) / len(lines)
                if ratio > self.max_ellipsis_lines_ratio:
                    return self.reason("ellipsis_line_ratio", ratio)

        if self.max_non_alpha_words_ratio:
            ratio = st.alpha_word_ratio or 0.0
            if ratio < self.max_non_alpha_words_ratio:
                return self.reason("alpha_word_ratio", ratio)

        if self.min_stop_words and self.stop_words:
            found = st.stop_word_count(self.stop_words)
            if found < self.min_stop_words:
                return self.reason("stop_word_count", found)
        return None


_DEFAULT_TOP = ((2, 0.2), (3, 0.18), (4, 0.16))
_DEFAULT_DUP = ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))


def _pairs(value: Iterable[Sequence[float]]) -> tuple[tuple[int, float], ...]:
    # YAML gives lists of lists; keep (n, fraction) tuples
    return tuple((int(n), float(frac)) for n, frac in value)


class GopherRepetitionFilter(TextRule):
    """Rejects documents that repeat themselves (boilerplate, spam, generated pages).

    All fractions are of the document's characters (``len(text)``), except the two "frac" counts of
    duplicate lines / paragraphs. Thresholds set to None or 0 are off (FineWeb2 turns off the
    paragraph ones and the line character one). Tested in this order (reason names in brackets):
    duplicate paragraphs (``dup_para_frac``), their characters (``dup_para_char_frac``), duplicate
    lines (``dup_line_frac``), their characters (``dup_line_char_frac``), for each (n, fraction) in
    `top_n_grams` the characters covered by the most frequent n-gram (``top_<n>_gram_char_frac``),
    for each (n, fraction) in `dup_n_grams` the characters in repeated n-grams
    (``dup_<n>_gram_char_frac``). An empty text is rejected (``char_count=0``).

    Paragraphs are separated by 2+ newlines; "lines" here are split on runs of newlines, as in
    datatrove.
    """

    name = "gopher_repetition"

    def __init__(
        self,
        dup_line_frac: float | None = 0.3,
        dup_para_frac: float | None = 0.3,
        dup_line_char_frac: float | None = 0.2,
        dup_para_char_frac: float | None = 0.2,
        top_n_grams: Iterable[Sequence[float]] = _DEFAULT_TOP,
        dup_n_grams: Iterable[Sequence[float]] = _DEFAULT_DUP,
        lang: str | None = "en",
    ) -> None:
        super().__init__(lang)
        self.dup_line_frac = dup_line_frac
        self.dup_para_frac = dup_para_frac
        self.dup_line_char_frac = dup_line_char_frac
        self.dup_para_char_frac = dup_para_char_frac
        self.top_n_grams = _pairs(top_n_grams)
        self.dup_n_grams = _pairs(dup_n_grams)

    def check(self, text: str, stats: TextStats | None = None) -> str | None:
        """None if `text` passes, else ``"gopher_repetition:<statistic>=<value>"``."""
        if not text:
            return self.reason("char_count", 0)
        st = self.stats_for(text, stats)
        n_chars = len(text)

        if self.dup_para_frac or self.dup_para_char_frac:
            paragraphs = st.paragraphs
            n_dup, dup_chars = find_duplicates(paragraphs)
            if self.dup_para_frac and n_dup / len(paragraphs) > self.dup_para_frac:
                return self.reason("dup_para_frac", n_dup / len(paragraphs))
            if self.dup_para_char_frac and dup_chars / n_chars > self.dup_para_char_frac:
                return self.reason("dup_para_char_frac", dup_chars / n_chars)

        if self.dup_line_frac or self.dup_line_char_frac:
            lines = st.line_runs
            n_dup, dup_chars = find_duplicates(lines)
            if self.dup_line_frac and n_dup / len(lines) > self.dup_line_frac:
                return self.reason("dup_line_frac", n_dup / len(lines))
            if self.dup_line_char_frac and dup_chars / n_chars > self.dup_line_char_frac:
                return self.reason("dup_line_char_frac", dup_chars / n_chars)

        n_words = st.token_count
        for n, frac in self.top_n_grams:
            if n_words < n:
                continue
            value = st.top_ngram_chars(n) / n_chars
            if value > frac:
                return self.reason(f"top_{n}_gram_char_frac", value)

        for n, frac in self.dup_n_grams:
            value = st.duplicate_ngram_chars(n) / n_chars
            if value > frac:
                return self.reason(f"dup_{n}_gram_char_frac", value)
        return None
