"""Every real archive in ../shared/data/warc (edge cases included) is read or reported, never a crash."""

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.config import parse_config
from pipelines.extract import ExtractStage
from pipelines.runner import run_shards
from tests.conftest import SHARED_WARC

pytestmark = [pytest.mark.shared_data, pytest.mark.usefixtures("ray_session"),
              pytest.mark.skipif(not SHARED_WARC.is_dir(), reason="../shared/data/warc is absent")]

# What each edge case is, and the outcome we expect from it.
EXPECTED_FAILURES = {
    "clipped.warc.gz": "truncated_gzip",
    # example-bad.warc.gz.bad (one gzip member for all records, no .gz suffix) is read: compression is sniffed
    "example-trunc.warc": "warc_read_error",
}


def test_every_shared_file_is_read_or_reported(tmp_path):
    files = sorted(str(p) for p in SHARED_WARC.rglob("*") if p.is_file() and p.name != "NOTICE.md")
    cfg = parse_config({"name": "shared", "output": str(tmp_path / "run"), "ray": {"max_retries": 0}})
    out = str(tmp_path / "extract")
    summary = run_shards(ExtractStage(cfg), files, out, cfg.ray, progress=False)
    assert summary["shards"] == {"total": len(files), "skipped_complete": 0, "processed": len(files), "failed": 0}
    failures = [json.loads(line) for line in Path(out, "_failures.jsonl").read_text().splitlines()]
    file_failures = {f["file"].rsplit("/", 1)[-1]: f["reason"] for f in failures if f["record"] is None}
    assert file_failures == EXPECTED_FAILURES
    assert all(f["reason"] and f["file"] for f in failures)
    assert summary["docs_out"] > 90  # the CC, IA and wget archives hold ~100 extractable HTML pages
    assert summary["docs_in"] == summary["docs_out"] + summary["docs_rejected"]
    arc = pq.read_table(f"{out}/example.parquet")  # the ARC file is read through warcio
    assert arc.num_rows == 1 and arc.column("url")[0].as_py() == "http://example.com/"
    clipped = pq.read_table(f"{out}/rejected/clipped.parquet")  # the record the file ends in is not kept
    assert clipped.column("reject_reason").to_pylist() == ["truncated_record"]
