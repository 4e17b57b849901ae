"""The shard stage: kept documents, shuffled with a seed, cut into token-balanced Parquet shards.

Documents are shuffled globally, then cut where the running token total crosses each multiple of
total/N, so every shard holds N-th of the tokens to within one document. Token counts come from the
user's ``tokenizer.json`` (Hugging Face ``tokenizers``) or, without one, from a bytes/4 estimate.
"""

from __future__ import annotations

import math
import os
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines import io
from pipelines.config import Config, ShardConfig
from pipelines.schema import DOCUMENT_FIELDS, check_input_schema

BYTES_PER_TOKEN_ESTIMATE = 4  # typical for BPE vocabularies of 32k-128k on European web text
SHARD_SUMMARY = "_summary.json"


def count_tokens(texts: pa.ChunkedArray | pa.Array, tokenizer_path: str | None, batch: int = 1024) -> np.ndarray:
    """Tokens per text: exact with a tokenizer.json, else ceil(UTF-8 bytes / 4)."""
    if tokenizer_path is None:
        lengths = pc.fill_null(pc.binary_length(texts), 0).to_numpy(zero_copy_only=False)
        return np.ceil(lengths / BYTES_PER_TOKEN_ESTIMATE).astype(np.int64)
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tokenizer_path)
    values = [t or "" for t in texts.to_pylist()]
    out = np.zeros(len(values), dtype=np.int64)
    for start in range(0, len(values), batch):
        encs = tok.encode_batch(values[start : start + batch], add_special_tokens=False)
        out[start : start + len(encs)] = [len(e.ids) for e in encs]
    return out


def conform(table: pa.Table) -> pa.Table:
    """DESIGN.md columns first, with their types (null where a stage did not run), then extras."""
    cols, fields = [], []
    for f in DOCUMENT_FIELDS:
        if f.name in table.column_names:
            cols.append(table.column(f.name).cast(f.type))
        else:
            cols.append(pa.nulls(table.num_rows, f.type))
        fields.append(f)
    known = {f.name for f in DOCUMENT_FIELDS}
    for name in table.column_names:
        if name not in known:
            cols.append(table.column(name))
            fields.append(table.schema.field(name))
    return pa.Table.from_arrays(cols, schema=pa.schema(fields))


def plan_cuts(tokens: np.ndarray, n_shards: int) -> np.ndarray:
    """Row indices where shards start (plus the end), cutting the running total at multiples of total/N."""
    cum = np.cumsum(tokens)
    total = int(cum[-1]) if len(cum) else 0
    targets = (np.arange(1, n_shards) * total) / n_shards
    inner = np.searchsorted(cum, targets, side="left") + 1
    return np.concatenate([[0], np.minimum(inner, len(tokens)), [len(tokens)]]).astype(np.int64)


def n_shards_for(cfg: ShardConfig, total_tokens: int, total_bytes: int, rows: int) -> int:
    if cfg.num_shards:
        n = cfg.num_shards
    elif cfg.target_tokens:
        n = math.ceil(total_tokens / cfg.target_tokens)
    else:
        n = math.ceil(total_bytes / (cfg.target_bytes or 1))
    return max(1, min(n, max(rows, 1)))


def write_shards(config: Config, inputs: list[str], output_dir: str) -> dict:
    """Shuffle every kept document and write balanced shards ``shard-NNNNN.parquet``; return a summary."""
    cfg = config.shard
    started = time.perf_counter()
    files = io.expand_inputs(inputs, (".parquet",))
    for path in files:
        check_input_schema(pq.read_schema(path), path)
    tables = [conform(pq.read_table(p)) for p in files]
    table = pa.concat_tables(tables, promote_options="permissive") if tables else conform(
        pa.table({"id": pa.array([], pa.string()), "text": pa.array([], pa.string())})
    )
    tokens = count_tokens(table.column("text"), cfg.tokenizer)
    table = table.set_column(table.schema.get_field_index("token_count"), "token_count", pa.array(tokens))
    order = np.random.default_rng(cfg.seed).permutation(table.num_rows)
    table = table.take(pa.array(order, pa.int64()))
    tokens = tokens[order]
    text_bytes = int(pc.sum(pc.binary_length(table.column("text"))).as_py() or 0)
    n = n_shards_for(cfg, int(tokens.sum()), text_bytes, table.num_rows)
    cuts = plan_cuts(tokens, n)

    io.ensure_dir(output_dir)
    io.remove_stale_tmp(output_dir)
    for old in io.list_parquet(output_dir):  # a re-shard must not leave shards of an earlier layout
        if os.path.basename(old).startswith("shard-"):
            os.remove(old)
    compression = None if cfg.compression == "none" else cfg.compression
    shards = []
    for i in range(n):
        part = table.slice(int(cuts[i]), int(cuts[i + 1] - cuts[i]))
        name = f"shard-{i:05d}.parquet"
        size = io.write_table_atomic(os.path.join(output_dir, name), part, cfg.row_group_rows, compression)
        shards.append({"path": name, "rows": part.num_rows, "tokens": int(tokens[cuts[i] : cuts[i + 1]].sum()),
                       "bytes": size})
    shard_tokens = [s["tokens"] for s in shards if s["rows"]]
    summary = {
        "stage": "shard",
        "docs_in": table.num_rows,
        "docs_out": table.num_rows,
        "docs_rejected": 0,
        "bytes_in": text_bytes,
        "tokens": int(tokens.sum()),
        "token_counter": "tokenizer" if cfg.tokenizer else f"bytes/{BYTES_PER_TOKEN_ESTIMATE}",
        "shards": shards,
        "balance_max_over_min": round(max(shard_tokens) / max(min(shard_tokens), 1), 4) if shard_tokens else None,
        "wall_seconds": round(time.perf_counter() - started, 3),
        "inputs": files,
    }
    summary["docs_per_s"] = round(table.num_rows / max(summary["wall_seconds"], 1e-9), 2)
    io.write_json_atomic(os.path.join(output_dir, SHARD_SUMMARY), summary)
    return summary
