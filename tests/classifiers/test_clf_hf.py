"""HFSequenceClassifier with tiny BERT models built in the test (no download)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from classifiers.hf import HFSequenceClassifier  # noqa: E402 - after the optional-import skips

WORDS = [
    "o",
    "a",
    "de",
    "que",
    "e",
    "aula",
    "física",
    "energia",
    "massa",
    "força",
    "gol",
    "time",
    "jogo",
    "promoção",
    "compre",
    "the",
    "of",
    "and",
]
TEXTS = [
    "a força e a massa na aula de física",
    "compre já promoção",
    "",
    "the energia of and " * 40,  # longer than max_length: truncated
    "gol do time no jogo",
]


def _tiny_model(path: Path, num_labels: int, id2label: dict[int, str] | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    vocab = path / "vocab.txt"
    vocab.write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n", encoding="utf-8"
    )
    tokenizer = transformers.BertTokenizer(vocab_file=str(vocab), do_lower_case=True)
    tokenizer.save_pretrained(str(path))
    config = transformers.BertConfig(
        vocab_size=5 + len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64, num_labels=num_labels,
        id2label=id2label, label2id={v: k for k, v in id2label.items()} if id2label else None,
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.BertForSequenceClassification(config).save_pretrained(str(path))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    return {
        "regression": _tiny_model(root / "reg", 1),
        "binary": _tiny_model(root / "bin", 2, {0: "low", 1: "high"}),
        "buckets": _tiny_model(root / "six", 6, {i: str(i) for i in range(6)}),
    }


def test_regression_head_fineweb_edu_style(models: dict[str, Path]) -> None:
    clf = HFSequenceClassifier(models["regression"], max_length=32, batch_size=2)
    assert clf.mode == "regression"
    raw = clf.predict_raw(TEXTS)
    scores = clf.predict_proba(TEXTS)
    assert scores.dtype == np.float32 and scores.shape == (len(TEXTS),)
    assert np.all((scores >= 0) & (scores <= 1))
    np.testing.assert_allclose(scores, np.clip(raw, 0, 5) / 5, atol=1e-6)
    # batching by length must not change results or order
    one_by_one = np.concatenate([clf.predict_raw([t]) for t in TEXTS])
    np.testing.assert_allclose(raw, one_by_one, atol=1e-5)
    again = HFSequenceClassifier(models["regression"], max_length=32, batch_size=64).predict_proba(TEXTS)
    np.testing.assert_allclose(again, scores, atol=1e-6)
    clone = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(clone.predict_proba(TEXTS), scores, atol=1e-6)
    # a shifted range changes the scale, FineWeb-Edu's is 0-5
    shifted = HFSequenceClassifier(models["regression"], max_length=32, score_range=(-1.0, 1.0))
    np.testing.assert_allclose(shifted.predict_proba(TEXTS), (np.clip(raw, -1, 1) + 1) / 2, atol=1e-6)
    assert clf.predict_proba([]).shape == (0,)


def test_classification_heads(models: dict[str, Path]) -> None:
    binary = HFSequenceClassifier(models["binary"], positive_label="high")
    logits = binary.predict_raw(TEXTS)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(binary.predict_proba(TEXTS), probs[:, 1], atol=1e-6)
    low = HFSequenceClassifier(models["binary"], positive_label=0).predict_proba(TEXTS)
    np.testing.assert_allclose(low, probs[:, 0], atol=1e-6)
    with pytest.raises(ValueError, match="not among labels"):
        HFSequenceClassifier(models["binary"], positive_label="toxic")

    at3 = HFSequenceClassifier(models["buckets"], mode="at_least", threshold=3)
    logits6 = at3.predict_raw(TEXTS)
    p6 = np.exp(logits6) / np.exp(logits6).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(at3.predict_proba(TEXTS), p6[:, 3:].sum(axis=1), atol=1e-6)
    expected = HFSequenceClassifier(models["buckets"], mode="expected").predict_proba(TEXTS)
    np.testing.assert_allclose(expected, p6 @ (np.arange(6) / 5), atol=1e-6)
    with pytest.raises(ValueError, match="positive_label is required"):
        HFSequenceClassifier(models["buckets"])


def test_missing_directory_is_clear(tmp_path: Path) -> None:
    with pytest.raises((FileNotFoundError, OSError)):
        HFSequenceClassifier(tmp_path / "nope")
