"""The dataset manifest: what a trainer needs to trust and consume the corpus.

``manifest.json`` (schema: ``MANIFEST_SCHEMA`` here, published as ``docs/manifest.schema.json``) lists
every shard with rows, tokens, bytes and sha256; totals per language, per score bucket and per
duplicate-cluster size; and the lineage (resolved config and its hash, code version, input WARC
files, per-stage counts). Everything that differs between two identical runs (timestamps, timings,
the input fingerprint) lives under the one key ``nondeterministic``, so two runs of the same input
and config give manifests equal apart from it.

Shard descriptions come from the shard stage's per-shard markers (computed right after each shard
was written, while it was hot in the page cache); a shard without a valid marker is described again
in a Ray task, so the driver never reads the corpus.
"""

from __future__ import annotations

import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from pipelines import __version__, io
from pipelines.config import STAGES, Config
from pipelines.megatron import IndexedDataset, IndexedDatasetError
from pipelines.shard import SHARD_PREFIX, SHARD_SUMMARY, STATS_DIR, balance_ratio, describe_shard
from pipelines.tokens import describe_tokens

MANIFEST_VERSION = "1.2"
MANIFEST_NAME = "manifest.json"
_DETERMINISTIC_SUMMARY_KEYS = ("docs_in", "docs_out", "docs_rejected", "records_in", "bytes_in", "bytes_out",
                               "reasons", "failures_by_reason", "counters", "tokens", "token_counter",
                               "token_counter_info", "rehydration", "balance", "balance_max_over_min")
_TIMING_KEYS = ("wall_seconds", "task_seconds", "docs_per_s", "mb_per_s", "docs_per_s_per_task",
                "mb_per_s_per_task", "shards_reused", "phases", "signature_hash_seconds")

_COUNTS = {"type": "object", "required": ["rows", "tokens"], "additionalProperties": False,
           "properties": {"rows": {"type": "integer", "minimum": 0}, "tokens": {"type": "integer", "minimum": 0}}}
_COUNTS_BY_LABEL = {"type": "object", "additionalProperties": {"$ref": "#/$defs/counts"}}
_FILE = {"type": "object", "required": ["path", "bytes", "sha256"], "additionalProperties": False,
         "properties": {"path": {"type": "string", "description": "relative to the manifest's directory"},
                        "bytes": {"type": "integer", "minimum": 0},
                        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}}
_TOKENIZED = {
    "type": "object", "additionalProperties": False,
    "required": ["prefix", "dtype", "documents", "tokens", "special_tokens", "bin", "idx"],
    "description": "the shard as a Megatron/NeMo indexed dataset (tokenize stage): document i is row i",
    "properties": {
        "prefix": {"type": "string", "description": "Megatron --data-path prefix, relative to the manifest's directory"},
        "dtype": {"enum": ["uint16", "int32"]},
        "documents": {"type": "integer", "minimum": 0},
        "tokens": {"type": "integer", "minimum": 0, "description": "tokens of the text, without EOS/BOS"},
        "special_tokens": {"type": "integer", "minimum": 0, "description": "EOS/BOS added per document"},
        "bin": _FILE, "idx": _FILE,
    },
}

#: JSON Schema (draft 2020-12) of manifest.json; ``docs/manifest.schema.json`` is this, written out.
MANIFEST_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "urn:cptcorpus:manifest.schema.json",
    "title": "cptcorpus dataset manifest",
    "description": "Shards of a cptcorpus run with checksums and counts, totals and lineage. Every key except "
                   "`nondeterministic` is a function of the inputs, the config and the code version.",
    "type": "object",
    "required": ["manifest_version", "name", "datasets", "lineage", "nondeterministic"],
    "additionalProperties": False,
    "properties": {
        "manifest_version": {"type": "string", "pattern": r"^\d+\.\d+$",
                             "description": "major.minor; a reader accepts any minor of the major it knows"},
        "name": {"type": "string", "description": "the run name (config `name`)"},
        "datasets": {
            "type": "array", "minItems": 1,
            "items": {
                "type": "object",
                "required": ["name", "format", "shards", "totals", "by_language", "by_score",
                             "by_dup_cluster_size", "token_counter"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string"},
                    "format": {"const": "parquet"},
                    "columns": {"type": "array", "items": {"type": "string"},
                                "description": "column names of the shards, in order"},
                    "shards": {
                        "type": "array",
                        "items": {
                            "type": "object", "required": ["path", "rows", "tokens", "bytes", "sha256"],
                            "additionalProperties": False,
                            "properties": {
                                "path": {"type": "string", "description": "relative to the manifest's directory"},
                                "rows": {"type": "integer", "minimum": 0},
                                "tokens": {"type": "integer", "minimum": 0},
                                "bytes": {"type": "integer", "minimum": 0},
                                "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                                "tokenized": _TOKENIZED,
                            },
                        },
                    },
                    "tokenizer": {"type": ["object", "null"],
                                  "description": "the tokenizer of the shards' `tokenized` files (name, sha256, "
                                                 "vocab_size, dtype, eos_token, bos_token)"},
                    "totals": {"type": "object", "required": ["rows", "tokens", "bytes", "shards"],
                               "additionalProperties": False,
                               "properties": {k: {"type": "integer", "minimum": 0}
                                              for k in ("rows", "tokens", "bytes", "shards")}},
                    "balance_max_over_min": {"type": ["number", "null"], "minimum": 1,
                                             "description": "max/min tokens over non-empty shards"},
                    "by_language": {**_COUNTS_BY_LABEL, "description": "rows and tokens per `lang` (und = none)"},
                    "by_score": {
                        "type": "object",
                        "description": "per score column, rows and tokens per bucket `lo-hi` (and `null`)",
                        "additionalProperties": _COUNTS_BY_LABEL,
                    },
                    "score_bucket_width": {"type": "number", "exclusiveMinimum": 0},
                    "by_dup_cluster_size": {**_COUNTS_BY_LABEL,
                                            "description": "rows and tokens per cluster size: 1, 2, 3-4, 5-8, ..."},
                    "token_counter": {
                        "type": ["object", "null"],
                        "properties": {"kind": {"enum": ["tokenizer", "bytes_estimate"]},
                                       "name": {"type": "string"}, "sha256": {"type": "string"},
                                       "bytes_per_token": {"type": "number"}},
                    },
                    "rehydration": {"type": ["object", "null"]},
                    "quality_buckets": {"type": ["object", "null"],
                                        "description": "shard.quality_buckets settings, edges per language and "
                                                       "column, rows and tokens per `quality_bucket`"},
                },
            },
        },
        "lineage": {
            "type": "object", "required": ["code_version", "config_sha256", "config", "inputs", "stages"],
            "additionalProperties": False,
            "properties": {
                "code_version": {"type": "string"},
                "git_commit": {"type": ["string", "null"]},
                "config_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "config": {"type": "object", "description": "the resolved config, as used"},
                "inputs": {"type": "array", "items": {"type": "string"}, "description": "input WARC files"},
                "stages": {"type": "object", "description": "per-stage deterministic summary (counts, reasons)",
                           "additionalProperties": {"type": "object"}},
            },
        },
        "nondeterministic": {
            "type": "object",
            "description": "what differs between identical runs: creation time, stage timings, input fingerprint",
        },
    },
    "$defs": {"counts": _COUNTS},
}




def _git_commit() -> str | None:
    """The commit of the code that ran, when it runs from a git checkout (None from an installed wheel)."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def _merge(into: dict[str, dict[str, int]], add: dict[str, dict[str, int]]) -> None:
    for label, counts in add.items():
        slot = into.setdefault(label, {"rows": 0, "tokens": 0})
        slot["rows"] += counts["rows"]
        slot["tokens"] += counts["tokens"]


def _shard_files(corpus_dir: str) -> list[str]:
    """Shard names from the shard stage's summary (authoritative), else every shard-*.parquet present."""
    summary = io.read_json(os.path.join(corpus_dir, SHARD_SUMMARY)) or {}
    if summary.get("shards"):
        return [s["path"] for s in summary["shards"]]
    return [os.path.basename(p) for p in io.list_parquet(corpus_dir)
            if os.path.basename(p).startswith(SHARD_PREFIX)]


def describe_shards(config: Config, corpus_dir: str) -> list[dict]:
    """Each shard's description: from its marker when still valid, else recomputed in a Ray task."""
    cfg = config.shard
    bucket_config = {"score_columns": list(cfg.score_columns), "width": cfg.score_bucket_width}
    names = _shard_files(corpus_dir)
    out: dict[str, dict] = {}
    missing = []
    for name in names:
        full = os.path.join(corpus_dir, name)
        marker = io.read_json(os.path.join(corpus_dir, STATS_DIR, name + ".json")) or {}
        desc = marker.get("describe")
        if (desc and io.isfile(full) and desc.get("bytes") == io.file_size(full)
                and desc.get("bucket_config") == bucket_config):
            out[name] = desc
        elif io.isfile(full):
            missing.append(name)
        else:
            raise FileNotFoundError(f"{full}: shard listed by the shard stage is missing; re-run `cptcorpus shard`")
    if missing:
        import ray

        from pipelines.runner import remote_task

        remote = remote_task(describe_shard, "manifest.describe", config.ray)
        refs = [remote.remote(os.path.join(corpus_dir, n), cfg.score_columns, cfg.score_bucket_width)
                for n in missing]
        for name, desc in zip(missing, ray.get(refs), strict=True):
            out[name] = desc
    return [out[n] for n in names]


def run_manifest_stage(config: Config, inputs: list[str], output_dir: str, progress: bool = True) -> dict:
    """The registry's entry point for the ``manifest`` stage: describe the shard stage's output.

    The shards must exist: a manifest of nothing would pass ``validate`` while describing no corpus.
    """
    del output_dir, progress  # the manifest sits beside the shards it describes
    corpus_dir = inputs[0]
    if not _shard_files(corpus_dir):
        raise FileNotFoundError(f"manifest: no shards under {corpus_dir}; run the shard stage first "
                                "(`cptcorpus shard`, or `cptcorpus run --from-stage shard`)")
    manifest = build_manifest(config, corpus_dir)
    return {"stage": "manifest", "shards": len(manifest["datasets"][0]["shards"]),
            "tokens": manifest["datasets"][0]["totals"]["tokens"]}


def build_manifest(config: Config, corpus_dir: str) -> dict:
    """Describe the shards under ``corpus_dir`` and the run that made them; write manifest.json."""
    shard_summary = io.read_json(os.path.join(corpus_dir, SHARD_SUMMARY)) or {}
    descs = describe_shards(config, corpus_dir)
    by_language: dict[str, dict[str, int]] = {}
    by_dup: dict[str, dict[str, int]] = {}
    by_score: dict[str, dict[str, dict[str, int]]] = {}
    for d in descs:
        _merge(by_language, d["by_language"])
        _merge(by_dup, d["by_dup_cluster_size"])
        for col, buckets in d["by_score"].items():
            _merge(by_score.setdefault(col, {}), buckets)
    shards = [{k: d[k] for k in ("path", "rows", "tokens", "bytes", "sha256")} for d in descs]
    columns = io.read_parquet_schema(os.path.join(corpus_dir, shards[0]["path"])).names if shards else []
    tokenizer = _attach_tokens(config, corpus_dir, shards)

    stages, timings = {}, {}
    for stage in STAGES:
        if stage == "manifest":
            continue
        summary = io.read_json(os.path.join(config.stage_dir(stage), "_summary.json"))
        if summary:
            stages[stage] = {k: summary[k] for k in _DETERMINISTIC_SUMMARY_KEYS if k in summary}
            timings[stage] = {k: summary[k] for k in _TIMING_KEYS if k in summary}
    extract_summary = io.read_json(os.path.join(config.stage_dir("extract"), "_summary.json")) or {}
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "name": config.name,
        "datasets": [{
            "name": config.name,
            "format": "parquet",
            "columns": columns,
            "shards": shards,
            "totals": {"rows": sum(s["rows"] for s in shards), "tokens": sum(s["tokens"] for s in shards),
                       "bytes": sum(s["bytes"] for s in shards), "shards": len(shards)},
            "balance_max_over_min": balance_ratio([s["tokens"] for s in shards]),
            "by_language": dict(sorted(by_language.items())),
            "by_score": {c: dict(sorted(b.items())) for c, b in sorted(by_score.items())},
            "score_bucket_width": config.shard.score_bucket_width,
            "by_dup_cluster_size": dict(sorted(by_dup.items(), key=lambda kv: _size_order(kv[0]))),
            "token_counter": shard_summary.get("token_counter_info"),
            "rehydration": shard_summary.get("rehydration"),
            "quality_buckets": shard_summary.get("quality_buckets"),
            "tokenizer": tokenizer,
        }],
        "lineage": {
            "code_version": __version__,
            "git_commit": _git_commit(),
            "config_sha256": config.digest(),
            "config": config.model_dump(mode="json"),
            "inputs": extract_summary.get("inputs", []),
            "stages": stages,
        },
        "nondeterministic": {"created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                             "stage_timings": timings, "shard_plan_key": shard_summary.get("plan_key")},
    }
    io.write_json_atomic(os.path.join(corpus_dir, MANIFEST_NAME), manifest)
    return manifest


def _attach_tokens(config: Config, corpus_dir: str, shards: list[dict]) -> dict | None:
    """Add each shard's Megatron token files (tokenize stage) to its entry; returns their tokenizer."""
    tokens_dir = config.stage_dir("tokenize")
    if not io.isdir(tokens_dir):
        return None
    tokenizers: dict[str, dict] = {}
    for shard in shards:
        found = describe_tokens(tokens_dir, shard["path"].removesuffix(".parquet"), shard["rows"], corpus_dir)
        if found is not None:
            shard["tokenized"], info = found
            tokenizers[json.dumps(info, sort_keys=True)] = info
    if len(tokenizers) > 1:
        raise ValueError(f"{tokens_dir}: shards tokenized with different tokenizers or settings "
                         f"({', '.join(tokenizers)}); re-run `cptcorpus tokenize`")
    return next(iter(tokenizers.values()), None)


def _size_order(label: str) -> int:
    return int(label.split("-")[0]) if label[0].isdigit() else 1 << 62


def check_manifest_schema(manifest: Any) -> list[str]:
    """JSON Schema problems of a loaded manifest, as ``at <json path>: <message>`` lines."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(MANIFEST_SCHEMA)
    problems = []
    for err in sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        problems.append(f"manifest schema: at {where}: {err.message}")
    return problems


def _check_shard(base: str, shard: dict) -> list[str]:
    name = shard["path"]
    full = os.path.join(base, name)
    if not io.isfile(full):
        return [f"{name}: MISSING — listed in the manifest but not found at {full}"]
    problems = []
    size = io.file_size(full)
    if size != shard["bytes"]:
        problems.append(f"{name}: SIZE — file has {size} bytes, manifest says {shard['bytes']}")
    digest = io.sha256_file(full)
    if digest != shard["sha256"]:
        problems.append(f"{name}: CHECKSUM — sha256 is {digest}, manifest says {shard['sha256']} "
                        "(the file was modified, truncated or corrupted after the manifest was written)")
    try:
        meta = io.parquet_file(full).metadata
        tokens = sum(t or 0 for t in io.read_parquet(full, columns=["token_count"]).column(0).to_pylist())
    except Exception as err:  # any reader error means the same thing to the user: unreadable
        problems.append(f"{name}: UNREADABLE — not a readable Parquet shard ({type(err).__name__}: {err})")
        return problems
    if meta.num_rows != shard["rows"]:
        problems.append(f"{name}: ROWS — file has {meta.num_rows} rows, manifest says {shard['rows']}")
    if tokens != shard["tokens"]:
        problems.append(f"{name}: TOKENS — file has {tokens} tokens (sum of token_count), "
                        f"manifest says {shard['tokens']}")
    if "tokenized" in shard:
        problems.extend(_check_tokens(base, name, shard["rows"], shard["tokenized"]))
    return problems


def _check_tokens(base: str, name: str, rows: int, tokenized: dict) -> list[str]:
    """A shard's .bin/.idx: present, size, sha256, and the index's documents and tokens as listed."""
    problems = []
    for kind in ("bin", "idx"):
        entry = tokenized[kind]
        full = os.path.join(base, entry["path"])
        if not io.isfile(full):
            problems.append(f"{entry['path']}: MISSING — token file of {name} not found at {full}")
            continue
        if io.file_size(full) != entry["bytes"]:
            problems.append(f"{entry['path']}: SIZE — file has {io.file_size(full)} bytes, manifest says "
                            f"{entry['bytes']}")
        elif io.sha256_file(full) != entry["sha256"]:
            problems.append(f"{entry['path']}: CHECKSUM — sha256 differs from the manifest's {entry['sha256']}")
    if problems:
        return problems
    try:
        data = IndexedDataset(os.path.join(base, tokenized["prefix"]))
    except IndexedDatasetError as err:
        return [f"{tokenized['prefix']}: UNREADABLE — {err}"]
    problems.extend(f"{tokenized['prefix']}: INDEX — {p}" for p in data.check())
    expected = {"documents": (len(data), tokenized["documents"]), "rows": (len(data), rows),
                "tokens": (data.num_tokens, tokenized["tokens"] + tokenized["special_tokens"]),
                "dtype": (data.dtype.name, tokenized["dtype"])}
    for what, (found, listed) in expected.items():
        if found != listed:
            problems.append(f"{tokenized['prefix']}: {what.upper()} — the index has {found}, manifest says {listed}")
    return problems


def validate_manifest(path: str) -> list[str]:
    """Re-check the manifest (schema, totals) and every shard (present, size, sha256, rows, tokens).

    Returns one line per problem, each naming the shard and what differs; empty when valid.
    """
    try:
        with io.open_input(path, "r", encoding="utf-8") as fh:
            manifest = json.load(fh)
    except FileNotFoundError:
        return [f"{path}: manifest not found"]
    except json.JSONDecodeError as err:
        return [f"{path}: not valid JSON ({err})"]
    problems = check_manifest_schema(manifest)
    if problems:
        return problems
    major = manifest["manifest_version"].split(".")[0]
    if major != MANIFEST_VERSION.split(".")[0]:
        problems.append(f"manifest_version {manifest['manifest_version']}: this reader knows "
                        f"{MANIFEST_VERSION.split('.')[0]}.x")
    base = os.path.dirname(io.abspath(path))
    listed: set[str] = set()
    for ds in manifest["datasets"]:
        shards = ds["shards"]
        listed.update(s["path"] for s in shards)
        for key in ("rows", "tokens", "bytes"):
            total = sum(s[key] for s in shards)
            if total != ds["totals"][key]:
                problems.append(f"dataset {ds['name']}: totals.{key} is {ds['totals'][key]}, shards sum to {total}")
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:  # hashing releases the GIL
            for found in pool.map(lambda s: _check_shard(base, s), shards):
                problems.extend(found)
    for name in sorted(io.listdir(base)):
        if name.startswith(SHARD_PREFIX) and name.endswith(".parquet") and name not in listed:
            problems.append(f"{name}: UNLISTED — a shard file next to the manifest that it does not list "
                            "(left from another layout?); readers globbing the directory would read it")
    return problems
