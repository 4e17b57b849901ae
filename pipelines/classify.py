"""The classify stage: one score column per configured classifier (issue 4 fills in the models)."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa

from pipelines.stage import DocumentStage


class ClassifyStage(DocumentStage):
    name = "classify"

    def process_batch(self, table: pa.Table):
        return table, None, Counter()
