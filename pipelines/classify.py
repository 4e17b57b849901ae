"""The classify stage: one score column per configured classifier, then drop or tag by threshold.

Scores are stored ([0, 1], float32) and decisions are separate (DESIGN.md): ``drop_above`` /
``drop_below`` reject documents with the reason ``classifier_drop:<score>=<value>``, and
``tag_at_least`` adds a tag (``stem``) to the ``tags`` list column, so a threshold can change in a
mixture recipe without recomputing a score. Models load once per worker process.

``path: demo:edu`` (or ``stem``, ``toxic``) names the demo models trained from the bundled seed sets
into ``<run>/models/demo/`` on the driver before any task starts (seconds; reused when current).
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa

from pipelines.config import ClassifierModelConfig, Config
from pipelines.schema import with_column
from pipelines.stage import DocumentStage

DEMO_PREFIX = "demo:"
_MODELS: dict[tuple, Any] = {}


def load_classifier(m: ClassifierModelConfig) -> Any:
    """The model for ``m``, loaded once per process (fastText or Hugging Face)."""
    key = tuple(sorted(m.model_dump().items()))
    if key not in _MODELS:
        if m.kind == "hf":
            from classifiers.hf import HFSequenceClassifier

            _MODELS[key] = HFSequenceClassifier(
                m.path, name=m.name, mode=m.mode, positive_label=m.positive_label, threshold=m.threshold,
                device=m.device, batch_size=m.batch_size, allow_pickle=m.allow_pickle)
        else:
            from classifiers.fasttext_classifier import FastTextClassifier

            _MODELS[key] = FastTextClassifier(m.path, m.positive_label, m.name, mode=m.mode, threshold=m.threshold,
                                              max_chars=m.max_chars)
    return _MODELS[key]


def resolve_demo_models(config: Config) -> None:
    """Train the demo models named ``demo:<name>`` into the run directory and point the config at them."""
    wanted = [m for m in config.classify.models if m.path.startswith(DEMO_PREFIX)]
    if not wanted:
        return
    from classifiers.demo.models import train_demo_models

    names = tuple(sorted({m.path[len(DEMO_PREFIX):] for m in wanted}))
    paths = train_demo_models(os.path.join(config.run_dir, "models", "demo"), names=names)
    for m in wanted:
        m.path = str(paths[m.path[len(DEMO_PREFIX):]])


class ClassifyStage(DocumentStage):
    name = "classify"

    def __init__(self, config: Config) -> None:
        super().__init__(config.model_copy(deep=True))  # demo paths are resolved into our own copy
        self.batch_rows = config.classify.batch_rows

    def ray_options(self) -> dict:
        gpus = self.config.classify.num_gpus
        return {"num_gpus": gpus} if gpus else {}

    def check_inputs(self, files: list[str]) -> None:
        super().check_inputs(files)
        resolve_demo_models(self.config)
        for m in self.config.classify.models:  # a wrong path or label fails before any task starts
            load_classifier(m)

    def process_batch(self, table: pa.Table):
        texts = [t or "" for t in table.column("text").to_pylist()]
        n = table.num_rows
        reasons: list[str | None] = [None] * n
        tags: list[list[str]] = [[] for _ in range(n)]
        counters: dict[str, Counter] = {"tagged": Counter(), "score_bucket": Counter()}
        for m in self.config.classify.models:
            scores = np.asarray(load_classifier(m).predict_proba(texts), dtype=np.float32) if n else \
                np.zeros(0, np.float32)
            table = with_column(table, m.name, pa.array(scores, pa.float32()))
            for b in np.floor(np.clip(scores, 0, 0.999) * 10).astype(int):
                counters["score_bucket"][f"{m.name}/{b / 10:.1f}"] += 1
            if m.drop_above is not None or m.drop_below is not None:
                high = scores > m.drop_above if m.drop_above is not None else np.zeros(n, bool)
                low = scores < m.drop_below if m.drop_below is not None else np.zeros(n, bool)
                for i in np.flatnonzero(high | low):
                    if reasons[i] is None:
                        reasons[i] = f"classifier_drop:{m.name}={scores[i]:.3f}"
            if m.tag_at_least is not None:
                tag = m.tag or m.name.removesuffix("_score")
                for i in np.flatnonzero(scores >= m.tag_at_least):
                    tags[i].append(tag)
                    counters["tagged"][tag] += 1
        if any(m.tag_at_least is not None for m in self.config.classify.models):
            table = with_column(table, "tags", pa.array(tags, pa.list_(pa.string())))
        return table, pa.array(reasons, pa.string()), counters
