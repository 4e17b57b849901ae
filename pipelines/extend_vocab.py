"""Extend a BPE tokenizer with target-language tokens learned from the corpus, keeping every base id.

Why: vocabulary expansion (EEVE, Typhoon, Thunder-LLM) cuts the tokens a new language costs while the base
model's embeddings stay valid: every base token keeps its id, new tokens take the ids after them, and a trainer
initialises each new embedding as the mean of the base pieces it replaces (``new_tokens.jsonl``).

How: BPE training is *continued* from the base tokenizer's own segmentation of the target-language sample.
Words are the base's pre-tokens (its normalizer and pre-tokenizer, so new tokens live in its alphabet, e.g.
ByteLevel's ``Ġ``), each starts as the base model's tokens, and each step merges the adjacent pair that
occurs most often (frequency-weighted over words): the pair's count is exactly the tokens that merge saves on
the sample. The merges are appended after the base merges, so on any text the base merges run first (giving the
base segmentation) and the new ones then apply in learned order: every new token is produced where it was
counted, and text the new merges do not touch (most English) keeps the base's tokens. An independently trained
vocabulary would not chain from the base's segmentation, so many of its tokens would never be produced.

Characters the base vocabulary lacks (byte-fallback bases) are not added: merges join characters, and a
fallback byte is not one. Merges that would rebuild an existing base token are skipped (a base merge could then fire again, and the
learned counts would no longer describe what the tokenizer does). Only BPE bases without subword prefixes or
word suffixes are supported (GPT-2/Llama-3/Qwen-style ByteLevel, and sentencepiece-style Metaspace BPE).
"""

from __future__ import annotations

import copy
import heapq
import json
import os
import re
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from filters.text_stats import normalize_lang
from pipelines import io
from pipelines.tokenizer_report import (
    TokenizerInputError,
    count_tokens,
    doc_words,
    load_tokenizer,
    sample_corpus,
)

SAMPLE_DOCS = 20_000
HOLDOUT = 0.1  # share of the sampled documents kept out of training, for the before/after fertility
MIN_FREQUENCY = 2  # a merge must save at least this many tokens on the training sample
_BYTE_TOKEN = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")
_SPACE_SPLIT = re.compile(r"(?=[ \u2581])")  # before a space or sentencepiece's "▁"


class TooFewTokens(TokenizerInputError):
    """--add asks for more new tokens than the sample supports; ``supported`` says how many it does."""

    def __init__(self, message: str, supported: int) -> None:
        super().__init__(message)
        self.supported = supported


@dataclass(frozen=True)
class NewMerge:
    """One learned merge: ``left + right`` becomes ``token``; ``saved`` tokens on the training sample."""

    left: str
    right: str
    token: str
    saved: int


# ---------------------------------------------------------------------------------------------
# the base tokenizer


def load_bpe_json(path: str) -> dict:
    """The base tokenizer.json as a dict, or TokenizerInputError when it is not a BPE we can extend."""
    load_tokenizer(path)  # the same "missing / unloadable" messages as tokenizer-report
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    model = data.get("model") or {}
    kind = model.get("type") or ("BPE" if "merges" in model else "unknown")
    if kind != "BPE":
        raise TokenizerInputError(f"{path}: model type {kind}; extend-vocab supports BPE tokenizers only "
                                  "(WordPiece and Unigram have no merges to extend)")
    for key in ("continuing_subword_prefix", "end_of_word_suffix"):
        if model.get(key):
            raise TokenizerInputError(f"{path}: model.{key} = {model[key]!r}; extend-vocab supports BPE "
                                      "without subword prefixes or word suffixes")
    return data


def _merge_pairs(model: dict) -> list[list[str]]:
    """Merges as [left, right] pairs, from either tokenizer.json format ("a b" strings or pairs)."""
    return [m.split(" ", 1) if isinstance(m, str) else list(m) for m in model.get("merges", [])]


def pretokens(tok: Any, text: str) -> list[str]:
    """The base tokenizer's words of ``text``: its normalizer, then its pre-tokenizer (or, with none,
    pieces starting at each space / "▁", as sentencepiece-style BPE tokenizers without one split)."""
    if tok.normalizer is not None:
        text = tok.normalizer.normalize_str(text)
    if tok.pre_tokenizer is not None:
        return [w for w, _ in tok.pre_tokenizer.pre_tokenize_str(text)]
    return [w for w in _SPACE_SPLIT.split(text) if w]


def _unmergeable(data: dict) -> set[str]:
    """Tokens no merge may use: unk and byte-fallback tokens (BPE merges characters, not fallback bytes)."""
    model = data["model"]
    out = {t for t in model["vocab"] if model.get("byte_fallback") and _BYTE_TOKEN.match(t)}
    if model.get("unk_token"):
        out.add(model["unk_token"])
    return out


# ---------------------------------------------------------------------------------------------
# learning merges


def _word_pairs(symbols: list[str]) -> Counter:
    return Counter(zip(symbols, symbols[1:], strict=False))


def _apply(symbols: list[str], left: str, right: str, token: str) -> list[str]:
    """Merge every (left, right) occurrence, left to right, as the BPE model does."""
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == left and symbols[i + 1] == right:
            out.append(token)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


def learn_merges(words: dict[str, list[str]], freqs: Counter, n_new: int, base_vocab: set[str],
                 blocked: set[str], min_frequency: int = MIN_FREQUENCY) -> list[NewMerge]:
    """Continue BPE on ``words`` (pre-token -> base tokens) until ``n_new`` tokens not in ``base_vocab`` exist
    or no pair saves ``min_frequency`` tokens. Ties go to the lexicographically smallest pair (deterministic)."""
    keys = sorted(words)
    symbols = [list(words[k]) for k in keys]
    weight = [freqs[k] for k in keys]
    counts: Counter = Counter()
    where: dict[tuple[str, str], set[int]] = {}
    for i, syms in enumerate(symbols):
        for pair, c in _word_pairs(syms).items():
            counts[pair] += c * weight[i]
            where.setdefault(pair, set()).add(i)
    heap = [(-c, pair) for pair, c in counts.items()]
    heapq.heapify(heap)
    merges: list[NewMerge] = []
    made: set[str] = set()
    while heap and len(made) < n_new:
        neg, pair = heapq.heappop(heap)
        if counts.get(pair, 0) != -neg:
            continue  # stale entry: the pair's count changed after it was pushed
        if -neg < min_frequency:
            break
        left, right = pair
        token = left + right
        if token in base_vocab or left in blocked or right in blocked:
            del counts[pair]  # never: see the module docstring
            continue
        saved, changed = 0, set()
        for i in sorted(where.pop(pair, ())):
            new = _apply(symbols[i], left, right, token)
            if len(new) == len(symbols[i]):
                continue
            saved += (len(symbols[i]) - len(new)) * weight[i]
            for p, c in _word_pairs(symbols[i]).items():
                counts[p] -= c * weight[i]
                changed.add(p)
            for p, c in _word_pairs(new).items():
                counts[p] += c * weight[i]
                where.setdefault(p, set()).add(i)
                changed.add(p)
            symbols[i] = new
        for p in changed:
            if counts[p] > 0:
                heapq.heappush(heap, (-counts[p], p))
            else:
                counts.pop(p, None)
        merges.append(NewMerge(left, right, token, saved))
        made.add(token)
    return merges


# ---------------------------------------------------------------------------------------------
# the extended tokenizer


def extend_json(data: dict, merges: list[NewMerge]) -> tuple[dict, dict[str, int]]:
    """A copy of the base tokenizer.json with the new tokens (ids after every base id) and merges appended.
    Merges are written as [left, right] pairs, which tokenizers >= 0.20 reads and which allow any character."""
    out = copy.deepcopy(data)
    model = out["model"]
    vocab = model["vocab"]
    next_id = max([*vocab.values(), *(t["id"] for t in out.get("added_tokens", []))], default=-1) + 1
    ids: dict[str, int] = {}
    for m in merges:
        if m.token not in vocab:
            vocab[m.token] = ids[m.token] = next_id
            next_id += 1
    model["merges"] = _merge_pairs(model) + [[m.left, m.right] for m in merges]
    return out, ids


def decompositions(merges: list[NewMerge], base_vocab: dict[str, int]) -> dict[str, list[int]]:
    """Each new token as base ids: its two parts' decompositions, joined (parts are base or earlier tokens)."""
    out: dict[str, list[int]] = {}
    for m in merges:
        if m.token not in out:
            out[m.token] = [*_ids_of(m.left, out, base_vocab), *_ids_of(m.right, out, base_vocab)]
    return out


def _ids_of(token: str, new: dict[str, list[int]], base_vocab: dict[str, int]) -> list[int]:
    return [base_vocab[token]] if token in base_vocab else new[token]


# ---------------------------------------------------------------------------------------------
# the command


def _split(n: int, holdout: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, held-out) document positions: a seeded permutation, the last ``holdout`` share held out."""
    order = np.random.default_rng(seed).permutation(n).tolist()
    n_held = max(1, round(n * holdout))
    return sorted(order[: n - n_held]), sorted(order[n - n_held :])


def fertility(tokenizer_path: str, texts: list[str], words: list[list[str]]) -> dict:
    """Tokens and tokens per word of a set of documents."""
    n_tok = int(count_tokens(tokenizer_path, texts).sum())
    n_words = sum(len(w) for w in words)
    return {"tokens": n_tok, "words": n_words, "tokens_per_word": n_tok / n_words if n_words else None}


def _check_extended(path: str, base: Any, ids: dict[str, int], texts: list[str]) -> None:
    """Load the written tokenizer and check what the tokenizer promises before it is published."""
    ext = load_tokenizer(path)
    base_vocab = base.get_vocab(with_added_tokens=True)
    moved = [t for t, i in base_vocab.items() if ext.token_to_id(t) != i]
    wrong = [t for t, i in ids.items() if ext.token_to_id(t) != i]
    if moved or wrong:
        raise RuntimeError(f"extended tokenizer lost ids: base {moved[:5]}, new {wrong[:5]}")
    for text in texts:
        if ext.decode(ext.encode(text, add_special_tokens=False).ids, skip_special_tokens=False) != \
                base.decode(base.encode(text, add_special_tokens=False).ids, skip_special_tokens=False):
            raise RuntimeError(f"extended tokenizer decodes differently from the base on: {text[:80]!r}")


def _publish(tmp_dir: str, output: str) -> None:
    """Move the finished directory into place; an old output is replaced only after the new one is whole."""
    old = None
    if os.path.exists(output):
        old = tempfile.mkdtemp(prefix=".old-", dir=os.path.dirname(os.path.abspath(output)))
        os.replace(output, os.path.join(old, "x"))
    os.replace(tmp_dir, output)
    if old:
        shutil.rmtree(old)


def extend_vocab(base_path: str, manifest_path: str, n_add: int, output: str, lang: str = "pt",
                 sample_docs: int = SAMPLE_DOCS, holdout: float = HOLDOUT, seed: int = 0,
                 min_frequency: int = MIN_FREQUENCY) -> dict:
    """Learn ``n_add`` tokens from the corpus's ``lang`` documents and write ``output``/tokenizer.json,
    new_tokens.jsonl and extend_report.json; returns the report. Nothing appears at ``output`` on failure."""
    t0 = time.perf_counter()
    if n_add < 1:
        raise TokenizerInputError(f"--add must be >= 1, got {n_add}")
    if not 0 < holdout < 1:
        raise TokenizerInputError(f"--holdout must be in (0, 1), got {holdout}")
    data = load_bpe_json(base_path)
    base = load_tokenizer(base_path)
    target = normalize_lang(lang)
    sample = sample_corpus(manifest_path, sample_docs, seed, lang=target)
    if len(sample.texts) < 2:
        raise TokenizerInputError(f"{manifest_path}: {len(sample.texts)} document(s) with lang={target}; "
                                  "need at least 2 (one to learn from, one held out)")
    train, held = _split(len(sample.texts), holdout, seed)
    freqs: Counter = Counter(w for i in train for w in pretokens(base, sample.texts[i]))
    words = {w: [t.value for t in base.model.tokenize(w)] for w in freqs}
    base_vocab = data["model"]["vocab"]
    merges = learn_merges(words, freqs, n_add, set(base_vocab), _unmergeable(data), min_frequency)
    ids_made = len({m.token for m in merges})
    if ids_made < n_add:
        raise TooFewTokens(
            f"--add {n_add}: the training sample ({len(train)} {target} documents, {sum(freqs.values()):,} "
            f"pre-tokens, {len(freqs):,} distinct) supports only {ids_made} new tokens that each save >= "
            f"{min_frequency} tokens; ask for <= {ids_made}, or give more {target} text (--sample-docs, a larger "
            "corpus)", ids_made)
    learn_s = time.perf_counter() - t0
    extended, ids = extend_json(data, merges)
    parent = os.path.dirname(os.path.abspath(output))
    io.ensure_dir(parent)
    tmp_dir = tempfile.mkdtemp(prefix=".extend-vocab-", dir=parent)
    try:
        tok_path = os.path.join(tmp_dir, "tokenizer.json")
        io.write_text_atomic(tok_path, json.dumps(extended, ensure_ascii=False, indent=1) + "\n")
        held_texts = [sample.texts[i] for i in held]
        _check_extended(tok_path, base, ids, held_texts)
        _write_new_tokens(os.path.join(tmp_dir, "new_tokens.jsonl"), merges, ids, base)
        report = {
            "base": os.path.abspath(base_path), "manifest": os.path.abspath(manifest_path), "lang": target,
            "requested": n_add, "new_tokens": len(ids), "merges_added": len(merges),
            "min_frequency": min_frequency, "seed": seed,
            "sample": {"requested": sample_docs, "docs": len(sample.texts), "train_docs": len(train),
                       "held_out_docs": len(held),
                       "train_bytes": sum(len(sample.texts[i].encode("utf-8")) for i in train)},
            "saved_tokens_on_train": sum(m.saved for m in merges),
            "held_out": held_out_fertility(base_path, tok_path, held_texts, target),
            "seconds": {"learn": round(learn_s, 3), "total": round(time.perf_counter() - t0, 3)},
        }
        io.write_json_atomic(os.path.join(tmp_dir, "extend_report.json"), report)
        _publish(tmp_dir, output)
    finally:
        if os.path.exists(tmp_dir):
            shutil.rmtree(tmp_dir)
    return report


def held_out_fertility(base: str, ext: str, texts: list[str], lang: str) -> dict:
    """Tokens per word of held-out documents under the base and the extended tokenizer."""
    words = doc_words(texts, [lang] * len(texts))
    before, after = fertility(base, texts, words), fertility(ext, texts, words)
    return {"before": before, "after": after,
            "token_reduction": 1 - after["tokens"] / before["tokens"] if before["tokens"] else None}


def _write_new_tokens(path: str, merges: list[NewMerge], ids: dict[str, int], base: Any) -> None:
    """One JSON line per new token: id, token, readable text, the merge that makes it, its base ids."""
    base_vocab = base.get_vocab(with_added_tokens=True)
    decomp = decompositions(merges, base_vocab)
    first = {}
    for m in merges:
        first.setdefault(m.token, m)
    lines = []
    for token, new_id in sorted(ids.items(), key=lambda kv: kv[1]):
        m, pieces = first[token], decomp[token]
        lines.append(json.dumps({"id": new_id, "token": token, "text": base.decode(pieces),
                                 "merge": [m.left, m.right], "base_ids": pieces, "saved_on_train": m.saved},
                                ensure_ascii=False))
    io.write_text_atomic(path, "\n".join(lines) + "\n")


def format_summary(report: dict) -> str:
    h = report["held_out"]
    return (f"{report['new_tokens']} new {report['lang']} tokens ({report['merges_added']} merges) from "
            f"{report['sample']['train_docs']} documents; held-out tokens per word "
            f"{h['before']['tokens_per_word']:.3f} -> {h['after']['tokens_per_word']:.3f} "
            f"({h['token_reduction']:.1%} fewer tokens) in {report['seconds']['total']:.1f} s")

