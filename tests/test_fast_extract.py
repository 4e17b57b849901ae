"""`extract.extractor: fast`: blocks, distillation labels, the shipped model, guards, and retraining."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filters.stopwords import STOP_WORDS
from pipelines.cli import main as cli_main
from pipelines.config import ConfigError, parse_config
from pipelines.extract import ExtractStage
from pipelines.fast_extract import FastExtractor, load_model
from pipelines.fast_extract.blocks import CONCEPTS, _walk, concept_bits, page_blocks, walk_reference
from pipelines.fast_extract.chars import char_table
from pipelines.fast_extract.features import (
    block_features,
    block_features_reference,
    neighbour_context,
    neighbour_context_reference,
)
from pipelines.fast_extract.model import FEATURE_VERSION, ModelFileError
from pipelines.fast_extract.train import agreement, distill_labels, report_path
from tests.conftest import SHARED_WARC, WarcBuilder

ARTICLE = [
    "Os pescadores da vila saem antes do amanhecer, quando o mar ainda está calmo e o vento sopra de terra.",
    "Cada barco leva três homens, redes novas e gelo suficiente para guardar o peixe até a volta ao porto.",
    "Na feira de sábado, as famílias vendem sardinha, cavala e polvo a preços que mudam com a estação.",
    "Os mais velhos dizem que a pesca mudou muito nos últimos vinte anos, com menos peixe perto da costa.",
]


def news_page(paragraphs: list[str]) -> str:
    """A page with the usual boilerplate around an article: menu, breadcrumb, share links, related, footer."""
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    menu = "".join(f"<li><a href='/{w}'>{w}</a></li>" for w in ("Início", "Política", "Economia", "Esportes"))
    related = "".join(f"<li><a href='/r{k}'>Leia também: notícia relacionada número {k}</a></li>" for k in range(5))
    return (f"<!DOCTYPE html><html lang='pt'><head><title>Pesca</title></head><body>"
            f"<header class='site-header'><nav class='main-menu'><ul>{menu}</ul></nav></header>"
            f"<div class='breadcrumb'><a href='/'>Início</a> › <a href='/mar'>Mar</a></div>"
            f"<main><article class='post-content'><h1>A vida dos pescadores da vila</h1>{body}</article>"
            f"<div class='share-buttons'><a href='#'>Facebook</a> <a href='#'>Twitter</a></div>"
            f"<aside class='related-posts'><h3>Relacionadas</h3><ul>{related}</ul></aside></main>"
            f"<footer class='site-footer'><p>© 2024 Jornal da Costa. Todos os direitos reservados.</p>"
            f"<a href='/privacidade'>Política de privacidade</a></footer></body></html>")


def _extract(tmp_path, path, **extract) -> tuple[dict, list[dict], list[dict]]:
    cfg = parse_config({"extract": {"extractor": "fast", **extract}})
    out = tmp_path / "out"
    stats = ExtractStage(cfg).process_shard(str(path), str(out), "s")
    return stats, pq.read_table(out / "s.parquet").to_pylist(), pq.read_table(out / "rejected" / "s.parquet").to_pylist()


def test_blocks_follow_block_elements_and_count_link_text():
    blocks = page_blocks("<body><div class='nav'>Menu <a href=x>Home</a></div><p>One <b>two</b> three.</p>"
                         "<script>var x = 1;</script><ul><li>a</li><li>b</li></ul>tail</body>")
    assert blocks.texts == ["Menu Home", "One two three.", "a", "b", "tail"]
    assert blocks.column("link_chars")[:2].tolist() == [4, 0]
    assert blocks.bits("classes")[0] != 0 and blocks.bits("classes")[1] == 0  # "nav" on the first block only


STOPS, TABLE = char_table(sorted(STOP_WORDS))  # every class, the zh/ja stop characters included
PARITY_PAGES = [
    news_page(ARTICLE),
    "<body><div id='Main-Content' class='x'>a<p>b<a href=#>c <img>d</a>e</p>f<br>g<wbr>h</div></body>",
    "<body>" + "<div class='nav'>" * 300 + "deep" + "</div>" * 300 + "after</body>",  # past libxml2's nesting
    "<body><table><tr><td>x<td>y<tr><td>z</table><li>one<li>two</body>",  # implied end tags
    "<body><p>non\u00a0breaking\u2003spaces\u3000and\ttabs</p><a>  \u00a0 </a><p>中文，日本語。ไทย</p></body>",
    "<body><p>Ends. Mid.sentence! (Quoted.) 我的书。是的？ A | B » C / D 42 ÀÉ. Last one.</p><p>x.</p></body>",
    "<body><script>x</script>tail of script<style>s</style><svg><text>no</text></svg>kept</body>",
    "<body><p class='" + "sidebar " * 400 + "'>long class</p><frameset><frame src=x></frameset></body>",
    "<html><head><title>t</title></head></html>",  # no body
    "<body></body>after the body",
    "<p>" + "x" * 100_000 + "</p>",
    "<body><p>\udcff lone surrogate and &amp; &lt;entities&gt; &#x1F600;</p><![CDATA[c]]></body>",
    # stop words in any case: ASCII, Latin-1 (lowered in C) and Cyrillic (lowered by str.lower)
    "<body><p>DER Hund UND die Katze FÜR Ärger</p><p>ОН И ОНА в доме</p><p>The END. the end</p>"
    "<p>x</p><p>x</p><div>a<div>b</div>c</div></body>",
]


def assert_same_features(blocks) -> None:
    """The C features and context equal their numpy specifications (the context to rounding: two of
    its means are summed in another order)."""
    assert np.array_equal(block_features(blocks, STOPS), block_features_reference(blocks, STOPS))
    prob = np.random.default_rng(len(blocks.texts)).random(len(blocks.texts))
    if blocks.texts:
        np.testing.assert_allclose(neighbour_context(prob, blocks), neighbour_context_reference(prob, blocks),
                                   rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("html", PARITY_PAGES, ids=range(len(PARITY_PAGES)))
def test_the_c_walk_gives_the_reference_walks_blocks(html):
    """_walk.c and walk_reference (its Python specification) agree text for text, row for row."""
    assert _walk is not None, "the C walk is not built (pip install -e . builds it)"
    fast, reference = page_blocks(html, TABLE), page_blocks(html, TABLE, walker=walk_reference)
    assert fast.texts == reference.texts
    assert fast.rows.tolist() == reference.rows.tolist()
    assert_same_features(fast)


_TAG = st.sampled_from(["p", "div", "a", "li", "ul", "span", "script", "td", "tr", "table", "br", "img", "nav",
                        "footer", "b", "h2", "pre", "article", "svg", "frame"])
_ATTR = st.sampled_from(["", " class='post-content'", " id='main-nav'", " class='tag-x hentry'",
                         " class='COMMENT-list footer'", " class", " id=''"])
_TEXT = st.text(alphabet=st.sampled_from(list("ab .!?。中ไ\u00a0\t\n&<>;'\"") + ["\u3000", "\U0001F600"]),
                max_size=12)


@given(st.lists(st.tuples(st.booleans(), _TAG, _ATTR, _TEXT), max_size=60))
@settings(max_examples=150, deadline=None)
def test_the_c_walk_agrees_with_the_reference_on_generated_tag_soup(parts):
    html = "<body>" + "".join(f"<{tag}{attr}>{text}" if opening else f"</{tag}>{text}"
                              for opening, tag, attr, text in parts) + "</body>"
    fast, reference = page_blocks(html, TABLE), page_blocks(html, TABLE, walker=walk_reference)
    assert (fast.texts, fast.rows.tolist()) == (reference.texts, reference.rows.tolist())
    assert_same_features(fast)


@pytest.mark.shared_data
def test_the_c_walk_matches_the_reference_on_real_pages():
    from pipelines.fast_extract.train import iter_html

    paths = sorted(str(p) for p in SHARED_WARC.glob("*.warc.gz")) if SHARED_WARC.is_dir() else []
    if not paths:
        pytest.skip("../shared/data/warc is absent")
    pages = 0
    for _, html, _ in iter_html(paths):
        fast, reference = page_blocks(html, TABLE), page_blocks(html, TABLE, walker=walk_reference)
        assert (fast.texts, fast.rows.tolist()) == (reference.texts, reference.rows.tolist())
        assert_same_features(fast)
        pages += 1
    assert pages > 100


def test_concepts_read_words_and_word_pairs_and_skip_taxonomy_tokens():
    def names(value: str) -> set[str]:
        bits = concept_bits(value.encode())
        return {name for i, (name, _) in enumerate(CONCEPTS) if bits >> i & 1}

    assert {"body_text", "post", "content"} <= names("Post-Content clearfix")  # a pair, case-insensitive
    assert {"body_text", "article"} <= names("articleBody")
    assert "nav" in names("main-navigation") and "footer" in names("site_footer")
    # WordPress labels the article element with its taxonomy: those tokens say nothing about layout
    assert "tags" not in names("post-12 hentry category-news tag-election") and "tags" in names("entry-tags")
    assert names("") == set() and names("x1 y2") == set()


def test_without_the_c_walk_the_python_walk_gives_the_same_text_and_says_so(monkeypatch, caplog):
    from pipelines.fast_extract import blocks as blocks_module

    html = news_page(ARTICLE)
    expected = FastExtractor(load_model(None))(html)
    monkeypatch.setattr(blocks_module, "_walk", None)
    with caplog.at_level(logging.WARNING):
        slow = FastExtractor(load_model(None))
    assert "C block walk is not built" in caplog.text
    assert slow(html) == expected


def test_a_job_working_directory_without_build_products_still_finds_the_c_walk(tmp_path):
    """`make submit` ships the source tree (Ray leaves out what .gitignore lists, *.so included), and
    its `pipelines` shadows the installed one on the workers: the walk must come from the install."""
    import shutil
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    shutil.copytree(repo / "pipelines", tmp_path / "pipelines", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    shutil.copytree(repo / "filters", tmp_path / "filters", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    probe = ("import os, pipelines, pipelines.fast_extract.blocks as b; "
             "print(os.path.abspath(pipelines.__file__).startswith(os.getcwd()), b._walk is not None)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"], out.stdout + out.stderr


def test_short_blocks_are_labelled_only_where_the_teacher_text_has_got_to():
    blocks = page_blocks("<body><ul><li>more</li></ul><p>One two three four five.</p><p>Read more</p>"
                         "<p>more</p><p>Six seven eight nine ten.</p></body>")
    teacher = "One two three four five.\nmore\nSix seven eight nine ten."
    # the menu's "more" precedes the article: the teacher's "more" is the one after the first paragraph
    assert distill_labels(blocks, teacher).tolist() == [0.0, 1.0, 0.0, 1.0, 1.0]


def test_distillation_labels_and_agreement():
    blocks = page_blocks("<body><p>Home</p><p>The quick brown fox jumps over the lazy dog.</p>"
                         "<p>Share this on social media today please</p></body>")
    labels = distill_labels(blocks, "The quick brown fox jumps over the lazy dog.")
    assert labels.tolist() == [0.0, 1.0, 0.0]
    assert agreement("a b c", "a b c") == (1.0, 1.0, 1.0)
    assert agreement("", "") == (1.0, 1.0, 1.0)
    p, r, f = agreement("a b c d", "a b")
    assert (p, r) == (0.5, 1.0) and f == pytest.approx(2 / 3)
    assert agreement("中文字", "中文")[1] == 1.0  # characters are the tokens of scripts without spaces


def test_shipped_model_keeps_the_article_and_drops_boilerplate(tmp_path):
    path = WarcBuilder(tmp_path / "a.warc.gz").response("https://jornal.example/pesca", news_page(ARTICLE).encode()) \
        .write()
    stats, kept, _ = _extract(tmp_path, path)
    assert stats["docs_out"] == 1
    text = kept[0]["text"]
    for paragraph in ARTICLE:
        assert paragraph in text
    for boilerplate in ("Leia também", "Facebook", "direitos reservados", "Política de privacidade"):
        assert boilerplate not in text


def test_hostile_pages_get_a_reason_never_a_crash(tmp_path):
    pages = {
        "https://h/no-blocks": b"<html><head><title>t</title></head><body><img src=a.png><script>x()</script></body></html>",
        "https://h/frames": b"<html><frameset cols='50%,50%'><frame src='a.html'><frame src='b.html'></frameset></html>",
        "https://h/one-line": b"<html><body><p>" + b"word " * 200_000 + b"</p></body></html>",
        "https://h/broken": b"<html><body><div><p>Broken <b>markup <i>never closed <table><td>cell</p></div></span>",
        "https://h/latin1": news_page(ARTICLE).encode("latin-1", "replace"),
        "https://h/binary-ish": b"<html><body>\x00\x01\x02\xff\xfe<p>\x80\x81 text</p></body></html>",
        "https://h/deep": b"<html><body>" + b"<div>" * 5000 + b"x" + b"</div>" * 5000 + b"</body></html>",
        "https://h/empty-body": b"<html><body></body></html>",
    }
    builder = WarcBuilder(tmp_path / "h.warc.gz")
    for url, payload in pages.items():
        builder.response(url, payload, content_type="text/html; charset=utf-8" if "latin1" not in url else
                         "text/html; charset=iso-8859-1")
    stats, kept, rejected = _extract(tmp_path, builder.write())
    assert stats["docs_in"] == len(pages) == len(kept) + len(rejected)
    reasons = {r["url"]: r["reject_reason"] for r in rejected}
    assert reasons["https://h/no-blocks"] == "empty_extraction"
    assert reasons["https://h/frames"] == "empty_extraction"
    assert reasons["https://h/empty-body"] == "empty_extraction"
    assert reasons["https://h/deep"] == "html_too_deep:depth>1000"
    texts = {r["url"]: r["text"] for r in kept}
    assert "pescadores" in texts["https://h/latin1"]
    assert all(not reason.startswith("extract_error") for reason in reasons.values())


def test_time_limit_applies_to_the_fast_extractor(tmp_path):
    path = WarcBuilder(tmp_path / "slow.warc.gz").response("https://h/big", news_page(ARTICLE * 3000).encode()).write()
    stats, _, rejected = _extract(tmp_path, path, record_timeout_s=0.001)
    assert stats["docs_rejected"] == 1 and rejected[0]["reject_reason"] == "extract_timeout"


def test_missing_or_incompatible_model_is_a_config_error(tmp_path, capsys):
    missing = tmp_path / "nope.json"
    with pytest.raises(ConfigError, match=r"fast_model.*nope\.json does not exist"):
        parse_config({"extract": {"extractor": "fast", "fast_model": str(missing)}})
    old = json.loads(load_model_text())
    old["feature_version"] = FEATURE_VERSION + 1
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps(old))
    with pytest.raises(ModelFileError, match=rf"stale\.json has feature_version {FEATURE_VERSION + 1}"):
        load_model(stale)
    config = tmp_path / "c.yaml"
    config.write_text(f"name: t\noutput: {tmp_path / 'run'}\nextract:\n  extractor: fast\n  fast_model: {stale}\n")
    warc = WarcBuilder(tmp_path / "a.warc.gz").response("https://a/", news_page(ARTICLE).encode()).write()
    assert cli_main(["extract", "--config", str(config), "--input", str(warc)]) == 2
    err = capsys.readouterr().err
    assert "stale.json" in err and f"feature_version {FEATURE_VERSION + 1}" in err


def load_model_text() -> str:
    from pipelines.fast_extract.model import DEFAULT_MODEL

    return DEFAULT_MODEL.read_text()


def test_train_extractor_command_writes_a_loadable_model_and_report(tmp_path, sample_dir, capsys):
    out = tmp_path / "model.json"
    rc = cli_main(["train-extractor", "--input", str(sample_dir), "--output", str(out), "--lang", "pt", "en"])
    assert rc == 0
    model = load_model(out)
    assert model.stopword_langs == ["pt", "en"] and 0 < model.threshold < 1
    report = json.loads(Path(report_path(str(out))).read_text())
    held = report["agreement_held_out"]["all"]
    assert report["held_out_pages"] == held["pages"] > 0 and report["train_pages"] > held["pages"]
    assert held["f1"] > 0.9  # synthetic articles: the teacher's choices are easy to learn
    text = FastExtractor(model)(news_page(ARTICLE))
    assert ARTICLE[0] in text
    assert cli_main(["train-extractor", "--input", str(sample_dir), "--output", str(out), "--lang", "xx"]) == 2
    assert "--lang: no stop words for xx" in capsys.readouterr().err
