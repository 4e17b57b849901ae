import zlib

import pytest

from pipelines.warc import (
    SkippedRecord,
    WarcReadError,
    dechunk,
    decode_html,
    html_decision,
    iter_responses,
    read_warcinfo,
    sniff_payload,
)
from tests.conftest import gzip_bytes, html_page

CAP = 10_000_000


def _read(path):
    return list(iter_responses(str(path), CAP, CAP))


def test_reads_responses_with_headers(warc_builder):
    path = (warc_builder().request("http://example.com/")
            .response("http://example.com/", html_page("Hi", ["Hello world."]).encode())
            .response("http://example.com/404", b"not found", "text/html", status="404 Not Found").write())
    recs = _read(path)
    assert [r.status for r in recs] == [200, 404]
    assert recs[0].url == "http://example.com/" and recs[0].content_type == "text/html"
    assert recs[0].charset == "utf-8" and recs[0].date == "2024-02-20T10:00:00Z"
    assert recs[0].record_id.startswith("<urn:uuid:") and b"Hello world." in recs[0].payload


def test_uncompressed_warc(warc_builder):
    path = warc_builder("plain.warc", gzip_members=False).response("http://a/", b"<html>x</html>").write()
    assert len(_read(path)) == 1


def test_truncated_gzip_is_reported_and_last_record_marked(warc_builder, tmp_path):
    full = warc_builder().response("http://a/1", b"<html>" + b"a" * 5000 + b"</html>") \
        .response("http://a/2", b"<html>" + b"b" * 50000 + b"</html>").write()
    data = full.read_bytes()
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(data[: len(data) - 200])
    seen = []
    with pytest.raises(WarcReadError) as err:
        for rec in iter_responses(str(cut), CAP, CAP):
            seen.append(rec)
    assert err.value.reason == "truncated_gzip"
    assert [r.url for r in seen] == ["http://a/1", "http://a/2"]
    assert [r.truncated for r in seen] == [False, True]


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "empty_file"),
    (b"this is not a warc file at all\n" * 10, "not_a_warc"),
    (b"\x1f\x8b\x08\x00garbage-after-gzip-magic" * 5, "gzip_error"),
    (gzip_bytes(b"<html>a web page, not a WARC</html>"), "not_a_warc"),
])
def test_broken_files_have_named_reasons(tmp_path, content, reason):
    path = tmp_path / "broken.warc.gz"
    path.write_bytes(content)
    with pytest.raises(WarcReadError) as err:
        _read(path)
    assert err.value.reason == reason


def test_record_over_cap_has_no_payload(warc_builder):
    path = warc_builder().response("http://a/", b"<html>" + b"x" * 5000 + b"</html>").write()
    (rec,) = list(iter_responses(str(path), 1024, 1024))
    assert rec.payload is None and rec.declared_length > 1024


def test_content_encoding_is_decoded(warc_builder):
    body = html_page("Gz", ["Compressed body text."]).encode()
    path = warc_builder().response("http://a/", gzip_bytes(body), extra_headers=[("Content-Encoding", "gzip")]).write()
    (rec,) = _read(path)
    assert rec.payload == body


def test_sniffing_and_html_decision():
    assert sniff_payload(b"\x89PNG\r\n\x1a\n....") == "binary"
    assert sniff_payload(b"  <!DOCTYPE html><html>") == "html"
    assert sniff_payload(b"just some words") == "text"
    assert html_decision("text/html", b"%PDF-1.4 ...") == "binary_payload"
    assert html_decision(None, b"<html><body>x</body></html>") is None
    assert html_decision("text/plain", b"<html><body>x</body></html>") is None
    assert html_decision("text/plain", b"User-agent: *") == "not_html:text/plain"
    assert html_decision("text/html", b"plain words served as html") is None


def test_decode_html_falls_back_when_declared_charset_lies():
    latin = "<html><p>Não há ação sem coração; Größe.</p></html>".encode("latin-1")
    text, enc = decode_html(latin, "utf-8")
    assert "coração" in text and "Größe" in text and enc != "utf-8"
    meta = '<html><head><meta charset="windows-1252"></head><p>café</p></html>'.encode("cp1252")
    assert "café" in decode_html(meta, None)[0]
    assert decode_html("<p>olá</p>".encode(), None) == ("<p>olá</p>", "utf-8")


def _chunked(body: bytes, size: int) -> bytes:
    """``body`` in HTTP/1.1 chunked framing, ``size`` bytes a chunk (with an extension on the first)."""
    parts = [b"%x%s\r\n%s\r\n" % (len(body[i:i + size]), b";ext=1" if i == 0 else b"", body[i:i + size])
             for i in range(0, len(body), size)]
    return b"".join(parts) + b"0\r\nX-Trailer: t\r\n\r\n"


def test_dechunk_undoes_framing_and_refuses_what_is_not_chunked():
    page = html_page("C", ["chunked text"]).encode()
    framed = _chunked(page, 50)
    assert dechunk(framed) == page
    assert dechunk(framed[: framed.rindex(b"\r\n0\r\n") - 5]) == page[:-5]  # the last chunk cut short
    assert dechunk(page) is None  # an HTML page is not a size line
    assert dechunk(b"cafe\r\nplain text whose first word is hex") is None  # 0xcafe bytes do not fit
    assert dechunk(b"5\r\nhello; no CRLF after the chunk") is None
    assert dechunk(b"") is None


def test_chunked_header_on_a_dechunked_body_costs_only_a_repair(warc_builder):
    """pywb-style archives keep ``Transfer-Encoding: chunked`` but store the body de-chunked."""
    page = html_page("P", ["stored de-chunked"]).encode()
    path = (warc_builder().response("http://a/1", page)
            .response("http://a/2", page, extra_headers=[("Transfer-Encoding", "chunked")])
            .response("http://a/3", _chunked(page, 64), extra_headers=[("Transfer-Encoding", "chunked")])
            .response("http://a/4", page).write())
    raw = zlib.decompressobj(47).decompress(path.read_bytes())  # the first member holds record 1 only
    assert b"Transfer-Encoding: chunked" not in raw
    recs = _read(path)
    assert [r.url for r in recs] == ["http://a/1", "http://a/2", "http://a/3", "http://a/4"]
    assert [r.payload == page for r in recs] == [True] * 4
    assert [r.repaired for r in recs] == [None, "bad_chunking", None, None]


def test_record_fastwarc_cannot_parse_is_skipped_and_reading_goes_on(warc_builder):
    path = (warc_builder().response("http://a/1", b"<html>one</html>")
            .response("http://a/huge-header", b"<html>x</html>", extra_headers=[("X-Long", "a" * 40_000)])
            .response("http://a/3", b"<html>three</html>").write())
    recs = _read(path)
    assert [type(r).__name__ for r in recs] == ["ResponseRecord", "SkippedRecord", "ResponseRecord"]
    assert [r.url for r in recs] == ["http://a/1", None, "http://a/3"]
    skipped = recs[1]
    assert isinstance(skipped, SkippedRecord) and skipped.reason == "unreadable_record" and skipped.detail


def test_garbage_between_gzip_members_ends_the_file_after_the_records_before(warc_builder, tmp_path):
    first = warc_builder("a.warc.gz").response("http://a/1", b"<html>one</html>").write().read_bytes()
    rest = warc_builder("b.warc.gz").response("http://a/2", b"<html>two</html>").write().read_bytes()
    path = tmp_path / "garbage-inside.warc.gz"
    path.write_bytes(first + b"\x1f\x8b\x08\x00 not really gzip data at all" + rest)
    seen = []
    with pytest.raises(WarcReadError) as err:
        for rec in iter_responses(str(path), CAP, CAP):
            seen.append(rec.url)
    assert err.value.reason == "warc_read_error"
    assert seen == ["http://a/1"]  # once: a record is never yielded twice on the way out


def test_read_warcinfo(warc_builder):
    path = warc_builder().warcinfo({"isPartOf": "CC-MAIN-2024-22", "software": "Nutch"}) \
        .response("http://a/", b"<html>x</html>").write()
    assert read_warcinfo(str(path)) == {"isPartOf": "CC-MAIN-2024-22", "software": "Nutch"}
    no_info = warc_builder("noinfo.warc.gz").response("http://a/", b"<html>x</html>").write()
    assert read_warcinfo(str(no_info)) == {}
    garbage = no_info.with_name("garbage.warc.gz")
    garbage.write_bytes(b"not a warc at all" * 10)
    assert read_warcinfo(str(garbage)) == {}


def test_charsets_that_are_not_text_codecs_fall_through():
    page = "<html><p>ação</p></html>".encode()
    for bogus in ("idna", "undefined", "base64", "no-such-charset"):
        assert decode_html(page, bogus) == ("<html><p>ação</p></html>", "utf-8")


def test_compression_is_read_from_the_bytes_not_the_name(warc_builder, tmp_path):
    """A download decoded on the way keeps its .gz name; a gzip file may lack one."""
    plain = warc_builder("plain.warc", gzip_members=False).response("http://a/", b"<html>x</html>").write()
    gz = warc_builder("gz.warc.gz").response("http://a/", b"<html>x</html>").write()
    for data, name in ((plain.read_bytes(), "decoded.warc.gz"), (gz.read_bytes(), "gzip-without-suffix.warc")):
        path = tmp_path / name
        path.write_bytes(data)
        assert [r.url for r in _read(path)] == ["http://a/"]
