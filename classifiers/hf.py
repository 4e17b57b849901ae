"""Optional classifier kind: a Hugging Face sequence-classification model from a local directory.

Why: some published quality classifiers are small transformers rather than fastText models —
FineWeb-Edu's classifier is a BERT-style encoder with a one-output regression head predicting a
0–5 score, others are ordinary softmax classifiers. They are slower than fastText by orders of
magnitude (use a GPU for a corpus), but more accurate, and the classify stage can use either kind
through the same ``predict_proba(texts) -> float32 [0, 1]`` contract.

torch and transformers are an optional extra (``cptcorpus[hf]``): they are imported only when an
:class:`HFSequenceClassifier` is created, and a missing install raises a clear ImportError.
Models load with ``local_files_only=True``: nothing is ever downloaded at run time.

Modes (``mode="auto"`` picks ``regression`` for one-output heads, else ``positive``):

* ``regression``: the single output, clipped to ``score_range`` and rescaled to [0, 1]
  (FineWeb-Edu: range 0–5, so 3.0 -> 0.6); :meth:`predict_raw` returns the raw value;
* ``positive``: softmax probability of ``positive_label`` (a label name from ``id2label`` or an
  index; default index 1 for two-class models);
* ``at_least`` / ``expected``: as in :class:`classifiers.fasttext_classifier.FastTextClassifier`,
  over labels whose names are numbers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

HFMode = Literal["auto", "regression", "positive", "at_least", "expected"]


def _import_hf() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "HFSequenceClassifier needs torch and transformers, which are an optional extra: "
            "pip install 'cptcorpus[hf]' (or pip install torch transformers)"
        ) from err
    return torch, transformers


def _label_number(name: str) -> float | None:
    try:
        return float(name)
    except (TypeError, ValueError):
        return None


class HFSequenceClassifier:
    """A transformers ``AutoModelForSequenceClassification`` scoring batches of documents.

    Load once per worker; pickling sends only the arguments and reloads the model on the other
    side (like :class:`~classifiers.fasttext_classifier.FastTextClassifier`).
    """

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        *,
        name: str | None = None,
        mode: HFMode = "auto",
        positive_label: str | int | None = None,
        threshold: float | None = None,
        score_range: tuple[float, float] = (0.0, 5.0),
        device: str = "cpu",
        batch_size: int = 32,
        max_length: int = 512,
        dtype: str | None = None,
        allow_pickle: bool = False,
    ) -> None:
        """
        Args:
            model_dir: a local directory with ``config.json``, weights and tokenizer files.
            name: the score's name; defaults to the directory name.
            mode: see the module docstring.
            positive_label: label name or index for ``positive`` mode.
            threshold: label value for ``at_least`` mode.
            score_range: (low, high) of a regression head's output, mapped to [0, 1].
            device: ``cpu``, ``cuda`` or ``cuda:N``.
            batch_size: documents per forward pass.
            max_length: tokens per document (longer ones are truncated, as in training); capped
                at what the model supports.
            dtype: ``float32`` (default), ``float16`` or ``bfloat16`` (GPU).
            allow_pickle: also accept ``pytorch_model.bin`` weights, which are pickles and can run
                code when loaded; off by default, so only safetensors weights load.
        """
        self.model_dir = Path(model_dir)
        self.name = name or self.model_dir.name
        self.mode_arg: HFMode = mode
        self.positive_label_arg = positive_label
        self.threshold = threshold
        self.score_range = (float(score_range[0]), float(score_range[1]))
        self.device = device
        self.batch_size = int(batch_size)
        self.max_length = int(max_length)
        self.dtype = dtype
        self.allow_pickle = allow_pickle
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.score_range[1] <= self.score_range[0]:
            raise ValueError("score_range must be (low, high) with high > low")
        self._load()

    def _load(self) -> None:
        torch, transformers = _import_hf()
        if not self.model_dir.is_dir():
            raise FileNotFoundError(f"model directory not found: {self.model_dir}")
        torch_dtype = getattr(torch, self.dtype) if self.dtype else None
        self._torch = torch
        self._tokenizer = transformers.AutoTokenizer.from_pretrained(
            str(self.model_dir), local_files_only=True
        )
        kwargs: dict[str, Any] = {"local_files_only": True, "use_safetensors": not self.allow_pickle}
        if torch_dtype is not None:
            kwargs["dtype"] = torch_dtype
        self._model = transformers.AutoModelForSequenceClassification.from_pretrained(
            str(self.model_dir), **kwargs
        )
        self._model.to(self.device)
        self._model.eval()
        config = self._model.config
        # Never ask for more tokens than the model has positions for (a too-long batch fails
        # inside the embedding layer); RoBERTa-style models report their usable length through
        # the tokenizer's model_max_length, BERT-style ones through max_position_embeddings.
        limits = [self.max_length]
        tok_max = getattr(self._tokenizer, "model_max_length", None)
        if isinstance(tok_max, int) and 0 < tok_max < 1_000_000:
            limits.append(tok_max)
        positions = getattr(config, "max_position_embeddings", None)
        if isinstance(positions, int) and positions > 0:
            limits.append(positions)
        self.effective_max_length = min(limits)
        self.num_labels = int(config.num_labels)
        id2label = getattr(config, "id2label", None) or {}
        self.labels: tuple[str, ...] = tuple(
            str(id2label.get(i, id2label.get(str(i), i))) for i in range(self.num_labels)
        )
        mode = self.mode_arg
        if mode == "auto":
            is_regression = self.num_labels == 1 or getattr(config, "problem_type", None) == "regression"
            mode = "regression" if is_regression else "positive"
        self.mode = mode
        self._weights: np.ndarray | None = None
        self.positive_index: int | None = None
        if mode == "regression":
            if self.num_labels != 1:
                raise ValueError(f"regression mode needs a one-output head; model has {self.num_labels}")
        elif mode == "positive":
            self.positive_index = self._resolve_positive(self.positive_label_arg)
        elif mode in ("at_least", "expected"):
            values = [_label_number(label) for label in self.labels]
            if any(v is None for v in values):
                raise ValueError(f"mode {mode!r} needs numeric label names; model has {list(self.labels)}")
            vals = np.asarray(values, dtype=np.float64)
            if mode == "at_least":
                if self.threshold is None:
                    raise ValueError("mode 'at_least' needs threshold=")
                self._weights = (vals >= float(self.threshold)).astype(np.float64)
            else:
                lo, hi = float(vals.min()), float(vals.max())
                self._weights = (vals - lo) / (hi - lo) if hi > lo else np.zeros_like(vals)
        else:
            raise ValueError(f"unknown mode {mode!r}")

    def _resolve_positive(self, label: str | int | None) -> int:
        if self.num_labels < 2:
            raise ValueError("positive mode needs a classification head with >= 2 outputs")
        if label is None:
            if self.num_labels == 2:
                return 1
            raise ValueError(f"positive_label is required; labels: {list(self.labels)}")
        if isinstance(label, int):
            if not 0 <= label < self.num_labels:
                raise ValueError(f"positive_label index {label} out of range 0..{self.num_labels - 1}")
            return label
        if label in self.labels:
            return self.labels.index(label)
        raise ValueError(f"positive_label {label!r} not among labels {list(self.labels)}")

    def __getstate__(self) -> dict[str, Any]:
        keep = (
            "model_dir", "name", "mode_arg", "positive_label_arg", "threshold", "score_range",
            "device", "batch_size", "max_length", "dtype", "allow_pickle",
        )  # fmt: skip
        return {k: self.__dict__[k] for k in keep}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._load()

    def __repr__(self) -> str:
        return (
            f"HFSequenceClassifier(name={self.name!r}, model_dir={str(self.model_dir)!r}, mode={self.mode!r})"
        )

    def predict_raw(self, texts: Sequence[str]) -> np.ndarray:
        """Model outputs, float32: shape ``(n,)`` for a regression head, else ``(n, num_labels)``
        logits. Batches are formed from texts sorted by length (less padding, same results);
        output rows follow the input order."""
        torch = self._torch
        n = len(texts)
        width = 1 if self.num_labels == 1 else self.num_labels
        out = np.zeros((n, width), dtype=np.float32)
        if n == 0:
            return out[:, 0] if width == 1 else out
        clean = [t if isinstance(t, str) else "" for t in texts]
        order = sorted(range(n), key=lambda i: len(clean[i]))
        with torch.inference_mode():
            for start in range(0, n, self.batch_size):
                idx = order[start : start + self.batch_size]
                enc = self._tokenizer(
                    [clean[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.effective_max_length,
                    return_tensors="pt",
                ).to(self.device)
                logits = self._model(**enc).logits.float().cpu().numpy()
                out[idx] = logits.reshape(len(idx), width)
        return out[:, 0] if width == 1 else out

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """The score of each document, float32 in [0, 1]."""
        raw = self.predict_raw(texts)
        if self.mode == "regression":
            lo, hi = self.score_range
            scores = (np.clip(raw.astype(np.float64), lo, hi) - lo) / (hi - lo)
        else:
            logits = raw.astype(np.float64)
            logits -= logits.max(axis=1, keepdims=True)
            probs = np.exp(logits)
            probs /= probs.sum(axis=1, keepdims=True)
            if self.mode == "positive":
                assert self.positive_index is not None
                scores = probs[:, self.positive_index]
            else:
                assert self._weights is not None
                scores = probs @ self._weights
        return np.clip(scores, 0.0, 1.0).astype(np.float32)
