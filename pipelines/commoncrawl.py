"""Common Crawl as a first-class input: snapshots by name, WET text, and index-driven range fetching.

Three ways in, all resolved on the driver before the runner expands inputs (``resolve_inputs``):

* **Snapshot by name** (``input: {snapshot: CC-MAIN-2024-10, files: "0-99"}``): the snapshot's
  ``crawl-data/<snapshot>/warc.paths.gz`` (``wet.paths.gz`` with ``extract.format: wet``) is read
  from ``base_url`` and a deterministic subset of it becomes the list of input URLs.
* **WET** (``extract.format: wet``): Common Crawl's own text extraction, a tenth of the bytes and no
  HTML parsing, but with navigation and boilerplate left in (see ``ExtractStage``).
* **Columnar URL index** (``input: {index: ..., languages: [por]}``): the index Parquet is filtered
  with pyarrow (primary CLD2 language, detected MIME type, fetch status, hosts, URL regex) and the
  selected records become one small *range plan* per WARC file (``<warc>.ranges.parquet`` under
  ``<run>/extract/_plan/``); the extract task fetches just those byte ranges (one gzip member =
  one record each) and reads them as a WARC, so index mode and whole-file mode share every line
  of record handling and produce identical documents for the same captures.

Remote whole files are **downloaded to a private local temporary file, verified, then read**,
rather than streamed: a streamed read that is cut after 600 MB can only start over, and FastWARC
cannot tell a cut stream from the end of the file. A local copy is resumed with ``Range`` requests
(``pipelines.fetch``), checked against the server's length, and then gets the same gzip-completeness
check as any local WARC. The cost is local disk (one ~1.2 GB WARC per running task, under
``download_dir``), deleted as soon as the shard is written. ``s3://`` URLs take the same route
through fsspec (``s3fs``), whose botocore client also retries S3 ``SlowDown``.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import re
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from pipelines import io
from pipelines.config import CommonCrawlInput, Config, ConfigError
from pipelines.fetch import FetchError, FetchStats, RetryPolicy, download, get, size

log = logging.getLogger("cptcorpus")

LISTINGS = {"warc": "warc.paths.gz", "wet": "wet.paths.gz"}
INDEX_LISTING = "cc-index-table.paths.gz"
PLAN_DIR = "_plan"
PLAN_SUFFIX = ".ranges.parquet"
PLAN_SCHEMA = pa.schema([
    pa.field("offset", pa.int64(), nullable=False),
    pa.field("length", pa.int64(), nullable=False),
    pa.field("url", pa.string()),
])
#: Index columns a selection needs (the rest of Common Crawl's ~30 columns are never read).
INDEX_PARTITIONS = 256  # index mode: partitions the selection is spilled into (bounds the driver)
INDEX_COLUMNS = ("url", "warc_filename", "warc_record_offset", "warc_record_length")
_SEGMENT = re.compile(r"/segments/([^/]+)/")
_PARTITION = re.compile(r"(crawl|subset)=([^/]+)")
_TARGET_URI = re.compile(rb"\r?\nWARC-Target-URI:\s*<?([^\r\n>]*)>?\r?\n", re.IGNORECASE)


# --- resolution (driver side) -----------------------------------------------------------------


def resolve_inputs(config: Config, plan_dir: str | None = None) -> list[str]:
    """The extract stage's input list: paths as given, snapshot URLs, or range plans (index mode).

    A plain list of paths/globs/URLs is returned unchanged (``pipelines.io.expand_inputs`` expands
    it in the runner). ``plan_dir`` defaults to ``<run>/extract/_plan``; it must be on storage every
    Ray worker sees, like the run directory itself.
    """
    cc = config.input
    if not isinstance(cc, CommonCrawlInput):
        return list(cc)
    if cc.index:
        if config.extract.format == "wet":
            raise ConfigError("input.index selects WARC records; it cannot be combined with extract.format: wet")
        plan_dir = plan_dir or os.path.join(config.stage_dir("extract"), PLAN_DIR)
        return plan_index(cc, plan_dir)
    return snapshot_urls(cc, config.extract.format)


def snapshot_urls(cc: CommonCrawlInput, kind: str = "warc") -> list[str]:
    """URLs of the snapshot's WARC (or WET) files that the selection keys pick, in listing order."""
    assert cc.snapshot
    listing = read_listing(cc, LISTINGS[kind])
    chosen = select_files(listing, cc)
    log.info("%s: %d of %d %s files selected", cc.snapshot, len(chosen), len(listing), kind.upper())
    if not chosen:
        raise ConfigError(f"input: the selection picks none of the {len(listing)} files of {cc.snapshot}")
    return [file_url(cc.base_url, p) for p in chosen]


def read_listing(cc: CommonCrawlInput, name: str) -> list[str]:
    """``crawl-data/<snapshot>/<name>`` (a gzipped list of paths), sorted; raises ConfigError if absent."""
    url = file_url(cc.base_url, f"crawl-data/{cc.snapshot}/{name}")
    try:
        data = get(url, RetryPolicy.from_config(cc), FetchStats())
    except FetchError as err:
        raise ConfigError(f"input.snapshot: cannot read the listing {url} ({err.reason}); "
                          "check the snapshot name and base_url") from None
    try:
        text = gzip.decompress(data).decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise ConfigError(f"input.snapshot: the listing {url} is not a complete gzip text file ({err})") from None
    return sorted(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))


def file_url(base_url: str, path: str) -> str:
    return base_url.rstrip("/") + "/" + path.lstrip("/")


def parse_ranges(spec: str) -> list[tuple[int, int]]:
    """``"0-9,20"`` -> ``[(0, 9), (20, 20)]`` (inclusive)."""
    out = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        a, b = int(lo), int(hi or lo)
        if b < a:
            raise ConfigError(f"input: range {part!r} runs backwards")
        out.append((a, b))
    return out


def _in_ranges(i: int, ranges: list[tuple[int, int]]) -> bool:
    return any(a <= i <= b for a, b in ranges)


def segment_of(path: str) -> str | None:
    m = _SEGMENT.search(path)
    return m.group(1) if m else None


def select_files(paths: list[str], cc: CommonCrawlInput) -> list[str]:
    """Pick files deterministically from a sorted list.

    ``files``: indexes into the sorted list. ``segments``: indexes into the sorted distinct
    Common Crawl segment ids (``.../segments/<id>/...``; a crawl has about 100, each ~1 % of it).
    ``sample``: the ``round(n * sample)`` files (at least one) with the smallest
    ``blake2b(seed, path)`` -- the same files on every run, and a file's chance of being picked
    does not depend on the rest of the listing.
    """
    paths = sorted(paths)
    if cc.files is not None:
        ranges = parse_ranges(cc.files)
        return [p for i, p in enumerate(paths) if _in_ranges(i, ranges)]
    if cc.segments is not None:
        ranges = parse_ranges(cc.segments)
        segments = sorted({s for p in paths if (s := segment_of(p)) is not None})
        keep = {s for i, s in enumerate(segments) if _in_ranges(i, ranges)}
        return [p for p in paths if segment_of(p) in keep]
    if cc.sample is not None:
        k = max(1, round(len(paths) * cc.sample)) if paths else 0
        ranked = sorted(paths, key=lambda p: hashlib.blake2b(f"{cc.seed}:{p}".encode(), digest_size=8).digest())
        return sorted(ranked[:k])
    return paths


# --- index mode: select records, write one range plan per WARC file ----------------------------


def index_paths(cc: CommonCrawlInput) -> list[str]:
    """The index Parquet files: the given paths/globs, or (``index: auto``) the snapshot's listing.

    Files under a ``subset=`` partition other than ``warc`` (robotstxt, crawldiagnostics) and
    under another ``crawl=`` than ``snapshot`` are left out by their path, before any read.
    """
    if cc.index == ["auto"]:
        listing = read_listing(cc, INDEX_LISTING)
        paths = [file_url(cc.base_url, p) for p in listing]
    else:
        paths = io.expand_inputs(cc.index, (".parquet",))
    keep = []
    for p in paths:
        parts = dict(_PARTITION.findall(p))
        if parts.get("subset", "warc") != "warc":
            continue
        if cc.snapshot and parts.get("crawl", cc.snapshot) != cc.snapshot:
            continue
        keep.append(p)
    if not keep:
        raise ConfigError(f"input.index: no index files for {cc.snapshot or 'the selection'} in {cc.index}")
    return keep


def index_filter(cc: CommonCrawlInput, columns: list[str]) -> ds.Expression:
    """The row filter: status, MIME, primary language, hosts, URL regex, subset and crawl."""
    expr = ds.field("fetch_status").isin(cc.status) if cc.status else ds.scalar(True)
    if cc.mime:
        expr &= ds.field("content_mime_detected").isin(cc.mime)
    if cc.languages:  # CLD2 lists up to three languages, the primary one first: "por,eng"
        lang = ds.field("content_languages")
        expr &= _any([(lang == code) | pc.starts_with(lang, pattern=f"{code},") for code in cc.languages])
    if cc.domains:
        host = ds.field("url_host_name")
        terms = []
        for d in cc.domains:
            d = d.lower().strip(".")
            terms.append((host == d) | pc.ends_with(host, pattern=f".{d}"))
        expr &= _any(terms)
    if cc.url_regex:
        expr &= pc.match_substring_regex(ds.field("url"), pattern=cc.url_regex)
    if "subset" in columns:
        expr &= ds.field("subset") == "warc"
    if cc.snapshot and "crawl" in columns:
        expr &= ds.field("crawl") == cc.snapshot
    return expr


def _any(terms: list[ds.Expression]) -> ds.Expression:
    out = terms[0]
    for t in terms[1:]:
        out |= t
    return out


def scan_index(cc: CommonCrawlInput, paths: list[str] | None = None) -> pa.Table:
    """Selected index rows (``url, warc_filename, offset, length``) of ``paths`` (default: every index
    file), sorted by file and offset.

    pyarrow reads only the filter's and the output's columns and skips row groups by statistics.
    ``plan_index`` calls it one index file at a time, so the driver never holds the whole selection.
    """
    paths = paths or index_paths(cc)
    fs = None
    if io.is_url(paths[0]):
        import fsspec
        from pyarrow.fs import FSSpecHandler, PyFileSystem

        fsspec_fs, _ = fsspec.core.url_to_fs(paths[0])
        fs = PyFileSystem(FSSpecHandler(fsspec_fs))
        paths = [fsspec.core.url_to_fs(p)[1] for p in paths]
    dataset = ds.dataset(paths, format="parquet", filesystem=fs)
    names = dataset.schema.names
    needed = set(INDEX_COLUMNS) | {"fetch_status"} | ({"content_mime_detected"} if cc.mime else set())
    needed |= ({"content_languages"} if cc.languages else set()) | ({"url_host_name"} if cc.domains else set())
    missing = sorted(needed - set(names))
    if missing:
        raise ConfigError(f"input.index: {paths[0]} lacks column(s) {', '.join(missing)}; "
                          f"expected Common Crawl's columnar URL index (found {', '.join(names)})")
    table = dataset.to_table(columns=list(INDEX_COLUMNS), filter=index_filter(cc, names))
    table = table.rename_columns(["url", "warc_filename", "offset", "length"])
    table = table.cast(pa.schema([("url", pa.string()), ("warc_filename", pa.string()),
                                  ("offset", pa.int64()), ("length", pa.int64())]))
    return table.sort_by([("warc_filename", "ascending"), ("offset", "ascending")])


def _partition_of(files: pa.ChunkedArray, partitions: int) -> np.ndarray:
    """Each row's partition, by a stable hash of its WARC file name: all records of a WARC file meet in
    one partition, whichever index file listed them."""
    encoded = files.combine_chunks().dictionary_encode()
    by_name = np.array([zlib.crc32(n.encode()) % partitions for n in encoded.dictionary.to_pylist()], dtype=np.int64)
    return by_name[encoded.indices.to_numpy(zero_copy_only=False)] if len(by_name) else np.zeros(0, np.int64)


def plan_index(cc: CommonCrawlInput, plan_dir: str) -> list[str]:
    """Scan the index and write one range plan per selected WARC file (split every ``batch_records``).

    Per partition, so the driver's memory does not grow with the selection: each index file's
    selected rows are spilled to local temporary files by a hash of their WARC file name
    (``INDEX_PARTITIONS`` at most), then each partition is read back, sorted and cut into plans. The
    driver holds one index file's selection or one partition at a time, plus the distinct WARC names.

    Plans are named after their WARC file, so shard names are stable from run to run and a re-run
    skips WARC files already done. Changing the selection keys on an existing run directory does
    not redo finished shards: use a new ``output`` for a new selection.
    """
    paths = index_paths(cc)
    partitions = max(1, min(INDEX_PARTITIONS, len(paths)))
    names: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="cptcorpus-index-") as spill:
        for k, path in enumerate(paths):
            table = scan_index(cc, [path])
            if table.num_rows == 0:
                continue
            names.update(pc.unique(table.column("warc_filename")).to_pylist())
            part = _partition_of(table.column("warc_filename"), partitions)
            for p in np.unique(part).tolist():
                pq.write_table(table.filter(pa.array(part == p)), os.path.join(spill, f"{p:05d}-{k:06d}.parquet"))
            del table
        ordered = sorted(names)
        chosen = set(select_files(ordered, cc))
        bases = dict(zip(ordered, io.shard_names(ordered), strict=True))  # unique even when base names repeat
        io.ensure_dir(plan_dir)
        by_name: dict[str, list[str]] = {}
        records = fetch_bytes = 0
        for p in range(partitions):
            parts = sorted(f for f in os.listdir(spill) if f.startswith(f"{p:05d}-"))
            if not parts:
                continue
            table = pa.concat_tables([pq.read_table(os.path.join(spill, f)) for f in parts])
            table = table.sort_by([("warc_filename", "ascending"), ("offset", "ascending")])
            n, b = _write_plans(table, chosen, bases, cc, plan_dir, by_name)
            records, fetch_bytes = records + n, fetch_bytes + b
    log.info("index: %d records in %d of %d WARC files selected, %.1f MB to fetch",
             records, len(chosen), len(names), fetch_bytes / 1e6)
    plans = [path for name in sorted(by_name) for path in by_name[name]]
    if not plans:
        raise ConfigError("input.index: the selection matches no records; check languages/mime/status/domains")
    return plans


def _write_plans(table: pa.Table, chosen: set[str], bases: dict[str, str], cc: CommonCrawlInput,
                 plan_dir: str, out: dict[str, list[str]]) -> tuple[int, int]:
    """Write the plans of the chosen WARC files in ``table`` (sorted by file and offset) into ``out``;
    return the records and bytes they select."""
    files = table.column("warc_filename").combine_chunks()
    records = fetch_bytes = 0
    for a, b in _run_bounds(files):
        name = files[a].as_py()
        if name not in chosen:
            continue
        group = table.slice(a, b - a).select(["offset", "length", "url"])
        _, first = np.unique(group.column("offset").to_numpy(), return_index=True)  # one row per record
        group = group.take(pa.array(np.sort(first)))
        parts = max(1, -(-group.num_rows // cc.batch_records))
        for part in range(parts):
            chunk = group.slice(part * cc.batch_records, cc.batch_records).cast(PLAN_SCHEMA)
            plan_name = f"{bases[name]}{PLAN_SUFFIX}" if parts == 1 else f"{bases[name]}.p{part:04d}{PLAN_SUFFIX}"
            meta = {"warc_url": file_url(cc.base_url, name), "warc_filename": name,
                    "part": str(part), "parts": str(parts)}
            chunk = chunk.replace_schema_metadata({f"cptcorpus.{k}": v for k, v in meta.items()})
            path = os.path.join(plan_dir, plan_name)
            io.write_table_atomic(path, chunk, compression="zstd")
            out.setdefault(name, []).append(path)
        records += group.num_rows
        fetch_bytes += int(pc.sum(group.column("length")).as_py() or 0)
    return records, fetch_bytes


def _run_bounds(sorted_values: pa.Array) -> list[tuple[int, int]]:
    """[start, end) row bounds of each run of equal values in a sorted array."""
    n = len(sorted_values)
    if n == 0:
        return []
    codes = sorted_values.dictionary_encode().indices.to_numpy(zero_copy_only=False)
    starts = np.concatenate([[0], np.flatnonzero(np.diff(codes)) + 1])
    ends = np.concatenate([starts[1:], [n]])
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


def is_plan(path: str) -> bool:
    return path.endswith(PLAN_SUFFIX)


@dataclass(slots=True)
class Plan:
    warc_url: str
    warc_filename: str
    part: int
    parts: int
    offsets: list[int]
    lengths: list[int]
    urls: list[str | None]


def read_plan(path: str) -> Plan:
    table = pq.read_table(path)
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    return Plan(
        warc_url=meta["cptcorpus.warc_url"],
        warc_filename=meta["cptcorpus.warc_filename"],
        part=int(meta["cptcorpus.part"]),
        parts=int(meta["cptcorpus.parts"]),
        offsets=table.column("offset").to_pylist(),
        lengths=table.column("length").to_pylist(),
        urls=table.column("url").to_pylist(),
    )


# --- the worker side: turn a URL or a plan into a local WARC for the extract code ---------------


@dataclass(slots=True)
class Fetched:
    """A local file standing in for a remote input, and what getting it cost.

    ``source`` is what the documents' ``source_file`` says (the remote URL, never the temporary
    path); ``offsets`` maps record positions in the local file to positions in the remote WARC.
    """

    path: str | None
    source: str
    offsets: dict[int, int] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    failures: list[dict] = field(default_factory=list)


def needs_fetch(path: str) -> bool:
    """True for inputs the extract stage must fetch first: range plans and remote URLs."""
    return is_plan(path) or io.is_url(path)


@contextmanager
def fetched_input(path: str, config: Config) -> Iterator[Fetched]:
    """Make a remote input local for the duration of the block, then delete the local copy."""
    cc = config.input if isinstance(config.input, CommonCrawlInput) else None
    policy = RetryPolicy.from_config(cc)
    tmp = tempfile.mkdtemp(prefix="cptcorpus-fetch-", dir=cc.download_dir if cc and cc.download_dir else None)
    try:
        if is_plan(path):
            yield _fetch_plan(path, tmp, policy, cc.concurrency if cc else 4)
        else:
            yield _fetch_whole(path, tmp, policy)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _local_name(url: str) -> str:
    base = url.rstrip("/").rsplit("/", 1)[-1] or "input"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", base)[-120:]


def _fetch_whole(url: str, tmp: str, policy: RetryPolicy) -> Fetched:
    stats = FetchStats()
    dest = os.path.join(tmp, _local_name(url))
    total = download(url, dest, policy, stats)
    log.info("fetched %s: %d bytes (%d requests, %d retries)", url, total, stats.requests, stats.retries)
    return Fetched(dest, url, counters={**stats.as_dict(), "files": 1, "whole_file_bytes": total})


def _fetch_plan(path: str, tmp: str, policy: RetryPolicy, concurrency: int) -> Fetched:
    """Fetch a plan's byte ranges (adjacent ones in one request), verify each, write a local WARC."""
    plan = read_plan(path)
    stats = FetchStats()
    spans = _coalesce(list(zip(plan.offsets, plan.lengths, plan.urls, strict=True)))

    def fetch(span: tuple[int, int, list[tuple[int, int, str | None]]],
              ) -> tuple[list[tuple[int, bytes, str | None]], FetchStats]:
        start, end, members = span
        own = FetchStats()  # one per request: counters are summed after, not shared between threads
        data = get(plan.warc_url, policy, own, start, end)
        return [(off, data[off - start : off - start + length], url) for off, length, url in members], own

    members: list[tuple[int, bytes, str | None]] = []
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(spans)))) as pool:
        for batch, own in pool.map(fetch, spans):  # in plan order, whatever order they finish in
            members.extend(batch)
            for key, value in own.as_dict().items():
                setattr(stats, key, getattr(stats, key) + value)

    fetched = Fetched(None, plan.warc_url)
    dest = os.path.join(tmp, _local_name(plan.warc_url))
    position = 0
    with open(dest, "wb") as out:
        for offset, data, url in members:
            problem = check_member(data, url)
            if problem is not None:
                fetched.failures.append({"stage": "extract", "file": plan.warc_url, "record": f"offset {offset}",
                                         "reason": problem[0], "detail": problem[1]})
                continue
            fetched.offsets[position] = offset
            out.write(data)
            position += len(data)
    fetched.path = dest if position else None
    whole = 0
    if plan.part == 0:  # one HEAD per WARC file, so the whole-file total is counted once
        try:
            whole = size(plan.warc_url, policy, stats) or 0
        except (FetchError, OSError) as err:
            log.warning("HEAD %s failed (%s): whole-file size unknown", plan.warc_url, err)
    fetched.counters = {**stats.as_dict(), "files": int(plan.part == 0), "ranges": len(plan.offsets),
                        "range_bytes": sum(plan.lengths), "whole_file_bytes": whole}
    log.info("fetched %d records of %s: %d bytes in %d requests (%d retries)%s", len(plan.offsets),
             plan.warc_url, stats.bytes_fetched, stats.requests, stats.retries,
             f"; whole file {whole} bytes ({stats.bytes_fetched / whole:.1%})" if whole else "")
    return fetched


def _coalesce(ranges: list[tuple[int, int, str | None]]) -> list[tuple[int, int, list[tuple[int, int, str | None]]]]:
    """Merge byte ranges that touch into one request each: (start, end inclusive, members)."""
    spans: list[tuple[int, int, list[tuple[int, int, str | None]]]] = []
    for off, length, url in sorted(ranges, key=lambda r: r[0]):
        if spans and spans[-1][1] + 1 == off:
            start, _, members = spans[-1]
            spans[-1] = (start, off + length - 1, [*members, (off, length, url)])
        else:
            spans.append((off, off + length - 1, [(off, length, url)]))
    return spans


def check_member(data: bytes, url: str | None) -> tuple[str, str] | None:
    """None when ``data`` is exactly one complete gzip member holding the record for ``url``.

    A wrong offset or length in the index (or a file replaced since it was indexed) shows up here,
    as ``bad_range`` or ``index_mismatch``, instead of as garbage further down.
    """
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        head = d.decompress(data, 65536)
        while d.unconsumed_tail and not d.eof:
            d.decompress(d.unconsumed_tail, 1 << 20)
    except zlib.error as err:
        return "bad_range", f"not a gzip member: {err}"
    if not d.eof:
        return "bad_range", "gzip member ends early"
    if d.unused_data:
        return "bad_range", f"{len(d.unused_data)} bytes after the gzip member"
    if not head.startswith(b"WARC/"):
        return "bad_range", "member does not start with a WARC header"
    if url is not None:
        m = _TARGET_URI.search(head.split(b"\r\n\r\n", 1)[0] + b"\r\n")
        found = m.group(1).decode("utf-8", "replace").strip() if m else None
        if found != url:
            return "index_mismatch", f"index says {url}, record is {found}"
    return None
