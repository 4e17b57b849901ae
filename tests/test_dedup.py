"""The dedup stage end to end on the session's Ray runtime: planted near-duplicates, keeper rule,
scopes, URL and exact-only modes, resume, the CLI, and a two-node Ray cluster (in a subprocess)."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import dedup
from pipelines import minhash as mh
from pipelines.config import parse_config
from pipelines.dedup import run_dedup

pytestmark = pytest.mark.usefixtures("ray_session")


@pytest.fixture(autouse=True)
def _small_partitions(monkeypatch):
    """Tiny test corpora would get one partition; the tests want the multi-partition paths."""
    monkeypatch.setattr(dedup, "MIN_DOCS_PER_PARTITION", 1)

ROOT = Path(__file__).resolve().parents[1]


def _config(**dedup):
    base = {"partitions": 4, "keep_work": False}
    base.update(dedup)
    return parse_config({"name": "t", "dedup": base, "ray": {"task_memory_mb": 256, "max_retries": 0}})


def _read(out: Path, shard: str) -> tuple[pa.Table, pa.Table]:
    return pq.read_table(out / f"{shard}.parquet"), pq.read_table(out / "rejected" / f"{shard}.parquet")


def _clusters(out: Path, shards: list[str]) -> dict[str, str]:
    """Document id -> cluster id, over kept and rejected rows."""
    cluster = {}
    for shard in shards:
        for table in _read(out, shard):
            for i, c in zip(table.column("id").to_pylist(), table.column("dup_cluster_id").to_pylist(), strict=True):
                cluster[i] = c
    return cluster


def _run(tmp_path: Path, corpus, name: str = "out", **dedup) -> tuple[Path, list[str], dict]:
    paths = corpus.write(str(tmp_path / "in"))
    out = tmp_path / name
    summary = run_dedup(_config(**dedup), [str(tmp_path / "in")], str(out), progress=False)
    return out, [Path(p).stem for p in paths], summary


# --------------------------------------------------------------------------------------------------
# Synthetic corpora with planted near-duplicates at known Jaccard levels
# --------------------------------------------------------------------------------------------------

LEVELS = (0.95, 0.9, 0.8, 0.7, 0.5)


def _words(rng: np.random.Generator, n: int, prefix: str) -> list[str]:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    return [prefix + "".join(rng.choice(letters, size=int(rng.integers(3, 9)))) for _ in range(n)]


def variant(words: list[str], target: float, ngram: int, rng: np.random.Generator, fresh: list[str]) -> list[str]:
    """Replace words at positions at least ``ngram`` apart so the shingle Jaccard is about ``target``.

    Each replaced word changes ``ngram`` shingles into new ones: with M shingles and c changed,
    J = (M - c) / (M + c), so c = M (1 - J) / (1 + J).
    """
    m = len(words) - ngram + 1
    k = max(1, round(m * (1 - target) / (1 + target) / ngram))
    slots = np.arange(0, len(words), ngram)
    pos = rng.choice(slots, size=min(k, len(slots)), replace=False)
    out = list(words)
    for p in pos:
        out[int(p)] = fresh[int(rng.integers(len(fresh)))]
    return out


@dataclass
class Corpus:
    """Rows by shard, and each document's group and role (base, exact, near:<level>, single)."""

    shards: list[list[dict]] = field(default_factory=list)

    @property
    def docs(self) -> list[dict]:
        return [d for s in self.shards for d in s]

    def write(self, directory: str) -> list[str]:
        os.makedirs(directory, exist_ok=True)
        paths = []
        for i, rows in enumerate(self.shards):
            path = os.path.join(directory, f"part-{i:03d}.parquet")
            cols = {k: [r[k] for r in rows] for k in ("id", "text", "url", "lang", "snapshot", "edu_score")}
            table = pa.table({**{k: pa.array(v, pa.string()) for k, v in cols.items() if k != "edu_score"},
                              "edu_score": pa.array(cols["edu_score"], pa.float32())})
            pq.write_table(table, path)
            paths.append(path)
        return paths


def planted_corpus(groups: int = 30, singles: int = 100, words: int = 300, shards: int = 3, ngram: int = 5,
                   seed: int = 0, langs: tuple[str, ...] = ("en",), snapshots: tuple[str, ...] = ("CC-1",)) -> Corpus:
    """``groups`` base documents, each with an exact copy, a copy differing in case/punctuation/spacing,
    and one variant per level in `LEVELS`; plus ``singles`` unrelated documents. Documents of a group
    are spread over shards, so duplicates cross shard boundaries."""
    rng = np.random.default_rng(seed)
    vocab = _words(rng, 20_000, "")
    fresh = _words(rng, 5_000, "z")  # replacement words never occur in a base text
    corpus = Corpus([[] for _ in range(shards)])
    n = 0

    def add(text: str, group: int, role: str, lang: str, snapshot: str) -> None:
        nonlocal n
        corpus.shards[int(rng.integers(shards))].append({
            "id": f"doc-{n:05d}", "text": text, "url": f"https://example.com/{group}/{n}", "lang": lang,
            "snapshot": snapshot, "edu_score": float(rng.random() * 5), "group": group, "role": role})
        n += 1

    for g in range(groups):
        lang = langs[g % len(langs)]
        snapshot = snapshots[g % len(snapshots)]
        base = list(rng.choice(vocab, size=words))
        text = " ".join(base)
        add(text, g, "base", lang, snapshot)
        add(text, g, "exact", lang, snapshot)
        add(text.upper().replace(" ", ",  ", 7) + "!!", g, "exact", lang, snapshot)
        for level in LEVELS:
            add(" ".join(variant(base, level, ngram, rng, fresh)), g, f"near:{level}", lang, snapshot)
    for i in range(singles):
        add(" ".join(rng.choice(vocab, size=words)), groups + i, "single", langs[i % len(langs)],
            snapshots[i % len(snapshots)])
    return corpus


# --------------------------------------------------------------------------------------------------
# Correctness on planted near-duplicates
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def planted(tmp_path_factory, two_node_run):
    tmp = tmp_path_factory.mktemp("planted")
    corpus = planted_corpus(groups=30, singles=100, shards=3, seed=0)
    out, shards, summary = _run(tmp, corpus, scope="global", threshold=0.8, keep_work=True)
    return corpus, out, shards, summary


def test_kept_plus_rejected_is_input_in_order(planted):
    corpus, out, shards, summary = planted
    for shard, rows in zip(shards, corpus.shards, strict=True):
        kept, rejected = _read(out, shard)
        ids_in = [r["id"] for r in rows]
        assert kept.num_rows + rejected.num_rows == len(rows)
        assert sorted(kept.column("id").to_pylist() + rejected.column("id").to_pylist()) == sorted(ids_in)
        kept_ids = kept.column("id").to_pylist()
        assert kept_ids == [i for i in ids_in if i in set(kept_ids)], "kept rows keep the input order"
        stats = json.loads((out / "_stats" / f"{shard}.json").read_text())
        assert stats["docs_in"] == len(rows) and stats["docs_out"] == kept.num_rows
    assert summary["docs_in"] == summary["docs_out"] + summary["docs_rejected"] == len(corpus.docs)
    assert summary["shards"] == {"total": 3, "skipped_complete": 0, "processed": 3, "failed": 0}
    on_disk = json.loads((out / "_summary.json").read_text())
    for key in ("docs_in", "docs_out", "docs_rejected", "bytes_in", "bytes_out", "wall_seconds", "docs_per_s",
                "reasons", "failures_by_reason", "counters", "phases", "lsh"):
        assert key in on_disk, key
    assert set(on_disk["counters"]) >= {"dup_cluster_size", "dedup"}
    assert "phase_seconds" not in on_disk["counters"] and on_disk["signature_hash_seconds"] >= 0
    assert (out / "_failures.jsonl").read_text() == ""
    assert summary["lsh"]["bands"] * summary["lsh"]["rows"] <= 128


def test_cluster_columns_and_reasons(planted):
    corpus, out, shards, summary = planted
    by_id = {d["id"]: d for d in corpus.docs}
    members: dict[str, list[str]] = defaultdict(list)
    kept_ids = set()
    for shard in shards:
        kept, rejected = _read(out, shard)
        for row in kept.to_pylist():
            members[row["dup_cluster_id"]].append(row["id"])
            kept_ids.add(row["id"])
        for row in rejected.to_pylist():
            kind, _, keeper = row["reject_reason"].partition(":")
            assert kind in ("duplicate_of", "exact_duplicate_of")
            assert keeper == row["dup_cluster_id"]
            members[keeper].append(row["id"])
            if kind == "exact_duplicate_of":
                assert by_id[row["id"]]["group"] == by_id[keeper]["group"]
                assert by_id[row["id"]]["role"] in ("base", "exact") and by_id[keeper]["role"] in ("base", "exact")
    sizes = {}
    for shard in shards:
        for table in _read(out, shard):
            for row in table.select(["dup_cluster_id", "dup_cluster_size"]).to_pylist():
                sizes.setdefault(row["dup_cluster_id"], set()).add(row["dup_cluster_size"])
    for keeper, ids in members.items():
        assert keeper in kept_ids and keeper in ids, "every cluster is named after its one kept member"
        assert sizes[keeper] == {len(ids)}
        scores = [by_id[i]["edu_score"] for i in ids]
        assert by_id[keeper]["edu_score"] == max(scores), "keeper: highest edu_score"
    hist = summary["counters"]["dup_cluster_size"]
    assert sum(hist.values()) == summary["docs_out"]
    assert summary["reasons"] == dict(Counter(
        r.split(":")[0] for s in shards for r in _read(out, s)[1].column("reject_reason").to_pylist()))


def _pair_jaccards(sets: list[set]) -> dict[tuple[int, int], float]:
    """Exact Jaccard of every pair sharing a shingle (an inverted index); all other pairs have 0."""
    index: dict[tuple, list[int]] = defaultdict(list)
    for i, s in enumerate(sets):
        for shingle in s:
            index[shingle].append(i)
    shared: Counter = Counter()
    for docs in index.values():
        if len(docs) > 1:
            shared.update(itertools.combinations(docs, 2))
    return {(i, j): n / (len(sets[i]) + len(sets[j]) - n) for (i, j), n in shared.items()}


def _pair_quality(corpus, out, shards, summary) -> dict:
    """Exact brute-force Jaccard on the same shingles against the clusters found (threshold 0.8)."""
    docs = corpus.docs
    cluster = _clusters(out, shards)
    label = [cluster[d["id"]] for d in docs]
    jac = _pair_jaccards([mh.shingle_set(d["text"], d["lang"], 5) for d in docs])
    n_pairs = len(docs) * (len(docs) - 1) // 2
    same_total = sum(c * (c - 1) // 2 for c in Counter(label).values())
    rows = [(label[i] == label[j], t, docs[i]["group"] == docs[j]["group"]) for (i, j), t in jac.items()]
    same_zero = same_total - sum(s for s, _, _ in rows)  # same-cluster pairs without a shared shingle
    high = [s for s, t, _ in rows if t >= 0.9]
    exact = [s for s, t, _ in rows if t == 1.0]
    low_n = sum(1 for _, t, _ in rows if t <= 0.5) + (n_pairs - len(rows))
    low_same = sum(s for s, t, _ in rows if t <= 0.5) + same_zero
    low_in_group = [s for s, t, g in rows if t <= 0.5 and g]
    positives = sum(1 for _, t, _ in rows if t >= 0.8)
    hits = sum(1 for s, t, _ in rows if s and t >= 0.8)
    by_range = {}
    for lo, hi in ((1.0, 1.01), (0.9, 1.0), (0.8, 0.9), (0.7, 0.8), (0.5, 0.7), (1e-9, 0.5)):
        sel = [s for s, t, _ in rows if lo <= t < hi]
        by_range[f"[{lo:g},{hi:g})"] = (len(sel), round(sum(sel) / len(sel), 3) if sel else None)
    q = {"precision": hits / same_total, "recall": hits / positives, "high": sum(high) / len(high),
         "exact_all": all(exact), "low": low_same / low_n, "low_in_group": sum(low_in_group) / len(low_in_group)}
    print(f"\ndedup planted corpus: {len(docs)} docs, {n_pairs} pairs; threshold 0.8, "
          f"{summary['lsh']['bands']}x{summary['lsh']['rows']} bands x rows, verify {summary['lsh']['verify']}")
    print(f"pair precision {q['precision']:.3f} recall {q['recall']:.3f} (positives: true Jaccard >= 0.8: "
          f"{positives}; same-cluster pairs: {same_total})")
    print(f"same-cluster rate: J>=0.9 {q['high']:.3f} ({len(high)} pairs); J<=0.5 {q['low']:.5f} ({low_n} pairs), "
          f"within groups {q['low_in_group']:.3f} ({len(low_in_group)} pairs); exact {sum(exact)}/{len(exact)}")
    print(f"by true-Jaccard range (pairs, same-cluster rate): {by_range}")
    return q


def test_planted_pairs_precision_recall(planted):
    q = _pair_quality(*planted)
    assert q["exact_all"], "exact duplicates always share a cluster"
    assert q["high"] >= 0.95
    assert q["low"] <= 0.02
    assert q["low_in_group"] <= 0.02


def test_verified_candidates_raise_precision_and_keep_recall(planted, tmp_path):
    """dedup.verify drops band collisions below the threshold: same corpus, same bands."""
    corpus, _, _, summary = planted
    out, shards, verified = _run(tmp_path, corpus, scope="global", threshold=0.8, verify=True)
    plain, checked = _pair_quality(*planted), _pair_quality(corpus, out, shards, verified)
    assert checked["exact_all"] and checked["low"] <= plain["low"]
    assert checked["precision"] >= max(plain["precision"] + 0.05, 0.93)
    assert checked["recall"] >= plain["recall"] - 0.03
    assert checked["high"] >= 0.95
    counters = verified["counters"]["dedup"]
    assert counters["verified_links"] < counters["candidate_links"]


# --------------------------------------------------------------------------------------------------
# Keeper rule, scopes, URL, exact-only, edge cases
# --------------------------------------------------------------------------------------------------


def _write(path: Path, rows: list[dict], schema: pa.Schema | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


TEXT = "the quick brown fox jumps over the lazy dog near the river bank today"
ALPHA = "alpha particles carry two protons and two neutrons bound together into one nucleus"
BETA = "beta decay turns a neutron into a proton while emitting an electron and an antineutrino"
GAMMA = "gamma rays are photons of very high energy released by excited atomic nuclei"


def test_keeper_rule(tmp_path):
    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("edu_score", pa.float64())])
    _write(tmp_path / "in" / "a.parquet", [
        {"id": "a1", "text": ALPHA, "edu_score": 2.0},
        {"id": "a2", "text": "Alpha, " + ALPHA[6:], "edu_score": 4.0},  # highest score wins
        {"id": "a3", "text": ALPHA.upper() + "!!!", "edu_score": None},  # null: last
        {"id": "b2", "text": BETA, "edu_score": 3.0},
        {"id": "b1", "text": "Beta... " + BETA[5:] + "!!", "edu_score": 3.0},  # same score: longest wins
        {"id": "c2", "text": GAMMA, "edu_score": float("nan")},
        {"id": "c1", "text": GAMMA.capitalize(), "edu_score": float("nan")},  # same score, length: smallest id
    ], schema)
    out = tmp_path / "out"
    summary = run_dedup(_config(scope="global"), [str(tmp_path / "in")], str(out), progress=False)
    kept, rejected = _read(out, "a")
    assert kept.column("id").to_pylist() == ["a2", "b1", "c1"]
    assert dict(zip(rejected.column("id").to_pylist(), rejected.column("reject_reason").to_pylist(), strict=True)) == {
        "a1": "exact_duplicate_of:a2", "a3": "exact_duplicate_of:a2", "b2": "exact_duplicate_of:b1",
        "c2": "exact_duplicate_of:c1"}
    assert kept.column("dup_cluster_size").to_pylist() == [3, 2, 2]
    assert summary["lsh"]["keep"] == ["edu_score", "length", "id"]
    # lowest score first when the rule says "-edu_score"; a missing column is skipped
    out2 = tmp_path / "out2"
    summary = run_dedup(_config(scope="global", keep=["-edu_score", "no_such_column", "id"]),
                        [str(tmp_path / "in")], str(out2), progress=False)
    assert _read(out2, "a")[0].column("id").to_pylist() == ["a1", "b1", "c1"]
    assert summary["lsh"]["keep"] == ["-edu_score", "id"]


def _scoped_rows() -> list[dict]:
    rows = []
    for i, (lang, snap) in enumerate(itertools.product(("pt", "en"), ("CC-A", "CC-B"))):
        for copy in range(2):
            rows.append({"id": f"{lang}-{snap}-{copy}", "text": TEXT + " " + TEXT, "lang": lang, "snapshot": snap,
                         "n": i})
    return rows


@pytest.mark.parametrize("scope,clusters", [("global", 1), ("language", 2), ("snapshot", 2),
                                            ("snapshot_language", 4)])
def test_scopes_never_match_across(tmp_path, scope, clusters):
    _write(tmp_path / "in" / "s.parquet", _scoped_rows())
    out = tmp_path / "out"
    run_dedup(_config(scope=scope), [str(tmp_path / "in")], str(out), progress=False)
    kept, rejected = _read(out, "s")
    assert kept.num_rows == clusters and kept.num_rows + rejected.num_rows == 8
    cols = {"global": (), "language": ("lang",), "snapshot": ("snapshot",),
            "snapshot_language": ("lang", "snapshot")}[scope]
    by_id = {r["id"]: r for r in _scoped_rows()}
    for row in rejected.to_pylist():
        keeper = by_id[row["dup_cluster_id"]]
        assert all(keeper[c] == row[c] for c in cols)


def test_url_and_exact_only_modes(tmp_path):
    rows = [
        {"id": "u1", "text": "first version of the page " + TEXT, "url": "https://www.Example.com/a/#top"},
        {"id": "u2", "text": "a completely different body text about other things entirely",
         "url": "http://example.com/a/"},
        {"id": "n1", "text": TEXT + " one two three four five six seven", "url": None},
        {"id": "n2", "text": TEXT + " one two three four five six eight", "url": None},
        {"id": "e1", "text": "", "url": None},
        {"id": "e2", "text": None, "url": None},
        {"id": "e3", "text": "...", "url": ""},
    ]
    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("url", pa.string())])
    _write(tmp_path / "in" / "u.parquet", rows, schema)
    for verify in (False, True):  # verification never touches URL or exact buckets
        out = tmp_path / f"url-{verify}"
        run_dedup(_config(scope="global", url=True, threshold=0.7, verify=verify), [str(tmp_path / "in")], str(out),
                  progress=False)
        kept, rejected = _read(out, "u")
        reasons = dict(zip(rejected.column("id").to_pylist(), rejected.column("reject_reason").to_pylist(),
                           strict=True))
        assert reasons == {"u2": "url_duplicate_of:u1", "n2": "duplicate_of:n1"}, "empty texts never match"
    out = tmp_path / "exact"
    summary = run_dedup(_config(scope="global", minhash=False), [str(tmp_path / "in")], str(out), progress=False)
    assert _read(out, "u")[1].num_rows == 0 and summary["lsh"]["bands"] == 0
    out = tmp_path / "none"
    summary = run_dedup(_config(scope="global", minhash=False, exact=False), [str(tmp_path / "in")], str(out),
                        progress=False)
    kept, rejected = _read(out, "u")
    assert rejected.num_rows == 0
    assert kept.column("dup_cluster_id").to_pylist() == [r["id"] for r in rows]
    assert set(kept.column("dup_cluster_size").to_pylist()) == {1}


def test_empty_shard_and_existing_cluster_columns(tmp_path):
    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("dup_cluster_id", pa.string()),
                        ("dup_cluster_size", pa.int64())])
    _write(tmp_path / "in" / "empty.parquet", [], schema)
    _write(tmp_path / "in" / "full.parquet", [{"id": "x", "text": TEXT, "dup_cluster_id": "old",
                                               "dup_cluster_size": 9}] * 1 + [
        {"id": "y", "text": TEXT, "dup_cluster_id": "old", "dup_cluster_size": 9}], schema)
    out = tmp_path / "out"
    summary = run_dedup(_config(scope="global"), [str(tmp_path / "in")], str(out), progress=False)
    assert _read(out, "empty")[0].num_rows == 0
    kept, rejected = _read(out, "full")
    assert kept.to_pylist() == [{"id": "x", "text": TEXT, "dup_cluster_id": "x", "dup_cluster_size": 2}]
    assert kept.schema.field("dup_cluster_size").type == pa.int32()
    assert rejected.column("reject_reason").to_pylist() == ["exact_duplicate_of:x"]
    assert summary["docs_in"] == 2


def test_small_corpus_gets_fewer_partitions(tmp_path, monkeypatch):
    monkeypatch.setattr(dedup, "MIN_DOCS_PER_PARTITION", 3)
    _write(tmp_path / "in" / "s.parquet", _scoped_rows())  # 8 documents
    summary = run_dedup(_config(scope="global", partitions=16), [str(tmp_path / "in")], str(tmp_path / "out"),
                        progress=False)
    assert summary["lsh"]["partitions"] == 3 and summary["docs_out"] == 1


# --------------------------------------------------------------------------------------------------
# Resume
# --------------------------------------------------------------------------------------------------


def _snapshot(out: Path, shards: list[str]) -> dict[str, pa.Table]:
    return {f"{s}/{k}": t for s in shards for k, t in zip(("kept", "rejected"), _read(out, s), strict=True)}


def test_resume_recomputes_only_what_is_missing(tmp_path):
    corpus = planted_corpus(groups=6, singles=20, shards=3, seed=3)
    out, shards, first = _run(tmp_path, corpus, scope="global", keep_work=True)
    before = _snapshot(out, shards)
    work = out / "_work"
    assert (work / "plan.json").is_file() and (work / "signatures" / "_done" / f"{shards[1]}.json").is_file()

    # a finished run: nothing recomputed
    again = run_dedup(_config(scope="global", keep_work=True), [str(tmp_path / "in")], str(out), progress=False)
    assert again["shards"]["skipped_complete"] == 3 and again["phases"] == {}

    # a killed run: one signature file lost, one keeper marker lost, one final shard missing
    os.remove(work / "signatures" / "bands" / shards[1] / "part-00002.parquet")
    os.remove(work / "keepers" / "_done" / "00001.json")
    os.remove(out / "_stats" / f"{shards[2]}.json")
    os.remove(out / f"{shards[2]}.parquet")
    resumed = run_dedup(_config(scope="global", keep_work=True), [str(tmp_path / "in")], str(out), progress=False)
    ph = resumed["phases"]
    assert (ph["signatures"]["tasks_run"], ph["signatures"]["tasks_reused"]) == (1, 2)
    assert ph["pairs"]["tasks_run"] == 0 and ph["cc"]["tasks_run"] == 0 and ph["attach"]["tasks_run"] == 0
    assert (ph["keepers"]["tasks_run"], ph["keepers"]["tasks_reused"]) == (1, 3)
    assert (ph["write"]["tasks_run"], ph["write"]["tasks_reused"]) == (1, 2)
    assert resumed["shards"] == {"total": 3, "skipped_complete": 2, "processed": 1, "failed": 0}
    after = _snapshot(out, shards)
    for key, table in before.items():
        assert after[key].equals(table), key
    assert resumed["docs_out"] == first["docs_out"]

    # another config: the work directory is recomputed from scratch
    changed = run_dedup(_config(scope="global", threshold=0.7, keep_work=False), [str(tmp_path / "in")], str(out),
                        progress=False)
    assert changed["phases"]["signatures"]["tasks_run"] == 3 and changed["shards"]["processed"] == 3
    assert not work.exists(), "work files are removed after a successful run unless keep_work"


def test_unreadable_shard_is_reported_and_the_rest_goes_on(tmp_path):
    corpus = planted_corpus(groups=3, singles=5, shards=2, seed=5)
    corpus.write(str(tmp_path / "in"))
    bad = tmp_path / "in" / "part-001.parquet"
    data = bad.read_bytes()
    bad.write_bytes(data[:4] + b"\0" * 64 + data[68:])  # schema footer intact, first page destroyed
    out = tmp_path / "out"
    summary = run_dedup(_config(scope="global"), [str(tmp_path / "in")], str(out), progress=False)
    assert summary["shards"]["failed"] == 1 and summary["failed_shards"][0]["shard"] == "part-001"
    assert (out / "part-000.parquet").is_file() and not (out / "part-001.parquet").exists()
    failures = [json.loads(line) for line in (out / "_failures.jsonl").read_text().splitlines()]
    assert failures[0]["file"].endswith("part-001.parquet") and failures[0]["reason"].startswith("shard_failed:")
    assert (out / "_work").is_dir(), "work files stay for the resume after a failure"


# --------------------------------------------------------------------------------------------------
# CLI and a two-node Ray cluster
# --------------------------------------------------------------------------------------------------


def test_cli_dedup_stage(tmp_path):
    from pipelines.cli import main

    corpus = planted_corpus(groups=3, singles=5, shards=2, seed=7)
    corpus.write(str(tmp_path / "in"))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"name: c\noutput: {tmp_path / 'run'}\ndedup:\n  partitions: 2\n  scope: global\n")
    assert main(["dedup", "--config", str(cfg), "--input", str(tmp_path / "in"), "--output",
                 str(tmp_path / "d"), "--no-progress"]) == 0
    summary = json.loads((tmp_path / "d" / "_summary.json").read_text())
    assert summary["stage"] == "dedup" and summary["docs_in"] == len(corpus.docs)
    assert summary["docs_rejected"] >= 3 * 3


CLUSTER_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {root!r})
    import ray
    from ray.cluster_utils import Cluster
    from pipelines import dedup
    from pipelines.config import parse_config
    from pipelines.dedup import run_dedup

    dedup.MIN_DOCS_PER_PARTITION = 1
    cluster = None
    try:  # SIGINT (KeyboardInterrupt) from the fixture's teardown still shuts both nodes down
        cluster = Cluster(initialize_head=True, head_node_args={{"num_cpus": 1, "include_dashboard": False}})
        cluster.add_node(num_cpus=1)
        ray.init(address=cluster.address, logging_level="WARNING")
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        cfg = parse_config({{"name": "c", "dedup": {{"partitions": 3, "scope": "global"}},
                            "ray": {{"task_memory_mb": 128, "max_retries": 0}}}})
        summary = run_dedup(cfg, [{inp!r}], {out!r}, progress=False)
        nodes = max(p["nodes"] for p in summary["phases"].values())
        print(json.dumps({{"docs_out": summary["docs_out"], "docs_rejected": summary["docs_rejected"],
                          "nodes": nodes}}))
    finally:
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
""")


@pytest.fixture(scope="module")
def two_node_run(tmp_path_factory):
    """Start the two-node cluster run in a subprocess now, and collect it at the end of the module.

    Starting two Ray nodes takes 10-20 s, mostly waiting for processes; the `planted` fixture asks
    for this one so that start-up overlaps the tests in between. The subprocess is needed because
    the session's Ray runtime is already initialised in this process.
    """
    tmp = tmp_path_factory.mktemp("cluster")
    planted_corpus(groups=4, singles=10, shards=4, seed=11).write(str(tmp / "in"))
    script = tmp / "cluster.py"
    script.write_text(CLUSTER_SCRIPT.format(root=str(ROOT), inp=str(tmp / "in"), out=str(tmp / "cl")))
    # A private Ray temp dir: a cluster started with cluster_utils records itself in
    # <temp>/ray/ray_current_cluster, and any `ray.init()` on this machine (another test session, the
    # CLI) would otherwise connect to it. Kept short: Ray's socket paths must fit in 107 bytes.
    ray_tmp = tempfile.mkdtemp(prefix="rdc", dir="/tmp")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"RAY_TMPDIR": ray_tmp}
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=str(tmp))
    yield tmp, proc
    if proc.poll() is None:  # not collected (test deselected or failed early): stop it cleanly
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
    shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.mark.slow
def test_two_node_cluster_gives_the_same_result(two_node_run):
    tmp, proc = two_node_run
    local = run_dedup(_config(partitions=3, scope="global"), [str(tmp / "in")], str(tmp / "local"), progress=False)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["docs_out"] == local["docs_out"] and result["docs_rejected"] == local["docs_rejected"]
    assert result["nodes"] == 2, "tasks ran on both nodes"
    for shard in ("part-000", "part-001", "part-002", "part-003"):
        for a, b in zip(_read(tmp / "local", shard), _read(tmp / "cl", shard), strict=True):
            assert a.equals(b)
