"""``extract.extractor: fast``: main-content extraction by a block model distilled from trafilatura.

Cut the page into text blocks and count their characters (``blocks``, walked in C by ``_walk.c``;
``chars``), describe each block with cheap numbers (``features``), keep the blocks a small numpy
model says trafilatura ``favor_precision`` would keep (``model``), join them one per line. The model
is trained by ``train`` (``cptcorpus train-extractor``) on WARCs labelled by trafilatura itself, so
no hand labels are needed and users can retrain on their own language's pages.
"""

from __future__ import annotations

import logging

import numpy as np

from pipelines.fast_extract import blocks as _blocks
from pipelines.fast_extract.blocks import page_blocks
from pipelines.fast_extract.chars import char_table
from pipelines.fast_extract.features import block_features, neighbour_context
from pipelines.fast_extract.model import BlockModel, ModelFileError, load_model

__all__ = ["FastExtractor", "ModelFileError", "load_model"]


class FastExtractor:
    """``html -> main text`` with one loaded model (build once per worker, call per page)."""

    def __init__(self, model: BlockModel) -> None:
        if _blocks._walk is None:
            logging.getLogger(__name__).warning(
                "extract.extractor fast: the C block walk is not built (pipelines/fast_extract/_walk.c); using the "
                "Python walk and numpy features: the same text, about 2.7 ms a page slower. `pip install -e .` "
                "builds it.")
        self.model = model
        self.stop_words, self.table = char_table(model.stopword_langs)
        width = block_features(page_blocks("<body><p>x</p></body>", self.table), self.stop_words).shape[1]
        if model.stage1.mean.shape[0] != width:
            raise ModelFileError(f"extract.fast_model: model expects {model.stage1.mean.shape[0]} features, "
                                 f"this code computes {width}; retrain it with `cptcorpus train-extractor`")
        # both stages' first layers read the block features: one matrix product serves both
        (w1, self._b1), (w2, self._b2) = model.stage1.folded_first_layer, model.stage2.folded_first_layer
        self._w_x = np.hstack([w1, w2[:width]])
        self._w_context = w2[width:]
        self._hidden = w1.shape[1]

    def keep_probabilities(self, blocks) -> np.ndarray:
        """Stage-two probability per block (empty for a page without blocks)."""
        if not blocks.texts:
            return np.zeros(0)
        x = block_features(blocks, self.stop_words)
        s1, s2 = self.model.stage1, self.model.stage2
        both = x @ self._w_x
        p1 = s1.output(both[:, :self._hidden] + self._b1)
        return s2.output(both[:, self._hidden:] + neighbour_context(p1, blocks) @ self._w_context + self._b2)

    def __call__(self, html: str) -> str:
        blocks = page_blocks(html, self.table)
        keep = self.keep_probabilities(blocks) >= self.model.threshold
        return "\n".join(t for t, k in zip(blocks.texts, keep, strict=True) if k)
