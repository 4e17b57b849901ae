"""Per-language filter thresholds: load the shipped presets, or derive one from reference text.

A preset is a plain nested dict, one entry per rule, whose keys are the rule's constructor keywords
plus ``enabled``::

    {
      "lang": "pt",
      "gopher_repetition": {"enabled": True, "dup_line_frac": 0.325, ..., "top_n_grams": [[2, 0.093], ...]},
      "gopher_quality":    {"enabled": True, "min_doc_words": 50, ..., "stop_words": ["de", "a", ...]},
      "c4":                {"enabled": False, "min_num_sentences": 5, ...},
      "fineweb_quality":   {"enabled": True, "line_punct_thr": 0.154, ...},
    }

`load_preset` always returns every keyword (class defaults filled in under the YAML values), so a
preset is self-describing and ``Rule(**params)`` works. The YAML files under ``filters/data/presets/``
only list what differs from the defaults; they ship inside the package (package data), so an installed
wheel filters with the same thresholds as a checkout.

Why FineWeb2's method in `derive_preset`: thresholds that suit English are wrong elsewhere (German
words are longer, Thai has no sentence periods). FineWeb2 computed each statistic over text known to
be good in the language and put the threshold in the tail of that distribution; a user adding a
language can do the same with a few hundred good documents (Wikipedia articles, news).
"""

from __future__ import annotations

import copy
import inspect
import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from filters.c4 import C4Filter
from filters.fineweb import FineWebQualityFilter
from filters.gopher import GopherQualityFilter, GopherRepetitionFilter
from filters.stopwords import get_stop_words
from filters.text_stats import PUNCTUATION, TextStats, find_duplicates, normalize_lang

__all__ = [
    "RULE_CLASSES",
    "RULE_ORDER",
    "PresetNotFoundError",
    "available_presets",
    "build_rules",
    "default_preset",
    "derive_preset",
    "load_preset",
    "merge_overrides",
    "reference_statistics",
    "resolve_preset_dir",
]

#: Rule name (preset key) -> class.
RULE_CLASSES: dict[str, type] = {
    "gopher_repetition": GopherRepetitionFilter,
    "gopher_quality": GopherQualityFilter,
    "c4": C4Filter,
    "fineweb_quality": FineWebQualityFilter,
}
#: The order FineWeb ran them in (it only changes which reason a document gets, and C4's edit).
RULE_ORDER = ("gopher_repetition", "gopher_quality", "c4", "fineweb_quality")

#: Top-level preset keys that are not rules.
_META_KEYS = ("lang", "description", "derived")

#: The shipped presets: package data next to this module, found the same way from a checkout or a wheel.
PRESET_DIR = Path(__file__).resolve().parent / "data" / "presets"
_PRESET_DIR_ENV = "CPTCORPUS_PRESET_DIR"


class PresetNotFoundError(FileNotFoundError):
    """No ``<lang>.yaml`` in the preset directory; the message names the language and the directory.

    A FileNotFoundError, so callers that treat "no preset" as "use the defaults" keep working, and
    `pipelines` turns it into a config error where the user asked for the preset by name.
    """


def _rule_defaults(cls: type) -> dict[str, Any]:
    params = inspect.signature(cls.__init__).parameters
    out: dict[str, Any] = {}
    for name, p in params.items():
        if name in ("self", "lang") or p.default is inspect.Parameter.empty:
            continue
        value = p.default
        if isinstance(value, tuple):  # (n, frac) pairs -> YAML-like lists
            value = [list(v) if isinstance(v, tuple) else v for v in value]
        out[name] = value
    return out


def resolve_preset_dir(preset_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where presets are read: `preset_dir`, else ``$CPTCORPUS_PRESET_DIR``, else the shipped `PRESET_DIR`."""
    if preset_dir is not None:
        return Path(preset_dir)
    env = os.environ.get(_PRESET_DIR_ENV)
    return Path(env) if env else PRESET_DIR


def available_presets(preset_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Languages with a preset file (``<lang>.yaml``) in the preset directory."""
    d = resolve_preset_dir(preset_dir)
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def default_preset(lang: str | None = "en") -> dict[str, Any]:
    """Every rule on, with its class defaults (FineWeb English), and `lang`'s stop words."""
    code = normalize_lang(lang)
    preset: dict[str, Any] = {"lang": code}
    for name in RULE_ORDER:
        preset[name] = {"enabled": True, **_rule_defaults(RULE_CLASSES[name])}
    preset["gopher_quality"]["stop_words"] = list(get_stop_words(code))
    return preset


def merge_overrides(preset: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of `preset` with ``{rule: {key: value}}`` overrides applied; unknown names raise.

    Why strict: a misspelt threshold in a config would otherwise be silently ignored.
    """
    out = copy.deepcopy(dict(preset))
    for rule, params in (overrides or {}).items():
        if rule in _META_KEYS:
            out[rule] = params
            continue
        if rule not in RULE_CLASSES:
            raise ValueError(f"unknown rule {rule!r}; expected one of {sorted(RULE_CLASSES)}")
        if not isinstance(params, Mapping):
            raise ValueError(f"overrides for {rule!r} must be a mapping, got {type(params).__name__}")
        allowed = {"enabled", *_rule_defaults(RULE_CLASSES[rule])}
        unknown = set(params) - allowed
        if unknown:
            raise ValueError(
                f"unknown keys for {rule!r}: {sorted(unknown)}; expected some of {sorted(allowed)}"
            )
        out.setdefault(rule, {"enabled": True, **_rule_defaults(RULE_CLASSES[rule])}).update(params)
    return out


def load_preset(lang: str, preset_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The preset for `lang` (``pt``, ``por_Latn``, ``pt-BR`` ...): its YAML over `default_preset`.

    Looks in `preset_dir`, else ``$CPTCORPUS_PRESET_DIR``, else the shipped ``filters/data/presets``.
    Raises PresetNotFoundError naming the language, the file looked for and the available languages
    when there is no file for `lang` (use `derive_preset` to make one).
    """
    code = normalize_lang(lang)
    d = resolve_preset_dir(preset_dir)
    path = d / f"{code}.yaml"
    if not path.is_file():
        where = "" if d.is_dir() else " (that directory does not exist)"
        raise PresetNotFoundError(
            f"no filter preset for language {lang!r}: looked for {path}{where}; available: {available_presets(d)}. "
            "Derive one from good reference text with filters.presets.derive_preset."
        )
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a mapping at the top level")
    preset = merge_overrides(default_preset(code), data)
    preset["lang"] = code
    return preset


def build_rules(preset: Mapping[str, Any]) -> list[Any]:
    """The enabled rules of `preset`, constructed, in `RULE_ORDER`."""
    lang = preset.get("lang", "en")
    rules = []
    for name in RULE_ORDER:
        params = dict(preset.get(name) or {})
        if not params.pop("enabled", True):
            continue
        rules.append(RULE_CLASSES[name](**params, lang=lang))
    return rules


# ---------------------------------------------------------------------------------------------------
# Deriving thresholds from reference text (FineWeb2's method)
# ---------------------------------------------------------------------------------------------------


def reference_statistics(
    texts: Iterable[str], lang: str, preset: Mapping[str, Any] | None = None
) -> dict[str, list[float]]:
    """Each thresholded statistic, per document, over `texts` (documents without words skipped).

    The n-gram statistics use the n of `preset`'s gopher_repetition lists (defaults otherwise).
    """
    base = preset if preset is not None else default_preset(lang)
    rep = base["gopher_repetition"]
    top_ns = [int(n) for n, _ in rep["top_n_grams"]]
    dup_ns = [int(n) for n, _ in rep["dup_n_grams"]]
    stop_chars = base["fineweb_quality"].get("stop_chars")
    stop_chars_t = tuple(stop_chars) if stop_chars else tuple(sorted(FineWebQualityFilter().stop_chars))
    out: dict[str, list[float]] = {}

    def add(key: str, value: float | None) -> None:
        if value is not None:
            out.setdefault(key, []).append(float(value))

    for text in texts:
        st = TextStats(text, lang)
        if not text or st.word_count == 0:
            continue
        n_chars = len(text)
        add("word_count", st.word_count)
        add("mean_word_length", st.mean_word_length)
        add("alpha_word_ratio", st.alpha_word_ratio)
        runs = st.line_runs
        add("dup_line_frac", find_duplicates(runs)[0] / len(runs))
        for n in top_ns:
            if st.token_count >= n:
                add(f"top_{n}_gram_char_frac", st.top_ngram_chars(n) / n_chars)
        for n in dup_ns:
            add(f"dup_{n}_gram_char_frac", st.duplicate_ngram_chars(n) / n_chars)
        lines = st.nonblank_lines
        if lines:
            add("line_punct_ratio", sum(1 for x in lines if x.endswith(stop_chars_t)) / len(lines))
            add("char_dup_ratio", find_duplicates(lines)[1] / max(1, n_chars - st.newline_count))
        add("list_ratio", st.newline_count / st.token_count)
    return out


def _ceil(x: float, digits: int = 3) -> float:
    f = 10**digits
    return math.ceil(x * f - 1e-9) / f


def _floor(x: float, digits: int = 3) -> float:
    f = 10**digits
    return math.floor(x * f + 1e-9) / f


def _top_stop_words(texts: Sequence[str], lang: str, k: int) -> list[str]:
    """The `k` words found in the most documents (ties: more occurrences) -- FineWeb2's choice."""
    doc_freq: Counter[str] = Counter()
    freq: Counter[str] = Counter()
    for text in texts:
        words = [w for w in TextStats(text, lang).words if not all(c in PUNCTUATION for c in w)]
        words = [w for w in words if any(c.isalpha() for c in w)]
        freq.update(words)
        doc_freq.update(set(words))
    ranked = sorted(doc_freq, key=lambda w: (-doc_freq[w], -freq[w], w))
    return ranked[:k]


def derive_preset(
    texts: Sequence[str],
    lang: str,
    *,
    quantile: float = 0.02,
    base: Mapping[str, Any] | None = None,
    n_stop_words: int | None = 15,
    min_docs: int = 20,
) -> dict[str, Any]:
    """A preset for `lang` whose thresholds each reject about `quantile` of the good `texts`.

    `texts` should be documents known to be good in `lang` (a few hundred or more). For every
    thresholded statistic the value at the `quantile` tail of its distribution over `texts` becomes
    the threshold: lower tail for minimums (mean word length, share of words with letters, share
    of lines ending in punctuation), upper tail for maximums (mean word length, duplicate lines,
    n-gram fractions, newlines per word). Stop words become the `n_stop_words` words present in the
    most documents (None keeps `base`'s). Everything else -- which rules are on, document length
    bounds, n sizes -- comes from `base` (default: the shipped preset for `lang` if there is one,
    else `default_preset` with C4 off, as FineWeb2 did outside English).
    Thresholds are rounded outward (3 decimals) and never set below small floors, so a statistic
    that is 0 for all reference text does not become a threshold rejecting any repetition at all.

    `quantile` is per statistic, and about 16 statistics are thresholded, so the share of good
    documents rejected by the whole preset can approach 16 x `quantile` (less in practice, as the
    tails overlap): the default 0.02 rejects roughly 10-25% of reference text, in line with what
    FineWeb2's filters removed from good data. Use more reference documents than 1 / `quantile`.
    """
    if not 0 < quantile < 0.5:
        raise ValueError(f"quantile must be in (0, 0.5), got {quantile}")
    code = normalize_lang(lang)
    docs = [t for t in texts if t and t.strip()]
    if len(docs) < min_docs:
        raise ValueError(f"need at least {min_docs} reference documents, got {len(docs)}")
    if base is None:
        try:
            base = load_preset(code)
        except PresetNotFoundError:
            base = default_preset(code)
            base["c4"]["enabled"] = False
    preset = copy.deepcopy(dict(base))
    preset["lang"] = code
    stats = reference_statistics(docs, code, preset)

    def low(key: str, digits: int = 3) -> float | None:
        values = stats.get(key)
        return _floor(float(np.quantile(values, quantile)), digits) if values else None

    def high(key: str, floor: float, digits: int = 3) -> float | None:
        values = stats.get(key)
        return max(floor, _ceil(float(np.quantile(values, 1 - quantile)), digits)) if values else None

    gq = preset["gopher_quality"]
    for key, value in (
        ("min_avg_word_length", low("mean_word_length", 1)),
        ("max_avg_word_length", high("mean_word_length", 1.0, 1)),
        ("max_non_alpha_words_ratio", low("alpha_word_ratio")),
    ):
        if value is not None:
            gq[key] = value
    if n_stop_words:
        gq["stop_words"] = _top_stop_words(docs, code, n_stop_words)

    rep = preset["gopher_repetition"]
    value = high("dup_line_frac", 0.1)
    if value is not None:
        rep["dup_line_frac"] = value
    for key, prefix, floor in (("top_n_grams", "top", 0.05), ("dup_n_grams", "dup", 0.05)):
        pairs = []
        for n, old in rep[key]:
            v = high(f"{prefix}_{int(n)}_gram_char_frac", floor)
            pairs.append([int(n), v if v is not None else old])
        rep[key] = pairs

    fq = preset["fineweb_quality"]
    for key, value in (
        ("line_punct_thr", low("line_punct_ratio")),
        ("new_line_ratio", high("list_ratio", 0.05)),
        ("char_duplicates_ratio", high("char_dup_ratio", 0.01)),
    ):
        if value is not None:
            fq[key] = value
    preset["derived"] = {"documents": len(docs), "quantile": quantile}
    return preset
