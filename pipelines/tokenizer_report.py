"""Is a tokenizer fit for this corpus? Fertility per language and per quality bucket, several tokenizers side by side.

Why: continual pretraining on a new language starts from a tokenizer built mostly for English; on Portuguese or
Thai it can spend several times more tokens per word, which multiplies training cost and shortens the usable
context. ``cptcorpus tokenizer-report`` measures that on a deterministic sample of the finished corpus (read
through its manifest) and extrapolates the whole corpus's token count under each tokenizer.

Words are our own language-aware units (`filters.text_stats.TextStats.words`: spaCy-like words and punctuation
for languages written with spaces, grapheme clusters for zh/ja/th/...), so "tokens per word" compares
languages with one ruler. The same sampler (`sample_corpus`) feeds ``extend-vocab``.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from filters.text_stats import TextStats, is_no_space_lang, normalize_lang
from pipelines import io

REPORT_NAME = "tokenizer_report.json"
SAMPLE_DOCS = 2000  # documents sampled: enough for stable per-language ratios, seconds to tokenize
TOP_WORDS = 1000  # the most fragmented words are looked for among this many most frequent words
FRAGMENTED_SHOWN = 20
QUALITY_COLUMN = "quality_bucket"


class TokenizerInputError(ValueError):
    """A tokenizer file, manifest or corpus that cannot serve the request; the CLI exits 2 with it."""


# ---------------------------------------------------------------------------------------------
# tokenizers


def load_tokenizer(path: str) -> Any:
    """A ``tokenizers.Tokenizer`` from a tokenizer.json, or TokenizerInputError naming the file."""
    from tokenizers import Tokenizer

    if not os.path.isfile(path):
        raise TokenizerInputError(f"tokenizer file not found: {path} (expected a Hugging Face tokenizer.json)")
    try:
        return Tokenizer.from_file(path)
    except Exception as err:  # tokenizers raises a bare Exception on a malformed file
        raise TokenizerInputError(f"{path}: not a loadable tokenizer.json ({err})") from err


def tokenizer_names(paths: list[str]) -> list[str]:
    """Short, distinct labels: the file names, or the paths as given when two files share a name."""
    base = [os.path.basename(os.path.dirname(os.path.abspath(p))) + "/" + os.path.basename(p) for p in paths]
    return base if len(set(base)) == len(base) else list(paths)


def count_tokens(tokenizer_path: str, texts: list[str]) -> np.ndarray:
    """Tokens per text under a tokenizer.json, without special tokens (the shard stage's counter)."""
    from pipelines.shard import count_tokens as shard_count

    return shard_count(pa.array(texts, pa.string()), tokenizer_path)


def word_pieces(tokenizer_path: str, words: list[str], no_space: bool) -> dict[str, int]:
    """Tokens each word takes, encoded alone: after a space (as inside running text) unless the script
    has no spaces, where a character cluster sits between others."""
    texts = words if no_space else [" " + w for w in words]
    return dict(zip(words, count_tokens(tokenizer_path, texts).tolist(), strict=True))


# ---------------------------------------------------------------------------------------------
# the corpus sample


@dataclass
class CorpusSample:
    """Seeded sample rows of a corpus, and how a count on the sample scales to the whole corpus:
    ``count * corpus_total / sample_total`` of an auxiliary quantity known for every row (``scale_method``)."""

    texts: list[str]
    langs: list[str]
    buckets: list[str] | None
    corpus_rows: int
    sample_total: float
    corpus_total: float
    scale_method: str
    manifest: dict = field(repr=False, default_factory=dict)

    @property
    def sample_bytes(self) -> int:
        return sum(len(t.encode("utf-8")) for t in self.texts)

    def extrapolate(self, sample_count: int) -> int:
        return round(sample_count * self.corpus_total / self.sample_total) if self.sample_total else 0


def read_manifest(path: str) -> tuple[dict, list[str]]:
    """The manifest and its shard paths (made absolute), or TokenizerInputError saying what is wrong."""
    if not os.path.isfile(path):
        raise TokenizerInputError(f"manifest not found: {path} (expected runs/<name>/corpus/manifest.json)")
    try:
        with open(path, encoding="utf-8") as fh:
            manifest = json.load(fh)
        base = os.path.dirname(os.path.abspath(path))
        shards = [os.path.join(base, s["path"]) for ds in manifest["datasets"] for s in ds["shards"]]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise TokenizerInputError(f"{path}: not a cptcorpus manifest (datasets[].shards[].path): {err}") from err
    missing = [p for p in shards if not os.path.isfile(p)]
    if missing:
        raise TokenizerInputError(f"{path}: {len(missing)} listed shard(s) missing, e.g. {missing[0]}")
    return manifest, shards


def _scale(manifest: dict, table: pa.Table, total_rows: int, lang: str | None) -> tuple[float, float, str]:
    """(sample total, corpus total, method) of the best auxiliary quantity known for every row.

    The manifest's ``tokens`` are each row's ``token_count`` summed over the corpus; with the default counter
    that is ceil(UTF-8 bytes / 4), so scaling by it is scaling by bytes (a ratio estimator: a sample of long
    documents does not inflate the total). Otherwise (one language only, no token_count) rows scale."""
    counter = next((ds.get("token_counter") for ds in manifest["datasets"] if ds.get("token_counter")), None) or {}
    total_tokens = sum(ds.get("totals", {}).get("tokens", 0) for ds in manifest["datasets"])
    if not lang and "token_count" in table.column_names and total_tokens > 0:
        sample_tokens = float(pc.sum(pc.fill_null(table.column("token_count"), 0)).as_py() or 0)
        if sample_tokens > 0:
            what = ("by bytes (the manifest's token_count is ceil(UTF-8 bytes / "
                    f"{counter.get('bytes_per_token')}) per row)" if counter.get("kind") == "bytes_estimate"
                    else f"by the manifest's token counter ({counter.get('name', 'unknown')})")
            return sample_tokens, float(total_tokens), what
    return float(table.num_rows), float(total_rows), "by rows (no per-row token_count to scale by)"


def _lang_matches(path: str, lang: str) -> np.ndarray:
    """Row positions of one shard whose ``lang`` normalizes to ``lang`` (reads that column only)."""
    if "lang" not in pq.read_schema(path).names:
        return np.zeros(0, dtype=np.int64)
    col = pq.read_table(path, columns=["lang"]).column("lang").combine_chunks().dictionary_encode()
    keep = [normalize_lang(v) == lang if v is not None else False for v in col.dictionary.to_pylist()]
    idx = pc.fill_null(col.indices, -1).to_numpy(zero_copy_only=False)
    mask = np.isin(idx, np.flatnonzero(keep))
    return np.flatnonzero(mask)


def sample_corpus(manifest_path: str, n_docs: int, seed: int = 0, lang: str | None = None) -> CorpusSample:
    """``n_docs`` rows drawn without replacement by a seeded RNG (all rows if fewer), in corpus order.

    With ``lang`` only rows of that language are drawn. Only the footers, the ``lang`` column (with ``lang``)
    and the row groups holding drawn rows are read.
    """
    if n_docs < 1:
        raise TokenizerInputError(f"--sample-docs must be >= 1, got {n_docs}")
    manifest, shards = read_manifest(manifest_path)
    metas = [pq.ParquetFile(p).metadata for p in shards]
    for p, m in zip(shards, metas, strict=True):
        if "text" not in m.schema.names:
            raise TokenizerInputError(f"{p}: no `text` column")
    target = normalize_lang(lang) if lang else None
    if target:
        rows_of = [_lang_matches(p, target) for p in shards]
    else:
        rows_of = [np.arange(m.num_rows, dtype=np.int64) for m in metas]
    offsets = np.cumsum([0] + [len(r) for r in rows_of])
    total = int(offsets[-1])
    if total == 0:
        what = f"rows with lang={target}" if target else "rows"
        raise TokenizerInputError(f"{manifest_path}: the corpus has no {what}")
    picks = np.sort(np.random.default_rng(seed).choice(total, size=min(n_docs, total), replace=False))
    with_bucket = QUALITY_COLUMN in metas[0].schema.names
    columns = ["text", "lang", "token_count"] + ([QUALITY_COLUMN] if with_bucket else [])
    parts = []
    for i, path in enumerate(shards):
        local = picks[(picks >= offsets[i]) & (picks < offsets[i + 1])] - offsets[i]
        if len(local):
            parts.append(_read_rows(path, metas[i], rows_of[i][local], columns))
    table = pa.concat_tables(parts, promote_options="permissive")
    texts = [t or "" for t in table.column("text").to_pylist()]
    langs = [normalize_lang(x) if x else "und" for x in table.column("lang").to_pylist()] \
        if "lang" in table.column_names else ["und"] * table.num_rows
    buckets = [str(x) if x is not None else "null" for x in table.column(QUALITY_COLUMN).to_pylist()] \
        if with_bucket else None
    return CorpusSample(texts, langs, buckets, total, *_scale(manifest, table, total, target), manifest)


def _read_rows(path: str, meta: pq.FileMetaData, rows: np.ndarray, columns: list[str]) -> pa.Table:
    """The given (sorted) rows of one shard, reading only the row groups that hold them."""
    pf = pq.ParquetFile(path)
    names = [c for c in columns if c in meta.schema.names]
    bounds = np.cumsum([0] + [meta.row_group(g).num_rows for g in range(meta.num_row_groups)])
    out = []
    for g in range(meta.num_row_groups):
        inside = rows[(rows >= bounds[g]) & (rows < bounds[g + 1])] - bounds[g]
        if len(inside):
            out.append(pf.read_row_group(g, columns=names).take(pa.array(inside, pa.int64())))
    return pa.concat_tables(out)


# ---------------------------------------------------------------------------------------------
# statistics


def doc_words(texts: list[str], langs: list[str]) -> list[list[str]]:
    """Each document's words (and punctuation) in its language's segmentation."""
    return [TextStats(t, lang).words for t, lang in zip(texts, langs, strict=True)]


def _is_word(w: str) -> bool:
    return any(c.isalnum() for c in w)


def group_stats(texts: list[str], words: list[list[str]], tokens: dict[str, np.ndarray],
                pieces: dict[str, dict[str, int]]) -> dict:
    """Fertility figures of one group of documents under each tokenizer (``tokens[name][i]`` for doc i)."""
    n_words = sum(len(w) for w in words)
    chars = sum(len(t) for t in texts)
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    freq = Counter(w for ws in words for w in ws if _is_word(w))
    frequent = freq.most_common(TOP_WORDS)
    occurrences = sum(freq.values())
    out: dict[str, Any] = {"docs": len(texts), "words": n_words, "chars": chars, "bytes": n_bytes, "tokenizers": {}}
    for name, per_doc in tokens.items():
        n_tok = int(per_doc.sum())
        split3 = sum(c for w, c in freq.items() if pieces[name][w] >= 3)
        worst = sorted(frequent, key=lambda wc: (-pieces[name][wc[0]], -wc[1], wc[0]))[:FRAGMENTED_SHOWN]
        out["tokenizers"][name] = {
            "tokens": n_tok,
            "tokens_per_word": n_tok / n_words if n_words else None,
            "tokens_per_100_chars": 100 * n_tok / chars if chars else None,
            "bytes_per_token": n_bytes / n_tok if n_tok else None,
            "share_words_3plus_pieces": split3 / occurrences if occurrences else None,
            "most_fragmented_frequent_words": [{"word": w, "count": c, "pieces": pieces[name][w]} for w, c in worst],
        }
    return out


def _grouped(labels: list[str], texts: list[str], words: list[list[str]], tokens: dict[str, np.ndarray],
             pieces: dict[str, dict[str, int]]) -> dict[str, dict]:
    out = {}
    for label in sorted(set(labels)):
        idx = [i for i, x in enumerate(labels) if x == label]
        out[label] = group_stats([texts[i] for i in idx], [words[i] for i in idx],
                                 {n: t[idx] for n, t in tokens.items()}, pieces)
    return out


def _pieces(paths: dict[str, str], sample: CorpusSample, words: list[list[str]]) -> dict[str, dict[str, int]]:
    """Pieces of every distinct word under each tokenizer, words of no-space languages encoded bare."""
    by_mode: dict[bool, set[str]] = {True: set(), False: set()}
    for lang, ws in zip(sample.langs, words, strict=True):
        by_mode[is_no_space_lang(lang)].update(w for w in ws if _is_word(w))
    out: dict[str, dict[str, int]] = {}
    for name, path in paths.items():
        out[name] = {}
        for no_space in (False, True):  # a word seen in both kinds of language keeps the no-space count
            out[name].update(word_pieces(path, sorted(by_mode[no_space]), no_space))
    return out


def tokenizer_report(tokenizer_paths: list[str], manifest_path: str, sample_docs: int = SAMPLE_DOCS,
                     seed: int = 0) -> dict:
    """The whole report as a dict (see README, "Tokenizer fit")."""
    if not tokenizer_paths:
        raise TokenizerInputError("--tokenizer: give at least one tokenizer.json")
    names = tokenizer_names(tokenizer_paths)
    paths = dict(zip(names, tokenizer_paths, strict=True))
    toks = {n: load_tokenizer(p) for n, p in paths.items()}
    sample = sample_corpus(manifest_path, sample_docs, seed)
    words = doc_words(sample.texts, sample.langs)
    tokens = {n: count_tokens(p, sample.texts) for n, p in paths.items()}
    pieces = _pieces(paths, sample, words)
    sample_bytes = sample.sample_bytes
    corpus = {"rows": sample.corpus_rows,
              "method": f"estimated from the sample, scaled {sample.scale_method}",
              "manifest_tokens": sum(ds.get("totals", {}).get("tokens", 0) for ds in sample.manifest["datasets"]),
              "tokenizers": {n: {"estimated_tokens": sample.extrapolate(int(t.sum()))} for n, t in tokens.items()}}
    return {
        "manifest": os.path.abspath(manifest_path),
        "sample": {"docs": len(sample.texts), "requested": sample_docs, "seed": seed, "bytes": sample_bytes},
        "tokenizers": {n: {"path": os.path.abspath(p), "sha256": io.sha256_file(p),
                           "vocab_size": toks[n].get_vocab_size(with_added_tokens=True)}
                       for n, p in zip(names, tokenizer_paths, strict=True)},
        "word_unit": "filters.text_stats words and punctuation (grapheme clusters for zh/ja/th/...); "
                     "word pieces: each distinct word encoded alone after a space (bare for no-space scripts)",
        "overall": group_stats(sample.texts, words, tokens, pieces),
        "by_language": _grouped(sample.langs, sample.texts, words, tokens, pieces),
        "by_quality_bucket": (_grouped(sample.buckets, sample.texts, words, tokens, pieces)
                              if sample.buckets is not None else None),
        "corpus": corpus,
    }


def default_output(manifest_path: str) -> str:
    """<run>/report/tokenizer_report.json for a manifest at <run>/corpus/manifest.json."""
    run_dir = os.path.dirname(os.path.dirname(os.path.abspath(manifest_path)))
    return os.path.join(run_dir, "report", REPORT_NAME)


def format_summary(report: dict) -> str:
    """One line per language and tokenizer, for the terminal."""
    lines = [f"{report['sample']['docs']} documents sampled ({report['sample']['bytes']:,} bytes)"]
    for lang, g in report["by_language"].items():
        for name, t in g["tokenizers"].items():
            lines.append(f"{lang:>4} {name}: {t['tokens_per_word']:.3f} tokens/word, "
                         f"{t['tokens_per_100_chars']:.1f} tokens/100 chars, {t['bytes_per_token']:.2f} bytes/token")
    for name, t in report["corpus"]["tokenizers"].items():
        lines.append(f"corpus under {name}: ~{t['estimated_tokens']:,} tokens ({report['corpus']['method']})")
    return "\n".join(lines)
