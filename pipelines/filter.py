"""The filter stage: heuristic quality rules per document language (issue 3 fills in the rules)."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa

from pipelines.stage import DocumentStage


class FilterStage(DocumentStage):
    name = "filter"

    def process_batch(self, table: pa.Table):
        return table, None, Counter()
