"""File-system I/O: input listing, shard naming and atomic writes, for local paths and fsspec URLs.

Outputs are written under a temporary name and renamed into place, and a shard's stats JSON is
written last: a shard counts as complete only when its stats file exists and every file it lists
has the recorded size. A killed run therefore never leaves a half-written file that looks complete.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import posixpath
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

_URL_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_TMP_PREFIX = ".tmp-"


def is_url(path: str) -> bool:
    return bool(_URL_RE.match(path)) and not path.startswith("file://")


def abspath(path: str) -> str:
    """``os.path.abspath`` for local paths; URLs are already absolute and must keep their ``//``."""
    return path if is_url(path) else os.path.abspath(_strip_file_scheme(path))


def normpath(path: str) -> str:
    """``os.path.normpath`` that leaves a URL's scheme intact (normpath would fold ``s3://`` to ``s3:/``)."""
    if not is_url(path):
        return os.path.normpath(path)
    scheme, rest = path.split("://", 1)
    return f"{scheme}://{posixpath.normpath(rest)}"


def _strip_file_scheme(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path


def expand_inputs(patterns: Iterable[str], suffixes: tuple[str, ...] = ()) -> list[str]:
    """Expand paths, directories and globs (local or fsspec URLs) into a sorted, de-duplicated list.

    A directory expands to the files in it whose names end with one of ``suffixes`` (all files when
    empty), skipping hidden and temporary files. A pattern that matches nothing is an error: a typo
    in an input path must not turn into an empty run.
    """
    out: list[str] = []
    for pattern in patterns:
        pattern = _strip_file_scheme(str(pattern))
        if is_url(pattern):
            found = _expand_url(pattern, suffixes)
        elif os.path.isdir(pattern):
            found = [
                os.path.join(pattern, name)
                for name in os.listdir(pattern)
                if not name.startswith(".") and (not suffixes or name.endswith(suffixes))
                and os.path.isfile(os.path.join(pattern, name))
            ]
        elif any(c in pattern for c in "*?["):
            found = [p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p)]
        elif os.path.exists(pattern):
            found = [pattern]
        else:
            raise FileNotFoundError(f"input not found: {pattern}")
        if not found:
            raise FileNotFoundError(f"input pattern matched no files: {pattern}")
        out.extend(found)
    return sorted(dict.fromkeys(out))


def _expand_url(pattern: str, suffixes: tuple[str, ...]) -> list[str]:
    """A URL, a glob of URLs, or an object-store prefix (a stage's output "directory")."""
    fs, _, paths = fsspec.get_fs_token_paths(pattern)
    protocol = fs.protocol[0] if isinstance(fs.protocol, tuple | list) else fs.protocol
    if any(c in pattern for c in "*?["):
        return [p if is_url(p) else f"{protocol}://{p}" for p in paths]
    if pattern.startswith(("http://", "https://")) or not isdir(pattern):
        return [pattern]
    return [f"{pattern.rstrip('/')}/{name}" for name in listdir(pattern)
            if not name.startswith((".", "_")) and (not suffixes or name.endswith(suffixes))
            and isfile(f"{pattern.rstrip('/')}/{name}")]


_NAME_SUFFIXES = (".warc.gz", ".warc.wet.gz", ".wet.gz", ".arc.gz", ".warc", ".arc", ".parquet", ".gz")


def _base_name(path: str) -> str:
    base = path.rstrip("/").rsplit("/", 1)[-1]
    for suffix in _NAME_SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return re.sub(r"[^A-Za-z0-9._-]+", "_", base)[:80] or "shard"


def shard_names(paths: list[str]) -> list[str]:
    """Deterministic output names for input files: their base names without extensions.

    When two inputs share a base name (files of the same name in different directories), every
    colliding name gets a short hash of its full path, so outputs never overwrite each other while
    names stay stable from stage to stage.
    """
    bases = [_base_name(p) for p in paths]
    counts: dict[str, int] = {}
    for b in bases:
        counts[b] = counts.get(b, 0) + 1
    return [
        f"{b}-{hashlib.sha1(p.encode()).hexdigest()[:8]}" if counts[b] > 1 else b
        for b, p in zip(bases, paths, strict=True)
    ]


def open_input(path: str, mode: str = "rb", **kwargs: Any) -> IO[Any]:
    """Open a local path or an fsspec URL (s3://, https://, gs://, ...) for streaming reads."""
    path = _strip_file_scheme(path)
    if is_url(path):
        fs, p = _fs(path)
        return fs.open(p, mode, **kwargs)
    return open(path, mode, **kwargs)  # noqa: SIM115 - the caller closes it


def input_size(path: str) -> int | None:
    path = _strip_file_scheme(path)
    try:
        if is_url(path):
            fs, p = fsspec.core.url_to_fs(path)
            return int(fs.size(p))
        return os.path.getsize(path)
    except Exception:  # size is informational (MB/s); an unknown size must not fail a shard
        return None


def _fs(path: str) -> tuple[Any, str]:
    """The fsspec file system of an object-store URL and the path inside it.

    Options (endpoint URL, region...) come from fsspec's configuration, which ``configure_storage``
    fills from the config's ``storage_options``; credentials come only from the environment or the
    provider's own chain (never from config files).
    """
    fs, p = fsspec.core.url_to_fs(path)
    # Other processes (Ray workers on any node) write the objects this one reads: a listing cached
    # before they finished would hide or truncate them.
    fs.invalidate_cache()
    return fs, p


_storage_options: dict[str, dict[str, Any]] = {}


def configure_storage(options: dict[str, dict[str, Any]]) -> None:
    """Apply ``storage_options`` (``{protocol: {option: value}}``) to every fsspec file system this
    process creates from now on (``fsspec.config.conf`` is what ``url_to_fs`` reads)."""
    for protocol, kwargs in options.items():
        fsspec.config.conf.setdefault(protocol, {}).update(kwargs)
        _storage_options.setdefault(protocol, {}).update(kwargs)
    fsspec.AbstractFileSystem.clear_instance_cache()


def probe_writable(url: str) -> None:
    """Write and delete a small object under ``url``: the store's own answer on whether this run can
    write there (missing bucket, wrong credentials, unreachable endpoint), before any work starts.

    Raises ``OSError`` whose message names the URL and the store's reason. s3fs/botocore retry
    throttling and connection errors with backoff before they give up.
    """
    probe = url.rstrip("/") + f"/{_TMP_PREFIX}write-check-{uuid.uuid4().hex}"
    try:
        fs, p = _fs(probe)
        fs.pipe_file(p, b"cptcorpus write check")
        fs.rm_file(p)
    except Exception as err:  # noqa: BLE001 - every backend raises its own types; the message is what helps
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise OSError(f"{url}: cannot write there ({type(err).__name__}: {reason})") from err


def storage_env() -> dict[str, str]:
    """The configured options as environment variables (``FSSPEC_S3='{...}'``), which fsspec reads at
    import: every Ray task gets them (``runner.remote_task``), so workers on any node use the same
    endpoint as the driver."""
    return {f"FSSPEC_{protocol.upper()}": json.dumps(kwargs, sort_keys=True)
            for protocol, kwargs in sorted(_storage_options.items())}


def exists(path: str) -> bool:
    if is_url(path):
        fs, p = _fs(path)
        return bool(fs.exists(p))
    return os.path.exists(path)


def isfile(path: str) -> bool:
    if is_url(path):
        fs, p = _fs(path)
        return bool(fs.isfile(p))
    return os.path.isfile(path)


def isdir(path: str) -> bool:
    """A local directory, or an object-store prefix with at least one object under it."""
    if is_url(path):
        fs, p = _fs(path)
        return bool(fs.isdir(p))
    return os.path.isdir(path)


def file_size(path: str) -> int:
    if is_url(path):
        fs, p = _fs(path)
        return int(fs.size(p))
    return os.path.getsize(path)


def file_version(path: str) -> dict[str, Any]:
    """Size and a change token of a file (mtime locally; ETag or modification time on object stores),
    for cache keys that must change when the file is rewritten."""
    if is_url(path):
        fs, p = _fs(path)
        info = fs.info(p)
        token = info.get("ETag") or info.get("etag") or info.get("LastModified") or info.get("mtime")
        return {"path": path, "size": int(info["size"]), "version": str(token)}
    st = os.stat(path)
    return {"path": path, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def listdir(path: str) -> list[str]:
    """Names directly under a directory or prefix (files and sub-directories), sorted; [] if absent."""
    if is_url(path):
        fs, p = _fs(path)
        try:
            return sorted(e.rstrip("/").rsplit("/", 1)[-1] for e in fs.ls(p, detail=False, refresh=True))
        except FileNotFoundError:
            return []
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def remove(path: str) -> None:
    if is_url(path):
        fs, p = _fs(path)
        fs.rm_file(p)
    else:
        os.remove(path)


def rmtree(path: str) -> None:
    """Remove a directory or every object under a prefix; absent is fine."""
    if is_url(path):
        fs, p = _fs(path)
        with suppress(FileNotFoundError):
            fs.rm(p, recursive=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _arrow_args(path: str) -> tuple[str, Any]:
    """``(path, filesystem)`` for pyarrow: object-store URLs go through fsspec (same options and
    credentials as every other access); local paths through pyarrow's own file system."""
    if is_url(path):
        fs, p = _fs(path)
        return p, fs
    return _strip_file_scheme(path), None


def read_parquet(path: str, **kwargs: Any) -> pa.Table:
    p, fs = _arrow_args(path)
    return pq.read_table(p, filesystem=fs, **kwargs)


def parquet_file(path: str) -> pq.ParquetFile:
    """An open ``ParquetFile`` (row groups, batches, metadata) for a local path or URL."""
    return pq.ParquetFile(open_input(path)) if is_url(path) else pq.ParquetFile(path)


def read_parquet_schema(path: str) -> pa.Schema:
    return parquet_file(path).schema_arrow


def ensure_dir(path: str) -> None:
    if not is_url(path):  # object stores have no directories: a prefix exists once an object is under it
        os.makedirs(path, exist_ok=True)


def tmp_path(final: str) -> str:
    if is_url(final):  # spooled locally, then uploaded whole under the final name
        return os.path.join(tempfile.gettempdir(), f"{_TMP_PREFIX}{uuid.uuid4().hex[:8]}-{final.rsplit('/', 1)[-1]}")
    head, tail = os.path.split(final)
    return os.path.join(head, f"{_TMP_PREFIX}{uuid.uuid4().hex[:8]}-{tail}")


def _publish(tmp: str, final: str) -> None:
    """Make a finished temporary file visible under ``final``: a rename locally; on an object store
    one upload (a PUT, or a multipart upload completed at the end), which is atomic: no reader ever
    sees part of the object."""
    if is_url(final):
        fs, p = _fs(final)
        fs.put_file(tmp, p)
        os.remove(tmp)
    else:
        os.replace(tmp, final)


@contextmanager
def atomic_path(final: str) -> Iterator[str]:
    """Yield a temporary path for ``final``; publish it under ``final`` only if the block succeeds."""
    ensure_dir(os.path.dirname(final) or ".")
    tmp = tmp_path(final)
    try:
        yield tmp
        _publish(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text_atomic(final: str, text: str) -> None:
    with atomic_path(final) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)


def write_json_atomic(final: str, obj: Any) -> None:
    write_text_atomic(final, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def write_table_atomic(final: str, table: pa.Table, row_group_rows: int = 10_000, compression: str = "zstd") -> int:
    """Write a Parquet file atomically; returns its size in bytes."""
    with atomic_path(final) as tmp:
        pq.write_table(table, tmp, row_group_size=row_group_rows, compression=compression)
        size = os.path.getsize(tmp)
    return size


class AtomicParquetWriter:
    """Stream record batches into a Parquet file that appears under its final name only when closed.

    The schema is fixed by the first batch (or the ``schema`` given); an unused writer still writes a
    valid empty file, so downstream stages always find one output per input shard.
    """

    def __init__(self, final: str, schema: pa.Schema | None = None, compression: str = "zstd") -> None:
        self.final = final
        self.schema = schema
        self.compression = compression
        self.rows = 0
        self._tmp = tmp_path(final)
        self._writer: pq.ParquetWriter | None = None
        ensure_dir(os.path.dirname(final) or ".")

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            if self.schema is None:
                self.schema = table.schema
            self._writer = pq.ParquetWriter(self._tmp, self.schema, compression=self.compression)
        if table.schema != self.schema:
            table = table.select(self.schema.names).cast(self.schema)
        if table.num_rows:
            self._writer.write_table(table)
            self.rows += table.num_rows

    def close(self) -> int:
        """Finish the file and rename it into place; returns its size in bytes."""
        if self._writer is None:
            self.schema = self.schema or pa.schema([])
            self._writer = pq.ParquetWriter(self._tmp, self.schema, compression=self.compression)
        self._writer.close()
        size = os.path.getsize(self._tmp)
        _publish(self._tmp, self.final)
        return size

    def abort(self) -> None:
        if self._writer is not None:
            with suppress(Exception):  # the file is being thrown away; a second error adds nothing
                self._writer.close()
        if os.path.exists(self._tmp):
            os.remove(self._tmp)


REJECTED_DIR = "rejected"


class ShardOutput:
    """A shard's two output files, kept ``<dir>/<shard>.parquet`` and ``<dir>/rejected/<shard>.parquet``:
    closed together (returning the sizes its stats record for resume) or aborted together."""

    def __init__(self, output_dir: str, shard: str, kept_schema: pa.Schema | None = None,
                 rejected_schema: pa.Schema | None = None) -> None:
        self.shard = shard
        self.kept = AtomicParquetWriter(os.path.join(output_dir, f"{shard}.parquet"), kept_schema)
        self.rejected = AtomicParquetWriter(os.path.join(output_dir, REJECTED_DIR, f"{shard}.parquet"),
                                            rejected_schema)

    def close(self) -> dict[str, int]:
        return {f"{self.shard}.parquet": self.kept.close(),
                f"{REJECTED_DIR}/{self.shard}.parquet": self.rejected.close()}

    def abort(self) -> None:
        self.kept.abort()
        self.rejected.abort()


def remove_stale_tmp(directory: str) -> int:
    """Delete temporary files a killed run left behind; returns how many were removed.

    Object stores get none: their temporary files are local spools, published by one upload.
    """
    removed = 0
    if is_url(directory) or not os.path.isdir(directory):
        return 0
    for root, _, files in os.walk(directory):
        for name in files:
            if name.startswith(_TMP_PREFIX):
                os.remove(os.path.join(root, name))
                removed += 1
    return removed


def read_json(path: str) -> Any:
    """A JSON file's content, or None when it is missing or not valid JSON (e.g. cut by a kill)."""
    try:
        with open_input(path, "r", encoding="utf-8") as fh:
            return json.load(fh)
    except (FileNotFoundError, IsADirectoryError, json.JSONDecodeError):
        return None


def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open_input(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def list_parquet(directory: str) -> list[str]:
    """The Parquet shards directly under a stage directory (not rejected/ or temp files), sorted."""
    if is_url(directory):
        return [f"{directory.rstrip('/')}/{n}" for n in listdir(directory)
                if n.endswith(".parquet") and not n.startswith(".")]
    p = Path(directory)
    if not p.is_dir():
        return []
    return sorted(str(f) for f in p.glob("*.parquet") if not f.name.startswith("."))
