"""The dataset manifest: what a trainer needs to trust and consume the corpus.

``manifest.json`` lists every shard with rows, tokens, bytes and sha256, totals per language, and
the lineage (resolved config and its hash, code version, input files, per-stage counts). Everything
that differs between two identical runs (timestamps, timings) lives under the one key
``nondeterministic``, so two runs of the same input and config give manifests equal apart from it.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import UTC, datetime

import pyarrow.parquet as pq

from pipelines import __version__, io
from pipelines.config import STAGES, Config

MANIFEST_VERSION = "1.0"
MANIFEST_NAME = "manifest.json"
_DETERMINISTIC_SUMMARY_KEYS = ("docs_in", "docs_out", "docs_rejected", "bytes_in", "bytes_out", "reasons",
                               "failures_by_reason", "counters", "tokens", "token_counter")
_TIMING_KEYS = ("wall_seconds", "task_seconds", "docs_per_s", "mb_per_s", "docs_per_s_per_task",
                "mb_per_s_per_task")


def _load_json(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def build_manifest(config: Config, corpus_dir: str) -> dict:
    """Describe the shards under ``corpus_dir`` and the run that made them; write manifest.json."""
    shard_summary = _load_json(os.path.join(corpus_dir, "_summary.json")) or {}
    shards, langs = [], Counter()
    lang_tokens: Counter = Counter()
    for path in io.list_parquet(corpus_dir):
        name = os.path.basename(path)
        table = pq.read_table(path, columns=["lang", "token_count"])
        tokens = table.column("token_count").to_pylist()
        for lang, tok in zip(table.column("lang").to_pylist(), tokens, strict=True):
            langs[lang or "und"] += 1
            lang_tokens[lang or "und"] += tok or 0
        shards.append({"path": name, "rows": table.num_rows, "tokens": int(sum(t or 0 for t in tokens)),
                       "bytes": os.path.getsize(path), "sha256": io.sha256_file(path)})
    stages, timings = {}, {}
    for stage in STAGES:
        if stage == "manifest":
            continue
        summary = _load_json(os.path.join(config.stage_dir(stage), "_summary.json"))
        if summary:
            stages[stage] = {k: summary[k] for k in _DETERMINISTIC_SUMMARY_KEYS if k in summary}
            timings[stage] = {k: summary[k] for k in _TIMING_KEYS if k in summary}
    extract_summary = _load_json(os.path.join(config.stage_dir("extract"), "_summary.json")) or {}
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "name": config.name,
        "datasets": [{
            "name": config.name,
            "shards": shards,
            "totals": {"rows": sum(s["rows"] for s in shards), "tokens": sum(s["tokens"] for s in shards),
                       "bytes": sum(s["bytes"] for s in shards)},
            "by_language": {k: {"rows": langs[k], "tokens": lang_tokens[k]} for k in sorted(langs)},
            "token_counter": shard_summary.get("token_counter"),
        }],
        "lineage": {
            "code_version": __version__,
            "config_sha256": config.digest(),
            "config": config.model_dump(mode="json"),
            "inputs": extract_summary.get("inputs", []),
            "stages": stages,
        },
        "nondeterministic": {"created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                             "stage_timings": timings},
    }
    io.write_json_atomic(os.path.join(corpus_dir, MANIFEST_NAME), manifest)
    return manifest


def validate_manifest(path: str) -> list[str]:
    """Re-check every shard's checksum, rows and tokens; return the problems (empty when valid)."""
    problems: list[str] = []
    manifest = _load_json(path)
    if manifest is None:
        return [f"{path}: not found or not valid JSON"]
    if manifest.get("manifest_version") != MANIFEST_VERSION:
        problems.append(f"{path}: manifest_version {manifest.get('manifest_version')!r}, expected {MANIFEST_VERSION}")
    base = os.path.dirname(os.path.abspath(path))
    for ds in manifest.get("datasets", []):
        for shard in ds.get("shards", []):
            full = os.path.join(base, shard["path"])
            if not os.path.isfile(full):
                problems.append(f"{shard['path']}: missing")
                continue
            digest = io.sha256_file(full)
            if digest != shard["sha256"]:
                problems.append(f"{shard['path']}: sha256 {digest} != manifest {shard['sha256']}")
                continue
            meta = pq.read_metadata(full)
            if meta.num_rows != shard["rows"]:
                problems.append(f"{shard['path']}: {meta.num_rows} rows != manifest {shard['rows']}")
            tokens = sum(t or 0 for t in pq.read_table(full, columns=["token_count"]).column(0).to_pylist())
            if tokens != shard["tokens"]:
                problems.append(f"{shard['path']}: {tokens} tokens != manifest {shard['tokens']}")
    return problems
