"""Replay-aware mixtures: the replay components' share is reported, and warned about outside its range."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.mixture import parse_recipe, resolve_mixture


@pytest.fixture
def sources(tmp_path: Path) -> tuple[Path, Path]:
    pt, en = tmp_path / "pt.parquet", tmp_path / "en.parquet"
    pq.write_table(pa.table({"text": ["olá"] * 10, "token_count": [100] * 10}), pt)  # 1,000 tokens
    pq.write_table(pa.table({"text": ["hello"] * 5, "token_count": [100] * 5}), en)  # 500 tokens
    return pt, en


def _mix(tmp_path: Path, sources: tuple[Path, Path], replay_ratio: float) -> dict:
    recipe = parse_recipe({"name": "r", "target_tokens": 2000, "components": [
        {"name": "pt", "source": "parquet", "path": str(sources[0]), "ratio": 1 - replay_ratio},
        {"name": "en", "source": "parquet", "path": str(sources[1]), "ratio": replay_ratio, "replay": True}]})
    return resolve_mixture(recipe, output_dir=str(tmp_path / "mix"))


def test_replay_share_and_its_epochs(tmp_path: Path, sources: tuple[Path, Path]) -> None:
    mixture = _mix(tmp_path, sources, 0.25)
    replay = mixture["replay"]
    assert replay["components"] == ["en"] and replay["share"] == 0.25
    assert replay["tokens_taken"] == 500 and replay["epochs"] == 1.0
    assert replay["share_per_domain_epoch"] == [0.25, 0.25]  # pt: 1,500 of 1,000 tokens = 1.5 epochs
    assert not [w for w in mixture["warnings"] if "replay" in w]


def test_replay_share_outside_the_range_warns(tmp_path: Path, sources: tuple[Path, Path]) -> None:
    mixture = _mix(tmp_path, sources, 0.02)
    assert any("replay share 0.020 is outside replay_range [0.05, 0.5]" in w for w in mixture["warnings"])
