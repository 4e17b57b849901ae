"""Mixture recipes: which documents a CPT run trains on, in what token proportions, for how many epochs.

A recipe (YAML, validated by ``Recipe``) names components — a filtered view of our corpus
(``lang == pt and edu_score >= 0.5``, see ``pipelines.filterexpr``) or an external Parquet dataset
(an English replay set) — with a token ratio each and a target total. ``resolve_mixture`` measures
what each component really has (rows and tokens after its filter, per file), computes the tokens it
must give and so the epochs it will be repeated, warns above ``max_epochs`` (returns fall off after
about 4 epochs of repetition, Muennighoff et al. 2023) and about components that overlap, and writes
``mixture/<recipe>.mixture.json`` with exports for the trainers people use:

* Megatron-LM / NeMo blend: ``--data-path "w1 prefix1 w2 prefix2"`` (token shares, since Megatron
  samples fixed-length sequences), and NeMo's ``data_prefix`` list. When the corpus was tokenized
  (``cptcorpus tokenize``: the manifest lists each shard's ``.bin``/``.idx``) and every component has
  token files, the prefixes are those real files: a component that filters the corpus gets its own
  datasets, copied from the shards' token slices (``<output>/<recipe>.tokens/<component>/``), and each
  prefix weighs ``ratio x its tokens / the component's tokens``, tokens counted from the indexes (EOS
  included), so Megatron draws each component's share and repeats it the recipe's epochs;
* Hugging Face ``datasets.interleave_datasets``: document probabilities, i.e. token ratios divided by
  each component's mean document length, so that the *token* shares come out as the recipe asks;
* a plain JSON list (name, weight, files, filter, tokens).

``MixtureReader`` streams the mixture itself, deterministically from the mixture file and its seed,
and can resume from a small state dict: what a data loader checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipelines import io, megatron
from pipelines.config import read_yaml
from pipelines.filterexpr import CompiledFilter, FilterSyntaxError, compile_filter
from pipelines.shard import BYTES_PER_TOKEN_ESTIMATE

MIXTURE_VERSION = "1.0"
RATIO_TOLERANCE = 1e-6
#: Replay shares reported for continual pre-training across a distribution shift: ~5% for a weak shift,
#: 25-50% for a new language (Ibrahim et al. 2024, arXiv:2403.08763); outside, mix warns.
REPLAY_RANGE = (0.05, 0.5)
RUN_DIR_VAR = "${RUN_DIR}"  # in a parquet component's path: the run directory of the manifest


class RecipeError(ValueError):
    """A recipe that is missing, malformed, or cannot be resolved; the message says which key and why."""


class Component(BaseModel):
    """One source of documents in the mixture."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., pattern=r"^[A-Za-z0-9._-]+$", description="component name, used in exports")
    source: Literal["corpus", "parquet"] = Field(
        "corpus", description="corpus: the shards of the run's manifest; parquet: external files in `path`")
    path: list[str] = Field(default_factory=list, description="parquet: files, directories or globs; "
                            "${RUN_DIR} is the run directory of the manifest")
    filter: str | None = Field(None, description="e.g. `lang == pt and edu_score >= 0.5`; null = all rows")
    ratio: float = Field(..., gt=0, le=1, description="share of the mixture's tokens")
    text_column: str = "text"
    token_column: str = Field("token_count", description="per-document tokens; absent = UTF-8 bytes / 4")
    megatron_prefix: str | None = Field(None, description="Megatron indexed-dataset prefix; default <name>_text_document")
    tokens: str | None = Field(None, description="parquet: directory of the files' .bin/.idx (`cptcorpus tokenize "
                               "--input <path> --output DIR`); corpus components use the manifest's")
    required: bool = Field(True, description="false: a component with no matching tokens is dropped (with a "
                           "warning) and the other ratios are scaled up, instead of failing the mix")
    replay: bool = Field(False, description="original-language data replayed to limit forgetting (e.g. English "
                         "for a Portuguese CPT); `mix` reports the replay share and warns outside replay_range")

    @field_validator("path", mode="before")
    @classmethod
    def _path_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("filter")
    @classmethod
    def _filter_parses(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                compile_filter(value)
            except FilterSyntaxError as err:
                raise ValueError(f"a valid filter ({err})") from None
        return value

    @model_validator(mode="after")
    def _path_for_parquet(self) -> Component:
        if self.source == "parquet" and not self.path:
            raise ValueError(f"component {self.name!r}: source parquet needs `path` (files, directory or glob)")
        if self.source == "corpus" and self.path:
            raise ValueError(f"component {self.name!r}: source corpus reads the manifest's shards; drop `path` "
                             "or use source: parquet")
        return self

    def compiled_filter(self) -> CompiledFilter | None:
        return compile_filter(self.filter) if self.filter else None


class Recipe(BaseModel):
    """A mixture recipe: components with token ratios summing to 1, and a target token total."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., pattern=r"^[A-Za-z0-9._-]+$")
    description: str | None = None
    manifest: str | None = Field(None, description="the corpus manifest.json (or --manifest)")
    target_tokens: int = Field(..., ge=1, description="tokens the training run will consume")
    seed: int = 0
    max_epochs: float = Field(4.0, gt=0, description="warn when a component would repeat more than this")
    replay_range: tuple[float, float] = Field(
        REPLAY_RANGE, description="warn when the replay components' token share falls outside [low, high]")
    components: list[Component] = Field(..., min_length=1)

    @model_validator(mode="after")
    def _ratios_and_names(self) -> Recipe:
        names = [c.name for c in self.components]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"component names must be unique; repeated: {', '.join(dupes)}")
        total = sum(c.ratio for c in self.components)
        if abs(total - 1) > RATIO_TOLERANCE:
            parts = " + ".join(f"{c.name}={c.ratio:g}" for c in self.components)
            raise ValueError(f"component ratios must sum to 1; got {parts} = {total:g}")
        return self

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"invalid recipe {source}:"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key (value {e['input']!r})")
        elif e["type"] == "missing":
            lines.append(f"  {key}: required key is missing")
        elif key == "(top level)" or (e["type"] == "value_error" and not isinstance(e.get("input"), str | int | float)):
            lines.append(f"  {key}: {msg}")
        else:
            lines.append(f"  {key}: got {e.get('input')!r}; expected {msg}")
    return "\n".join(lines)


def parse_recipe(data: Any, source: str = "<dict>") -> Recipe:
    if not isinstance(data, dict):
        raise RecipeError(f"invalid recipe {source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return Recipe.model_validate(data)
    except ValidationError as err:
        raise RecipeError(_format_errors(err, source)) from None


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe YAML (its name defaults to the file name)."""
    path = Path(path)
    data = read_yaml(path, "recipe", RecipeError)
    if isinstance(data, dict):
        data.setdefault("name", path.name.removesuffix(".yaml").removesuffix(".yml"))
    return parse_recipe(data, str(path))


# ---------------------------------------------------------------------------------------------
# resolution


def _manifest_files(manifest_path: str) -> tuple[list[str], dict, dict[str, str]]:
    """The corpus shards, the corpus's identity, and each tokenized shard's Megatron prefix (absolute)."""
    with io.open_input(manifest_path, "r", encoding="utf-8") as fh:
        manifest = json.load(fh)
    base = os.path.dirname(io.abspath(manifest_path))
    files = [os.path.join(base, s["path"]) for ds in manifest["datasets"] for s in ds["shards"]]
    prefixes = {os.path.join(base, s["path"]): io.normpath(os.path.join(base, s["tokenized"]["prefix"]))
                for ds in manifest["datasets"] for s in ds["shards"] if "tokenized" in s}
    shas = [s["sha256"] for ds in manifest["datasets"] for s in ds["shards"]]
    info = {"name": manifest.get("name"), "config_sha256": manifest.get("lineage", {}).get("config_sha256"),
            "shards": len(files), "shards_sha256": hashlib.sha256("".join(shas).encode()).hexdigest()}
    return files, info, prefixes


def _token_values(table: pa.Table, token_column: str | None, text_column: str) -> np.ndarray:
    """Tokens per row: the token column when the data has one, else the bytes/4 estimate of the text."""
    if token_column and token_column in table.column_names:
        return pc.fill_null(table.column(token_column), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    lengths = pc.fill_null(pc.binary_length(table.column(text_column)), 0).to_numpy(zero_copy_only=False)
    return np.ceil(lengths / BYTES_PER_TOKEN_ESTIMATE).astype(np.int64)


def _read_filtered(path: str, columns: list[str], flt: CompiledFilter | None) -> pa.Table:
    return io.read_parquet(path, columns=columns, filters=flt.expression if flt else None)


def _measure_file(path: str, comp: Component, flt: CompiledFilter | None, prefix: str | None = None) -> dict:
    """Rows and tokens of ``path`` that ``flt`` selects; with a Megatron ``prefix``, tokens from its index."""
    schema = io.read_parquet_schema(path)
    if flt is not None:
        flt.check_columns(schema, path)
    if comp.text_column not in schema.names:
        raise RecipeError(f"component {comp.name!r}: {path} has no text column {comp.text_column!r}; "
                          f"columns: {', '.join(schema.names)}")
    if prefix is not None:
        rows = _selected_rows(path, flt)
        lengths = _index_lengths(comp, path, prefix)
        selected = lengths if rows is None else lengths[rows]
        return {"rows": len(selected), "tokens": int(selected.sum(dtype=np.int64)), "estimated": False,
                "megatron": True}
    col = comp.token_column if comp.token_column in schema.names else comp.text_column
    table = _read_filtered(path, [col], flt)
    return {"rows": table.num_rows, "tokens": int(_token_values(table, comp.token_column, comp.text_column).sum()),
            "estimated": col != comp.token_column, "megatron": False}


def _selected_rows(path: str, flt: CompiledFilter | None) -> np.ndarray | None:
    """Row numbers of ``path`` that ``flt`` keeps, in file order (None: every row)."""
    if flt is None:
        return None
    table = io.read_parquet(path, columns=list(flt.columns))
    table = table.append_column("__row", pa.array(np.arange(table.num_rows, dtype=np.int64)))
    return table.filter(flt.expression).column("__row").to_numpy()


def _index_lengths(comp: Component, path: str, prefix: str) -> np.ndarray:
    """Tokens per document of ``prefix``, which must hold one document per row of ``path``."""
    try:
        data = megatron.IndexedDataset(prefix)
    except megatron.IndexedDatasetError as err:
        raise RecipeError(f"component {comp.name!r}: token files of {path}: {err}") from None
    rows = io.parquet_file(path).metadata.num_rows
    if len(data) != rows:
        raise RecipeError(f"component {comp.name!r}: {prefix} has {len(data)} documents, {path} has {rows} rows "
                          "(tokenized from another version of the file); run `cptcorpus tokenize` again")
    return np.asarray(data.lengths)


def _component_prefixes(comp: Component, files: list[str], corpus_prefixes: dict[str, str]) -> list[str | None]:
    """Each file's Megatron prefix: the manifest's for the corpus, ``tokens/<name>`` for a parquet component."""
    if comp.source == "corpus":
        return [corpus_prefixes.get(f) for f in files]
    if comp.tokens is None:
        return [None] * len(files)
    out = []
    for path, name in zip(files, io.shard_names(files), strict=True):
        prefix = os.path.join(comp.tokens, name)
        if not io.isfile(f"{prefix}.idx"):
            raise RecipeError(f"component {comp.name!r}: tokens: no {prefix}.idx for {path}; run `cptcorpus "
                              f"tokenize --input <its path> --output {comp.tokens}`")
        out.append(prefix)
    return out


def _megatron_datasets(recipe: Recipe, comp: Component, files: list[str], prefixes: list[str | None],
                       output_dir: str) -> list[dict] | None:
    """The component's indexed datasets with their tokens: the shards' own, or filtered copies of them."""
    if not files or any(p is None for p in prefixes):
        return None
    flt = comp.compiled_filter()
    out = []
    for path, name, prefix in zip(files, io.shard_names(files), prefixes, strict=True):
        assert prefix is not None
        rows = _selected_rows(path, flt)
        if rows is not None:
            subset = os.path.join(output_dir, f"{recipe.name}.tokens", comp.name, name)
            written = megatron.write_subset(megatron.IndexedDataset(prefix), rows, subset)
            prefix, tokens = subset, written["tokens"]
        else:
            tokens = megatron.IndexedDataset(prefix).num_tokens
        if tokens:
            out.append({"prefix": os.path.abspath(prefix), "tokens": tokens})
    return out


def _component_files(comp: Component, corpus_files: list[str] | None, run_dir: str | None) -> list[str]:
    if comp.source == "corpus":
        if corpus_files is None:
            raise RecipeError(f"component {comp.name!r} reads the corpus, but no manifest was given "
                              "(set `manifest:` in the recipe or pass --manifest)")
        return corpus_files
    paths = comp.path
    if any(RUN_DIR_VAR in p for p in paths):
        if run_dir is None:
            raise RecipeError(f"component {comp.name!r}: {RUN_DIR_VAR} in `path` needs a manifest (the run "
                              "directory is the manifest's parent's parent)")
        paths = [p.replace(RUN_DIR_VAR, run_dir) for p in paths]
    try:
        return io.expand_inputs(paths, (".parquet",))
    except FileNotFoundError as err:
        raise RecipeError(f"component {comp.name!r}: {err}") from None


def _rel(path: str, base: str) -> str:
    return path if io.is_url(path) else os.path.relpath(os.path.abspath(path), base)


def resolve_mixture(recipe: Recipe, manifest: str | None = None, output_dir: str | None = None) -> dict:
    """Measure every component, compute tokens taken and epochs, write ``<output>/<recipe>.mixture.json``.

    Returns the mixture dict (also written, with its exports next to it).
    """
    manifest = manifest or recipe.manifest
    corpus_files, corpus_info, corpus_prefixes = None, None, {}
    if manifest:
        if not io.isfile(manifest):
            raise RecipeError(f"manifest not found: {manifest} (run `cptcorpus run` first, or pass --manifest)")
        corpus_files, corpus_info, corpus_prefixes = _manifest_files(manifest)
    run_dir = os.path.dirname(os.path.dirname(io.abspath(manifest))) if manifest else None
    if output_dir is None:
        output_dir = os.path.join(run_dir, "mixture") if run_dir else "mixture"
    io.ensure_dir(output_dir)
    base = io.abspath(output_dir)

    measured_by: dict[str, tuple[list[str], list[dict]]] = {}
    prefixes_by: dict[str, list[str | None]] = {}
    warnings: list[str] = []
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for comp in recipe.components:
            files = _component_files(comp, corpus_files, run_dir)
            flt = comp.compiled_filter()
            prefixes = _component_prefixes(comp, files, corpus_prefixes)
            if any(p is None for p in prefixes):  # tokens from the index only when every file has one
                prefixes = [None] * len(files)
            prefixes_by[comp.name] = prefixes
            try:
                measured_by[comp.name] = (files, list(pool.map(
                    lambda p, x, c=comp, f=flt: _measure_file(p, c, f, x), files, prefixes)))
            except FilterSyntaxError as err:
                raise RecipeError(f"component {comp.name!r}: {err}") from None
    active = []
    for comp in recipe.components:
        files, measured = measured_by[comp.name]
        if sum(m["tokens"] for m in measured) > 0:
            active.append(comp)
            continue
        rows = sum(m["rows"] for m in measured)
        what = (f"component {comp.name!r}: no tokens available ({rows} rows match {comp.filter or 'all rows'!r} "
                f"in {len(files)} file(s))")
        if comp.required:
            raise RecipeError(f"{what}; relax the filter, drop the component or mark it `required: false`")
        warnings.append(f"{what}; dropped (required: false), the other ratios scaled up to sum to 1")
    if not active:
        raise RecipeError("no component has any tokens available")
    scale = 1 / sum(c.ratio for c in active)

    components = []
    for comp in active:
        files, measured = measured_by[comp.name]
        rows = sum(m["rows"] for m in measured)
        tokens = sum(m["tokens"] for m in measured)
        ratio = round(comp.ratio * scale, 9)
        taken = int(round(recipe.target_tokens * ratio))
        epochs = taken / tokens
        if epochs > recipe.max_epochs:
            warnings.append(f"component {comp.name!r} would repeat {epochs:.2f} epochs (> max_epochs "
                            f"{recipe.max_epochs:g}): it has {tokens} tokens for {taken} taken; returns "
                            "of repeated data fall off after ~4 epochs; lower its ratio or add data")
        components.append({
            "name": comp.name,
            "source": comp.source,
            "filter": comp.filter,
            "ratio": ratio,
            "text_column": comp.text_column,
            "token_column": comp.token_column if not any(m["estimated"] for m in measured) else None,
            "token_counter": _token_counter(measured),
            "files": [{"path": _rel(p, base), "rows": m["rows"], "tokens": m["tokens"]}
                      for p, m in zip(files, measured, strict=True)],
            "rows_available": rows,
            "tokens_available": tokens,
            "tokens_taken": taken,
            "epochs": round(epochs, 6),
            "repeats": max(1, math.ceil(epochs - 1e-9)),
            "mean_tokens_per_row": round(tokens / max(rows, 1), 3),
            "megatron_prefix": comp.megatron_prefix or f"{comp.name}_text_document",
            "megatron_datasets": _megatron_datasets(recipe, comp, files, prefixes_by[comp.name], output_dir),
        })
    warnings.extend(_overlaps(recipe, components, corpus_files))
    replay = replay_report(recipe, components)
    warnings.extend(replay.pop("warnings"))
    mixture = {
        "mixture_version": MIXTURE_VERSION,
        "recipe": recipe.name,
        "recipe_sha256": recipe.digest(),
        "description": recipe.description,
        "seed": recipe.seed,
        "target_tokens": recipe.target_tokens,
        "max_epochs": recipe.max_epochs,
        "corpus": corpus_info,
        "components": components,
        "totals": {"tokens_taken": sum(c["tokens_taken"] for c in components),
                   "tokens_available": sum(c["tokens_available"] for c in components)},
        "replay": replay,
        "warnings": warnings,
        "exports": exports(components, recipe.seed),
        "nondeterministic": {"created_at": datetime.now(UTC).isoformat(timespec="seconds")},
    }
    stem = os.path.join(output_dir, recipe.name)
    io.write_json_atomic(f"{stem}.mixture.json", mixture)
    io.write_text_atomic(f"{stem}.megatron.txt", mixture["exports"]["megatron"]["data_path"] + "\n")
    io.write_json_atomic(f"{stem}.hf.json", mixture["exports"]["hf_interleave_datasets"])
    io.write_json_atomic(f"{stem}.list.json", mixture["exports"]["json"])
    mixture["path"] = f"{stem}.mixture.json"
    return mixture


def replay_report(recipe: Recipe, components: list[dict]) -> dict:
    """The replay share of the mixture and of each epoch over the other (domain) data, with range warnings.

    Components are drawn in proportion throughout training, so every epoch over the domain data holds
    the same replay share; what changes is how often the replay data itself repeats (``epochs``).
    """
    names = {c.name for c in recipe.components if c.replay}
    if not names:
        return {"components": [], "warnings": []}
    replay = [c for c in components if c["name"] in names]
    domain = [c for c in components if c["name"] not in names]
    taken = sum(c["tokens_taken"] for c in replay)
    total = sum(c["tokens_taken"] for c in components) or 1
    available = sum(c["tokens_available"] for c in replay)
    domain_epochs = max((c["epochs"] for c in domain), default=0.0)
    share = taken / total
    low, high = recipe.replay_range
    warnings = []
    if not low <= share <= high:
        warnings.append(f"replay share {share:.3f} is outside replay_range [{low:g}, {high:g}]: "
                        + ("too little replay risks forgetting the original language" if share < low else
                           "too much replay slows learning of the new domain") + "; adjust the replay ratio")
    return {"components": sorted(names), "share": round(share, 6), "tokens_taken": taken,
            "tokens_available": available, "epochs": round(taken / available, 6) if available else None,
            "share_per_domain_epoch": [round(share, 6)] * max(1, math.ceil(domain_epochs - 1e-9)),
            "range": [low, high], "warnings": warnings}


def _token_counter(measured: list[dict]) -> str:
    if measured and all(m["megatron"] for m in measured):
        return "megatron_index"  # tokens per document as the trainer reads them (EOS/BOS included)
    return "column" if not any(m["estimated"] for m in measured) else f"bytes/{BYTES_PER_TOKEN_ESTIMATE}"


def _overlaps(recipe: Recipe, components: list[dict], corpus_files: list[str] | None) -> list[str]:
    """Warn when two corpus components select the same documents (they would be seen by both)."""
    out = []
    active = {c["name"] for c in components}
    corpus = [c for c in recipe.components if c.source == "corpus" and c.name in active]
    for i, a in enumerate(corpus):
        for b in corpus[i + 1:]:
            fa, fb = a.compiled_filter(), b.compiled_filter()
            both = (fa.expression if fa else pc.scalar(True)) & (fb.expression if fb else pc.scalar(True))
            shared = 0
            for path in corpus_files or []:
                table = io.read_parquet(path, columns=[a.token_column]
                                      if a.token_column in io.read_parquet_schema(path).names else [a.text_column],
                                      filters=both)
                shared += int(_token_values(table, a.token_column, a.text_column).sum())
            if shared:
                tb = next(c["tokens_available"] for c in components if c["name"] == b.name)
                out.append(f"components {a.name!r} and {b.name!r} overlap: {shared} tokens ({shared / tb:.0%} of "
                           f"{b.name!r}) match both filters and will be drawn by both")
    return out


def exports(components: list[dict], seed: int) -> dict:
    """Blend weights for Megatron-LM/NeMo, probabilities for HF interleave_datasets, and a plain list."""
    weights = [c["ratio"] for c in components]
    per_doc = [c["ratio"] / max(c["mean_tokens_per_row"], 1e-9) for c in components]
    probs = [round(p / sum(per_doc), 6) for p in per_doc]
    return {
        "megatron": megatron_blend(components),
        "hf_interleave_datasets": {
            "probabilities": probs,
            "seed": seed,
            "stopping_strategy": "all_exhausted",
            "datasets": [{"name": c["name"], "data_files": [f["path"] for f in c["files"] if f["rows"]],
                          "filter": c["filter"]} for c in components],
            "note": "document probabilities = token ratio / mean tokens per document, so token shares match",
        },
        "json": [{"name": c["name"], "weight": w, "tokens": c["tokens_taken"], "epochs": c["epochs"],
                  "filter": c["filter"], "files": [f["path"] for f in c["files"] if f["rows"]]}
                 for c, w in zip(components, weights, strict=True)],
    }


def megatron_blend(components: list[dict]) -> dict:
    """Megatron ``--data-path`` pairs and NeMo's ``data_prefix`` list.

    With token files for every component: each of a component's datasets weighs ``ratio x dataset
    tokens / component tokens``, so the component's weights sum to its ratio (its token share; Megatron
    samples fixed-length sequences) and its datasets are drawn in proportion to their size, all
    repeated the component's epochs. Otherwise one placeholder prefix per component, to be built.
    """
    blend: list[Any] = []
    if components and all(c.get("megatron_datasets") for c in components):
        for c in components:
            total = sum(d["tokens"] for d in c["megatron_datasets"])
            for d in c["megatron_datasets"]:
                blend += [round(c["ratio"] * d["tokens"] / total, 9), d["prefix"]]
        note = ("weights are token shares (Megatron samples fixed-length sequences) over the tokenize stage's "
                "indexed datasets; each component's weights sum to its ratio")
    else:
        for c in components:
            blend += [round(c["ratio"], 6), c["megatron_prefix"]]
        note = ("weights are token shares (Megatron samples fixed-length sequences); build each prefix with "
                "`cptcorpus tokenize` (corpus) or tools/preprocess_data.py from the component's documents")
    return {"data_path": " ".join(str(x) for x in blend), "nemo_data_prefix": blend, "note": note}


# ---------------------------------------------------------------------------------------------
# streaming


class _Stream:
    """One component's documents, epoch after epoch, file order reshuffled each epoch with the seed."""

    def __init__(self, comp: dict, base: str, seed: int, index: int, columns: tuple[str, ...]) -> None:
        self.comp = comp
        self.files = [f["path"] if io.is_url(f["path"]) or os.path.isabs(f["path"]) else os.path.join(base, f["path"])
                      for f in comp["files"] if f["rows"]]
        self.seed = seed
        self.index = index
        self.columns = columns
        self.filter = compile_filter(comp["filter"]) if comp["filter"] else None
        self.epoch = 0
        self.file = 0
        self.row = 0
        self._order: list[int] = []
        self._order_epoch = -1
        self._table: pa.Table | None = None
        self._tokens: np.ndarray | None = None
        self._loaded: tuple[int, int] | None = None

    def order(self) -> list[int]:
        if self._order_epoch != self.epoch:
            rng = np.random.default_rng([self.seed, self.index, self.epoch])
            self._order = rng.permutation(len(self.files)).tolist()
            self._order_epoch = self.epoch
        return self._order

    def _load(self) -> None:
        key = (self.epoch, self.file)
        if self._loaded == key:
            return
        path = self.files[self.order()[self.file]]
        schema = io.read_parquet_schema(path)
        token_col = self.comp["token_column"]
        cols = [c for c in dict.fromkeys((*self.columns, self.comp["text_column"], token_col or "")) if c in schema.names]
        self._table = _read_filtered(path, cols, self.filter)
        self._tokens = _token_values(self._table, token_col, self.comp["text_column"])
        self._loaded = key

    def next(self) -> tuple[dict, int]:
        for _ in range(len(self.files) + 1):
            self._load()
            assert self._table is not None and self._tokens is not None
            if self.row < self._table.num_rows:
                i = self.row
                self.row += 1
                record = {c: self._table.column(c)[i].as_py() for c in self.columns if c in self._table.column_names}
                return record, int(self._tokens[i])
            self.row = 0
            self.file += 1
            if self.file >= len(self.files):
                self.file = 0
                self.epoch += 1
        raise RuntimeError(f"component {self.comp['name']!r}: no rows left to read (files changed since the mix?)")


class MixtureReader:
    """Stream a resolved mixture deterministically: seeded, token-weighted interleaving of its components.

    At each step a component is drawn with probability proportional to the tokens it still owes
    (``tokens_taken`` minus tokens already emitted), so every component finishes its budget at about
    the same time and the token shares hold all along; a component that runs out of documents starts
    a new epoch. Iteration ends when every budget is met. ``state()`` is a small JSON-serialisable dict;
    ``MixtureReader(path, state=s)`` continues exactly where the reader that produced ``s`` was.
    Each item is a dict with the requested ``columns`` plus ``component``, ``epoch`` and ``tokens``.
    """

    def __init__(self, mixture: str | dict, state: dict | None = None,
                 columns: tuple[str, ...] = ("id", "text"), base_dir: str | None = None) -> None:
        if isinstance(mixture, str):
            with io.open_input(mixture, "r", encoding="utf-8") as fh:
                data = json.load(fh)
            base_dir = base_dir or os.path.dirname(io.abspath(mixture))
        else:
            data = mixture
            base_dir = base_dir or os.path.dirname(os.path.abspath(data.get("path", "."))) or "."
        self.mixture = data
        self.columns = tuple(columns)
        self.streams = [_Stream(c, base_dir, data["seed"], i, self.columns) for i, c in enumerate(data["components"])]
        self.budget = np.array([c["tokens_taken"] for c in data["components"]], dtype=np.int64)
        self.emitted = np.zeros(len(self.streams), dtype=np.int64)
        self.position = 0
        self.rng = np.random.default_rng(data["seed"])
        if state is not None:
            self._restore(state)

    def state(self) -> dict:
        """Where the reader is: position, RNG state, tokens emitted and each component's cursor."""
        return {"position": self.position, "rng": self.rng.bit_generator.state,
                "emitted": self.emitted.tolist(), "cursors": [[s.epoch, s.file, s.row] for s in self.streams]}

    def _restore(self, state: dict) -> None:
        if len(state["cursors"]) != len(self.streams):
            raise ValueError("state does not belong to this mixture (component count differs)")
        self.position = int(state["position"])
        self.rng.bit_generator.state = state["rng"]
        self.emitted = np.array(state["emitted"], dtype=np.int64)
        for s, (epoch, file, row) in zip(self.streams, state["cursors"], strict=True):
            s.epoch, s.file, s.row = int(epoch), int(file), int(row)

    def __iter__(self) -> MixtureReader:
        return self

    def __next__(self) -> dict:
        remaining = np.clip(self.budget - self.emitted, 0, None).astype(np.float64)
        total = remaining.sum()
        if total <= 0:
            raise StopIteration
        pick = int(np.searchsorted(np.cumsum(remaining), self.rng.random() * total, side="right"))
        pick = min(pick, len(remaining) - 1)
        stream = self.streams[pick]
        record, tokens = stream.next()
        self.emitted[pick] += tokens
        self.position += 1
        return {**record, "component": stream.comp["name"], "epoch": stream.epoch, "tokens": tokens}
