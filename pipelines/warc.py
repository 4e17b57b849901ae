"""Streaming WARC reading: response records as (headers, payload), with every problem named.

FastWARC does the parsing (about 3x faster than warcio here); warcio is kept only to read the old
ARC format. Two failure modes FastWARC does not report are checked here: a gzip file cut in the
middle (FastWARC just stops) is detected by re-reading the tail after the last record, and a file
that is not a WARC at all surfaces as a named read error instead of an empty result.

A bad record never costs the rest of its file: a body that claims chunked transfer encoding but is
stored de-chunked (pywb and other crawlers do this) is read as it is and marked ``repaired``, and a
record FastWARC cannot parse (an oversized HTTP header block) comes out as a :class:`SkippedRecord`
while reading goes on. Only a stream that cannot be read past (corrupt gzip, garbage) ends the file.
"""

from __future__ import annotations

import codecs
import gzip
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from fastwarc.warc import ArchiveIterator, WarcRecordType

from pipelines import io


class WarcReadError(Exception):
    """The file (or the rest of it) cannot be read; ``reason`` is a short machine-readable name."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class ResponseRecord:
    """One WARC response record, payload already read (up to the size cap) and HTTP-decoded."""

    record_id: str | None
    url: str | None
    date: str | None
    status: int | None
    content_type: str | None  # MIME type from the HTTP header, lower-case, no parameters
    charset: str | None  # charset from the HTTP header
    payload: bytes | None  # None when the record was too large to read
    declared_length: int
    offset: int  # position of the record in the (compressed) file
    truncated: bool = False  # the file ends inside this record
    repaired: str | None = None  # what was wrong and worked around while reading (``bad_chunking``)


@dataclass(slots=True)
class ConversionRecord:
    """One WET ``conversion`` record: Common Crawl's own plain-text extraction of a response.

    ``refers_to`` is the WARC-Record-ID of the response it was converted from, so WET documents can
    carry the same id as documents extracted from the WARC; ``language`` is Common Crawl's CLD2
    guess (``WARC-Identified-Content-Language``, e.g. ``por,eng``), kept for callers that want it.
    """

    record_id: str | None
    refers_to: str | None
    url: str | None
    date: str | None
    content_type: str | None
    language: str | None
    payload: bytes | None  # None when the record was too large to read
    declared_length: int
    offset: int
    truncated: bool = False
    repaired: str | None = None  # as ResponseRecord's; nothing is repaired in WET text yet


@dataclass(slots=True)
class SkippedRecord:
    """A record that could not be parsed at all; reading goes on with the next one.

    It has no row in the output (there is no payload to judge), so readers count it as a failed
    record: ``kept + rejected + skipped == records in the file``. ``record_id`` and ``url`` are set
    when the WARC headers were readable.
    """

    reason: str
    detail: str
    record_id: str | None = None
    url: str | None = None


_R = TypeVar("_R", ResponseRecord, ConversionRecord)


def _header(headers, name: str) -> str | None:
    value = headers.get(name)
    return value if value else None


def iter_responses(path: str, max_record_bytes: int,
                   max_decompressed_bytes: int) -> Iterator[ResponseRecord | SkippedRecord]:
    """Yield the response records of a WARC (or ARC) file; raise WarcReadError when reading breaks.

    Records already yielded stay valid when a later part of the file fails, so a file truncated
    in its last record still contributes everything before the cut.
    """
    head = _peek(path)
    if not head:
        raise WarcReadError("empty_file")
    if head.startswith(b"filedesc://"):
        yield from _iter_arc(path, max_record_bytes)
        return
    if not (head.startswith(b"WARC/") or head.startswith(b"\r\nWARC/")):
        raise WarcReadError("not_a_warc", f"file starts with {head[:16]!r}")

    yield from _iter_warc(
        path, WarcRecordType.response, True, lambda rec: _to_response(rec, max_record_bytes, max_decompressed_bytes)
    )


def _iter_warc(path: str, record_types: WarcRecordType, parse_http: bool,
               convert: Callable[[Any], _R]) -> Iterator[_R | SkippedRecord]:
    """Iterate one record type of a WARC file, converted by ``convert``, with truncation detected.

    The last record is held back until the gzip tail is checked: a file cut inside it yields it
    with ``truncated = True`` and then raises ``truncated_gzip``. A read error that FastWARC can
    step past (it resumes at the next record) costs only that record, yielded as a SkippedRecord;
    a second error in a row, or an error at the very end, means the stream itself is broken.
    """
    last_offset = 0
    held: _R | SkippedRecord | None = None  # yielded once the next record parses: the file may end inside it
    error: Exception | None = None  # a read error not yet known to be confined to one record
    gzipped = head_is_gzip(path)
    # FastWARC picks its decompressor from a path's suffix, but sniffs an open stream: a plain WARC
    # saved as .warc.gz (a download decoded on the way) is read through a stream.
    native = not io.is_url(path) and path.endswith(".gz") == gzipped
    stream = path if native else io.open_input(path)
    try:
        records = iter(ArchiveIterator(
            stream,
            record_types=record_types,
            parse_http=parse_http,
            # Transfer and content encodings are undone here, record by record: FastWARC's own decoder
            # fails the whole stream on a body that only claims to be chunked, and cannot stop early
            # under a size cap without losing its place in the file.
            auto_decode="none",
            fsspec_args=False,
        ))
        while True:
            try:
                rec = next(records)
                converted = _convert(convert, rec)
            except StopIteration:
                break
            except Exception as err:  # OSError from FastWARC, mostly; anything else it raises is read alike
                if error is not None:
                    break
                error = err
                continue
            last_offset = rec.stream_pos
            if held is not None:
                yield held
            if error is not None:
                yield SkippedRecord("unreadable_record", str(error))
                error = None
            held = converted
    finally:
        if not native:
            stream.close()
    if error is not None:
        if held is not None:
            yield held
        raise WarcReadError("warc_read_error", str(error))
    if not gzipped:
        if held is not None:
            yield held
        return
    try:
        _check_gzip_tail(path, last_offset)
    except WarcReadError as err:
        if held is not None:
            if not isinstance(held, SkippedRecord):
                held.truncated = err.reason == "truncated_gzip" and err.detail.startswith("member 0 ")
            yield held
        raise
    if held is not None:
        yield held


def _convert(convert: Callable[[Any], _R], rec) -> _R | SkippedRecord:
    """``convert(rec)``, with a parse error in this record's own fields confined to the record.

    OSError passes through: it comes from the stream, which the caller judges.
    """
    try:
        return convert(rec)
    except OSError:
        raise
    except Exception as err:  # a malformed field must not stop the file
        headers = rec.headers
        return SkippedRecord(f"record_error:{type(err).__name__}", str(err)[:300],
                             _header(headers, "WARC-Record-ID"), _clean_uri(_header(headers, "WARC-Target-URI")))


def read_warcinfo(path: str, max_bytes: int = 65536) -> dict[str, str]:
    """The fields of the file's leading ``warcinfo`` record (``isPartOf``, ``software`` ...).

    Only the first record is parsed; ``{}`` when it is not a warcinfo record or the file cannot be
    read (the main read names that problem).
    """
    try:
        with io.open_input(path) as fh:
            first = next(iter(ArchiveIterator(fh, parse_http=False, auto_decode="none")), None)
            if first is None or first.record_type != WarcRecordType.warcinfo:
                return {}
            body = first.reader.read(max_bytes)
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in body.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            fields.setdefault(key.strip(), value.strip())
    return fields


def iter_conversions(path: str, max_record_bytes: int) -> Iterator[ConversionRecord | SkippedRecord]:
    """Yield the ``conversion`` records of a WET file; raise WarcReadError when reading breaks.

    Same guarantees as :func:`iter_responses`: an empty, foreign or truncated file is a named
    error, and records before a cut are still yielded.
    """
    head = _peek(path)
    if not head:
        raise WarcReadError("empty_file")
    if not (head.startswith(b"WARC/") or head.startswith(b"\r\nWARC/")):
        raise WarcReadError("not_a_warc", f"file starts with {head[:16]!r}")
    yield from _iter_warc(path, WarcRecordType.conversion, False, lambda rec: _to_conversion(rec, max_record_bytes))


def _to_conversion(rec, max_record_bytes: int) -> ConversionRecord:
    headers = rec.headers
    declared = int(rec.content_length or 0)
    payload = rec.reader.read(max_record_bytes + 1) if declared <= max_record_bytes else None
    if payload is not None and len(payload) > max_record_bytes:
        payload = None
    ctype = _header(headers, "Content-Type")
    return ConversionRecord(
        record_id=_header(headers, "WARC-Record-ID"),
        refers_to=_header(headers, "WARC-Refers-To"),
        url=_clean_uri(_header(headers, "WARC-Target-URI")),
        date=_header(headers, "WARC-Date"),
        content_type=ctype.split(";", 1)[0].strip().lower() if ctype else None,
        language=_header(headers, "WARC-Identified-Content-Language"),
        payload=payload,
        declared_length=declared,
        offset=rec.stream_pos,
    )


def _to_response(rec, max_record_bytes: int, max_decompressed_bytes: int) -> ResponseRecord:
    headers = rec.headers
    http = rec.http_headers if rec.is_http else None
    declared = int(rec.content_length or 0)
    payload: bytes | None = None
    repaired = None
    if declared <= max_record_bytes:
        payload = rec.reader.read()
        if http is not None and payload:
            transfer = http.get("Transfer-Encoding")
            if transfer and "chunked" in transfer.lower():
                body = dechunk(payload)
                payload, repaired = (payload, "bad_chunking") if body is None else (body, None)
            payload = decode_content(payload, http.get("Content-Encoding"), max_decompressed_bytes)
    ctype = rec.http_content_type if http is not None else None
    return ResponseRecord(
        record_id=_header(headers, "WARC-Record-ID"),
        url=_clean_uri(_header(headers, "WARC-Target-URI")),
        date=_header(headers, "WARC-Date"),
        status=http.status_code if http is not None else None,
        content_type=ctype.lower() if ctype else None,
        charset=rec.http_charset if http is not None else None,
        payload=payload,
        declared_length=declared,
        offset=rec.stream_pos,
        repaired=repaired,
    )


def dechunk(raw: bytes) -> bytes | None:
    """Undo chunked transfer encoding; None when ``raw`` is not chunked (the caller keeps it as is).

    Archives such as pywb's keep ``Transfer-Encoding: chunked`` in the stored header while storing the
    body de-chunked; warcio reads such a body as it is, and so do we. Framing is checked strictly
    (hex size line, CRLF after each chunk) so a page is never mistaken for chunks; a last chunk cut
    short (the crawler stopped reading) keeps what arrived.
    """
    parts: list[bytes] = []
    pos, end = 0, len(raw)
    while pos < end:
        eol = raw.find(b"\r\n", pos, pos + 256)  # a size line is short
        if eol < 0:
            return None
        size_field = raw[pos:eol].split(b";", 1)[0].strip()
        if not size_field or size_field.strip(b"0123456789abcdefABCDEF"):
            return None
        size = int(size_field, 16)
        if size == 0:
            return b"".join(parts)
        start, pos = eol + 2, eol + 2 + size
        if pos > end and not parts:  # a first chunk longer than the body: not chunk framing
            return None
        parts.append(raw[start:pos])
        if pos < end:
            if not raw.startswith(b"\r\n", pos):
                return None
            pos += 2
    return b"".join(parts) if parts else None


def decode_content(raw: bytes, encoding: str | None, cap: int) -> bytes | None:
    """Undo an HTTP Content-Encoding, inflating at most ``cap`` bytes (None when a bomb exceeds it).

    Archives often store bodies already decoded while keeping the header, so a body that does not
    start like its declared encoding is returned as it is; a corrupt one too, for sniffing to judge.
    """
    enc = (encoding or "").strip().lower()
    if enc in ("gzip", "x-gzip", "deflate"):
        if enc != "deflate" and not raw.startswith(b"\x1f\x8b"):
            return raw
        wbits = 47 if enc != "deflate" else (15 if raw[:1] == b"\x78" else -15)
        d = zlib.decompressobj(wbits)
        try:
            out = d.decompress(raw, cap + 1)
        except zlib.error:
            return raw
        return None if len(out) > cap else out
    if enc == "br":
        import brotli

        try:
            dec = brotli.Decompressor()
            parts, size = [], 0
            for i in range(0, len(raw), 1024):  # small input steps bound the output overshoot
                part = dec.process(raw[i : i + 1024])
                size += len(part)
                if size > cap:
                    return None
                parts.append(part)
            return b"".join(parts)
        except brotli.error:
            return raw
    return raw


def _clean_uri(uri: str | None) -> str | None:
    if uri is None:
        return None
    uri = uri.strip()
    if uri.startswith("<") and uri.endswith(">"):  # WARC/1.0 drafts wrote <uri>
        uri = uri[1:-1]
    return uri or None


def _peek(path: str, n: int = 64) -> bytes:
    """First bytes of the (decompressed) file, to tell WARC from ARC from garbage."""
    with io.open_input(path) as fh:
        raw = fh.read(4096)
    if raw[:2] == b"\x1f\x8b":
        try:
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw, n)
        except zlib.error as err:
            raise WarcReadError("gzip_error", str(err)) from None
    return raw[:n]


def head_is_gzip(path: str) -> bool:
    with io.open_input(path) as fh:
        return fh.read(2) == b"\x1f\x8b"


def _check_gzip_tail(path: str, offset: int) -> None:
    """Verify every gzip member from ``offset`` to the end is complete.

    FastWARC ends iteration quietly when the last member is cut short; a truncated download must
    be reported, not taken for a complete file.
    """
    with io.open_input(path) as fh:
        fh.seek(offset)
        data = fh.read()
    member = 0
    while data:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            while True:
                chunk = d.decompress(data, 1 << 20)
                data = d.unconsumed_tail
                if d.eof or not chunk and not data:
                    break
        except zlib.error as err:
            raise WarcReadError("gzip_error", f"after offset {offset}: {err}") from None
        if not d.eof:
            raise WarcReadError("truncated_gzip", f"member {member} after offset {offset} ends early")
        data = d.unused_data
        member += 1
        if data and data.strip(b"\x00\r\n ") == b"":
            break


def _iter_arc(path: str, max_record_bytes: int) -> Iterator[ResponseRecord]:
    from warcio.archiveiterator import ArchiveIterator as WarcioIterator
    from warcio.exceptions import ArchiveLoadFailed

    try:
        with io.open_input(path) as fh:
            for rec in WarcioIterator(fh, arc2warc=True):
                if rec.rec_type != "response":
                    continue
                http = rec.http_headers
                ctype_full = http.get_header("Content-Type") if http else None
                ctype, charset = _split_content_type(ctype_full)
                declared = int(rec.rec_headers.get_header("Content-Length") or 0)
                payload = rec.content_stream().read(max_record_bytes + 1)
                yield ResponseRecord(
                    record_id=rec.rec_headers.get_header("WARC-Record-ID"),
                    url=_clean_uri(rec.rec_headers.get_header("WARC-Target-URI")),
                    date=rec.rec_headers.get_header("WARC-Date"),
                    status=int(http.get_statuscode()) if http and http.get_statuscode().isdigit() else None,
                    content_type=ctype,
                    charset=charset,
                    payload=payload if len(payload) <= max_record_bytes else None,
                    declared_length=declared,
                    offset=-1,
                )
    except (ArchiveLoadFailed, OSError, EOFError, gzip.BadGzipFile, zlib.error, ValueError) as err:
        raise WarcReadError("arc_read_error", str(err)) from None


def _split_content_type(value: str | None) -> tuple[str | None, str | None]:
    if not value:
        return None, None
    parts = [p.strip() for p in value.split(";")]
    charset = None
    for p in parts[1:]:
        if p.lower().startswith("charset="):
            charset = p.split("=", 1)[1].strip("\"' ") or None
    return (parts[0].lower() or None), charset


# --- what the payload is ------------------------------------------------------------------------

_BINARY_MAGIC = (
    b"\x89PNG", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"%PDF", b"PK\x03\x04", b"\x1f\x8b", b"RIFF",
    b"OggS", b"\x00\x00\x01\x00", b"\x00asm", b"ID3", b"fLaC", b"\x7fELF", b"MZ", b"BM", b"II*\x00",
    b"MM\x00*", b"wOFF", b"wOF2", b"\xd0\xcf\x11\xe0", b"7z\xbc\xaf", b"Rar!", b"\x28\xb5\x2f\xfd",
)
_HTML_SNIFF = re.compile(
    rb"<(?:!doctype\s+html|html|head|body|meta|title|div|p|table|article|script|a\s|h[1-6])[\s/>]",
    re.IGNORECASE,
)
_HTML_TYPES = ("text/html", "application/xhtml+xml", "application/xhtml", "text/xhtml")


def sniff_payload(payload: bytes) -> str:
    """Classify a payload by its content alone: ``html``, ``binary`` or ``text``."""
    head = payload[:2048].lstrip(b"\xef\xbb\xbf\xff\xfe\xfe\xff \t\r\n")
    if head.startswith(_BINARY_MAGIC):
        return "binary"
    sample = payload[:1024]
    if sample and sample.count(b"\x00") * 100 > len(sample):  # UTF-16 text is rare on the web
        return "binary"
    if _HTML_SNIFF.search(head):
        return "html"
    control = sum(1 for b in sample if b < 9 or 13 < b < 32)
    if sample and control * 20 > len(sample):
        return "binary"
    return "text"


def html_decision(content_type: str | None, payload: bytes) -> str | None:
    """None when the payload should be treated as HTML, else the reject reason.

    Headers are trusted only as far as the bytes agree: HTML served as text/plain or with no type
    is still HTML, and an image served as text/html is not.
    """
    kind = sniff_payload(payload)
    if kind == "html":
        return None
    if kind == "binary":
        return "binary_payload"
    if content_type and content_type.startswith(_HTML_TYPES):
        return None
    return f"not_html:{content_type or 'none'}"


# --- text decoding ------------------------------------------------------------------------------

_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]{1,40})""", re.IGNORECASE)


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name.strip().lower()).name
    except LookupError:
        return None


def decode_html(payload: bytes, http_charset: str | None) -> tuple[str, str]:
    """Decode with the HTTP charset, then the HTML meta charset, then UTF-8, then a detector.

    Declared charsets are tried strictly, so bytes that claim UTF-8 but are Latin-1 fall through to
    detection instead of turning accents into replacement characters. Returns (text, encoding).
    """
    meta = _META_CHARSET.search(payload[:4096])
    candidates = [_codec(http_charset), _codec(meta.group(1).decode("ascii", "ignore") if meta else None), "utf-8"]
    for enc in dict.fromkeys(c for c in candidates if c):
        try:
            return payload.decode(enc), enc
        except (UnicodeError, LookupError):  # UnicodeError: codecs such as idna or "undefined"
            continue
    enc = _detect(payload[:65536]) or "cp1252"
    return payload.decode(enc, errors="replace"), enc


def _detect(sample: bytes) -> str | None:
    """charset-normalizer's pick; among equally good candidates prefer windows-1252, the web's default
    for undeclared Western pages (WHATWG), which the detector otherwise ties with cp1250 on short texts."""
    from charset_normalizer import from_bytes

    matches = list(from_bytes(sample))
    if not matches:
        return None
    chaos = min(m.chaos for m in matches)
    coherence = max(m.coherence for m in matches if m.chaos == chaos)
    tied = [m for m in matches if m.chaos == chaos and m.coherence >= coherence - 1e-6]
    names = [_codec(m.encoding) for m in tied]
    if "cp1252" in names:
        return "cp1252"
    return next((n for n in names if n), None)
