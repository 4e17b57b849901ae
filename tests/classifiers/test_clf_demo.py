"""The bundled seed sets and the demo models trained from them."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from classifiers.demo.models import DEMO_NAMES, demo_metrics, seed_file, train_demo_models
from classifiers.fasttext_classifier import FastTextClassifier


@pytest.mark.parametrize("name", DEMO_NAMES)
def test_seed_sets_are_balanced_bilingual_and_unique(name: str) -> None:
    rows = [json.loads(line) for line in seed_file(name).read_text(encoding="utf-8").splitlines()]
    assert len({r["id"] for r in rows}) == len(rows)
    assert len({r["text"] for r in rows}) == len(rows)
    per_lang = Counter(r["lang"] for r in rows)
    assert set(per_lang) >= {"pt", "en"}
    for lang, n in per_lang.items():
        assert 40 <= n <= 80, (lang, n)
        labels = Counter(r["label"] for r in rows if r["lang"] == lang)
        assert labels[0] == labels[1], (lang, labels)
    assert all(isinstance(r["text"], str) and len(r["text"]) > 20 for r in rows)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    out = tmp_path_factory.mktemp("demo")
    return out, train_demo_models(out)


def test_demo_models_train_and_score(demo: tuple[Path, dict[str, str]]) -> None:
    out, paths = demo
    assert set(paths) == set(DEMO_NAMES)
    metrics = demo_metrics(out)
    for name in DEMO_NAMES:
        assert Path(paths[name]).is_file()
        assert metrics[name]["binary_f1"] >= 0.6, (name, metrics[name])

    # Sentences that are not in the seed sets.
    probes = {
        "toxic": (
            "Seu comentário é idiota e você é um imbecil.",
            "Obrigado, sua resposta me ajudou bastante.",
        ),
        "edu": (
            "A água ferve a 100 graus ao nível do mar porque a pressão atmosférica é de uma atmosfera.",
            "Oferta relâmpago! Frete grátis em todas as compras só hoje, aproveite!",
        ),
    }
    for name, (positive, negative) in probes.items():
        clf = FastTextClassifier(paths[name], "__label__1", name)
        pos, neg = clf.predict_proba([positive, negative])
        assert pos > neg, (name, pos, neg)


def test_demo_models_are_reused_and_deterministic(demo: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    out, paths = demo
    mtimes = {n: Path(p).stat().st_mtime_ns for n, p in paths.items()}
    assert train_demo_models(out) == paths
    assert {n: Path(p).stat().st_mtime_ns for n, p in paths.items()} == mtimes, "up-to-date models are reused"
    again = train_demo_models(tmp_path, names=("stem",))
    assert Path(again["stem"]).read_bytes() == Path(paths["stem"]).read_bytes()
    texts = ["A derivada mede a taxa de variação.", "O time venceu ontem."]
    a = FastTextClassifier(paths["stem"]).predict_proba(texts)
    b = FastTextClassifier(again["stem"]).predict_proba(texts)
    np.testing.assert_array_equal(a, b)
