"""Run a preset's rules on one document: the one call the filter stage needs per document.

Why a chain object and not a loop in the stage: the rules share one `TextStats` per document (words
and n-grams are computed once), and C4 may edit the text (drop lines), after which the later rules
must see the edited text -- both are easy to get subtly wrong at each call site.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from filters.c4 import C4Filter
from filters.presets import build_rules, merge_overrides
from filters.text_stats import TextStats, normalize_lang

__all__ = ["RuleChain"]


class RuleChain:
    """Rules applied in order; the first failure decides.

    ``edit_text=True`` (default, FineWeb's behaviour) keeps C4's edited text -- the document minus
    the lines C4 drops -- for the later rules and as the result; False uses C4 only to decide.
    """

    def __init__(self, rules: Sequence[Any], lang: str | None = "en", *, edit_text: bool = True) -> None:
        self.rules = list(rules)
        self.lang = normalize_lang(lang)
        self.edit_text = edit_text

    @classmethod
    def from_preset(
        cls, preset: Mapping[str, Any], overrides: Mapping[str, Any] | None = None, *, edit_text: bool = True
    ) -> RuleChain:
        """The enabled rules of `preset` (with ``{rule: {key: value}}`` `overrides`)."""
        merged = merge_overrides(preset, overrides)
        return cls(build_rules(merged), merged.get("lang", "en"), edit_text=edit_text)

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.rules]

    def apply(self, text: str, stats: TextStats | None = None) -> tuple[str, str | None]:
        """``(text_to_keep, None)`` when every rule passes, else ``(text, reason)``.

        `text_to_keep` is `text` itself unless C4 edited it. A rejected document comes back with its
        original text, which is what the rejected/ output should hold.
        """
        st = stats if stats is not None and stats.text is text else TextStats(text, self.lang)
        current = text
        for rule in self.rules:
            if isinstance(rule, C4Filter):
                new_text, reason = rule.apply(current, st)
                if reason is not None:
                    return text, reason
                if self.edit_text and new_text is not None and new_text != current:
                    current = new_text
                    st = TextStats(current, self.lang)
                continue
            reason = rule.check(current, st)
            if reason is not None:
                return text, reason
        return current, None

    def check(self, text: str, stats: TextStats | None = None) -> str | None:
        """The reason of `apply`, or None."""
        return self.apply(text, stats)[1]
