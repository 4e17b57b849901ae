"""`cptcorpus run` end to end on the bundled sample, through the local Ray runtime, and resume."""

from __future__ import annotations

import json
import os
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from pipelines.cli import main
from pipelines.manifest import validate_manifest
from pipelines.schema import DOCUMENT_SCHEMA

pytestmark = pytest.mark.usefixtures("ray_session")


def _config(tmp_path, sample_dir, name="e2e", **sections) -> str:
    data = {"name": name, "output": str(tmp_path / name), "input": [str(sample_dir / "*.warc.gz")],
            "langid": {"languages": ["pt", "en", "es", "de"]}, "shard": {"num_shards": 2}}
    data.update(sections)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, sample_dir):
    tmp = tmp_path_factory.mktemp("e2e")
    cfg = _config(tmp, sample_dir)
    assert main(["run", "--config", cfg, "--no-progress"]) == 0
    return tmp / "e2e", cfg


def _summary(run, stage):
    with open(run / stage / "_summary.json") as fh:
        return json.load(fh)


def test_run_writes_every_stage_and_a_valid_corpus(demo_run):
    run, _ = demo_run
    assert (run / "config.resolved.yaml").is_file() and (run / "failures.jsonl").is_file()
    extract = _summary(run, "extract")
    assert extract["shards"]["total"] == 4 and extract["shards"]["failed"] == 0
    assert extract["docs_in"] == extract["docs_out"] + extract["docs_rejected"]
    assert extract["docs_out"] > 100 and extract["docs_rejected"] > 5
    langid = _summary(run, "langid")
    assert langid["docs_in"] == extract["docs_out"]
    assert langid["docs_in"] == langid["docs_out"] + langid["docs_rejected"]
    assert set(langid["counters"]["lang"]) >= {"pt", "en", "es", "de"}
    corpus = pa.concat_tables(pq.read_table(p) for p in sorted((run / "corpus").glob("shard-*.parquet")))
    design_columns = [n for n in corpus.schema.names if n in DOCUMENT_SCHEMA.names]
    assert design_columns == DOCUMENT_SCHEMA.names  # README order: lang_top sits after lang_score
    assert corpus.schema.names[: len(DOCUMENT_SCHEMA) + 1] == [*DOCUMENT_SCHEMA.names[:10], "lang_top",
                                                               *DOCUMENT_SCHEMA.names[10:]]
    assert set(corpus.column("lang").to_pylist()) <= {"pt", "en", "es", "de"}
    assert corpus.num_rows == _summary(run, "dedup")["docs_out"]
    assert len(set(corpus.column("id").to_pylist())) == corpus.num_rows
    assert validate_manifest(str(run / "corpus" / "manifest.json")) == []


def test_fused_run_leaves_what_the_stages_one_by_one_leave(demo_run, tmp_path, sample_dir):
    run, _ = demo_run  # ray.fuse_stages is on by default
    assert _summary(run, "filter")["fused_with"] == ["extract", "langid", "filter", "classify"]
    cfg = _config(tmp_path, sample_dir, name="unfused", ray={"fuse_stages": False})
    assert main(["run", "--config", cfg, "--no-progress", "--to-stage", "classify"]) == 0
    other = tmp_path / "unfused"
    for stage in ("extract", "langid", "filter", "classify"):
        assert "fused_with" not in _summary(other, stage)
        for key in ("docs_in", "docs_out", "docs_rejected", "reasons", "shards"):
            assert _summary(run, stage)[key] == _summary(other, stage)[key], (stage, key)
        assert ([os.path.basename(p) for p in _summary(run, stage)["inputs"]]
                == [os.path.basename(p) for p in _summary(other, stage)["inputs"]]), stage
        names = sorted(p.name for p in (run / stage).glob("*.parquet"))
        assert names and names == sorted(p.name for p in (other / stage).glob("*.parquet"))
        for name in names:
            for sub in ("", "rejected/"):
                a, b = pq.read_table(run / stage / f"{sub}{name}"), pq.read_table(other / stage / f"{sub}{name}")
                assert a.equals(b), (stage, sub, name)


def test_run_plan_fuses_per_shard_stages_but_not_gpu_classify():
    from pipelines.cli import plan_run
    from pipelines.config import STAGES, parse_config

    plain = parse_config({"name": "p"})
    assert plan_run(plain, list(STAGES)) == [["extract", "langid", "filter", "classify"], ["dedup"],
                                            ["decontaminate"], ["shard"], ["tokenize"], ["manifest"]]
    assert plan_run(plain, ["filter", "classify", "dedup"]) == [["filter", "classify"], ["dedup"]]
    gpu = parse_config({"name": "g", "classify": {"num_gpus": 1}})
    assert plan_run(gpu, list(STAGES))[:2] == [["extract", "langid", "filter"], ["classify"]]
    off = parse_config({"name": "o", "ray": {"fuse_stages": False}})
    assert all(len(g) == 1 for g in plan_run(off, list(STAGES)))


def test_resume_recomputes_only_the_missing_shard(demo_run, tmp_path):
    run, cfg = demo_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    langid_dir = copy / "langid"
    before = {p: pq.read_table(langid_dir / p) for p in sorted(os.listdir(langid_dir)) if p.endswith(".parquet")}
    victim = sorted(before)[1]
    os.remove(langid_dir / victim)
    assert main(["langid", "--config", cfg, "--input", str(copy / "extract"), "--output", str(langid_dir),
                 "--no-progress"]) == 0
    summary = _summary(copy, "langid")
    assert summary["shards"] == {"total": 4, "skipped_complete": 3, "processed": 1, "failed": 0}
    for name, table in before.items():
        assert pq.read_table(langid_dir / name).equals(table), name


def test_missing_text_column_fails_before_any_work(tmp_path, sample_dir):
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"id": ["a"], "body": ["x"]}), bad)
    cfg = _config(tmp_path, sample_dir, name="bad")
    assert main(["filter", "--config", cfg, "--input", str(bad), "--output", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out" / "bad.parquet").exists()


def test_bad_config_exits_with_a_clear_message(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("langid:\n  threshold: high\n")
    assert main(["langid", "--config", str(path)]) == 2
    assert "langid.threshold: got 'high'" in capsys.readouterr().err


def test_strict_mode_fails_with_the_list_of_skipped_files(tmp_path, sample_dir, capsys):
    broken = tmp_path / "inputs"
    broken.mkdir()
    (broken / "not-a-warc.warc.gz").write_bytes(b"garbage, not a WARC" * 10)
    shutil.copy(sorted(sample_dir.glob("*.warc.gz"))[0], broken / "good.warc.gz")
    cfg = _config(tmp_path, sample_dir, name="strict")
    args = ["extract", "--config", cfg, "--input", str(broken), "--output", str(tmp_path / "x"), "--no-progress"]
    assert main(args) == 0  # without --strict the run goes on and reports
    assert main([*args, "--strict"]) == 3
    err = capsys.readouterr().err
    assert "skipped: " in err and "not-a-warc.warc.gz" in err
