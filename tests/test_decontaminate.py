"""The decontaminate stage: benchmark items planted in web pages are found, common phrases are not.

Benchmarks are files the tests write (JSONL, Parquet, CSV and a save_to_disk directory); documents
are Parquet shards run through the real stage, and once through the Ray runner. Parity: the same
decisions as datatrove's ``NGramsDecontFilter`` on the same documents and items.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from bench.datatrove_decont import datatrove_filter, datatrove_flags
from pipelines.config import ConfigError, parse_config
from pipelines.decontaminate import DecontaminateStage, benchmark_report, build_index, normalize_text
from pipelines.runner import run_shards

PT_ITEMS = [
    {"id": "enem-1", "question": "Segundo o texto, qual é a principal causa do aumento das enchentes nas grandes "
     "cidades brasileiras durante o verão de 2019?",
     "choices": ["A impermeabilização do solo urbano", "O desmatamento da Amazônia"], "answer": "A"},
    {"id": "enem-2", "question": "No poema, o eu lírico expressa um sentimento de melancolia diante da passagem do "
     "tempo e da memória da infância vivida em Itabira, cidade natal do autor.",
     "choices": ["nostalgia", "euforia"], "answer": "A"},
]
JA_ITEMS = [
    {"qid": "jcq-7", "question": "日本の首都である東京は、世界でも有数の人口を持つ大都市であり、多くの企業の本社が集まっている。",
     "answer": "東京"},
    {"qid": "jcq-8", "question": "富士山は静岡県と山梨県にまたがる活火山で、標高は三七七六メートルである。", "answer": "富士山"},
]
NOISE_PT = ("Clique aqui para assinar a nossa newsletter e receber as novidades. Publicado em 12/03/2021 por "
            "Redação. Compartilhe no Facebook, Twitter e WhatsApp. ")
NOISE_JA = "ホーム | お問い合わせ | サイトマップ。このページでは最新のニュースをお届けします。"


def _config(tmp_path: Path, benchmarks: list[dict], **extra) -> object:
    return parse_config({"name": "t", "output": str(tmp_path / "run"),
                         "decontaminate": {"enabled": True, "benchmarks": benchmarks, **extra}})


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def benchmarks(tmp_path: Path) -> list[dict]:
    pt = _write_jsonl(tmp_path / "enem.jsonl", PT_ITEMS)
    ja = tmp_path / "jcq.parquet"
    pq.write_table(pa.Table.from_pylist(JA_ITEMS), ja)
    return [{"name": "enem", "path": str(pt), "fields": ["question", "choices"], "id_field": "id", "lang": "pt"},
            {"name": "jcq", "path": str(ja), "fields": ["question"], "id_field": "qid", "lang": "ja"}]


DOCS = [
    # exact copy inside a longer page
    ("pt-exact", "pt", NOISE_PT + PT_ITEMS[0]["question"] + " " + NOISE_PT * 3),
    # near copy: case, punctuation and whitespace changed, accents lost
    ("pt-near", "pt", NOISE_PT + "NO POEMA o eu-lirico expressa... um sentimento de MELANCOLIA,\n\n diante da "
     "passagem do tempo e da memoria da infancia vivida em Itabira!" + NOISE_PT),
    # the question's common phrases only: must stay
    ("pt-common", "pt", NOISE_PT + "Segundo o texto, qual é a principal causa do problema? No poema, o eu lírico "
     "expressa um sentimento de alegria. As enchentes nas grandes cidades brasileiras são comuns." + NOISE_PT),
    ("ja-exact", "ja", NOISE_JA * 2 + JA_ITEMS[0]["question"] + NOISE_JA),
    ("ja-near", "ja", NOISE_JA + "富士山は 静岡県と山梨県にまたがる活火山で 標高は三七七六メートルである！" + NOISE_JA),
    ("ja-common", "ja", NOISE_JA + "日本の首都である東京は、美しい街です。富士山は静岡県にあります。" + NOISE_JA),
    ("en-clean", "en", "A page about gardening with nothing in common with any benchmark at all, really."),
]


def _shard(tmp_path: Path, docs=DOCS) -> Path:
    path = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"id": [d[0] for d in docs], "lang": [d[1] for d in docs], "text": [d[2] for d in docs]}),
                   path)
    return path


def _run(stage: DecontaminateStage, shard: Path, out: Path) -> tuple[dict, pa.Table, pa.Table | None]:
    stage.check_inputs([str(shard)])
    stats = stage.process_shard(str(shard), str(out), "docs")
    kept = pq.read_table(out / "docs.parquet")
    rejected = pq.read_table(out / "rejected" / "docs.parquet") if (out / "rejected" / "docs.parquet").exists() else None
    return stats, kept, rejected


def test_normalisation_case_punctuation_unicode_whitespace() -> None:
    assert normalize_text("  Não é FÁCIL,\n\t disse-me: 1.234 vezes! ＡＢＣ ") == "nao e facil disse me 0 vezes abc"
    assert normalize_text("富士山は、活火山。", strip_accents=False) == "富士山は 活火山"
    assert normalize_text("ガ", strip_accents=False) == "ガ"  # NFKC: half-width kana with its mark, composed


def test_remove_mode_finds_planted_items_and_spares_common_phrases(tmp_path: Path, benchmarks: list[dict]) -> None:
    stage = DecontaminateStage(_config(tmp_path, benchmarks))
    stats, kept, rejected = _run(stage, _shard(tmp_path), tmp_path / "out")
    reasons = dict(zip(rejected.column("id").to_pylist(), rejected.column("reject_reason").to_pylist(), strict=True))
    assert reasons == {"pt-exact": "contaminated:enem:enem-1", "pt-near": "contaminated:enem:enem-2",
                       "ja-exact": "contaminated:jcq:jcq-7", "ja-near": "contaminated:jcq:jcq-8"}
    assert sorted(kept.column("id").to_pylist()) == ["en-clean", "ja-common", "pt-common"]
    assert stats["docs_in"] == stats["docs_out"] + stats["docs_rejected"] == len(DOCS)
    report = benchmark_report(stats["counters"])
    assert {b: (r["docs_hit"], r["items_found"]) for b, r in report.items()} == {"enem": (2, 2), "jcq": (2, 2)}
    assert all(len(r["examples"]) == 2 for r in report.values())
    assert stats["index"]["benchmarks"]["enem"]["items"] == 2 and stats["index"]["bytes"] > 0


def test_tag_mode_keeps_everything_with_a_contaminated_list(tmp_path: Path, benchmarks: list[dict]) -> None:
    stage = DecontaminateStage(_config(tmp_path, benchmarks, mode="tag"))
    stats, kept, rejected = _run(stage, _shard(tmp_path), tmp_path / "out")
    assert stats["docs_rejected"] == 0 and (rejected is None or rejected.num_rows == 0)
    tags = dict(zip(kept.column("id").to_pylist(), kept.column("contaminated").to_pylist(), strict=True))
    assert tags["pt-near"] == ["enem:enem-2"] and tags["ja-exact"] == ["jcq:jcq-7"]
    assert tags["pt-common"] == [] and tags["en-clean"] == []
    assert kept.schema.field("contaminated").type == pa.list_(pa.string())


def test_min_overlap_needs_that_share_of_the_items_ngrams(tmp_path: Path) -> None:
    words = [f"termo{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(40)]
    bench = _write_jsonl(tmp_path / "b.jsonl", [{"text": " ".join(words)}])
    half = NOISE_PT + " ".join(words[:20]) + " " + NOISE_PT  # 8 of the item's 28 13-grams
    docs = [("half", "pt", half), ("all", "pt", NOISE_PT + " ".join(words) + NOISE_PT)]
    spec = [{"name": "b", "path": str(bench), "fields": ["text"], "lang": "pt"}]
    for min_overlap, flagged in ((0.0, {"half", "all"}), (0.25, {"half", "all"}), (0.5, {"all"})):
        out = tmp_path / f"out-{min_overlap}"
        _, _, rejected = _run(DecontaminateStage(_config(tmp_path, spec, min_overlap=min_overlap)),
                              _shard(tmp_path, docs), out)
        assert set(rejected.column("id").to_pylist()) == flagged, min_overlap


def test_csv_and_save_to_disk_benchmarks(tmp_path: Path) -> None:
    question = ("Which of the following best describes the main function of the mitochondria in a eukaryotic "
                "cell during aerobic respiration")
    pacsv.write_csv(pa.table({"q": [question], "a": ["energy"]}), tmp_path / "mmlu.csv")
    saved = tmp_path / "hf"
    (saved / "test").mkdir(parents=True)
    (saved / "dataset_dict.json").write_text(json.dumps({"splits": ["test"]}))
    table = pa.table({"passage": ["The quick brown fox jumps over the lazy dog while the farmer sleeps under the "
                                  "old oak tree near the river bank"], "idx": [41]})
    with pa.OSFile(str(saved / "test" / "data-00000-of-00001.arrow"), "wb") as sink, \
            pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    (saved / "test" / "state.json").write_text(json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}]}))
    specs = [{"name": "mmlu", "path": str(tmp_path / "mmlu.csv"), "fields": ["q", "a"]},
             {"name": "story", "path": str(saved), "fields": ["passage"], "id_field": "idx", "split": "test"}]
    docs = [("a", "en", "Quiz! " + question.upper() + "? Answer below."),
            ("b", "en", "Once upon a time: the quick brown fox jumps over the lazy dog while the farmer sleeps "
             "under the old oak tree near the river bank. The end.")]
    _, _, rejected = _run(DecontaminateStage(_config(tmp_path, specs)), _shard(tmp_path, docs), tmp_path / "out")
    assert rejected.column("reject_reason").to_pylist() == ["contaminated:mmlu:0", "contaminated:story:41"]


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"),
    ("no_field", "has no field(s) ['question']"),
    ("empty", "has no items"),
    ("bad_suffix", "cannot tell the format"),
    ("no_benchmarks", "expected at least one benchmark"),
])
def test_bad_benchmarks_are_config_errors(tmp_path: Path, case: str, message: str) -> None:
    path = {"missing": tmp_path / "nope.jsonl", "no_field": _write_jsonl(tmp_path / "x.jsonl", [{"text": "a"}]),
            "empty": _write_jsonl(tmp_path / "e.jsonl", []), "bad_suffix": _write_jsonl(tmp_path / "x.txt", [{}]),
            "no_benchmarks": None}[case]
    specs = [] if path is None else [{"name": "b", "path": str(path), "fields": ["question"]}]
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        DecontaminateStage(_config(tmp_path, specs)).check_inputs([])


def test_small_n_warns(tmp_path: Path, benchmarks: list[dict], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="cptcorpus"):
        DecontaminateStage(_config(tmp_path, benchmarks, n=4)).check_inputs([])
    assert "false positives" in caplog.text


def test_config_rejects_repeated_benchmark_names(tmp_path: Path) -> None:
    spec = {"name": "b", "path": "x.jsonl", "fields": ["q"]}
    with pytest.raises(ConfigError, match="repeated"):
        _config(tmp_path, [spec, spec])


# ---- parity with datatrove ------------------------------------------------------------------------

PT_WORDS = ("o a de que não em um para com uma os no se na por mais as dos como mas foi ao ele das tem à seu sua ou "
            "ser quando muito há nos já está eu também só pelo pela até isso ela entre era depois sem mesmo aos ter "
            "seus quem nas me esse eles estão você tinha foram essa num nem suas meu às minha têm numa pelos elas "
            "havia seja qual será nós tenho lhe deles essas esses pelas este fosse dele tu te vocês vos lhes meus "
            "minhas teu tua teus tuas nosso nossa nossos nossas dela delas esta estes estas aquele aquela aqueles "
            "escola cidade governo água energia 1.500 2021 ciência história exame questão resposta")
EN_WORDS = ("the of and to in is was that for on are with as his they be at one have this from or had by word but "
            "what some we can out other were all there when up use your how said an each she which do their time "
            "if will way about many then them write would like so these her long make thing see him two has look "
            "don't it's 42 3.14 science exam")


def _parity_case(rng: random.Random, vocabulary: str, n: int) -> tuple[list[str], list[str]]:
    """Items of 15-40 words; documents of noise with fragments of n-2 .. n+3 item words, re-cased and re-punctuated."""
    words = vocabulary.split()
    items = [" ".join(rng.choice(words) for _ in range(rng.randint(15, 40))) for _ in range(30)]
    docs = []
    for _ in range(300):
        noise = [rng.choice(words) for _ in range(rng.randint(20, 80))]
        item = rng.choice(items).split()
        k = rng.randint(n - 2, n + 3)
        start = rng.randint(0, max(0, len(item) - k))
        fragment = [w.upper() if rng.random() < 0.2 else w + rng.choice(["", "", ",", "!", " -"])
                    for w in item[start : start + k]]
        cut = rng.randint(0, len(noise))
        docs.append(" ".join(noise[:cut] + fragment + noise[cut:]))
    return items, docs


@pytest.mark.parametrize("lang, words", [("en", EN_WORDS), ("pt", PT_WORDS)])
def test_same_decisions_as_datatrove(tmp_path: Path, lang: str, words: str) -> None:
    n = 13
    items, docs = _parity_case(random.Random(7), words, n)
    reference = datatrove_flags(datatrove_filter({"bench": items}, tmp_path / "dt", n, lang), docs)
    bench = _write_jsonl(tmp_path / "b.jsonl", [{"text": t} for t in items])
    stage = DecontaminateStage(_config(tmp_path, [{"name": "bench", "path": str(bench), "fields": ["text"],
                                                   "lang": lang}], n=n))
    rows = [(f"d{k}", lang, t) for k, t in enumerate(docs)]
    _, _, rejected = _run(stage, _shard(tmp_path, rows), tmp_path / "out")
    ours = set(rejected.column("id").to_pylist())
    theirs = {f"d{k}" for k, task in enumerate(reference) if task is not None}
    assert 50 < len(theirs) < 250  # both kinds of document occur
    assert ours == theirs


def test_index_is_shared_through_the_runner(tmp_path: Path, benchmarks: list[dict], ray_session) -> None:
    config = _config(tmp_path, benchmarks)
    stage = DecontaminateStage(config)
    summary = run_shards(stage, [str(_shard(tmp_path))], str(tmp_path / "out"), config.ray, progress=False)
    assert summary["docs_rejected"] == 4 and summary["docs_out"] == 3
    assert benchmark_report(summary["counters"])["jcq"]["items_found"] == 2


def test_the_cli_summary_names_each_benchmark_with_its_hits(tmp_path: Path, benchmarks: list[dict], capsys) -> None:
    from pipelines.cli import _print_summary

    config = _config(tmp_path, benchmarks)
    stage = DecontaminateStage(config)
    stage.setup()
    stats = stage.process_shard(str(_shard(tmp_path)), str(tmp_path / "out"), "s")
    _print_summary({**stats, "stage": "decontaminate", "docs_per_s": 1, "mb_per_s": 1, "docs_per_s_per_task": 1})
    err = capsys.readouterr().err
    report = benchmark_report(stats["counters"])
    for bench, r in report.items():
        assert f"{bench}: {r['docs_hit']} documents hit, {r['items_found']} items found" in err


def test_index_holds_each_items_distinct_ngrams(tmp_path: Path, benchmarks: list[dict]) -> None:
    index = build_index(_config(tmp_path, benchmarks).decontaminate)
    assert list(index.item_ids) == ["enem-1", "enem-2", "jcq-7", "jcq-8"]
    assert int(index.item_ngrams.sum()) == len(index.hashes)
    assert (index.hashes[1:] >= index.hashes[:-1]).all()
