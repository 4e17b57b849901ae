import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import io


def test_expand_inputs_globs_dirs_and_missing(tmp_path):
    for name in ["b.warc.gz", "a.warc.gz", ".hidden.warc.gz", "notes.txt"]:
        (tmp_path / name).write_bytes(b"x")
    assert io.expand_inputs([str(tmp_path / "*.warc.gz")]) == [str(tmp_path / "a.warc.gz"), str(tmp_path / "b.warc.gz")]
    assert io.expand_inputs([str(tmp_path)], (".warc.gz",)) == [str(tmp_path / "a.warc.gz"), str(tmp_path / "b.warc.gz")]
    with pytest.raises(FileNotFoundError, match="input not found"):
        io.expand_inputs([str(tmp_path / "nope.warc.gz")])
    with pytest.raises(FileNotFoundError, match="matched no files"):
        io.expand_inputs([str(tmp_path / "*.parquet")])


def test_shard_names_are_stable_and_unique():
    names = io.shard_names(["/a/CC-1.warc.gz", "/b/CC-1.warc.gz", "/a/x.parquet"])
    assert names[2] == "x"
    assert names[0].startswith("CC-1-") and names[1].startswith("CC-1-") and names[0] != names[1]
    assert io.shard_names(["/a/CC-1.warc.gz", "/b/CC-1.warc.gz", "/a/x.parquet"]) == names


def test_atomic_writer_only_appears_when_closed(tmp_path):
    final = str(tmp_path / "out.parquet")
    w = io.AtomicParquetWriter(final)
    w.write(pa.table({"id": ["a"], "text": ["t"]}))
    assert not os.path.exists(final)
    w.abort()
    assert os.listdir(tmp_path) == []
    w = io.AtomicParquetWriter(final)
    w.write(pa.table({"id": ["a"], "text": ["t"]}))
    assert w.close() > 0 and os.path.exists(final)


def test_atomic_path_failure_leaves_nothing(tmp_path):
    final = str(tmp_path / "x.json")
    with pytest.raises(RuntimeError), io.atomic_path(final) as tmp:
        Path(tmp).write_text("partial")
        raise RuntimeError("killed")
    assert os.listdir(tmp_path) == []


def test_remove_stale_tmp(tmp_path):
    (tmp_path / ".tmp-1234-shard.parquet").write_bytes(b"half")
    (tmp_path / "shard.parquet").write_bytes(b"whole")
    assert io.remove_stale_tmp(str(tmp_path)) == 1
    assert os.listdir(tmp_path) == ["shard.parquet"]


def test_s3_inputs_are_listed_opened_and_sized(s3_server):
    """The reader side of object stores, against the session's local S3 server (moto, see conftest)."""
    fs = s3_server.filesystem()
    prefix = s3_server.bucket("inputs") + "/crawl"
    for name, data in {"b.warc.gz": b"bb", "a.warc.gz": b"a", "notes.txt": b"n"}.items():
        fs.pipe(f"{prefix}/{name}", data)
    assert io.expand_inputs([f"{prefix}/*.warc.gz"]) == [f"{prefix}/a.warc.gz", f"{prefix}/b.warc.gz"]
    with io.open_input(f"{prefix}/b.warc.gz") as fh:
        assert fh.read() == b"bb"
    assert io.input_size(f"{prefix}/b.warc.gz") == 2
    with pytest.raises(FileNotFoundError, match="matched no files"):
        io.expand_inputs([f"{prefix}/*.parquet"])


def test_a_stage_reads_its_parquet_input_from_s3(s3_server, tmp_path):
    from pipelines.config import parse_config
    from pipelines.filter import FilterStage

    local = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "text": ["x", "y"], "lang": ["en", "en"]}), local)
    url = s3_server.bucket("docs") + "/in.parquet"
    s3_server.filesystem().put_file(str(local), url)
    stats = FilterStage(parse_config({"filter": {"enabled": False}})).process_shard(url, str(tmp_path / "out"), "in")
    assert stats["docs_in"] == 2 and stats["docs_out"] == 2
