"""The stage registry: the one place where a stage is declared.

Each ``StageSpec`` says what a stage is called, what it reads, whether it runs one Ray task per input
shard or as a driver that plans its own phases (dedup, shard, manifest), where it writes, whether
``cptcorpus run`` includes it, and what each of its tasks declares to Ray. The CLI's sub-commands,
``run``'s order and its fusion of per-shard stages, the Makefile's ``make <stage>`` targets and the
README's stage table are all derived from ``REGISTRY``.

This module imports nothing from the project and nothing outside the standard library, so the
Makefile can read it with any Python (``python3 pipelines/registry.py make-targets``) before the
project is installed. Implementations are named as ``"module:attribute"`` and imported on use.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from typing import Any, Literal

Runs = Literal["per_shard", "driver"]


@dataclass(frozen=True)
class StageSpec:
    """One stage of the flow.

    ``reads``: ``"input"`` (the config's ``input:``, WARC files or a Common Crawl selection),
    ``"previous"`` (the output of the stage before it among those the run includes) or
    ``"stage:<name>"`` (a named stage's output, e.g. the manifest reads the shards).
    ``impl``: for ``per_shard`` a ``Stage`` subclass built from the config; for ``driver`` a function
    ``(config, inputs, output_dir, progress) -> summary``.
    ``enabled_by``: a boolean config key (``"tokenize.enabled"``) for stages ``run`` includes only on request.
    ``gpus_key``: a config key holding the GPUs each task declares; a stage with GPUs is never fused
    (the fused task would hold its GPU through CPU-bound extraction).
    """

    name: str
    runs: Runs
    reads: str
    impl: str
    output: str
    help: str
    enabled_by: str | None = None
    gpus_key: str | None = None

    @property
    def make_target(self) -> str:
        return self.name

    def load(self) -> Any:
        """The implementation object (class or function), imported now."""
        module, _, attr = self.impl.partition(":")
        return getattr(importlib.import_module(module), attr)

    def enabled(self, config: Any) -> bool:
        return self.enabled_by is None or bool(config_value(config, self.enabled_by))

    def gpus(self, config: Any) -> float:
        return float(config_value(config, self.gpus_key) or 0) if self.gpus_key else 0.0


def config_value(config: Any, dotted: str) -> Any:
    """``config_value(cfg, "classify.num_gpus")`` -> ``cfg.classify.num_gpus``."""
    value = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


REGISTRY: tuple[StageSpec, ...] = (
    StageSpec("extract", "per_shard", "input", "pipelines.extract:ExtractStage", "extract",
              "WARC/WET records to documents with their main text"),
    StageSpec("langid", "per_shard", "previous", "pipelines.langid:LangidStage", "langid",
              "fastText language identification (lang, lang_score, lang_top)"),
    StageSpec("filter", "per_shard", "previous", "pipelines.filter:FilterStage", "filter",
              "heuristic filters (Gopher, C4, FineWeb, URL lists, PII) per language preset"),
    StageSpec("classify", "per_shard", "previous", "pipelines.classify:ClassifyStage", "classify",
              "quality / STEM / toxicity scores from fastText or HF classifiers",
              gpus_key="classify.num_gpus"),
    StageSpec("dedup", "driver", "previous", "pipelines.dedup:run_dedup", "dedup",
              "exact + MinHash-LSH near-duplicate clusters, one kept document per cluster"),
    StageSpec("decontaminate", "per_shard", "previous", "pipelines.decontaminate:DecontaminateStage", "decontaminate",
              "benchmark n-gram decontamination (remove or tag)", enabled_by="decontaminate.enabled"),
    StageSpec("shard", "driver", "previous", "pipelines.shard:run_shard_stage", "corpus",
              "shuffle and cut into token-balanced Parquet shards"),
    StageSpec("tokenize", "per_shard", "stage:shard", "pipelines.tokens:TokenizeStage", "tokens",
              "Megatron/NeMo .bin/.idx per corpus shard", enabled_by="tokenize.enabled"),
    StageSpec("manifest", "driver", "stage:shard", "pipelines.manifest:run_manifest_stage", "corpus",
              "corpus/manifest.json: shards, checksums, counts, lineage"),
)


def stage_names() -> tuple[str, ...]:
    return tuple(s.name for s in REGISTRY)


def get(name: str) -> StageSpec:
    for spec in REGISTRY:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown stage {name!r}; stages: {', '.join(stage_names())}")


def per_shard_names() -> tuple[str, ...]:
    return tuple(s.name for s in REGISTRY if s.runs == "per_shard")


def markdown_table() -> str:
    """The README's stage table (a test keeps the README's copy equal to this)."""
    rows = ["| stage | runs as | reads | writes | in `run` | make |", "|---|---|---|---|---|---|"]
    for s in REGISTRY:
        reads = {"input": "`input:` (WARC)", "previous": "previous stage"}.get(s.reads, s.reads.replace("stage:", ""))
        in_run = f"when `{s.enabled_by}`" if s.enabled_by else "yes"
        runs = "one task per shard" if s.runs == "per_shard" else "driver + Ray phases"
        rows.append(f"| `{s.name}` | {runs} | {reads} | `{s.output}/` | {in_run} | `make {s.make_target}` |"
                    f" {s.help} |")
    rows[0] += " what |"
    rows[1] += "---|"
    return "\n".join(rows)


if __name__ == "__main__":  # for the Makefile: `python3 pipelines/registry.py make-targets`
    if sys.argv[1:] == ["make-targets"]:
        print(" ".join(s.make_target for s in REGISTRY))
    elif sys.argv[1:] == ["markdown"]:
        print(markdown_table())
    else:
        sys.exit("usage: registry.py make-targets|markdown")
