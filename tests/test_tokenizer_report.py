"""`cptcorpus tokenizer-report`: fertility per language and bucket, corpus totals, the report section."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench.bench_extend_vocab import train_bpe
from filters.text_stats import TextStats
from pipelines import tokenizer_report as tr
from pipelines.cli import main
from pipelines.report import write_report
from tests._tokenizers import TokenizerCorpus, build


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> TokenizerCorpus:
    return build(str(tmp_path_factory.mktemp("tokreport")))


@pytest.fixture(scope="module")
def pt_tok(corpus) -> str:
    """A second tokenizer, trained on Portuguese pages: it must look better on Portuguese than the base."""
    root = os.path.dirname(corpus.run_dir)
    return train_bpe(corpus.texts("pt"), 2000, os.path.join(root, "pt", "tokenizer.json"))


@pytest.fixture(scope="module")
def report(corpus, pt_tok) -> dict:
    rc = main(["tokenizer-report", "--tokenizer", corpus.base, pt_tok, "--manifest", corpus.manifest,
               "--sample-docs", "100000"])
    assert rc == 0
    return json.loads(Path(tr.default_output(corpus.manifest)).read_text(encoding="utf-8"))


def _exact_tokens(path: str, texts: list[str]) -> int:
    return int(tr.count_tokens(path, texts).sum())


def test_groups_and_side_by_side(corpus, report):
    names = list(report["tokenizers"])
    assert names == ["base/tokenizer.json", "pt/tokenizer.json"]
    assert report["sample"]["docs"] == len(corpus.rows)
    assert set(report["by_language"]) == {r["lang"] for r in corpus.rows}
    assert set(report["by_quality_bucket"]) == {"high", "low"}
    pt, en = report["by_language"]["pt"]["tokenizers"], report["by_language"]["en"]["tokenizers"]
    base, ptt = names
    assert pt[base]["tokens_per_word"] > 1.5 * en[base]["tokens_per_word"]  # the English base on Portuguese
    assert pt[ptt]["tokens_per_word"] < pt[base]["tokens_per_word"]
    assert pt[base]["share_words_3plus_pieces"] > pt[ptt]["share_words_3plus_pieces"]


def test_figures_match_a_direct_count(corpus, report):
    g = report["by_language"]["pt"]
    texts = corpus.texts("pt")
    name = "base/tokenizer.json"
    tokens = _exact_tokens(corpus.base, texts)
    words = sum(len(TextStats(t, "pt").words) for t in texts)
    chars = sum(len(t) for t in texts)
    t = g["tokenizers"][name]
    assert (g["docs"], g["words"], g["chars"], t["tokens"]) == (len(texts), words, chars, tokens)
    assert t["tokens_per_word"] == pytest.approx(tokens / words)
    assert t["tokens_per_100_chars"] == pytest.approx(100 * tokens / chars)
    assert t["bytes_per_token"] == pytest.approx(sum(len(x.encode()) for x in texts) / tokens)
    worst = t["most_fragmented_frequent_words"]
    assert [w["pieces"] for w in worst] == sorted((w["pieces"] for w in worst), reverse=True)
    tok = tr.load_tokenizer(corpus.base)
    for w in worst:
        assert len(tok.encode(" " + w["word"], add_special_tokens=False).ids) == w["pieces"] >= 3


def test_thai_words_are_character_clusters(corpus, report):
    texts = corpus.texts("th")
    assert report["by_language"]["th"]["words"] == sum(len(TextStats(t, "th").words) for t in texts)
    assert report["by_language"]["th"]["words"] > 3 * sum(len(t.split()) for t in texts)


def test_corpus_total_is_extrapolated_by_bytes(corpus, report, pt_tok):
    c = report["corpus"]
    assert "by bytes" in c["method"] and c["rows"] == len(corpus.rows)
    exact = _exact_tokens(pt_tok, corpus.texts())
    assert c["tokenizers"]["pt/tokenizer.json"]["estimated_tokens"] == pytest.approx(exact, rel=0.01)


def test_sample_is_seeded_and_estimates_from_a_part(corpus, pt_tok, tmp_path):
    a = tr.tokenizer_report([pt_tok], corpus.manifest, sample_docs=80, seed=3)
    b = tr.tokenizer_report([pt_tok], corpus.manifest, sample_docs=80, seed=3)
    c = tr.tokenizer_report([pt_tok], corpus.manifest, sample_docs=80, seed=4)
    assert a == b and a["overall"] != c["overall"] and a["sample"]["docs"] == 80
    exact = _exact_tokens(pt_tok, corpus.texts())
    assert a["corpus"]["tokenizers"]["pt/tokenizer.json"]["estimated_tokens"] == pytest.approx(exact, rel=0.2)


def test_no_quality_bucket_column(tmp_path):
    small = build(str(tmp_path), with_bucket=False)
    rep = tr.tokenizer_report([small.base], small.manifest, sample_docs=30)
    assert rep["by_quality_bucket"] is None and rep["by_language"]


def test_html_report_section(corpus, report):
    page = Path(write_report(corpus.run_dir)).read_text(encoding="utf-8")
    section = page.split("<h2>Tokenizer fit</h2>", 1)[1].split("</section>", 1)[0]
    assert "base/tokenizer.json" in section and "pt/tokenizer.json" in section and "estimated tokens" in section


def test_bad_input_exits_2(corpus, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    cases = [([str(tmp_path / "missing.json")], corpus.manifest, "tokenizer file not found"),
             ([str(bad)], corpus.manifest, "not a loadable tokenizer.json"),
             ([corpus.base], str(tmp_path / "none.json"), "manifest not found")]
    for toks, manifest, message in cases:
        assert main(["tokenizer-report", "--tokenizer", *toks, "--manifest", manifest]) == 2
        assert message in capsys.readouterr().err
