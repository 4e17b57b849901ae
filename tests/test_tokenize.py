"""The tokenize stage: Megatron/NeMo .bin/.idx equal to datatrove's, round trips, bad input, manifest, blend."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from bench.bench_extend_vocab import train_bpe
from pipelines import io
from pipelines.config import ConfigError, parse_config
from pipelines.manifest import build_manifest, validate_manifest
from pipelines.megatron import IndexedDataset, IndexedDatasetError, token_dtype
from pipelines.mixture import parse_recipe, resolve_mixture
from pipelines.runner import run_shards
from pipelines.shard import write_shards
from pipelines.tokens import TokenizeStage, byte_spans, decode_problems

WORDS = {k: v.split() for k, v in {
    "pt": "ação coração não informação educação é também muito obrigado cidade região pão mãe",
    "ja": "日本語 東京 学校 先生 ありがとう こんにちは 勉強 天気 電車 図書館 です ます",
    "th": "ภาษาไทย สวัสดี ขอบคุณ โรงเรียน ประเทศ กรุงเทพ อาหาร น้ำ ครับ ค่ะ",
    "en": "the model learns from clean text data and many tokens every day",
}.items()}
SEP = {"pt": " ", "ja": "", "th": "", "en": " "}


def sentence(rng: random.Random, lang: str, words: int) -> str:
    return SEP[lang].join(rng.choice(WORDS[lang]) for _ in range(words)) + ("。" if lang == "ja" else ".")


def documents(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """(lang, text) pairs in pt, ja, th and en, with empty documents and one very long document."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        lang = ["pt", "ja", "th", "en"][i % 4]
        text = "" if i % 17 == 5 else "\n".join(sentence(rng, lang, rng.randint(3, 40)) for _ in range(rng.randint(1, 6)))
        out.append((lang, text))
    out.insert(n // 2, ("pt", "\n\n".join(sentence(rng, "pt", 50) for _ in range(400))))  # ~150 KB: > batch_bytes
    return out


def train_tokenizer(path: Path, vocab_size: int = 600, added: int = 0) -> str:
    """A byte-level BPE trained here on generated text (no downloads), with a BOS token; ``added`` extra
    tokens grow the vocabulary past 65,535 ids."""
    train_bpe([t for _, t in documents(200, seed=99)], vocab_size, str(path))
    tok = Tokenizer.from_file(str(path))
    tok.add_special_tokens(["<s>"])
    if added:
        tok.add_tokens([f"zq{i}" for i in range(added)])
    tok.save(str(path))
    return str(path)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> str:
    return train_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer.json")


@pytest.fixture(scope="module")
def big_tokenizer(tmp_path_factory) -> str:
    """A vocabulary over 65,535 ids: the int32 path."""
    return train_tokenizer(tmp_path_factory.mktemp("bigtok") / "tokenizer.json", added=66_000)


def write_docs(path: Path, docs: list[tuple[str, str]], prefix: str = "d") -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"id": [f"{prefix}{i}" for i in range(len(docs))], "text": [t for _, t in docs],
                             "lang": [lang for lang, _ in docs]}), path, row_group_size=64)
    return str(path)


def stage(tokenizer: str, tmp_path: Path, **tokenize) -> TokenizeStage:
    cfg = parse_config({"name": "t", "output": str(tmp_path / "run"),
                        "tokenize": {"tokenizer": tokenizer, "batch_rows": 50, "batch_bytes": 4096, **tokenize}})
    return TokenizeStage(cfg)


def datatrove_files(tokenizer: str, docs: list[str], out: Path, bos: bool = False) -> str:
    """datatrove's MegatronDocumentTokenizer on the same documents: the reference bytes."""
    from datatrove.data import Document
    from datatrove.pipeline.tokens import MegatronDocumentTokenizer
    from tokenizers.processors import TemplateProcessing

    step = MegatronDocumentTokenizer(output_folder=str(out), tokenizer_name_or_path=tokenizer,
                                     eos_token="<|endoftext|>", batch_size=37)
    if bos:
        tok = Tokenizer.from_file(tokenizer)
        step.post_processor = TemplateProcessing(single="<s> $A <|endoftext|>", pair=None, special_tokens=[
            ("<s>", tok.token_to_id("<s>")), ("<|endoftext|>", tok.token_to_id("<|endoftext|>"))])
    step.run(iter(Document(text=t, id=str(i)) for i, t in enumerate(docs)), rank=0)
    return str(out / "00000_tokens")


@pytest.mark.parametrize("which,bos", [("small", False), ("small", True), ("big", False)])
def test_files_are_byte_identical_to_datatrove(which, bos, tokenizer, big_tokenizer, tmp_path):
    tok = tokenizer if which == "small" else big_tokenizer
    docs = documents(300)
    if which == "big":  # make sure ids above 65,535 really occur
        docs = [(lang, f"{text} zq65999 zq70") for lang, text in docs]
    shard = write_docs(tmp_path / "in" / "shard-00000.parquet", docs)
    st = stage(tok, tmp_path, bos_token="<s>" if bos else None)
    stats = st.process_shard(shard, str(tmp_path / "out"), "shard-00000")
    reference = datatrove_files(tok, [t for _, t in docs], tmp_path / "datatrove", bos=bos)
    for ext in ("bin", "idx"):
        ours = (tmp_path / "out" / f"shard-00000.{ext}").read_bytes()
        assert ours == Path(f"{reference}.{ext}").read_bytes(), f".{ext} differs from datatrove's"
    data = IndexedDataset(str(tmp_path / "out" / "shard-00000"))
    assert data.dtype.name == ("uint16" if which == "small" else "int32") == stats["tokenized"]["dtype"]
    if which == "big":
        assert int(max(data[i].max() for i in range(len(data)))) > 65_535
    assert len(data) == len(docs) == stats["docs_out"]
    assert stats["tokenized"]["special_tokens"] == len(docs) * (2 if bos else 1)
    assert stats["tokenized"]["tokens"] + stats["tokenized"]["special_tokens"] == data.num_tokens
    assert decode_problems(str(tmp_path / "out" / "shard-00000"), shard, st.plan) == []


def test_multilingual_empty_and_oversized_documents_round_trip(tokenizer, tmp_path):
    docs = documents(120)
    shard = write_docs(tmp_path / "shard-00007.parquet", docs)
    st = stage(tokenizer, tmp_path, verify_every=1)
    stats = st.process_shard(shard, str(tmp_path / "out"), "shard-00007")
    prefix = str(tmp_path / "out" / "shard-00007")
    data = IndexedDataset(prefix)
    tok = Tokenizer.from_file(tokenizer)
    eos = tok.token_to_id("<|endoftext|>")
    for i, (_, text) in enumerate(docs):  # shard order, EOS last, text back exactly (pt, ja, th, empty, huge)
        ids = data[i].tolist()
        assert ids[-1] == eos and tok.decode(ids[:-1]) == text
    empties = [i for i, (_, t) in enumerate(docs) if not t]
    assert empties and all(data.lengths[i] == 1 for i in empties)
    assert max(len(t.encode()) for _, t in docs) > 4096  # larger than a batch: encoded alone, whole
    assert stats["counters"]["lossy"] == {"unknown_token": 0, "roundtrip_checked": len(docs),
                                          "roundtrip_mismatch": 0, "null_text": 0}
    assert decode_problems(prefix, shard, st.plan) == [] and data.check() == []
    assert stats["outputs"] == {"shard-00007.bin": os.path.getsize(f"{prefix}.bin"),
                                "shard-00007.idx": os.path.getsize(f"{prefix}.idx"),
                                "../shard-00007.parquet": os.path.getsize(shard)}


def test_byte_spans_cut_batches_and_keep_large_documents_whole():
    assert byte_spans(np.array([10, 10, 10, 50, 5, 5]), 25) == [(0, 2), (2, 3), (3, 4), (4, 6)]
    assert byte_spans(np.array([], dtype=np.int64), 25) == []


def test_token_dtype_follows_datatrove():
    assert token_dtype(65_536) == "uint16" and token_dtype(65_537) == "int32"


def test_reader_rejects_truncated_or_foreign_files(tokenizer, tmp_path):
    shard = write_docs(tmp_path / "s.parquet", documents(40))
    stage(tokenizer, tmp_path).process_shard(shard, str(tmp_path / "out"), "s")
    prefix = tmp_path / "out" / "s"
    data = (prefix.with_suffix(".bin")).read_bytes()
    prefix.with_suffix(".bin").write_bytes(data[:-2])
    with pytest.raises(IndexedDatasetError, match=r"s\.bin: .* bytes, the index describes"):
        IndexedDataset(str(prefix))
    prefix.with_suffix(".idx").write_bytes(b"not an index at all, really")
    with pytest.raises(IndexedDatasetError, match="not a Megatron index"):
        IndexedDataset(str(prefix))


def test_bad_tokenizers_are_config_errors_before_any_work(tokenizer, tmp_path):
    with pytest.raises(ConfigError, match=r"tokenize\.tokenizer: .*missing\.json' is not a file"):
        stage(str(tmp_path / "missing.json"), tmp_path)
    broken = tmp_path / "broken.json"
    broken.write_text('{"version": "1.0", "model": ')
    with pytest.raises(ConfigError, match=r"tokenize\.tokenizer: .*broken\.json' is not a readable tokenizer"):
        stage(str(broken), tmp_path)
    with pytest.raises(ConfigError, match=r"tokenize\.eos_token: '</s>' is not a token of .*<\|endoftext\|>"):
        stage(tokenizer, tmp_path, eos_token="</s>")
    with pytest.raises(ConfigError, match=r"tokenize\.tokenizer: not set"):
        TokenizeStage(parse_config({"name": "t"}))


def lossy_tokenizer(path: Path) -> str:
    """A word-level vocabulary that lowercases and maps unknown words to [UNK]: text does not come back."""
    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "<|endoftext|>": 1, "ação": 2, "não": 3}, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(["<|endoftext|>"])
    tok.save(str(path))
    return str(path)


def test_lossy_tokenizer_is_refused_or_counted(tmp_path):
    lossy = lossy_tokenizer(tmp_path / "lossy.json")
    with pytest.raises(ConfigError, match=r"does not give text back: .*tokenize\.allow_lossy: true"):
        stage(lossy, tmp_path)
    shard = write_docs(tmp_path / "s.parquet", [("pt", "ação não"), ("pt", "Não ação"),
                                                 ("pt", "Ação desconhecida"), ("pt", "")])
    stats = stage(lossy, tmp_path, allow_lossy=True, verify_every=1).process_shard(shard, str(tmp_path / "o"), "s")
    assert stats["counters"]["lossy"] == {"unknown_token": 1, "roundtrip_checked": 4, "roundtrip_mismatch": 2,
                                          "null_text": 0}
    assert IndexedDataset(str(tmp_path / "o" / "s")).lengths.tolist() == [3, 3, 3, 1]  # every document written


# ---------------------------------------------------------------------------------------------
# through the runner, the manifest, validate and mix


@pytest.fixture(scope="module")
def tokenized_run(tokenizer, tmp_path_factory, ray_session) -> dict:
    """shard (exact token counts with the same tokenizer) -> tokenize (runner) -> manifest."""
    tmp = tmp_path_factory.mktemp("run")
    inputs = [write_docs(tmp / "in" / f"part-{k}.parquet", documents(150, seed=k), prefix=f"p{k}-")
              for k in range(2)]
    cfg = parse_config({"name": "t", "output": str(tmp / "run"), "shard": {"num_shards": 3, "tokenizer": tokenizer},
                        "tokenize": {"enabled": True, "tokenizer": tokenizer}})
    write_shards(cfg, inputs, cfg.stage_dir("shard"))
    corpus = Path(cfg.stage_dir("shard"))
    summary = run_shards(TokenizeStage(cfg), [str(corpus)], cfg.stage_dir("tokenize"), cfg.ray, progress=False)
    manifest = build_manifest(cfg, str(corpus))
    return {"cfg": cfg, "corpus": corpus, "summary": summary, "manifest": manifest, "tmp": tmp}


def test_runner_tokenizes_every_shard_and_resumes(tokenized_run):
    cfg, corpus, summary = tokenized_run["cfg"], tokenized_run["corpus"], tokenized_run["summary"]
    assert summary["shards"] == {"total": 3, "skipped_complete": 0, "processed": 3, "failed": 0}
    assert summary["docs_in"] == summary["docs_out"] == 302
    # shard.tokenizer is the same tokenizer: the token_count column holds the same counts (no specials)
    assert summary["counters"]["token_count_column"] == {"equal": 302, "different": 0}
    again = run_shards(TokenizeStage(cfg), [str(corpus)], cfg.stage_dir("tokenize"), cfg.ray, progress=False)
    assert again["shards"]["skipped_complete"] == 3


def test_manifest_lists_the_token_files_and_validate_checks_them(tokenized_run, tmp_path):
    manifest, corpus = tokenized_run["manifest"], tokenized_run["corpus"]
    ds = manifest["datasets"][0]
    assert ds["tokenizer"]["dtype"] == "uint16" and ds["tokenizer"]["eos_token"] == "<|endoftext|>"
    for shard in ds["shards"]:
        t = shard["tokenized"]
        data = IndexedDataset(str(corpus / t["prefix"]))
        assert t["documents"] == shard["rows"] == len(data)
        assert t["tokens"] == shard["tokens"] and t["special_tokens"] == shard["rows"]  # exact counts + one EOS each
        assert t["bin"]["sha256"] == io.sha256_file(str(corpus / t["bin"]["path"]))
        assert t["bin"]["bytes"] == data.num_tokens * 2
    assert validate_manifest(str(corpus / "manifest.json")) == []


@pytest.fixture
def run_copy(tokenized_run, tmp_path) -> Path:
    shutil.copytree(tokenized_run["corpus"].parent, tmp_path / "run")
    return tmp_path / "run"


def test_validate_catches_a_wrong_document_count(run_copy):
    path = run_copy / "corpus" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["datasets"][0]["shards"][1]["tokenized"]["documents"] += 1
    path.write_text(json.dumps(manifest))
    assert validate_manifest(str(path)) == ["../tokens/shard-00001: DOCUMENTS — the index has "
                                            f"{manifest['datasets'][0]['shards'][1]['rows']}, manifest says "
                                            f"{manifest['datasets'][0]['shards'][1]['rows'] + 1}"]


def test_validate_catches_a_corrupted_token_file(run_copy):
    bin_path = run_copy / "tokens" / "shard-00001.bin"
    data = bytearray(bin_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bin_path.write_bytes(bytes(data))
    manifest = json.loads((run_copy / "corpus" / "manifest.json").read_text())
    problems = validate_manifest(str(run_copy / "corpus" / "manifest.json"))
    assert problems == ["../tokens/shard-00001.bin: CHECKSUM — sha256 differs from the manifest's "
                        f"{manifest['datasets'][0]['shards'][1]['tokenized']['bin']['sha256']}"]


def test_mix_exports_a_megatron_blend_of_real_token_files(tokenized_run, tokenizer, tmp_path):
    corpus = tokenized_run["corpus"]
    replay = write_docs(tmp_path / "replay" / "en-0.parquet", [("en", t) for _, t in documents(80, seed=7)])
    cfg = parse_config({"name": "r", "tokenize": {"tokenizer": tokenizer}})
    TokenizeStage(cfg).process_shard(replay, str(tmp_path / "replay_tokens"), "en-0")
    recipe = parse_recipe({"name": "cpt", "manifest": str(corpus / "manifest.json"), "target_tokens": 200_000,
                           "components": [
                               {"name": "pt", "filter": "lang == pt", "ratio": 0.7},
                               {"name": "replay", "source": "parquet", "path": replay, "ratio": 0.3,
                                "tokens": str(tmp_path / "replay_tokens")}]})
    mixture = resolve_mixture(recipe, output_dir=str(tmp_path / "mix"))
    blend = mixture["exports"]["megatron"]["nemo_data_prefix"]
    pairs = list(zip(blend[::2], blend[1::2], strict=True))
    assert " ".join(map(str, blend)) == mixture["exports"]["megatron"]["data_path"]
    for comp in mixture["components"]:
        mine = [(w, p) for w, p in pairs if p in {d["prefix"] for d in comp["megatron_datasets"]}]
        assert sum(w for w, _ in mine) == pytest.approx(comp["ratio"], abs=1e-8)  # token share
        tokens = {p: IndexedDataset(p).num_tokens for _, p in mine}  # the prefixes exist and are readable
        assert comp["tokens_available"] == sum(tokens.values())
        for w, p in mine:  # each dataset in proportion to its tokens: all repeat the component's epochs
            assert w == pytest.approx(comp["ratio"] * tokens[p] / comp["tokens_available"], abs=1e-8)
        assert comp["epochs"] == pytest.approx(comp["tokens_taken"] / comp["tokens_available"], rel=1e-6)
    pt = next(c for c in mixture["components"] if c["name"] == "pt")
    assert len(pt["megatron_datasets"]) == 3 and all("cpt.tokens/pt/" in d["prefix"] for d in pt["megatron_datasets"])
    # the filtered copy holds exactly the pt rows of each shard, in shard order
    for d in pt["megatron_datasets"]:
        name = os.path.basename(d["prefix"])
        table = pq.read_table(corpus / f"{name}.parquet", columns=["lang"])
        rows = [i for i, lang in enumerate(table.column("lang").to_pylist()) if lang == "pt"]
        source, subset = IndexedDataset(str(corpus.parent / "tokens" / name)), IndexedDataset(d["prefix"])
        assert len(subset) == len(rows)
        assert all(np.array_equal(subset[k], source[i]) for k, i in enumerate(rows))
    replay_comp = next(c for c in mixture["components"] if c["name"] == "replay")
    assert replay_comp["megatron_datasets"][0]["prefix"] == str(tmp_path / "replay_tokens" / "en-0")
