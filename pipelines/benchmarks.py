"""Evaluation sets read from local files: the items the decontaminate stage looks for.

A benchmark is a JSONL, Parquet or CSV file, or a directory written by Hugging Face ``datasets``'
``save_to_disk`` (Arrow stream files listed in ``state.json``; read with pyarrow, so ``datasets``
need not be installed). Each item's text is its configured fields joined with spaces; a field may be
nested (``choices.text``) or a list (multiple-choice options), whose values are joined too.
Every problem (missing file, missing field, no items) is a ``ConfigError`` raised before any work.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipelines.config import BenchmarkConfig, ConfigError

_SUFFIX_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".csv": "csv"}


def read_benchmark(bench: BenchmarkConfig) -> tuple[list[str], list[str]]:
    """``(item ids, item texts)`` of one benchmark, in file order."""
    where = f"decontaminate.benchmarks[{bench.name}]"
    path = Path(bench.path)
    if not path.exists():
        raise ConfigError(f"{where}.path: {bench.path} does not exist; expected a JSONL, Parquet or CSV file "
                          "or a directory written by datasets' save_to_disk")
    fmt = bench.format if bench.format != "auto" else _guess_format(path, where)
    rows = _read_rows(path, fmt, bench, where)
    if not rows:
        raise ConfigError(f"{where}.path: {bench.path} has no items; expected at least one row")
    keys = set().union(*(r.keys() for r in rows[:1000]))
    wanted = [f.split(".", 1)[0] for f in bench.fields] + ([bench.id_field] if bench.id_field else [])
    missing = [f for f in wanted if f not in keys]
    if missing:
        raise ConfigError(f"{where}.fields: {bench.path} has no field(s) {missing}; "
                          f"its fields are {sorted(keys)}")
    ids = [str(r.get(bench.id_field)) if bench.id_field else str(i) for i, r in enumerate(rows)]
    texts = [" ".join(t for t in (field_text(_get(r, f)) for f in bench.fields) if t) for r in rows]
    return ids, texts


def field_text(value: Any) -> str:
    """A field's text: strings as they are, lists and dicts as their values joined with spaces."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list | tuple):
        return " ".join(t for t in map(field_text, value) if t)
    return str(value)


def _get(row: dict, dotted: str) -> Any:
    value: Any = row
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _guess_format(path: Path, where: str) -> str:
    if path.is_dir():
        return "hf"
    fmt = _SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"{where}.format: cannot tell the format of {path} from its suffix; "
                          "set format to jsonl, parquet, csv or hf")
    return fmt


def _read_rows(path: Path, fmt: str, bench: BenchmarkConfig, where: str) -> list[dict]:
    try:
        if fmt == "jsonl":
            return _read_jsonl(path, where)
        if fmt == "parquet":
            return pq.read_table(path).to_pylist()
        if fmt == "csv":
            return pacsv.read_csv(path).to_pylist() if path.stat().st_size else []
        return _read_saved_dataset(path, bench.split, where).to_pylist()
    except (pa.ArrowInvalid, OSError) as err:
        raise ConfigError(f"{where}.path: cannot read {path} as {fmt}: {err}") from None


def _read_jsonl(path: Path, where: str) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ConfigError(f"{where}.path: {path} line {number} is not JSON: {err}") from None
            if not isinstance(row, dict):
                raise ConfigError(f"{where}.path: {path} line {number} is {type(row).__name__}; expected an object")
            rows.append(row)
    return rows


def _read_saved_dataset(path: Path, split: str | None, where: str) -> pa.Table:
    """The Arrow files of a ``save_to_disk`` directory (a Dataset, or one or all splits of a DatasetDict)."""
    dict_file = path / "dataset_dict.json"
    if dict_file.is_file():
        splits = json.loads(dict_file.read_text(encoding="utf-8")).get("splits", [])
        if split is not None and split not in splits:
            raise ConfigError(f"{where}.split: {split!r} is not a split of {path}; splits: {splits}")
        return pa.concat_tables([_read_saved_dataset(path / s, None, where) for s in ([split] if split else splits)],
                                promote_options="default")
    state = path / "state.json"
    if not state.is_file():
        raise ConfigError(f"{where}.path: {path} is a directory without state.json or dataset_dict.json; "
                          "expected a directory written by datasets' save_to_disk")
    files = [f["filename"] for f in json.loads(state.read_text(encoding="utf-8")).get("_data_files", [])]
    tables = []
    for name in files:
        with pa.OSFile(str(path / name)) as source:  # read into memory: the table outlives the file
            tables.append(pa.ipc.open_stream(source).read_all())
    return pa.concat_tables(tables) if tables else pa.table({})
