"""Presets: loading, overrides, building rules, the rule chain, and deriving thresholds."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from filters import (
    C4Filter,
    GopherQualityFilter,
    RuleChain,
    TextStats,
    available_presets,
    build_rules,
    default_preset,
    derive_preset,
    load_preset,
    merge_overrides,
    reference_statistics,
)
from filters.presets import RULE_ORDER

HERE = Path(__file__).parent
GOOD = {
    k: v.strip() for k, v in yaml.safe_load((HERE / "data" / "good_docs.yaml").read_text("utf-8")).items()
}
LANGS = ["en", "pt", "es", "de", "fr", "it", "ru", "ko", "ja", "zh", "hi", "th"]


def _docgen():
    spec = importlib.util.spec_from_file_location("filters_docgen", HERE / "docgen.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_all_languages_have_presets():
    assert set(LANGS) <= set(available_presets())


@pytest.mark.parametrize("lang", LANGS)
def test_preset_shape(lang):
    preset = load_preset(lang)
    assert preset["lang"] == lang
    for rule in RULE_ORDER:
        assert isinstance(preset[rule]["enabled"], bool)
    assert preset["c4"]["enabled"] is (lang == "en")  # FineWeb2: C4 only for English
    assert preset["gopher_quality"]["stop_words"], "every shipped language has stop words"
    for n, frac in preset["gopher_repetition"]["top_n_grams"] + preset["gopher_repetition"]["dup_n_grams"]:
        assert isinstance(n, int) and 0 < frac < 1
    rules = build_rules(preset)
    assert [r.name for r in rules] == [r for r in RULE_ORDER if preset[r]["enabled"]]
    assert all(r.lang == lang for r in rules)
    # the preset is plain data: YAML round trip gives the same rules
    assert yaml.safe_load(yaml.safe_dump(preset)) == preset


def test_english_preset_is_fineweb():
    preset = load_preset("eng_Latn")
    assert preset["c4"]["filter_no_terminal_punct"] is False
    assert preset["gopher_quality"]["stop_words"] == ["the", "be", "to", "of", "and", "that", "have", "with"]
    assert preset["gopher_repetition"]["dup_para_frac"] == 0.3
    assert preset["fineweb_quality"]["short_line_thr"] == 0.67


def test_fineweb2_values_are_loaded():
    pt = load_preset("por_Latn")
    assert pt["gopher_repetition"]["top_n_grams"] == [[2, 0.093], [3, 0.117], [4, 0.139]]
    assert pt["gopher_quality"]["max_avg_word_length"] == 13
    assert pt["fineweb_quality"]["short_line_thr"] is None
    assert pt["fineweb_quality"]["char_duplicates_ratio"] == 0.1
    # character-segmented languages count n-grams in characters
    assert load_preset("ja")["gopher_repetition"]["top_n_grams"][0][0] == 4


def test_unknown_language_and_bad_overrides(tmp_path):
    with pytest.raises(FileNotFoundError, match="available"):
        load_preset("xx-unknown")
    with pytest.raises(ValueError, match="unknown rule"):
        merge_overrides(load_preset("en"), {"gopher_qualty": {"min_doc_words": 1}})
    with pytest.raises(ValueError, match="unknown keys"):
        merge_overrides(load_preset("en"), {"gopher_quality": {"min_doc_word": 1}})
    (tmp_path / "sw.yaml").write_text("gopher_quality:\n  min_doc_words: 10\nc4:\n  enabled: false\n")
    sw = load_preset("sw-KE", preset_dir=tmp_path)
    assert sw["lang"] == "sw" and sw["gopher_quality"]["min_doc_words"] == 10
    assert sw["gopher_quality"]["stop_words"] == []  # no list for Swahili: the test is off
    (tmp_path / "bad.yaml").write_text("gopher_quality:\n  nonsense: 1\n")
    with pytest.raises(ValueError):
        load_preset("bad", preset_dir=tmp_path)


def test_overrides_do_not_mutate_the_preset():
    preset = load_preset("en")
    merged = merge_overrides(preset, {"gopher_quality": {"min_doc_words": 5}, "c4": {"enabled": False}})
    assert merged["gopher_quality"]["min_doc_words"] == 5 and preset["gopher_quality"]["min_doc_words"] == 50
    assert "c4" not in RuleChain.from_preset(merged).names


def test_chain_keeps_c4_edits_and_returns_original_text_on_rejection():
    text = GOOD["en"] + "\nPlease enable JavaScript to continue reading.\nShare"
    chain = RuleChain.from_preset(load_preset("en"))
    kept, reason = chain.apply(text)
    assert reason is None
    # C4 dropped the javascript line, the one-word line and the blank lines, as in FineWeb
    assert kept == "\n".join(line for line in GOOD["en"].splitlines() if line.strip())
    assert RuleChain.from_preset(load_preset("en"), edit_text=False).apply(text) == (text, None)
    junk = "\n".join(["Home", "Shop", "Contact"] * 20)
    assert chain.apply(junk) == (junk, "gopher_repetition:dup_line_frac=0.95")
    assert chain.check(junk) == "gopher_repetition:dup_line_frac=0.95"


def test_chain_accepts_precomputed_stats():
    chain = RuleChain([GopherQualityFilter(), C4Filter()], "en")
    stats = TextStats(GOOD["en"], "en")
    assert chain.apply(GOOD["en"], stats) == ("\n".join(x for x in GOOD["en"].splitlines() if x), None)


def test_default_preset_is_fineweb_english_defaults():
    preset = default_preset("pt")
    assert preset["gopher_quality"]["min_doc_words"] == 50
    assert preset["gopher_quality"]["stop_words"][:3] == ["de", "a", "o"]
    assert preset["c4"]["enabled"] is True


def test_derive_preset_from_reference_text():
    docgen = _docgen()
    # "good" reference documents: varied sentences of the Portuguese article, no junk features
    refs = []
    pt_chain = RuleChain.from_preset(load_preset("pt"))
    for doc in docgen.make_docs(GOOD["pt"], 120, seed=7):
        if pt_chain.check(doc) is None:
            refs.append(doc)
    assert len(refs) >= 30
    stats = reference_statistics(refs, "pt")
    assert {"mean_word_length", "alpha_word_ratio", "top_2_gram_char_frac", "list_ratio"} <= set(stats)
    derived = derive_preset(refs, "pt", quantile=0.01, n_stop_words=10)
    gq = derived["gopher_quality"]
    assert gq["min_avg_word_length"] <= min(stats["mean_word_length"]) + 1
    assert gq["max_avg_word_length"] >= 4
    assert len(gq["stop_words"]) == 10 and {"de", "a"} & set(gq["stop_words"])
    assert derived["derived"] == {"documents": len(refs), "quantile": 0.01}
    assert derived["c4"]["enabled"] is False
    # the derived preset keeps most of the reference documents it came from (each statistic
    # rejects about 1% of them; 16 statistics)
    chain = RuleChain.from_preset(derived)
    kept = sum(chain.check(d) is None for d in refs)
    assert kept >= 0.7 * len(refs)
    # and still rejects junk
    assert chain.check("\n".join(["Home", "Shop", "Contact"] * 20)) is not None
    # a derived preset is a valid preset
    assert merge_overrides(derived, {}) == derived
    with pytest.raises(ValueError):
        derive_preset(refs[:3], "pt")
    with pytest.raises(ValueError):
        derive_preset(refs, "pt", quantile=0.7)


def test_derive_preset_for_a_language_without_preset():
    docgen = _docgen()
    refs = docgen.make_docs(GOOD["en"], 60, seed=3)
    derived = derive_preset(refs, "sw", n_stop_words=5)
    assert derived["lang"] == "sw" and derived["c4"]["enabled"] is False
    assert len(derived["gopher_quality"]["stop_words"]) == 5
