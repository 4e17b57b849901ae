"""The LLM annotation client against a local OpenAI-compatible fake (127.0.0.1 only)."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from classifiers.annotate import annotate, parse_score, sample_documents
from classifiers.prompts import PROMPTS, get_prompt_template, render_prompt

SECRET = "sk-test-do-not-log-1234"
_DOC = re.compile(r"DOC\[(\w+)-(\d+)\]")


class FakeLLM:
    """Behaviour is chosen by the doc marker DOC[kind-n] inside the prompt:

    ok       answers "Score: n % 6"
    slow     first attempt sleeps past the client timeout
    rate     first attempt: 429 with Retry-After: 1
    err      first two attempts: 500
    badjson  first attempt: 200 with a body that is not JSON
    badscore answers with an unusable score line (malformed, never retried)
    fatal    400 (not retried)
    down     always 503 (retried until max_retries)
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.attempts: dict[str, list[float]] = defaultdict(list)
        self.auth: set[str] = set()
        self.models: set[str] = set()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][0]["content"]
                kind, n = _DOC.search(prompt).groups()
                key = f"{kind}-{n}"
                with fake.lock:
                    fake.attempts[key].append(time.monotonic())
                    attempt = len(fake.attempts[key])
                    fake.auth.add(self.headers.get("Authorization", ""))
                    fake.models.add(body["model"])
                if self.path != "/v1/chat/completions":
                    return self._send(404, b"{}")
                if kind == "slow" and attempt == 1:
                    time.sleep(0.8)
                    return self._send(200, self._answer("Score: 1"))
                if kind == "rate" and attempt == 1:
                    return self._send(429, b'{"error": "slow down"}', {"Retry-After": "1"})
                if kind == "err" and attempt <= 2:
                    return self._send(500, b'{"error": "boom"}')
                if kind == "badjson" and attempt == 1:
                    return self._send(200, b'{"choices": [')
                if kind == "badscore":
                    bad = ["Score: 7", "The score is 3", "Score: 3.5", "Score: 2\nThanks!", ""][int(n) % 5]
                    return self._send(200, self._answer(bad))
                if kind == "fatal":
                    return self._send(400, b'{"error": "bad request"}')
                if kind == "down":
                    return self._send(503, b'{"error": "unavailable"}')
                return self._send(200, self._answer(f"Reasoning: fine.\n**Score: {int(n) % 6}**"))

            def _answer(self, content: str) -> bytes:
                return json.dumps(
                    {
                        "choices": [{"message": {"role": "assistant", "content": content}}],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 5},
                    }
                ).encode()

            def _send(self, status: int, payload: bytes, headers: dict | None = None) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and went away: expected for "slow"

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda *a: None  # type: ignore[method-assign]
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def total(self) -> int:
        return sum(len(v) for v in self.attempts.values())


@pytest.fixture()
def llm() -> Iterator[FakeLLM]:
    fake = FakeLLM()
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture()
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CPT_TEST_LLM_KEY", SECRET)
    return "CPT_TEST_LLM_KEY"


def _docs(spec: list[str]) -> list[dict]:
    return [{"id": s, "text": f"Documento de teste DOC[{s}] com texto em português."} for s in spec]


FAST = {"timeout_s": 0.4, "backoff_base_s": 0.01, "backoff_max_s": 0.05, "max_retries": 3}


def test_retries_failures_malformed_and_cache(llm: FakeLLM, api_key: str, tmp_path: Path) -> None:
    spec = [f"ok-{i}" for i in range(8)] + ["slow-1", "rate-1", "err-1", "badjson-1"]
    spec += [f"badscore-{i}" for i in range(5)] + ["fatal-1", "down-1"]
    docs = _docs(spec)
    cache = tmp_path / "cache.jsonl"
    kwargs = dict(
        property="edu",
        base_url=llm.url,
        model="judge-1",
        api_key_env=api_key,
        concurrency=4,
        cache_path=cache,
        **FAST,
    )
    results, stats = annotate(docs, **kwargs)

    by_id = {r["id"]: r for r in results}
    assert [r["id"] for r in results] == spec, "results keep input order"
    for i in range(8):
        assert by_id[f"ok-{i}"]["score"] == i % 6 and by_id[f"ok-{i}"]["status"] == "ok"
    for s in ("slow-1", "rate-1", "err-1", "badjson-1"):
        assert by_id[s]["status"] == "ok", s
    assert by_id["err-1"]["attempts"] == 3
    assert all(by_id[f"badscore-{i}"]["status"] == "malformed" for i in range(5))
    assert all(by_id[f"badscore-{i}"]["score"] is None for i in range(5))
    assert by_id["fatal-1"]["status"] == "failed" and by_id["fatal-1"]["reason"] == "http_400"
    assert by_id["down-1"]["status"] == "failed" and by_id["down-1"]["reason"] == "http_503"

    assert len(llm.attempts["fatal-1"]) == 1, "a 400 is not retried"
    assert len(llm.attempts["down-1"]) == 4, "1 try + max_retries"
    assert len(llm.attempts["badscore-0"]) == 1, "a malformed score is not retried"
    gap = llm.attempts["rate-1"][1] - llm.attempts["rate-1"][0]
    assert gap >= 0.95, f"Retry-After: 1 must be honoured (waited {gap:.2f}s)"

    assert stats["requests"] == llm.total()
    assert stats["ok"] == 12 and stats["malformed"] == 5 and stats["failed"] == 2
    assert stats["failed_by_reason"] == {"http_400": 1, "http_503": 1}
    assert stats["retries_by_reason"] == {
        "bad_response": 1,
        "http_429": 1,
        "http_500": 2,
        "http_503": 3,
        "timeout": 1,
    }
    assert stats["retries"] == 8 and stats["cached"] == 0
    assert sum(stats["score_histogram"].values()) == 12
    assert llm.auth == {f"Bearer {SECRET}"} and llm.models == {"judge-1"}
    assert SECRET not in json.dumps([results, stats]) and SECRET not in cache.read_text()

    # Re-run: answered documents (ok and malformed) come from the cache; failures are retried.
    before = llm.total()
    results2, stats2 = annotate(docs, **kwargs)
    assert stats2["cached"] == 17 and stats2["requests"] == llm.total() - before == 1 + 4
    assert [r["score"] for r in results2] == [r["score"] for r in results]
    assert all(r["cached"] for r in results2 if r["status"] != "failed")

    # A different prompt or model is a different question: no cache hit.
    _, stats3 = annotate(_docs(["ok-1"]), **{**kwargs, "model": "judge-2"})
    assert stats3["cached"] == 0 and stats3["requests"] == 1


def test_custom_prompt_template_and_no_auth(llm: FakeLLM, tmp_path: Path) -> None:
    template = "Rate {property} of: {text}\nJSON-like braces {are} fine.\nEnd with 'Score: N'."
    results, stats = annotate(
        _docs(["ok-3"]),
        property="legal",
        base_url=llm.url + "/",
        model="m",
        api_key_env=None,
        prompt_template=template,
        **FAST,
    )
    assert results[0]["score"] == 3 and stats["ok"] == 1
    assert llm.auth == {""}


def test_missing_key_and_unknown_property(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CPT_TEST_UNSET_KEY", raising=False)
    with pytest.raises(ValueError, match="CPT_TEST_UNSET_KEY"):
        annotate(
            _docs(["ok-1"]),
            property="edu",
            base_url="http://127.0.0.1:9",
            model="m",
            api_key_env="CPT_TEST_UNSET_KEY",
        )
    with pytest.raises(ValueError, match="no built-in prompt"):
        annotate(
            _docs(["ok-1"]), property="legal", base_url="http://127.0.0.1:9", model="m", api_key_env=None
        )


def test_connection_refused_is_retried_then_failed() -> None:
    import socket

    with socket.socket() as s:  # a port with nothing listening on it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results, stats = annotate(
        _docs(["ok-1"]),
        property="stem",
        base_url=f"http://127.0.0.1:{port}/v1",
        model="m",
        api_key_env=None,
        **{**FAST, "max_retries": 1},
    )
    assert results[0]["status"] == "failed" and results[0]["reason"] == "connection_error"
    assert stats["requests"] == 2 and stats["failed_by_reason"] == {"connection_error": 1}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("Because...\nScore: 3", 3),
        ("score: 0", 0),
        ("**Score: 5**", 5),
        ("Reasoning\n\nScore: 4/5\n", 4),
        ("Score:2.", 2),
        ("Score: 6", None),
        ("Score: 3.5", None),
        ("Score: three", None),
        ("The answer is 3", None),
        ("Score: 2\nI hope this helps", None),
        ("3", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_score_is_strict(content: str | None, expected: int | None) -> None:
    assert parse_score(content) == expected


def test_builtin_prompts_are_language_neutral_and_strict() -> None:
    for name, template in PROMPTS.items():
        assert template.count("{text}") == 1, name
        assert "any language" in template
        assert "Score: N" in template
        assert get_prompt_template(name) is template
        rendered = render_prompt(template, "Texto {text} com chaves {}")
        assert "Texto {text} com chaves {}" in rendered
    with pytest.raises(ValueError, match="placeholder"):
        get_prompt_template("x", "no placeholder here")


def test_sample_documents_is_reproducible(tmp_path: Path) -> None:
    paths = []
    for f in range(3):
        ids = [f"f{f}-{i}" for i in range(40)] + ["dup"]
        table = pa.table({"id": ids, "text": [f"text of {i}" for i in ids], "url": [f"u/{i}" for i in ids]})
        paths.append(tmp_path / f"part{f}.parquet")
        pq.write_table(table, paths[-1], row_group_size=7)
    a = sample_documents(paths, 15, seed=1, extra_columns=["url"])
    b = sample_documents(list(reversed(paths)), 15, seed=1, extra_columns=["url"])
    assert [d["id"] for d in a] == [d["id"] for d in b]
    assert len(a) == 15 and len({d["id"] for d in a}) == 15
    assert all(d["text"] == f"text of {d['id']}" and d["url"] == f"u/{d['id']}" for d in a)
    assert [d["id"] for d in sample_documents(paths, 15, seed=2)] != [d["id"] for d in a]
    everything = sample_documents(paths, 1000, seed=1)
    assert len(everything) == 121, "120 unique ids + 'dup' once"
    assert sample_documents(paths, 0) == []
