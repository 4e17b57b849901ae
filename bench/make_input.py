"""Build the benchmark input: >= N HTML response records in real WARC format.

The pages are the real archives in ../shared/data/warc (Common Crawl, Internet Archive and wget
captures) plus the bundled sample, repeated with fresh record ids and URLs until there are enough
HTML responses; non-HTML records ride along in their real proportion. Output is deterministic.

Two modes. ``distinct`` (the default, the one targets are judged on): every HTML page's text is made
unique, so no stage can profit from seeing the same text again (filter and dedup memoise per text
chunk and per normalised document): a seeded RNG per page replaces about one word in six of every
text node outside tags, scripts and styles with another word of the same page, keeping the page's
language, markup and length. ``repeated``: each page is copied unchanged (~14 times for 5,000 pages),
as earlier benchmarks did; it flatters any cache.

    python bench/make_input.py OUT_DIR [--html-records 5000] [--files 8] [--mode distinct|repeated]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
from fastwarc.warc import ArchiveIterator, WarcRecordType
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from pipelines.demo.sample import write_sample
from pipelines.warc import html_decision

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "warc"
MODES = ("distinct", "repeated")
SWAP_SHARE = 0.17  # words replaced per page in distinct mode: 5-word shingles keep Jaccard ~0.3, no near-dups
MIN_OWN_WORDS = 100  # pages with fewer text words draw replacements from the input's common words
# Markup that stays as it is: scripts, styles, comments and tags. Between them lies the page's text.
_MARKUP = re.compile(rb"(<script\b.*?</script\s*>|<style\b.*?</style\s*>|<!--.*?-->|<[^>]*>)", re.S | re.I)
_SPACE = re.compile(rb"(\s+)")


def collect_records(paths: list[Path]) -> list[tuple[str, str, list[tuple[str, str]], bytes, bool]]:
    """(url, status line, HTTP headers, payload, is_html_2xx) for every parsable response record."""
    out = []
    for path in paths:
        try:
            for rec in ArchiveIterator(str(path), record_types=WarcRecordType.response, parse_http=True,
                                       fsspec_args=False):
                if not rec.is_http:
                    continue
                http = rec.http_headers
                headers = [(k, v) for k, v in http.items()
                           if k.lower() not in ("content-length", "transfer-encoding", "content-encoding")]
                payload = rec.reader.read()
                status = f"{http.status_code or 200} {http.reason_phrase or 'OK'}"
                ok = 200 <= (http.status_code or 0) < 300 and html_decision(rec.http_content_type, payload) is None
                out.append((rec.headers.get("WARC-Target-URI") or "http://unknown/", status, headers, payload, ok))
        except OSError:
            continue  # broken archives are the tests' business, not the benchmark's
    return out


def split_words(html: bytes) -> tuple[list[bytes], np.ndarray, np.ndarray]:
    """The page cut into pieces that join back to it, the indexes of the pieces that are words of its
    text (whitespace-separated, between tags, outside scripts, styles and comments), and the text
    node each of those words is in."""
    parts: list[bytes] = []
    words: list[int] = []
    nodes: list[int] = []
    for k, piece in enumerate(_MARKUP.split(html)):
        if k % 2:  # markup: kept as it is
            parts.append(piece)
            continue
        for j, token in enumerate(_SPACE.split(piece)):
            if token:
                if j % 2 == 0:
                    words.append(len(parts))
                    nodes.append(k)
                parts.append(token)
    return parts, np.asarray(words, dtype=np.int64), np.asarray(nodes, dtype=np.int64)


def vary_page(html: bytes, seed: list[int], seen: set[bytes], pool: list[bytes] | None = None,
              tries: int = 8) -> bytes:
    """``html`` with about ``SWAP_SHARE`` of its text words, and at least one word of every text node,
    replaced by other words of the same page (from ``pool`` for pages of under ``MIN_OWN_WORDS``).

    An extractor keeps some text nodes and drops others, so every node changes, and a node of two or
    more words is drawn again until its text is one no page had before (``seen`` holds their digests):
    whatever part of a page is kept then differs from every other page. Pages with few words ("Click
    here!") draw from the shared ``pool``, or their variants would soon run out of combinations. Bytes
    are moved whole, so any ASCII-compatible charset stays valid. A page without text words cannot
    vary and is returned as it is.
    """
    parts, words, nodes = split_words(html)
    if len(words) == 0:
        return html
    source = pool if pool and len(words) < MIN_OWN_WORDS else [parts[i] for i in words]
    rng = np.random.default_rng(seed)
    out = list(parts)
    for node in np.split(words, np.flatnonzero(np.diff(nodes)) + 1):
        for _ in range(tries):
            chosen = node[rng.random(len(node)) < SWAP_SHARE]
            if len(chosen) == 0:
                chosen = node[rng.integers(0, len(node), 1)]
            for target, k in zip(chosen, rng.integers(0, len(source), len(chosen)), strict=True):
                out[target] = source[k]
            if len(node) < 2:
                break
            digest = hashlib.blake2b(b" ".join(out[i] for i in node), digest_size=12).digest()
            if digest not in seen:
                seen.add(digest)
                break
    return b"".join(out)


def word_pool(payloads: list[bytes], size: int = 20_000) -> list[bytes]:
    """The ``size`` most frequent text words of the pages, most frequent first (ties by bytes)."""
    counts: Counter[bytes] = Counter()
    for html in payloads:
        parts, words, _ = split_words(html)
        counts.update(parts[i] for i in words)
    return [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:size]]


def build(out_dir: Path, html_records: int, n_files: int, mode: str = "distinct",
          shared: Path | None = SHARED) -> dict:
    """Write the input (or reuse the one there, if it was built with these settings); returns its meta.

    ``shared``: the folder of real archives to include (None: the bundled sample alone).
    """
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    meta_path = out_dir / "input.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        # inputs written before modes existed repeated their pages
        if (meta.get("html_records", 0) >= html_records and meta.get("files") == n_files
                and meta.get("mode", "repeated") == mode):
            return meta
    sample_dir = out_dir / "_sample"
    sources = sorted(shared.glob("*.warc.gz")) if shared is not None and shared.is_dir() else []
    sources += write_sample(sample_dir)
    records = collect_records(sources)
    per_round = sum(1 for r in records if r[4])
    rounds = -(-html_records // max(per_round, 1))
    writers = []
    buffers = []
    for _ in range(n_files):
        buf = io.BytesIO()
        buffers.append(buf)
        writers.append(WARCWriter(buf, gzip=True))
    n_html = n_total = 0
    seen: set[bytes] = set()
    pool = word_pool([r[3] for r in records if r[4]]) if mode == "distinct" else []
    for r in range(rounds):
        for i, (url, status, headers, payload, ok) in enumerate(records):
            if ok and mode == "distinct":
                payload = vary_page(payload, [r, i], seen, pool)
            sep = "&" if "?" in url else "?"
            rid = uuid.uuid5(uuid.NAMESPACE_URL, f"bench/{r}/{i}")
            http = StatusAndHeaders(status, headers, protocol="HTTP/1.1")
            writer = writers[n_total % n_files]
            writer.write_record(writer.create_warc_record(
                f"{url}{sep}bench_round={r}", "response", payload=io.BytesIO(payload), http_headers=http,
                warc_headers_dict={"WARC-Record-ID": f"<urn:uuid:{rid}>", "WARC-Date": "2024-02-20T00:00:00Z"},
            ))
            n_total += 1
            n_html += ok
    total_bytes = 0
    for k, buf in enumerate(buffers):
        path = out_dir / f"bench-{k:04d}.warc.gz"
        path.write_bytes(buf.getvalue())
        total_bytes += path.stat().st_size
    meta = {"html_records": n_html, "records": n_total, "files": n_files, "bytes": total_bytes, "mode": mode,
            "sources": [str(s) for s in sources], "rounds": rounds}
    meta_path.write_text(json.dumps(meta, indent=2))
    return meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--html-records", type=int, default=5000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--mode", choices=MODES, default="distinct")
    args = parser.parse_args()
    print(json.dumps(build(args.out_dir, args.html_records, args.files, args.mode), indent=2))


if __name__ == "__main__":
    main()
