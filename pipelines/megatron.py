"""Megatron-LM / NeMo indexed datasets: ``<prefix>.bin`` (token ids) + ``<prefix>.idx`` (where documents are).

This is the ``MMIDIDX`` format of Megatron-LM's ``megatron/core/datasets/indexed_dataset.py`` (NeMo reads
the same files), written byte for byte as datatrove's ``MegatronDocumentTokenizer`` writes it:

``.idx``: ``b"MMIDIDX\\x00\\x00"``, ``<Q`` version 1, ``<B`` dtype code, ``<Q`` sequence count ``n``,
``<Q`` document-index count ``n + 1``, then ``int32[n]`` sequence lengths (tokens), ``int64[n]`` byte
offsets of the sequences in ``.bin``, ``int64[n + 1]`` document indices ``0, 1, ..., n`` (one
sequence per document). ``.bin``: the token ids, document after document, in the dtype of the code.

The writer streams: token ids go to ``.bin`` as they come and only the lengths (4 bytes per document)
stay in memory; both files are written under temporary names and renamed into place on ``close``, so
a killed task never leaves a ``.bin``/``.idx`` pair that looks complete. The reader maps both files
and checks that they agree (header, sizes, offsets) before handing out a document.
"""

from __future__ import annotations

import hashlib
import os
import struct
from array import array
from contextlib import suppress
from typing import IO

import numpy as np

from pipelines import io

INDEX_HEADER = b"MMIDIDX\x00\x00"
INDEX_VERSION = 1
#: Megatron's numeric dtype codes (``DType`` in indexed_dataset.py).
DTYPE_CODES: dict[str, int] = {"uint8": 1, "int8": 2, "int16": 3, "int32": 4, "int64": 5, "float64": 6,
                               "float32": 7, "uint16": 8}
_CODE_DTYPES = {code: name for name, code in DTYPE_CODES.items()}
_HEADER_BYTES = len(INDEX_HEADER) + 8 + 1 + 8 + 8
_CHUNK = 1 << 20  # documents per chunk when writing the index's offset and document arrays


class IndexedDatasetError(ValueError):
    """A ``.bin``/``.idx`` pair that is missing, truncated or inconsistent; the message names the file."""


def token_dtype(vocab_size: int) -> str:
    """uint16 when every id fits (``vocab_size <= 65536``), else int32: datatrove's rule, so bytes match."""
    return "int32" if vocab_size > np.iinfo(np.uint16).max + 1 else "uint16"


def paths(prefix: str) -> tuple[str, str]:
    return f"{prefix}.bin", f"{prefix}.idx"


class _HashingFile:
    """A binary file opened for writing that also keeps the sha256 of what was written."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fh: IO[bytes] = open(path, "wb")  # noqa: SIM115 - closed in close()/abort()
        self.sha = hashlib.sha256()
        self.bytes = 0

    def write(self, data: bytes | memoryview) -> None:
        self.fh.write(data)
        self.sha.update(data)
        self.bytes += len(data)

    def close(self) -> dict:
        self.fh.close()
        return {"bytes": self.bytes, "sha256": self.sha.hexdigest()}


class IndexedDatasetWriter:
    """Append documents (token arrays) to ``<prefix>.bin``; ``close`` writes ``<prefix>.idx`` and renames both."""

    def __init__(self, prefix: str, dtype: str) -> None:
        if dtype not in DTYPE_CODES:
            raise ValueError(f"dtype {dtype!r}: expected one of {', '.join(DTYPE_CODES)}")
        self.prefix = prefix
        self.dtype = np.dtype(dtype)
        self.final_bin, self.final_idx = paths(prefix)
        io.ensure_dir(os.path.dirname(prefix) or ".")
        self._bin = _HashingFile(io.tmp_path(self.final_bin))
        self._idx_tmp = io.tmp_path(self.final_idx)
        self._lengths = array("i")  # int32, as in the index: 4 bytes per document
        self.tokens = 0

    @property
    def documents(self) -> int:
        return len(self._lengths)

    def add(self, tokens: np.ndarray, lengths: np.ndarray) -> None:
        """Append documents: ``tokens`` back to back, ``lengths[i]`` tokens for the i-th of them."""
        if int(lengths.sum()) != tokens.size:
            raise ValueError(f"lengths sum to {int(lengths.sum())}, but {tokens.size} tokens were given")
        self._bin.write(memoryview(np.ascontiguousarray(tokens, dtype=self.dtype)).cast("B"))
        self._lengths.frombytes(np.ascontiguousarray(lengths, dtype=np.int32).tobytes())
        self.tokens += tokens.size

    def close(self) -> dict:
        """Write the index, rename both files into place; returns sizes and sha256 of each file."""
        bin_info = self._bin.close()
        idx = _HashingFile(self._idx_tmp)
        try:
            self._write_index(idx)
            idx_info = idx.close()
            os.replace(self._bin.path, self.final_bin)
            os.replace(self._idx_tmp, self.final_idx)
        except BaseException:
            idx.fh.close()
            self.abort()
            raise
        return {"dtype": self.dtype.name, "documents": self.documents, "tokens": self.tokens,
                "bin": {"path": os.path.basename(self.final_bin), **bin_info},
                "idx": {"path": os.path.basename(self.final_idx), **idx_info}}

    def _write_index(self, out: _HashingFile) -> None:
        n = len(self._lengths)
        out.write(INDEX_HEADER)
        out.write(struct.pack("<Q", INDEX_VERSION))
        out.write(struct.pack("<B", DTYPE_CODES[self.dtype.name]))
        out.write(struct.pack("<Q", n))
        out.write(struct.pack("<Q", n + 1))
        lengths = np.frombuffer(self._lengths, dtype=np.int32) if n else np.zeros(0, np.int32)
        out.write(memoryview(lengths).cast("B"))
        offset = 0
        for start in range(0, n, _CHUNK):  # byte offsets, a chunk at a time (8 bytes per document)
            chunk = lengths[start:start + _CHUNK].astype(np.int64) * self.dtype.itemsize
            ends = np.cumsum(chunk) + offset
            out.write(memoryview(ends - chunk).cast("B"))
            offset = int(ends[-1])
        for start in range(0, n + 1, _CHUNK):  # one sequence per document: indices 0..n
            out.write(memoryview(np.arange(start, min(n + 1, start + _CHUNK), dtype=np.int64)).cast("B"))

    def abort(self) -> None:
        with suppress(Exception):  # the files are being thrown away; a second error adds nothing
            self._bin.fh.close()
        for tmp in (self._bin.path, self._idx_tmp):
            if os.path.exists(tmp):
                os.remove(tmp)


class IndexedDataset:
    """Read a ``.bin``/``.idx`` pair (memory-mapped); ``ds[i]`` is document ``i``'s token ids."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        bin_path, idx_path = paths(prefix)
        for path in (bin_path, idx_path):
            if not os.path.isfile(path):
                raise IndexedDatasetError(f"{path}: not found (an indexed dataset needs both .bin and .idx)")
        index = np.memmap(idx_path, dtype=np.uint8, mode="r") if os.path.getsize(idx_path) else np.zeros(0, np.uint8)
        if len(index) < _HEADER_BYTES or bytes(index[:len(INDEX_HEADER)]) != INDEX_HEADER:
            raise IndexedDatasetError(f"{idx_path}: not a Megatron index (expected the header {INDEX_HEADER!r})")
        version, code, n, n_docs = struct.unpack("<QBQQ", bytes(index[len(INDEX_HEADER):_HEADER_BYTES]))
        if version != INDEX_VERSION or code not in _CODE_DTYPES:
            raise IndexedDatasetError(f"{idx_path}: version {version}, dtype code {code}; expected version "
                                      f"{INDEX_VERSION} and a code in {sorted(_CODE_DTYPES)}")
        expected = _HEADER_BYTES + n * 4 + n * 8 + n_docs * 8
        if len(index) != expected:
            raise IndexedDatasetError(f"{idx_path}: {len(index)} bytes, expected {expected} for {n} sequences "
                                      "(truncated or not written by one writer)")
        self.dtype = np.dtype(_CODE_DTYPES[code])
        at = _HEADER_BYTES
        self.lengths = index[at:at + n * 4].view(np.int32)
        self.pointers = index[at + n * 4:at + n * 12].view(np.int64)
        self.document_indices = index[at + n * 12:expected].view(np.int64)
        self.num_tokens = int(self.lengths.sum(dtype=np.int64))
        bin_size = os.path.getsize(bin_path)
        if bin_size != self.num_tokens * self.dtype.itemsize:
            raise IndexedDatasetError(f"{bin_path}: {bin_size} bytes, the index describes {self.num_tokens} tokens "
                                      f"of {self.dtype.itemsize} bytes ({self.num_tokens * self.dtype.itemsize})")
        self._bin = (np.memmap(bin_path, dtype=self.dtype, mode="r") if bin_size
                     else np.zeros(0, self.dtype))

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> np.ndarray:
        start = int(self.pointers[i]) // self.dtype.itemsize
        return self._bin[start:start + int(self.lengths[i])]

    def check(self) -> list[str]:
        """Problems of the index itself: offsets that do not follow the lengths, document indices not 0..n."""
        problems = []
        n = len(self)
        ends = np.cumsum(self.lengths, dtype=np.int64) * self.dtype.itemsize
        starts = np.concatenate(([0], ends[:-1])) if n else ends
        if not np.array_equal(starts, self.pointers):
            problems.append(f"{self.prefix}.idx: sequence offsets do not follow the sequence lengths")
        if not np.array_equal(self.document_indices, np.arange(n + 1, dtype=np.int64)):
            problems.append(f"{self.prefix}.idx: document indices are not 0..{n} (one sequence per document)")
        return problems


def write_subset(source: IndexedDataset, rows: np.ndarray, prefix: str, chunk_rows: int = 8192) -> dict:
    """Write documents ``rows`` (in that order) of ``source`` as a new indexed dataset at ``prefix``.

    A mixture component that filters the corpus (``lang == pt``) becomes a dataset of its own this way,
    by copying token slices: nothing is tokenized again.
    """
    writer = IndexedDatasetWriter(prefix, source.dtype.name)
    try:
        for start in range(0, len(rows), chunk_rows):
            picked = rows[start:start + chunk_rows]
            parts = [source[int(i)] for i in picked]
            tokens = np.concatenate(parts) if parts else np.zeros(0, source.dtype)
            writer.add(tokens, source.lengths[picked])
        return writer.close()
    except BaseException:
        writer.abort()
        raise
