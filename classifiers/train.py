"""Train a fastText document classifier from labelled Parquet or JSONL, with a report and card.

Why this shape: the ClassiCC-PT recipe (and FineWeb-Edu's) is "an LLM scores a sample 0–5, a
cheap classifier learns those scores, the classifier scores the whole corpus". This module is the
middle step. It accepts either

* ``text`` + ``label`` (any label values: ``0/1``, ``hq/lq``, ``True/False``), or
* ``text`` + a numeric ``score`` (0–5 from :mod:`classifiers.annotate`), turned into labels by
  ``binarize_threshold`` (``1`` if score >= threshold else ``0``; ClassiCC-PT uses 3) or by
  ``buckets`` (ascending edges; label = number of edges <= score, so edges ``[1, 2, 3, 4, 5]``
  give labels ``0``..``5`` for integer scores).

Everything is reproducible: the held-out split is a stratified split by a seeded hash of the
normalised text (duplicates land on the same side, and adding rows never moves old ones), the
training file is shuffled with a seeded RNG, and fastText trains on one thread by default
(fastText's Hogwild threads make multi-threaded training nondeterministic).

Outputs in ``output_dir``: ``model.bin`` (+ ``model.ftz`` when ``quantize``), ``report.json``
(per-class precision/recall/F1, confusion matrix, threshold curve for binary models) and
``model_card.json`` (data files with sha256 and sizes, label counts, settings, metrics, versions).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gzip
import hashlib
import json
import math
import os
import platform
import random
import shutil
import sys
import threading
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from classifiers.fasttext_classifier import LABEL_PREFIX, _load_fasttext, label_value, normalize_text

# -- deterministic memory for fastText training ---------------------------------------------------
# The fastText build we depend on (fasttext-numpy2-wheel) stores matrices in intgemm's
# AlignedVector, which does not zero memory, and fastText's DenseMatrix::uniform only fills
# `thread` tenths of the input matrix (upstream relies on std::vector zeroing the rest). So with
# thread < 10 most of the n-gram table starts as whatever the heap held: results change from one
# training to the next in the same process and sometimes die with "Encountered NaN". Measured
# here: 20 identical trainings in one process gave 6 different models and 1 NaN. glibc's
# M_PERTURB with byte 255 makes malloc return zero-filled memory (it fills with byte ^ 0xff),
# which restores upstream semantics (untouched rows are zero) and bitwise reproducibility.
_M_PERTURB = -6
_perturb_lock = threading.Lock()
_perturb_users = 0


def _glibc() -> Any | None:
    if platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "mallopt") else None
    except OSError:
        return None


@contextmanager
def zeroed_allocations() -> Iterator[bool]:
    """While active, malloc returns zeroed memory (glibc only); yields whether that holds.

    Reference-counted, so overlapping trainings in threads of one process stay covered. On other
    C libraries it yields False and training is not guaranteed to be reproducible.
    """
    global _perturb_users
    libc = _glibc()
    if libc is None:
        yield False
        return
    restore = int(os.environ.get("MALLOC_PERTURB_", "0") or 0) & 0xFF
    with _perturb_lock:
        if _perturb_users == 0:
            libc.mallopt(_M_PERTURB, 255)
        _perturb_users += 1
    try:
        yield True
    finally:
        with _perturb_lock:
            _perturb_users -= 1
            if _perturb_users == 0:
                libc.mallopt(_M_PERTURB, restore)


THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05 .. 0.95


# -- reading labelled data -------------------------------------------------------------------------
def _iter_jsonl(path: Path) -> Iterator[dict[str, Any] | None]:
    """Yield one dict per line; None for a line that is not a JSON object (counted, not fatal)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                yield None
                continue
            yield obj if isinstance(obj, dict) else None


def _iter_parquet(path: Path, columns: list[str]) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    present = [c for c in columns if c in pf.schema_arrow.names]
    for batch in pf.iter_batches(columns=present, batch_size=8192):
        yield from batch.to_pylist()


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _clean_label(value: Any) -> str | None:
    """A label value as a fastText label name: bools as 0/1, integral floats as ints, no spaces."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            value = int(value)
    name = "_".join(str(value).split())
    return name or None


def score_to_label(score: float, binarize_threshold: float | None, buckets: Sequence[float] | None) -> str:
    """Map a numeric score to a label name: buckets if given, else the binary threshold."""
    if buckets is not None:
        return str(bisect_right(list(buckets), score))
    assert binarize_threshold is not None
    return "1" if score >= binarize_threshold else "0"


def load_labelled(
    input_paths: Sequence[str | os.PathLike[str]],
    *,
    text_column: str = "text",
    label_column: str = "label",
    score_column: str | None = None,
    binarize_threshold: float | None = 3,
    buckets: Sequence[float] | None = None,
) -> tuple[list[str], list[str], list[dict[str, Any]], Counter[str]]:
    """Read labelled rows from Parquet/JSONL files.

    Returns ``(texts, labels, file_infos, skipped)``: texts are normalised (one line), labels are
    fastText label names without the prefix, ``file_infos`` describe each file for the model card,
    ``skipped`` counts rows dropped with their reason (nothing is dropped silently).
    """
    if buckets is not None:
        buckets = [float(b) for b in buckets]
        if any(b2 <= b1 for b1, b2 in zip(buckets, buckets[1:], strict=False)):
            raise ValueError(f"buckets must be strictly ascending edges, got {buckets}")
    texts: list[str] = []
    labels: list[str] = []
    infos: list[dict[str, Any]] = []
    skipped: Counter[str] = Counter()
    target = score_column or label_column
    for raw_path in input_paths:
        path = Path(raw_path)
        if not path.is_file():
            raise FileNotFoundError(f"training data not found: {path}")
        rows_read = rows_used = 0
        rows: Iterator[dict[str, Any] | None]
        rows = _iter_parquet(path, [text_column, target]) if _is_parquet(path) else _iter_jsonl(path)
        for row in rows:
            rows_read += 1
            if row is None:
                skipped["bad_json_line"] += 1
                continue
            text = row.get(text_column)
            if not isinstance(text, str) or not text.strip():
                skipped["missing_text"] += 1
                continue
            value = row.get(target)
            if score_column is not None:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    skipped["missing_score"] += 1
                    continue
                if isinstance(value, float) and math.isnan(value):
                    skipped["missing_score"] += 1
                    continue
                label: str | None = score_to_label(float(value), binarize_threshold, buckets)
            else:
                label = _clean_label(value)
                if label is None:
                    skipped["missing_label"] += 1
                    continue
            line = normalize_text(text)
            if not line:
                skipped["missing_text"] += 1
                continue
            texts.append(line)
            labels.append(label)
            rows_used += 1
        infos.append(
            {
                "path": str(path),
                "sha256": _sha256_file(path),
                "size_bytes": path.stat().st_size,
                "rows_read": rows_read,
                "rows_used": rows_used,
            }
        )
    return texts, labels, infos, skipped


# -- split -------------------------------------------------------------------------------------
def _split_hash(text: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}\x00{text}".encode("utf-8", "replace")).hexdigest()


def stratified_split(
    texts: Sequence[str], labels: Sequence[str], test_fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Deterministic stratified train/test split, returned as sorted index lists.

    Within each label, rows are ordered by a seeded hash of their text and the first
    ``round(n * test_fraction)`` go to test (at least one when the label has >= 2 rows), so each
    class is represented in proportion. Identical texts share a hash and are kept on one side, so
    near-free duplicates cannot inflate held-out metrics.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError("test_fraction must be in [0, 1)")
    by_label: dict[str, list[tuple[str, int]]] = {}
    for i, (text, label) in enumerate(zip(texts, labels, strict=True)):
        by_label.setdefault(label, []).append((_split_hash(text, seed), i))
    test: list[int] = []
    for label in sorted(by_label):
        rows = sorted(by_label[label])
        n = len(rows)
        want = round(n * test_fraction)
        if test_fraction > 0 and n >= 2:
            want = max(1, min(want, n - 1))
        taken = 0
        j = 0
        while j < n and taken < want:
            h = rows[j][0]
            # take the whole group of identical texts (same hash) together
            while j < n and rows[j][0] == h:
                test.append(rows[j][1])
                taken += 1
                j += 1
    test_set = set(test)
    train = [i for i in range(len(texts)) if i not in test_set]
    return train, sorted(test)


# -- metrics -----------------------------------------------------------------------------------
def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _roc_auc(y: np.ndarray, s: np.ndarray) -> float | None:
    """ROC AUC by the rank-sum formula (ties get average ranks); None with one class only."""
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def evaluate(
    true_labels: Sequence[str],
    probs: np.ndarray,
    label_names: Sequence[str],
    *,
    positive_label: str | None = None,
    binarize_threshold: float | None = None,
) -> dict[str, Any]:
    """Classification report for predictions ``probs`` (rows: docs, columns: ``label_names``).

    Per-class precision/recall/F1/support, macro F1, accuracy and the confusion matrix (rows: true,
    columns: predicted). For a binary problem with a known positive label, also the threshold
    curve of P(positive) at 0.05..0.95 and ROC AUC. For numeric labels with a
    ``binarize_threshold``, also the binary metrics of "P(label >= threshold) >= 0.5" and the mean
    absolute error of the expected value, which is how bucketed models are used downstream.
    """
    names = list(label_names)
    idx = {n: i for i, n in enumerate(names)}
    y_true = np.asarray([idx.get(t, -1) for t in true_labels], dtype=np.int64)
    y_pred = probs.argmax(axis=1) if len(true_labels) else np.zeros(0, dtype=np.int64)
    k = len(names)
    confusion = np.zeros((k, k), dtype=np.int64)
    for t, p in zip(y_true, y_pred, strict=True):
        if t >= 0:
            confusion[t, p] += 1
    per_class: dict[str, dict[str, float | int]] = {}
    for i, name in enumerate(names):
        tp = int(confusion[i, i])
        fp = int(confusion[:, i].sum() - tp)
        fn = int(confusion[i, :].sum() - tp)
        p, r, f = _prf(tp, fp, fn)
        per_class[name] = {"precision": p, "recall": r, "f1": f, "support": int(confusion[i].sum())}
    supported = [c for c in per_class.values() if c["support"]]
    report: dict[str, Any] = {
        "n": len(true_labels),
        "labels": names,
        "accuracy": float((y_true == y_pred).mean()) if len(true_labels) else 0.0,
        "macro_f1": float(np.mean([c["f1"] for c in supported])) if supported else 0.0,
        "per_class": per_class,
        "confusion_matrix": {"rows_true_cols_pred": names, "matrix": confusion.tolist()},
    }
    if k == 2 and positive_label is not None and positive_label in idx:
        pos = idx[positive_label]
        y = (y_true == pos).astype(np.int64)
        s = probs[:, pos].astype(np.float64)
        report["positive_label"] = positive_label
        report["binary"] = _binary_block(y, s)
    values = [label_value(n) for n in names]
    if binarize_threshold is not None and k > 2 and all(v is not None for v in values):
        vals = np.asarray(values, dtype=np.float64)
        weights = (vals >= binarize_threshold).astype(np.float64)
        p64 = probs.astype(np.float64)
        total = p64.sum(axis=1)
        total[total == 0] = 1.0
        s = (p64 @ weights) / total
        known = y_true >= 0
        y = np.zeros(len(y_true), dtype=np.int64)
        y[known] = (vals[y_true[known]] >= binarize_threshold).astype(np.int64)
        report["at_least"] = {"threshold": binarize_threshold, **_binary_block(y, s)}
        expected = (p64 @ vals) / total
        if known.any():
            report["expected_value_mae"] = float(np.abs(expected[known] - vals[y_true[known]]).mean())
    return report


def _binary_block(y: np.ndarray, s: np.ndarray) -> dict[str, Any]:
    curve = []
    for t in THRESHOLDS:
        pred = s >= t
        tp = int((pred & (y == 1)).sum())
        fp = int((pred & (y == 0)).sum())
        fn = int((~pred & (y == 1)).sum())
        p, r, f = _prf(tp, fp, fn)
        curve.append(
            {"threshold": t, "precision": p, "recall": r, "f1": f, "predicted_positive": int(pred.sum())}
        )
    at_half = next(c for c in curve if c["threshold"] == 0.5)
    return {
        "precision": at_half["precision"],
        "recall": at_half["recall"],
        "f1": at_half["f1"],
        "roc_auc": _roc_auc(y, s),
        "threshold_curve": curve,
    }


def _fasttext_version() -> str:
    for dist in ("fasttext-numpy2-wheel", "fasttext-numpy2", "fasttext", "fasttext-wheel"):
        try:
            return f"{dist} {metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


def _predict_matrix(model: Any, texts: Sequence[str], label_names: Sequence[str]) -> np.ndarray:
    idx = {LABEL_PREFIX + n: i for i, n in enumerate(label_names)}
    out = np.zeros((len(texts), len(label_names)), dtype=np.float32)
    for start in range(0, len(texts), 4096):
        labs, probs = model.predict(list(texts[start : start + 4096]), k=-1)
        for row, (ls, ps) in enumerate(zip(labs, probs, strict=True)):
            out[start + row, [idx[label] for label in ls]] = ps
    return np.clip(out, 0.0, 1.0)


def _headline(report: dict[str, Any]) -> dict[str, Any]:
    head: dict[str, Any] = {"n": report["n"], "accuracy": report["accuracy"], "macro_f1": report["macro_f1"]}
    for key in ("binary", "at_least"):
        if key in report:
            head[f"{key}_f1"] = report[key]["f1"]
            head[f"{key}_precision"] = report[key]["precision"]
            head[f"{key}_recall"] = report[key]["recall"]
            head[f"{key}_roc_auc"] = report[key]["roc_auc"]
    if "expected_value_mae" in report:
        head["expected_value_mae"] = report["expected_value_mae"]
    return head


# -- model size ---------------------------------------------------------------------------------
#: fastText's own default bucket count: the most a data set gets, however many n-grams it has.
MAX_BUCKET = 2_000_000
#: The fewest buckets auto-sizing gives (quantization also needs >= 256 rows in the input matrix).
MIN_BUCKET = 4096


def count_ngrams(texts: Sequence[str], word_ngrams: int, minn: int, maxn: int, limit: int) -> int:
    """Distinct word n-grams (2..word_ngrams, with fastText's end-of-line token) and character n-grams
    (minn..maxn of each distinct word), counted up to ``limit`` (then ``limit`` is returned)."""
    seen: set[int] = set()
    words: set[str] = set()
    for text in texts:
        tokens = [*text.split(), "</s>"]
        words.update(tokens)
        for n in range(2, word_ngrams + 1):
            seen.update(hash(tuple(tokens[i:i + n])) for i in range(len(tokens) - n + 1))
        if len(seen) >= limit:
            return limit
    if maxn > 0:
        for word in words:
            w = f"<{word}>"
            seen.update(hash(w[i:i + n]) for n in range(max(1, minn), maxn + 1) for i in range(len(w) - n + 1))
            if len(seen) >= limit:
                return limit
    return len(seen)


def auto_bucket(texts: Sequence[str], word_ngrams: int, minn: int, maxn: int) -> tuple[int, int]:
    """(bucket, distinct n-grams): twice the distinct n-grams of the training text, in [MIN_BUCKET, MAX_BUCKET].

    Why: ``model.bin`` holds ``bucket x dim`` floats whatever the data; fastText's 2M buckets make a
    toy model ~0.5 GB. Twice the n-grams keeps hash collisions rare (most buckets hold one n-gram or
    none), so accuracy is kept at a size proportionate to the data. No n-grams at all: no buckets.
    """
    if word_ngrams <= 1 and maxn <= 0:
        return 0, 0
    distinct = count_ngrams(texts, word_ngrams, minn, maxn, MAX_BUCKET // 2)
    return min(MAX_BUCKET, max(MIN_BUCKET, 2 * distinct)), distinct


# -- training ----------------------------------------------------------------------------------
def train_classifier(
    input_paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    text_column: str = "text",
    label_column: str = "label",
    score_column: str | None = None,
    binarize_threshold: float | None = 3,
    buckets: Sequence[float] | None = None,
    positive_label: str | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    epoch: int = 20,
    lr: float = 0.3,
    wordNgrams: int = 2,  # noqa: N803 - fastText's own parameter name, kept for recognisability
    dim: int = 64,
    minn: int = 0,
    maxn: int = 0,
    minCount: int = 1,  # noqa: N803
    bucket: int | None = None,
    loss: str = "softmax",
    thread: int = 1,
    quantize: bool = False,
    quantize_cutoff: int = 0,
    name: str | None = None,
) -> dict[str, Any]:
    """Train a fastText supervised classifier and write model, report and model card.

    Args:
        input_paths: Parquet (``.parquet``) or JSONL (``.jsonl``, ``.jsonl.gz``) files.
        output_dir: created if needed; receives ``model.bin`` (+ ``model.ftz``), ``report.json``,
            ``model_card.json``. The temporary training file lives in ``output_dir/tmp`` and is
            removed afterwards.
        label_column / score_column: use ``label_column`` as labels, or (when ``score_column`` is
            set) derive labels from numeric scores with ``binarize_threshold`` or ``buckets``.
        positive_label: the positive class of a binary problem (for the threshold curve); defaults
            to ``"1"`` when the labels are ``0``/``1``.
        test_fraction / seed: the deterministic stratified held-out split (see
            :func:`stratified_split`); ``seed`` also seeds shuffling and fastText.
        epoch, lr, wordNgrams, dim, minn, maxn, minCount, bucket, loss, thread: fastText settings.
            ``bucket * dim * 4`` bytes is the size of the n-gram table in ``model.bin``; ``bucket=None``
            (default) sizes it from the training text (`auto_bucket`), and the card records how.
            ``thread=1`` (default) makes the model byte-for-byte reproducible.
        quantize: also write ``model.ftz`` (much smaller; evaluated separately in the report).

    Returns a dict with ``model_path``, ``ftz_path`` (or None), ``report_path``,
    ``model_card_path``, ``labels``, ``positive_label``, ``metrics`` (held-out headline numbers)
    and ``label_counts``.
    """
    if isinstance(input_paths, str | os.PathLike):
        input_paths = [input_paths]
    if score_column is None and buckets is not None:
        raise ValueError("buckets applies to score_column; set score_column= too")
    if score_column is not None and buckets is None and binarize_threshold is None:
        raise ValueError("score_column needs binarize_threshold or buckets")
    fasttext = _load_fasttext()
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)

    texts, labels, file_infos, skipped = load_labelled(
        input_paths,
        text_column=text_column,
        label_column=label_column,
        score_column=score_column,
        binarize_threshold=binarize_threshold if buckets is None else None,
        buckets=buckets,
    )
    label_names = sorted(set(labels), key=lambda n: (label_value(n) is None, label_value(n) or 0.0, n))
    if len(label_names) < 2:
        raise ValueError(f"need at least two classes to train, found {label_names} in {len(texts)} rows")
    if positive_label is None and set(label_names) == {"0", "1"}:
        positive_label = "1"
    if positive_label is not None and positive_label not in label_names:
        raise ValueError(f"positive_label {positive_label!r} not among labels {label_names}")

    train_idx, test_idx = stratified_split(texts, labels, test_fraction, seed)
    rng = random.Random(seed)
    order = list(train_idx)
    rng.shuffle(order)

    tmp_dir = out / "tmp"
    tmp_dir.mkdir(exist_ok=True)
    train_file = tmp_dir / "train.txt"
    sizing: dict[str, Any] = {"bucket": bucket, "rule": "given"}
    if bucket is None:
        bucket, distinct = auto_bucket([texts[i] for i in order], wordNgrams, minn, maxn)
        sizing = {"bucket": bucket, "distinct_ngrams": distinct,
                  "rule": f"2 x distinct n-grams of the training text, in [{MIN_BUCKET}, {MAX_BUCKET}]"}
    model_path = out / "model.bin"
    ftz_path = out / "model.ftz" if quantize else None
    settings: dict[str, Any] = {
        "text_column": text_column,
        "label_column": None if score_column else label_column,
        "score_column": score_column,
        "binarize_threshold": binarize_threshold if score_column and buckets is None else None,
        "buckets": list(buckets) if buckets is not None else None,
        "positive_label": positive_label,
        "test_fraction": test_fraction,
        "seed": seed,
        "preprocessing": "line breaks -> spaces, strip (classifiers.fasttext_classifier.normalize_text)",
        "fasttext": {
            "epoch": epoch,
            "lr": lr,
            "wordNgrams": wordNgrams,
            "dim": dim,
            "minn": minn,
            "maxn": maxn,
            "minCount": minCount,
            "bucket": bucket,
            "loss": loss,
            "thread": thread,
            "seed": seed,
        },
        "quantize": quantize,
        "quantize_cutoff": quantize_cutoff if quantize else None,
        "sizing": sizing,
    }
    try:
        with open(train_file, "w", encoding="utf-8") as fh:
            for i in order:
                fh.write(f"{LABEL_PREFIX}{labels[i]} {texts[i]}\n")
        with zeroed_allocations() as zeroed:
            model = _train_supervised(
                fasttext,
                input=str(train_file),
                epoch=epoch,
                lr=lr,
                wordNgrams=wordNgrams,
                dim=dim,
                minn=minn,
                maxn=maxn,
                minCount=minCount,
                bucket=bucket,
                loss=loss,
                thread=thread,
                seed=seed,
                verbose=0,
            )
        settings["zeroed_allocations"] = zeroed
        _save_model(model, model_path)
        test_texts = [texts[i] for i in test_idx]
        test_labels = [labels[i] for i in test_idx]
        eval_kwargs = {
            "positive_label": positive_label,
            "binarize_threshold": binarize_threshold if buckets is not None else None,
        }
        report: dict[str, Any] = {
            "held_out": evaluate(
                test_labels, _predict_matrix(model, test_texts, label_names), label_names, **eval_kwargs
            ),
            "train": evaluate(
                [labels[i] for i in train_idx],
                _predict_matrix(model, [texts[i] for i in train_idx], label_names),
                label_names,
                **eval_kwargs,
            ),
        }
        if quantize:
            assert ftz_path is not None
            try:
                with zeroed_allocations():
                    model.quantize(
                        input=str(train_file),
                        qnorm=True,
                        retrain=quantize_cutoff > 0,
                        cutoff=quantize_cutoff,
                    )
            except ValueError as err:
                raise ValueError(
                    f"quantization failed ({err}); it needs >= 256 input rows: use wordNgrams >= 2 "
                    "or minn/maxn (which add `bucket` rows), or quantize=False"
                ) from err
            _save_model(model, ftz_path)
            report["held_out_quantized"] = evaluate(
                test_labels, _predict_matrix(model, test_texts, label_names), label_names, **eval_kwargs
            )
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)

    label_counts = {
        "total": dict(sorted(Counter(labels).items())),
        "train": dict(sorted(Counter(labels[i] for i in train_idx).items())),
        "test": dict(sorted(Counter(labels[i] for i in test_idx).items())),
    }
    report = {"labels": label_names, "label_counts": label_counts, **report}
    report_path = out / "report.json"
    _write_json(report_path, report)

    metrics = _headline(report["held_out"])
    if "held_out_quantized" in report:
        metrics["quantized"] = _headline(report["held_out_quantized"])
    card = {
        "name": name or out.name,
        "kind": "fasttext",
        "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model": {
            "path": model_path.name,
            "sha256": _sha256_file(model_path),
            "size_bytes": model_path.stat().st_size,
        },
        "model_ftz": (
            {"path": ftz_path.name, "sha256": _sha256_file(ftz_path), "size_bytes": ftz_path.stat().st_size}
            if ftz_path
            else None
        ),
        "labels": [LABEL_PREFIX + n for n in label_names],
        "positive_label": LABEL_PREFIX + positive_label if positive_label else None,
        "data": {"files": file_infos, "rows_used": len(texts), "rows_skipped": dict(skipped)},
        "label_counts": label_counts,
        "settings": settings,
        "metrics_held_out": metrics,
        "versions": {
            "fasttext": _fasttext_version(),
            "numpy": np.__version__,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
    }
    card_path = out / "model_card.json"
    _write_json(card_path, card)
    return {
        "model_path": str(model_path),
        "ftz_path": str(ftz_path) if ftz_path else None,
        "report_path": str(report_path),
        "model_card_path": str(card_path),
        "labels": [LABEL_PREFIX + n for n in label_names],
        "positive_label": LABEL_PREFIX + positive_label if positive_label else None,
        "metrics": metrics,
        "label_counts": label_counts,
        "sizing": {**sizing, "dim": dim, "model_bytes": model_path.stat().st_size,
                   "model_ftz_bytes": ftz_path.stat().st_size if ftz_path else None},
    }


def _train_supervised(fasttext: Any, **kwargs: Any) -> Any:
    """fastText training with its NaN error turned into advice (it means divergence)."""
    try:
        return fasttext.train_supervised(**kwargs)
    except RuntimeError as err:
        if "NaN" in str(err):
            raise RuntimeError(
                f"fastText training diverged (Encountered NaN) with lr={kwargs.get('lr')}; "
                "lower lr (e.g. halve it) or epoch"
            ) from err
        raise


def _save_model(model: Any, path: Path) -> None:
    """Save a fastText model under a temporary name, then rename (no half-written model.bin)."""
    tmp = path.with_name(path.name + ".tmp")
    model.save_model(str(tmp))
    os.replace(tmp, path)


def _write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temp name, then rename) so a killed run leaves no half file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, ensure_ascii=False, sort_keys=False)
        fh.write("\n")
    os.replace(tmp, path)
