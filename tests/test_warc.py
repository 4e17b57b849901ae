import pytest

from pipelines.warc import WarcReadError, decode_html, html_decision, iter_responses, sniff_payload
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
