"""The filter stage: heuristic quality rules per document language, every rejection explained.

Each document is judged by the rule chain of its language's preset (``filters/data/presets/<lang>.yaml``:
Gopher repetition, Gopher quality, C4, FineWeb quality, in that order) after the URL block lists;
the first failing rule names the rejection (``gopher_quality:word_count=12``). Kept documents get
C4's line removals and PII normalisation (e-mail and IP addresses replaced, as FineWeb does).
The summary's ``counters.rejected_by_lang`` is the funnel: removals per language and rule;
``counters.default_preset_by_lang`` counts documents judged with the FineWeb defaults because their
language has no preset (``filter.unknown_language: default``), and a warning names those languages.
"""

from __future__ import annotations

import logging
from collections import Counter

import pyarrow as pa

from filters import RuleChain, TextStats, UrlBlocklist, load_preset, merge_overrides, normalize_pii
from filters.presets import PresetNotFoundError, available_presets, default_preset, resolve_preset_dir
from pipelines.config import Config, ConfigError
from pipelines.schema import with_column
from pipelines.stage import DocumentStage

log = logging.getLogger(__name__)

STAT_COLUMNS = {"char_count": pa.int64(), "word_count": pa.int64(), "mean_word_length": pa.float32(),
                "alpha_word_ratio": pa.float32(), "line_count": pa.int64()}


class FilterStage(DocumentStage):
    name = "filter"

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.batch_rows = config.filter.batch_rows
        self._chains: dict[str, RuleChain | None] = {}
        self._defaulted: set[str] = set()  # languages judged with the FineWeb defaults (no preset)
        self._urls: UrlBlocklist | None = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_chains"], state["_defaulted"], state["_urls"] = {}, set(), None  # rebuilt per worker
        return state

    def check_inputs(self, files: list[str]) -> None:
        super().check_inputs(files)
        self.setup()  # unreadable block lists or presets fail here, before any task starts
        cfg = self.config.filter
        if not available_presets(cfg.preset_dir):  # every language would silently get the defaults
            raise ConfigError(f"filter.preset_dir: no <lang>.yaml presets in {resolve_preset_dir(cfg.preset_dir)}"
                              + ("" if cfg.preset_dir else " (the package data of an incomplete install?)"))
        if cfg.preset:
            self._chain(cfg.preset)

    def setup(self) -> None:
        cfg = self.config.filter
        if self._urls is None and cfg.url_filter:
            self._urls = UrlBlocklist.from_files(cfg.url_blocklist_files, cfg.url_list_files, cfg.url_substring_files)

    def _chain(self, lang: str) -> RuleChain | None:
        """The rule chain for ``lang`` (cached); None means: keep documents of this language unfiltered."""
        if lang not in self._chains:
            cfg = self.config.filter
            try:
                preset = load_preset(lang, cfg.preset_dir)
            except PresetNotFoundError:
                if cfg.unknown_language != "default":
                    self._chains[lang] = None
                    return None
                log.warning("filter: no preset for language %r; judging it with the FineWeb defaults, C4 off "
                            "(counted in counters.default_preset_by_lang)", lang)
                self._defaulted.add(lang)
                preset = default_preset(lang)
                preset["c4"]["enabled"] = False  # FineWeb2: C4's English-centric rules off elsewhere
            self._chains[lang] = RuleChain.from_preset(merge_overrides(preset, cfg.rules))
        return self._chains[lang]

    def process_batch(self, table: pa.Table):
        cfg = self.config.filter
        n = table.num_rows
        if not cfg.enabled:
            return table, None, Counter()
        texts = table.column("text").to_pylist()
        langs = ([cfg.preset] * n if cfg.preset else
                 table.column("lang").to_pylist() if "lang" in table.column_names else ["en"] * n)
        urls = table.column("url").to_pylist() if "url" in table.column_names else [None] * n
        out_texts: list[str | None] = []
        reasons: list[str | None] = []
        stats_rows: list[dict] = []
        by_lang: Counter = Counter()
        defaulted: Counter = Counter()
        for text, lang, url in zip(texts, langs, urls, strict=True):
            lang = lang or "und"
            text = text or ""
            reason = self._urls.check(url) if self._urls is not None else None
            stats = TextStats(text, lang)
            if reason is None:
                chain = self._chain(lang)
                if lang in self._defaulted:
                    defaulted[lang] += 1
                if chain is None:
                    if cfg.unknown_language == "reject":
                        reason = f"no_preset:lang={lang}"
                else:
                    text, reason = chain.apply(text, stats)
            if reason is None and cfg.normalize_pii:
                text = normalize_pii(text)
            if reason is not None:
                by_lang[f"{lang}/{reason.split('=', 1)[0]}"] += 1
            out_texts.append(text)
            reasons.append(reason)
            if cfg.keep_stats:
                stats_rows.append(stats.summary())
        table = with_column(table, "text", pa.array(out_texts, pa.string()))
        if cfg.keep_stats:
            for name, typ in STAT_COLUMNS.items():
                table = with_column(table, f"stat_{name}", pa.array([r[name] for r in stats_rows], typ))
        return table, pa.array(reasons, pa.string()), {"rejected_by_lang": by_lang, "default_preset_by_lang": defaulted}
