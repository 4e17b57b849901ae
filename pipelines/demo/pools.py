"""Text pools for the bundled demo sample (:mod:`pipelines.demo.sample`), read from ``data/*.json``.

Everything in the pools is original text written for this project (no scraped content), so the
sample can be shipped and regenerated freely. The text lives in JSON data files next to this
module, not in Python literals, so editing a sentence is a data change; this module only loads
the files and restores the tuple and integer-key shapes that JSON cannot express. The generator
builds pages by picking and ordering sentences from these pools, so the pools hold no randomness.

- ``TOPICS[lang][topic]`` (``data/topics.json``): per-language topics, each with a category
  (education, stem, news, everyday), a site section name, two invented sites, a few titles and a
  pool of sentences kept in a logical order (a page keeps the pool order, so pages read coherently).
- ``LOCALES[lang]`` (``data/locales.json``): the boilerplate around an article (navigation, cookie
  banner, sidebar, footer, month names, authors), in the page's language.
- Spam, toxic and error texts (``data/low_quality.json``) used for the low-quality and non-article
  records.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, TypedDict


class Topic(TypedDict):
    """One topic of one language: where it is published and what its pages say."""

    category: str
    section: str
    sites: list[tuple[str, str]]
    titles: list[str]
    sentences: list[str]


class Locale(TypedDict):
    """The page chrome of one language."""

    html_lang: str
    nav: list[str]
    home: str
    search: str
    cookie: str
    accept: str
    settings: str
    by: str
    read_also: str
    newsletter: str
    subscribe: str
    about: str
    contact: str
    privacy: str
    terms: str
    rights: str
    share: str
    updated: str
    months: list[str]
    date_format: str
    authors: list[str]


def _load(name: str) -> Any:
    """One JSON file of the package's ``data/`` folder (shipped as package data)."""
    return json.loads((resources.files(__package__) / "data" / name).read_text(encoding="utf-8"))


def _topics(raw: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Topic]]:
    return {
        lang: {name: Topic(**{**t, "sites": [(d, s) for d, s in t["sites"]]}) for name, t in topics.items()}
        for lang, topics in raw.items()
    }


_LOW = _load("low_quality.json")

TOPICS: dict[str, dict[str, Topic]] = _topics(_load("topics.json"))
"""Sentence pools by language and topic."""

LOCALES: dict[str, Locale] = _load("locales.json")
"""Boilerplate strings (nav, cookie banner, sidebar, footer) by language."""

CP1252_EXTRAS: dict[str, str] = _LOW["cp1252_extras"]
"""A sentence with characters that exist in windows-1252 but not in ISO-8859-1 (€, – and curly
quotes), appended to the pages served with ``<meta charset="windows-1252">``."""

SPAM_KEYWORDS: dict[str, list[str]] = _LOW["spam_keywords"]
"""Keyword-stuffing vocabularies (SEO spam)."""

LINK_FARM_ANCHORS: list[str] = _LOW["link_farm_anchors"]
"""Anchor texts of a link farm."""

LOREM_IPSUM: list[str] = _LOW["lorem_ipsum"]
"""Placeholder text left on unfinished pages."""

SHORT_PAGES: dict[str, tuple[str, str]] = {lang: (t, b) for lang, (t, b) in _LOW["short_pages"].items()}
"""(title, body) of near-empty pages."""

BULLET_PAGES: dict[str, tuple[str, list[str]]] = {lang: (t, i) for lang, (t, i) in _LOW["bullet_pages"].items()}
"""(title, items) of pages that are almost only a bullet list."""

REPEATED_LINES: dict[str, str] = _LOW["repeated_lines"]
"""One line that a page repeats many times."""

JS_NOISE: dict[str, list[str]] = _LOW["js_noise"]
"""Script and cookie-consent noise left when a page renders only with JavaScript."""

TOXIC_THREADS: dict[str, tuple[str, list[str]]] = {lang: (t, p) for lang, (t, p) in _LOW["toxic_threads"].items()}
"""(title, posts) of comment threads full of insults (mildly toxic, no slurs)."""

ERROR_PAGES: dict[str, dict[int, tuple[str, str]]] = {
    lang: {int(status): (t, m) for status, (t, m) in pages.items()} for lang, pages in _LOW["error_pages"].items()
}
"""(title, message) of error and redirect pages, by language and HTTP status."""
