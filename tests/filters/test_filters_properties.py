"""Property tests: no rule raises on arbitrary Unicode, whatever the language or thresholds."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from filters import (
    C4Filter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
    RuleChain,
    TextStats,
    UrlBlocklist,
    load_preset,
    normalize_pii,
    split_words,
)

LANGS = ["en", "pt", "es", "de", "fr", "it", "ru", "ko", "ja", "zh", "hi", "th", None, "sw"]

# Text mixing arbitrary code points with the characters the rules care about, so that lines,
# bullets, ellipses, URLs and repeated fragments actually occur.
_special = st.sampled_from(
    ["\n", "\n\n", "\r\n", " ", "...", "…", "#", "- ", "• ", "{", "lorem ipsum", "javascript", ".", "!", "?",
     "'s", "n't", "http://a.example/x", "a@b.example", "8.8.8.8", "。", "ที่", "東京", "[1]", ":)", "\u2028"]
)  # fmt: skip
texts = st.lists(st.one_of(st.text(max_size=30), _special), max_size=40).map("".join)

RULES = [
    GopherQualityFilter(),
    GopherQualityFilter(min_doc_words=None, min_avg_word_length=None, max_avg_word_length=None),
    GopherRepetitionFilter(),
    GopherRepetitionFilter(top_n_grams=[(1, 0.5), (7, 0.1)], dup_n_grams=[(2, 0.1), (25, 0.1)]),
    C4Filter(),
    C4Filter(min_num_sentences=-1, min_words_per_line=-1, max_word_length=-1),
    FineWebQualityFilter(),
    FineWebQualityFilter(line_punct_exclude_zero=True, short_line_thr=None),
]
CHAINS = {lang: RuleChain.from_preset(load_preset(lang)) for lang in ["en", "pt", "ja", "th", "ko"]}
BLOCKLIST = UrlBlocklist(domains=["a.example"], urls=["b.example/x"])


def _valid_reason(reason: str | None) -> bool:
    if reason is None:
        return True
    rule, _, rest = reason.partition(":")
    statistic, eq, value = rest.partition("=")
    return bool(rule and statistic and eq and value)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts, st.sampled_from(LANGS))
def test_rules_never_raise(text, lang):
    stats = TextStats(text, lang)
    words = split_words(text, lang)
    assert all(w and not w.isspace() for w in words)
    for rule in RULES:
        assert _valid_reason(rule.check(text, stats))
        assert _valid_reason(rule.check(text))  # without shared stats (rule's own language)
    new_text, reason = RULES[4].apply(text, stats)
    assert (new_text is None) != (reason is None)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
def test_chains_never_raise(text):
    for chain in CHAINS.values():
        kept, reason = chain.apply(text)
        assert _valid_reason(reason)
        assert isinstance(kept, str)


@settings(max_examples=150, deadline=None)
@given(texts)
def test_pii_and_urls_never_raise(text):
    out = normalize_pii(text)
    assert normalize_pii(out) == out
    assert BLOCKLIST.check(text) is None or BLOCKLIST.check(text).startswith("url_blocklist:")
    assert _valid_reason(BLOCKLIST.check("http://" + text))
