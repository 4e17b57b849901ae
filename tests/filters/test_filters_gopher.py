"""Gopher quality and repetition rules: a passing and a failing document per statistic."""

from __future__ import annotations

import re

import pytest

from filters import GopherQualityFilter, GopherRepetitionFilter, TextStats

PROSE = (
    "The river runs through the old town and past the mill. Children play on the bridge while their "
    "parents talk about the weather. In spring the water rises, and the fishermen have to move their "
    "boats to the upper bank. Most visitors come to see the church with its painted ceiling, but many "
    "stay for the bakery that has been selling bread with the same recipe for two hundred years."
)

REASON = re.compile(r"^[a-z0-9_]+:[a-z0-9_]+=[-0-9.e+a-z]+$")


def test_prose_passes_both():
    assert GopherQualityFilter().check(PROSE) is None
    assert GopherRepetitionFilter().check(PROSE) is None


def _reason(rule, text, **kw):
    reason = rule(**kw).check(text)
    assert reason is None or REASON.match(reason), reason
    return reason


@pytest.mark.parametrize(
    ("text", "kwargs", "expected"),
    [
        ("The cat and the dog sat with me.", {}, "gopher_quality:word_count=8"),
        (PROSE, {"max_doc_words": 20}, "gopher_quality:word_count=70"),
        (" ".join(["a", "to", "of", "be", "the", "and"] * 12), {}, "gopher_quality:mean_word_length=2.167"),
        (" ".join(["extraordinarily"] * 50 + ["the", "and", "of"] * 10), {}, "gopher_quality:mean_word_length=10.38"),
        (PROSE + " #a #b #c #d #e #f #g #h #i #j #k #l", {}, "gopher_quality:hash_word_ratio=0.12"),
        (PROSE + " ..." * 10 + " …", {}, "gopher_quality:ellipsis_word_ratio=0.1264"),
        ("\n".join("- " + PROSE[i : i + 60] for i in range(0, 600, 60)), {}, "gopher_quality:bullet_line_ratio=1"),
        ("\n".join(PROSE[i : i + 60] + "..." for i in range(0, 240, 60)) + "\n" + PROSE, {}, "gopher_quality:ellipsis_line_ratio=0.8"),
        (PROSE + " 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20", {}, "gopher_quality:alpha_word_ratio=0.7292"),
        (PROSE.replace(" the ", " a ").replace(" and ", " or ").replace(" to ", " for ").replace(" with ", " by "),
         {"stop_words": ["the", "and", "to", "with"]}, "gopher_quality:stop_word_count=0"),
    ],
)  # fmt: skip
def test_gopher_quality_failures(text, kwargs, expected):
    assert _reason(GopherQualityFilter, text, **kwargs) == expected


def test_gopher_quality_thresholds_can_be_switched_off():
    short = "The cat and the dog."
    assert GopherQualityFilter(min_doc_words=None).check(short) is None
    assert GopherQualityFilter(min_doc_words=0).check(short) is None
    off = GopherQualityFilter(
        min_doc_words=None,
        max_doc_words=None,
        min_avg_word_length=None,
        max_avg_word_length=None,
        max_symbol_word_ratio=None,
        max_bullet_lines_ratio=None,
        max_ellipsis_lines_ratio=None,
        max_non_alpha_words_ratio=None,
        min_stop_words=None,
    )
    for text in ["", "#### ... ####", "- a\n- b", "12 34 56"]:
        assert off.check(text) in (None, "gopher_quality:token_count=0")


def test_gopher_quality_empty_stop_word_list_disables_the_test():
    assert GopherQualityFilter(stop_words=[]).check(PROSE.replace("the", "x").replace("and", "y")) is None


def test_gopher_quality_uses_language_stop_words():
    # Portuguese text has none of the English stop words but passes with the Portuguese list
    text = (
        "O rio passa pela cidade velha e pelo moinho. As crianças brincam na ponte enquanto os pais "
        "conversam sobre o tempo. Na primavera a água sobe, e os pescadores precisam levar os barcos "
        "para a margem mais alta. Muitos visitantes chegam para ver a igreja com o teto pintado, mas "
        "ficam pela padaria que vende pão com a mesma receita há duzentos anos."
    )
    assert GopherQualityFilter(lang="en").check(text) == "gopher_quality:stop_word_count=0"
    assert GopherQualityFilter(lang="pt").check(text) is None


def test_gopher_quality_reuses_shared_stats_and_rejects_stale_ones():
    stats = TextStats(PROSE, "en")
    assert GopherQualityFilter().check(PROSE, stats) is None
    assert "words" in vars(stats)  # computed once, cached on the shared object
    # stats of another text are not trusted
    assert GopherQualityFilter().check("too short", stats) == "gopher_quality:word_count=2"


def test_gopher_repetition_passes_unique_text():
    assert GopherRepetitionFilter().check(PROSE + "\n\n" + PROSE[::-1]) is None


@pytest.mark.parametrize(
    ("text", "kwargs", "expected"),
    [
        ("", {}, "gopher_repetition:char_count=0"),
        ("\n\n".join([PROSE[:80]] * 3 + [PROSE]), {}, "gopher_repetition:dup_para_frac=0.5"),
        ("\n\n".join([PROSE[:150]] * 2 + [PROSE]), {"dup_para_frac": 0}, "gopher_repetition:dup_para_char_frac=0.2196"),
        ("\n".join([PROSE[:40]] * 3 + [PROSE[100:200], PROSE[200:300]]), {"dup_para_frac": 0, "dup_para_char_frac": 0},
         "gopher_repetition:dup_line_frac=0.4"),
        ("\n".join([PROSE[:100]] * 2 + [PROSE[100:]]), {"dup_para_frac": 0, "dup_para_char_frac": 0, "dup_line_frac": 0},
         "gopher_repetition:dup_line_char_frac=0.2079"),
        (PROSE + " buy now" * 30, {}, "gopher_repetition:top_2_gram_char_frac=0.3393"),
        (PROSE + " cheap red shoes" * 12, {"top_n_grams": [(2, 0.5), (3, 0.18)]}, "gopher_repetition:top_3_gram_char_frac=0.3152"),
        (PROSE + " " + " ".join(PROSE.split()[:25]), {"top_n_grams": []}, "gopher_repetition:dup_5_gram_char_frac=0.2016"),
        ("hi there", {}, "gopher_repetition:top_2_gram_char_frac=1"),
    ],
)  # fmt: skip
def test_gopher_repetition_failures(text, kwargs, expected):
    assert _reason(GopherRepetitionFilter, text, **kwargs) == expected


def test_gopher_repetition_accepts_yaml_style_lists():
    rule = GopherRepetitionFilter(top_n_grams=[[2, 0.5]], dup_n_grams=[[5, 0.5]])
    assert rule.top_n_grams == ((2, 0.5),) and rule.dup_n_grams == ((5, 0.5),)
    assert rule.check(PROSE) is None


def test_gopher_repetition_is_fast_on_long_pages():
    """A long repetitive page costs milliseconds, not the ~100 ms of a string-based implementation."""
    import time

    page = "\n".join(f"{PROSE} Section {i}." for i in range(40))  # ~25k chars, repeated n-grams
    rule = GopherRepetitionFilter(dup_para_frac=0, dup_para_char_frac=0, dup_line_frac=0, dup_line_char_frac=0,
                                  top_n_grams=[(2, 1.0), (3, 1.0), (4, 1.0)],
                                  dup_n_grams=[(n, 1.0) for n in range(5, 11)])  # fmt: skip
    stats = TextStats(page, "en")
    _ = stats.words  # measure the rule, not the tokenizer
    start = time.perf_counter()
    assert rule.check(page, stats) is None
    assert time.perf_counter() - start < 0.25
