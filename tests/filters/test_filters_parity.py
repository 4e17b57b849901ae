"""Parity with datatrove's reference filters (the code FineWeb and FineWeb2 ran).

On the same documents and thresholds, ours and datatrove's GopherQuality, GopherRepetition,
C4Quality and FineWebQuality must make the same keep/reject decision, fail on the same statistic,
and (C4) leave the same text. Documents: a varied deterministic generated set (near-threshold
cases included) in English, Portuguese and German, plus hand-written edge cases.

Two levels: with our own segmentation (the real configuration: tokenizer and rules together), and
with datatrove's spaCy tokenizer plugged in (rule logic alone, on identical words).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

pytest.importorskip("datatrove")
pytest.importorskip("spacy")

from datatrove.data import Document  # noqa: E402
from datatrove.pipeline.filters import (  # noqa: E402
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)

from filters import TextStats, build_rules, load_preset, register_word_splitter  # noqa: E402

HERE = Path(__file__).parent
GOOD = {
    k: v.strip() for k, v in yaml.safe_load((HERE / "data" / "good_docs.yaml").read_text("utf-8")).items()
}
_spec = importlib.util.spec_from_file_location("filters_docgen", HERE / "docgen.py")
docgen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(docgen)

DATATROVE = {
    "gopher_quality": GopherQualityFilter,
    "gopher_repetition": GopherRepetitionFilter,
    "c4": C4QualityFilter,
    "fineweb_quality": FineWebQualityFilter,
}
# datatrove reason -> our statistic name
_REASONS = {
    "gopher_short_doc": "word_count",
    "gopher_long_doc": "word_count",
    "gopher_below_avg_threshold": "mean_word_length",
    "gopher_above_avg_threshold": "mean_word_length",
    "gopher_too_many_hashes": "hash_word_ratio",
    "gopher_too_many_ellipsis": "ellipsis_word_ratio",
    "gopher_too_many_bullets": "bullet_line_ratio",
    "gopher_too_many_end_ellipsis": "ellipsis_line_ratio",
    "gopher_below_alpha_threshold": "alpha_word_ratio",
    "gopher_enough_stop_words": "stop_word_count",
    "too_few_sentences": "sentence_count",
}
_EMPTY = {"gopher_repetition": "char_count", "fineweb_quality": "nonblank_line_count"}


def _their_statistic(rule: str, reason: str) -> str:
    if reason == "empty":
        return _EMPTY[rule]
    if m := re.fullmatch(r"top_(\d+)_gram", reason):
        return f"top_{m[1]}_gram_char_frac"
    if m := re.fullmatch(r"duplicated_(\d+)_n_grams", reason):
        return f"dup_{m[1]}_gram_char_frac"
    return _REASONS.get(reason, reason)


def _pairs(lang: str):
    """(name, datatrove filter, our rule) with the thresholds of our preset for `lang`, C4 on."""
    preset = load_preset(lang)
    preset["c4"]["enabled"] = True
    ours = {r.name: r for r in build_rules(preset)}
    out = []
    for name, cls in DATATROVE.items():
        kwargs = {k: v for k, v in preset[name].items() if k != "enabled"}
        if name == "fineweb_quality" and kwargs["short_line_thr"] is None:
            kwargs["short_line_thr"] = 999  # FineWeb2's way of switching it off
        if name == "fineweb_quality" and kwargs["stop_chars"] is None:
            kwargs.pop("stop_chars")
        if name == "c4":
            kwargs = {k: (-1 if v is None else v) for k, v in kwargs.items()}
        out.append((name, cls(**kwargs, language=lang), ours[name]))
    return out


def _compare(lang: str, docs: list[str]) -> list[str]:
    problems = []
    pairs = _pairs(lang)
    for i, text in enumerate(docs):
        stats = TextStats(text, lang)
        for name, theirs, ours in pairs:
            doc = Document(text=text, id=str(i))
            result = theirs.filter(doc)
            keep, their_reason = (result, None) if isinstance(result, bool) else result
            if name == "c4":
                new_text, reason = ours.apply(text, stats)
                if keep and new_text != doc.text:
                    problems.append(f"doc {i} {name}: edited text differs")
            else:
                reason = ours.check(text, stats)
            if keep != (reason is None):
                problems.append(
                    f"doc {i} {name}: datatrove keep={keep} ({their_reason}), ours {reason}: {text[:120]!r}"
                )
            elif not keep:
                ours_stat = reason.split(":", 1)[1].split("=", 1)[0]
                if ours_stat != _their_statistic(name, their_reason):
                    problems.append(f"doc {i} {name}: datatrove {their_reason}, ours {reason}")
    return problems


def _edge_cases() -> list[str]:
    prose = GOOD["en"]
    words = prose.split()
    fifty = " ".join(["the", "cat", "and", "the", "dog"] * 10)
    return [
        "",
        " \n\t ",
        "!!! ??? ... ---",
        fifty,  # exactly 50 words
        fifty.rsplit(" ", 1)[0],  # 49 words
        " ".join(["abc", "the", "and"] * 20),  # mean word length exactly 3
        " ".join(["abcdefghij"] * 40 + ["the", "and"] * 0),  # mean exactly 10, no stop words
        " ".join(words[:90]) + " " + " ".join(["#x"] * 10),  # hash ratio near 0.1
        "\n".join(["- " + " ".join(words[i : i + 8]) for i in range(0, 72, 8)] + [" ".join(words[72:90])]),
        prose.replace("\n\n", "\r\n"),
        prose.replace("\n\n", "\u2028"),
        prose
        + "\nPlease enable JavaScript.\nWe use cookies. See our privacy policy for details.\n[1] [edit]",
        prose + "\nLorem ipsum dolor sit amet, consectetur.",
        prose + "\nconst x = {a: 1};",
        prose + "\n" + "y" * 1001 + " end.",
        prose + "\nCafé naïve façade — “quotes” ‘single’ «guillemets» 東京 😀 ©2024 ½ №5.",
        "\n".join([prose] * 3),
        prose * 8,  # a long page
        "\n\n".join(words),  # one word per paragraph
        " ".join(f"word{i}" for i in range(300)),
    ]


def test_parity_english_generated_and_edge_cases():
    docs = docgen.make_docs(GOOD["en"], 100, seed=11) + _edge_cases()
    assert _compare("en", docs) == []


@pytest.mark.parametrize("lang", ["pt", "de"])
def test_parity_other_languages_with_fineweb2_thresholds(lang):
    docs = docgen.make_docs(GOOD[lang], 40, seed=5) + [GOOD[lang], GOOD[lang] * 3]
    assert _compare(lang, docs) == []


def test_parity_of_rule_logic_on_identical_words():
    """With datatrove's own tokenizer plugged in, only the rule logic differs: it must not."""
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    register_word_splitter("en", load_word_tokenizer("en").word_tokenize)
    try:
        docs = docgen.make_docs(GOOD["en"], 30, seed=23) + _edge_cases()
        assert _compare("en", docs) == []
    finally:
        register_word_splitter("en", None)


def test_generated_set_is_varied():
    """The generated documents exercise every rule in both directions (else parity proves little)."""
    docs = docgen.make_docs(GOOD["en"], 140, seed=11)
    rules = build_rules({**load_preset("en")})
    for rule in rules:
        reasons = [rule.check(d) for d in docs]
        rejected = sum(r is not None for r in reasons)
        assert 0.05 * len(docs) < rejected < 0.9 * len(docs), (rule.name, rejected)
    stats = {r.split(":")[1].split("=")[0] for rule in rules for d in docs if (r := rule.check(d))}
    assert len(stats) >= 10, stats
