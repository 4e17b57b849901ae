"""The extract stage: WARC response records to documents with their main text.

Keeps 2xx responses whose payload is HTML (by header or by content), decodes them with the right
charset, and extracts the main text with trafilatura (precision-oriented, as FineWeb does) or
resiliparse (about 20x faster, somewhat noisier). Every response record ends up either as a
document or as a rejected row with its reason; file-level problems are failures with a reason.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from urllib.parse import urlsplit

import pyarrow as pa

from pipelines import io
from pipelines.config import Config, ExtractConfig
from pipelines.runner import MAX_FAILURES_LISTED
from pipelines.schema import EXTRACT_REJECTED_SCHEMA, EXTRACT_SCHEMA, REJECT_REASON
from pipelines.stage import Stage, rejected_dir
from pipelines.warc import WarcReadError, decode_html, html_decision, iter_responses

_SNAPSHOT = re.compile(r"CC-MAIN-\d{4}-\d{2}")
WARC_SUFFIXES = (".warc.gz", ".warc", ".arc.gz", ".arc", ".warc.zst", ".gz")


class RecordTimeout(Exception):
    """Extraction of one record ran past ``record_timeout_s``."""


@contextmanager
def time_limit(seconds: float):
    """Raise RecordTimeout in this block after ``seconds`` (SIGALRM; a no-op off the main thread).

    Ray runs tasks on the worker's main thread, so the limit holds inside stage tasks.
    """
    if threading.current_thread() is not threading.main_thread() or seconds <= 0:
        yield
        return

    def _raise(signum, frame):  # noqa: ARG001 - signal handler signature
        raise RecordTimeout()

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def make_extractor(cfg: ExtractConfig) -> Callable[[str], str | None]:
    """Return ``html -> text`` for the configured extractor (imports happen once, here)."""
    if cfg.extractor == "resiliparse":
        from resiliparse.extract.html2text import extract_plain_text
        from resiliparse.parse.html import HTMLTree

        def resiliparse_extract(html: str) -> str | None:
            tree = HTMLTree.parse(html)
            return extract_plain_text(
                tree, preserve_formatting=True, main_content=True, list_bullets=True, alt_texts=False,
                links=False, form_fields=False, noscript=False, comments=cfg.include_comments,
            )

        return resiliparse_extract

    import trafilatura

    def trafilatura_extract(html: str) -> str | None:
        return trafilatura.extract(
            html,
            favor_precision=cfg.favor_precision,
            include_comments=cfg.include_comments,
            include_tables=cfg.include_tables,
            include_images=False,
            include_links=False,
            deduplicate=False,
            with_metadata=False,
            output_format="txt",
        )

    return trafilatura_extract


def doc_id(record_id: str | None, source: str, offset: int, url: str | None) -> str:
    """Stable id: a hash of the WARC record id (or of file, offset and URL when the record has none)."""
    key = record_id or f"{source}@{offset}@{url}"
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def domain_of(url: str | None) -> str | None:
    if not url:
        return None
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return host.lower().rstrip(".") if host else None


def snapshot_of(path: str, default: str | None) -> str | None:
    m = _SNAPSHOT.search(path)
    return m.group(0) if m else default


_BLANK_LINES = re.compile(r"\n{3,}")


def normalise_text(text: str) -> str:
    """Trim trailing spaces per line and collapse runs of blank lines (extractors differ here)."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


class ExtractStage(Stage):
    """WARC files in, one Parquet of documents (and one of rejected records) per WARC file out."""

    name = "extract"
    input_suffixes = WARC_SUFFIXES

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self._extract: Callable[[str], str | None] | None = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_extract"] = None  # rebuilt in each worker; closures over C extensions don't pickle
        return state

    def process_shard(self, input_path: str, output_dir: str, shard: str) -> dict:
        cfg = self.config.extract
        if self._extract is None:
            self._extract = make_extractor(cfg)
        started = time.perf_counter()
        snapshot = snapshot_of(input_path, cfg.snapshot)
        kept_w = io.AtomicParquetWriter(os.path.join(output_dir, f"{shard}.parquet"), EXTRACT_SCHEMA)
        rej_w = io.AtomicParquetWriter(
            os.path.join(rejected_dir(output_dir), f"{shard}.parquet"), EXTRACT_REJECTED_SCHEMA
        )
        kept: list[dict] = []
        rejected: list[dict] = []
        reasons: Counter = Counter()
        failures: list[dict] = []
        failure_counts: Counter = Counter()
        docs_in = bytes_out = 0

        def fail(reason: str, detail: str = "", record: str | None = None) -> None:
            failure_counts[reason] += 1
            if len(failures) < MAX_FAILURES_LISTED:
                failures.append({"stage": self.name, "file": input_path, "record": record,
                                 "reason": reason, "detail": detail[:300]})

        def flush(force: bool = False) -> None:
            if kept and (force or len(kept) >= cfg.batch_rows):
                kept_w.write(pa.Table.from_pylist(kept, EXTRACT_SCHEMA))
                kept.clear()
            if rejected and (force or len(rejected) >= cfg.batch_rows):
                rej_w.write(pa.Table.from_pylist(rejected, EXTRACT_REJECTED_SCHEMA))
                rejected.clear()

        try:
            try:
                for rec in iter_responses(input_path, cfg.max_record_bytes, cfg.max_decompressed_bytes):
                    docs_in += 1
                    row = {
                        "id": doc_id(rec.record_id, input_path, rec.offset, rec.url),
                        "url": rec.url,
                        "domain": domain_of(rec.url),
                        "warc_record_id": rec.record_id,
                        "warc_date": rec.date,
                        "source_file": input_path,
                        "snapshot": snapshot,
                    }
                    text, reason, failure = self._extract_record(rec)
                    if failure:
                        fail(reason, failure, rec.record_id)
                    if reason is None:
                        row["text"] = text
                        bytes_out += len(text.encode("utf-8", "surrogatepass"))
                        kept.append(row)
                    else:
                        row["text"] = None
                        row[REJECT_REASON] = reason
                        reasons[reason.split("=", 1)[0]] += 1
                        rejected.append(row)
                    flush()
            except WarcReadError as err:
                fail(err.reason, err.detail)
            flush(force=True)
            sizes = {f"{shard}.parquet": kept_w.close(), f"rejected/{shard}.parquet": rej_w.close()}
        except BaseException:
            kept_w.abort()
            rej_w.abort()
            raise
        return {
            "docs_in": docs_in,
            "docs_out": kept_w.rows,
            "docs_rejected": rej_w.rows,
            "bytes_in": io.input_size(input_path) or 0,
            "bytes_out": bytes_out,
            "reasons": dict(sorted(reasons.items())),
            "failures": failures,
            "failure_counts": dict(sorted(failure_counts.items())),
            "outputs": sizes,
            "seconds": round(time.perf_counter() - started, 4),
        }

    def _extract_record(self, rec) -> tuple[str | None, str | None, str | None]:
        """Return (text, reject_reason, failure_detail); failure_detail is set for record errors."""
        cfg = self.config.extract
        if rec.status is not None and not 200 <= rec.status < 300:
            return None, f"http_status:{rec.status}", None
        if rec.truncated:
            return None, "truncated_record", "the file ends inside this record"
        if rec.payload is None:
            return None, "record_too_large", f"{rec.declared_length} bytes (cap {cfg.max_record_bytes})"
        if rec.status is None:
            return None, "no_http_status", None
        if not rec.payload:
            return None, "empty_payload", None
        reason = html_decision(rec.content_type, rec.payload)
        if reason is not None:
            return None, reason, None
        assert self._extract is not None
        try:
            html, _ = decode_html(rec.payload, rec.charset)
            with time_limit(cfg.record_timeout_s):
                text = self._extract(html)
        except RecordTimeout:
            return None, "extract_timeout", f"over {cfg.record_timeout_s}s"
        except RecursionError:
            return None, "extract_error:RecursionError", "document nested too deeply"
        except Exception as err:  # a library bug on one page must not stop the file
            return None, f"extract_error:{type(err).__name__}", str(err)[:300]
        text = normalise_text(text) if text else ""
        if len(text) < max(cfg.min_text_chars, 1):
            return None, "empty_extraction", None
        return text, None, None
