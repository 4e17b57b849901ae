"""C4 (a filter that also edits) and FineWeb quality: passing and failing documents per statistic."""

from __future__ import annotations

import pytest

from filters import C4Filter, FineWebQualityFilter, TextStats

SENTENCES = [
    "The museum opened its doors in 1902 after years of planning.",
    "Its first director collected fossils from every corner of the region.",
    "Today the halls hold more than a million specimens.",
    "School groups visit every weekday during the spring term.",
    "A new wing for marine animals will open next year.",
    "Volunteers help to clean and label the older collections.",
]
ARTICLE = "\n".join(SENTENCES)


# ---------------------------------------------------------------------------------------- C4


def test_c4_keeps_a_clean_article_unchanged():
    assert C4Filter().apply(ARTICLE) == (ARTICLE, None)
    assert C4Filter().check(ARTICLE) is None


def test_c4_removes_bad_lines_and_keeps_the_rest():
    text = "\n".join(
        [
            "Menu",  # too few words
            SENTENCES[0],
            "Please enable JavaScript to use this site.",  # javascript
            SENTENCES[1] + "[1]",  # citation mark removed, line kept
            "This site uses cookies to improve your experience.",  # policy
            "  " + SENTENCES[2] + "  ",  # stripped
            "No terminal punctuation here at all",  # no end punctuation
            SENTENCES[3],
            "Waiting for the results...",  # ellipsis is not an end
            "word " + "x" * 1001 + ".",  # a word over 1000 characters
            SENTENCES[4],
        ]
    )
    new_text, reason = C4Filter().apply(text)
    assert reason is None
    assert new_text == "\n".join([SENTENCES[0], SENTENCES[1], SENTENCES[2], SENTENCES[3], SENTENCES[4]])


@pytest.mark.parametrize(
    ("text", "kwargs", "expected"),
    [
        (ARTICLE + "\nLorem ipsum dolor sit amet, consectetur.", {}, "c4:lorem_ipsum=1"),
        (ARTICLE + "\nThe code is function() { return 1; }.", {}, "c4:curly_bracket=1"),
        ("\n".join(SENTENCES[:4]), {}, "c4:sentence_count=4"),
        (
            "One short. Two short. Three.\nFour here. Five here.",
            {"min_num_sentences": 6},
            "c4:sentence_count=5",
        ),
        ("no punctuation in this line\n" * 6, {}, "c4:sentence_count=0"),
    ],
)
def test_c4_document_rejections(text, kwargs, expected):
    new_text, reason = C4Filter(**kwargs).apply(text)
    assert (new_text, reason) == (None, expected)
    assert C4Filter(**kwargs).check(text) == expected


def test_c4_every_sub_rule_has_a_switch():
    text = "\n".join(
        [
            "Lorem ipsum dolor sit amet here.",
            "A line with { a bracket }.",
            "JavaScript is required for this page.",
            "Read our privacy policy today.",
            "Short one.",
            "no terminal punctuation here",
            "x" * 1200,
        ]
    )
    everything_off = C4Filter(
        remove_citations=False,
        filter_no_terminal_punct=False,
        min_num_sentences=-1,
        min_words_per_line=-1,
        max_word_length=-1,
        filter_lorem_ipsum=False,
        filter_javascript=False,
        filter_curly_bracket=False,
        filter_policy=False,
    )
    assert everything_off.apply(text) == (text, None)
    assert C4Filter(min_num_sentences=None, min_words_per_line=None, max_word_length=None).check(text) == (
        "c4:lorem_ipsum=1"
    )


def test_c4_fineweb_setting_keeps_lines_without_final_punctuation():
    text = ARTICLE + "\nA heading without a period in it"
    assert C4Filter(filter_no_terminal_punct=False).apply(text) == (text, None)
    assert C4Filter().apply(text) == (ARTICLE, None)


def test_c4_uses_shared_stats():
    stats = TextStats(ARTICLE, "en")
    assert C4Filter().apply(ARTICLE, stats) == (ARTICLE, None)


# ----------------------------------------------------------------------------- FineWeb quality


def test_fineweb_passes_an_article():
    assert FineWebQualityFilter().check(ARTICLE) is None


@pytest.mark.parametrize(
    ("text", "kwargs", "expected"),
    [
        ("", {}, "fineweb_quality:nonblank_line_count=0"),
        (" \n\t\n", {}, "fineweb_quality:nonblank_line_count=0"),
        ("\n".join(s.rstrip(".") for s in SENTENCES * 2) + "\nOne.", {}, "fineweb_quality:line_punct_ratio=0.07692"),
        ("\n".join(["Home", "Shop", "About us", "Contact"] + SENTENCES[:1]), {}, "fineweb_quality:short_line_ratio=0.8"),
        (ARTICLE + "\n" + SENTENCES[0], {}, "fineweb_quality:char_dup_ratio=0.1485"),
        ("\n".join(f"Entry{i}." for i in range(12)), {"short_line_thr": None}, "fineweb_quality:list_ratio=0.4583"),
    ],
)  # fmt: skip
def test_fineweb_failures(text, kwargs, expected):
    assert FineWebQualityFilter(**kwargs).check(text) == expected


def test_fineweb_line_punct_exclude_zero_and_stop_chars():
    text = "\n".join(s.rstrip(".") + " and more words here" for s in SENTENCES)
    assert FineWebQualityFilter().check(text) == "fineweb_quality:line_punct_ratio=0"
    assert FineWebQualityFilter(line_punct_exclude_zero=True).check(text) is None
    # Thai-style: no sentence punctuation at all, threshold 0 never rejects
    assert FineWebQualityFilter(line_punct_thr=0.0).check(text) is None
    # custom stop characters
    semicolons = "\n".join(s.rstrip(".") + ";" for s in SENTENCES)
    assert FineWebQualityFilter(stop_chars=";").check(semicolons) is None
    assert FineWebQualityFilter().check(semicolons) == "fineweb_quality:line_punct_ratio=0"


def test_fineweb_disabled_statistics():
    text = "\n".join(["Home", "Shop", "Home", "Shop"])
    rule = FineWebQualityFilter(
        line_punct_thr=None, short_line_thr=None, char_duplicates_ratio=None, new_line_ratio=None
    )
    assert rule.check(text) is None
