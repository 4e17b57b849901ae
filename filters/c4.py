"""C4's heuristics (Raffel et al. 2020), line by line, as datatrove's `C4QualityFilter` runs them.

C4 is both a filter and an editor: most of its tests *remove lines* (no terminal punctuation, too
few words, mentions of javascript, cookie/terms-of-use boilerplate, a word over 1000 characters),
and only a few reject the whole document (lorem ipsum, a curly bracket, fewer than 5 sentences left
in the kept lines). FineWeb English ran it with the terminal-punctuation line filter off, and the
text that came out -- the kept lines -- is what the later filters and the corpus saw.

So this rule has two entry points:

* ``apply(text, stats) -> (new_text, None)`` when the document is kept, with the surviving lines
  joined by "\\n" (exactly what datatrove writes back into the document), or ``(None, reason)``;
* ``check(text, stats) -> reason | None``, the decision alone, for callers that keep text as is.

Every sub-rule has its own switch. Sentences are counted per kept line with spaCy's sentencizer rule
(`filters.text_stats.count_sentences`); counting stops once `min_num_sentences` is reached.
Only C4's line mode is implemented (datatrove's ``split_paragraph=True``, its default).
"""

from __future__ import annotations

import re

from filters.base import TextRule
from filters.text_stats import TextStats, count_sentences

__all__ = ["POLICY_SUBSTRINGS", "C4Filter"]

_CITATION = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]")
_END_PUNCTUATION = (".", "?", "!", '"', "'")
#: Lower-cased phrases marking cookie / legal boilerplate lines.
POLICY_SUBSTRINGS = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)


class C4Filter(TextRule):
    """C4 quality rules; see the module docstring. Defaults are C4's (datatrove's defaults).

    Line-level (the line is dropped): ``max_word_length`` (a whitespace word longer than this; -1 or
    None = off), ``filter_no_terminal_punct`` (line, after removing Wikipedia citation marks when
    ``remove_citations``, must end in . ? ! " ' and not in "..."), ``min_words_per_line``
    (whitespace words; -1 or None = off), ``filter_javascript``, ``filter_policy``.
    Document-level (reason names in brackets): ``filter_lorem_ipsum`` (``lorem_ipsum``),
    ``filter_curly_bracket`` (``curly_bracket``) -- both only looked for in lines that survived the
    earlier line tests, as in C4 -- and ``min_num_sentences`` over the kept lines
    (``sentence_count``; -1 or None = off).
    """

    name = "c4"

    def __init__(
        self,
        remove_citations: bool = True,
        filter_no_terminal_punct: bool = True,
        min_num_sentences: int | None = 5,
        min_words_per_line: int | None = 3,
        max_word_length: int | None = 1000,
        filter_lorem_ipsum: bool = True,
        filter_javascript: bool = True,
        filter_curly_bracket: bool = True,
        filter_policy: bool = True,
        lang: str | None = "en",
    ) -> None:
        super().__init__(lang)
        self.remove_citations = remove_citations
        self.filter_no_terminal_punct = filter_no_terminal_punct
        self.min_num_sentences = min_num_sentences
        self.min_words_per_line = min_words_per_line
        self.max_word_length = max_word_length
        self.filter_lorem_ipsum = filter_lorem_ipsum
        self.filter_javascript = filter_javascript
        self.filter_curly_bracket = filter_curly_bracket
        self.filter_policy = filter_policy

    def apply(self, text: str, stats: TextStats | None = None) -> tuple[str | None, str | None]:
        """``(kept_lines_text, None)`` if the document is kept, else ``(None, "c4:<stat>=<value>")``."""
        lines = stats.lines if stats is not None and stats.text is text else text.splitlines()
        lang = stats.lang if stats is not None else self.lang
        max_word = self.max_word_length if self.max_word_length not in (None, -1) else None
        min_words = self.min_words_per_line if self.min_words_per_line not in (None, -1) else None
        min_sents = self.min_num_sentences if self.min_num_sentences not in (None, -1) else None
        n_sentences = 0
        kept: list[str] = []
        for raw in lines:
            line = raw.strip()
            words = line.split()
            if max_word is not None and any(len(w) > max_word for w in words):
                continue
            if self.remove_citations and "[" in line:
                line = _CITATION.sub("", line)
            if self.filter_no_terminal_punct and (
                not line.endswith(_END_PUNCTUATION) or line.endswith("...")
            ):
                continue
            if min_words is not None and len(words) < min_words:
                continue
            lower = line.lower()
            if self.filter_lorem_ipsum and "lorem ipsum" in lower:
                return None, self.reason("lorem_ipsum", 1)
            if self.filter_javascript and "javascript" in lower:
                continue
            if self.filter_curly_bracket and "{" in line:
                return None, self.reason("curly_bracket", 1)
            if self.filter_policy and any(p in lower for p in POLICY_SUBSTRINGS):
                continue
            if min_sents is not None and n_sentences < min_sents:
                n_sentences += count_sentences(line, lang)
            kept.append(line)
        if min_sents is not None and n_sentences < min_sents:
            return None, self.reason("sentence_count", n_sentences)
        return "\n".join(kept).strip(), None

    def check(self, text: str, stats: TextStats | None = None) -> str | None:
        """The decision of `apply` without the edited text."""
        return self.apply(text, stats)[1]
