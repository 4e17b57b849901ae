"""Quality buckets, Nemotron-CC style: token-weighted percentile buckets of classifier scores, per language.

Why: trainers mix by quality band (Nemotron-CC: 20 buckets per classifier, a document gets the
highest of its classifiers' buckets), and a band is only meaningful relative to its language's
distribution. Bucket ``b`` of a column holds the documents whose score lies between the
``b/B`` and ``(b+1)/B`` token-weighted quantiles of that column in that language; 0 is the lowest.

Edges come from a two-pass histogram, never from all scores on the driver: pass one (the shard
stage's scan tasks) returns, per input file, a token-weighted histogram of each (language, column)
over ``bins`` fixed bins of ``score_range``; the driver sums them and cuts the cumulative sums at the
quantiles (``bucket_edges``, resolution ``1/bins`` of the range); pass two (the scatter tasks) writes
``quality_bucket`` with ``assign_buckets``. Buckets of several columns combine by max, mean (floor) or
one named column; a document without any of the scores gets a null bucket.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.config import QualityBucketConfig

BUCKET_COLUMN = "quality_bucket"
ALL_LANGUAGES = "all"  # the group label when buckets are not per language


def language_groups(table: pa.Table, cfg: QualityBucketConfig) -> tuple[np.ndarray, list[str]]:
    """(group index of each row, group labels): the row's ``lang`` (``und`` when null), or one group."""
    if not cfg.per_language or "lang" not in table.column_names:
        return np.zeros(table.num_rows, dtype=np.int64), [ALL_LANGUAGES]
    encoded = pc.fill_null(table.column("lang"), "und").combine_chunks().dictionary_encode()
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), encoded.dictionary.to_pylist()


def _scores(table: pa.Table, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(scores as float64, valid mask)."""
    arr = table.column(column)
    valid = pc.is_valid(arr).to_numpy(zero_copy_only=False)
    return pc.fill_null(arr.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False), valid


def _bin_of(values: np.ndarray, cfg: QualityBucketConfig) -> np.ndarray:
    lo, hi = cfg.score_range
    return np.clip(np.floor((values - lo) / (hi - lo) * cfg.bins), 0, cfg.bins - 1).astype(np.int64)


def histograms(table: pa.Table, tokens: np.ndarray, cfg: QualityBucketConfig) -> dict[str, np.ndarray]:
    """``"<lang>\\t<column>"`` -> tokens per score bin, for the columns this table has (pass one)."""
    groups, labels = language_groups(table, cfg)
    out: dict[str, np.ndarray] = {}
    for column in cfg.columns:
        if column not in table.column_names:
            continue
        values, valid = _scores(table, column)
        key = groups * cfg.bins + _bin_of(values, cfg)
        counts = np.bincount(key[valid], weights=tokens[valid], minlength=len(labels) * cfg.bins)
        for g, lang in enumerate(labels):
            hist = counts[g * cfg.bins : (g + 1) * cfg.bins]
            if hist.any():
                out[f"{lang}\t{column}"] = hist
    return out


def merge_histograms(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    total: dict[str, np.ndarray] = {}
    for part in parts:
        for key, hist in part.items():
            total[key] = total[key] + hist if key in total else hist.astype(np.float64)
    return total


def bucket_edges(hists: dict[str, np.ndarray], cfg: QualityBucketConfig) -> dict[str, dict[str, list[float]]]:
    """lang -> column -> the ``buckets - 1`` scores where buckets 1.. start (token-weighted quantiles)."""
    lo, hi = cfg.score_range
    width = (hi - lo) / cfg.bins
    edges: dict[str, dict[str, list[float]]] = {}
    for key, hist in sorted(hists.items()):
        lang, column = key.split("\t")
        cum = np.cumsum(hist)
        targets = cum[-1] * np.arange(1, cfg.buckets) / cfg.buckets
        first_bin = np.searchsorted(cum, targets - 1e-9 * cum[-1], side="left")
        edges.setdefault(lang, {})[column] = [round(lo + (int(k) + 1) * width, 12) for k in first_bin]
    return edges


def assign_buckets(table: pa.Table, edges: dict[str, dict[str, list[float]]],
                   cfg: QualityBucketConfig) -> pa.Array:
    """The ``quality_bucket`` of each row (int16, null without scores): each column's bucket, combined."""
    groups, labels = language_groups(table, cfg)
    n = table.num_rows
    per_column: dict[str, np.ndarray] = {}  # -1 = no bucket
    for column in cfg.columns:
        bucket = np.full(n, -1, dtype=np.int64)
        if column in table.column_names:
            values, valid = _scores(table, column)
            # compare at bin resolution, so a score falls on the side of an edge its histogram bin did
            lo, hi = cfg.score_range
            binned = lo + (_bin_of(values, cfg) + 0.5) * (hi - lo) / cfg.bins
            for g, lang in enumerate(labels):
                cuts = edges.get(lang, {}).get(column)
                rows = (groups == g) & valid
                if cuts is not None and rows.any():
                    bucket[rows] = np.searchsorted(np.asarray(cuts), binned[rows], side="right")
        per_column[column] = bucket
    stacked = np.stack([per_column[c] for c in cfg.columns])
    has = stacked >= 0
    if cfg.combine == "max":
        combined = stacked.max(axis=0)
    elif cfg.combine == "mean":
        combined = np.floor(np.where(has, stacked, 0).sum(axis=0) / np.maximum(has.sum(axis=0), 1)).astype(np.int64)
        combined[~has.any(axis=0)] = -1
    else:
        combined = per_column[cfg.combine]
    return pa.array(combined, pa.int16(), mask=combined < 0)


def bucket_totals(table: pa.Table, tokens: np.ndarray) -> dict[str, dict[str, int]]:
    """rows and tokens per ``quality_bucket`` value (``null`` for none), for shard descriptions."""
    buckets = pc.fill_null(table.column(BUCKET_COLUMN).cast(pa.int64()), -1).to_numpy(zero_copy_only=False) + 1
    rows = np.bincount(buckets)
    toks = np.bincount(buckets, weights=tokens, minlength=len(rows))
    return {("null" if b == 0 else str(b - 1)): {"rows": int(rows[b]), "tokens": int(toks[b])}
            for b in [*range(1, len(rows)), 0] if rows[b]}
