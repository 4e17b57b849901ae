"""Score documents 0–5 for a property with an LLM behind an OpenAI-compatible API.

Why: the classifiers that score a whole corpus (:mod:`classifiers.train`) learn from a few
thousand to a few hundred thousand LLM-scored documents. Those calls cost money and time, so the
client

* talks to any OpenAI-compatible ``POST {base_url}/chat/completions`` (OpenAI, vLLM, SGLang,
  llama.cpp server, TGI, ...) with the standard library only (no SDK dependency);
* reads the API key from the environment variable *named* by the caller and never logs,
  returns or stores it;
* runs ``concurrency`` requests at once on threads (the work is waiting on the network);
* retries timeouts, connection errors, HTTP 408/429/5xx and unreadable responses with
  exponential backoff and jitter, honouring ``Retry-After``; other 4xx fail at once (retrying a
  bad key or a bad model name only burns time);
* appends every answer to a JSONL cache keyed by (property, model, prompt hash, doc id, text
  hash), so a re-run, or a run resumed after a crash, does not pay twice; the cache stores the
  raw answer and the score is parsed again on reading;
* parses the score strictly: the last non-empty line must be ``Score: N`` with N in 0..5.
  Anything else is ``malformed`` and gets no score; nothing is guessed.

Results come back in input order, one dict per document; ``stats`` counts requests, cache hits,
retries, malformed answers and failures by reason.
"""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import json
import os
import random
import re
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from classifiers.prompts import get_prompt_template, prompt_hash, render_prompt

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})

# Last non-empty line, after removing markdown emphasis/backticks: "Score: N" (N = 0..5),
# optionally "N/5" and a final period. "Score: 3.5", "Score: 6", "3" and "Score: three" do not match.
_SCORE_LINE = re.compile(r"score\s*:\s*([0-5])(?:\s*/\s*5)?\s*\.?", re.IGNORECASE)


def parse_score(content: str | None) -> int | None:
    """The 0–5 score from a model answer in the required format, or None (malformed)."""
    if not content:
        return None
    lines = [line.strip() for line in content.strip().splitlines() if line.strip()]
    if not lines:
        return None
    last = lines[-1].strip().strip("*_`").strip()
    m = _SCORE_LINE.fullmatch(last)
    return int(m.group(1)) if m else None


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16]


def cache_key(property_name: str, model: str, p_hash: str, doc_id: str, t_hash: str) -> str:
    """The cache key: every input that changes the answer is part of it."""
    raw = json.dumps([property_name, model, p_hash, doc_id, t_hash], ensure_ascii=False)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


class AnnotationCache:
    """Append-only JSONL cache of LLM answers (thread-safe; flushed per line).

    A line that cannot be parsed (a run killed mid-write) is skipped on load. Only answers that
    came back from the model are cached, malformed ones included (they were paid for); network
    failures are not, so a re-run tries those again.
    """

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path else None
        self._entries: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.bad_lines = 0
        if self.path and self.path.exists():
            with open(self.path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        entry = json.loads(line)
                        self._entries[entry["key"]] = entry
                    except (json.JSONDecodeError, KeyError, TypeError):
                        self.bad_lines += 1

    def get(self, key: str) -> dict[str, Any] | None:
        return self._entries.get(key)

    def put(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._entries[entry["key"]] = entry
            if self.path is None:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
                fh.flush()

    def __len__(self) -> int:
        return len(self._entries)


class _Stats:
    """Counters shared by the worker threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.failed_by_reason: Counter[str] = Counter()
        self.retried_by_reason: Counter[str] = Counter()
        self.scores: Counter[int] = Counter()

    def add(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counts[key] += n


class _RetryableError(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _FatalError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either a number or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _post_chat(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> dict[str, Any]:
    """One POST; raises _RetryableError or _FatalError with a reason that never holds the key."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            raw = response.read()
    except urllib.error.HTTPError as err:
        status = err.code
        retry_after = _parse_retry_after(err.headers.get("Retry-After") if err.headers else None)
        try:
            err.read()
        except Exception:  # noqa: BLE001 - the body of an error response is optional
            pass
        finally:
            err.close()
        if status in RETRY_STATUS:
            raise _RetryableError(f"http_{status}", retry_after) from None
        raise _FatalError(f"http_{status}") from None
    except TimeoutError:
        raise _RetryableError("timeout") from None
    except urllib.error.URLError as err:
        if isinstance(err.reason, TimeoutError):
            raise _RetryableError("timeout") from None
        raise _RetryableError("connection_error") from None
    except (http.client.HTTPException, ConnectionError, OSError):
        raise _RetryableError("connection_error") from None
    try:
        payload = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _RetryableError("bad_response") from None
    if not isinstance(payload, dict):
        raise _RetryableError("bad_response") from None
    return payload


def _extract_content(payload: dict[str, Any]) -> str | None:
    """``choices[0].message.content`` of a chat completion, or None when it is absent."""
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) else None


def annotate(
    docs: Sequence[dict[str, Any]],
    *,
    property: str,  # noqa: A002 - the brief's name; it is the property being scored
    base_url: str,
    model: str,
    api_key_env: str | None = "OPENAI_API_KEY",
    concurrency: int = 8,
    max_retries: int = 5,
    timeout_s: float = 120.0,
    cache_path: str | os.PathLike[str] | None = None,
    prompt_template: str | None = None,
    max_chars: int = 8000,
    temperature: float = 0.0,
    max_tokens: int = 512,
    backoff_base_s: float = 1.0,
    backoff_max_s: float = 60.0,
    max_retry_after_s: float = 300.0,
    extra_body: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Score each document 0–5 for ``property`` with an LLM.

    Args:
        docs: dicts with ``id`` and ``text``.
        property: ``edu``, ``stem``, ``toxic`` (built-in prompts) or any name with
            ``prompt_template``.
        base_url: API root, e.g. ``http://127.0.0.1:8000/v1``; ``/chat/completions`` is appended.
        model: the model name sent in the request.
        api_key_env: NAME of the environment variable holding the key; None sends no
            Authorization header (local servers). Naming an unset variable is an error.
        concurrency: requests in flight at once.
        max_retries: retries per document after the first attempt.
        timeout_s: per-request socket timeout.
        cache_path: JSONL cache file (None: no cache).
        prompt_template: custom template with ``{text}``; overrides the built-in prompt.
        max_chars: documents are cut to this many characters before prompting (the cut text is
            what the cache key hashes).
        temperature, max_tokens, extra_body: passed in the request body.
        backoff_base_s, backoff_max_s: backoff ``min(max, base * 2**attempt)`` scaled by a random
            factor in [0.5, 1.5); a ``Retry-After`` header (capped at ``max_retry_after_s``) takes
            precedence when it asks for longer.

    Returns ``(results, stats)``. Each result: ``id``, ``score`` (int or None), ``status``
    (``ok``, ``malformed`` or ``failed``), ``cached`` (bool), ``reason`` (for failures and
    malformed answers), ``attempts``, ``content`` (the model's answer, None if failed).
    """
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    api_key: str | None = None
    if api_key_env:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise ValueError(
                f"environment variable {api_key_env!r} is not set (pass api_key_env=None for a "
                "server without authentication)"
            )
    template = get_prompt_template(property, prompt_template)
    p_hash = prompt_hash(template)
    url = base_url.rstrip("/") + "/chat/completions"
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    del api_key  # only the headers dict (never logged or returned) keeps it

    cache = AnnotationCache(cache_path)
    stats = _Stats()
    started = time.monotonic()

    def work(doc: dict[str, Any]) -> dict[str, Any]:
        doc_id = str(doc.get("id"))
        text = doc.get("text")
        if not isinstance(text, str):
            stats.add("failed")
            with stats.lock:
                stats.failed_by_reason["missing_text"] += 1
            return _result(doc_id, None, "failed", "missing_text", 0, None, False)
        text = text[:max_chars]
        t_hash = text_hash(text)
        key = cache_key(property, model, p_hash, doc_id, t_hash)
        hit = cache.get(key)
        if hit is not None:
            stats.add("cached")
            return _finish(doc_id, hit.get("content"), attempts=0, cached=True)

        body_obj: dict[str, Any] = {
            "model": model,
            "messages": [{"role": "user", "content": render_prompt(template, text, property)}],
            "temperature": temperature,
            "max_tokens": max_tokens,
        }
        if extra_body:
            body_obj.update(extra_body)
        body = json.dumps(body_obj, ensure_ascii=False).encode("utf-8")
        attempt = 0
        while True:
            attempt += 1
            stats.add("requests")
            try:
                payload = _post_chat(url, body, headers, timeout_s)
                content = _extract_content(payload)
                if content is None:
                    raise _RetryableError("bad_response")
            except _FatalError as err:
                return _fail(doc_id, err.reason, attempt)
            except _RetryableError as err:
                if attempt > max_retries:
                    return _fail(doc_id, err.reason, attempt)
                stats.add("retries")
                with stats.lock:
                    stats.retried_by_reason[err.reason] += 1
                delay = min(backoff_max_s, backoff_base_s * (2 ** (attempt - 1)))
                delay *= 0.5 + random.random()  # jitter: spread out clients that failed together
                if err.retry_after is not None:
                    delay = max(delay, min(err.retry_after, max_retry_after_s))
                time.sleep(delay)
                continue
            cache.put(
                {
                    "key": key,
                    "property": property,
                    "model": model,
                    "prompt_hash": p_hash,
                    "id": doc_id,
                    "text_hash": t_hash,
                    "content": content,
                    "usage": payload.get("usage"),
                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
            )
            return _finish(doc_id, content, attempts=attempt, cached=False)

    def _fail(doc_id: str, reason: str, attempts: int) -> dict[str, Any]:
        stats.add("failed")
        with stats.lock:
            stats.failed_by_reason[reason] += 1
        return _result(doc_id, None, "failed", reason, attempts, None, False)

    def _finish(doc_id: str, content: str | None, *, attempts: int, cached: bool) -> dict[str, Any]:
        score = parse_score(content)
        if score is None:
            stats.add("malformed")
            return _result(doc_id, None, "malformed", "bad_score_format", attempts, content, cached)
        stats.add("ok")
        with stats.lock:
            stats.scores[score] += 1
        return _result(doc_id, score, "ok", None, attempts, content, cached)

    if concurrency == 1 or len(docs) <= 1:
        results = [work(d) for d in docs]
    else:
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="annotate") as pool:
            results = list(pool.map(work, docs))

    c = stats.counts
    summary = {
        "property": property,
        "model": model,
        "prompt_hash": p_hash,
        "docs": len(docs),
        "requests": c["requests"],
        "cached": c["cached"],
        "retries": c["retries"],
        "retries_by_reason": dict(sorted(stats.retried_by_reason.items())),
        "ok": c["ok"],
        "malformed": c["malformed"],
        "failed": c["failed"],
        "failed_by_reason": dict(sorted(stats.failed_by_reason.items())),
        "score_histogram": {str(k): stats.scores.get(k, 0) for k in range(6)},
        "elapsed_s": round(time.monotonic() - started, 3),
    }
    return results, summary


def _result(
    doc_id: str,
    score: int | None,
    status: str,
    reason: str | None,
    attempts: int,
    content: str | None,
    cached: bool,
) -> dict[str, Any]:
    return {
        "id": doc_id,
        "score": score,
        "status": status,
        "reason": reason,
        "cached": cached,
        "attempts": attempts,
        "content": content,
    }


# -- sampling ----------------------------------------------------------------------------------
def _sample_hash(seed: int, doc_id: str) -> bytes:
    return hashlib.blake2b(f"{seed}\x00{doc_id}".encode("utf-8", "replace"), digest_size=8).digest()


def sample_documents(
    parquet_paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    n: int,
    seed: int = 0,
    *,
    id_column: str = "id",
    text_column: str = "text",
    extra_columns: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """A reproducible random sample of ``n`` documents from Parquet files (bottom-k by hash).

    Each document's rank is a seeded hash of its id, and the ``n`` smallest win. The sample
    therefore depends only on the seed and the set of ids, not on file order or row-group
    layout, and memory stays O(n): the first pass reads only the id column, the second reads
    text from the row groups that hold selected rows. A repeated id is sampled at most once.
    Returned in sample order (by hash), as dicts with ``id``, ``text`` and ``extra_columns``.
    """
    import heapq

    import pyarrow.parquet as pq

    if isinstance(parquet_paths, str | os.PathLike):
        parquet_paths = [parquet_paths]
    paths = [Path(p) for p in parquet_paths]
    if n <= 0:
        return []
    # max-heap of the n smallest hashes: entries are (-hash_int, id, file_index, row_index)
    heap: list[tuple[int, str, int, int]] = []
    in_heap: set[str] = set()
    for fi, path in enumerate(paths):
        pf = pq.ParquetFile(path)
        row = 0
        for rg in range(pf.num_row_groups):
            ids = pf.read_row_group(rg, columns=[id_column]).column(0).to_pylist()
            for doc_id in ids:
                if doc_id is not None:
                    sid = str(doc_id)
                    h = int.from_bytes(_sample_hash(seed, sid), "big")
                    if sid not in in_heap:
                        if len(heap) < n:
                            heapq.heappush(heap, (-h, sid, fi, row))
                            in_heap.add(sid)
                        elif -heap[0][0] > h:
                            _, old, _, _ = heapq.heapreplace(heap, (-h, sid, fi, row))
                            in_heap.discard(old)
                            in_heap.add(sid)
                row += 1
    chosen = sorted((-neg_h, sid, fi, r) for neg_h, sid, fi, r in heap)
    # second pass: read only the row groups holding chosen rows
    wanted: dict[int, dict[int, int]] = {}
    for rank, (_, _, fi, r) in enumerate(chosen):
        wanted.setdefault(fi, {})[r] = rank
    columns = [id_column, text_column, *[c for c in extra_columns if c not in (id_column, text_column)]]
    out: list[dict[str, Any] | None] = [None] * len(chosen)
    for fi, rows in wanted.items():
        pf = pq.ParquetFile(paths[fi])
        offset = 0
        for rg in range(pf.num_row_groups):
            size = pf.metadata.row_group(rg).num_rows
            hits = [(r - offset, rank) for r, rank in rows.items() if offset <= r < offset + size]
            if hits:
                table = pf.read_row_group(rg, columns=columns)
                for local, rank in hits:
                    rec = {c: table.column(c)[local].as_py() for c in columns}
                    rec["id"] = str(rec.pop(id_column)) if id_column != "id" else str(rec["id"])
                    if text_column != "text":
                        rec["text"] = rec.pop(text_column)
                    out[rank] = rec
            offset += size
    return [r for r in out if r is not None]
