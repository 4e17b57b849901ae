"""datatrove's n-gram decontamination as the reference: its own index hashing and filter, without lighteval.

``NGramsDecontIndexer.run`` needs lighteval to fetch tasks; its hashing (``compute_hashes``) does not.
We call that method on our items and write the ``<task>.index.hashes`` files exactly as ``run`` does,
then ``NGramsDecontFilter`` loads them as it would in a datatrove pipeline. Used by the parity test and
by ``bench/bench_decontaminate.py``.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np


def datatrove_filter(items: dict[str, list[str]], folder: Path, n: int, language: str = "en"):
    """A datatrove ``NGramsDecontFilter`` over ``items`` (benchmark name -> item texts, each a label)."""
    from datatrove.pipeline.decont.n_grams import NGramsDecontConfig, NGramsDecontFilter, NGramsDecontIndexer
    from datatrove.utils.hashing import HashConfig, create_hash_func
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    # datatrove's default xxhash64 passes str to xxhash, which xxhash >= 4 refuses: its sha1 hashing instead
    config = NGramsDecontConfig(n_grams=n, hash_config=HashConfig(precision=64, hash_fc="sha1"))
    indexer = SimpleNamespace(config=config, tokenizer=load_word_tokenizer(language),
                              hash_func=create_hash_func(config.hash_config))
    folder.mkdir(parents=True, exist_ok=True)
    for task, texts in items.items():
        hashes: set[int] = set()
        for text in texts:
            hashes.update(NGramsDecontIndexer.compute_hashes(indexer, text))
        np.array(sorted(hashes), dtype=config.hash_config.np_descr).tofile(folder / f"{task}.index.hashes")
    return NGramsDecontFilter(str(folder), config=config, language=language)


def datatrove_flags(filter_step, texts: list[str]) -> list[str | None]:
    """The task datatrove finds in each text (None: clean)."""
    from datatrove.data import Document

    out: list[str | None] = []
    for k, text in enumerate(texts):
        doc = Document(text=text, id=str(k))
        out.append(None if filter_step.filter(doc) is True else doc.metadata["contaminated_task"])
    return out
