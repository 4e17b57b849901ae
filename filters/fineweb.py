"""FineWeb's own quality rule (Penedo et al. 2024), as datatrove's `FineWebQualityFilter` runs it.

Why these statistics: FineWeb found that, after Gopher and C4, the documents still hurting models
were mostly lists and menus (many short lines, few ending in punctuation, lots of newlines for the
words) and pages made of repeated lines. Defaults are FineWeb English's; FineWeb2 keeps the rule but
sets `line_punct_thr` and `new_line_ratio` per language, turns `short_line_thr` off and relaxes
`char_duplicates_ratio` to 0.1.
"""

from __future__ import annotations

from collections.abc import Iterable

from filters.base import TextRule
from filters.text_stats import TERMINAL_PUNCTUATION, TextStats, find_duplicates

__all__ = ["FineWebQualityFilter"]


class FineWebQualityFilter(TextRule):
    """Rejects list-like and line-duplicated documents.

    Lines are the non-blank ``"\\n"``-separated lines, unstripped. Tested in this order (reason names
    in brackets): share of lines ending in one of `stop_chars` (default: every sentence-terminal
    character) at least `line_punct_thr`, unless it is exactly 0 and `line_punct_exclude_zero`
    (``line_punct_ratio``); share of lines of at most `short_line_length` characters at most
    `short_line_thr` (``short_line_ratio``; None = off); characters in repeated lines over the
    non-newline characters at most `char_duplicates_ratio` (``char_dup_ratio``); newlines per word
    at most `new_line_ratio` (``list_ratio``). A document without a non-blank line is rejected
    (``nonblank_line_count=0``).
    """

    name = "fineweb_quality"

    def __init__(
        self,
        line_punct_thr: float | None = 0.12,
        line_punct_exclude_zero: bool = False,
        stop_chars: Iterable[str] | str | None = None,
        short_line_thr: float | None = 0.67,
        short_line_length: int = 30,
        char_duplicates_ratio: float | None = 0.01,
        new_line_ratio: float | None = 0.3,
        lang: str | None = "en",
    ) -> None:
        super().__init__(lang)
        self.line_punct_thr = line_punct_thr
        self.line_punct_exclude_zero = line_punct_exclude_zero
        self.stop_chars: tuple[str, ...] = (
            tuple(sorted(TERMINAL_PUNCTUATION)) if stop_chars is None else tuple(stop_chars)
        )
        self.short_line_thr = short_line_thr
        self.short_line_length = short_line_length
        self.char_duplicates_ratio = char_duplicates_ratio
        self.new_line_ratio = new_line_ratio

    def check(self, text: str, stats: TextStats | None = None) -> str | None:
        """None if `text` passes, else ``"fineweb_quality:<statistic>=<value>"``."""
        st = self.stats_for(text, stats)
        lines = st.nonblank_lines
        if not lines:
            return self.reason("nonblank_line_count", 0)
        n_lines = len(lines)

        if self.line_punct_thr is not None:
            ratio = sum(1 for line in lines if line.endswith(self.stop_chars)) / n_lines
            if ratio < self.line_punct_thr and not (ratio == 0 and self.line_punct_exclude_zero):
                return self.reason("line_punct_ratio", ratio)

        if self.short_line_thr is not None:
            limit = self.short_line_length
            ratio = sum(1 for line in lines if len(line) <= limit) / n_lines
            if ratio > self.short_line_thr:
                return self.reason("short_line_ratio", ratio)

        if self.char_duplicates_ratio is not None:
            n_chars = len(text) - st.newline_count
            ratio = find_duplicates(lines)[1] / n_chars
            if ratio > self.char_duplicates_ratio:
                return self.reason("char_dup_ratio", ratio)

        if self.new_line_ratio is not None:
            n_words = st.token_count
            if n_words == 0:
                return self.reason("token_count", 0)
            ratio = st.newline_count / n_words
            if ratio > self.new_line_ratio:
                return self.reason("list_ratio", ratio)
        return None
