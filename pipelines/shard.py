"""The shard stage: kept documents, shuffled with a seed, cut into token-balanced Parquet shards.

Nothing funnels the corpus through the driver. The stage runs in three steps:

1. **scan** — one Ray task per input file reads only ``text`` (and ``dup_cluster_size``), counts
   tokens and text bytes per row and saves those arrays (8-24 bytes per document) under
   ``_work/scan/``, keyed by the input's fingerprint and the token counter, so a re-shard with another
   seed or size does not tokenize again. The task returns only the file's totals.
2. **plan** — the driver, from per-file totals (O(inputs), never O(documents)): the shard count.
   Each file's rows are planned from its own scan arrays, in tasks: rehydration repeats, a
   permutation seeded by ``(seed, file index)``, each row's shard *label*, balanced by tokens inside
   the file (``greedy``: largest row first onto the lightest label; or ``cumulative`` cuts of the
   shuffled order), and a seeded random sort key. Batched tasks return each file's tokens per label;
   the driver maps every file's labels onto shards so the corpus's shards come out balanced
   (``relabel_files``: O(files x shards) integers).
3. **scatter / gather** — one task per input file writes its rows, grouped by destination shard, one
   Parquet row group per destination, to ``_work/scatter-<plan>/``; then one task per output shard
   reads just its row groups from every scatter file, orders the rows by their random keys (a uniform
   shuffle of everything the shard holds) and writes ``shard-NNNNN.parquet`` atomically. The corpus is
   read twice and written twice (a two-pass shuffle), instead of every output shard reading every
   input (N-fold reads).

Why greedy by default: with the shuffled order cut at multiples of total/N a shard can be off by up
to one document (the largest), so a corpus with a few very long documents breaks a 2% balance bound.
Greedy (LPT) guarantees, inside each file, ``max - min <= tokens of the last row placed on the
heaviest label``: rows are placed largest first, so that is one of the smallest. With few rows per
shard per file (a snapshot: ~700 documents a file) files still differ label to label by whole
documents; mapping each file's heaviest label onto the lightest shard so far cancels that
(``bench/bench_driver_scale.py``: max/min 1.0000x over 90,000 files). Every shard mixes rows of every file.

Token counts come from the user's ``tokenizer.json`` (Hugging Face ``tokenizers``, batched, without
special tokens: trainers add BOS/EOS themselves) or, without one, ``ceil(UTF-8 bytes / 4)``, a typical
ratio for 32k-128k BPE vocabularies on European web text (an estimate: it is labelled as such in the
summary and manifest).

Resume: a complete shard set (``_summary.json`` with the same plan key, every shard at its recorded
size) is reused when inputs (path, size, mtime) and the shard config are unchanged; after a killed
run, shards already written under the same plan key and finished scatter files are kept and only the
rest is recomputed.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
import math
import os
import time
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines import __version__, buckets, io
from pipelines.config import Config, ConfigError, QualityBucketConfig, RehydrationConfig, ShardConfig
from pipelines.schema import DOCUMENT_FIELDS, check_input_schema

log = logging.getLogger("cptcorpus")

BYTES_PER_TOKEN_ESTIMATE = 4  # typical for BPE vocabularies of 32k-128k on European web text
SHARD_SUMMARY = "_summary.json"
SHARD_PREFIX = "shard-"
STATS_DIR = "_stats"  # per-shard completion markers with the shard's description
WORK_DIR = "_work"  # scan cache and scatter files; removed (scatter) or pruned (scan) after a run
REPEAT_COLUMN = "repeat"  # rehydration: 0 for the original row, 1.. for its repeats
PLAN_VERSION = 2  # bump when the plan changes: shard sets of an older plan are never reused
LOADS_BATCH = 64  # files per label_loads task
_KEY = "__key"  # a row's random sort key inside its output shard, only in scatter files
_SCAN_BATCH_ROWS = 8192


# ---------------------------------------------------------------------------------------------
# token counting


_TOKENIZERS: dict[tuple[str, int], Any] = {}


def _tokenizer(path: str) -> Any:
    """Load a tokenizer.json once per worker process (keyed by path and mtime)."""
    from tokenizers import Tokenizer

    key = (path, os.stat(path).st_mtime_ns)
    if key not in _TOKENIZERS:
        _TOKENIZERS[key] = Tokenizer.from_file(path)
    return _TOKENIZERS[key]


def count_tokens(texts: pa.ChunkedArray | pa.Array, tokenizer_path: str | None, batch: int = 1024) -> np.ndarray:
    """Tokens per text: exact with a tokenizer.json (no special tokens), else ceil(UTF-8 bytes / 4)."""
    if tokenizer_path is None:
        lengths = pc.fill_null(pc.binary_length(texts), 0).to_numpy(zero_copy_only=False)
        return np.ceil(lengths / BYTES_PER_TOKEN_ESTIMATE).astype(np.int64)
    tok = _tokenizer(tokenizer_path)
    values = [t or "" for t in texts.to_pylist()]
    out = np.zeros(len(values), dtype=np.int64)
    for start in range(0, len(values), batch):
        encs = tok.encode_batch(values[start : start + batch], add_special_tokens=False)
        out[start : start + len(encs)] = [len(e.ids) for e in encs]
    return out


def token_counter_info(cfg: ShardConfig) -> dict:
    """What counted the tokens, for the summary and manifest: a tokenizer (with its sha256) or the estimate."""
    if cfg.tokenizer:
        return {"kind": "tokenizer", "name": os.path.basename(cfg.tokenizer),
                "sha256": io.sha256_file(cfg.tokenizer)}
    return {"kind": "bytes_estimate", "bytes_per_token": BYTES_PER_TOKEN_ESTIMATE}


def _counter_label(info: dict) -> str:
    if info["kind"] == "tokenizer":
        return f"tokenizer:{info['name']}@{info['sha256'][:12]}"
    return f"bytes/{info['bytes_per_token']}"


# ---------------------------------------------------------------------------------------------
# schema and rehydration


#: Optional columns the README's column table lists among the DESIGN.md ones: name -> the column it follows.
PLACED_AFTER = {"lang_top": "lang_score"}


def conform(table: pa.Table) -> pa.Table:
    """The README's column order: DESIGN.md columns with their types (null where a stage did not run), each
    optional column of the README's table after its neighbour when present, then the other extras."""
    cols, fields = [], []

    def take(name: str) -> None:
        cols.append(table.column(name))
        fields.append(table.schema.field(name))

    for f in DOCUMENT_FIELDS:
        if f.name in table.column_names:
            cols.append(table.column(f.name).cast(f.type))
        else:
            cols.append(pa.nulls(table.num_rows, f.type))
        fields.append(f)
        for name, after in PLACED_AFTER.items():
            if after == f.name and name in table.column_names:
                take(name)
    known = {f.name for f in DOCUMENT_FIELDS} | set(PLACED_AFTER)
    for name in table.column_names:
        if name not in known:
            take(name)
    return pa.Table.from_arrays(cols, schema=pa.schema(fields))


def repeat_counts(cluster_sizes: np.ndarray, cfg: RehydrationConfig) -> np.ndarray:
    """Copies of each document: the weight of the largest cluster-size bound <= its size (1 when off/unknown).

    ``cluster_sizes`` uses 0 for "unknown" (a null ``dup_cluster_size``): such documents are written once.
    """
    sizes = np.asarray(cluster_sizes, dtype=np.int64)
    if not cfg.enabled or not cfg.weights:
        return np.ones(len(sizes), dtype=np.int64)
    bounds = np.array(sorted(cfg.weights), dtype=np.int64)
    weights = np.array([cfg.weights[b] for b in sorted(cfg.weights)], dtype=np.int64)
    idx = np.searchsorted(bounds, sizes, side="right") - 1
    out = np.where(idx >= 0, weights[np.clip(idx, 0, None)], 1)
    return np.where(sizes > 0, out, 1).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# step 1: scan (Ray task per input)


def _fingerprint(path: str) -> dict:
    return io.file_version(path)


def _scan_key(fingerprint: dict, counter: dict) -> str:
    blob = json.dumps({"f": fingerprint, "c": counter, "v": PLAN_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def load_scan(cache: str) -> dict:
    """One input's scan arrays (``tokens``, ``bytes``, ``cluster`` per row) and score ``histograms``."""
    with io.open_input(cache) as fh, np.load(fh) as data:
        out = {k: data[k] for k in data.files}
    keys, hist = out.pop("hist_keys", np.zeros(0, str)), out.pop("hist", np.zeros((0, 0)))
    out["histograms"] = dict(zip(keys.tolist(), hist, strict=True))
    return out


def scan_input(path: str, tokenizer: str | None, batch: int, cache: str, task_cpus: float = 1.0,
               quality: QualityBucketConfig | None = None, rehydration: RehydrationConfig | None = None) -> dict:
    """Count one input file's tokens and bytes per row into ``cache``; return only the file's totals.

    The per-row arrays stay in the cache file (the scatter task plans from them): the driver gets
    O(1) numbers per file. With ``quality``, also the token-weighted score histograms of quality
    buckets' pass one (fixed size). Totals count rehydration repeats, as the shard count needs.
    """
    cached = io.isfile(cache)
    arrays = load_scan(cache) if cached else _scan_arrays(path, tokenizer, batch, cache, task_cpus, quality)
    counts = repeat_counts(arrays["cluster"], rehydration or RehydrationConfig())
    return {"rows": len(counts), "expanded_rows": int(counts.sum()),
            "tokens": int((arrays["tokens"] * counts).sum()), "bytes": int((arrays["bytes"] * counts).sum()),
            "bytes_in": int(arrays["bytes"].sum()), "histograms": arrays["histograms"], "cached": cached}


def _scan_arrays(path: str, tokenizer: str | None, batch: int, cache: str, task_cpus: float,
                 quality: QualityBucketConfig | None) -> dict:
    # tokenizers runs encode_batch on its own thread pool; keep it within the task's CPU declaration
    os.environ.setdefault("RAYON_NUM_THREADS", str(max(1, math.ceil(task_cpus))))
    source = io.parquet_file(path)
    has_cluster = "dup_cluster_size" in source.schema_arrow.names
    columns = ["text", "dup_cluster_size"] if has_cluster else ["text"]
    if quality is not None:
        columns += [c for c in ("lang", *quality.columns) if c in source.schema_arrow.names]
    tokens, nbytes, cluster, hists = [], [], [], []
    for batch_ in source.iter_batches(batch_size=_SCAN_BATCH_ROWS, columns=columns):
        text = batch_.column("text")
        tokens.append(count_tokens(text, tokenizer, batch))
        if quality is not None:
            hists.append(buckets.histograms(pa.Table.from_batches([batch_]), tokens[-1], quality))
        nbytes.append(pc.fill_null(pc.binary_length(text), 0).to_numpy(zero_copy_only=False).astype(np.int64))
        if has_cluster:
            sizes = pc.fill_null(batch_.column("dup_cluster_size").cast(pa.int64()), 0)
            cluster.append(sizes.to_numpy(zero_copy_only=False))
        else:
            cluster.append(np.zeros(batch_.num_rows, dtype=np.int64))
    out = {
        "tokens": np.concatenate(tokens) if tokens else np.zeros(0, np.int64),
        "bytes": np.concatenate(nbytes) if nbytes else np.zeros(0, np.int64),
        "cluster": np.concatenate(cluster) if cluster else np.zeros(0, np.int64),
    }
    histograms = buckets.merge_histograms(hists)
    with io.atomic_path(cache) as tmp, open(tmp, "wb") as fh:
        saved = {"hist_keys": np.array(list(histograms), dtype=str),
                 "hist": np.stack(list(histograms.values()))} if histograms else {}
        np.savez(fh, **out, **saved)
    out["histograms"] = histograms
    return out


# ---------------------------------------------------------------------------------------------
# step 2: the plan (the driver: totals only; each file's rows: its scatter task)


def n_shards_for(cfg: ShardConfig, total_tokens: int, total_bytes: int, rows: int) -> int:
    """Shard count: ``num_shards``, else total / ``target_tokens``, else total text bytes / ``target_bytes``."""
    if cfg.num_shards:
        n = cfg.num_shards
    elif cfg.target_tokens:
        n = math.ceil(total_tokens / cfg.target_tokens)
    else:
        n = math.ceil(total_bytes / (cfg.target_bytes or 1))
    return max(1, min(n, max(rows, 1)))


def plan_cuts(tokens: np.ndarray, n_shards: int) -> np.ndarray:
    """Row indices where shards start (plus the end), cutting the running total at multiples of total/N."""
    cum = np.cumsum(tokens)
    total = int(cum[-1]) if len(cum) else 0
    targets = (np.arange(1, n_shards) * total) / n_shards
    inner = np.searchsorted(cum, targets, side="left") + 1
    return np.concatenate([[0], np.minimum(inner, len(tokens)), [len(tokens)]]).astype(np.int64)


def assign_cumulative(tokens: np.ndarray, n_shards: int) -> np.ndarray:
    """Shard of each row (in the given order) by cumulative cuts; each shard within one row of total/N."""
    cuts = plan_cuts(tokens, n_shards)
    return (np.searchsorted(cuts, np.arange(len(tokens)), side="right") - 1).astype(np.int32)


def assign_greedy(tokens: np.ndarray, n_shards: int) -> np.ndarray:
    """Shard of each row by LPT: rows largest first (ties in the given order) onto the lightest shard.

    Bound: let M be the heaviest shard and t the last row placed on it; when it was placed M was the
    lightest and loads only grow, so ``max - min <= t``, and t is small because rows come largest first.
    O(n log N) (about 1 s per million rows), inside the file's own task.
    """
    order = np.argsort(-tokens, kind="stable")
    heap = [(0, s) for s in range(n_shards)]
    placed = []
    append = placed.append
    replace = heapq.heapreplace
    for t in tokens[order].tolist():
        load, s = heap[0]
        replace(heap, (load + t, s))
        append(s)
    out = np.empty(len(tokens), dtype=np.int32)
    out[order] = np.asarray(placed, dtype=np.int32)
    return out


def _assign_file(scan: dict[str, np.ndarray], n_shards: int, cfg: ShardConfig, index: int) -> dict[str, np.ndarray]:
    """One file's rows (with repeats), each with a shard *label* balanced inside the file, and a sort key.

    Seeded by ``(cfg.seed, index)``: the same scan arrays and config always give the same labels.
    """
    counts = repeat_counts(scan["cluster"], cfg.rehydration)
    row = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64) if len(counts) else counts
    repeat = (np.arange(len(row), dtype=np.int64) - np.repeat(first, counts)).astype(np.int32)
    tokens = scan["tokens"][row].astype(np.int64)
    rng = np.random.default_rng([cfg.seed, index])
    perm = rng.permutation(len(row))
    assign = assign_greedy if cfg.balance == "greedy" else assign_cumulative
    label = np.empty(len(row), dtype=np.int32)
    if len(row):
        label[perm] = assign(tokens[perm], n_shards)
    key = rng.integers(0, np.iinfo(np.int64).max, size=len(row), dtype=np.int64)
    return {"row": row, "repeat": repeat, "tokens": tokens, "label": label, "key": key}


def label_loads(items: list[tuple[str, int]], n_shards: int, cfg: ShardConfig) -> list[np.ndarray]:
    """Tokens per shard label of each ``(scan cache, file index)``: what the driver balances files with.

    One task handles a batch of files (``LOADS_BATCH``), so a snapshot's 90,000 files are ~1,400 tasks.
    """
    out = []
    for scan_path, index in items:
        part = _assign_file(load_scan(scan_path), n_shards, cfg, index)
        out.append(np.bincount(part["label"], weights=part["tokens"], minlength=n_shards).astype(np.int64))
    return out


def relabel_files(loads: list[np.ndarray], n_shards: int) -> list[np.ndarray]:
    """For each file, the shard of each of its labels, so that the corpus's shards come out balanced.

    Each file is balanced inside itself, but with few rows per shard and a heavy tail its labels differ
    by whole documents. Files are taken in order of that spread, largest first, and each one's heaviest
    label goes onto the currently lightest shard (LPT again, one file's label vector at a time).
    The driver holds O(files x shards) integers here, never anything per document.
    """
    totals = np.zeros(n_shards, dtype=np.int64)
    spread = [-(int(v.max()) - int(v.min())) if len(v) else 0 for v in loads]
    relabels: list[np.ndarray] = [np.arange(0)] * len(loads)
    for i in np.argsort(spread, kind="stable").tolist():
        heavy_first = np.argsort(-loads[i], kind="stable")
        light_first = np.argsort(totals, kind="stable")
        relabel = np.empty(n_shards, dtype=np.int32)
        relabel[heavy_first] = light_first
        totals[light_first] += loads[i][heavy_first]
        relabels[i] = relabel
    return relabels


def plan_input(scan: dict[str, np.ndarray], n_shards: int, cfg: ShardConfig, index: int,
               relabel: np.ndarray) -> dict[str, np.ndarray]:
    """One input file's part of the plan: every (row, repeat) -> output shard and sort key."""
    part = _assign_file(scan, n_shards, cfg, index)
    part["shard"] = relabel[part.pop("label")]
    return part


def balance_ratio(shard_tokens: np.ndarray | list[int]) -> float | None:
    """max/min tokens over non-empty shards (1.0 = perfect)."""
    nonempty = [int(t) for t in shard_tokens if t]
    if not nonempty:
        return None
    return round(max(nonempty) / max(min(nonempty), 1), 6)


# ---------------------------------------------------------------------------------------------
# step 3: scatter (per input) and gather (per output shard)


def scatter_input(path: str, scan_path: str, index: int, n_shards: int, relabel: np.ndarray, cfg: ShardConfig,
                  out_path: str, quality: tuple[QualityBucketConfig, dict] | None = None) -> dict:
    """Plan one input's rows (``plan_input``) and write them grouped by destination shard, one row group each.

    Returns (and writes next to the file, as its completion marker) the destination -> row group map
    and the rows and tokens each destination gets. ``quality``: (config, bucket edges) to write the
    ``quality_bucket`` column with.
    """
    part = plan_input(load_scan(scan_path), n_shards, cfg, index, relabel)
    table = conform(io.read_parquet(path))
    if quality is not None:
        table = table.append_column(buckets.BUCKET_COLUMN, buckets.assign_buckets(table, quality[1], quality[0]))
    taken = table.take(pa.array(part["row"], pa.int64()))
    taken = taken.set_column(taken.schema.get_field_index("token_count"), "token_count",
                             pa.array(part["tokens"], pa.int64()))
    if cfg.rehydration.enabled:
        taken = taken.append_column(REPEAT_COLUMN, pa.array(part["repeat"], pa.int32()))
    taken = taken.append_column(_KEY, pa.array(part["key"], pa.int64()))
    order = np.lexsort((part["key"], part["shard"]))
    taken = taken.take(pa.array(order, pa.int64()))
    dest = part["shard"][order]
    dest_tokens = part["tokens"][order]
    groups: dict[str, int] = {}
    rows: dict[str, int] = {}
    tokens: dict[str, int] = {}
    bounds = np.flatnonzero(np.diff(dest)) + 1
    starts = np.concatenate([[0], bounds]) if len(dest) else np.zeros(0, np.int64)
    ends = np.concatenate([bounds, [len(dest)]]) if len(dest) else np.zeros(0, np.int64)
    with io.atomic_path(out_path) as tmp:
        writer = pq.ParquetWriter(tmp, taken.schema, compression="zstd")
        try:
            for g, (lo, hi) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
                writer.write_table(taken.slice(lo, hi - lo), row_group_size=hi - lo)
                j = str(int(dest[lo]))
                groups[j], rows[j], tokens[j] = g, hi - lo, int(dest_tokens[lo:hi].sum())
        finally:
            writer.close()
    marker = {"row_groups": groups, "shard_rows": rows, "shard_tokens": tokens, "rows": taken.num_rows,
              "size": io.file_size(out_path)}
    io.write_json_atomic(out_path + ".json", marker)
    return marker


def row_group_bounds(text_bytes: np.ndarray, max_rows: int, max_bytes: int) -> list[tuple[int, int]]:
    """Split rows into row groups of at most ``max_rows`` rows and ``max_bytes`` text bytes (>= 1 row each)."""
    n = len(text_bytes)
    cum = np.cumsum(text_bytes, dtype=np.int64)
    out, start = [], 0
    while start < n:
        base = int(cum[start - 1]) if start else 0
        by_bytes = int(np.searchsorted(cum, base + max_bytes, side="right"))
        end = max(start + 1, min(n, start + max_rows, by_bytes))
        out.append((start, end))
        start = end
    return out


def write_shard_table(path: str, table: pa.Table, cfg: ShardConfig) -> int:
    """Write a shard atomically with row groups a streaming reader can hold; returns its size."""
    text_bytes = pc.fill_null(pc.binary_length(table.column("text")), 0).to_numpy(zero_copy_only=False)
    compression = None if cfg.compression == "none" else cfg.compression
    # dictionary encoding only helps low-cardinality columns; on text and ids it costs time for nothing
    no_dict = {"id", "text", "url", "warc_record_id", "dup_cluster_id"}
    use_dictionary = [n for n in table.column_names if n not in no_dict]
    with io.atomic_path(path) as tmp:
        writer = pq.ParquetWriter(tmp, table.schema, compression=compression, use_dictionary=use_dictionary)
        try:
            for lo, hi in row_group_bounds(text_bytes, cfg.row_group_rows, cfg.row_group_bytes) or [(0, 0)]:
                writer.write_table(table.slice(lo, hi - lo), row_group_size=max(hi - lo, 1))
        finally:
            writer.close()
    return io.file_size(path)


def gather_shard(index: int, sources: list[tuple[str, int, int]], final: str, cfg: ShardConfig,
                 marker_path: str, layout_key: str) -> dict:
    """Read this shard's row group from every scatter file (``(path, row group, rows)``, in file order),
    order the rows by their random keys and write the shard."""
    parts = [io.parquet_file(path).read_row_group(group) for path, group, _ in sources]
    for (path, _, rows), part in zip(sources, parts, strict=True):
        if part.num_rows != rows:
            raise RuntimeError(f"{os.path.basename(final)}: {path} holds {part.num_rows} rows for it, "
                               f"its marker says {rows}")
    if parts:
        table = pa.concat_tables(parts, promote_options="permissive")
    else:
        table = conform(pa.table({"id": pa.array([], pa.string()), "text": pa.array([], pa.string())}))
        table = table.append_column(_KEY, pa.array([], pa.int64()))
    order = np.argsort(table.column(_KEY).to_numpy(), kind="stable")  # ties (p ~ 1e-10): file order
    table = table.take(pa.array(order, pa.int64())).drop_columns([_KEY])
    write_shard_table(final, table, cfg)
    desc = describe_shard(final, cfg.score_columns, cfg.score_bucket_width, table)
    marker = {"layout_key": layout_key, "shard": index, "describe": desc}
    io.write_json_atomic(marker_path, marker)
    return desc


# ---------------------------------------------------------------------------------------------
# per-shard description (shared with the manifest)


def score_bucket_labels(values: np.ndarray, width: float) -> list[str]:
    """Bucket labels ``lo-hi`` of ``width`` (a score of exactly 1 falls in the last bucket below 1)."""
    top = math.ceil(round(1 / width, 9))
    idx = np.floor(values / width + 1e-9).astype(np.int64)
    idx = np.where(np.isclose(values, 1.0), top - 1, idx)
    return [f"{round(i * width, 6):g}-{round((i + 1) * width, 6):g}" for i in idx.tolist()]


def cluster_size_label(size: int) -> str:
    """Duplicate-cluster size buckets: 1, 2, 3-4, 5-8, 9-16, ... (powers of two)."""
    if size <= 2:
        return str(size)
    hi = 1 << (size - 1).bit_length()
    return f"{hi // 2 + 1}-{hi}"


def _grouped(labels: list[str], tokens: np.ndarray) -> dict[str, dict[str, int]]:
    """rows and tokens per label."""
    if not labels:
        return {}
    arr = pa.array(labels, pa.string()).dictionary_encode()
    idx = arr.indices.to_numpy(zero_copy_only=False)
    rows = np.bincount(idx, minlength=len(arr.dictionary))
    toks = np.bincount(idx, weights=tokens, minlength=len(arr.dictionary))
    return {arr.dictionary[i].as_py(): {"rows": int(rows[i]), "tokens": int(toks[i])}
            for i in range(len(arr.dictionary))}


def describe_shard(path: str, score_columns: list[str], bucket_width: float, table: pa.Table | None = None) -> dict:
    """rows, tokens, bytes, sha256 and totals per language, score bucket and duplicate-cluster size."""
    if table is None:
        names = io.read_parquet_schema(path).names
        wanted = [c for c in ("lang", "token_count", "dup_cluster_size", buckets.BUCKET_COLUMN, *score_columns)
                  if c in names]
        table = io.read_parquet(path, columns=wanted)
    n = table.num_rows
    tokens = (pc.fill_null(table.column("token_count"), 0).to_numpy(zero_copy_only=False).astype(np.int64)
              if "token_count" in table.column_names else np.zeros(n, np.int64))
    langs = (pc.fill_null(table.column("lang"), "und").to_pylist() if "lang" in table.column_names
             else ["und"] * n)
    by_score: dict[str, dict] = {}
    for col in score_columns:
        if col not in table.column_names:
            continue
        arr = table.column(col)
        valid = pc.is_valid(arr).to_numpy(zero_copy_only=False)
        values = pc.fill_null(arr.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False)
        labels = score_bucket_labels(values, bucket_width)
        labels = [lab if ok else "null" for lab, ok in zip(labels, valid.tolist(), strict=True)]
        if any(valid.tolist()):
            by_score[col] = _grouped(labels, tokens)
    dup: dict[str, dict] = {}
    if "dup_cluster_size" in table.column_names:
        sizes = table.column("dup_cluster_size").to_pylist()
        dup = _grouped([cluster_size_label(s) if s else "null" for s in sizes], tokens)
    extra = ({"by_quality_bucket": buckets.bucket_totals(table, tokens)}
             if buckets.BUCKET_COLUMN in table.column_names else {})
    return {
        **extra,
        "path": os.path.basename(path),
        "rows": n,
        "tokens": int(tokens.sum()),
        "bytes": io.file_size(path),
        "sha256": io.sha256_file(path),
        "by_language": _grouped(langs, tokens),
        "by_score": by_score,
        "by_dup_cluster_size": dup,
        "bucket_config": {"score_columns": list(score_columns), "width": bucket_width},
    }


# ---------------------------------------------------------------------------------------------
# the stage


def check_quality_inputs(quality: QualityBucketConfig, files: list[str]) -> None:
    """Quality buckets need their score columns and at least as many documents as buckets (before any task)."""
    names = set().union(*(io.read_parquet_schema(p).names for p in files)) if files else set()
    missing = [c for c in quality.columns if c not in names]
    if missing:
        raise ConfigError(f"shard.quality_buckets.columns: {missing} not in any input (columns: {sorted(names)}); "
                          "expected score columns written by the classify stage")
    rows = sum(pq.read_metadata(p).num_rows for p in files)
    if rows < quality.buckets:
        raise ConfigError(f"shard.quality_buckets.buckets: {quality.buckets} buckets for {rows} documents; "
                          "expected at most one bucket per document")


def quality_summary(quality: QualityBucketConfig, edges: dict, descs: list[dict]) -> dict:
    """Bucket settings, edges per language and column, and rows/tokens per bucket (summed over shards)."""
    totals: dict[str, dict[str, int]] = {}
    for desc in descs:
        for bucket, counts in desc.get("by_quality_bucket", {}).items():
            entry = totals.setdefault(bucket, {"rows": 0, "tokens": 0})
            entry["rows"] += counts["rows"]
            entry["tokens"] += counts["tokens"]
    return {**quality.model_dump(mode="json"), "edges": edges,
            "totals": dict(sorted(totals.items(), key=lambda kv: int(kv[0]) if kv[0] != "null" else 1 << 30))}


def shard_name(i: int) -> str:
    return f"{SHARD_PREFIX}{i:05d}.parquet"




def _complete_set(output_dir: str, plan_key: str) -> dict | None:
    """The previous summary when it was written for this plan key and every shard is in place."""
    summary = io.read_json(os.path.join(output_dir, SHARD_SUMMARY))
    if not summary or summary.get("plan_key") != plan_key or summary.get("failures_by_reason"):
        return None  # a set with skipped inputs is recomputed: the failure may have been transient
    for s in summary.get("shards", []):
        full = os.path.join(output_dir, s["path"])
        if not io.isfile(full) or io.file_size(full) != s["bytes"]:
            return None
    return summary


def _run_all(refs: dict[Any, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Wait for every task; return results and errors by label (a failed task must not hide the others)."""
    from pipelines.runner import as_completed, task_error

    results, errors = {}, {}
    for label, result, err in as_completed(refs):
        if err is None:
            results[label] = result
        else:  # reported by the caller with the file it concerns
            errors[label] = f"{type(err).__name__}: {task_error(err)}"
    return results, errors


def _relabels(config: Config, scan_paths: list[str], n_shards: int) -> list[np.ndarray]:
    """Every file's label -> shard map: label loads from batched tasks, then ``relabel_files`` here."""
    from pipelines.runner import remote_task

    task = remote_task(label_loads, "shard.loads", config.ray)
    batches = [list(zip(scan_paths[i:i + LOADS_BATCH], range(i, i + LOADS_BATCH), strict=False))
               for i in range(0, len(scan_paths), LOADS_BATCH)]
    refs = {task.remote(b, n_shards, config.shard): str(k) for k, b in enumerate(batches)}
    results, errors = _run_all(refs)
    if errors:
        raise RuntimeError("shard: planning failed: " + "; ".join(errors.values()))
    loads = [v for k in range(len(batches)) for v in results[str(k)]]
    return relabel_files(loads, n_shards)


def run_shard_stage(config: Config, inputs: list[str], output_dir: str, progress: bool = True) -> dict:
    """The registry's entry point for the ``shard`` stage (driver: scan, plan, scatter/gather)."""
    del progress  # the shard phases report through the summary, not a progress bar
    return write_shards(config, inputs, output_dir)


def write_shards(config: Config, inputs: list[str], output_dir: str) -> dict:
    """Shuffle every kept document and write balanced shards ``shard-NNNNN.parquet``; return a summary."""
    from pipelines.runner import STAGE_FAILURES_NAME, remote_task

    cfg = config.shard
    started = time.perf_counter()
    if cfg.tokenizer and not io.isfile(cfg.tokenizer):
        raise ConfigError(f"shard.tokenizer: {cfg.tokenizer!r} is not a file; expected a tokenizer.json "
                          "(or null for the bytes/4 estimate)")
    files = io.expand_inputs(inputs, (".parquet",))
    failures: list[dict] = []
    readable = []
    for path in files:
        try:
            schema = io.read_parquet_schema(path)
        except Exception as err:  # an unreadable file is skipped and reported; a wrong schema stops the run
            failures.append({"stage": "shard", "file": path, "reason": "unreadable_input",
                             "detail": f"{type(err).__name__}: {str(err)[:300]}"})
            continue
        check_input_schema(schema, path)
        readable.append(path)
    counter = token_counter_info(cfg)
    quality = cfg.quality_buckets if cfg.quality_buckets.enabled else None
    if quality is not None:
        check_quality_inputs(quality, readable)
    fingerprints = [_fingerprint(p) for p in files]
    shard_cfg = cfg.model_dump(mode="json")
    plan_key = hashlib.sha256(json.dumps(
        {"v": PLAN_VERSION, "code": __version__, "inputs": fingerprints, "shard": shard_cfg, "counter": counter},
        sort_keys=True).encode()).hexdigest()

    io.ensure_dir(output_dir)
    io.remove_stale_tmp(output_dir)
    done = _complete_set(output_dir, plan_key)
    if done is not None:
        log.info("shard: complete shard set for plan %s reused", plan_key[:12])
        return {**done, "reused": True}

    work = os.path.join(output_dir, WORK_DIR)
    scan_dir = os.path.join(work, "scan")
    names = io.shard_names(files)
    scan_what = {**counter, "quality": quality.model_dump(mode="json")} if quality is not None else counter
    scan_paths = [os.path.join(scan_dir, f"{n}-{_scan_key(f, scan_what)}.npz") for n, f in zip(names, fingerprints,
                                                                                                 strict=True)]
    # step 1: scan
    scan = remote_task(scan_input, "shard.scan", config.ray)
    refs = {scan.remote(p, cfg.tokenizer, cfg.tokenizer_batch, c, config.ray.task_cpus, quality, cfg.rehydration): p
            for p, c in zip(files, scan_paths, strict=True) if p in readable}
    scanned, scan_errors = _run_all(refs)
    failures += [{"stage": "shard", "file": p, "reason": "scan_failed", "detail": e} for p, e in scan_errors.items()]
    for f in failures:
        log.error("shard: input %s skipped: %s", f["file"], f["detail"])
    used = [i for i, p in enumerate(files) if p in scanned]
    if io.isdir(scan_dir):  # keep the cache of current inputs only
        keep = {os.path.basename(scan_paths[i]) for i in used}
        for name in io.listdir(scan_dir):
            if name not in keep:
                io.remove(os.path.join(scan_dir, name))

    # step 2: plan: from per-file totals only; each file's rows are planned by its scatter task
    totals = [scanned[files[i]] for i in used]
    n = n_shards_for(cfg, sum(t["tokens"] for t in totals), sum(t["bytes"] for t in totals),
                     sum(t["expanded_rows"] for t in totals))
    edges = (buckets.bucket_edges(buckets.merge_histograms([t["histograms"] for t in totals]), quality)
             if quality is not None else None)
    # the layout also depends on which inputs could be scanned: a transient failure must not let a later
    # run reuse shards or scatter files of a different layout under the same plan key
    layout_key = hashlib.sha256(f"{plan_key}:{used}".encode()).hexdigest()

    # step 3: scatter / gather, skipping what a killed run of the same plan already finished
    stats_dir = os.path.join(output_dir, STATS_DIR)
    scatter_dir = os.path.join(work, f"scatter-{layout_key[:16]}")
    io.ensure_dir(stats_dir)
    complete: dict[int, dict] = {}
    for j in range(n):
        marker = io.read_json(os.path.join(stats_dir, shard_name(j) + ".json"))
        full = os.path.join(output_dir, shard_name(j))
        if (marker and marker.get("layout_key") == layout_key and io.isfile(full)
                and io.file_size(full) == marker["describe"]["bytes"]):
            complete[j] = marker["describe"]
    for old in io.listdir(output_dir):  # shards of an earlier layout must not linger next to the new set
        if old.startswith(SHARD_PREFIX) and old.endswith(".parquet") and old not in {
                shard_name(j) for j in range(n)}:
            io.remove(os.path.join(output_dir, old))
    for old in io.listdir(stats_dir):
        if old.startswith(SHARD_PREFIX) and int(old[len(SHARD_PREFIX):].split(".")[0]) not in complete:
            io.remove(os.path.join(stats_dir, old))

    todo = [j for j in range(n) if j not in complete]
    gather_results: dict[str, dict] = {}
    if todo:
        io.ensure_dir(scatter_dir)
        relabels = _relabels(config, [scan_paths[i] for i in used], n)
        scatter = remote_task(scatter_input, "shard.scatter", config.ray)
        markers: dict[str, dict] = {}
        refs = {}
        for k, i in enumerate(used):
            out = os.path.join(scatter_dir, f"{k:06d}-{names[i]}.parquet")
            marker = io.read_json(out + ".json")
            if marker and io.isfile(out) and io.file_size(out) == marker["size"]:
                markers[out] = marker
            else:
                refs[scatter.remote(files[i], scan_paths[i], k, n, relabels[k], cfg, out,
                                    (quality, edges) if quality is not None else None)] = out
        results, errors = _run_all(refs)
        if errors:
            raise RuntimeError("shard: scatter failed for " + "; ".join(f"{p}: {e}" for p, e in errors.items()))
        markers.update(results)
        gather = remote_task(gather_shard, "shard.gather", config.ray)
        refs = {}
        for j in todo:
            sources = [(p, m["row_groups"][str(j)], m["shard_rows"][str(j)]) for p, m in sorted(markers.items())
                       if str(j) in m["row_groups"]]
            refs[gather.remote(j, sources, os.path.join(output_dir, shard_name(j)), cfg,
                               os.path.join(stats_dir, shard_name(j) + ".json"), layout_key)] = shard_name(j)
        gather_results, errors = _run_all(refs)
        if errors:
            raise RuntimeError("shard: writing failed for " + "; ".join(f"{p}: {e}" for p, e in errors.items()))
    io.rmtree(scatter_dir)
    for name in io.listdir(work) if io.isdir(work) else []:
        if name.startswith("scatter-"):
            io.rmtree(os.path.join(work, name))

    shards, descs = [], []
    for j in range(n):
        desc = complete.get(j) or gather_results[shard_name(j)]
        descs.append(desc)
        shards.append({k: desc[k] for k in ("path", "rows", "tokens", "bytes", "sha256")})
    wall = round(time.perf_counter() - started, 3)
    docs_in = sum(t["rows"] for t in totals)
    docs_out = sum(s["rows"] for s in shards)
    shard_tokens = [s["tokens"] for s in shards]
    summary = {
        "stage": "shard",
        "docs_in": docs_in,
        "docs_out": docs_out,
        "docs_rejected": 0,
        "bytes_in": sum(t["bytes_in"] for t in totals),
        "tokens": sum(shard_tokens),
        "token_counter": _counter_label(counter),
        "token_counter_info": counter,
        "rehydration": ({"enabled": True, "weights": {str(k): v for k, v in cfg.rehydration.weights.items()},
                         "repeated_rows": docs_out - docs_in} if cfg.rehydration.enabled
                        else {"enabled": False}),
        "balance": cfg.balance,
        "shards": shards,
        "balance_max_over_min": balance_ratio(shard_tokens),
        "failures_by_reason": dict(sorted(Counter(f["reason"] for f in failures).items())),
        "inputs": files,
        "plan_key": plan_key,
        "wall_seconds": wall,
        "docs_per_s": round(docs_in / max(wall, 1e-9), 2),
        "shards_reused": len(complete),
    }
    if quality is not None:
        summary["quality_buckets"] = quality_summary(quality, edges or {}, descs)
    io.write_text_atomic(os.path.join(output_dir, STAGE_FAILURES_NAME),
                         "".join(json.dumps(f, sort_keys=True) + "\n" for f in failures))
    io.write_json_atomic(os.path.join(output_dir, SHARD_SUMMARY), summary)
    return summary
