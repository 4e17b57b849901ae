"""The block model: two small multilayer perceptrons, numpy inference, one versioned JSON file.

Stage one scores each block from its own features; stage two rescores it from stage one's scores
of its neighbours and of its container (main text comes in runs and in one element). A block is kept
when stage two's probability reaches the trained threshold. The file is JSON (weights as nested
lists, ~400 KB) so it diffs, reviews and
loads without pickle; ``format`` and ``feature_version`` must match this code or loading fails
with a message that names the file and both versions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT = "cptcorpus-fast-extractor"
FEATURE_VERSION = 3  # bump when block segmentation or the feature columns change
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "data" / "fast_extractor-v3.json"


class ModelFileError(ValueError):
    """The model file is missing, unreadable, or was made for another feature version."""


@dataclass
class Mlp:
    """Standardise, one ReLU hidden layer, sigmoid output."""

    mean: np.ndarray
    scale: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: float

    def __post_init__(self) -> None:
        # standardisation folded into the first layer: one matrix product per call, no copies of x
        self._w1 = (self.w1 / self.scale[:, None]).astype(np.float32)
        self._b1 = (self.b1 - (self.mean / self.scale) @ self.w1).astype(np.float32)

    @property
    def folded_first_layer(self) -> tuple[np.ndarray, np.ndarray]:
        """(weights, bias) of the first layer with the standardisation folded in: ``x @ w + b`` are
        the pre-activations ``output`` takes. A caller may fuse several models' products into one."""
        return self._w1, self._b1

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.output(x @ self._w1 + self._b1)

    def output(self, pre: np.ndarray) -> np.ndarray:
        """The probability from the first layer's pre-activations (``x @ _w1 + _b1``)."""
        h = np.maximum(pre, 0.0)
        return 1.0 / (1.0 + np.exp(-np.clip(h @ self.w2 + self.b2, -30.0, 30.0)))

    def to_json(self) -> dict:
        return {k: (v.round(6).tolist() if isinstance(v, np.ndarray) else round(float(v), 6))
                for k, v in self.__dict__.items() if not k.startswith("_")}

    @classmethod
    def from_json(cls, data: dict) -> Mlp:
        arrays = {k: np.asarray(data[k], np.float32) for k in ("mean", "scale", "w1", "b1", "w2")}
        return cls(**arrays, b2=float(data["b2"]))


@dataclass
class BlockModel:
    """Both stages, the keep threshold, and what the features were built with."""

    stage1: Mlp
    stage2: Mlp
    threshold: float
    stopword_langs: list[str]
    meta: dict

    def save(self, path: str | Path) -> None:
        from pipelines import io

        io.write_json_atomic(str(path), {
            "format": FORMAT, "feature_version": FEATURE_VERSION, "threshold": round(self.threshold, 4),
            "stopword_langs": self.stopword_langs, "meta": self.meta,
            "stage1": self.stage1.to_json(), "stage2": self.stage2.to_json(),
        })


def load_model(path: str | Path | None) -> BlockModel:
    """Load ``path`` (None: the shipped model); ModelFileError names the file and what is wrong."""
    path = Path(path) if path else DEFAULT_MODEL
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFileError(f"extract.fast_model: {path} does not exist (expected a {FORMAT} JSON file, "
                             f"feature_version {FEATURE_VERSION}; make one with `cptcorpus train-extractor`)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFileError(f"extract.fast_model: {path} is not readable JSON ({err})") from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ModelFileError(f"extract.fast_model: {path} has format {got!r}, expected {FORMAT!r}")
    if data.get("feature_version") != FEATURE_VERSION:
        raise ModelFileError(
            f"extract.fast_model: {path} has feature_version {data.get('feature_version')!r}, this cptcorpus "
            f"reads feature_version {FEATURE_VERSION}; retrain it with `cptcorpus train-extractor`")
    try:
        return BlockModel(Mlp.from_json(data["stage1"]), Mlp.from_json(data["stage2"]), float(data["threshold"]),
                          list(data["stopword_langs"]), dict(data.get("meta", {})))
    except (KeyError, TypeError, ValueError) as err:
        raise ModelFileError(f"extract.fast_model: {path} is incomplete or malformed ({type(err).__name__}: {err})") from err
