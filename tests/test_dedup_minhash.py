"""MinHash and clustering building blocks of the dedup stage, without Ray: normalisation and
segmentation, parity of the vectorised signatures with datasketch, the LSH collision curve, and the
distributed connected components against a union-find."""

from __future__ import annotations

import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasketch import MinHash
from datasketch.lsh import _optimal_param
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines import dedup
from pipelines import minhash as mh
from tests.test_dedup import planted_corpus


def _signatures(texts: list[str], langs: list[str] | None, hasher: mh.MinHasher, n: int = 5) -> np.ndarray:
    norm = mh.normalize(pa.array(texts))
    tokens, offsets = mh.doc_tokens(norm, langs)
    shingles, counts = mh.shingle_hashes(mh.string_hashes(tokens), offsets, n)
    return hasher.signatures(shingles, counts)


# --------------------------------------------------------------------------------------------------
# Normalisation, segmentation, exact hashes
# --------------------------------------------------------------------------------------------------


def test_exact_hash_ignores_case_punctuation_and_spacing():
    texts = ["Hello, World! It's  fine.", "hello world it s fine", "HELLO\tWORLD -- it's\nfine!!", "hello world its fine",
             "", None, " ... "]
    norm = mh.normalize(pa.array(texts))
    tokens, offsets = mh.doc_tokens(norm)
    h, empty = mh.exact_hashes(tokens, offsets)
    assert h[0] == h[1] == h[2] and h[3] != h[0]
    assert empty.tolist() == [False, False, False, False, True, True, True]
    assert norm.to_pylist()[1] == "hello world it s fine"


def test_segmentation_by_language():
    zh = "我们今天去北京。天气很好！"
    assert mh.segment(mh.normalize(pa.array([zh])).to_pylist()[0], "zh") == list("我们今天去北京天气很好")
    assert mh.segment("ola mundo bom dia", "pt") == ["ola", "mundo", "bom", "dia"]
    thai = "ที่นี่ดี"
    assert "ที่" in mh.segment(thai, "th"), "grapheme clusters keep combining marks with their base"
    # a batch mixing both kinds keeps each document's tokens in place
    norm = mh.normalize(pa.array(["Bom dia, mundo", zh, "x"]))
    tokens, offsets = mh.doc_tokens(norm, ["pt", "zh", None])
    assert offsets.tolist() == [0, 3, 14, 15]
    assert tokens.to_pylist()[:3] == ["bom", "dia", "mundo"]
    # shingles for the ground truth come from the same segmentation
    assert mh.shingle_set(zh, "zh", 5) == {tuple("我们今天去北京天气很好"[i : i + 5]) for i in range(7)}
    assert mh.shingle_set("Two words", "en", 5) == {("two", "words")}
    assert mh.shingle_set("", "en", 5) == set()


def test_shingle_hashes_stay_inside_documents():
    tokens = np.arange(1, 13, dtype=np.uint64)  # docs of 6, 0, 2, 4 tokens
    offsets = np.array([0, 6, 6, 8, 12])
    shingles, counts = mh.shingle_hashes(tokens, offsets, 3)
    assert counts.tolist() == [4, 0, 1, 2]
    # the same windows hashed one document at a time give the same values
    for d, (a, b) in enumerate(zip(offsets[:-1], offsets[1:], strict=True)):
        alone, c = mh.shingle_hashes(tokens[a:b], np.array([0, b - a]), 3)
        start = int(counts[:d].sum())
        assert shingles[start : start + counts[d]].tolist() == alone.tolist() and c[0] == counts[d]


def test_lsh_params_are_datasketch_optimum():
    for t in (0.5, 0.7, 0.8, 0.9):
        assert mh.lsh_params(t, 128) == _optimal_param(t, 128, 0.5, 0.5)
    assert mh.lsh_params(0.8, 128) == (9, 13)


# --------------------------------------------------------------------------------------------------
# Parity with datasketch
# --------------------------------------------------------------------------------------------------


def test_jaccard_estimates_at_parity_with_datasketch():
    """Our estimate of each planted pair's Jaccard is as close to the exact value as datasketch's."""
    corpus = planted_corpus(groups=24, singles=0, shards=1, seed=21)
    docs = corpus.docs
    k = 128
    sig = _signatures([d["text"] for d in docs], None, mh.MinHasher(k, seed=1))
    sets = [mh.shingle_set(d["text"], "en", 5) for d in docs]
    ds = []
    for s in sets:
        m = MinHash(num_perm=k, seed=1)
        m.update_batch([" ".join(t).encode() for t in s])
        ds.append(m)
    ours_err, ds_err, bias = [], [], []
    for g in range(24):
        idx = [i for i, d in enumerate(docs) if d["group"] == g]
        base = next(i for i in idx if docs[i]["role"] == "base")
        for i in idx:
            if i == base:
                continue
            true = mh.jaccard(sets[base], sets[i])
            ours = mh.signature_jaccard(sig[base], sig[i])
            theirs = ds[base].jaccard(ds[i])
            sd = max(np.sqrt(true * (1 - true) / k), 1 / k)
            assert abs(ours - true) <= 4.5 * sd + 1e-9, (docs[i]["role"], true, ours)
            ours_err.append(abs(ours - true))
            ds_err.append(abs(theirs - true))
            bias.append(ours - true)
    print(f"\nMinHash parity over {len(ours_err)} pairs: mean |error| ours {np.mean(ours_err):.4f}, "
          f"datasketch {np.mean(ds_err):.4f}; our bias {np.mean(bias):+.4f}")
    assert np.mean(ours_err) <= 1.3 * np.mean(ds_err) + 0.005
    assert abs(np.mean(bias)) < 0.01


def test_sketch_agreement_tracks_signature_agreement():
    """The low-byte sketch agrees where the signature does, plus 1/256 of the rest (dedup.verify)."""
    corpus = planted_corpus(groups=12, singles=0, shards=1, seed=4)
    docs = corpus.docs
    sig = _signatures([d["text"] for d in docs], None, mh.MinHasher(117, seed=1))
    sketch = mh.signature_sketch(sig)
    assert sketch.dtype == np.uint8 and sketch.shape == sig.shape
    full, low = [], []
    for i in range(len(docs)):
        for j in range(i + 1, len(docs)):
            full.append(np.mean(sig[i] == sig[j]))
            low.append(np.mean(sketch[i] == sketch[j]))
    full, low = np.array(full), np.array(low)
    assert np.all(low >= full)  # never disagrees where the signatures agree
    expected = full + (1 - full) * mh.SKETCH_COLLISION
    assert abs(np.mean(low - expected)) < 0.002
    assert mh.sketch_agreement_needed(0.8) == pytest.approx(0.8 + 0.2 / 256)


def test_band_collision_rate_follows_the_s_curve():
    """P(some band equal) = 1 - (1 - J^r)^b, measured on synthetic shingle sets of known Jaccard."""
    rng = np.random.default_rng(5)
    bands, rows = mh.lsh_params(0.8, 128)
    hasher = mh.MinHasher(bands * rows, seed=3)
    pairs = 400
    for target in (0.9, 0.8, 0.7):
        shared = 240
        extra = round(shared * (1 - target) / target / 2)  # J = shared / (shared + 2 extra)
        sets = []
        for _ in range(pairs):
            common = rng.integers(0, 2**63, shared, dtype=np.uint64)
            sets.append(np.concatenate([common, rng.integers(0, 2**63, extra, dtype=np.uint64)]))
            sets.append(np.concatenate([common, rng.integers(0, 2**63, extra, dtype=np.uint64)]))
        counts = np.array([len(s) for s in sets])
        sig = hasher.signatures(mh.mix64(np.concatenate(sets)), counts)
        bh = mh.band_hashes(sig, bands, rows)
        hit = (bh[0::2] == bh[1::2]).any(axis=1).mean()
        j = shared / (shared + 2 * extra)
        expected = 1 - (1 - j**rows) ** bands
        sd = np.sqrt(expected * (1 - expected) / pairs)
        assert abs(hit - expected) <= 4 * sd + 0.01, (target, hit, expected)


def test_signatures_depend_on_the_set_and_the_seed_only():
    texts = ["a b c d e f g h", "e f g h a b c d", "a b c d e f g h"]
    h1 = mh.MinHasher(64, seed=1)
    s = _signatures(texts, None, h1, n=1)
    assert (s[0] == s[1]).all() and (s[0] == s[2]).all(), "unigram sets are equal"
    assert (s[0] == _signatures(texts[:1], None, mh.MinHasher(64, seed=1), n=1)[0]).all()
    assert (s[0] != _signatures(texts[:1], None, mh.MinHasher(64, seed=2), n=1)[0]).mean() > 0.9
    empty = _signatures([""], None, h1)
    assert (empty == 0xFFFFFFFF).all()


# --------------------------------------------------------------------------------------------------
# Distributed connected components
# --------------------------------------------------------------------------------------------------


def _plan(work: str, partitions: int) -> dedup.DedupPlan:
    return dedup.DedupPlan(output_dir=work, files=(), shards=(), partitions=partitions, bands=0, rows=0, ngram=5,
                           seed=1, batch_rows=64, scope_columns=(), keep=(), exact=True, minhash=True, url=False,
                           digest="test")


def _components_serially(plan: dedup.DedupPlan, a: np.ndarray, b: np.ndarray) -> tuple[dict[int, int], int]:
    """The driver's Large-Star / Small-Star loop, tasks called in-process; returns labels and rounds."""
    P = plan.partitions
    split = np.arange(len(a)) % P  # edges arrive from every pairs task
    for p in range(P):
        dedup._write_both_directions(plan.work("pairs", dedup._pname(p)), a[split == p], b[split == p], P)
    src = "pairs"
    for k in range(64):
        ls = f"cc/ls-{k:03d}"
        unstable = sum(dedup._large_star_task(plan, ls, src, q)[1]["unstable"] for q in range(P))
        if unstable == 0:
            labels = {}
            for q in range(P):
                t = pq.read_table(plan.work(ls, dedup._pname(q), "parents.parquet"))
                labels.update(zip(t.column("key").to_pylist(), t.column("root").to_pylist(), strict=True))
            return labels, k + 1
        ss = f"cc/ss-{k:03d}"
        for q in range(P):
            dedup._small_star_task(plan, ss, ls, q)
        src = ss
    raise AssertionError("no convergence")


def _union_find(a: np.ndarray, b: np.ndarray) -> dict[int, int]:
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for x, y in zip(a.tolist(), b.tolist(), strict=True):
        rx, ry = find(x), find(y)
        if rx != ry:
            parent[max(rx, ry)] = min(rx, ry)
    return {x: find(x) for x in parent}


def _check_components(edges: list[tuple[int, int]], partitions: int) -> int:
    a = np.array([e[0] for e in edges], dtype=np.int64)
    b = np.array([e[1] for e in edges], dtype=np.int64)
    keep = a != b
    a, b = a[keep], b[keep]
    with tempfile.TemporaryDirectory() as work:
        labels, rounds = _components_serially(_plan(work, partitions), a, b)
    expected = _union_find(a, b)
    assert labels == expected
    return rounds


# node ids shaped like document keys: shard << 32 | row
_KEYS = st.builds(lambda s, r: (s << 32) | r, st.integers(0, 3), st.integers(0, 12))


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(_KEYS, _KEYS), max_size=40), st.integers(1, 4))
def test_components_match_union_find(edges, partitions):
    _check_components(edges, partitions)


@pytest.mark.parametrize("shape", ["path", "shuffled_path", "star", "two_cliques", "binary_tree"])
def test_components_on_adversarial_shapes(shape):
    rng = np.random.default_rng(1)
    n = 200
    ids = np.arange(n, dtype=np.int64) * 7919 + (3 << 32)
    if shape == "path":
        edges = [(ids[i], ids[i + 1]) for i in range(n - 1)]
    elif shape == "shuffled_path":
        perm = rng.permutation(ids)
        edges = [(perm[i], perm[i + 1]) for i in range(n - 1)]
    elif shape == "star":
        edges = [(ids[-1], ids[i]) for i in range(n - 1)]
    elif shape == "two_cliques":
        edges = [(ids[i], ids[j]) for i in range(30) for j in range(i)] + [
            (ids[100 + i], ids[100 + j]) for i in range(30) for j in range(i)]
    else:
        edges = [(ids[i], ids[(i - 1) // 2]) for i in range(1, n)]
    rounds = _check_components([(int(x), int(y)) for x, y in edges], 3)
    assert rounds <= 12, f"{shape}: {rounds} rounds"

