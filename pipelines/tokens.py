"""The tokenize stage: each corpus shard becomes a Megatron/NeMo indexed dataset (``<shard>.bin``/``.idx``).

A CPT run does not read Parquet text: Megatron-LM and NeMo read token ids. One Ray task per shard
streams the shard's record batches through a Hugging Face ``tokenizers`` ``tokenizer.json``
(``encode_batch``, without the tokenizer's own special tokens), appends EOS (and prepends BOS)
per document, and appends the ids to ``.bin`` as it goes (``pipelines.megatron``): memory per task is
one batch of text plus 4 bytes per document, whatever the shard's size. Documents keep the shard's
(shuffled) order and every row becomes one document, so row ``i`` of ``shard-N.parquet`` is document
``i`` of ``shard-N.bin`` (what lets a mixture select documents by a filter without tokenizing again).

The files are byte-identical to datatrove's ``MegatronDocumentTokenizer`` on the same documents and
tokenizer (same dtype rule: uint16 up to 65,536 ids, else int32). What can go wrong is found before
work starts (``ConfigError``): no tokenizer, an unreadable file, an EOS/BOS token it does not have, a
tokenizer that does not give text back (normalizers, unknown tokens) unless ``allow_lossy``. While
tokenizing, documents with unknown-token ids and sampled documents that do not decode back to their
text are counted per shard; a file is never truncated (truncation and padding are switched off).
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines import io
from pipelines.config import Config, ConfigError, TokenizeConfig
from pipelines.megatron import IndexedDataset, IndexedDatasetWriter, token_dtype
from pipelines.schema import check_input_schema
from pipelines.shard import _tokenizer
from pipelines.stage import Stage

#: Text a tokenizer must give back unchanged (pt, ja, th, digits, spacing) unless ``allow_lossy``.
PROBE_TEXT = "Olá, coração! Ação e reação.\n日本語のテキストです。 ภาษาไทยง่ายนิดเดียว  1234\tend "


@dataclass(frozen=True)
class TokenizerPlan:
    """What a task needs to know about the tokenizer, checked once on the driver (small, picklable)."""

    path: str
    name: str
    sha256: str
    vocab_size: int
    dtype: str
    eos_token: str | None
    eos_id: int | None
    bos_token: str | None
    bos_id: int | None
    unk_id: int | None

    @property
    def specials_per_doc(self) -> int:
        return (self.eos_id is not None) + (self.bos_id is not None)

    def info(self) -> dict:
        """The tokenizer as the manifest records it."""
        return {"name": self.name, "sha256": self.sha256, "vocab_size": self.vocab_size, "dtype": self.dtype,
                "eos_token": self.eos_token, "bos_token": self.bos_token}


def _special_id(tok: Any, key: str, token: str | None, path: str) -> int | None:
    if token is None:
        return None
    found = tok.token_to_id(token)
    if found is None:
        specials = sorted(t.content for t in tok.get_added_tokens_decoder().values() if t.special)
        raise ConfigError(f"tokenize.{key}: {token!r} is not a token of {path}; expected one of its special "
                          f"tokens ({', '.join(specials) or 'it has none'}), or null for no {key.split('_')[0]}")
    return int(found)


def _unk_id(tok: Any) -> int | None:
    """The id unknown text maps to (BPE/WordPiece/WordLevel ``unk_token``, Unigram ``unk_id``), if any."""
    model = tok.model
    unk = getattr(model, "unk_token", None)
    if unk:
        return tok.token_to_id(unk)
    unk_id = getattr(model, "unk_id", None)
    return int(unk_id) if unk_id is not None else None


def tokenizer_plan(cfg: TokenizeConfig, fallback: str | None = None) -> TokenizerPlan:
    """Load and check the tokenizer before any work starts; every problem is a ``ConfigError``."""
    from tokenizers import Tokenizer

    path = cfg.tokenizer or fallback
    if not path:
        raise ConfigError("tokenize.tokenizer: not set (and no shard.tokenizer to fall back on); expected the "
                          "path of a Hugging Face tokenizer.json")
    if not os.path.isfile(path):
        raise ConfigError(f"tokenize.tokenizer: {path!r} is not a file; expected a tokenizer.json")
    try:
        tok = Tokenizer.from_file(path)
    except Exception as err:  # tokenizers raises plain Exception on a malformed file
        raise ConfigError(f"tokenize.tokenizer: {path!r} is not a readable tokenizer.json ({err})") from None
    plan = TokenizerPlan(
        path=path, name=os.path.basename(path), sha256=io.sha256_file(path),
        vocab_size=tok.get_vocab_size(with_added_tokens=True),
        dtype=token_dtype(tok.get_vocab_size(with_added_tokens=True)),
        eos_token=cfg.eos_token, eos_id=_special_id(tok, "eos_token", cfg.eos_token, path),
        bos_token=cfg.bos_token, bos_id=_special_id(tok, "bos_token", cfg.bos_token, path),
        unk_id=_unk_id(tok),
    )
    got = tok.decode(tok.encode(PROBE_TEXT, add_special_tokens=False).ids, skip_special_tokens=False)
    if got != PROBE_TEXT and not cfg.allow_lossy:
        raise ConfigError(f"tokenize.tokenizer: {path!r} does not give text back: {PROBE_TEXT!r} decodes to "
                          f"{got!r} (a normalizer or unknown tokens change the text); use a byte-level "
                          "tokenizer, or set tokenize.allow_lossy: true to count changed documents instead")
    return plan


def limit_threads(task_cpus: float) -> None:
    """Keep the tokenizers (Rust, rayon) thread pool within the CPUs the task declared to Ray.

    Read by ``tokenizers`` when it first builds its pool in this process, so set before the first
    ``encode_batch``; a value the user exported wins.
    """
    threads = max(1, math.ceil(task_cpus))
    os.environ.setdefault("RAYON_NUM_THREADS", str(threads))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true" if threads > 1 else "false")


def byte_spans(sizes: np.ndarray, limit: int) -> list[tuple[int, int]]:
    """Cut rows into consecutive spans of at most ``limit`` text bytes (a larger row is a span alone)."""
    spans, start, total = [], 0, 0
    for i, size in enumerate(sizes.tolist()):
        if total and total + size > limit:
            spans.append((start, i))
            start, total = i, 0
        total += size
    if start < len(sizes):
        spans.append((start, len(sizes)))
    return spans


def with_specials(ids: np.ndarray, lengths: np.ndarray, plan: TokenizerPlan) -> tuple[np.ndarray, np.ndarray]:
    """Insert BOS before and EOS after every document of the concatenated ``ids``; returns ids and lengths."""
    if not plan.specials_per_doc:
        return ids, lengths
    ends = np.cumsum(lengths)
    starts = ends - lengths
    # interleaved (start_i, end_i): at a shared position, doc i's EOS comes before doc i+1's BOS (stable order)
    where = np.column_stack([starts, ends]).ravel()
    values = np.tile([plan.bos_id if plan.bos_id is not None else -1, plan.eos_id if plan.eos_id is not None
                      else -1], len(lengths))
    keep = np.tile([plan.bos_id is not None, plan.eos_id is not None], len(lengths))
    return np.insert(ids, where[keep], values[keep]), lengths + plan.specials_per_doc


class TokenizeStage(Stage):
    """Corpus shard (Parquet with ``id``, ``text``) in, ``<shard>.bin`` + ``<shard>.idx`` + stats out."""

    name = "tokenize"

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.cfg = config.tokenize
        self.plan = tokenizer_plan(config.tokenize, config.shard.tokenizer)

    def check_inputs(self, files: list[str]) -> None:
        for path in files:
            check_input_schema(pq.read_schema(path), path)

    def process_shard(self, input_path: str, output_dir: str, shard: str) -> dict:
        started = time.perf_counter()
        limit_threads(self.config.ray.task_cpus)
        tok = _tokenizer(self.plan.path)
        tok.no_truncation()  # a tokenizer.json may carry a max_length: it must never cut a document
        tok.no_padding()
        writer = IndexedDatasetWriter(os.path.join(output_dir, shard), self.plan.dtype)
        counts: Counter = Counter()
        try:
            source = pq.ParquetFile(input_path)
            columns = ["text"] + (["token_count"] if "token_count" in source.schema_arrow.names else [])
            for batch in source.iter_batches(batch_size=self.cfg.batch_rows, columns=columns):
                self._tokenize_batch(tok, batch, writer, counts)
            files = writer.close()
        except BaseException:
            writer.abort()
            raise
        return self._stats(input_path, output_dir, shard, files, counts, time.perf_counter() - started)

    def _tokenize_batch(self, tok: Any, batch: pa.RecordBatch, writer: IndexedDatasetWriter, counts: Counter) -> None:
        text = batch.column("text")
        counts["null_text"] += text.null_count
        sizes = pc.fill_null(pc.binary_length(text), 0).to_numpy(zero_copy_only=False)
        counts["bytes_in"] += int(sizes.sum())
        texts = [t or "" for t in text.to_pylist()]
        declared = (pc.fill_null(batch.column("token_count"), -1).to_numpy(zero_copy_only=False)
                    if "token_count" in batch.schema.names else None)
        for start, stop in byte_spans(sizes, self.cfg.batch_bytes):
            # encode_batch, not encode_batch_fast: the latter measured ~2x slower on one thread (tokenizers 0.23)
            encodings = tok.encode_batch(texts[start:stop], add_special_tokens=False)
            lengths = np.fromiter((len(e) for e in encodings), dtype=np.int64, count=len(encodings))
            ids = np.fromiter(chain.from_iterable(e.ids for e in encodings), dtype=np.int64,
                              count=int(lengths.sum()))
            if ids.size and int(ids.max()) >= np.iinfo(self.plan.dtype).max + 1:
                raise ValueError(f"token id {int(ids.max())} does not fit {self.plan.dtype} (vocab_size "
                                 f"{self.plan.vocab_size}); the tokenizer.json changed since the stage started?")
            self._count_lossy(tok, texts, start, ids, lengths, counts)
            if declared is not None:
                same = int(np.count_nonzero(declared[start:stop] == lengths))
                counts["token_count_equal"] += same
                counts["token_count_different"] += len(lengths) - same
            counts["text_tokens"] += int(lengths.sum())
            writer.add(*with_specials(ids, lengths, self.plan))

    def _count_lossy(self, tok: Any, texts: list[str], start: int, ids: np.ndarray, lengths: np.ndarray,
                     counts: Counter) -> None:
        """Count documents holding unknown-token ids, and decode every ``verify_every``-th document."""
        if self.plan.unk_id is not None:
            hits = ids == self.plan.unk_id
            if hits.any():
                counts["unknown_token"] += int(np.unique(np.repeat(np.arange(len(lengths)), lengths)[hits]).size)
        every = self.cfg.verify_every
        if not every:
            return
        first = counts["docs_seen"]
        counts["docs_seen"] += len(lengths)
        picks = [i for i in range(len(lengths)) if (first + i) % every == 0]
        if not picks:
            return
        ends = np.cumsum(lengths)
        decoded = tok.decode_batch([ids[ends[i] - lengths[i]:ends[i]].tolist() for i in picks],
                                   skip_special_tokens=False)
        counts["roundtrip_checked"] += len(picks)
        counts["roundtrip_mismatch"] += sum(got != texts[start + i] for i, got in zip(picks, decoded, strict=True))

    def _stats(self, input_path: str, output_dir: str, shard: str, files: dict, counts: Counter,
               seconds: float) -> dict:
        outputs = {files["bin"]["path"]: files["bin"]["bytes"], files["idx"]["path"]: files["idx"]["bytes"]}
        if not io.is_url(input_path):
            # listed with the outputs so that the runner's resume check fails once the shard is rewritten
            # (a re-shard): tokens of an older shard must never pass for this one's
            outputs[os.path.relpath(os.path.abspath(input_path), os.path.abspath(output_dir))] = \
                os.path.getsize(input_path)
        docs = files["documents"]
        lossy = {k: counts[k] for k in ("unknown_token", "roundtrip_checked", "roundtrip_mismatch", "null_text")}
        token_count = {k.removeprefix("token_count_"): counts[k]
                       for k in ("token_count_equal", "token_count_different") if k in counts}
        return {
            "docs_in": docs, "docs_out": docs, "docs_rejected": 0,
            "bytes_in": counts["bytes_in"], "bytes_out": files["bin"]["bytes"],
            "reasons": {},
            "counters": {"lossy": lossy, **({"token_count_column": token_count} if token_count else {})},
            "outputs": outputs,
            "tokenized": {**files, "tokens": counts["text_tokens"], "special_tokens": files["tokens"] -
                          counts["text_tokens"], "input_bytes": os.path.getsize(input_path)
                          if not io.is_url(input_path) else None},
            "tokenizer": self.plan.info(),
            "seconds": round(seconds, 4),
        }


def decode_problems(prefix: str, parquet_path: str, plan: TokenizerPlan, every: int = 1) -> list[str]:
    """Decode every ``every``-th document of ``prefix`` back and compare it with ``parquet_path``'s text.

    The round trip of the whole chain (Parquet -> tokenizer -> .bin/.idx -> reader -> tokenizer):
    returns one line per document whose ids do not give its text back, or per count that differs.
    """
    tok = _tokenizer(plan.path)
    data = IndexedDataset(prefix)
    problems = data.check()
    rows = pq.ParquetFile(parquet_path).metadata.num_rows
    if rows != len(data):
        return [*problems, f"{prefix}: {len(data)} documents, {parquet_path} has {rows} rows"]
    head, tail = int(plan.bos_id is not None), int(plan.eos_id is not None)
    index = 0
    for batch in pq.ParquetFile(parquet_path).iter_batches(columns=["text"]):
        for text in batch.column(0).to_pylist():
            if index % every == 0:
                ids = data[index]
                if (head and ids[0] != plan.bos_id) or (tail and ids[-1] != plan.eos_id):
                    problems.append(f"{prefix}: document {index} does not start/end with BOS/EOS")
                got = tok.decode(ids[head:len(ids) - tail].tolist(), skip_special_tokens=False)
                if got != (text or ""):
                    problems.append(f"{prefix}: document {index} decodes to {got[:60]!r}..., "
                                    f"the text is {(text or '')[:60]!r}...")
            index += 1
    return problems


def describe_tokens(tokens_dir: str, shard: str, rows: int, base: str) -> tuple[dict, dict] | None:
    """A corpus shard's token files for the manifest (paths relative to ``base``) and the tokenizer's info,
    from the stage's marker.

    None when the shard was not tokenized; an error when its token files belong to another version
    of the shard or were changed after the stage wrote them.
    """
    from pipelines.runner import load_complete_stats

    stats = load_complete_stats(tokens_dir, shard)
    if stats is None:
        if os.path.exists(os.path.join(tokens_dir, f"{shard}.idx")):
            raise FileNotFoundError(f"{tokens_dir}/{shard}: token files without a complete stats marker (changed "
                                    "or from an older shard); re-run `cptcorpus tokenize`")
        return None
    t = stats["tokenized"]
    if t["documents"] != rows:
        raise ValueError(f"{tokens_dir}/{shard}: {t['documents']} documents, the shard has {rows} rows; "
                         "re-run `cptcorpus tokenize`")
    rel = os.path.relpath(os.path.join(tokens_dir, shard), base)
    return {"prefix": rel, "dtype": t["dtype"], "documents": t["documents"], "tokens": t["tokens"],
            "special_tokens": t["special_tokens"],
            "bin": {**t["bin"], "path": f"{rel}.bin"}, "idx": {**t["idx"], "path": f"{rel}.idx"}}, stats["tokenizer"]
