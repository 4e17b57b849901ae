"""The extract stage: WARC response records to documents with their main text.

Keeps 2xx responses whose payload is HTML (by header or by content), decodes them with the right
charset, and extracts the main text with trafilatura (precision-oriented, as FineWeb does) or
resiliparse (about 20x faster, somewhat noisier). Every response record ends up either as a
document or as a rejected row with its reason, or, when it cannot be parsed at all, as a failure
(``records_in = docs_out + docs_rejected + unparseable``); file-level problems are failures with a
reason, and a file that breaks off keeps the rows read before (``records_kept`` in its failure).
"""

from __future__ import annotations

import hashlib
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa

from pipelines import io
from pipelines.commoncrawl import Fetched, fetched_input, needs_fetch
from pipelines.config import Config, ExtractConfig
from pipelines.runner import MAX_FAILURES_LISTED
from pipelines.schema import EXTRACT_REJECTED_SCHEMA, EXTRACT_SCHEMA, REJECT_REASON
from pipelines.stage import Stage, shard_stats
from pipelines.warc import (
    SkippedRecord,
    WarcReadError,
    decode_html,
    html_decision,
    iter_conversions,
    iter_responses,
    read_warcinfo,
)

_SNAPSHOT = re.compile(r"CC-MAIN-\d{4}-\d{2}")
WARC_SUFFIXES = (".warc.gz", ".warc", ".arc.gz", ".arc", ".warc.zst", ".gz", ".ranges.parquet")


class RecordTimeout(BaseException):
    """Extraction of one record ran past ``record_timeout_s``.

    A BaseException, like KeyboardInterrupt: trafilatura wraps its fallback extractors in
    ``except Exception`` and would swallow the timeout and carry on extracting.
    """


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


def _keys(names: str, width: int) -> np.ndarray:
    return np.array([int.from_bytes(n.encode()[:width], "big") for n in names.split()], np.int64)


# Elements that never nest: void elements and those whose end tags are usually implied. Names are
# matched by their first three letters (two-letter and one-letter names by the name and a delimiter).
_NON_NESTING_3 = _keys("are bas col emb img inp lin met par sou tra wbr opt tbo the tfo", 3)
_NON_NESTING_2 = _keys("br hr li dt dd tr td th rb rt rp", 2)


def nesting_depth_over(html: str, limit: int) -> bool:
    """True when elements nest deeper than ``limit`` (an approximation; real pages nest < 100).

    Extractors do work quadratic in depth inside C code that no time limit can interrupt
    (resiliparse took 34 s on 30,000 nested divs), so pathological pages are refused before parsing.
    The scan is vectorised over the page's ``<`` positions (a regex loop cost as much as resiliparse's
    whole extraction): +1 per opening tag of a nesting element, -1 per closing tag, clamped at 0.
    """
    if html.count("<") <= limit:
        return False
    data = np.frombuffer(html.encode("utf-8", "surrogatepass") + b"   ", np.uint8)
    lt = np.flatnonzero(data[:-3] == ord("<"))
    c1, c2, c3 = (data[lt + k].astype(np.int64) for k in (1, 2, 3))
    low1, low2, low3 = c1 | 32, c2 | 32, c3 | 32

    def is_alnum(c: np.ndarray, low: np.ndarray) -> np.ndarray:
        return ((low >= 97) & (low <= 122)) | ((c >= 48) & (c <= 57))

    opening = (low1 >= 97) & (low1 <= 122)
    non_nesting = (
        np.isin((low1 << 16) | (low2 << 8) | low3, _NON_NESTING_3)
        | (np.isin((low1 << 8) | low2, _NON_NESTING_2) & ~is_alnum(c3, low3))
        | ((low1 == ord("p")) & ~is_alnum(c2, low2))
    )
    step = np.where(c1 == ord("/"), -1, np.where(opening & ~non_nesting, 1, 0))
    running = np.cumsum(step)
    depth = running - np.minimum.accumulate(np.minimum(running, 0))
    return bool(depth.max(initial=0) > limit)


def make_extractor(cfg: ExtractConfig) -> Callable[[str], str | None]:
    """Return ``html -> text`` for the configured extractor (imports happen once, here)."""
    if cfg.extractor == "fast":
        from pipelines.fast_extract import FastExtractor, load_model

        return FastExtractor(load_model(cfg.fast_model))
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
            fast=cfg.fast,
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


def file_snapshot(input_path: str, path: str | None, configured: str | None) -> str | None:
    """The crawl a file belongs to: its name, else ``extract.snapshot``, else its warcinfo ``isPartOf``.

    Common Crawl names every file after its crawl, but renamed or re-hosted copies lose that; their
    warcinfo record still says ``isPartOf: CC-MAIN-...``. It is read only when both others are missing.
    """
    found = snapshot_of(input_path, configured)
    if found is not None or path is None:
        return found
    m = _SNAPSHOT.search(read_warcinfo(path).get("isPartOf", ""))
    return m.group(0) if m else None


_BLANK_LINES = re.compile(r"\n{3,}")


def normalise_text(text: str) -> str:
    """Trim trailing spaces per line and collapse runs of blank lines (extractors differ here)."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def file_failure(stage: str, input_path: str, err: WarcReadError, records_kept: int) -> dict:
    """The failure entry of a file whose reading broke off after ``records_kept`` records.

    Those records' rows (documents and rejected) stay in the output; ``records_kept`` says how many,
    so ``--strict`` and the report can tell a partly read file from one that gave nothing.
    """
    detail = err.detail
    if records_kept:
        detail = f"partially read ({records_kept} records kept): {detail}" if detail else \
            f"partially read ({records_kept} records kept)"
    return {"stage": stage, "file": input_path, "record": None, "reason": err.reason,
            "detail": detail[:300], "records_kept": records_kept}


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
        """Extract one input: a local WARC/WET file, a remote URL, or a Common Crawl range plan.

        Remote inputs are first made local and verified (``pipelines.commoncrawl.fetched_input``),
        so every input goes through the same record handling below.
        """
        if not needs_fetch(input_path):
            return self._process_file(input_path, input_path, output_dir, shard)
        with fetched_input(input_path, self.config) as fetched:
            return self._process_file(fetched.path, fetched.source, output_dir, shard, fetched)

    def _process_file(self, path: str | None, input_path: str, output_dir: str, shard: str,
                      fetched: Fetched | None = None) -> dict:
        """Read ``path`` (None: nothing could be fetched); ``input_path`` names it in rows and failures."""
        cfg = self.config.extract
        if self._extract is None and cfg.format == "warc":
            self._extract = make_extractor(cfg)
        started = time.perf_counter()
        snapshot = file_snapshot(input_path, path, cfg.snapshot)
        writers = io.ShardOutput(output_dir, shard, EXTRACT_SCHEMA, EXTRACT_REJECTED_SCHEMA)
        kept_w, rej_w = writers.kept, writers.rejected
        kept: list[dict] = []
        rejected: list[dict] = []
        reasons: Counter = Counter()
        repaired: Counter = Counter()
        failures: list[dict] = []
        failure_counts: Counter = Counter()
        docs_in = bytes_out = skipped = 0

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

        offsets = fetched.offsets if fetched is not None else {}
        for f in fetched.failures if fetched is not None else []:
            fail(f["reason"], f.get("detail", ""), f.get("record"))
        wet = cfg.format == "wet"
        try:
            try:
                if path is None:
                    records = iter(())
                elif wet:
                    records = iter_conversions(path, cfg.max_record_bytes)
                else:
                    records = iter_responses(path, cfg.max_record_bytes, cfg.max_decompressed_bytes)
                for rec in records:
                    if isinstance(rec, SkippedRecord):  # unparseable: a failure with no row
                        skipped += 1
                        fail(rec.reason, rec.detail, rec.record_id)
                        continue
                    docs_in += 1
                    if rec.repaired:
                        repaired[rec.repaired] += 1
                    # WET: the id of the response the text came from, so it matches WARC extraction
                    record_id = (rec.refers_to or rec.record_id) if wet else rec.record_id
                    row = {
                        "id": doc_id(record_id, input_path, offsets.get(rec.offset, rec.offset), rec.url),
                        "url": rec.url,
                        "domain": domain_of(rec.url),
                        "warc_record_id": record_id,
                        "warc_date": rec.date,
                        "source_file": input_path,
                        "snapshot": snapshot,
                    }
                    text, reason, failure = self._wet_record(rec) if wet else self._extract_record(rec)
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
            except WarcReadError as err:  # listed even past the cap: one per file, and it says what was lost
                failure_counts[err.reason] += 1
                failures.append(file_failure(self.name, input_path, err, docs_in))
            flush(force=True)
            sizes = writers.close()
        except BaseException:
            writers.abort()
            raise
        counters: dict = {}  # summed by the runner into the summary's counters
        if repaired:
            counters["repaired"] = repaired
        if fetched is not None:
            counters["fetch"] = fetched.counters
        # records_in = docs_out + docs_rejected + records skipped as unparseable
        return shard_stats(docs_in, kept_w.rows, rej_w.rows, (io.input_size(path) or 0) if path is not None else 0,
                           bytes_out, reasons, sizes, started, counters, records_in=docs_in + skipped,
                           failures=failures, failure_counts=dict(sorted(failure_counts.items())))

    def _wet_record(self, rec) -> tuple[str | None, str | None, str | None]:
        """A WET conversion record's text: the payload as UTF-8, normalised like extracted text.

        No HTML parsing happens (that is the point of WET: cheap), so menus, footers and cookie
        banners that trafilatura would drop stay in; the filter stage has to work harder.
        """
        cfg = self.config.extract
        if rec.truncated:
            return None, "truncated_record", "the file ends inside this record"
        if rec.payload is None:
            return None, "record_too_large", f"{rec.declared_length} bytes (cap {cfg.max_record_bytes})"
        if rec.content_type and rec.content_type != "text/plain":
            return None, f"not_text:{rec.content_type}", None
        if not rec.payload:
            return None, "empty_payload", None
        text = normalise_text(rec.payload.decode("utf-8", errors="replace"))
        if len(text) < max(cfg.min_text_chars, 1):
            return None, "empty_extraction", None
        return text, None, None

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
            depth = nesting_depth_over(html, cfg.max_html_depth)
            if depth:
                return None, f"html_too_deep:depth>{cfg.max_html_depth}", "nesting beyond max_html_depth"
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
