"""The stage contract in code: a shard goes in, kept and rejected Parquet plus a stats dict come out.

``DocumentStage`` is the common case (Parquet of documents in, Parquet out): it streams record
batches, asks the subclass to split each batch into kept and rejected rows, and writes both files
atomically. Subclasses hold models in ``setup`` so they load once per worker process, not per batch.
"""

from __future__ import annotations

import time
from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc

from pipelines import io
from pipelines.config import Config
from pipelines.schema import REJECT_REASON, check_input_schema


class Stage:
    """One step of the flow. Instances are shipped to Ray workers, so keep them small and picklable."""

    name = "stage"
    input_suffixes: tuple[str, ...] = (".parquet",)

    def __init__(self, config: Config) -> None:
        self.config = config

    def check_inputs(self, files: list[str]) -> None:
        """Fail before any work starts when the inputs cannot be processed (driver side)."""

    def ray_options(self) -> dict:
        """Extra resources each shard task declares (e.g. ``num_gpus``), beyond ``ray`` config's."""
        return {}

    def process_shard(self, input_path: str, output_dir: str, shard: str) -> dict:
        raise NotImplementedError


class DocumentStage(Stage):
    """A Parquet-to-Parquet stage over batches of documents; extra columns pass through unchanged."""

    batch_rows = 2048

    def check_inputs(self, files: list[str]) -> None:
        for path in files:
            check_input_schema(io.read_parquet_schema(path), path)

    def setup(self) -> None:
        """Load models once per worker process; called before the first batch of each shard."""

    def process_batch(self, table: pa.Table) -> tuple[pa.Table, pa.Array | None, Counter]:
        """Return the processed table, a string array of reject reasons (null = keep) and counters.

        The table may gain columns (scores, statistics); rows with a reason go to ``rejected/``.
        """
        raise NotImplementedError

    def process_shard(self, input_path: str, output_dir: str, shard: str) -> dict:
        started = time.perf_counter()
        self.setup()
        writers = io.ShardOutput(output_dir, shard)
        kept_w, rej_w = writers.kept, writers.rejected
        reasons: Counter = Counter()
        counters: dict[str, Counter] = {}
        docs_in = bytes_in = bytes_out = 0
        try:
            source = io.parquet_file(input_path)
            if source.metadata.num_rows == 0:  # still run one (empty) batch: it gives the output schema
                out, _, _ = self.process_batch(source.schema_arrow.empty_table())
                kept_w.write(out)
            for batch in source.iter_batches(batch_size=self.batch_rows):
                table = pa.Table.from_batches([batch])
                docs_in += table.num_rows
                bytes_in += _text_bytes(table)
                out, reject, batch_counters = self.process_batch(table)
                for key, value in batch_counters.items():
                    if isinstance(value, Counter | dict):
                        counters.setdefault(key, Counter()).update(value)
                if reject is None:
                    kept = out
                else:
                    keep_mask = pc.is_null(reject)
                    kept = out.filter(keep_mask)
                    rejected = out.filter(pc.invert(keep_mask)).append_column(
                        REJECT_REASON, reject.filter(pc.invert(keep_mask))
                    )
                    reasons.update(_reason_names(rejected.column(REJECT_REASON)))
                    rej_w.write(rejected)
                kept_w.write(kept)
                bytes_out += _text_bytes(kept)
            if rej_w.schema is None and kept_w.schema is not None:
                rej_w.schema = kept_w.schema.append(pa.field(REJECT_REASON, pa.string()))
            sizes = writers.close()
        except BaseException:
            writers.abort()
            raise
        return shard_stats(docs_in, kept_w.rows, rej_w.rows, bytes_in, bytes_out, reasons, sizes, started,
                           counters=counters)


def shard_stats(docs_in: int, docs_out: int, docs_rejected: int, bytes_in: int, bytes_out: int,
                reasons: Counter, outputs: dict[str, int], started: float,
                counters: dict[str, Counter] | None = None, **extra: object) -> dict:
    """The per-shard stats every stage returns (the runner merges them into the stage summary).

    One builder, so every stage reports the same keys in the same form: sorted reason counts,
    ``outputs`` (relative path -> bytes, what resume checks) and the task's own ``seconds``.
    """
    stats: dict = {
        "docs_in": docs_in,
        "docs_out": docs_out,
        "docs_rejected": docs_rejected,
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
        "reasons": dict(sorted(reasons.items())),
        "counters": {k: dict(sorted(v.items())) for k, v in sorted((counters or {}).items())},
        "outputs": outputs,
        "seconds": round(time.perf_counter() - started, 4),
    }
    stats.update(extra)
    return stats


def _text_bytes(table: pa.Table) -> int:
    """UTF-8 bytes of the text column, read from the Arrow buffers (no per-row Python)."""
    if "text" not in table.column_names or table.num_rows == 0:
        return 0
    lengths = pc.binary_length(table.column("text"))
    total = pc.sum(lengths).as_py()
    return int(total or 0)


def _reason_names(reasons: pa.ChunkedArray | pa.Array) -> Counter:
    """Count reasons by rule name: ``gopher_quality:word_count=12`` counts as ``gopher_quality:word_count``."""
    names = pc.replace_substring_regex(reasons, pattern=r"=.*$", replacement="")
    counts = pc.value_counts(names)
    return Counter({c["values"].as_py(): c["counts"].as_py() for c in counts})
