"""Cut an HTML page into text blocks with the raw facts the block model needs.

The page is parsed by libxml2 (lxml, already a dependency through trafilatura) and walked once. The
walk is in C (``_walk.c``, the module ``cptcorpus_walk``): 0.154 ms a page on the benchmark pages
against 2.414 ms for the same walk in Python (``bench/extractors_results.json``). ``walk_reference``
is that Python walk, kept as the specification the C walk is tested against
(``tests/test_fast_extract.py``) and as the fallback where the extension is not built. The walk
also counts each block's characters by class (``chars``).

Text accumulates into the current block; entering or leaving a block-level element closes it. Each
block keeps its whitespace-normalised text and one row of integers: the index of the element that
holds it (``HOLDER_TAGS``, -1 for others), a bitmask of its ancestor tags (nav, footer, li, ...),
bitmasks of the class/id ``CONCEPTS`` of all its ancestors, of its nearest ``NEAR_LEVELS``
elements, and of its own element (the body's are the page's, kept apart), its depth, how many
of its non-whitespace characters sit inside links, and the container it sits in: the non-whitespace
characters (all, and inside links) of the parent and of the grandparent of the element holding it,
and the parent's id (blocks with the same parent are siblings).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from lxml import etree

from pipelines.fast_extract.chars import BASE_TABLE, COUNTED, MEASURES, SENTENCE_END, TERMINAL, char_measures

_PARSER = etree.HTMLParser(remove_comments=True, remove_pis=True, encoding="utf-8", no_network=True)

#: Elements whose content never reaches the text (scripts, forms' widgets, embedded media).
SKIP_TAGS = frozenset(
    ["script", "style", "noscript", "template", "svg", "math", "iframe", "frame", "frameset", "object", "embed", "canvas", "select", "option", "textarea", "button", "input", "head", "title", "meta", "link", "video", "audio", "map", "area", "picture", "source", "track", "dialog"]
)
#: Elements that start and end a block of text.
BLOCK_TAGS = frozenset(
    ["p", "div", "section", "article", "main", "aside", "nav", "header", "footer", "ul", "ol", "li", "dl", "dt", "dd", "table", "thead", "tbody", "tfoot", "tr", "td", "th", "caption", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "figure", "figcaption", "address", "form", "fieldset", "legend", "details", "summary", "center", "hr", "br", "body", "menu", "hgroup"]
)
#: Ancestor tags recorded as bits (a block inside <nav> inside <li> has both bits).
ANCESTOR_TAGS = ["nav", "footer", "header", "aside", "article", "main", "li", "td", "th", "table", "form", "a", "h1", "h2", "h3", "h4", "h5", "h6", "p", "blockquote", "pre", "ul", "ol", "dl", "figure", "address", "section", "strong", "em", "b", "i", "code", "span"]
_ANCESTOR_BIT = {t: 1 << i for i, t in enumerate(ANCESTOR_TAGS)}
#: The holding element's tag, one-hot in the features (others count as "other").
HOLDER_TAGS = ["p", "div", "li", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6", "dd", "dt", "pre", "blockquote", "span", "a", "body", "section", "article", "figcaption"]
HOLDER_INDEX = {t: i for i, t in enumerate(HOLDER_TAGS)}
#: Concepts recognised in class and id values, one bit each: what the markup says a part of the page
#: is. A value (its first ATTR_BYTES bytes, lowercased) is cut into words (runs of letters:
#: ``post-content entry__body`` -> post, content, entry, body); each concept is a regular expression
#: searched in every word and every pair of adjacent words joined by "-" (``post-content``). Words and
#: pairs repeat across the whole web, so each is matched once and remembered.
CONCEPTS: list[tuple[str, str]] = [
    ("nav", r"(^|[^a-z])nav|navigation|navbar|subnav|menu|toolbar|topbar|top-bar"),
    ("footer", r"footer|colophon|bottom-?bar"),
    ("header", r"header|masthead|branding|logo"),
    ("sidebar", r"sidebar|side-?bar|(^|[^a-z])aside|rail|widget|secondary"),
    ("comment", r"comment(?!ary)|disqus|respond|replies"),
    ("share", r"(^|[^a-z])shar(e|ing)|social|sociable|viral|addthis|follow-?us"),
    ("related", r"related|more-?on|most-?popular|-stories|recommend|read-?more|also-?read|trending|teaser"),
    ("ad", r"(^|[^a-z])ads?([^a-z]|$)|advert|sponsor|outbrain|taboola|dfp|promo|banner|commercial"),
    ("tags", r"(^|[^a-z])tags?([^a-z]|$)|tag-?list|tag-?cloud|keywords|categor"),
    ("breadcrumb", r"bread-?crumb|crumbs"),
    ("byline", r"byline|author|posted-?by|contributor"),
    ("date", r"date|time|publish|posted-?on|updated"),
    ("meta", r"(^|[^a-z])meta|info-?bar|article-?info|entry-?meta|post-?meta|details"),
    ("consent", r"cookie|consent|gdpr|privacy|notice"),
    ("subscribe", r"newsletter|subscri|signup|sign-?up|register|paywall|premium"),
    ("modal", r"modal|popup|pop-?up|overlay|lightbox|dialog"),
    ("pagination", r"paginat|pager|page-?nav|(^|[^a-z])(next|prev)"),
    ("search", r"search|(^|[^a-z])find"),
    ("login", r"login|log-?in|sign-?in|account|user-?(menu|nav|info)"),
    ("hidden", r"hidden|(^|[^a-z])hide|sr-only|screen-?reader|visually-?hidden|d-none|offscreen"),
    ("button", r"button|btn|(^|[^a-z])cta"),
    ("body_text", r"article[-_]?(body|content|text)|post[-_]?(body|content|text|entry)|entry[-_]?(content|body)|"
                  r"story[-_]?(body|content|text)|text[-_]?(content|body)|body[-_]?(text|copy)|articlebody|"
                  r"main[-_]?(content|text)|content[-_]?(main|body|text)|single[-_]?(post|content)|field-?body|"
                  r"prose|rich-?text|markdown|wysiwyg|rte"),
    ("content", r"content"),
    ("article", r"article"),
    ("post", r"(^|[^a-z])posts?([^a-z]|$)|hentry|blog"),
    ("entry", r"entry"),
    ("story", r"story|news"),
    ("main", r"(^|[^a-z])main([^a-z]|$)|primary"),
    ("text", r"(^|[^a-z])text|copy"),
    ("body", r"(^|[^a-z])body"),
    ("title", r"title|headline|heading"),
    ("lead", r"lead|summary|intro|excerpt|abstract|standfirst|subtitle|subhead|kicker|(^|[^a-z])dek"),
    ("caption", r"caption|credit|figure|gallery|slide|photo|image|img|video|media|thumb"),
    ("quote", r"quote|blockquote|pull"),
    ("forum", r"forum|thread|topic|message|(^|[^a-z])msg|reply|board"),
    ("product", r"product|price|cart|basket|buy|shop|stock|sku|checkout|offer"),
    ("review", r"review|rating|stars|score"),
    ("list", r"(^|[^a-z])list|(^|[^a-z])items?([^a-z]|$)|grid|cards?([^a-z]|$)|feed|archive"),
    ("doc", r"doc|manual|api|reference|toc|sidenav|chapter|section"),
    ("code", r"code|highlight|syntax|(^|[^a-z])pre([^a-z]|$)|example"),
    ("table", r"table|(^|[^a-z])tbl"),
    ("wrapper", r"wrap|container|inner|outer|holder|(^|[^a-z])row([^a-z]|$)|(^|[^a-z])col"),
    ("print", r"print|pdf|download"),
    ("contact", r"contact|address|phone|email|mail"),
    ("legal", r"copyright|legal|terms|imprint|impressum|disclaimer|license"),
]
_CONCEPT_RES = [(1 << i, re.compile(pattern.encode())) for i, (_, pattern) in enumerate(CONCEPTS)]
ATTR_BYTES = 1023  # class/id values are classified on their first 1,023 bytes
ROW_FIELDS = ("holder", "ancestors", "classes", "near_classes", "own_classes", "depth", "link_chars",
              "parent_chars", "parent_link_chars", "grand_chars", "grand_link_chars", "parent_id", *MEASURES)
NEAR_LEVELS = 4  # near_classes: the element holding the block and its three nearest ancestors


#: Class tokens that label what a post is about, not what a part of the page is: CMSs put them on the
#: article element itself (WordPress: ``post-12 hentry category-news tag-election author-kim``).
_TAXONOMY_TOKEN = re.compile(rb"^(tag|category|categories|author|format|status|type|postid|term|topic|"
                             rb"section|page-id|post-template|single-format)-\S+$")


_LETTERS = re.compile(rb"[a-z]+")
_PIECE_BITS: dict[bytes, int] = {}  # word or word pair -> concept bits
PIECES_REMEMBERED = 200_000


def _piece_bits(piece: bytes) -> int:
    bits = _PIECE_BITS.get(piece)
    if bits is None:
        bits = 0
        for bit, pattern in _CONCEPT_RES:
            if pattern.search(piece):
                bits |= bit
        if len(_PIECE_BITS) >= PIECES_REMEMBERED:
            _PIECE_BITS.clear()
        _PIECE_BITS[piece] = bits
    return bits


def concept_bits(value: bytes) -> int:
    """The CONCEPTS bits found in one class or id value (taxonomy tokens left out)."""
    value = value.lower()
    if b"-" in value:
        tokens = value.split()
        if any(_TAXONOMY_TOKEN.match(t) for t in tokens):
            value = b" ".join(t for t in tokens if not _TAXONOMY_TOKEN.match(t))
    words = _LETTERS.findall(value)
    mask = 0
    for word in words:
        mask |= _piece_bits(word)
    for first, second in zip(words, words[1:], strict=False):
        mask |= _piece_bits(first + b"-" + second)
    return mask


try:
    import cptcorpus_walk as _walk  # built from _walk.c by setup.py (a top-level module: see there)
    _walk.configure(etree._Element, sorted(SKIP_TAGS), sorted(BLOCK_TAGS), ANCESTOR_TAGS, HOLDER_TAGS,
                    concept_bits, (SENTENCE_END, TERMINAL, *COUNTED))
except ImportError:  # a source tree that was never built: the same blocks, ~15x slower to walk
    _walk = None


@dataclass
class Blocks:
    """The text blocks of one page, in document order: their texts and one int64 row each."""

    texts: list[str]
    rows: np.ndarray  # n_blocks x len(ROW_FIELDS), int64 (bitmask columns hold uint64 bit patterns)
    page_classes: int = 0  # the concept bits of <body>'s class and id (the page's kind, on many sites)

    def column(self, name: str) -> np.ndarray:
        return self.rows[:, ROW_FIELDS.index(name)]

    def bits(self, name: str) -> np.ndarray:
        return self.column(name).view(np.uint64)


def no_blocks() -> Blocks:
    return Blocks([], np.zeros((0, len(ROW_FIELDS)), np.int64))


def parse(html: str):
    """The lxml root of ``html`` (None when libxml2 finds no element at all)."""
    return etree.fromstring(html.encode("utf-8", "surrogatepass"), _PARSER)


def page_blocks(html: str, table: np.ndarray = BASE_TABLE, walker=None) -> Blocks:
    """The text blocks of ``html``'s body, in document order (a frameset page has none).

    ``table``: the character classes to count (``chars.char_table``); ``walker``: the walk to use
    (default: the C walk where built, else ``walk_reference``).
    """
    root = parse(html)
    body = root.find("body") if root is not None else None
    if body is None:
        return no_blocks()
    if walker is None:
        walker = _walk.walk if _walk is not None else walk_reference
    texts, rows = walker(body, table)
    return Blocks(texts, np.frombuffer(rows, np.int64).reshape(-1, len(ROW_FIELDS)), element_bits(body))


def element_bits(el) -> int:
    """The concept bits of an element's class and id values."""
    mask = 0
    for name in ("class", "id"):
        value = el.get(name)
        if value:
            mask |= concept_bits(value.encode("utf-8", "surrogatepass")[:ATTR_BYTES])
    return mask


def _nonspace(text: str) -> int:
    return sum(not c.isspace() for c in text)


def walk_reference(body, table: np.ndarray = BASE_TABLE) -> tuple[list[str], bytes]:
    """The block walk in Python: the specification of ``_walk.walk`` (same texts, same rows)."""
    texts: list[str] = []
    rows: list[tuple[int, ...]] = []
    pieces: list[str] = []
    link_chars = links_open = 0
    ctx = (HOLDER_INDEX["body"], 0, 0, 0, 0, 0, -1, -1)  # holder, ancestor/class/near/own bits, depth, parent, grand
    stack: list[tuple | None] = []  # per open element: (kind, context to restore, ancestor bits, class bits)
    owns: list[int] = []  # per open element: its own concept bits (the body's count as none)
    ids: list[int] = []  # per open element: its id, an index into totals
    totals: list[list[int]] = []  # per entered element: [non-whitespace chars, of which inside links]
    anc = cls = depth = 0

    def close() -> None:
        nonlocal pieces, link_chars
        text = " ".join("".join(pieces).split())
        pieces = []
        if text:
            texts.append(text)
            rows.append((*ctx[:6], min(link_chars, len(text)), ctx[6], ctx[7]))
        link_chars = 0

    def add(text: str | None) -> None:
        nonlocal link_chars
        if text:
            pieces.append(text)
            visible = _nonspace(text)
            totals[ids[-1]][0] += visible
            if links_open:
                link_chars += visible
                totals[ids[-1]][1] += visible

    walker = etree.iterwalk(body, events=("start", "end"))
    for event, el in walker:
        tag = el.tag
        if event == "start":
            if not isinstance(tag, str) or tag in SKIP_TAGS:
                walker.skip_subtree()
                stack.append(None)
                continue
            own = element_bits(el) if el is not body else 0
            owns.append(own)
            ids.append(len(totals))
            totals.append([0, 0])
            block = tag in BLOCK_TAGS
            kind = "block" if block else tag if tag in ("a", "img", "wbr") else ""
            stack.append((kind, ctx, anc, cls))
            anc |= _ANCESTOR_BIT.get(tag, 0)
            cls |= own
            depth += 1
            if block:
                close()
                near = 0
                for bits in owns[-NEAR_LEVELS:]:
                    near |= bits
                parent = ids[-2] if len(ids) >= 2 else -1
                grand = ids[-3] if len(ids) >= 3 else -1
                ctx = (HOLDER_INDEX.get(tag, -1), anc, cls, near, own, depth, parent, grand)
            elif kind == "a":
                links_open += 1
            add(el.text)
            continue
        saved = stack.pop()
        if saved is not None:
            kind, restore, anc, cls = saved
            owns.pop()
            mine = totals[ids.pop()]
            if ids:  # an element's text counts in its parent's too
                totals[ids[-1]][0] += mine[0]
                totals[ids[-1]][1] += mine[1]
            depth -= 1
            if kind == "block":
                close()
                ctx = restore
            elif kind == "a":
                links_open -= 1
            elif kind in ("img", "wbr"):
                pieces.append(" ")
        if el is not body:  # text after </body> is not the body's
            add(el.tail)
    close()
    rows = [(*row[:7], *(totals[row[7]] if row[7] >= 0 else (0, 0)), *(totals[row[8]] if row[8] >= 0 else (0, 0)),
             row[7]) for row in rows]
    signed = [[v - (1 << 64) if v >= 1 << 63 else v for v in row] for row in rows]
    walked = np.asarray(signed, np.int64).reshape(-1, len(ROW_FIELDS) - len(MEASURES))
    return texts, np.hstack([walked, char_measures(texts, table)]).tobytes()
