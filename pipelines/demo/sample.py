"""The bundled demo sample: small Common Crawl-like WARC files, generated deterministically.

``write_sample(out_dir)`` writes ``sample-0000.warc.gz`` ... (gzip-per-record WARC/1.1, written
with warcio) that hold about 240 captures: clean article pages in Portuguese, English, Spanish and
German (and a few French and Italian ones for language ID to drop), near-duplicate clusters and
exact duplicates, spam and low-quality pages, and non-HTML, error and badly encoded responses.
Every capture is a ``request`` + ``response`` + ``metadata`` record, as in Common Crawl, and each
file starts with a ``warcinfo`` record.

The output is byte-identical across runs for the same ``(n_files, seed)``: WARC dates come from a
seeded RNG inside February 2024, record ids are ``uuid5`` of the seed and position, the gzip
members carry mtime 0 (zlib's gzip header), and the writer refuses to fall back to warcio's
wall-clock dates or random ids.

``sample_manifest()`` describes every capture (URL, kind, language, expected article text, ...)
without writing anything; ``KIND_COUNTS`` and ``KIND_GROUPS`` say which kinds exist and how many.
The text itself comes from :mod:`pipelines.demo.pools` (original sentences, invented sites).

Run it as ``python -m pipelines.demo.sample OUT_DIR [--files N] [--seed S]``.
"""

from __future__ import annotations

import argparse
import gzip
import html
import io
import os
import random
import re
import struct
import unicodedata
import uuid
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from pipelines.demo import pools as st

__all__ = [
    "KIND_COUNTS",
    "KIND_GROUPS",
    "LANG_KINDS",
    "SampleRecord",
    "main",
    "sample_kind_counts",
    "sample_manifest",
    "write_sample",
]

# ---------------------------------------------------------------------------------------------
# What the sample holds
# ---------------------------------------------------------------------------------------------

KIND_COUNTS: dict[str, int] = {
    # clean article pages (pt/en/es/de, plus a few fr/it)
    "article": 170,
    # duplicates: near-duplicate clusters of 2-4 pages, and exact copies on two URLs
    "near_dup": 14,
    "exact_dup": 4,
    # spam and low quality
    "keyword_list": 3,
    "link_farm": 3,
    "lorem_ipsum": 2,
    "too_short": 4,
    "bullet_list": 3,
    "repeated_lines": 3,
    "js_noise": 3,
    "toxic": 4,
    # non-HTML, HTTP errors and encoding traps
    "image_png": 3,
    "pdf": 2,
    "http_404": 3,
    "redirect_301": 2,
    "http_500": 1,
    "robots_txt": 2,
    "no_content_type": 1,
    "charset_mislabel": 2,
    "meta_charset": 2,
    "binary_html": 1,
    "gzip_encoded": 2,
}
"""Number of captures (= response records) of each kind; the same for every seed."""

KIND_GROUPS: dict[str, str] = {
    "article": "clean",
    "near_dup": "duplicate",
    "exact_dup": "duplicate",
    **{k: "spam" for k in ("keyword_list", "link_farm", "lorem_ipsum", "too_short", "bullet_list",
                           "repeated_lines", "js_noise", "toxic")},
    **{k: "special" for k in ("image_png", "pdf", "http_404", "redirect_301", "http_500",
                              "robots_txt", "no_content_type", "charset_mislabel", "meta_charset",
                              "binary_html", "gzip_encoded")},
}
"""Kind -> group: ``clean``, ``duplicate``, ``spam`` or ``special`` (non-HTML, errors, encodings)."""

LANG_KINDS: tuple[str, ...] = ("article", "near_dup", "exact_dup")
"""Kinds whose pages are plain UTF-8 HTML articles in a known language (language-ID ground truth)."""

ARTICLES_PER_LANG: dict[str, int] = {"pt": 48, "en": 42, "es": 36, "de": 36, "fr": 4, "it": 4}
"""How the ``article`` kind splits across languages."""

_NEAR_DUP_CLUSTERS: tuple[tuple[str, int], ...] = (("pt", 4), ("en", 3), ("es", 3), ("de", 2), ("pt", 2))
_EXACT_DUP_PAIRS: tuple[str, ...] = ("en", "pt")

_CRAWL_START = datetime(2024, 2, 18, tzinfo=UTC)
_CRAWL_SECONDS = 12 * 86400 - 1  # 2024-02-18T00:00:00Z .. 2024-02-29T23:59:59Z
_SAMPLE_NS = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/cptcorpus/sample")
_USER_AGENT = "cptcorpus-sample/1.0 (synthetic demo data; not a real crawl)"
_CANDIDATES = 100  # sentence selections tried per page (the least similar one is kept)


@dataclass(frozen=True)
class SampleRecord:
    """What one capture (request + response + metadata records) of the sample is.

    ``cluster`` groups near and exact duplicates (``near-N``, ``exact-N``); ``variant`` says how a
    member differs from its cluster's ``original`` (``redated``: other date and footer, same text;
    ``syndicated``: same text on another site; ``edited``: one sentence changed;
    ``edited_syndicated``: both; ``copy``: the same bytes on another URL).
    ``text`` is the article text a good extractor should find (paragraphs joined by newlines),
    for pages that have one; ``charset`` is the real encoding of the body bytes (which the
    headers may misstate) and ``content_encoding`` the HTTP ``Content-Encoding``, if any.
    """

    url: str
    kind: str
    status: int
    content_type: str | None
    lang: str | None = None
    topic: str | None = None
    category: str | None = None
    cluster: str | None = None
    variant: str | None = None
    title: str | None = None
    text: str | None = None
    charset: str | None = None
    content_encoding: str | None = None
    file_index: int = -1
    warc_date: str = ""
    record_id: str = ""

    @property
    def group(self) -> str:
        """The kind's group (``clean``, ``duplicate``, ``spam``, ``special``)."""
        return KIND_GROUPS[self.kind]

    @property
    def file_name(self) -> str:
        """Name of the WARC file holding this capture."""
        return _file_name(self.file_index)


@dataclass(frozen=True)
class _Capture:
    """A capture before it is placed in a file: its description plus its HTTP response."""

    record: SampleRecord
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    payload_type: str


def _file_name(index: int) -> str:
    return f"sample-{index:04d}.warc.gz"


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------


def _slug(text: str) -> str:
    """ASCII URL slug of a title."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


def _attr(text: str) -> str:
    return html.escape(text, quote=True)


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A valid, solid-colour PNG image."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    row = b"\x00" + bytes(rgb) * width
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(row * height, 9)) + chunk(b"IEND", b""))


def _pdf(title: str) -> bytes:
    """A tiny PDF document (real header and trailer, one page, one line of text)."""
    stream = f"BT /F1 18 Tf 72 720 Td ({title}) Tj ET".encode("latin-1")
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, obj in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# HTML pages
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Article:
    """An article page to render: where it is published and what it says."""

    lang: str
    topic: str
    site: int
    title: str
    paragraphs: tuple[tuple[str, ...], ...]
    published: datetime
    author: str
    related: tuple[str, ...]
    footer_note: str = ""

    @property
    def text(self) -> str:
        return "\n".join(" ".join(p) for p in self.paragraphs)


def _format_date(lang: str, when: datetime) -> str:
    loc = st.LOCALES[lang]
    return loc["date_format"].format(day=when.day, month=loc["months"][when.month - 1], year=when.year)


def _head_charset(charset_tag: str | None) -> str:
    if charset_tag is None:
        return ""
    if charset_tag.startswith("http-equiv:"):
        value = charset_tag.split(":", 1)[1]
        return f'<meta http-equiv="Content-Type" content="text/html; charset={value}">\n'
    return f'<meta charset="{charset_tag}">\n'


def _render_article(art: _Article, url: str, charset_tag: str | None = "utf-8") -> str:
    """Full HTML of an article page: cookie banner, header + nav, article, sidebar, footer."""
    loc = st.LOCALES[art.lang]
    topic = st.TOPICS[art.lang][art.topic]
    domain, site_name = topic["sites"][art.site]
    section = topic["section"]
    section_slug = _slug(section)
    author_slug = _slug(art.author)
    nav = "\n".join(f'<li><a href="/{_slug(item) if i else ""}">{_esc(item)}</a></li>'
                    for i, item in enumerate(loc["nav"]))
    related = "\n".join(f'<li><a href="/{section_slug}/{_slug(t)}/">{_esc(t)}</a></li>'
                        for t in art.related)
    paragraphs = "\n".join(f"<p>{_esc(' '.join(p))}</p>" for p in art.paragraphs)
    date_text = _format_date(art.lang, art.published)
    iso = art.published.date().isoformat()
    description = _attr(art.paragraphs[0][0])
    footer_note = f"<p class=\"footer-note\">{_esc(art.footer_note)}</p>\n" if art.footer_note else ""
    head = (
        "<!DOCTYPE html>\n"
        f'<html lang="{loc["html_lang"]}">\n<head>\n'
        f"{_head_charset(charset_tag)}"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_esc(art.title)} | {_esc(site_name)}</title>\n"
        f'<meta name="description" content="{description}">\n'
        f'<meta property="og:title" content="{_attr(art.title)}">\n'
        '<meta property="og:type" content="article">\n'
        f'<link rel="canonical" href="{_attr(url)}">\n'
        '<link rel="stylesheet" href="/assets/css/style.css">\n'
        '<script async src="/assets/js/analytics.js"></script>\n'
        "</head>\n"
    )
    cookie = (
        '<div id="cookie-notice" class="cookie-banner" role="dialog">\n'
        f"<p>{_esc(loc['cookie'])}</p>\n"
        f'<button type="button" class="accept">{_esc(loc["accept"])}</button>\n'
        f'<a href="/cookies">{_esc(loc["settings"])}</a>\n</div>\n'
    )
    footer_links = (
        f'<a href="/about">{_esc(loc["about"])}</a> | <a href="/contact">{_esc(loc["contact"])}</a> | '
        f'<a href="/privacy">{_esc(loc["privacy"])}</a> | <a href="/terms">{_esc(loc["terms"])}</a>'
    )
    copyright_line = f"&copy; {art.published.year} {_esc(site_name)}. {_esc(loc['rights'])}"
    tracking = ("<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments);}"
                "gtag('js',new Date());gtag('config','G-XXXXXXX');</script>\n")
    if art.site == 0:  # a tidy, semantic theme
        body = (
            '<body class="single-post">\n' + cookie
            + '<header class="site-header">\n'
            f'<a class="logo" href="/">{_esc(site_name)}</a>\n'
            f'<nav class="main-menu"><ul>\n{nav}\n</ul></nav>\n'
            f'<form class="search-form" action="/search" method="get"><input type="search" name="q" '
            f'placeholder="{_attr(loc["search"])}"><button type="submit">{_esc(loc["search"])}</button></form>\n'
            "</header>\n"
            f'<div class="breadcrumb"><a href="/">{_esc(loc["home"])}</a> &rsaquo; '
            f'<a href="/{section_slug}/">{_esc(section)}</a></div>\n'
            '<main class="content">\n<article class="post">\n<header class="entry-header">\n'
            f'<h1 class="entry-title">{_esc(art.title)}</h1>\n'
            f'<p class="byline">{_esc(loc["by"])} <a href="/author/{author_slug}/">{_esc(art.author)}</a> '
            f'&middot; <time datetime="{iso}">{_esc(date_text)}</time></p>\n</header>\n'
            f'<div class="entry-content">\n{paragraphs}\n</div>\n'
            f'<div class="share">{_esc(loc["share"])}: <a href="#">Facebook</a> <a href="#">X</a> '
            '<a href="#">WhatsApp</a></div>\n</article>\n'
            f'<aside class="sidebar">\n<h3>{_esc(loc["read_also"])}</h3>\n<ul>\n{related}\n</ul>\n'
            f'<div class="newsletter"><h3>Newsletter</h3><p>{_esc(loc["newsletter"])}</p>'
            f'<form><input type="email" placeholder="email@example.com"><button>{_esc(loc["subscribe"])}'
            "</button></form></div>\n</aside>\n</main>\n"
            f'<footer class="site-footer">\n<nav class="footer-links">{footer_links}</nav>\n'
            f"<p>{copyright_line}</p>\n{footer_note}</footer>\n" + tracking + "</body>\n</html>\n"
        )
    else:  # an older, div-based theme
        body = (
            '<body>\n<div id="wrapper">\n<div id="top-bar">'
            f'<span class="date">{_esc(date_text)}</span> | <a href="/login">Login</a></div>\n'
            f'<div id="logo"><a href="/"><img src="/img/logo.png" alt="{_attr(site_name)}"></a></div>\n'
            f'<div id="menu"><ul>\n{nav}\n</ul></div>\n'
            '<div id="main">\n<div class="post">\n'
            f'<h1>{_esc(art.title)}</h1>\n'
            f'<div class="post-meta">{_esc(loc["by"])} {_esc(art.author)} &middot; {_esc(section)} '
            f'&middot; <time datetime="{iso}">{_esc(date_text)}</time></div>\n'
            f'<div class="post-body">\n{paragraphs}\n</div>\n'
            f'<div class="tags">Tags: <a href="/tag/{section_slug}/">{_esc(section)}</a></div>\n'
            "</div>\n</div>\n"
            f'<div id="sidebar">\n<div class="widget"><h4>{_esc(loc["read_also"])}</h4><ul>\n{related}\n</ul></div>\n'
            f'<div class="widget"><h4>Newsletter</h4><p>{_esc(loc["newsletter"])}</p></div>\n</div>\n'
            f'<div id="footer">\n<p>{footer_links}</p>\n<p>{copyright_line}</p>\n{footer_note}</div>\n'
            "</div>\n" + cookie + tracking + "</body>\n</html>\n"
        )
    return head + body


def _render_simple(lang: str, title: str, body_html: str, head_extra: str = "") -> str:
    """A bare page (spam, error, placeholder) with a title and a body fragment."""
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{st.LOCALES[lang]["html_lang"]}">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_esc(title)}</title>\n{head_extra}</head>\n<body>\n{body_html}\n</body>\n</html>\n"
    )


# ---------------------------------------------------------------------------------------------
# Building the captures (everything but file placement, dates and record ids)
# ---------------------------------------------------------------------------------------------


class _Builder:
    """Builds every capture of the sample from one seed, deterministically."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(f"cptcorpus-sample:{seed}")
        self.used: dict[tuple[str, str], list[tuple[frozenset[int], int]]] = {}
        self.urls: set[str] = set()
        self.captures: list[_Capture] = []
        self.server: dict[str, str] = {}

    # -- text ------------------------------------------------------------------------------

    def _pick_sentences(self, lang: str, topic: str, min_words: int, max_words: int) -> list[int]:
        """Choose pool sentences (kept in pool order) unlike earlier pages of the same topic.

        Of several random candidates of ``min_words``..``max_words`` words (capped to 70% of the
        pool), keep the one whose largest word-weighted overlap with an earlier page is smallest,
        so that unrelated pages stay far below near-duplicate similarity.
        """
        pool = st.TOPICS[lang][topic]["sentences"]
        weights = [len(x.split()) for x in pool]
        cap = int(0.7 * sum(weights))
        lo, hi = min(min_words, cap), min(max_words, cap)
        earlier = self.used.setdefault((lang, topic), [])

        def overlap(a: frozenset[int], wa: int, b: tuple[frozenset[int], int]) -> float:
            inter = sum(weights[i] for i in a if i in b[0])
            return inter / (wa + b[1] - inter)

        best: list[int] = []
        best_sim = 2.0
        n = len(pool)
        for _ in range(_CANDIDATES):
            target = self.rng.randint(lo, hi)
            chosen: list[int] = []
            words = 0
            rand = self.rng.random
            for i in sorted(range(n), key=lambda _: rand()):
                chosen.append(i)
                words += weights[i]
                if words >= target and len(chosen) >= 6:
                    break
            picked = frozenset(chosen)
            sim = max((overlap(picked, words, e) for e in earlier), default=0.0)
            if sim < best_sim:
                best, best_sim = sorted(chosen), sim
        earlier.append((frozenset(best), sum(weights[i] for i in best)))
        return best

    def _paragraphs(self, sentences: list[str]) -> tuple[tuple[str, ...], ...]:
        """Split sentences into 3-8 paragraphs."""
        n = len(sentences)
        n_par = self.rng.randint(3, max(3, min(8, n // 2)))
        cuts = sorted(self.rng.sample(range(1, n), n_par - 1))
        bounds = [0, *cuts, n]
        return tuple(tuple(sentences[a:b]) for a, b in zip(bounds, bounds[1:], strict=False))

    def _published(self) -> datetime:
        return datetime(2023, 3, 1, 8, tzinfo=UTC) + timedelta(
            days=self.rng.randrange(350), minutes=self.rng.randrange(600))

    def article(self, lang: str, topic: str, min_words: int = 125, max_words: int = 170,
                site: int | None = None) -> tuple[_Article, list[int]]:
        """A new article of ``topic`` in ``lang``, with its sentence indices."""
        spec = st.TOPICS[lang][topic]
        idx = self._pick_sentences(lang, topic, min_words, max_words)
        others = [t["titles"][0] for k, t in st.TOPICS[lang].items() if k != topic]
        others += spec["titles"]
        title = self.rng.choice(spec["titles"])
        candidates = [t for t in others if t != title]
        related = tuple(self.rng.sample(candidates, min(4, len(candidates))))
        art = _Article(
            lang=lang, topic=topic,
            site=self.rng.randrange(2) if site is None else site,
            title=title,
            paragraphs=self._paragraphs([spec["sentences"][i] for i in idx]),
            published=self._published(),
            author=self.rng.choice(st.LOCALES[lang]["authors"]),
            related=related,
        )
        return art, idx

    # -- urls and http ---------------------------------------------------------------------

    def url_for(self, art: _Article) -> str:
        """A unique URL on the article's site."""
        domain = st.TOPICS[art.lang][art.topic]["sites"][art.site][0]
        section = _slug(st.TOPICS[art.lang][art.topic]["section"])
        while True:
            n = self.rng.randrange(1000, 99999)
            if art.site == 0:
                url = (f"https://{domain}/{section}/{art.published:%Y/%m}/"
                       f"{_slug(art.title)}-{n}/")
            else:
                url = f"https://{domain}/{section}/{_slug(art.title)}-{n}.html"
            if url not in self.urls:
                self.urls.add(url)
                return url

    def unique(self, url: str) -> str:
        """Register a hand-made URL (must be new)."""
        assert url not in self.urls, url
        self.urls.add(url)
        return url

    def _server(self, domain: str) -> str:
        if domain not in self.server:
            self.server[domain] = self.rng.choice(
                ["nginx", "Apache/2.4.58 (Ubuntu)", "cloudflare", "LiteSpeed", "nginx/1.24.0"])
        return self.server[domain]

    def add(self, record: SampleRecord, body: bytes, *, reason: str = "OK",
            extra: Sequence[tuple[str, str]] = (), payload_type: str | None = None) -> None:
        """Add a capture; HTTP headers get Server, Content-Type and Content-Length."""
        domain = urlsplit(record.url).hostname or ""
        headers: list[tuple[str, str]] = [("Server", self._server(domain))]
        if record.content_type is not None:
            headers.append(("Content-Type", record.content_type))
        headers.extend(extra)
        headers.append(("Content-Length", str(len(body))))
        headers.append(("Connection", "close"))
        ptype = payload_type or (record.content_type or "text/html").split(";")[0]
        self.captures.append(_Capture(record, reason, tuple(headers), body, ptype))

    def add_article(self, kind: str, art: _Article, url: str, cluster: str | None = None,
                    variant: str | None = None) -> None:
        """Add a plain UTF-8 article page."""
        topic = st.TOPICS[art.lang][art.topic]
        body = _render_article(art, url).encode("utf-8")
        rec = SampleRecord(url=url, kind=kind, status=200, content_type="text/html; charset=UTF-8",
                           lang=art.lang, topic=art.topic, category=topic["category"],
                           cluster=cluster, variant=variant, title=art.title, text=art.text, charset="utf-8")
        self.add(rec, body, extra=[("Cache-Control", "max-age=600")])

    # -- the kinds -------------------------------------------------------------------------

    def build(self) -> list[_Capture]:
        """Build all captures, in a fixed (kind-grouped) order."""
        self._articles()
        self._near_dups()
        self._exact_dups()
        self._spam()
        self._special()
        counts = Counter(c.record.kind for c in self.captures)
        assert counts == Counter(KIND_COUNTS), (counts, KIND_COUNTS)
        return self.captures

    def _topic_cycle(self, lang: str, n: int) -> list[str]:
        topics = list(st.TOPICS[lang])
        out = [topics[i % len(topics)] for i in range(n)]
        self.rng.shuffle(out)
        return out

    def _articles(self) -> None:
        for lang, n in ARTICLES_PER_LANG.items():
            for topic in self._topic_cycle(lang, n):
                art, _ = self.article(lang, topic)
                self.add_article("article", art, self.url_for(art))

    def _near_dups(self) -> None:
        for c, (lang, size) in enumerate(_NEAR_DUP_CLUSTERS):
            cluster = f"near-{c}"
            topic = self.rng.choice(list(st.TOPICS[lang]))
            base, idx = self.article(lang, topic, min_words=220, max_words=260)
            self.add_article("near_dup", base, self.url_for(base), cluster, "original")
            variants = ["redated", "edited", "syndicated", "edited_syndicated"]
            self.rng.shuffle(variants)
            pool = st.TOPICS[lang][topic]["sentences"]
            for variant in variants[: size - 1]:
                art = base
                if "edited" in variant:  # a short sentence swapped for a short one the page lacks
                    by_len = sorted((i for i in range(len(pool)) if i not in idx),
                                    key=lambda i: (len(pool[i].split()), i))
                    new_sentence = pool[self.rng.choice(by_len[:3])]
                    shortest = sorted(idx, key=lambda i: (len(pool[i].split()), i))[:3]
                    old_sentence = pool[self.rng.choice(shortest)]
                    p_i, s_i = next((pi, si) for pi, p in enumerate(base.paragraphs)
                                    for si, s in enumerate(p) if s == old_sentence)
                    paragraphs = [list(p) for p in base.paragraphs]
                    paragraphs[p_i][s_i] = new_sentence
                    art = replace(art, paragraphs=tuple(tuple(p) for p in paragraphs))
                if "syndicated" in variant:  # the same story on the other site of the topic
                    art = replace(art, site=1 - base.site, author=self.rng.choice(
                        st.LOCALES[lang]["authors"]), related=tuple(reversed(base.related)))
                if variant == "redated":  # republished later, with a different footer
                    art = replace(art, published=base.published + timedelta(days=self.rng.randint(3, 40)),
                                  footer_note=f"{st.LOCALES[lang]['updated']} "
                                              f"{_format_date(lang, base.published + timedelta(days=41))}.")
                self.add_article("near_dup", art, self.url_for(art), cluster, variant)

    def _exact_dups(self) -> None:
        for c, lang in enumerate(_EXACT_DUP_PAIRS):
            topic = self.rng.choice(list(st.TOPICS[lang]))
            art, _ = self.article(lang, topic)
            url = self.url_for(art)
            body = _render_article(art, url).encode("utf-8")
            parts = urlsplit(url)
            if c % 2 == 0:  # the same bytes reached through a tracking-parameter URL
                copy_url = url + "?utm_source=newsletter&utm_medium=email"
            else:  # the same bytes on a mobile mirror host
                host = parts.netloc.removeprefix("www.")
                copy_url = f"https://m.{host}{parts.path}"
            for u, variant in ((url, "original"), (self.unique(copy_url), "copy")):
                rec = SampleRecord(url=u, kind="exact_dup", status=200,
                                   content_type="text/html; charset=UTF-8", lang=lang, topic=topic,
                                   category=st.TOPICS[lang][topic]["category"], cluster=f"exact-{c}",
                                   variant=variant,
                                   title=art.title, text=art.text, charset="utf-8")
                self.add(rec, body)

    def _spam(self) -> None:
        rng = self.rng
        html_ct = "text/html; charset=UTF-8"

        def add(kind: str, lang: str | None, url: str, page: str) -> None:
            self.add(SampleRecord(url=self.unique(url), kind=kind, status=200, content_type=html_ct,
                                  lang=lang, charset="utf-8"), page.encode("utf-8"))

        domains = {"en": "www.best-travel-deals-online.biz", "pt": "emprestimo-rapido-facil.com.br",
                   "es": "seguros-baratos-ya.es"}
        for lang, words in st.SPAM_KEYWORDS.items():
            paras = []
            for _ in range(4):
                picked = [rng.choice(words) for _ in range(24)]
                paras.append(f"<p>{_esc(', '.join(picked))}</p>")
            links = " ".join(f'<a href="/{_slug(w)}/">{_esc(w)}</a>' for w in words)
            head = f'<meta name="keywords" content="{_attr(", ".join(words))}">\n'
            page = _render_simple(lang, " | ".join(words[:5]),
                                  f"<h1>{_esc(words[0])}</h1>\n" + "\n".join(paras) + f"\n<div>{links}</div>", head)
            add("keyword_list", lang, f"http://{domains[lang]}/{_slug(words[0])}.html", page)

        for i in range(KIND_COUNTS["link_farm"]):
            items = []
            for j in range(60):
                anchor = rng.choice(st.LINK_FARM_ANCHORS)
                items.append(f'<li><a href="http://go{rng.randrange(1, 99)}.top-links-{i}.info/r?id={j}">'
                             f"{_esc(anchor)}</a></li>")
            page = _render_simple("en", "Best links directory", "<h1>Best links</h1>\n<p>Click here!</p>\n"
                                  "<ul>\n" + "\n".join(items) + "\n</ul>")
            add("link_farm", "en", f"http://www.top-links-{i}.info/page{i + 1}.php", page)

        for i in range(KIND_COUNTS["lorem_ipsum"]):
            paras = list(st.LOREM_IPSUM)
            rng.shuffle(paras)
            body = "<h1>Hello world!</h1>\n" + "\n".join(f"<p>{_esc(p)}</p>" for p in paras)
            add("lorem_ipsum", None, f"https://demo-theme-{i + 1}.wpsite.net/sample-page/",
                _render_simple("en", "Sample Page - Just another WordPress site", body))

        short_domains = {"en": "newbakery.co.uk", "pt": "lojadamaria.com.br", "es": "tallerjuan.es",
                         "de": "praxis-mueller.de"}
        for lang, (title, text) in st.SHORT_PAGES.items():
            add("too_short", lang, f"https://www.{short_domains[lang]}/",
                _render_simple(lang, title, f"<h1>{_esc(title)}</h1>\n<p>{_esc(text)}</p>"))

        bullet_domains = {"en": "www.gadget-specs.net", "pt": "www.papelariacentral.com.br",
                          "de": "www.reise-checklisten.de"}
        for lang, (title, items) in st.BULLET_PAGES.items():
            lis = "\n".join(f"<li>{_esc(x)}</li>" for x in items)
            add("bullet_list", lang, f"https://{bullet_domains[lang]}/{_slug(title)}",
                _render_simple(lang, title, f"<h1>{_esc(title)}</h1>\n<ul>\n{lis}\n</ul>"))

        rep_domains = {"en": "www.mega-outlet-store.biz", "pt": "www.ofertas-imperdiveis.com.br",
                       "es": "www.chollos-increibles.es"}
        for lang, line in st.REPEATED_LINES.items():
            n = rng.randint(30, 50)
            body = "\n".join(f"<p>{_esc(line)}</p>" for _ in range(n))
            add("repeated_lines", lang, f"http://{rep_domains[lang]}/promo", _render_simple(lang, line, body))

        js_domains = {"en": "app.dashboard-portal.io", "pt": "portal.servicosonline.com.br",
                      "de": "kundenportal.stadtwerke-beispiel.de"}
        script = ("<script>\n(function(){var s=document.createElement('script');s.src='/static/js/app.bundle.js';"
                  "document.head.appendChild(s);if(!window.fetch){document.body.className+=' legacy';}"
                  "window.__INITIAL_STATE__={\"user\":null,\"route\":\"/\",\"flags\":{\"beta\":false}};})();\n"
                  "</script>\n")
        for lang, lines in st.JS_NOISE.items():
            body = (f"<noscript><p>{_esc(lines[0])}</p></noscript>\n" + script
                    + '<div id="app"></div>\n<div class="cookie-consent">\n'
                    + "\n".join(f"<p>{_esc(x)}</p>" for x in lines[1:]) + "\n</div>")
            add("js_noise", lang, f"https://{js_domains[lang]}/", _render_simple(lang, "Portal", body, script))

        toxic_domains = {"en": "forum.citytalk-online.com", "pt": "forum.conversadebairro.com.br",
                         "es": "foro.vecinosopinan.es", "de": "forum.stadtgespraech-online.de"}
        for lang, (title, posts) in st.TOXIC_THREADS.items():
            order = list(posts)
            rng.shuffle(order)
            items = "\n".join(
                f'<div class="post"><span class="user">user{rng.randrange(100, 9999)}</span>'
                f"<p>{_esc(p)}</p></div>" for p in order)
            body = f'<h1>{_esc(title)}</h1>\n<div class="thread">\n{items}\n</div>'
            add("toxic", lang, f"https://{toxic_domains[lang]}/t/{_slug(title)}-{rng.randrange(1000, 9999)}",
                _render_simple(lang, title, body))

    def _special(self) -> None:
        rng = self.rng

        def rec(kind: str, url: str, status: int, ctype: str | None, **kw: str | None) -> SampleRecord:
            if url not in self.urls:  # hand-made URLs; article URLs come registered by url_for
                self.unique(url)
            return SampleRecord(url=url, kind=kind, status=status, content_type=ctype, **kw)

        for i in range(KIND_COUNTS["image_png"]):
            size = rng.choice([8, 12, 16])
            png = _png(size, size, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
            self.add(rec("image_png", f"https://www.escolaviva.com.br/wp-content/uploads/2024/01/icone-{i + 1}.png",
                         200, "image/png"), png, extra=[("Accept-Ranges", "bytes")])
        pdf_urls = ["https://www.millbrookgazette.com/files/council-minutes-2024-01.pdf",
                    "https://www.naturwissen-schule.de/material/arbeitsblatt-wald.pdf"]
        for i, url in enumerate(pdf_urls):
            self.add(rec("pdf", url, 200, "application/pdf"), _pdf(f"Sample document {i + 1}"))

        for lang, domain in (("en", "www.codingforbeginners.dev"), ("pt", "www.jornaldabola.com.br"),
                             ("de", "www.sportecho.de")):
            title, msg = st.ERROR_PAGES[lang][404]
            page = _render_simple(lang, title, f"<h1>404</h1>\n<h2>{_esc(title)}</h2>\n<p>{_esc(msg)}</p>")
            self.add(rec("http_404", f"https://{domain}/old-page-{rng.randrange(100, 999)}.html", 404,
                         "text/html; charset=UTF-8", lang=lang, charset="utf-8"),
                     page.encode("utf-8"), reason="Not Found")

        for lang, domain in (("en", "weekendwalker.com"), ("pt", "cozinhapratica.com.br")):
            title, msg = st.ERROR_PAGES[lang][301]
            target = f"https://www.{domain}/"
            page = _render_simple(lang, title, f'<h1>{_esc(title)}</h1>\n<p>{_esc(msg)} <a href="{target}">'
                                               f"{_esc(target)}</a></p>")
            self.add(rec("redirect_301", f"http://{domain}/", 301, "text/html; charset=UTF-8", lang=lang,
                         charset="utf-8"), page.encode("utf-8"), reason="Moved Permanently",
                     extra=[("Location", target)])

        title, msg = st.ERROR_PAGES["en"][500]
        self.add(rec("http_500", "https://riversidecitynews.com/search?q=festival", 500,
                     "text/html; charset=UTF-8", lang="en", charset="utf-8"),
                 _render_simple("en", title, f"<h1>{_esc(title)}</h1>\n<p>{_esc(msg)}</p>").encode("utf-8"),
                 reason="Internal Server Error")

        for domain in ("www.receitasdavovo.com.br", "www.diariodelbarrio.es"):
            robots = (f"User-agent: *\nDisallow: /wp-admin/\nDisallow: /search\nAllow: /wp-admin/admin-ajax.php\n\n"
                      f"User-agent: GPTBot\nDisallow: /\n\nSitemap: https://{domain}/sitemap.xml\n")
            self.add(rec("robots_txt", f"https://{domain}/robots.txt", 200, "text/plain"), robots.encode("ascii"))

        # An HTML page served without any Content-Type header.
        art, _ = self.article("es", "recipes")
        url = self.url_for(art)
        self.add(rec("no_content_type", url, 200, None, lang="es", topic=art.topic,
                     category="everyday", title=art.title, text=art.text, charset="utf-8"),
                 _render_article(art, url).encode("utf-8"), payload_type="text/html")

        # HTTP says UTF-8, the bytes are ISO-8859-1 (one page also says so in a meta tag).
        for lang, topic, tag in (("pt", "photosynthesis", None), ("de", "travel", "http-equiv:iso-8859-1")):
            art, _ = self.article(lang, topic)
            url = self.url_for(art)
            body = _render_article(art, url, charset_tag=tag).encode("iso-8859-1")
            self.add(rec("charset_mislabel", url, 200, "text/html; charset=utf-8", lang=lang, topic=topic,
                         category=st.TOPICS[lang][topic]["category"], title=art.title, text=art.text,
                         charset="iso-8859-1"), body)

        # No charset in HTTP, <meta charset="windows-1252">, bytes in cp1252 (with €, – and curly quotes).
        for lang, topic in (("pt", "football"), ("de", "football")):
            art, _ = self.article(lang, topic)
            art = replace(art, paragraphs=(*art.paragraphs, (st.CP1252_EXTRAS[lang],)))
            url = self.url_for(art)
            body = _render_article(art, url, charset_tag="windows-1252").encode("cp1252")
            self.add(rec("meta_charset", url, 200, "text/html", lang=lang, topic=topic,
                         category="news", title=art.title, text=art.text, charset="cp1252"), body)

        # Binary garbage served as text/html.
        noise = bytes(rng.randrange(256) for _ in range(3000))
        self.add(rec("binary_html", "http://files.cozinhapratica.com.br/download.php?id=7731", 200,
                     "text/html"), b"\x00\x01\x02\x03" + noise, payload_type="application/octet-stream")

        # A gzip-compressed body kept as sent: Content-Encoding: gzip, Content-Length of the gzip bytes.
        for lang, topic in (("en", "hiking"), ("pt", "recipes")):
            art, _ = self.article(lang, topic)
            url = self.url_for(art)
            raw = _render_article(art, url).encode("utf-8")
            self.add(rec("gzip_encoded", url, 200, "text/html; charset=UTF-8", lang=lang, topic=topic,
                         category=st.TOPICS[lang][topic]["category"], title=art.title, text=art.text,
                         charset="utf-8", content_encoding="gzip"),
                     gzip.compress(raw, compresslevel=9, mtime=0),
                     extra=[("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")],
                     payload_type="text/html")


# ---------------------------------------------------------------------------------------------
# Placement into files, dates and record ids
# ---------------------------------------------------------------------------------------------


def _record_id(seed: int, file_index: int, position: int, rtype: str) -> str:
    return f"<urn:uuid:{uuid.uuid5(_SAMPLE_NS, f'{seed}:{file_index}:{position}:{rtype}')}>"


def _warc_date(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


@lru_cache(maxsize=4)
def _captures(seed: int) -> tuple[_Capture, ...]:
    """Every capture of the sample for ``seed``, in build order."""
    return tuple(_Builder(seed).build())


@lru_cache(maxsize=8)
def _layout(n_files: int, seed: int) -> tuple[tuple[tuple[_Capture, ...], ...], tuple[datetime, ...]]:
    """Captures per file (each with file index, WARC date and response record id filled in)."""
    if n_files < 1:
        raise ValueError(f"n_files must be >= 1, got {n_files}")
    captures = _captures(seed)
    rng = random.Random(f"cptcorpus-sample-layout:{seed}:{n_files}")
    # Deal each kind round-robin over the files (from a rotating start) so every file gets a bit of
    # everything, then shuffle each file's captures.
    by_kind: dict[str, list[_Capture]] = {}
    for cap in captures:
        by_kind.setdefault(cap.record.kind, []).append(cap)
    files: list[list[_Capture]] = [[] for _ in range(n_files)]
    start = 0
    for kind in KIND_COUNTS:
        group = by_kind[kind]
        rng.shuffle(group)
        for i, cap in enumerate(group):
            files[(start + i) % n_files].append(cap)
        start = (start + len(group)) % n_files
    placed: list[tuple[_Capture, ...]] = []
    info_dates: list[datetime] = []
    for f, caps in enumerate(files):
        rng.shuffle(caps)
        seconds = sorted(rng.sample(range(60, _CRAWL_SECONDS), len(caps)))
        info_dates.append(_CRAWL_START + timedelta(seconds=seconds[0] - 60 if seconds else 0))
        out = []
        for pos, (cap, sec) in enumerate(zip(caps, seconds, strict=True)):
            record = replace(cap.record, file_index=f,
                             warc_date=_warc_date(_CRAWL_START + timedelta(seconds=sec)),
                             record_id=_record_id(seed, f, pos, "response"))
            out.append(replace(cap, record=record))
        placed.append(tuple(out))
    return tuple(placed), tuple(info_dates)


def sample_manifest(n_files: int = 4, seed: int = 0) -> list[SampleRecord]:
    """Describe every capture that ``write_sample(out_dir, n_files, seed)`` writes, in file order.

    Nothing is written. Each entry's ``record_id`` is the id of its ``response`` record.
    """
    files, _ = _layout(n_files, seed)
    return [cap.record for caps in files for cap in caps]


def sample_kind_counts(n_files: int = 4, seed: int = 0) -> dict[str, Counter[str]]:
    """Per file name: how many captures of each kind it holds."""
    out: dict[str, Counter[str]] = {}
    for rec in sample_manifest(n_files, seed):
        out.setdefault(rec.file_name, Counter())[rec.kind] += 1
    return out


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


class _DeterministicWARCWriter(WARCWriter):
    """A warcio writer that refuses to invent record ids or dates (both come from the caller)."""

    @classmethod
    def _make_warc_id(cls) -> str:
        raise RuntimeError("sample records must carry an explicit WARC-Record-ID")

    @classmethod
    def _make_warc_date(cls, use_micros: bool = False) -> str:
        raise RuntimeError("sample records must carry an explicit WARC-Date")


def _write_file(path: Path, file_index: int, caps: Sequence[_Capture], info_date: datetime,
                seed: int, n_files: int) -> None:
    """Write one WARC file (atomically: temporary name, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        writer = _DeterministicWARCWriter(fh, gzip=True, warc_version="1.1")
        info_id = _record_id(seed, file_index, -1, "warcinfo")
        fields = {
            # the pre-move module name, kept so that the generated bytes stay the same
            "software": "cptcorpus pipelines.sample (synthetic demo data)",
            "format": "WARC File Format 1.1",
            "conformsTo": "https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/",
            "isPartOf": "cptcorpus-demo-sample",
            "description": "Synthetic Common Crawl-like sample for tests and demos; all text is original "
                           "and all sites are invented.",
            "robots": "not checked (synthetic)",
            "seed": str(seed),
            "files": str(n_files),
        }
        payload = "".join(f"{k}: {v}\r\n" for k, v in fields.items()).encode("utf-8")
        writer.write_record(writer.create_warc_record(
            "", "warcinfo", payload=io.BytesIO(payload), length=len(payload),
            warc_headers_dict={"WARC-Type": "warcinfo", "WARC-Date": _warc_date(info_date),
                               "WARC-Filename": path.name, "WARC-Record-ID": info_id,
                               "Content-Type": "application/warc-fields"}))
        for pos, cap in enumerate(caps):
            rec = cap.record
            when = datetime.strptime(rec.warc_date, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            parts = urlsplit(rec.url)
            host = parts.hostname or ""
            ip = _ip_for(host, seed)
            path_q = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            req_id = _record_id(seed, file_index, pos, "request")
            req_headers = StatusAndHeaders(f"GET {path_q} HTTP/1.1", [
                ("User-Agent", _USER_AGENT),
                ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
                ("Accept-Language", "en-US,en;q=0.5"),
                ("Accept-Encoding", "br,gzip"),
                ("Host", host),
                ("Connection", "Keep-Alive"),
            ], is_http_request=True)
            common = {"WARC-Date": rec.warc_date, "WARC-Warcinfo-ID": info_id}
            writer.write_record(writer.create_warc_record(
                rec.url, "request", payload=io.BytesIO(b""), length=0, http_headers=req_headers,
                warc_headers_dict={"WARC-Type": "request", "WARC-Record-ID": req_id, **common,
                                   "WARC-IP-Address": ip}))
            resp_headers = StatusAndHeaders(
                f"{rec.status} {cap.reason}",
                [("Date", format_datetime(when, usegmt=True)), *cap.headers], protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(
                rec.url, "response", payload=io.BytesIO(cap.body), length=len(cap.body),
                http_headers=resp_headers,
                warc_headers_dict={"WARC-Type": "response", "WARC-Record-ID": rec.record_id, **common,
                                   "WARC-Concurrent-To": req_id, "WARC-IP-Address": ip,
                                   "WARC-Identified-Payload-Type": cap.payload_type}))
            fetch_ms = 40 + zlib.crc32(rec.url.encode()) % 900
            meta = f"fetchTimeMs: {fetch_ms}\r\n".encode()
            writer.write_record(writer.create_warc_record(
                rec.url, "metadata", payload=io.BytesIO(meta), length=len(meta),
                warc_headers_dict={"WARC-Type": "metadata",
                                   "WARC-Record-ID": _record_id(seed, file_index, pos, "metadata"),
                                   **common, "WARC-Concurrent-To": rec.record_id,
                                   "Content-Type": "application/warc-fields"}))
    os.replace(tmp, path)


def _ip_for(host: str, seed: int) -> str:
    """A stable documentation-range (TEST-NET) IPv4 address for a host."""
    h = zlib.crc32(f"{seed}:{host}".encode())
    net = ("192.0.2", "198.51.100", "203.0.113")[h % 3]
    return f"{net}.{1 + (h >> 8) % 254}"


def write_sample(out_dir: str | Path, n_files: int = 4, seed: int = 0) -> list[Path]:
    """Write the demo sample as ``n_files`` WARC files under ``out_dir``; return their paths.

    Files are named ``sample-0000.warc.gz`` ...; the same ``(n_files, seed)`` always gives the same
    bytes. ``sample_manifest(n_files, seed)`` describes what they hold.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files, info_dates = _layout(n_files, seed)
    paths = []
    for f, caps in enumerate(files):
        path = out / _file_name(f)
        _write_file(path, f, caps, info_dates[f], seed, n_files)
        paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m pipelines.demo.sample OUT_DIR [--files N] [--seed S]``."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.demo.sample", description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", help="directory to write sample-NNNN.warc.gz into")
    parser.add_argument("--files", type=int, default=4, help="number of WARC files (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="generation seed (default 0)")
    args = parser.parse_args(argv)
    paths = write_sample(args.out_dir, n_files=args.files, seed=args.seed)
    counts = Counter(r.kind for r in sample_manifest(args.files, args.seed))
    for p in paths:
        print(p)
    print(f"{sum(counts.values())} captures: " + ", ".join(f"{k}={counts[k]}" for k in KIND_COUNTS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
