"""manifest.json: schema, totals, determinism, and `validate` catching damaged or missing shards."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import jsonschema
import pytest

from pipelines import io
from pipelines.cli import main
from pipelines.config import parse_config
from pipelines.manifest import MANIFEST_SCHEMA, build_manifest, validate_manifest
from pipelines.shard import write_shards
from tests.test_shard import make_inputs

pytestmark = pytest.mark.usefixtures("ray_session")  # stages use the session's runtime

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "docs" / "manifest.schema.json"


def _run(run_dir: Path, inputs: list[str]) -> dict:
    """shard + manifest in ``run_dir`` with fake upstream stage summaries (as `cptcorpus run` leaves them)."""
    cfg = parse_config({"name": "m", "output": str(run_dir), "shard": {"num_shards": 3}})
    io.write_json_atomic(str(run_dir / "extract" / "_summary.json"), {
        "stage": "extract", "docs_in": 1000, "docs_out": 950, "docs_rejected": 50, "reasons": {"http_status": 50},
        "inputs": ["CC-MAIN-2024-10/a.warc.gz", "CC-MAIN-2024-10/b.warc.gz"], "wall_seconds": 3.2})
    io.write_json_atomic(str(run_dir / "dedup" / "_summary.json"), {
        "stage": "dedup", "docs_in": 950, "docs_out": 900, "docs_rejected": 50, "wall_seconds": 1.0})
    write_shards(cfg, inputs, cfg.stage_dir("shard"))
    return build_manifest(cfg, cfg.stage_dir("manifest"))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict, list[str]]:
    tmp = tmp_path_factory.mktemp("manifest")
    inputs = make_inputs(tmp / "in")
    manifest = _run(tmp / "run", inputs)
    return tmp / "run" / "corpus", manifest, inputs


def test_manifest_matches_its_schema_and_the_published_schema_file(built):
    _, manifest, _ = built
    jsonschema.Draft202012Validator.check_schema(MANIFEST_SCHEMA)
    jsonschema.validate(manifest, MANIFEST_SCHEMA)
    assert json.loads(SCHEMA_FILE.read_text()) == MANIFEST_SCHEMA, "regenerate docs/manifest.schema.json"


def test_manifest_totals_languages_scores_and_lineage(built):
    corpus, manifest, _ = built
    ds = manifest["datasets"][0]
    assert ds["totals"]["rows"] == 900 == sum(s["rows"] for s in ds["shards"])
    assert ds["totals"]["shards"] == 3 and ds["balance_max_over_min"] <= 1.02
    assert sum(v["rows"] for v in ds["by_language"].values()) == 900
    assert set(ds["by_language"]) == {"pt", "en", "es"}
    assert set(ds["by_score"]) == {"edu_score", "stem_score"}  # toxic_score was never computed
    edu = ds["by_score"]["edu_score"]
    assert sum(v["tokens"] for v in edu.values()) == ds["totals"]["tokens"]
    assert set(edu) <= {f"{i / 10:g}-{(i + 1) / 10:g}" for i in range(10)}
    assert set(ds["by_dup_cluster_size"]) == {"1", "2", "3-4", "5-8"}
    assert ds["token_counter"] == {"kind": "bytes_estimate", "bytes_per_token": 4}
    lineage = manifest["lineage"]
    assert lineage["inputs"] == ["CC-MAIN-2024-10/a.warc.gz", "CC-MAIN-2024-10/b.warc.gz"]
    assert lineage["stages"]["extract"]["reasons"] == {"http_status": 50}
    assert "wall_seconds" not in lineage["stages"]["extract"]
    assert manifest["nondeterministic"]["stage_timings"]["extract"]["wall_seconds"] == 3.2
    assert len(lineage["config_sha256"]) == 64 and lineage["config"]["shard"]["num_shards"] == 3
    assert validate_manifest(str(corpus / "manifest.json")) == []


def test_two_identical_runs_differ_only_under_nondeterministic(built, tmp_path):
    corpus, first, inputs = built
    shutil.rmtree(corpus)  # same run directory, same config: everything recomputed from scratch
    second = _run(corpus.parent, inputs)
    first, second = dict(first), dict(second)
    first.pop("nondeterministic")
    second.pop("nondeterministic")
    assert first == second


@pytest.fixture
def copy(built, tmp_path) -> Path:
    corpus, _, _ = built
    shutil.copytree(corpus, tmp_path / "corpus")
    return tmp_path / "corpus"


def test_validate_catches_a_corrupted_shard(copy, capsys):
    path = copy / "shard-00001.parquet"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    problems = validate_manifest(str(copy / "manifest.json"))
    assert any(p.startswith("shard-00001.parquet: CHECKSUM") for p in problems), problems
    assert main(["validate", str(copy / "manifest.json")]) == 1
    assert "CHECKSUM" in capsys.readouterr().out


def test_validate_catches_a_missing_shard(copy):
    os.remove(copy / "shard-00002.parquet")
    problems = validate_manifest(str(copy / "manifest.json"))
    assert problems == [f"shard-00002.parquet: MISSING — listed in the manifest but not found at "
                        f"{copy / 'shard-00002.parquet'}"]


def test_validate_catches_a_wrong_row_count_and_bad_totals(copy):
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["datasets"][0]["shards"][0]["rows"] += 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    problems = validate_manifest(str(copy / "manifest.json"))
    assert any(p.startswith("shard-00000.parquet: ROWS — file has") for p in problems), problems
    assert any("totals.rows" in p for p in problems)


def test_validate_catches_an_unlisted_shard_and_a_truncated_file(copy):
    shutil.copy(copy / "shard-00000.parquet", copy / "shard-00009.parquet")
    path = copy / "shard-00001.parquet"
    path.write_bytes(path.read_bytes()[:100])
    problems = validate_manifest(str(copy / "manifest.json"))
    assert any(p.startswith("shard-00009.parquet: UNLISTED") for p in problems)
    assert any(p.startswith("shard-00001.parquet: SIZE") for p in problems)
    assert any(p.startswith("shard-00001.parquet: UNREADABLE") for p in problems)


def test_validate_reports_schema_errors_and_bad_json(copy):
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["lineage"]
    manifest["datasets"][0]["shards"][0]["sha256"] = "xyz"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    problems = validate_manifest(str(copy / "manifest.json"))
    assert any("'lineage' is a required property" in p for p in problems)
    assert any("at datasets/0/shards/0/sha256" in p for p in problems)
    (copy / "manifest.json").write_text("{not json")
    assert "not valid JSON" in validate_manifest(str(copy / "manifest.json"))[0]
