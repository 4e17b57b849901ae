"""Per-language behaviour: every preset keeps a good article and rejects junk in its own script;
closer checks for Portuguese, German, Japanese and Thai."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from filters import RuleChain, TextStats, get_stop_words, load_preset, split_words

GOOD = {
    k: v.strip()
    for k, v in yaml.safe_load((Path(__file__).parent / "data" / "good_docs.yaml").read_text("utf-8")).items()
}
LANGS = sorted(GOOD)


def chain(lang: str) -> RuleChain:
    return RuleChain.from_preset(load_preset(lang))


@pytest.mark.parametrize("lang", LANGS)
def test_good_article_is_kept(lang):
    kept, reason = chain(lang).apply(GOOD[lang])
    assert reason is None
    assert kept.split() == [w for w in GOOD[lang].split()] or lang == "en"  # only English edits (C4)


@pytest.mark.parametrize("lang", LANGS)
def test_native_junk_is_rejected(lang):
    text = GOOD[lang]
    words = split_words(text, lang)
    sep = "" if TextStats("", lang).no_space else " "
    menu = "\n".join(sep.join(words[i : i + 2]) for i in range(0, 60, 2))  # a menu of 2-word items
    spam = sep.join(words[:6]) * 40  # one phrase over and over
    salad = "\n".join(sep.join(sorted(words[i : i + 40])) for i in range(0, 200, 40))  # no sentence left
    truncated = sep.join(words[:12])  # too short
    c = chain(lang)
    for junk in (menu, spam, truncated):
        assert c.check(junk) is not None, (lang, junk[:80])
    # word salad of real words: not necessarily junk to every rule, but never crashes
    c.check(salad)


def test_portuguese_details():
    text = GOOD["pt"]
    stats = TextStats(text, "pt")
    assert "não" not in get_stop_words("en")
    assert stats.stop_word_count(frozenset(get_stop_words("pt"))) >= 10
    assert 4 < stats.mean_word_length < 6
    assert split_words("Custa R$ 10,50, disse-lhe o Sr. Silva.", "pt") == [
        "Custa", "R$", "10,50", ",", "disse-lhe", "o", "Sr.", "Silva", ".",
    ]  # fmt: skip
    # the English preset would reject Portuguese prose for lack of English stop words
    assert chain("en").check(text) == "gopher_quality:stop_word_count=0"
    assert chain("pt").check(text) is None


def test_german_details():
    text = GOOD["de"]
    stats = TextStats(text, "de")
    assert stats.stop_word_count(frozenset(get_stop_words("de"))) >= 10
    assert "Nürnberg" in stats.words and "Schienennetz" in stats.words
    # long compounds are normal in German: the preset allows longer words than English
    compound = " ".join(
        ["Die", "Donaudampfschifffahrtsgesellschaft", "und", "der", "Kapitän", "sind", "mit", "dem",
         "Bundesverkehrsministerium", "in", "der", "Hauptstadt"] * 6
    ) + "."  # fmt: skip
    assert load_preset("de")["gopher_quality"]["max_avg_word_length"] == 15
    assert load_preset("en")["gopher_quality"]["max_avg_word_length"] == 10
    assert TextStats(compound, "de").mean_word_length > TextStats(GOOD["en"], "en").mean_word_length + 3


def test_japanese_details():
    text = GOOD["ja"]
    stats = TextStats(text, "ja")
    assert stats.words[:5] == ["日", "本", "の", "鉄", "道"]
    assert stats.mean_word_length == pytest.approx(1.0, abs=0.1)
    assert stats.stop_word_count(frozenset(get_stop_words("ja"))) >= 10
    # a katakana product list without particles: too few stop words / too short
    listing = "\n".join(["スマートフォン", "タブレット", "ノートパソコン", "カメラ", "イヤホン"] * 3)
    assert chain("ja").check(listing) is not None
    # repeated sentence: the character n-gram repetition test catches it
    spam = "今すぐ登録して無料でポイントをもらおう！" * 20
    assert chain("ja").check(spam).startswith("gopher_repetition:")


def test_thai_details():
    text = GOOD["th"]
    stats = TextStats(text, "th")
    # grapheme clusters: a consonant keeps its vowel and tone marks
    assert "ที่" in stats.words and "ด้" in stats.words  # ได้ = ไ + ด้
    assert stats.stop_word_count(frozenset(get_stop_words("th"))) >= 10
    # Thai does not end sentences with punctuation: FineWeb2's line punctuation test is off
    assert load_preset("th")["fineweb_quality"]["line_punct_thr"] == 0.0
    assert chain("th").check(text) is None
    spam = "โปรโมชั่นพิเศษ ลดราคา " * 60
    assert chain("th").check(spam).startswith("gopher_repetition:")
    # English text in a Thai pipeline: its words are far longer than Thai character clusters
    assert chain("th").check(GOOD["en"]) == "gopher_quality:mean_word_length=5.047"
