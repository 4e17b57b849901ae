"""Tiny demo classifiers (edu, stem, toxic) trained in seconds from the bundled seed sets.

Why: no model can be downloaded at run time here, yet an offline demo run of the pipeline
should produce real ``edu_score``/``stem_score``/``toxic_score`` columns. The seed sets in
``classifiers/demo/seed/*.jsonl`` are short Portuguese and English texts written for this project
(48 per set per language, balanced), so these models only demonstrate the mechanics: they are
not corpus-quality classifiers. Train real ones with :func:`classifiers.train.train_classifier`
on LLM-annotated samples (:mod:`classifiers.annotate`).

Training is deterministic (one thread, fixed seed), and a model whose ``model_card.json``
records the same seed-file sha256 and settings is reused instead of retrained.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from classifiers.train import train_classifier

SEED_DIR = Path(__file__).resolve().parent / "seed"
DEMO_NAMES: tuple[str, ...] = ("edu", "stem", "toxic")

# Small and fast: character n-grams (minn/maxn) let a few hundred sentences generalise across
# word forms (Portuguese inflection); a 100k-bucket, 16-dim table keeps each model.bin ~6.5 MB.
# Chosen by mean held-out F1 over 6 split seeds among a dozen settings (see the report).
DEMO_SETTINGS: dict[str, Any] = {
    "test_fraction": 0.2,
    "seed": 1,
    "epoch": 100,
    "lr": 0.5,
    "wordNgrams": 2,
    "dim": 16,
    "minn": 4,
    "maxn": 6,
    "minCount": 1,
    "bucket": 100_000,
    "loss": "softmax",
    "thread": 1,
}


def seed_file(name: str) -> Path:
    """Path of the bundled seed set for ``name`` (edu, stem or toxic)."""
    if name not in DEMO_NAMES:
        raise ValueError(f"no seed set {name!r}; available: {DEMO_NAMES}")
    return SEED_DIR / f"{name}.jsonl"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _up_to_date(model_dir: Path, data: Path) -> bool:
    card_path = model_dir / "model_card.json"
    if not (model_dir / "model.bin").is_file() or not card_path.is_file():
        return False
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
        files = card["data"]["files"]
        ft = card["settings"]["fasttext"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    wanted = {k: v for k, v in DEMO_SETTINGS.items() if k not in ("test_fraction", "seed")}
    return (
        [f.get("sha256") for f in files] == [_sha256(data)]
        and all(ft.get(k) == v for k, v in wanted.items())
        and card["settings"].get("test_fraction") == DEMO_SETTINGS["test_fraction"]
        and card["model"]["sha256"] == _sha256(model_dir / "model.bin")
    )


def train_demo_models(
    output_dir: str | os.PathLike[str],
    *,
    names: tuple[str, ...] = DEMO_NAMES,
    force: bool = False,
) -> dict[str, str]:
    """Train (or reuse) the demo models; return ``{name: path to model.bin}``.

    Each model lands in ``output_dir/<name>/`` with its ``report.json`` and ``model_card.json``.
    Load one with ``FastTextClassifier(path, positive_label="__label__1", name=name)``.
    """
    out = Path(output_dir)
    paths: dict[str, str] = {}
    for name in names:
        data = seed_file(name)
        model_dir = out / name
        if force or not _up_to_date(model_dir, data):
            train_classifier([data], model_dir, label_column="label", name=f"demo-{name}", **DEMO_SETTINGS)
        paths[name] = str(model_dir / "model.bin")
    return paths


def demo_metrics(output_dir: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Held-out metrics of trained demo models, read from their model cards."""
    result: dict[str, dict[str, Any]] = {}
    for name in DEMO_NAMES:
        card = Path(output_dir) / name / "model_card.json"
        if card.is_file():
            result[name] = json.loads(card.read_text(encoding="utf-8"))["metrics_held_out"]
    return result
