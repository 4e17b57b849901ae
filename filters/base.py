"""What every rule shares: the reason-string format and how a rule gets its `TextStats`.

A rule is a small object constructed from keyword thresholds, with
``check(text, stats=None) -> str | None``: None when the document passes, else a reason
``"<rule_name>:<statistic>=<value>"`` naming the first statistic that failed and its value, e.g.
``"gopher_quality:word_count=12"``. The reason is what the filter stage writes to the
``reject_reason`` column, so it must say *why* in a form one can group by (``split(":")[0]``) and
read (the value shows how far from the threshold the document was).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from filters.text_stats import TextStats


def format_value(value: float | int) -> str:
    """Compact, stable rendering of a statistic: ints as is, floats with 4 significant digits."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


def make_reason(rule: str, statistic: str, value: float | int) -> str:
    """``"<rule>:<statistic>=<value>"``."""
    return f"{rule}:{statistic}={format_value(value)}"


@runtime_checkable
class Rule(Protocol):
    """The interface of every document rule (see module docstring)."""

    name: str

    def check(self, text: str, stats: TextStats | None = None) -> str | None: ...


class TextRule:
    """Base class for rules over a document's text: holds the language and builds stats on demand."""

    name = "rule"

    def __init__(self, lang: str | None = "en") -> None:
        self.lang = lang

    def stats_for(self, text: str, stats: TextStats | None) -> TextStats:
        """`stats` when it describes `text`, else fresh `TextStats` (so a stale object can't lie)."""
        if stats is not None and (stats.text is text or stats.text == text):
            return stats
        return TextStats(text, self.lang if stats is None else stats.lang)

    def reason(self, statistic: str, value: float | int) -> str:
        return make_reason(self.name, statistic, value)

    def check(self, text: str, stats: TextStats | None = None) -> str | None:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"
