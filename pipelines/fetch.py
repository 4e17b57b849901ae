"""Reading remote files the way Common Crawl needs: retries, backoff, Retry-After, verified lengths.

Common Crawl throttles (HTTP 503 "SlowDown" from S3/CloudFront, sometimes 429) and long downloads
get cut. fsspec's HTTP file system neither honours ``Retry-After`` nor notices a body that ends
early on a streamed read, so ``http(s)://`` goes through the standard library here (no extra
dependency; the module is not called ``http.py`` because that would shadow the standard library's
``http`` for scripts run from this directory) with:

* exponential backoff with jitter between attempts (``backoff_s * 2**attempt``, capped), and the
  server's ``Retry-After`` (seconds or an HTTP date) when it sends one;
* retries on 408/425/429/500/502/503/504, on connection errors and timeouts, and on short bodies;
  403/404/410/416 are permanent and fail at once (:class:`FetchError`);
* every body checked against ``Content-Length`` / ``Content-Range``: a partial download is never
  taken as complete; range replies must be ``206`` with exactly the requested bytes;
* downloads resumed where a cut connection left them (``Range: bytes=N-`` with ``If-Range`` on the
  first reply's ETag or Last-Modified, so a file changed in between restarts from zero).

Other schemes (``s3://``, ``gs://`` ...) go through fsspec (``s3fs`` for S3, whose botocore client
retries SlowDown itself) with the same outer retry loop, length checks and resume by seek.
When retries run out the error is a :class:`RetriesExhausted`, an ``OSError``, so the Ray runner
retries the whole shard task; a permanent :class:`FetchError` is not retried.
"""

from __future__ import annotations

import http.client
import logging
import os
import random
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import suppress
from dataclasses import asdict, dataclass
from email.utils import parsedate_to_datetime
from typing import IO, Any, TypeVar

T = TypeVar("T")

log = logging.getLogger("cptcorpus")

USER_AGENT = "cptcorpus/0.1 (continual-pretraining corpus builder; Common Crawl reader)"
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


class FetchError(Exception):
    """A permanent failure (404, 403, a server that ignores Range, ...): retrying will not help."""

    def __init__(self, url: str, reason: str, status: int | None = None) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
        self.status = status


class RetriesExhausted(OSError):
    """Transient failures went on past the retry budget; an OSError so Ray retries the task."""


class _Transient(Exception):
    """One attempt failed in a way worth retrying; ``retry_after`` is the server's wish, if any."""

    def __init__(self, reason: str, retry_after: float | None = None, progressed: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.progressed = progressed


@dataclass(slots=True)
class RetryPolicy:
    """How hard to try. The defaults suit Common Crawl; tests shrink the delays."""

    retries: int = 8
    backoff_s: float = 1.0
    max_backoff_s: float = 120.0
    timeout_s: float = 60.0

    @classmethod
    def from_config(cls, source: Any) -> RetryPolicy:
        """Take the retry keys of a ``CommonCrawlInput`` (or any object with them); defaults otherwise."""
        if source is None or not hasattr(source, "retries"):
            return cls()
        return cls(source.retries, source.backoff_s, source.max_backoff_s, source.timeout_s)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before attempt ``attempt + 1``: Retry-After if given, else jittered backoff."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_backoff_s)
        base = min(self.backoff_s * (2**attempt), self.max_backoff_s)
        return base * random.uniform(0.5, 1.0)


@dataclass(slots=True)
class FetchStats:
    """What the network cost: summed into the stage summary under ``counters.fetch``."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0  # 429 and 503 replies
    bytes_fetched: int = 0  # body bytes received, including those of attempts that were cut
    resumed: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def is_http(url: str) -> bool:
    return url.startswith(("http://", "https://"))


# --- the retry loop ---------------------------------------------------------------------------


def _with_retries(url: str, policy: RetryPolicy, stats: FetchStats, attempt_fn: Callable[[], T]) -> T:
    """Run ``attempt_fn()`` until it returns, retrying transient failures with backoff.

    An attempt that made real progress (a resumed download that got further) does not use up the
    budget: a 1 GB file on a line that drops every few minutes must still finish.
    """
    attempt = 0
    while True:
        try:
            return attempt_fn()
        except _Transient as err:
            if err.progressed:
                attempt = 0
            if attempt >= policy.retries:
                raise RetriesExhausted(f"{url}: gave up after {policy.retries} retries: {err.reason}") from None
            wait = policy.delay(attempt, err.retry_after)
            log.info("fetch %s: %s; retry %d/%d in %.2fs", url, err.reason, attempt + 1, policy.retries, wait)
            stats.retries += 1
            attempt += 1
            if wait > 0:
                time.sleep(wait)


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _open(url: str, policy: RetryPolicy, stats: FetchStats, method: str = "GET",
          headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    """One HTTP request; HTTP errors become FetchError (permanent) or _Transient."""
    req = urllib.request.Request(url, method=method, headers={"User-Agent": USER_AGENT, **(headers or {})})
    stats.requests += 1
    try:
        return urllib.request.urlopen(req, timeout=policy.timeout_s)  # noqa: S310 - http(s) only, checked by callers
    except urllib.error.HTTPError as err:
        status = err.code
        retry_after = _retry_after(err.headers)
        with suppress(Exception):  # draining an error reply; its body is thrown away anyway
            err.read()
            err.close()
        if status in (429, 503):
            stats.throttled += 1
        if status in RETRY_STATUSES:
            raise _Transient(f"HTTP {status}", retry_after) from None
        raise FetchError(url, f"HTTP {status}", status) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", err)
        raise _Transient(f"{type(err).__name__}: {reason}") from None


def _read_body(resp: http.client.HTTPResponse, expected: int | None, stats: FetchStats, sink: IO[bytes] | None,
               ) -> tuple[bytes, int]:
    """Read a reply body into memory (or ``sink``); returns (data, byte count), raising on a short read."""
    parts: list[bytes] = []
    got = 0
    try:
        while True:
            chunk = resp.read(CHUNK)
            if not chunk:
                break
            got += len(chunk)
            stats.bytes_fetched += len(chunk)
            if sink is not None:
                sink.write(chunk)
            else:
                parts.append(chunk)
    except (OSError, http.client.HTTPException) as err:  # IncompleteRead, reset, timeout
        raise _Transient(f"body cut after {got} bytes: {type(err).__name__}", progressed=got >= CHUNK) from None
    finally:
        resp.close()
    if expected is not None and got != expected:
        raise _Transient(f"body has {got} of {expected} bytes", progressed=got >= CHUNK)
    return b"".join(parts), got


def _content_length(resp: Any) -> int | None:
    value = resp.headers.get("Content-Length")
    return int(value) if value and value.strip().isdigit() else None


# --- public API -------------------------------------------------------------------------------


def size(url: str, policy: RetryPolicy, stats: FetchStats) -> int | None:
    """The file's size in bytes (HEAD Content-Length, or the file system's size); None if unknown."""
    if not is_http(url):
        fs, path = _fsspec(url)
        return int(_with_retries(url, policy, stats, lambda: _fs_call(lambda: fs.size(path))))

    def attempt() -> int | None:
        resp = _open(url, policy, stats, "HEAD")
        with resp:
            return _content_length(resp)

    return _with_retries(url, policy, stats, attempt)


def get(url: str, policy: RetryPolicy, stats: FetchStats, start: int | None = None,
        end: int | None = None) -> bytes:
    """The whole body, or bytes ``start..end`` inclusive (a ``206`` reply of exactly that length)."""
    ranged = start is not None
    if ranged and (end is None or end < start):
        raise ValueError(f"bad range {start}-{end}")
    if not is_http(url):
        fs, path = _fsspec(url)

        def fs_attempt() -> bytes:
            data = _fs_call(lambda: fs.cat_file(path, start=start, end=None if end is None else end + 1))
            stats.requests += 1
            stats.bytes_fetched += len(data)
            if ranged and len(data) != end - start + 1:
                raise _Transient(f"range has {len(data)} of {end - start + 1} bytes")
            return data

        return _with_retries(url, policy, stats, fs_attempt)

    def attempt() -> bytes:
        headers = {"Range": f"bytes={start}-{end}"} if ranged else {}
        resp = _open(url, policy, stats, headers=headers)
        if ranged:
            if resp.status != 206:
                resp.close()
                raise FetchError(url, f"range request answered with HTTP {resp.status}, not 206", resp.status)
            m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != start or int(m.group(2)) != end:
                resp.close()
                raise _Transient(f"Content-Range {resp.headers.get('Content-Range')!r} for {start}-{end}")
            expected = end - start + 1
        else:
            expected = _content_length(resp)
        data, _ = _read_body(resp, expected, stats, None)
        return data

    return _with_retries(url, policy, stats, attempt)


def download(url: str, dest: str, policy: RetryPolicy, stats: FetchStats) -> int:
    """Download ``url`` to ``dest``, resuming after cuts; returns the size, verified against the server's.

    ``dest`` is written in place (the caller owns a private temporary path), truncated first.
    """
    with open(dest, "wb"):
        pass
    if not is_http(url):
        return _fs_download(url, dest, policy, stats)
    state: dict[str, Any] = {"total": None, "validator": None}

    def attempt() -> int:
        have = os.path.getsize(dest)
        headers: dict[str, str] = {}
        if have and state["total"] is not None:
            if have == state["total"]:
                return have
            headers["Range"] = f"bytes={have}-"
            if state["validator"]:
                headers["If-Range"] = state["validator"]
        resp = _open(url, policy, stats, headers=headers)
        validator = resp.headers.get("ETag") or resp.headers.get("Last-Modified")
        if resp.status == 206:
            m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != have:
                resp.close()
                raise _Transient(f"resume at {have} answered with Content-Range {resp.headers.get('Content-Range')!r}")
            if m.group(3) != "*":
                state["total"] = int(m.group(3))
            expected = int(m.group(2)) - have + 1
            mode = "ab"
            stats.resumed += 1
        else:  # 200: a fresh start, or the server ignored Range / the file changed (If-Range)
            expected = _content_length(resp)
            state["total"] = expected
            mode = "wb"
        state["validator"] = validator or state["validator"]
        with open(dest, mode) as fh:
            _read_body(resp, expected, stats, fh)
        final = os.path.getsize(dest)
        if state["total"] is not None and final != state["total"]:
            raise _Transient(f"file has {final} of {state['total']} bytes", progressed=True)
        return final

    return _with_retries(url, policy, stats, attempt)


# --- fsspec (s3://, gs://, ...) -----------------------------------------------------------------


def _fsspec(url: str) -> tuple[Any, str]:
    import fsspec

    return fsspec.core.url_to_fs(url)


def _fs_call(fn: Callable[[], T]) -> T:
    """Call an fsspec operation; missing files and refusals are permanent, the rest transient."""
    try:
        return fn()
    except (FileNotFoundError, PermissionError) as err:
        raise FetchError(str(err), type(err).__name__) from None
    except Exception as err:  # botocore/aiohttp errors have no common base: treat as transient
        raise _Transient(f"{type(err).__name__}: {err}") from None


def _fs_download(url: str, dest: str, policy: RetryPolicy, stats: FetchStats) -> int:
    fs, path = _fsspec(url)
    total = int(_with_retries(url, policy, stats, lambda: _fs_call(lambda: fs.size(path))))

    def attempt() -> int:
        have = os.path.getsize(dest)
        if have == total:
            return have
        if have:
            stats.resumed += 1
        stats.requests += 1
        got = 0
        try:
            with fs.open(path, "rb", block_size=8 * CHUNK) as src, open(dest, "ab") as out:
                src.seek(have)
                while chunk := src.read(8 * CHUNK):
                    out.write(chunk)
                    got += len(chunk)
                    stats.bytes_fetched += len(chunk)
        except (FileNotFoundError, PermissionError) as err:
            raise FetchError(url, type(err).__name__) from None
        except Exception as err:
            raise _Transient(f"{type(err).__name__}: {err}", progressed=got >= CHUNK) from None
        final = os.path.getsize(dest)
        if final != total:
            raise _Transient(f"file has {final} of {total} bytes", progressed=got >= CHUNK)
        return final

    return _with_retries(url, policy, stats, attempt)
