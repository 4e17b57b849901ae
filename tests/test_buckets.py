"""Quality buckets: token-weighted percentiles per language from summed histograms, written by the shard stage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pipelines.buckets import assign_buckets, bucket_edges, histograms, merge_histograms
from pipelines.config import ConfigError, QualityBucketConfig, parse_config
from pipelines.filterexpr import compile_filter
from pipelines.shard import write_shards


def _table(n: int, seed: int = 0) -> tuple[pa.Table, np.ndarray]:
    rng = np.random.default_rng(seed)
    lang = np.where(np.arange(n) % 2 == 0, "pt", "en")
    # Portuguese scores in [0, 0.5), English in [0.5, 1): per-language buckets must still span 0..B-1
    edu = np.where(lang == "pt", rng.random(n) * 0.5, 0.5 + rng.random(n) * 0.5)
    stem = rng.random(n)
    tokens = rng.integers(50, 500, size=n)
    table = pa.table({"id": [f"d{i}" for i in range(n)], "text": ["x" * (4 * int(t)) for t in tokens],
                      "lang": lang.tolist(), "edu_score": edu.astype(np.float32), "stem_score": stem.astype(np.float32)})
    return table, tokens


def _token_shares(buckets: np.ndarray, tokens: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(buckets, weights=tokens, minlength=k) / tokens.sum()


def test_token_weighted_percentiles_per_language_from_summed_histograms() -> None:
    cfg = QualityBucketConfig(enabled=True, columns=["edu_score"], buckets=20)
    table, tokens = _table(20_000)
    halves = [histograms(table.slice(0, 9_000), tokens[:9_000], cfg),
              histograms(table.slice(9_000), tokens[9_000:], cfg)]
    edges = bucket_edges(merge_histograms(halves), cfg)
    assert set(edges) == {"pt", "en"} and len(edges["pt"]["edu_score"]) == 19
    assert edges["pt"]["edu_score"][-1] < 0.5 < edges["en"]["edu_score"][0]
    buckets = assign_buckets(table, edges, cfg).to_numpy(zero_copy_only=False).astype(np.int64)
    for lang in ("pt", "en"):
        rows = np.asarray(table.column("lang").to_pylist()) == lang
        shares = _token_shares(buckets[rows], tokens[rows], 20)
        assert np.allclose(shares, 1 / 20, atol=0.01), shares  # each bucket ~5% of the language's tokens


def test_long_documents_weigh_more_than_short_ones() -> None:
    cfg = QualityBucketConfig(enabled=True, columns=["edu_score"], buckets=2, per_language=False)
    table = pa.table({"edu_score": [0.1, 0.2, 0.3, 0.9], "lang": ["pt"] * 4})
    tokens = np.array([10, 10, 10, 1000])
    edges = bucket_edges(histograms(table, tokens, cfg), cfg)
    assert assign_buckets(table, edges, cfg).to_pylist() == [0, 0, 0, 0]  # the long doc is the median itself
    by_rows = bucket_edges(histograms(table, np.ones(4), cfg), cfg)
    assert assign_buckets(table, by_rows, cfg).to_pylist() == [0, 0, 1, 1]


@pytest.mark.parametrize("combine, expected", [("max", [3, 2, None]), ("mean", [1, 1, None]), ("stem_score", [3, 0, None])])
def test_combining_classifiers(combine: str, expected: list) -> None:
    cfg = QualityBucketConfig(enabled=True, columns=["edu_score", "stem_score"], buckets=4, combine=combine,
                              per_language=False)
    edges = {"all": {"edu_score": [0.25, 0.5, 0.75], "stem_score": [0.25, 0.5, 0.75]}}
    table = pa.table({"edu_score": [0.1, 0.6, None], "stem_score": [0.9, 0.2, None]})
    assert assign_buckets(table, edges, cfg).to_pylist() == expected


def test_bucket_config_errors() -> None:
    with pytest.raises(ConfigError, match="combine 'toxic'"):
        parse_config({"shard": {"quality_buckets": {"columns": ["edu_score"], "combine": "toxic"}}})


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    table, _ = _table(400)
    path = tmp_path / "in"
    path.mkdir()
    pq.write_table(table.slice(0, 250), path / "a.parquet")
    pq.write_table(table.slice(250), path / "b.parquet")
    return path


def test_shard_stage_writes_buckets_and_records_edges_and_totals(tmp_path: Path, corpus: Path, ray_session) -> None:
    config = parse_config({"name": "q", "output": str(tmp_path / "run"), "shard": {
        "num_shards": 2, "quality_buckets": {"enabled": True, "columns": ["edu_score", "stem_score"]}}})
    summary = write_shards(config, [str(corpus)], str(tmp_path / "corpus"))
    quality = summary["quality_buckets"]
    assert set(quality["edges"]) == {"pt", "en"} and len(quality["edges"]["en"]["stem_score"]) == 19
    assert sum(v["rows"] for v in quality["totals"].values()) == 400
    shards = pa.concat_tables([pq.read_table(tmp_path / "corpus" / s["path"]) for s in summary["shards"]])
    buckets = shards.column("quality_bucket")
    assert buckets.null_count == 0 and pc.max(buckets).as_py() == 19
    top = shards.filter(compile_filter("quality_bucket >= 15").expression)  # what a mixture recipe selects
    assert 0 < top.num_rows < shards.num_rows


def test_more_buckets_than_documents_fails_before_work(tmp_path: Path, corpus: Path) -> None:
    config = parse_config({"shard": {"quality_buckets": {"enabled": True, "buckets": 1000}}})
    with pytest.raises(ConfigError, match="1000 buckets for 400 documents"):
        write_shards(config, [str(corpus)], str(tmp_path / "corpus"))
    config = parse_config({"shard": {"quality_buckets": {"enabled": True, "columns": ["nope_score"],
                                                         "combine": "max"}}})
    with pytest.raises(ConfigError, match="nope_score"):
        write_shards(config, [str(corpus)], str(tmp_path / "corpus"))
