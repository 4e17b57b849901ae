"""Common Crawl input without the internet: a local HTTP server plays data.commoncrawl.org.

The server (127.0.0.1, a port of its own) serves the bundled sample WARCs under a Common Crawl
layout, the snapshot's ``warc.paths.gz`` / ``wet.paths.gz`` listings, and supports ``Range``,
``If-Range`` and ``HEAD``. Faults are injected per file: ``503``/``429`` with ``Retry-After: 0``
and connections cut after half the body. Every request is logged, so tests can count bytes.
"""

from __future__ import annotations

import gzip
import io as pyio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastwarc.warc import ArchiveIterator, WarcRecordType
from warcio.warcwriter import WARCWriter

from pipelines import commoncrawl as cc
from pipelines.config import CommonCrawlInput, Config, ConfigError, parse_config
from pipelines.demo.sample import sample_manifest, write_sample
from pipelines.extract import ExtractStage, doc_id
from pipelines.fetch import FetchError, FetchStats, RetriesExhausted, RetryPolicy, download, get
from pipelines.runner import run_shards
from tests.conftest import SHARED_WARC

SNAPSHOT = "CC-MAIN-2024-10"
SEGMENTS = ("1707947473347.0", "1707947473518.77")
LANG3 = {"pt": "por", "en": "eng", "es": "spa", "de": "deu", "fr": "fra", "it": "ita"}
INDEX_FILE = f"index/crawl={SNAPSHOT}/subset=warc/part-00000.parquet"
FAST = {"retries": 5, "backoff_s": 0.01, "max_backoff_s": 0.05, "timeout_s": 10}


# --- the server -----------------------------------------------------------------------------------


@dataclass
class Server:
    root: Path
    url: str = ""
    faults: dict[str, list[str]] = field(default_factory=dict)  # path -> actions, consumed in order
    log: list[tuple[str, str, str | None, int, int]] = field(default_factory=list)  # method, path, range, status, sent
    lock: threading.Lock = field(default_factory=threading.Lock)

    def inject(self, rel: str, *actions: str) -> None:
        with self.lock:
            self.faults.setdefault("/" + rel.lstrip("/"), []).extend(actions)

    def sent(self, rel: str = "", method: str = "GET") -> int:
        with self.lock:
            return sum(n for m, p, _, _, n in self.log if m == method and p.endswith(rel))

    def statuses(self, rel: str) -> list[int]:
        with self.lock:
            return [s for _, p, _, s, _ in self.log if p.endswith(rel)]

    def reset(self) -> None:
        with self.lock:
            self.log.clear()
            self.faults.clear()


def _handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep pytest output clean
            pass

        def do_HEAD(self) -> None:
            self._serve(head=True)

        def do_GET(self) -> None:
            self._serve(head=False)

        def _record(self, status: int, sent: int) -> None:
            with server.lock:
                server.log.append((self.command, self._path, self.headers.get("Range"), status, sent))

        def _serve(self, head: bool) -> None:
            self._path = unquote(urlsplit(self.path).path)
            with server.lock:
                queue = server.faults.get(self._path) or []
                action = queue.pop(0) if queue else None
            if action in ("503", "429"):
                body = b"<Error><Code>SlowDown</Code></Error>"
                self._record(int(action), 0)  # logged before replying: the client may look right after
                self.send_response(int(action))
                self.send_header("Retry-After", "0")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)
                return
            file = server.root / self._path.lstrip("/")
            if not file.is_file():
                self._record(404, 0)
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = file.read_bytes()
            etag = f'"{len(data)}-{int(file.stat().st_mtime)}"'
            status, start, end = 200, 0, len(data) - 1
            rng = self.headers.get("Range")
            if rng and self.headers.get("If-Range", etag) == etag:
                lo, _, hi = rng.removeprefix("bytes=").partition("-")
                start, end = int(lo), min(int(hi) if hi else len(data) - 1, len(data) - 1)
                status = 206
            body = data[start : end + 1]
            cut = action == "cut" and not head
            self._record(status, 0 if head else len(body) // 2 if cut else len(body))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", etag)
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.end_headers()
            if head:
                return
            if cut:  # promise the whole body, send half, hang up
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

    return Handler


def _rel(name: str, seg: int) -> str:
    return f"crawl-data/{SNAPSHOT}/segments/{SEGMENTS[seg]}/warc/{name}"


@pytest.fixture(scope="module")
def cc_site(tmp_path_factory) -> Iterator[Server]:
    """The sample laid out like Common Crawl, served over HTTP on 127.0.0.1."""
    root = tmp_path_factory.mktemp("cc")
    sample = write_sample(root / "_sample", n_files=2)
    rels = []
    for i, src in enumerate(sample):
        rel = _rel(f"{SNAPSHOT}-2024022000000{i}-0000{i}.warc.gz", i)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(src.read_bytes())
        rels.append(rel)
    wet_rel = _rel(f"{SNAPSHOT}-20240220000000-00000.warc.wet.gz", 0).replace("/warc/", "/wet/")
    (root / wet_rel).parent.mkdir(parents=True, exist_ok=True)
    _write_wet(root / rels[0], root / wet_rel)
    listing = root / "crawl-data" / SNAPSHOT
    (listing / "warc.paths.gz").write_bytes(gzip.compress(("\n".join(reversed(rels)) + "\n").encode()))
    (listing / "wet.paths.gz").write_bytes(gzip.compress((wet_rel + "\n").encode()))
    _write_index(root, rels, root / INDEX_FILE)

    srv = Server(root)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(srv))
    httpd.daemon_threads = True
    srv.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def site(cc_site: Server) -> Server:
    cc_site.reset()
    return cc_site


def _records(path: Path) -> list[tuple[int, int, object]]:
    """(offset, length, record) of every record: Common Crawl's index offsets are these."""
    size = path.stat().st_size
    recs = list(ArchiveIterator(open(path, "rb"), parse_http=False))  # noqa: SIM115 - read to the end here
    out = []
    for i, rec in enumerate(recs):
        end = recs[i + 1].stream_pos if i + 1 < len(recs) else size
        out.append((rec.stream_pos, end - rec.stream_pos, rec))
    return out


def _write_index(root: Path, rels: list[str], dest: Path) -> None:
    """A columnar URL index (Common Crawl's columns) for the sample's response records.

    Every other Portuguese page also lists English (``por,eng``: still primary Portuguese), and
    every third English page lists Portuguese second (``eng,por``: not selected by ``por``).
    """
    truth = {r.record_id: r for r in sample_manifest(2)}
    rows = []
    for rel in rels:
        for offset, length, rec in _records(root / rel):
            if rec.record_type != WarcRecordType.response:
                continue
            m = truth[rec.headers.get("WARC-Record-ID")]
            lang = LANG3.get(m.lang or "")
            n = len(rows)
            if lang == "por" and n % 2:
                lang = "por,eng"
            elif lang == "eng" and n % 3 == 0:
                lang = "eng,por"
            mime = {"image_png": "image/png", "binary_html": "image/png", "pdf": "application/pdf",
                    "robots_txt": "text/plain"}.get(m.kind, "text/html")
            rows.append({"url": m.url, "url_host_name": urlsplit(m.url).hostname, "content_languages": lang,
                         "content_mime_detected": mime, "fetch_status": m.status, "warc_filename": rel,
                         "warc_record_offset": offset, "warc_record_length": length, "crawl": SNAPSHOT,
                         "subset": "warc"})
    schema = pa.schema([("url", pa.string()), ("url_host_name", pa.string()), ("content_languages", pa.string()),
                        ("content_mime_detected", pa.string()), ("fetch_status", pa.int16()),
                        ("warc_filename", pa.string()), ("warc_record_offset", pa.int32()),
                        ("warc_record_length", pa.int32()), ("crawl", pa.string()), ("subset", pa.string())])
    dest.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(sorted(rows, key=lambda r: r["url"]), schema), dest, row_group_size=50)


def _write_wet(warc: Path, dest: Path) -> None:
    """A WET file for the first few HTML responses of ``warc``: conversion records with WARC-Refers-To."""
    buf = pyio.BytesIO()
    writer = WARCWriter(buf, gzip=True)
    records = ArchiveIterator(open(warc, "rb"), record_types=WarcRecordType.response)  # noqa: SIM115
    for n, rec in enumerate(records):
        if n == 5:
            break
        text = f"Texto convertido {n}\n\n\n\nlinha com espaços   \nfim".encode()
        out = writer.create_warc_record(
            rec.headers.get("WARC-Target-URI"), "conversion", payload=pyio.BytesIO(text), length=len(text),
            warc_headers_dict={"WARC-Record-ID": f"<urn:uuid:00000000-0000-0000-0000-{n:012d}>",
                               "WARC-Refers-To": rec.headers.get("WARC-Record-ID"),
                               "WARC-Date": rec.headers.get("WARC-Date"), "Content-Type": "text/plain"})
        writer.write_record(out)
    dest.write_bytes(buf.getvalue())


def _config(tmp_path: Path, site: Server, **cc_keys: object) -> Config:
    extract = cc_keys.pop("_extract", {})
    return parse_config({
        "name": "cc", "output": str(tmp_path / "run"),
        "input": {"base_url": site.url, **FAST, **cc_keys},
        "extract": {"extractor": "resiliparse", **extract},  # type: ignore[dict-item]
    })


def _rows(out: Path) -> list[dict]:
    rows = []
    for f in sorted(out.glob("*.parquet")):
        rows.extend(pq.read_table(f).to_pylist())
    return sorted(rows, key=lambda r: r["id"])


# --- selection ---------------------------------------------------------------------------------


def test_file_selection_is_deterministic():
    listing = [f"crawl-data/{SNAPSHOT}/segments/{s}/warc/f-{i:03d}.warc.gz" for s in ("b", "a", "c") for i in range(10)]
    pick = lambda **k: cc.select_files(listing, CommonCrawlInput(snapshot=SNAPSHOT, **k))  # noqa: E731
    assert pick(files="0-2,29") == sorted(listing)[:3] + [sorted(listing)[29]]
    assert pick(segments="1") == sorted(p for p in listing if "/b/" in p)  # segment ids sorted: a, b, c
    a, b = pick(sample=0.2, seed=1), pick(sample=0.2, seed=1)
    assert a == b and len(a) == 6 and a == sorted(a) and pick(sample=0.2, seed=2) != a
    assert set(pick(sample=0.1, seed=1)) < set(a)  # a bigger fraction keeps the smaller one's files
    assert pick() == sorted(listing)
    with pytest.raises(ConfigError, match="backwards"):
        pick(files="5-2")


def test_config_shapes_and_errors():
    assert parse_config({"input": ["a.warc.gz"]}).input == ["a.warc.gz"]
    cfg = parse_config({"input": {"snapshot": SNAPSHOT, "files": 7}, "extract": {"format": "wet"}})
    assert isinstance(cfg.input, CommonCrawlInput) and cfg.input.files == "7" and cfg.extract.format == "wet"
    for bad, words in [({"snapshot": "2024-10"}, "input.commoncrawl.snapshot"),
                       ({"snapshot": SNAPSHOT, "files": "1", "sample": 0.5}, "choose one"),
                       ({"snapshot": SNAPSHOT, "languages": ["por"]}, "set `index`"),
                       ({"base_url": "x"}, "needs `snapshot`"),
                       ({"snapshot": SNAPSHOT, "segmnts": "1"}, "unknown key")]:
        with pytest.raises(ConfigError, match=words):
            parse_config({"input": bad})
    wet_index = parse_config({"input": {"index": "x/*.parquet"}, "extract": {"format": "wet"}})
    with pytest.raises(ConfigError, match="cannot be combined"):
        cc.resolve_inputs(wet_index)


# --- snapshot mode over HTTP ------------------------------------------------------------------------


def test_snapshot_by_name_resolves_listing_and_matches_local_extraction(tmp_path, site):
    config = _config(tmp_path, site, snapshot=SNAPSHOT, files="1", download_dir=str(tmp_path / "dl"))
    (tmp_path / "dl").mkdir()
    (url,) = cc.resolve_inputs(config)
    assert url == site.url + _rel(f"{SNAPSHOT}-20240220000001-00001.warc.gz", 1)
    stats = ExtractStage(config).process_shard(url, str(tmp_path / "remote"), "s")
    local = site.root / urlsplit(url).path.lstrip("/")
    ExtractStage(config).process_shard(str(local), str(tmp_path / "local"), "s")
    remote_rows, local_rows = _rows(tmp_path / "remote"), _rows(tmp_path / "local")
    assert len(remote_rows) == stats["docs_out"] > 50
    assert {r["source_file"] for r in remote_rows} == {url} and {r["snapshot"] for r in remote_rows} == {SNAPSHOT}
    strip = lambda rows: [{k: v for k, v in r.items() if k != "source_file"} for r in rows]  # noqa: E731
    assert strip(remote_rows) == strip(local_rows)
    assert stats["counters"]["fetch"]["whole_file_bytes"] == local.stat().st_size == stats["bytes_in"]
    assert list((tmp_path / "dl").iterdir()) == []  # the local copy is gone once the shard is written


def test_throttling_and_cut_connections_still_give_complete_data(tmp_path, site):
    """503 SlowDown and 429 with Retry-After: 0, and bodies cut in half: the result is still exact."""
    config = _config(tmp_path, site, snapshot=SNAPSHOT, files="0")
    site.inject(f"crawl-data/{SNAPSHOT}/warc.paths.gz", "503", "cut")
    (url,) = cc.resolve_inputs(config)
    rel = urlsplit(url).path
    site.inject(rel, "503", "429", "cut", "503", "cut")
    stats = ExtractStage(config).process_shard(url, str(tmp_path / "remote"), "s")
    fetch = stats["counters"]["fetch"]
    assert fetch["retries"] == 5 and fetch["throttled"] == 3 and fetch["resumed"] >= 1
    assert site.statuses(rel).count(503) == 2 and site.statuses(rel).count(429) == 1
    size = (site.root / rel.lstrip("/")).stat().st_size
    assert fetch["whole_file_bytes"] == size == fetch["bytes_fetched"]  # resumed: no byte fetched twice
    local = str(site.root / rel.lstrip("/"))
    ExtractStage(config).process_shard(local, str(tmp_path / "local"), "s")
    assert [r["text"] for r in _rows(tmp_path / "remote")] == [r["text"] for r in _rows(tmp_path / "local")]
    assert stats["failure_counts"] == {}


def test_fetch_retries_are_bounded_and_permanent_errors_are_not_retried(tmp_path, site):
    policy = RetryPolicy(retries=2, backoff_s=0.0, timeout_s=5)
    rel = f"crawl-data/{SNAPSHOT}/warc.paths.gz"
    site.inject(rel, "503", "503", "503", "503")
    stats = FetchStats()
    with pytest.raises(RetriesExhausted, match="HTTP 503"):  # an OSError: Ray retries the shard task
        get(site.url + rel, policy, stats)
    assert stats.requests == 3 and stats.retries == 2
    site.reset()
    with pytest.raises(FetchError) as err:
        download(site.url + "crawl-data/nope.warc.gz", str(tmp_path / "x"), policy, stats)
    assert err.value.status == 404 and not isinstance(err.value, OSError)
    assert site.statuses("nope.warc.gz") == [404]
    data = get(site.url + rel, policy, FetchStats(), 10, 19)  # a range is exactly the bytes asked for
    assert data == (site.root / rel).read_bytes()[10:20]


# --- WET ---------------------------------------------------------------------------------------------


def test_wet_snapshot_gives_conversion_text_with_response_ids(tmp_path, site):
    config = _config(tmp_path, site, snapshot=SNAPSHOT, _extract={"format": "wet"})
    (url,) = cc.resolve_inputs(config)
    assert url.endswith(".warc.wet.gz") and "/wet/" in url
    stats = ExtractStage(config).process_shard(url, str(tmp_path / "wet"), "s")
    rows = sorted(pq.read_table(tmp_path / "wet" / "s.parquet").to_pylist(), key=lambda r: r["text"])
    assert stats["docs_in"] == stats["docs_out"] == 5
    warc = site.root / _rel(f"{SNAPSHOT}-20240220000000-00000.warc.gz", 0)
    responses = [r for _, _, r in _records(warc) if r.record_type == WarcRecordType.response][:5]
    assert rows[0]["text"] == "Texto convertido 0\n\nlinha com espaços\nfim"
    assert rows[0]["warc_record_id"] == responses[0].headers.get("WARC-Record-ID")
    assert rows[0]["id"] == doc_id(responses[0].headers.get("WARC-Record-ID"), "", 0, None)
    assert rows[0]["url"] == responses[0].headers.get("WARC-Target-URI") and rows[0]["snapshot"] == SNAPSHOT


@pytest.mark.shared_data
def test_real_wet_record_matches_its_warc_capture(tmp_path):
    wet, warc = SHARED_WARC / "cc-2024-one-record.warc.wet.gz", SHARED_WARC / "cc-2024-one-record.warc.gz"
    if not wet.exists() or not warc.exists():
        pytest.skip("shared Common Crawl sample not present")
    base = {"name": "w", "output": str(tmp_path / "run")}
    stage = ExtractStage(parse_config({**base, "extract": {"format": "wet", "snapshot": "CC-MAIN-2024-22"}}))
    stats = stage.process_shard(str(wet), str(tmp_path / "wet"), "s")
    (row,) = pq.read_table(tmp_path / "wet" / "s.parquet").to_pylist()
    assert stats["docs_in"] == 1 and row["url"] == "https://an.wikipedia.org/wiki/Escopete"
    assert row["warc_record_id"] == "<urn:uuid:2aabeff2-67f5-4608-8466-e87c6296e2b6>"  # WARC-Refers-To
    assert row["text"].startswith("Escopete - Biquipedia") and row["domain"] == "an.wikipedia.org"
    assert row["snapshot"] == "CC-MAIN-2024-22" and row["warc_date"] == "2024-05-18T01:58:10Z"
    ExtractStage(parse_config({**base, "extract": {"extractor": "resiliparse"}})).process_shard(
        str(warc), str(tmp_path / "warc"), "s")
    (html_row,) = pq.read_table(tmp_path / "warc" / "s.parquet").to_pylist()
    assert html_row["id"] == row["id"]  # the same capture has the same id in WET and WARC mode
    assert len(row["text"]) > len(html_row["text"])  # WET keeps the menus the extractor drops


# --- index mode -----------------------------------------------------------------------------------


def test_index_mode_fetches_a_fraction_and_matches_whole_file_mode(tmp_path, site):
    index = str(site.root / "index" / "**" / "*.parquet")
    idx_cfg = _config(tmp_path / "i", site, index=index, snapshot=SNAPSHOT, languages=["por"], concurrency=3)
    plans = cc.resolve_inputs(idx_cfg)
    assert len(plans) == 2 and all(p.endswith(cc.PLAN_SUFFIX) and "/extract/_plan/" in p for p in plans)
    selected = pq.read_table(site.root / INDEX_FILE).to_pylist()
    wanted = {r["url"] for r in selected if (r["content_languages"] or "").split(",")[0] == "por"
              and r["fetch_status"] == 200 and r["content_mime_detected"] == "text/html"}
    assert sum(pq.read_metadata(p).num_rows for p in plans) == len(wanted)

    site.inject(_rel(f"{SNAPSHOT}-20240220000000-00000.warc.gz", 0), "503", "cut", "429")
    summary = run_shards(ExtractStage(idx_cfg), plans, str(tmp_path / "index_out"), idx_cfg.ray, progress=False)
    whole_cfg = _config(tmp_path / "w", site, snapshot=SNAPSHOT)
    urls = cc.resolve_inputs(whole_cfg)
    whole = run_shards(ExtractStage(whole_cfg), urls, str(tmp_path / "whole_out"), whole_cfg.ray, progress=False)

    fi, fw = summary["counters"]["fetch"], whole["counters"]["fetch"]
    sizes = sum((site.root / urlsplit(u).path.lstrip("/")).stat().st_size for u in urls)
    assert fw["whole_file_bytes"] == fi["whole_file_bytes"] == sizes == fw["bytes_fetched"]
    assert fi["range_bytes"] < 0.5 * sizes and fi["retries"] == 3 and fi["files"] == 2
    fraction = fi["range_bytes"] / sizes
    print(f"index mode fetched {fi['range_bytes']} of {sizes} bytes ({fraction:.1%}); "
          f"{fi['bytes_fetched']} with the cut retry; {fi['requests']} requests for {fi['ranges']} records")

    index_rows = _rows(tmp_path / "index_out")
    whole_rows = [r for r in _rows(tmp_path / "whole_out") if r["url"] in wanted]
    assert index_rows == whole_rows and len(index_rows) > 20  # same ids, texts, source_file, snapshot
    rej = lambda d: sorted(r["url"] for f in (d / "rejected").glob("*.parquet") for r in pq.read_table(f).to_pylist())  # noqa: E731
    assert rej(tmp_path / "index_out") == [u for u in rej(tmp_path / "whole_out") if u in wanted]
    assert summary["docs_in"] == len(wanted) and summary["failures_by_reason"] == {}


def test_index_filters_domains_regex_and_bad_ranges(tmp_path, site):
    index = str(site.root / INDEX_FILE)
    rows = pq.read_table(index).to_pylist()
    host = next(r["url_host_name"] for r in rows if (r["content_languages"] or "").startswith("deu"))
    parent = host.split(".", 1)[1] if host.count(".") > 1 else host
    config = _config(tmp_path, site, index=index, domains=[parent], url_regex="^https://")
    plans = cc.resolve_inputs(config)
    picked = [r for p in plans for r in pq.read_table(p).to_pylist()]
    expect = {r["url"] for r in rows if (r["url_host_name"] == parent or r["url_host_name"].endswith("." + parent))
              and r["url"].startswith("https://") and r["fetch_status"] == 200
              and r["content_mime_detected"] in ("text/html", "application/xhtml+xml")}
    assert {r["url"] for r in picked} == expect and expect

    # a plan whose index offsets are wrong: the bad member is a named failure, the good one is kept
    good = next(r for r in rows if r["fetch_status"] == 200 and r["content_mime_detected"] == "text/html"
                and (r["content_languages"] or "").startswith("por"))
    other = next(r for r in rows if r["warc_filename"] == good["warc_filename"] and r["url"] != good["url"])
    plan = pa.table({"offset": [good["warc_record_offset"], other["warc_record_offset"] + 1],
                     "length": [good["warc_record_length"], other["warc_record_length"]],
                     "url": [good["url"], other["url"]]}, cc.PLAN_SCHEMA).replace_schema_metadata({
        "cptcorpus.warc_url": site.url + good["warc_filename"], "cptcorpus.warc_filename": good["warc_filename"],
        "cptcorpus.part": "1", "cptcorpus.parts": "2"})
    path = tmp_path / f"bad{cc.PLAN_SUFFIX}"
    pq.write_table(plan, path)
    stats = ExtractStage(config).process_shard(str(path), str(tmp_path / "o"), "bad")
    assert stats["failure_counts"] == {"bad_range": 1} and stats["docs_in"] == 1
    assert stats["counters"]["fetch"]["whole_file_bytes"] == 0  # only part 0 of a WARC counts the whole file
    (row,) = _rows(tmp_path / "o")
    assert row["url"] == good["url"] and row["source_file"] == site.url + good["warc_filename"]
    assert cc.check_member(b"", None) == ("bad_range", "gzip member ends early")


def test_cli_resolves_the_index_and_prints_what_it_fetched(tmp_path, site, capsys):
    """The CLI's pieces (not ``main``, which imports every stage): default inputs and the summary line."""
    from pipelines.cli import _print_summary, default_inputs
    from pipelines.config import load_config

    cfg = tmp_path / "cc.yaml"
    cfg.write_text(
        f"name: cli\noutput: {tmp_path / 'run'}\n"
        f"input:\n  index: {site.root / INDEX_FILE}\n  languages: [deu]\n  files: '1'\n"
        f"  base_url: {site.url}\n  backoff_s: 0.01\n"
        "extract:\n  extractor: resiliparse\n", encoding="utf-8")
    config = load_config(cfg)
    (plan,) = default_inputs(config, "extract")
    assert plan == str(tmp_path / "run" / "extract" / "_plan" / f"{SNAPSHOT}-20240220000001-00001.ranges.parquet")
    summary = run_shards(ExtractStage(config), [plan], config.stage_dir("extract"), config.ray, progress=False)
    _print_summary(summary)
    err = capsys.readouterr().err
    assert "fetched 0." in err and "% of 0.4 MB of whole files), 0 retries" in err
    rows = _rows(tmp_path / "run" / "extract")
    assert rows and {r["source_file"] for r in rows} == {site.url + _rel(f"{SNAPSHOT}-20240220000001-00001.warc.gz", 1)}
    assert not list((tmp_path / "run" / "extract").glob("_plan*.parquet"))  # plans stay out of the stage's shards


def test_s3_urls_take_the_fsspec_route(tmp_path, cc_site, s3_server):
    """``base_url: s3://<bucket>/`` against the session's local S3 server (moto, see conftest)."""
    fs = s3_server.filesystem()
    bucket = s3_server.bucket("commoncrawl")
    warc_rel = _rel(f"{SNAPSHOT}-20240220000000-00000.warc.gz", 0)
    for rel in (f"crawl-data/{SNAPSHOT}/warc.paths.gz", warc_rel):
        fs.put_file(str(cc_site.root / rel), f"{bucket}/{rel}")

    config = parse_config({"name": "s3", "output": str(tmp_path / "run"), "extract": {"extractor": "resiliparse"},
                           "input": {"snapshot": SNAPSHOT, "files": "0", "base_url": f"{bucket}/", **FAST}})
    (url,) = cc.resolve_inputs(config)  # the listing names two files; only warc_rel was uploaded
    assert url == f"{bucket}/{warc_rel}"
    stats = ExtractStage(config).process_shard(url, str(tmp_path / "s3"), "s")
    ExtractStage(config).process_shard(str(cc_site.root / warc_rel), str(tmp_path / "local"), "s")
    assert stats["counters"]["fetch"]["whole_file_bytes"] == (cc_site.root / warc_rel).stat().st_size
    assert [r["text"] for r in _rows(tmp_path / "s3")] == [r["text"] for r in _rows(tmp_path / "local")]

    index_cfg = parse_config({"name": "s3i", "output": str(tmp_path / "run2"), "extract": {"extractor": "resiliparse"},
                              "input": {"index": str(cc_site.root / INDEX_FILE), "languages": ["por"],
                                        "files": "0", "base_url": f"{bucket}/", **FAST}})
    (plan,) = cc.resolve_inputs(index_cfg)
    stats = ExtractStage(index_cfg).process_shard(plan, str(tmp_path / "s3i"), "p")
    fetch = stats["counters"]["fetch"]
    assert stats["docs_in"] == pq.read_metadata(plan).num_rows and stats["failure_counts"] == {}
    assert fetch["bytes_fetched"] == fetch["range_bytes"] < fetch["whole_file_bytes"]
    assert {r["url"] for r in _rows(tmp_path / "s3i")} <= {r["url"] for r in _rows(tmp_path / "local")}


def test_the_index_plan_is_made_per_partition_with_the_same_plans(tmp_path, site, monkeypatch):
    """The index split into several files (records of one WARC file in every one of them) and planned
    through few partitions gives exactly the plans of one pass over the whole selection."""
    index = pq.read_table(site.root / INDEX_FILE)
    order = np.random.default_rng(0).permutation(index.num_rows)
    split = tmp_path / "split"
    split.mkdir()
    for k, rows in enumerate(np.array_split(order, 4)):
        pq.write_table(index.take(pa.array(rows)), split / f"part-{k}.parquet")
    reference = cc.scan_index(_config(tmp_path, site, index=str(site.root / INDEX_FILE)).input)
    monkeypatch.setattr(cc, "INDEX_PARTITIONS", 2)
    config = _config(tmp_path, site, index=str(split / "*.parquet"), batch_records=7)
    plans = cc.resolve_inputs(config)
    assert len({pq.read_schema(p).metadata[b"cptcorpus.warc_filename"] for p in plans}) == 2  # both WARC files
    got = {}
    for p in plans:
        name = pq.read_schema(p).metadata[b"cptcorpus.warc_filename"].decode()
        got.setdefault(name, []).extend(pq.read_table(p).to_pylist())
    expect: dict[str, set] = {}
    for r in reference.to_pylist():
        expect.setdefault(r["warc_filename"], set()).add((r["offset"], r["length"], r["url"]))
    assert {n: sorted((r["offset"], r["length"], r["url"]) for r in rows) for n, rows in got.items()} == \
        {n: sorted(v) for n, v in expect.items()}
    assert all(r["offset"] <= s["offset"] for rows in got.values() for r, s in zip(rows, rows[1:], strict=False))
