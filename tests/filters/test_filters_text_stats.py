"""Segmentation and TextStats: the shared views every rule reads."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filters.text_stats import (
    TERMINAL_PUNCTUATION,
    TextStats,
    count_sentences,
    find_duplicates,
    normalize_lang,
    register_word_splitter,
    split_paragraphs,
    split_words,
    word_ngrams,
)


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        ("pt", "pt"),
        ("pt-BR", "pt"),
        ("por_Latn", "pt"),
        ("POR", "pt"),
        ("deu_Latn", "de"),
        ("jpn_Jpan", "ja"),
        ("cmn_Hani", "zh"),
        ("zh-Hant", "zh"),
        ("tha", "th"),
        ("sw", "sw"),
        (None, "xx"),
        ("", "xx"),
    ],
)
def test_normalize_lang(lang, expected):
    assert normalize_lang(lang) == expected


def test_english_words_follow_spacy_rules():
    text = "Hello, world! It's a test-case... don't (see below): U.S. e.g. Mr. Smith paid $100 for 10km."
    assert split_words(text, "en") == [
        "Hello", ",", "world", "!", "It", "'s", "a", "test", "-", "case", "...", "do", "n't",
        "(", "see", "below", "):", "U.S.", "e.g.", "Mr.", "Smith", "paid", "$", "100", "for",
        "10", "km", ".",
    ]  # fmt: skip


def test_urls_and_emails_stay_whole():
    words = split_words("Visit https://example.com/a?b=c, or mail someone@example.org.", "en")
    assert "https://example.com/a?b=c" in words
    assert "someone@example.org" in words
    assert words[-1] == "."


def test_language_specific_splitting():
    # French elision and hyphenated pronouns; Portuguese and German keep hyphenated words
    assert split_words("L'homme d'affaires, dit-il.", "fr") == [
        "L'",
        "homme",
        "d'",
        "affaires",
        ",",
        "dit",
        "-il",
        ".",
    ]
    assert split_words("disse-lhe o dia-a-dia.", "pt") == ["disse-lhe", "o", "dia-a-dia", "."]
    assert split_words("Die Straßen-Bahn kam z.B. am 3. Mai 2020.", "de") == [
        "Die", "Straßen-Bahn", "kam", "z.B.", "am", "3.", "Mai", "2020.",
    ]  # fmt: skip
    assert split_words("well-known", "en") == ["well", "-", "known"]


def test_no_space_languages_split_into_grapheme_clusters():
    assert split_words("東京は2024年に開催", "ja") == ["東", "京", "は", "2024", "年", "に", "開", "催"]
    assert split_words("「東京」。", "ja") == ["「", "東", "京", "」", "。"]
    # Thai: combining vowels and tone marks stay with their consonant
    assert split_words("ที่ดี และ", "th") == ["ที่", "ดี", "แ", "ล", "ะ"]
    assert split_words("中文ABC测试", "zh") == ["中", "文", "ABC", "测", "试"]
    # Korean is written with spaces: words are space-separated
    assert split_words("한국의 김치는 맛있다.", "ko") == ["한국의", "김치는", "맛있다", "."]


def test_whitespace_is_never_a_token():
    assert split_words(" a\tb\n\nc\xa0d \u3000 e ", "en") == ["a", "b", "c", "d", "e"]
    assert split_words("", "en") == []
    assert split_words("  \n ", "ja") == []


def test_register_word_splitter_overrides_and_restores():
    register_word_splitter("pt-BR", lambda text: text.upper().split())
    try:
        assert split_words("uma frase", "pt") == ["UMA", "FRASE"]
        assert TextStats("uma frase", "por").words == ["UMA", "FRASE"]
    finally:
        register_word_splitter("pt", None)
    assert split_words("uma frase", "pt") == ["uma", "frase"]


def test_lines_paragraphs_and_ngrams():
    text = "\na\n\n\nb\nb\r\nc\n"
    st = TextStats(text, "en")
    assert st.lines == ["", "a", "", "", "b", "b", "c"]
    assert st.line_runs == ["", "a", "b", "b\r", "c", ""]
    assert st.paragraphs == ["a", "b\nb\r\nc"]
    assert split_paragraphs("x\n\ny") == ["x", "y"]
    assert st.nonblank_lines == ["a", "b", "b\r", "c"]
    assert word_ngrams(["a", "b", "c"], 2) == [("a", "b"), ("b", "c")]
    assert word_ngrams(["a"], 2) == []
    assert find_duplicates(["x", "yy", "x", "yy", "yy"]) == (3, 5)


def test_word_statistics():
    st = TextStats("The cat, the dog... and 42 #tags!", "en")
    assert st.words == ["The", "cat", ",", "the", "dog", "...", "and", "42", "#", "tags", "!"]
    assert st.token_count == 11
    assert st.word_count == 7  # punctuation-only tokens don't count
    assert st.mean_word_length == pytest.approx((3 + 3 + 3 + 3 + 3 + 2 + 4) / 7)
    assert st.alpha_word_ratio == pytest.approx(6 / 11)
    assert st.stop_word_count(frozenset({"the", "and", "of"})) == 2  # case-sensitive, as in Gopher
    assert TextStats("", "en").mean_word_length is None
    assert TextStats("", "en").alpha_word_ratio is None


def test_stop_words_match_substrings_in_character_segmented_languages():
    st = TextStats("ภาษาไทยและวัฒนธรรมของประเทศ", "th")
    assert st.stop_word_count(frozenset({"และ", "ของ", "ที่"})) == 2


def test_ngram_statistics_on_a_known_case():
    st = TextStats("a b a b a b c", "en")
    # most frequent bigram "a b" (3x, 3 chars with its space) -> 9 chars
    assert st.top_ngram_chars(2) == 9
    # 2-grams seen before, scanning left to right and skipping past each repeat: "ab"@2, "ab"@4
    assert st.duplicate_ngram_chars(2) == 4
    assert st.top_ngram_chars(8) == 0
    assert st.duplicate_ngram_chars(8) == 0
    # no separators are counted in character-segmented languages
    assert TextStats("天天天天", "zh").top_ngram_chars(2) == 2 * 3


def test_count_sentences_follows_the_sentencizer():
    assert count_sentences("One. Two! Three? Four", "en") == 4
    assert count_sentences("Mr. Smith went to the U.S. in 2020.", "en") == 1
    assert count_sentences("Wait... what?", "en") == 1  # "..." is not a sentence end
    assert count_sentences('He said "yes." Then left.', "en") == 2
    assert count_sentences("", "en") == 0
    assert "。" in TERMINAL_PUNCTUATION and "।" in TERMINAL_PUNCTUATION and "." in TERMINAL_PUNCTUATION


def test_summary_has_cheap_columns():
    summary = TextStats("Some words here.\nAnother line.", "en").summary()
    assert summary["word_count"] == 5 and summary["line_count"] == 2 and summary["char_count"] == 30


_words = st.lists(st.sampled_from(["a", "b", "c", "dd", "e"]), max_size=60)


@settings(max_examples=150, deadline=None)
@given(_words, st.integers(min_value=1, max_value=10))
def test_ngram_statistics_match_datatrove_reference(words, n):
    """Our numpy n-gram statistics equal datatrove's string-based ones on the same words."""
    pytest.importorskip("datatrove")
    from datatrove.pipeline.filters.gopher_repetition_filter import (
        find_all_duplicate,
        find_top_duplicate,
        get_n_grams,
    )

    register_word_splitter("xx", lambda text: text.split())
    try:
        stats = TextStats(" ".join(words), None)
        grams = get_n_grams(words, n)
        assert stats.top_ngram_chars(n) == (find_top_duplicate(grams) if grams else 0)
        assert stats.duplicate_ngram_chars(n) == find_all_duplicate(words, n)
    finally:
        register_word_splitter("xx", None)
