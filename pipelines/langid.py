"""The langid stage: fastText language ID per document; keep the configured target languages.

Writes ``lang``, ``lang_score`` and ``lang_top`` (the top-k alternatives); documents whose language
is not a target, or whose score is under that language's threshold (default 0.65, FineWeb's), go
to ``rejected/`` with the reason.
"""

from __future__ import annotations

from collections import Counter

import pyarrow as pa

from classifiers.langid import LanguageIdentifier
from pipelines.config import Config, check_langid_labels
from pipelines.schema import with_column
from pipelines.stage import DocumentStage

LANG_TOP_TYPE = pa.list_(pa.struct([("lang", pa.string()), ("score", pa.float32())]))

_MODELS: dict[tuple[str | None, str, int], LanguageIdentifier] = {}


def get_identifier(model: str | None, label_prefix: str, max_chars: int) -> LanguageIdentifier:
    """One model per worker process, shared by every shard the process runs."""
    key = (model, label_prefix, max_chars)
    if key not in _MODELS:
        _MODELS[key] = LanguageIdentifier(model, label_prefix, max_chars)
    return _MODELS[key]


class LangidStage(DocumentStage):
    name = "langid"

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.batch_rows = config.langid.batch_rows

    def check_inputs(self, files: list[str]) -> None:
        super().check_inputs(files)
        cfg = self.config.langid
        ident = get_identifier(cfg.model, cfg.label_prefix, cfg.max_chars)  # fail early on a bad model path
        if cfg.model is not None:  # the bundled lid.176's labels are checked with the config
            check_langid_labels(cfg, ident.labels, cfg.model)

    def process_batch(self, table: pa.Table):
        cfg = self.config.langid
        ident = get_identifier(cfg.model, cfg.label_prefix, cfg.max_chars)
        pred = ident.predict(table.column("text").to_pylist(), k=cfg.top_k)
        targets = set(cfg.languages)
        reasons: list[str | None] = []
        by_lang: Counter = Counter()
        for lang, score in zip(pred.lang, pred.score.tolist(), strict=True):
            by_lang[lang] += 1
            if targets and lang not in targets:
                reasons.append(f"lang_not_target:{lang}")
            elif score < cfg.threshold_for(lang):
                reasons.append(f"lang_low_score:{lang}={score:.3f}")
            else:
                reasons.append(None)
        table = with_column(table, "lang", pred.lang)
        table = with_column(table, "lang_score", pa.array(pred.score, pa.float32()))
        top = [[{"lang": n, "score": p} for n, p in alts] for alts in pred.top]
        table = with_column(table, "lang_top", pa.array(top, LANG_TOP_TYPE))
        return table, pa.array(reasons, pa.string()), {"lang": by_lang}
