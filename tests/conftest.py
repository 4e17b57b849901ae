"""Shared fixtures: one local Ray runtime per test session, WARC builders, the bundled sample."""

from __future__ import annotations

import gzip
import io
import logging
import os
from pathlib import Path

import pytest
import ray
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

SHARED_WARC = Path(__file__).resolve().parents[2] / "shared" / "data" / "warc"

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def ray_session(s3_server):
    """Start Ray once for the whole session (2.5-5 s each time); stages and later tests reuse it.

    Not autouse: tests of rules, models and single shards run without Ray. Code that needs Ray and
    finds it running (``pipelines.runner.init_ray``) reuses this runtime. It starts after the session's
    S3 server so its workers inherit the server's (fake) credentials from the environment, the way a
    cluster node's workers inherit the node's: credentials never travel in task arguments.
    """
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    from pipelines.demo.sample import write_sample

    out = tmp_path_factory.mktemp("sample")
    write_sample(out, n_files=4)
    return out


def html_page(title: str, paragraphs: list[str], lang: str = "en") -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title></head>'
            f"<body><nav><a href='/'>Home</a> | <a href='/about'>About</a></nav>"
            f"<article><h1>{title}</h1>{body}</article><footer>Copyright 2024</footer></body></html>")


class WarcBuilder:
    """Write small real WARC files with warcio, one record per gzip member like Common Crawl."""

    def __init__(self, path: Path, gzip_members: bool = True) -> None:
        self.path = path
        self._buf = io.BytesIO()
        self._writer = WARCWriter(self._buf, gzip=gzip_members)
        self._n = 0

    def response(self, url: str, payload: bytes, content_type: str | None = "text/html; charset=utf-8",
                 status: str = "200 OK", extra_headers: list[tuple[str, str]] | None = None) -> WarcBuilder:
        headers = [("Content-Type", content_type)] if content_type else []
        headers += extra_headers or []
        http = StatusAndHeaders(status, headers, protocol="HTTP/1.1")
        self._n += 1
        rec = self._writer.create_warc_record(
            url, "response", payload=io.BytesIO(payload), http_headers=http,
            warc_headers_dict={"WARC-Record-ID": f"<urn:uuid:00000000-0000-0000-0000-{self._n:012d}>",
                               "WARC-Date": "2024-02-20T10:00:00Z"},
        )
        self._writer.write_record(rec)
        return self

    def request(self, url: str) -> WarcBuilder:
        http = StatusAndHeaders("GET / HTTP/1.1", [("Host", "example.com")], is_http_request=True)
        self._writer.write_record(self._writer.create_warc_record(url, "request", http_headers=http))
        return self

    def warcinfo(self, fields: dict[str, str]) -> WarcBuilder:
        """A warcinfo record (Common Crawl's first record says ``isPartOf: CC-MAIN-...``)."""
        self._writer.write_record(self._writer.create_warcinfo_record(self.path.name, fields))
        return self

    def write(self) -> Path:
        self.path.write_bytes(self._buf.getvalue())
        return self.path


@pytest.fixture
def warc_builder(tmp_path):
    def make(name: str = "test.warc.gz", gzip_members: bool = True) -> WarcBuilder:
        return WarcBuilder(tmp_path / name, gzip_members)

    return make


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


class S3Server:
    """A local S3 endpoint (moto) that s3fs/botocore reach through ``AWS_ENDPOINT_URL``.

    `env` holds every variable the fixture sets: pass it to subprocesses or a Ray runtime env so
    they reach the same server with the same fake credentials.
    """

    def __init__(self, endpoint_url: str, env: dict[str, str]) -> None:
        self.endpoint_url = endpoint_url
        self.env = env
        self._buckets = 0

    def filesystem(self):
        import fsspec

        return fsspec.filesystem("s3", skip_instance_cache=True, endpoint_url=self.endpoint_url)

    def bucket(self, prefix: str = "test") -> str:
        """A new empty bucket (unique within the session); returns its ``s3://`` URL."""
        self._buckets += 1
        name = f"{prefix}-{self._buckets}"
        self.filesystem().mkdir(name)
        return f"s3://{name}"


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server on 127.0.0.1 (a free port) for the whole session, stopped even when tests fail.

    Credentials are fake and come only from environment variables set here; the shared AWS config
    and credentials files are pointed at nothing so a developer's real profile is never read.
    s3fs's instance cache is cleared on entry and exit so no client outlives the server.
    """
    import s3fs
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {"AWS_ACCESS_KEY_ID": "fake-key", "AWS_SECRET_ACCESS_KEY": "fake-secret", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": endpoint, "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
           "AWS_EC2_METADATA_DISABLED": "true"}
    with pytest.MonkeyPatch.context() as mp:
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            mp.delenv(key, raising=False)
        for key, value in env.items():
            mp.setenv(key, value)
        s3fs.S3FileSystem.clear_instance_cache()
        try:
            yield S3Server(endpoint, env)
        finally:
            s3fs.S3FileSystem.clear_instance_cache()
            server.stop()
