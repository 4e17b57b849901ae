"""``extract.extractor: fast``: main-content extraction by a block model distilled from trafilatura.

Cut the page into text blocks (``blocks``), describe each with cheap numbers (``features``), keep
the blocks a small numpy model says trafilatura ``favor_precision`` would keep (``model``), join
them one per line. The model is trained by ``train`` (``cptcorpus train-extractor``) on WARCs
labelled by trafilatura itself, so no hand labels are needed and users can retrain on their own
language's pages.
"""

from __future__ import annotations

import numpy as np

from pipelines.fast_extract.blocks import page_blocks
from pipelines.fast_extract.features import block_features, neighbour_context, stopword_sets
from pipelines.fast_extract.model import BlockModel, ModelFileError, load_model

__all__ = ["FastExtractor", "ModelFileError", "load_model"]


class FastExtractor:
    """``html -> main text`` with one loaded model (build once per worker, call per page)."""

    def __init__(self, model: BlockModel) -> None:
        self.model = model
        self.stop_words, self.stop_chars = stopword_sets(model.stopword_langs)
        width = block_features(page_blocks("<body><p>x</p></body>"), self.stop_words, self.stop_chars).shape[1]
        if model.stage1.mean.shape[0] != width:
            raise ModelFileError(f"extract.fast_model: model expects {model.stage1.mean.shape[0]} features, "
                                 f"this code computes {width}; retrain it with `cptcorpus train-extractor`")

    def keep_probabilities(self, blocks) -> np.ndarray:
        """Stage-two probability per block (empty for a page without blocks)."""
        if not blocks.texts:
            return np.zeros(0)
        x = block_features(blocks, self.stop_words, self.stop_chars)
        p1 = self.model.stage1.predict(x)
        return self.model.stage2.predict(np.hstack([x, neighbour_context(p1)]))

    def __call__(self, html: str) -> str:
        blocks = page_blocks(html)
        keep = self.keep_probabilities(blocks) >= self.model.threshold
        return "\n".join(t for t, k in zip(blocks.texts, keep, strict=True) if k)
