import os
from pathlib import Path

import pyarrow as pa
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
