"""The dedup stage: exact and MinHash-LSH near-duplicate removal that scales out on Ray.

Every phase is a set of Ray tasks over shards or hash partitions that exchange Parquet files under
``<output>/_work/<phase>/``; no process ever holds all signatures, all edges or all document ids.
The driver holds O(shards + partitions) state: file names, per-task markers and small counters.

Phases (S input shards, P = ``dedup.partitions``, N documents, b x r LSH bands x rows)::

    signatures  S tasks  read one shard (id, text, scope/keeper columns) a batch at a time; normalise,
                         shingle, MinHash, band. Write (bucket, key) rows hash-partitioned into P
                         files -- b band rows per document, plus one exact-text row and one URL row
                         when enabled -- and the keeper attributes (id, scores, length, text hash)
                         partitioned by document key into P files. Memory: one shard's rows.
    pairs       P tasks  one bucket partition (~N*(b+1)/P rows): sort by bucket; every bucket holding
                         k > 1 documents gives k-1 star edges to its smallest key. With ``dedup.verify``
                         a MinHash bucket's members are linked only to an anchor member whose signature
                         sketch agrees on >= threshold (up to 3 anchors per bucket). Edges go out in both
                         directions, partitioned by node.
    cc          P tasks  connected components by alternating Large-Star / Small-Star rounds
                per round (Kiveris et al., "Connected Components in MapReduce and Beyond", 2014): each
                         task groups the edges of the nodes of its partition, emits rewired edges to
                         the partitions of their endpoints, and counts the nodes that are not yet part
                         of a star. When a Large-Star step sees none, every component is a star around
                         its smallest key, and that step's per-partition (node, root) files are the
                         labels. O(log^2 N) rounds; 3-6 on web data. Memory: one node partition's
                         edges (a hub holds its whole cluster -- a 10M-member cluster is ~160 MB).
    attach      P tasks  join one node partition's labels with the same partition's keeper
                         attributes; re-partition the members by root.
    keepers     P tasks  one root partition: sort members by (root, keeper rule); the first of each
                         cluster is kept, the others removed. Output sorted by document key.
    write       S tasks  one input shard: read the assignments in its key range from the P keeper
                         files (row-group statistics skip the rest), stream the shard in input order,
                         write kept and rejected Parquet and the shard stats.

Documents are keyed ``shard_index << 32 | row`` (int64): compact, sortable, and they say where each
document lives. The keeper rule (``dedup.keep``) orders a cluster's members: each listed numeric
column, highest first (``-col``: lowest first; missing column or null: last), ``length`` (longest
text first, in characters), then ``id`` (smallest), then the key. Exact duplicates (same words in the
same order after `pipelines.minhash.normalize`) and URL duplicates (same normalised URL) are extra
LSH "bands", so one clustering handles all three; a removed document's reason says
``exact_duplicate_of:<keeper id>`` when its text hash equals the keeper's (exact dedup on),
``url_duplicate_of:`` when its URL does (URL dedup on), else ``duplicate_of:``. Scopes prefix every
bucket with a hash of the scope value (snapshot, lang, or both): different scopes never share a
bucket, so never match. Hashes are 64-bit: at 10^9 documents the expected number of spurious bucket
collisions in the whole run is ~0.03.

Resume: each task writes its outputs atomically, then a marker JSON listing them with their sizes
and a digest of their bytes. A task is skipped when its marker is valid and was computed from the
same plan (inputs + dedup config) and the same upstream outputs (the digest of the previous phase);
since every phase is deterministic, a recomputed upstream task leaves downstream markers valid. A
killed run therefore resumes at the phase and task where it stopped. Final per-shard stats go to
``_stats/<shard>.json`` (the runner's completion marker); ``_summary.json`` has the keys of
`pipelines.runner.merge_stats` plus ``phases`` and ``lsh``.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray
import xxhash
from tqdm import tqdm

from pipelines import io
from pipelines import minhash as mh
from pipelines.config import Config, RayConfig
from pipelines.runner import (
    STAGE_FAILURES_NAME,
    SUMMARY_NAME,
    as_completed,
    error_name,
    load_complete_stats,
    merge_stats,
    remote_task,
    stats_path,
    task_error,
)
from pipelines.schema import REJECT_REASON, check_input_schema, with_column
from pipelines.stage import shard_stats

log = logging.getLogger("cptcorpus")

STAGE = "dedup"
WORK_DIR = "_work"
PLAN_NAME = "plan.json"
PLAN_VERSION = 1
DONE_DIR = "_done"
#: Reason prefixes by member kind (0 = keeper).
KIND_REASONS = {1: "exact_duplicate_of", 2: "url_duplicate_of", 3: "duplicate_of"}
SCOPE_COLUMNS = {"global": (), "snapshot": ("snapshot",), "language": ("lang",),
                 "snapshot_language": ("snapshot", "lang")}
_SALT_EXACT = 0x5EED_0000_0000_0001
_SALT_URL = 0x5EED_0000_0000_0002
_SALT_BAND = 0x5EED_0000_0000_0003
_COMPRESSION = "lz4"  # intermediate files: random 64-bit hashes do not compress; lz4 costs ~nothing
_KEEPER_ROW_GROUP = 65_536  # keeper files are read by key range: small groups make pushdown effective
#: ``dedup.partitions`` is an upper bound: a run uses at most one partition per this many documents.
FOOTER_THREADS = 32  # concurrent Parquet footer reads while planning (object-store latency, not CPU)
MIN_DOCS_PER_PARTITION = 20_000


class DedupError(RuntimeError):
    """A partition task failed after its retries: the clustering cannot be completed this run."""


# --------------------------------------------------------------------------------------------------
# Plan: everything a task needs, shipped once to the object store
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeepKey:
    """One criterion of the keeper rule: a score column (``k<i>`` in work files), length or id."""

    source: str  # input column name, "length" or "id"
    field: str  # column in the work files
    descending: bool


@dataclass(frozen=True)
class DedupPlan:
    """Inputs, derived LSH parameters and the keeper rule: what every task needs, fixed for a run.

    ``digest`` identifies the plan (inputs + dedup config): markers and shard stats written under
    another plan are never reused.
    """

    output_dir: str
    files: tuple[str, ...]
    shards: tuple[str, ...]
    partitions: int
    bands: int
    rows: int
    ngram: int
    seed: int
    batch_rows: int
    scope_columns: tuple[str, ...]
    keep: tuple[KeepKey, ...]
    exact: bool
    minhash: bool
    url: bool
    digest: str
    verify: bool = False  # check candidate pairs' sketches against the threshold (dedup.verify)
    threshold: float = 0.8

    @property
    def work_dir(self) -> str:
        return os.path.join(self.output_dir, WORK_DIR)

    def work(self, *parts: str) -> str:
        return os.path.join(self.work_dir, *parts)

    @property
    def score_keys(self) -> tuple[KeepKey, ...]:
        return tuple(k for k in self.keep if k.source not in ("length", "id"))


def _resolve_keep(keep: Sequence[str], schemas: Sequence[pa.Schema]) -> tuple[KeepKey, ...]:
    """Parse ``dedup.keep``; score columns that no input has are dropped (the rule says "when present")."""
    keys: list[KeepKey] = []
    seen: set[str] = set()
    for raw in keep:
        name = raw.strip()
        descending = not name.startswith("-")
        name = name.lstrip("+-")
        if name in seen:
            continue
        seen.add(name)
        if name == "id":
            keys.append(KeepKey("id", "id", False))
            break  # ids are unique enough: later criteria would never decide
        if name == "length":
            keys.append(KeepKey("length", "length", descending))
            continue
        types = [s.field(name).type for s in schemas if s.get_field_index(name) >= 0]
        if not types:
            log.info("dedup: keeper column %r is in no input; ignored", name)
            continue
        for typ in types:
            if not (pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_boolean(typ)):
                raise ValueError(f"dedup.keep: column {name!r} has type {typ}; keeper columns are numeric")
        keys.append(KeepKey(name, f"k{sum(1 for k in keys if k.source not in ('length', 'id'))}", descending))
    if not any(k.source == "id" for k in keys):
        keys.append(KeepKey("id", "id", False))
    return tuple(keys)


def _footer(path: str) -> tuple[pa.Schema, int]:
    meta = io.parquet_file(path).metadata
    schema = meta.schema.to_arrow_schema()
    check_input_schema(schema, path)
    return schema, meta.num_rows


def _input_schemas(files: list[str]) -> tuple[list[pa.Schema], int]:
    """The distinct schemas of the inputs (each checked) and their total rows, from the Parquet footers.

    Why threads and distinct schemas: a snapshot has ~90,000 input files; read one after the other
    from an object store (tens of ms a request) the footers alone take an hour, and keeping 90,000
    equal schema objects costs the driver memory for nothing.
    """
    distinct: dict[bytes, pa.Schema] = {}
    total_rows = 0
    with ThreadPoolExecutor(max_workers=FOOTER_THREADS) as pool:
        for schema, rows in pool.map(_footer, files):
            distinct.setdefault(schema.serialize().to_pybytes(), schema)
            total_rows += rows
    return list(distinct.values()), total_rows


def make_plan(config: Config, files: list[str], output_dir: str) -> DedupPlan:
    """Validate the inputs (schemas, keeper columns) and derive the LSH parameters."""
    cfg = config.dedup
    schemas, total_rows = _input_schemas(files)
    # Partitions exist to bound a task's memory; a small corpus split 16 ways only multiplies tiny
    # shuffle files (P^2 per round), so it gets fewer.
    partitions = max(1, min(cfg.partitions, -(-total_rows // MIN_DOCS_PER_PARTITION)))
    keep = _resolve_keep(cfg.keep, schemas)
    scope_columns = SCOPE_COLUMNS[cfg.scope]
    for col in scope_columns:
        if not any(s.get_field_index(col) >= 0 for s in schemas):
            log.warning("dedup: scope %r needs column %r, which no input has: all documents share one scope",
                        cfg.scope, col)
    bands, rows = mh.lsh_params(cfg.threshold, cfg.num_perm) if cfg.minhash else (0, 0)
    shards = io.shard_names(files)
    ident = {"version": PLAN_VERSION, "files": [io.abspath(f) for f in files], "shards": shards,
             "partitions": partitions,
             "dedup": cfg.model_dump(mode="json", exclude={"keep_work", "max_cc_rounds"}),
             "bands": bands, "rows": rows, "keep": [k.__dict__ for k in keep], "scope": list(scope_columns)}
    digest = xxhash.xxh3_128_hexdigest(json.dumps(ident, sort_keys=True).encode())
    return DedupPlan(output_dir=output_dir, files=tuple(files), shards=tuple(shards), partitions=partitions,
                     bands=bands, rows=rows, ngram=cfg.ngram, seed=cfg.seed, batch_rows=cfg.batch_rows,
                     scope_columns=scope_columns, keep=keep, exact=cfg.exact, minhash=cfg.minhash, url=cfg.url,
                     verify=cfg.verify and cfg.minhash, threshold=cfg.threshold, digest=digest)


# --------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------


def _node_part(keys: np.ndarray, partitions: int) -> np.ndarray:
    """Partition of each document key (hashed, so every partition gets a fair share)."""
    return (mh.mix64(keys.view(np.uint64)) % np.uint64(partitions)).astype(np.int64)


def _pname(i: int) -> str:
    return f"{i:05d}"


def _write_table(path: str, table: pa.Table, row_group_rows: int = 1 << 20) -> str:
    io.write_table_atomic(path, table, row_group_rows=row_group_rows, compression=_COMPRESSION)
    return path


def _write_partitioned(directory: str, table: pa.Table, parts: np.ndarray, partitions: int,
                       name: Callable[[int], str] = lambda q: f"to-{_pname(q)}.parquet") -> list[str]:
    """Split ``table`` by ``parts`` into one file per partition (empty ones too: readers expect all)."""
    order = np.argsort(parts, kind="stable")
    bounds = np.searchsorted(parts[order], np.arange(partitions + 1))
    sorted_table = table.take(pa.array(order)) if len(order) else table
    out = []
    for q in range(partitions):
        piece = sorted_table.slice(int(bounds[q]), int(bounds[q + 1] - bounds[q]))
        out.append(_write_table(os.path.join(directory, name(q)), piece))
    return out


def _read_tables(paths: Sequence[str], columns: list[str] | None = None) -> pa.Table | None:
    tables = [io.read_parquet(p, columns=columns) for p in paths]
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return None
    return pa.concat_tables(tables).combine_chunks()


def _edge_table(u: np.ndarray, v: np.ndarray) -> pa.Table:
    return pa.table({"u": pa.array(u, pa.int64()), "v": pa.array(v, pa.int64())})


_EMPTY_EDGES = _edge_table(np.zeros(0, np.int64), np.zeros(0, np.int64))


def _read_edges(paths: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Edges (u, v) from ``paths``, deduplicated and sorted by (u, v)."""
    table = _read_tables(paths)
    if table is None:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    u = table.column("u").to_numpy()
    v = table.column("v").to_numpy()
    order = np.lexsort((v, u))
    u, v = u[order], v[order]
    keep = np.ones(len(u), dtype=bool)
    keep[1:] = (u[1:] != u[:-1]) | (v[1:] != v[:-1])
    return u[keep], v[keep]


def _group_starts(sorted_keys: np.ndarray) -> np.ndarray:
    if len(sorted_keys) == 0:
        return np.zeros(0, dtype=np.int64)
    flags = np.ones(len(sorted_keys), dtype=bool)
    flags[1:] = sorted_keys[1:] != sorted_keys[:-1]
    return np.flatnonzero(flags)


def _write_both_directions(directory: str, a: np.ndarray, b: np.ndarray, partitions: int) -> list[str]:
    """Edges {a, b} as (a -> b) in a's partition and (b -> a) in b's: what a Large-Star step reads."""
    u = np.concatenate([a, b])
    v = np.concatenate([b, a])
    return _write_partitioned(directory, _edge_table(u, v), _node_part(u, partitions), partitions)


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _node_id() -> str | None:
    """The Ray node running this task (None outside Ray): the summary counts the nodes each phase used."""
    try:
        return ray.get_runtime_context().get_node_id()
    except Exception:  # not in a Ray worker (tests call tasks directly)
        return None


def _files_digest(paths: Sequence[str]) -> str:
    h = xxhash.xxh3_64()
    for path in sorted(paths):
        h.update(os.path.basename(os.path.dirname(path)).encode() + b"/" + os.path.basename(path).encode())
        with io.open_input(path, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
    return h.hexdigest()


def _cluster_size_bucket(size: int) -> str:
    """Histogram bucket of a cluster size: exact up to 4, then powers of two ("5-8", "9-16" ...)."""
    if size <= 4:
        return str(size)
    hi = 1 << (size - 1).bit_length()
    return f"{hi // 2 + 1}-{hi}"


# --------------------------------------------------------------------------------------------------
# Phase 1: signatures (one task per input shard)
# --------------------------------------------------------------------------------------------------


def _scope_hashes(batch: pa.Table, columns: tuple[str, ...]) -> np.ndarray:
    """A 64-bit hash of each document's scope value (0 for the global scope)."""
    n = batch.num_rows
    if not columns:
        return np.zeros(n, dtype=np.uint64)
    parts = []
    for col in columns:
        values = batch.column(col) if col in batch.column_names else pa.nulls(n, pa.string())
        parts.append(pc.fill_null(values.cast(pa.string()), "\x00"))
    joined = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, "\x1f")
    if isinstance(joined, pa.ChunkedArray):
        joined = joined.combine_chunks()
    return mh.mix64(mh.string_hashes(joined) | np.uint64(1))


def normalize_urls(urls: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Lower-case, no scheme, no ``www.``, no fragment, no trailing slash (nulls stay null)."""
    u = pc.utf8_lower(pc.utf8_trim_whitespace(urls.cast(pa.string())))
    u = pc.replace_substring_regex(u, pattern=r"^[a-z][a-z0-9+.-]*://", replacement="")
    u = pc.replace_substring_regex(u, pattern=r"^www\d*\.", replacement="")
    u = pc.replace_substring_regex(u, pattern=r"#.*$", replacement="")
    u = pc.replace_substring_regex(u, pattern=r"/+$", replacement="")
    return u.combine_chunks() if isinstance(u, pa.ChunkedArray) else u


def _salted(values: np.ndarray, scope: np.ndarray, salt: int) -> np.ndarray:
    return mh.mix64(values ^ mh.mix64(scope ^ np.uint64(salt)))


VERIFY_ANCHORS = 3  # anchors per bucket when verifying candidates (dedup.verify)
_MEMO_MAX = 100_000  # text hashes remembered per shard task (~20 MB): copies are hashed once


def _band_hashes_deduplicated(plan: DedupPlan, hasher: mh.MinHasher, tokens: pa.Array, offsets: np.ndarray,
                              text_h: np.ndarray, empty: np.ndarray, memo: dict[int, tuple[np.ndarray, np.ndarray]],
                              counters: Counter) -> tuple[np.ndarray, np.ndarray | None]:
    """(docs, bands) band hashes and, with ``plan.verify``, (docs, bands*rows) signature sketches.

    A text already hashed in this shard (same normalised words) is copied rather than hashed again:
    web crawls repeat pages, and hashing is the expensive part.
    """
    n = len(text_h)
    band = np.zeros((n, plan.bands), dtype=np.uint64)
    sketch = np.zeros((n, plan.bands * plan.rows), dtype=np.uint8) if plan.verify else None
    first_of: dict[int, int] = {}
    copy_from: list[tuple[int, int]] = []
    todo = np.zeros(n, dtype=bool)
    for i, (h, e) in enumerate(zip(text_h.tolist(), empty.tolist(), strict=True)):
        if e:
            continue
        if h in memo:
            band[i], sk = memo[h]
            if sketch is not None:
                sketch[i] = sk
        elif h in first_of:
            copy_from.append((i, first_of[h]))
        else:
            first_of[h] = i
            todo[i] = True
    counters["signature_reused"] += int((~empty).sum() - todo.sum())
    if todo.any():
        idx = np.flatnonzero(todo)
        lengths = np.diff(offsets)
        sub_offsets = np.concatenate([[0], np.cumsum(lengths[idx])]).astype(np.int64)
        sub_tokens = tokens if todo.sum() == (~empty).sum() else tokens.filter(pa.array(np.repeat(todo, lengths)))
        shingles, counts = mh.shingle_hashes(mh.string_hashes(sub_tokens), sub_offsets, plan.ngram)
        counters["shingles"] += int(counts.sum())
        counters["signatures"] += len(idx)
        signatures = hasher.signatures(shingles, counts)
        band[idx] = mh.band_hashes(signatures, plan.bands, plan.rows)
        if sketch is not None:
            sketch[idx] = mh.signature_sketch(signatures)
        for i in idx.tolist():
            if len(memo) >= _MEMO_MAX:
                break
            memo[int(text_h[i])] = (band[i], sketch[i] if sketch is not None else None)
    for i, j in copy_from:
        band[i] = band[j]
        if sketch is not None:
            sketch[i] = sketch[j]
    return band, sketch


def _sketch_column(parts: Sequence[np.ndarray | int], width: int) -> pa.Array:
    """One fixed-size binary sketch per bucket row; null for the rows of exact and URL buckets."""
    total = sum(p if isinstance(p, int) else len(p) for p in parts)
    data = np.zeros((total, width), dtype=np.uint8)
    valid = np.zeros(total, dtype=bool)
    at = 0
    for p in parts:
        n = p if isinstance(p, int) else len(p)
        if not isinstance(p, int):
            data[at : at + n] = p
            valid[at : at + n] = True
        at += n
    validity = pa.array(valid).buffers()[1] if not valid.all() else None
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), total, [validity, pa.py_buffer(data.tobytes())])


def _attr_table(plan: DedupPlan, cols: dict[str, Any] | None = None) -> pa.Table:
    """Keeper attributes of documents (empty with the right schema when ``cols`` is None)."""
    if cols is None:
        cols = {"key": pa.array([], pa.int64()), "id": pa.array([], pa.string()),
                "text_hash": pa.array([], pa.uint64()), "url_hash": pa.array([], pa.uint64()),
                "length": pa.array([], pa.int64())}
        cols.update({k.field: pa.array([], pa.float64()) for k in plan.score_keys})
    return pa.table(cols)


def _signatures_task(plan: DedupPlan, si: int) -> tuple[list[str], dict]:
    """Band rows and keeper attributes of one input shard; see the module docstring."""
    path, shard = plan.files[si], plan.shards[si]
    source = io.parquet_file(path)
    names = set(source.schema_arrow.names)
    wanted = ["id", "text"] + [c for c in plan.scope_columns if c in names]
    wanted += ["lang"] if "lang" in names and "lang" not in wanted else []
    wanted += ["url"] if plan.url and "url" in names else []
    wanted += [k.source for k in plan.score_keys if k.source in names]
    hasher = mh.MinHasher(plan.bands * plan.rows, plan.seed) if plan.minhash else None
    memo: dict[int, tuple] = {}  # text hash -> band hashes (and sketch): copies in a shard are hashed once
    buckets: list[np.ndarray] = []
    bucket_keys: list[np.ndarray] = []
    sketches: list[np.ndarray | int] = []  # with plan.verify: per bucket block, its sketches or a row count
    attrs: list[pa.Table] = []
    counters: Counter = Counter()
    hash_seconds = 0.0
    row0 = 0
    base = np.int64(si) << np.int64(32)
    for record_batch in source.iter_batches(batch_size=plan.batch_rows, columns=wanted):
        batch = pa.Table.from_batches([record_batch])
        n = batch.num_rows
        keys = base + np.arange(row0, row0 + n, dtype=np.int64)
        row0 += n
        counters["docs"] += n
        t0 = time.perf_counter()
        texts = batch.column("text")
        counters["null_text"] += texts.null_count
        norm = mh.normalize(texts)
        langs = batch.column("lang").to_pylist() if "lang" in batch.column_names else None
        tokens, offsets = mh.doc_tokens(norm, langs)
        text_h, empty = mh.exact_hashes(tokens, offsets)
        text_h[empty] = 0
        counters["empty_after_normalisation"] += int(empty.sum())
        scope = _scope_hashes(batch, plan.scope_columns)
        if plan.exact:
            nz = ~empty
            buckets.append(_salted(text_h[nz], scope[nz], _SALT_EXACT))
            bucket_keys.append(keys[nz])
            sketches.append(int(nz.sum()))  # exact and URL buckets are never verified
        url_h = np.zeros(n, dtype=np.uint64)
        if plan.url and "url" in batch.column_names:
            urls = normalize_urls(batch.column("url"))
            valid = pc.fill_null(pc.greater(pc.binary_length(urls), 0), False)
            valid_np = valid.to_numpy(zero_copy_only=False)
            url_h[valid_np] = mh.string_hashes(urls.filter(valid)) | np.uint64(1)
            buckets.append(_salted(url_h[valid_np], scope[valid_np], _SALT_URL))
            bucket_keys.append(keys[valid_np])
            sketches.append(int(valid_np.sum()))
        if hasher is not None:
            band, sketch = _band_hashes_deduplicated(plan, hasher, tokens, offsets, text_h, empty, memo, counters)
            rows_ok = ~empty
            for j in range(plan.bands):
                buckets.append(_salted(band[rows_ok, j], scope[rows_ok], _SALT_BAND + j))
                bucket_keys.append(keys[rows_ok])
                if sketch is not None:
                    sketches.append(sketch[rows_ok])
        hash_seconds += time.perf_counter() - t0
        cols: dict[str, Any] = {
            "key": pa.array(keys, pa.int64()),
            "id": pc.fill_null(batch.column("id").cast(pa.string()), ""),
            "text_hash": pa.array(text_h, pa.uint64()),
            "url_hash": pa.array(url_h, pa.uint64()),
            "length": pc.fill_null(pc.utf8_length(texts.cast(pa.string())), 0).cast(pa.int64()),
        }
        for k in plan.score_keys:
            if k.source in batch.column_names:
                values = batch.column(k.source).cast(pa.float64())
                cols[k.field] = pc.if_else(pc.is_nan(values), pa.scalar(None, pa.float64()), values)
            else:
                cols[k.field] = pa.nulls(n, pa.float64())
        attrs.append(_attr_table(plan, cols))
    all_buckets = np.concatenate(buckets) if buckets else np.zeros(0, np.uint64)
    all_keys = np.concatenate(bucket_keys) if bucket_keys else np.zeros(0, np.int64)
    counters["bucket_rows"] = len(all_buckets)
    counters["hash_ms"] = int(hash_seconds * 1000)
    P = plan.partitions
    band_table = pa.table({"bucket": pa.array(all_buckets, pa.uint64()), "key": pa.array(all_keys, pa.int64())})
    if plan.verify:
        band_table = band_table.append_column("sketch", _sketch_column(sketches, plan.bands * plan.rows))
    outputs = _write_partitioned(plan.work("signatures", "bands", shard), band_table,
                                 (all_buckets % np.uint64(P)).astype(np.int64), P,
                                 name=lambda q: f"part-{_pname(q)}.parquet")
    attr_table = pa.concat_tables(attrs).combine_chunks() if attrs else _attr_table(plan)
    outputs += _write_partitioned(plan.work("signatures", "docs", shard), attr_table,
                                  _node_part(attr_table.column("key").to_numpy(), P), P,
                                  name=lambda q: f"part-{_pname(q)}.parquet")
    return outputs, dict(counters)


# --------------------------------------------------------------------------------------------------
# Phase 2: candidate pairs (one task per bucket partition)
# --------------------------------------------------------------------------------------------------


def _pairs_task(plan: DedupPlan, p: int, shards: tuple[str, ...]) -> tuple[list[str], dict]:
    """Star edges from every bucket shared by several documents of one bucket partition."""
    table = _read_tables([plan.work("signatures", "bands", s, f"part-{_pname(p)}.parquet") for s in shards])
    counters: Counter = Counter()
    a = b = np.zeros(0, np.int64)
    if table is not None:
        bucket = table.column("bucket").to_numpy()
        key = table.column("key").to_numpy()
        counters["bucket_rows"] = len(bucket)
        order = np.lexsort((key, bucket))
        bucket, key = bucket[order], key[order]
        starts = _group_starts(bucket)
        sizes = np.diff(np.append(starts, len(bucket)))
        counters["shared_buckets"] = int((sizes > 1).sum())
        if plan.verify:
            a, b = _verified_edges(plan, table.column("sketch").take(pa.array(order)), key, starts, sizes, counters)
        else:
            root = np.repeat(key[starts], sizes)
            sel = root != key  # the smallest key of each bucket (and its repeats) is the star's center
            a, b = root[sel], key[sel]
        if len(a):
            order = np.lexsort((b, a))
            a, b = a[order], b[order]
            keep = np.ones(len(a), dtype=bool)
            keep[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
            a, b = a[keep], b[keep]
    counters["edges"] = len(a)
    outputs = _write_both_directions(plan.work("pairs", _pname(p)), a, b, plan.partitions)
    return outputs, dict(counters)


def _verified_edges(plan: DedupPlan, sketch_col: pa.ChunkedArray, key: np.ndarray, starts: np.ndarray,
                    sizes: np.ndarray, counters: Counter) -> tuple[np.ndarray, np.ndarray]:
    """Edges of buckets whose members' signatures really agree on >= ``threshold`` of their values.

    Within a MinHash bucket (rows sorted by key), each member is compared with the bucket's first
    member (the anchor) and linked to it when similar enough; members that match no anchor elect
    the first of them as the next anchor, for up to ``VERIFY_ANCHORS`` anchors per bucket. So a
    bucket whose smallest key is an unrelated collision still links the true duplicates in it.
    Exact and URL buckets (no sketch) are stars as without verification. Vectorised per round.
    """
    n = len(key)
    group = np.repeat(np.arange(len(starts)), sizes)
    is_first = np.zeros(n, dtype=bool)
    is_first[starts] = True
    sketch_arr = sketch_col.combine_chunks()
    has_sketch = sketch_arr.is_valid().to_numpy(zero_copy_only=False)
    width = plan.bands * plan.rows
    data = np.frombuffer(sketch_arr.buffers()[1], dtype=np.uint8, count=(sketch_arr.offset + n) * width)
    sketch = data[sketch_arr.offset * width :].reshape(n, width)
    # unverified buckets: the star around the smallest key, as without verification
    star = ~has_sketch & ~is_first
    a_parts, b_parts = [key[starts][group[star]]], [key[star]]
    needed = mh.sketch_agreement_needed(plan.threshold)
    anchor = starts.copy()
    pending = np.flatnonzero(has_sketch & ~is_first)
    counters["candidate_links"] = len(pending)
    for rnd in range(VERIFY_ANCHORS):
        if len(pending) == 0:
            break
        g = group[pending]
        agree = (sketch[pending] == sketch[anchor[g]]).mean(axis=1)
        ok = (agree >= needed) | (key[pending] == key[anchor[g]])
        a_parts.append(key[anchor[g[ok]]])
        b_parts.append(key[pending[ok]])
        rest = pending[~ok]
        if rnd == VERIFY_ANCHORS - 1 or len(rest) == 0:
            pending = rest
            break
        first = np.ones(len(rest), dtype=bool)  # the first unmatched member of each bucket anchors next
        first[1:] = group[rest[1:]] != group[rest[:-1]]
        anchor[group[rest[first]]] = rest[first]
        pending = rest[~first]
    counters["verified_links"] = int(sum(len(x) for x in b_parts[1:]))
    counters["unverified_members"] = len(pending)
    a, b = np.concatenate(a_parts), np.concatenate(b_parts)
    sel = a != b
    return a[sel], b[sel]


# --------------------------------------------------------------------------------------------------
# Phase 3: connected components (Large-Star / Small-Star rounds, one task per node partition)
# --------------------------------------------------------------------------------------------------


def _cc_inputs(plan: DedupPlan, step_dir: str, q: int) -> list[str]:
    return [os.path.join(step_dir, _pname(p), f"to-{_pname(q)}.parquet") for p in range(plan.partitions)]


def _large_star_task(plan: DedupPlan, step: str, src: str, q: int) -> tuple[list[str], dict]:
    """Large-Star: link every larger neighbour of a node to the smallest key of its neighbourhood.

    Also writes (node, smallest key in its closed neighbourhood) for this partition, and counts the
    nodes that are neither a star center (all neighbours larger) nor a leaf (one smaller
    neighbour): when that count is 0 over all partitions, these files are the component labels.
    """
    u, v = _read_edges(_cc_inputs(plan, plan.work(src), q))
    starts = _group_starts(u)
    nodes = u[starts]
    counts = np.diff(np.append(starts, len(u)))
    vmin = np.minimum.reduceat(v, starts) if len(u) else np.zeros(0, np.int64)
    m = np.minimum(nodes, vmin)
    star = (vmin > nodes) | ((counts == 1) & (vmin < nodes))
    m_row = np.repeat(m, counts)
    sel = v > u
    out_dir = plan.work(step, _pname(q))
    # Small-Star reads each edge at its larger endpoint: (v, m) with v > u >= m.
    outputs = _write_partitioned(out_dir, _edge_table(v[sel], m_row[sel]),
                                 _node_part(v[sel], plan.partitions), plan.partitions)
    parents = pa.table({"key": pa.array(nodes, pa.int64()), "root": pa.array(m, pa.int64())})
    outputs.append(_write_table(os.path.join(out_dir, "parents.parquet"), parents))
    return outputs, {"edges": len(u), "nodes": len(nodes), "unstable": int((~star).sum())}


def _small_star_task(plan: DedupPlan, step: str, src: str, q: int) -> tuple[list[str], dict]:
    """Small-Star: link a node and its smaller neighbours to the smallest of them."""
    u, v = _read_edges(_cc_inputs(plan, plan.work(src), q))
    starts = _group_starts(u)
    nodes = u[starts]
    counts = np.diff(np.append(starts, len(u)))
    m = np.minimum.reduceat(v, starts) if len(u) else np.zeros(0, np.int64)
    m_row = np.repeat(m, counts)
    sel = v != m_row
    a = np.concatenate([v[sel], nodes])
    b = np.concatenate([m_row[sel], m])
    outputs = _write_both_directions(plan.work(step, _pname(q)), a, b, plan.partitions)
    return outputs, {"edges": len(u), "nodes": len(nodes)}


# --------------------------------------------------------------------------------------------------
# Phases 4-5: attach keeper attributes, choose keepers
# --------------------------------------------------------------------------------------------------


def _attach_task(plan: DedupPlan, q: int, labels: str, shards: tuple[str, ...]) -> tuple[list[str], dict]:
    """Members of clusters in node partition q, with their keeper attributes, sent to their root's partition."""
    parents = io.read_parquet(plan.work(labels, _pname(q), "parents.parquet"))
    nodes = parents.column("key").to_numpy()  # sorted (Large-Star groups by node)
    roots = parents.column("root").to_numpy()
    docs = _read_tables([plan.work("signatures", "docs", s, f"part-{_pname(q)}.parquet") for s in shards])
    counters: Counter = Counter()
    if docs is None or len(nodes) == 0:
        members = _attr_table(plan).append_column("root", pa.array([], pa.int64()))
    else:
        keys = docs.column("key").to_numpy()
        pos = np.minimum(np.searchsorted(nodes, keys), len(nodes) - 1)
        found = nodes[pos] == keys
        members = docs.filter(pa.array(found)).append_column("root", pa.array(roots[pos[found]], pa.int64()))
        counters["members"] = members.num_rows
        counters["labels_without_document"] = int(len(nodes) - members.num_rows)
    root_np = members.column("root").to_numpy()
    outputs = _write_partitioned(plan.work("attach", _pname(q)), members, _node_part(root_np, plan.partitions),
                                 plan.partitions)
    return outputs, dict(counters)


def _keepers_task(plan: DedupPlan, r: int) -> tuple[list[str], dict]:
    """One keeper per cluster by the keeper rule; every member's cluster id, size and kind."""
    table = _read_tables([plan.work("attach", _pname(p), f"to-{_pname(r)}.parquet") for p in range(plan.partitions)])
    out_path = plan.work("keepers", f"part-{_pname(r)}.parquet")
    if table is None or table.num_rows == 0:
        empty = pa.table({"key": pa.array([], pa.int64()), "cluster_id": pa.array([], pa.string()),
                          "size": pa.array([], pa.int32()), "kind": pa.array([], pa.int8())})
        return [_write_table(out_path, empty, _KEEPER_ROW_GROUP)], {"clusters": 0, "members": 0}
    sort_keys = [("root", "ascending")]
    sort_keys += [(k.field, "descending" if k.descending else "ascending") for k in plan.keep]
    sort_keys.append(("key", "ascending"))
    table = table.sort_by(sort_keys)  # nulls (and NaN, made null upstream) sort last either way
    root = table.column("root").to_numpy()
    starts = _group_starts(root)
    sizes = np.diff(np.append(starts, len(root)))
    first = np.repeat(starts, sizes)
    text_h = table.column("text_hash").to_numpy()
    url_h = table.column("url_hash").to_numpy()
    kind = np.full(len(root), 3, dtype=np.int8)
    if plan.url:
        kind[(url_h == url_h[first]) & (url_h != 0)] = 2
    if plan.exact:
        kind[(text_h == text_h[first]) & (text_h != 0)] = 1
    kind[starts] = 0
    ids = table.column("id")
    out = pa.table({
        "key": table.column("key"),
        "cluster_id": ids.take(pa.array(first)),
        "size": pa.array(np.repeat(sizes, sizes).astype(np.int32)),
        "kind": pa.array(kind),
    }).sort_by([("key", "ascending")])
    counters = {"clusters": len(starts), "members": len(root), "max_cluster_size": int(sizes.max()),
                "exact_removed": int((kind == 1).sum()), "url_removed": int((kind == 2).sum()),
                "near_removed": int((kind == 3).sum())}
    return [_write_table(out_path, out, _KEEPER_ROW_GROUP)], counters


# --------------------------------------------------------------------------------------------------
# Phase 6: write kept and rejected documents (one task per input shard)
# --------------------------------------------------------------------------------------------------


def _shard_assignments(plan: DedupPlan, si: int) -> pa.Table | None:
    lo = si << 32
    hi = (si + 1) << 32
    tables = []
    for r in range(plan.partitions):
        t = io.read_parquet(plan.work("keepers", f"part-{_pname(r)}.parquet"),
                            filters=[("key", ">=", lo), ("key", "<", hi)])
        if t.num_rows:
            tables.append(t)
    if not tables:
        return None
    return pa.concat_tables(tables).combine_chunks().sort_by([("key", "ascending")])


def _write_task(plan: DedupPlan, si: int, input_digest: str, clustered: bool) -> dict:
    """Kept and rejected Parquet of one input shard, rows in input order, and its stats."""
    started = time.perf_counter()
    path, shard = plan.files[si], plan.shards[si]
    assign = _shard_assignments(plan, si) if clustered else None
    source = io.parquet_file(path)
    member = np.full(source.metadata.num_rows, -1, dtype=np.int64)  # row -> assignment index
    if assign is not None:
        rows = assign.column("key").to_numpy() - (np.int64(si) << np.int64(32))
        member[rows] = np.arange(len(rows))
        a_cluster = assign.column("cluster_id")
        a_size = assign.column("size").to_numpy()
        a_kind = assign.column("kind").to_numpy()
    out_schema = source.schema_arrow
    for name, typ in (("dup_cluster_id", pa.string()), ("dup_cluster_size", pa.int32())):
        idx = out_schema.get_field_index(name)
        field = pa.field(name, typ)
        out_schema = out_schema.set(idx, field) if idx >= 0 else out_schema.append(field)
    writers = io.ShardOutput(plan.output_dir, shard, out_schema, out_schema.append(pa.field(REJECT_REASON, pa.string())))
    kept_w, rej_w = writers.kept, writers.rejected
    reasons: Counter = Counter()
    histogram: Counter = Counter()
    bytes_in = bytes_out = offset = 0
    try:
        for record_batch in source.iter_batches(batch_size=4096):
            batch = pa.Table.from_batches([record_batch], schema=source.schema_arrow)
            n = batch.num_rows
            pos = member[offset : offset + n]
            offset += n
            is_member = pos >= 0
            own_id = pc.fill_null(batch.column("id").cast(pa.string()), "").combine_chunks()
            if assign is not None and is_member.any():
                safe = np.where(is_member, pos, 0)
                cluster = pc.if_else(pa.array(is_member), a_cluster.take(pa.array(safe)), own_id)
                size = np.where(is_member, a_size[safe], 1).astype(np.int32)
                kind = np.where(is_member, a_kind[safe], 0).astype(np.int8)
            else:
                cluster = own_id
                size = np.ones(n, dtype=np.int32)
                kind = np.zeros(n, dtype=np.int8)
            table = with_column(batch, "dup_cluster_id", cluster)
            table = with_column(table, "dup_cluster_size", pa.array(size, pa.int32()))
            keep = kind == 0
            keep_arr = pa.array(keep)
            kept_w.write(table.filter(keep_arr))
            for value, count in zip(*np.unique(size[keep], return_counts=True), strict=True):
                histogram[_cluster_size_bucket(int(value))] += int(count)
            text_len = pc.binary_length(batch.column("text"))
            bytes_in += int(pc.sum(text_len).as_py() or 0)
            bytes_out += int(pc.sum(text_len.filter(keep_arr)).as_py() or 0)
            if not keep.all():
                drop = pa.array(~keep)
                prefixes = pa.array([KIND_REASONS[int(k)] + ":" for k in kind[~keep]], pa.string())
                reason = pc.binary_join_element_wise(prefixes, cluster.filter(drop), "")
                rej_w.write(table.filter(drop).append_column(REJECT_REASON, reason))
                reasons.update(KIND_REASONS[int(k)] for k in kind[~keep])
        sizes = writers.close()
    except BaseException:
        writers.abort()
        raise
    stats = shard_stats(offset, kept_w.rows, rej_w.rows, bytes_in, bytes_out, reasons, sizes, started,
                        counters={"dup_cluster_size": histogram})
    stats.update({
        "shard": shard,
        "input": path,
        "stage": STAGE,
        "plan": plan.digest,
        "input_digest": input_digest,
        "peak_rss_mb": _peak_rss_mb(),
        "node_id": _node_id(),
    })
    # The stats file is the shard's completion marker (the runner's convention): written last.
    io.write_json_atomic(stats_path(plan.output_dir, shard), stats)
    return stats


# --------------------------------------------------------------------------------------------------
# Task execution, markers and resume
# --------------------------------------------------------------------------------------------------


def _marker_path(plan: DedupPlan, phase: str, task: str) -> str:
    return plan.work(phase, DONE_DIR, f"{task}.json")


def _load_marker(plan: DedupPlan, phase: str, task: str, input_digest: str) -> dict | None:
    """The task's marker when its outputs are complete and come from this plan and these inputs."""
    marker = io.read_json(_marker_path(plan, phase, task))
    if not isinstance(marker, dict):
        return None
    if marker.get("plan") != plan.digest or marker.get("input_digest") != input_digest:
        return None
    for rel, size in marker.get("outputs", {}).items():
        full = plan.work(rel)
        if not io.isfile(full) or io.file_size(full) != size:
            return None
    return marker


def _execute(fn: Callable[..., tuple[list[str], dict]], plan: DedupPlan, phase: str, task: str,
             input_digest: str, *args: Any) -> dict:
    """Run one phase task, then write its marker (after every output is in place)."""
    started = time.perf_counter()
    outputs, counters = fn(plan, *args)
    marker = {
        "phase": phase, "task": task, "plan": plan.digest, "input_digest": input_digest,
        "outputs": {p[len(plan.work_dir):].lstrip("/"): io.file_size(p) for p in outputs},
        "digest": _files_digest(outputs),
        "counters": counters,
        "seconds": round(time.perf_counter() - started, 4),
        "peak_rss_mb": _peak_rss_mb(),
        "node_id": _node_id(),
    }
    io.write_json_atomic(_marker_path(plan, phase, task), marker)
    return marker


@dataclass
class PhaseResult:
    name: str
    markers: dict[str, dict]
    failures: list[dict]
    ran: int
    reused: int
    seconds: float
    digest: str

    def counters(self) -> Counter:
        total: Counter = Counter()
        for m in self.markers.values():
            total.update({k: v for k, v in m.get("counters", {}).items() if isinstance(v, int | float)})
        return total

    def peak_rss_mb(self) -> float:
        return max((float(m.get("peak_rss_mb", 0)) for m in self.markers.values()), default=0.0)

    def nodes(self) -> set[str]:
        return {m["node_id"] for m in self.markers.values() if m.get("node_id")}

    def task_seconds(self) -> float:
        return sum(float(m.get("seconds", 0)) for m in self.markers.values())


class _Runner:
    """Submits phase tasks to Ray, skipping those with valid markers; holds O(tasks) small records."""

    def __init__(self, plan: DedupPlan, ray_cfg: RayConfig, progress: bool) -> None:
        self.plan = plan
        self.plan_ref = ray.put(plan)
        self.ray_cfg = ray_cfg
        self.progress = progress
        self.phases: list[PhaseResult] = []

    def phase(self, phase: str, fn: Callable[..., tuple[list[str], dict]], tasks: Sequence[tuple[str, tuple]],
              input_digest: str, tolerate: bool = False) -> PhaseResult:
        """Run ``fn(plan, *args)`` for each (task name, args) not already complete; wait for all.

        With ``tolerate`` a failed task is recorded (per-shard phases: the run goes on without that
        shard); otherwise it raises `DedupError` after the others finished.
        """
        started = time.perf_counter()
        markers: dict[str, dict] = {}
        pending: dict[Any, str] = {}
        remote = remote_task(_execute, f"dedup.{phase.split('/')[0]}", self.ray_cfg)
        for task, args in tasks:
            done = _load_marker(self.plan, phase, task, input_digest)
            if done is not None:
                markers[task] = done
            else:
                pending[remote.remote(fn, self.plan_ref, phase, task, input_digest, *args)] = task
        reused = len(markers)
        failures = self._wait(phase, pending, markers, len(tasks), reused)
        if failures and not tolerate:
            raise DedupError(f"dedup phase {phase}: {len(failures)} task(s) failed, e.g. "
                             f"{failures[0]['shard']}: {failures[0]['detail']}")
        h = xxhash.xxh3_64(input_digest.encode())
        for task in sorted(markers):
            h.update(f"{task}={markers[task]['digest']};".encode())
        result = PhaseResult(phase, markers, failures, len(tasks) - reused, reused,
                             time.perf_counter() - started, h.hexdigest())
        self.phases.append(result)
        return result

    def _wait(self, phase: str, pending: dict[Any, str], results: dict[str, dict], total: int,
              initial: int) -> list[dict]:
        failures: list[dict] = []
        with tqdm(total=total, initial=initial, desc=f"dedup:{phase}", unit="task",
                  disable=not self.progress) as bar:
            for task, result, err in as_completed(pending):
                if err is None:
                    results[task] = result
                else:  # after retries: report it with the task's name
                    message = task_error(err)
                    failures.append({"stage": STAGE, "phase": phase, "shard": task,
                                     "reason": f"shard_failed:{error_name(err)}", "detail": message})
                    log.error("dedup %s: task %s failed: %s", phase, task, message)
                bar.update(1)
        return failures


# --------------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------------


def _check_plan_file(plan: DedupPlan) -> None:
    """Start the work directory afresh when it belongs to other inputs or another dedup config."""
    path = plan.work(PLAN_NAME)
    previous = (io.read_json(path) or {}).get("digest")
    if previous != plan.digest:
        if previous is not None:
            log.warning("dedup: inputs or config changed since the last run; recomputing from scratch")
        io.rmtree(plan.work_dir)
        io.write_json_atomic(path, {"digest": plan.digest, "files": list(plan.files), "bands": plan.bands,
                                    "rows": plan.rows, "partitions": plan.partitions})


def _complete_final(plan: DedupPlan, si: int, input_digest: str | None) -> dict | None:
    stats = load_complete_stats(plan.output_dir, plan.shards[si])
    if stats is None or stats.get("plan") != plan.digest:
        return None
    if input_digest is not None and stats.get("input_digest") != input_digest:
        return None
    return stats


def _cluster(runner: _Runner, plan: DedupPlan, ok: tuple[str, ...], digest: str, max_rounds: int) -> tuple[str, str]:
    """Pairs + connected components; returns (labels step directory, its digest)."""
    parts = [(_pname(p), p) for p in range(plan.partitions)]
    pairs = runner.phase("pairs", _pairs_task, [(n, (p, ok)) for n, p in parts], digest)
    src, digest = "pairs", pairs.digest
    for k in range(max_rounds):
        ls_step = f"cc/ls-{k:03d}"
        ls = runner.phase(ls_step, _large_star_task, [(n, (ls_step, src, p)) for n, p in parts], digest)
        if ls.counters()["unstable"] == 0:
            return ls_step, ls.digest
        ss_step = f"cc/ss-{k:03d}"
        ss = runner.phase(ss_step, _small_star_task, [(n, (ss_step, ls_step, p)) for n, p in parts], ls.digest)
        src, digest = ss_step, ss.digest
    raise DedupError(f"connected components did not converge in {max_rounds} rounds (dedup.max_cc_rounds)")


def run_dedup(config: Config, inputs: list[str], output_dir: str, progress: bool = True) -> dict:
    """Deduplicate the Parquet documents in ``inputs`` into ``output_dir``; returns the summary.

    One output shard per input shard (kept rows in input order, with ``dup_cluster_id`` and
    ``dup_cluster_size``), removed duplicates in ``rejected/`` with their reason, per-shard stats,
    ``_summary.json`` and ``_failures.jsonl``. Re-running resumes where a killed run stopped.
    """
    wall_start = time.perf_counter()
    files = io.expand_inputs(inputs, (".parquet",))
    plan = make_plan(config, files, output_dir)
    io.ensure_dir(output_dir)
    io.remove_stale_tmp(output_dir)
    n_shards = len(files)
    finals = [_complete_final(plan, si, None) for si in range(n_shards)]
    phases: list[PhaseResult] = []
    failed: list[dict] = []
    processed = 0
    if all(f is not None for f in finals):  # a finished run: nothing to recompute, not even Ray
        results = [f for f in finals if f is not None]
    else:
        _check_plan_file(plan)
        runner = _Runner(plan, config.ray, progress)
        sig = runner.phase("signatures", _signatures_task, [(s, (si,)) for si, s in enumerate(plan.shards)],
                           plan.digest, tolerate=True)
        failed += sig.failures
        ok_idx = [si for si, s in enumerate(plan.shards) if s in sig.markers]
        ok = tuple(plan.shards[si] for si in ok_idx)
        digest = sig.digest
        clustered = plan.exact or plan.minhash or plan.url
        if clustered:
            parts = [(_pname(p), p) for p in range(plan.partitions)]
            labels, digest = _cluster(runner, plan, ok, digest, config.dedup.max_cc_rounds)
            att = runner.phase("attach", _attach_task, [(n, (p, labels, ok)) for n, p in parts], digest)
            digest = runner.phase("keepers", _keepers_task, [(n, (p,)) for n, p in parts], att.digest).digest
        results, write_failures, processed = _write_phase(runner, ok_idx, digest, clustered)
        failed += write_failures
        phases = runner.phases
    summary = merge_stats(results, STAGE, time.perf_counter() - wall_start)
    for f in failed:
        f["file"] = plan.files[plan.shards.index(f["shard"])] if f["shard"] in plan.shards else f["shard"]
        summary["failures_by_reason"][f["reason"]] = summary["failures_by_reason"].get(f["reason"], 0) + 1
    summary["shards"] = {"total": n_shards, "skipped_complete": len(results) - processed, "processed": processed,
                         "failed": len(failed)}
    summary["failed_shards"] = failed
    summary["inputs"] = list(files)
    summary["lsh"] = {"threshold": config.dedup.threshold, "num_perm": plan.bands * plan.rows,
                      "bands": plan.bands, "rows": plan.rows, "ngram": plan.ngram, "scope": config.dedup.scope,
                      "partitions": plan.partitions, "exact": plan.exact, "minhash": plan.minhash, "url": plan.url,
                      "verify": plan.verify,
                      "keep": [("-" if not k.descending and k.source != "id" else "") + k.source for k in plan.keep]}
    summary["phases"] = _phase_summary(phases)
    summary["counters"]["dedup"] = _dedup_counters(phases)
    # timings stay out of `counters`, which manifests copy and two identical runs must agree on
    summary["signature_hash_seconds"] = round(
        sum(int(ph.counters().get("hash_ms", 0)) for ph in phases if ph.name == "signatures") / 1000, 3)
    failures = [f for r in results for f in r.get("failures", [])] + failed
    io.write_json_atomic(os.path.join(output_dir, SUMMARY_NAME), summary)
    io.write_text_atomic(os.path.join(output_dir, STAGE_FAILURES_NAME),
                         "".join(json.dumps(f, sort_keys=True, ensure_ascii=False) + "\n" for f in failures))
    if phases and not failed and not config.dedup.keep_work:
        io.rmtree(plan.work_dir)
    return summary


def _write_phase(runner: _Runner, ok_idx: list[int], digest: str, clustered: bool
                 ) -> tuple[list[dict], list[dict], int]:
    """Final per-shard outputs; a shard whose stats match this plan and upstream digest is kept as is.

    Returns (stats of every written shard, failures, how many shards were written now).
    """
    plan = runner.plan
    started = time.perf_counter()
    results: list[dict] = []
    pending: dict[Any, str] = {}
    remote = remote_task(_write_task, "dedup.write", runner.ray_cfg)
    for si in ok_idx:
        done = _complete_final(plan, si, digest)
        if done is not None:
            results.append(done)
        else:
            pending[remote.remote(runner.plan_ref, si, digest, clustered)] = plan.shards[si]
    reused = len(results)
    fresh: dict[str, dict] = {}
    failures = runner._wait("write", pending, fresh, len(ok_idx), reused)
    results += fresh.values()
    markers = {r["shard"]: {"seconds": r.get("seconds", 0), "peak_rss_mb": r.get("peak_rss_mb", 0),
                            "node_id": r.get("node_id"), "digest": "", "counters": {}} for r in results}
    runner.phases.append(PhaseResult("write", markers, failures, len(ok_idx) - reused, reused,
                                     time.perf_counter() - started, digest))
    return results, failures, len(fresh)
def _phase_summary(phases: list[PhaseResult]) -> dict[str, dict]:
    """Per phase (CC steps folded into one "cc" entry): wall seconds, tasks run/reused, peak RSS."""
    out: dict[str, dict] = {}
    node_sets: dict[str, set[str]] = {}
    for ph in phases:
        name = ph.name.split("/")[0]
        entry = out.setdefault(name, {"seconds": 0.0, "task_seconds": 0.0, "tasks_run": 0, "tasks_reused": 0,
                                      "worker_peak_rss_mb": 0.0, "nodes": 0})
        node_sets.setdefault(name, set()).update(ph.nodes())
        entry["nodes"] = len(node_sets[name])
        entry["seconds"] = round(entry["seconds"] + ph.seconds, 3)
        entry["task_seconds"] = round(entry["task_seconds"] + ph.task_seconds(), 3)
        entry["tasks_run"] += ph.ran
        entry["tasks_reused"] += ph.reused
        entry["worker_peak_rss_mb"] = max(entry["worker_peak_rss_mb"], ph.peak_rss_mb())
        if name == "cc":
            entry["steps"] = entry.get("steps", 0) + 1
    return out


def _dedup_counters(phases: list[PhaseResult]) -> dict[str, int]:
    """The few run-level numbers worth a glance: candidate edges, clusters, CC rounds."""
    out: Counter = Counter()
    for ph in phases:
        c = ph.counters()
        if ph.name == "signatures":
            for key in ("signatures", "signature_reused", "shingles", "bucket_rows", "empty_after_normalisation",
                        "null_text"):
                out[key] += int(c.get(key, 0))
        elif ph.name == "pairs":
            out["shared_buckets"] += int(c.get("shared_buckets", 0))
            out["candidate_edges"] += int(c.get("edges", 0))
            for key in ("candidate_links", "verified_links", "unverified_members"):  # dedup.verify only
                if key in c:
                    out[key] += int(c[key])
        elif ph.name.startswith("cc/ls-"):
            out["cc_rounds"] += 1
        elif ph.name == "keepers":
            for key in ("clusters", "members", "exact_removed", "url_removed", "near_removed"):
                out[key] += int(c.get(key, 0))
            out["max_cluster_size"] = max(out["max_cluster_size"],
                                          max((int(m["counters"].get("max_cluster_size", 0))
                                               for m in ph.markers.values()), default=0))
    return dict(sorted(out.items()))
