"""`runner.run_chain`: several per-shard stages as one Ray task per input file.

A chain must leave exactly what the stages leave when run one by one: the same files, stats and
summaries; a shard that fails in the middle is reported by the stage it failed in, and a re-run
starts each shard at its first incomplete stage.
"""

from __future__ import annotations

import json
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import ray

from pipelines import io
from pipelines.config import Config
from pipelines.runner import run_chain
from pipelines.stage import Stage

pytestmark = pytest.mark.usefixtures("ray_session")
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the test stages run in Ray workers


class AppendStage(Stage):
    """Appends its name to every text; raises on the shard named ``fail_on`` (a bug on one input)."""

    input_suffixes = (".parquet",)

    def __init__(self, config: Config, name: str, fail_on: str | None = None) -> None:
        super().__init__(config)
        self.name, self.fail_on = name, fail_on

    def process_shard(self, input_path: str, output_dir: str, shard: str) -> dict:
        if shard == self.fail_on:
            raise ValueError(f"{self.name} cannot read {shard}")
        table = pq.read_table(input_path)
        table = table.set_column(0, "text", pc.binary_join_element_wise(table.column("text"), self.name, "+"))
        out = io.ShardOutput(output_dir, shard, table.schema)
        out.kept.write(table)
        out.rejected.schema = table.schema
        return {"docs_in": table.num_rows, "docs_out": table.num_rows, "docs_rejected": 0, "outputs": out.close()}


@pytest.fixture
def inputs(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for k in range(3):
        pq.write_table(pa.table({"text": [f"doc{k}-{i}" for i in range(4)]}), src / f"s{k}.parquet")
    return [str(src / "*.parquet")]


def _chain(tmp_path, fail_on=None):
    config = Config(name="chain", output=str(tmp_path / "run"))
    stages = [AppendStage(config, "a"), AppendStage(config, "b", fail_on=fail_on), AppendStage(config, "c")]
    return stages, [str(tmp_path / "run" / s.name) for s in stages]


def test_chain_output_equals_the_stages_run_one_by_one(tmp_path, inputs):
    stages, dirs = _chain(tmp_path)
    summaries = run_chain(stages, inputs, dirs, Config(name="x").ray, progress=False)
    assert [s["shards"]["processed"] for s in summaries] == [3, 3, 3]
    assert all(s["fused_with"] == ["a", "b", "c"] for s in summaries)
    assert pq.read_table(tmp_path / "run" / "c" / "s1.parquet").column("text").to_pylist() == [
        f"doc1-{i}+a+b+c" for i in range(4)
    ]
    for d in dirs:  # each stage's own summary and failures file, as a stage run alone writes them
        assert json.loads((tmp_path / "run" / d.rsplit("/", 1)[1] / "_summary.json").read_text())["docs_in"] == 12


def test_a_shard_failing_mid_chain_is_reported_by_its_stage_and_resumed_there(tmp_path, inputs):
    stages, dirs = _chain(tmp_path, fail_on="s1")
    a, b, c = run_chain(stages, inputs, dirs, Config(name="x").ray, progress=False)
    assert a["shards"] == {"total": 3, "skipped_complete": 0, "processed": 3, "failed": 0}
    assert b["shards"]["failed"] == 1 and b["failed_shards"][0]["shard"] == "s1"
    assert b["failed_shards"][0]["reason"] == "shard_failed:ValueError"
    assert c["shards"] == {"total": 2, "skipped_complete": 0, "processed": 2, "failed": 0}
    assert not (tmp_path / "run" / "c" / "s1.parquet").exists()
    assert "s1" in (tmp_path / "run" / "b" / "_failures.jsonl").read_text()

    stages, dirs = _chain(tmp_path)  # the bug fixed: only s1 runs, from stage b on
    a, b, c = run_chain(stages, inputs, dirs, Config(name="x").ray, progress=False)
    assert a["shards"]["skipped_complete"] == 3
    assert b["shards"] == {"total": 3, "skipped_complete": 2, "processed": 1, "failed": 0}
    assert c["shards"] == {"total": 3, "skipped_complete": 2, "processed": 1, "failed": 0}
    assert pq.read_table(tmp_path / "run" / "c" / "s1.parquet").column("text")[0].as_py() == "doc1-0+a+b+c"
