"""URL block lists: blocked domains (UT1-style lists), blocked URL prefixes, and adult words.

Why: the cheapest filter of all runs on the URL, before any text is looked at. FineWeb blocks
domains from the UT1 blacklists (Université Toulouse 1: one domain per line, in per-category folders
such as ``adult/domains``) plus URLs containing adult words. We read the same file layout, so a
downloaded UT1 tree (or any list of domains) can be pointed to, and ship a short default list of
adult words written for this project (``filters/data/url_*.txt``).

Matching:

* domains: the URL's host, lower-cased and without a leading ``www.``, and each of its parent
  domains, are looked up (``a.b.example.com`` is blocked by ``example.com``);
* URLs: ``host/path`` prefixes cut at ``/`` boundaries (``example.com/forum`` blocks
  ``http://www.example.com/forum/t/1``);
* banned words: whole words of the URL (split on non-alphanumerics, lower-cased);
* soft words: at least `soft_word_threshold` distinct ones among the URL's words;
* banned substrings: anywhere in the URL lower-cased with non-alphanumerics removed. Lookup is by
  set membership for each distinct entry length, so lists of thousands of entries stay fast.
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from filters.base import make_reason

__all__ = ["UrlBlocklist", "read_list"]

_DATA = Path(__file__).parent / "data"
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def read_list(path: str | os.PathLike[str]) -> list[str]:
    """Entries of a list file: one per line, ``#`` comments and blank lines skipped, ``.gz`` read.

    A directory is walked for files named ``domains`` / ``urls`` / ``*.txt`` (UT1 layout).
    """
    p = Path(path)
    if p.is_dir():
        entries: list[str] = []
        for child in sorted(p.rglob("*")):
            if child.is_file() and (child.name in ("domains", "urls") or child.suffix == ".txt"):
                entries.extend(read_list(child))
        return entries
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rt", encoding="utf-8", errors="replace") as f:
        return [s for line in f if (s := line.strip()) and not s.startswith("#")]


def _strip_www(host: str) -> str:
    return host[4:] if host.startswith("www.") else host


def _norm_domain(entry: str) -> str:
    e = entry.strip().lower().rstrip(".")
    if "://" in e:
        e = urlsplit(e).hostname or ""
    return _strip_www(e.lstrip("*.").split("/", 1)[0])


def _norm_url_entry(entry: str) -> str:
    e = entry.strip().lower()
    if "://" in e:
        e = e.split("://", 1)[1]
    return _strip_www(e).rstrip("/")


class UrlBlocklist:
    """Decides from a URL alone whether to drop a document; see the module docstring.

    `domains` / `urls` are entries (not files); use `from_files` to load lists. Word lists default
    to the bundled adult-word lists; pass an empty list to switch one off.
    """

    name = "url_blocklist"

    def __init__(
        self,
        domains: Iterable[str] = (),
        urls: Iterable[str] = (),
        banned_words: Iterable[str] | None = None,
        banned_subwords: Iterable[str] | None = None,
        soft_banned_words: Iterable[str] | None = None,
        soft_word_threshold: int = 2,
    ) -> None:
        self.domains = frozenset(d for d in map(_norm_domain, domains) if d)
        self.urls = frozenset(u for u in map(_norm_url_entry, urls) if u)
        self.banned_words = self._words(banned_words, "url_banned_words.txt")
        self.soft_banned_words = self._words(soft_banned_words, "url_soft_words.txt")
        subwords = self._words(banned_subwords, "url_banned_subwords.txt")
        self.banned_subwords = frozenset(_NON_ALNUM.sub("", w) for w in subwords) - {""}
        self._sub_lengths = sorted({len(w) for w in self.banned_subwords})
        self.soft_word_threshold = soft_word_threshold

    @staticmethod
    def _words(words: Iterable[str] | None, default_file: str) -> frozenset[str]:
        source = read_list(_DATA / default_file) if words is None else words
        return frozenset(w.strip().lower() for w in source if w.strip())

    @classmethod
    def from_files(
        cls,
        domain_files: Iterable[str | os.PathLike[str]] = (),
        url_files: Iterable[str | os.PathLike[str]] = (),
        substring_files: Iterable[str | os.PathLike[str]] = (),
        *,
        banned_words: Iterable[str] | None = None,
        banned_subwords: Iterable[str] | None = None,
        soft_banned_words: Iterable[str] | None = None,
        soft_word_threshold: int = 2,
    ) -> UrlBlocklist:
        """Load domain lists (files, or UT1 folders whose ``*/domains`` and ``*/urls`` are both
        read), URL lists, and extra banned-substring lists (added to the bundled ones unless
        `banned_subwords` is given)."""
        domains: list[str] = []
        urls: list[str] = []
        for f in domain_files:
            if Path(f).is_dir():
                for child in sorted(Path(f).rglob("*")):
                    if child.is_file() and child.name.startswith("domains"):
                        domains.extend(read_list(child))
                    elif child.is_file() and child.name.startswith("urls"):
                        urls.extend(read_list(child))
            else:
                domains.extend(read_list(f))
        for f in url_files:
            urls.extend(read_list(f))
        extra_sub = [w for f in substring_files for w in read_list(f)]
        if extra_sub:
            base = (
                read_list(_DATA / "url_banned_subwords.txt") if banned_subwords is None else banned_subwords
            )
            banned_subwords = [*base, *extra_sub]
        return cls(domains, urls, banned_words, banned_subwords, soft_banned_words, soft_word_threshold)

    def _hit(self, statistic: str, entry: str) -> str:
        # the value of a list match is the matched entry
        return f"{self.name}:{statistic}={entry}"

    def check(self, url: str | None) -> str | None:
        """None if the URL passes (or is empty), else ``"url_blocklist:<what>=<matched entry>"``."""
        if not url:
            return None
        raw = url.strip()
        lowered = raw.lower()
        if "://" not in lowered:
            lowered = "http://" + lowered
        try:
            parts = urlsplit(lowered)
            host = (parts.hostname or "").rstrip(".")
            path = parts.path
        except ValueError:
            host, path = "", ""
        host = _strip_www(host)

        if self.domains and host:
            labels = host.split(".")
            for i in range(len(labels)):
                candidate = ".".join(labels[i:])
                if candidate in self.domains:
                    return self._hit("domain", candidate)

        if self.urls and host:
            full = (host + path).rstrip("/")
            if full in self.urls:
                return self._hit("url", full)
            pos = full.find("/")
            while pos != -1:
                prefix = full[:pos]
                if prefix in self.urls:
                    return self._hit("url", prefix)
                pos = full.find("/", pos + 1)

        words = set(_NON_ALNUM.split(lowered))
        hits = words & self.banned_words
        if hits:
            return self._hit("banned_word", min(hits))
        soft = words & self.soft_banned_words
        if self.soft_word_threshold and len(soft) >= self.soft_word_threshold:
            return make_reason(self.name, "soft_word_count", len(soft))

        if self.banned_subwords:
            # Within each alphanumeric run only: joining runs would read Spanish and Portuguese
            # "por-nuestro" / "por-nos" as containing an adult word.
            for token in words:
                n = len(token)
                for length in self._sub_lengths:
                    for i in range(n - length + 1):
                        piece = token[i : i + length]
                        if piece in self.banned_subwords:
                            return self._hit("banned_subword", piece)
        return None
