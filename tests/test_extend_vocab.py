"""`cptcorpus extend-vocab`: base ids kept, new tokens produced, fertility down, bad input refused whole."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from pipelines import extend_vocab as ev
from pipelines.cli import main
from tests._tokenizers import TokenizerCorpus, build

N_PT = 300


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> TokenizerCorpus:
    return build(str(tmp_path_factory.mktemp("extend")))


@pytest.fixture(scope="module")
def extended(corpus) -> str:
    out = os.path.join(os.path.dirname(corpus.run_dir), "pt-ext")
    rc = main(["extend-vocab", "--base", corpus.base, "--manifest", corpus.manifest, "--add", str(N_PT),
               "--output", out, "--lang", "pt"])
    assert rc == 0
    return out


def _load(path: str) -> Tokenizer:
    return Tokenizer.from_file(path)


def test_output_files_and_report(extended):
    assert sorted(os.listdir(extended)) == ["extend_report.json", "new_tokens.jsonl", "tokenizer.json"]
    rep = json.loads(Path(os.path.join(extended, "extend_report.json")).read_text(encoding="utf-8"))
    assert rep["new_tokens"] == N_PT and rep["lang"] == "pt"
    assert rep["sample"]["held_out_docs"] >= 1 and rep["sample"]["train_docs"] > rep["sample"]["held_out_docs"]


def test_round_trip_on_the_corpus_for_base_and_extended(corpus, extended):
    for tok in (_load(corpus.base), _load(os.path.join(extended, "tokenizer.json"))):
        for text in corpus.texts():
            assert tok.decode(tok.encode(text, add_special_tokens=False).ids) == text


def test_base_tokens_keep_their_ids_and_new_ids_follow(corpus, extended):
    base, ext = _load(corpus.base), _load(os.path.join(extended, "tokenizer.json"))
    base_vocab = base.get_vocab(with_added_tokens=True)
    assert all(ext.token_to_id(t) == i for t, i in base_vocab.items())
    lines = [json.loads(x) for x in Path(extended, "new_tokens.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [x["id"] for x in lines] == list(range(len(base_vocab), len(base_vocab) + N_PT))
    assert ext.get_vocab_size() == len(base_vocab) + N_PT
    for x in lines:
        assert x["token"] not in base_vocab and ext.token_to_id(x["token"]) == x["id"]
        assert len(x["base_ids"]) >= 2 and base.decode(x["base_ids"]) == x["text"]
        assert "".join(base.id_to_token(i) for i in x["base_ids"]) == x["token"]


def test_fertility_drops_on_held_out_pt_and_english_stays_within_1pct(corpus, extended):
    rep = json.loads(Path(os.path.join(extended, "extend_report.json")).read_text(encoding="utf-8"))
    held = rep["held_out"]
    assert held["after"]["tokens_per_word"] < 0.8 * held["before"]["tokens_per_word"]
    base, ext = _load(corpus.base), _load(os.path.join(extended, "tokenizer.json"))
    english = corpus.texts("en")
    before = sum(len(e.ids) for e in base.encode_batch(english, add_special_tokens=False))
    after = sum(len(e.ids) for e in ext.encode_batch(english, add_special_tokens=False))
    assert abs(after / before - 1) <= 0.01


def test_learned_merges_are_produced_exactly_where_they_were_counted(corpus, tmp_path):
    """Tokens the extended model gives the training words = base tokens - the savings the learner counted."""
    base = _load(corpus.base)
    freqs = Counter(w for t in corpus.texts("pt") for w in ev.pretokens(base, t))
    words = {w: [t.value for t in base.model.tokenize(w)] for w in freqs}
    data = ev.load_bpe_json(corpus.base)
    merges = ev.learn_merges(words, freqs, 200, set(data["model"]["vocab"]), set())
    extended, ids = ev.extend_json(data, merges)
    path = tmp_path / "t.json"
    path.write_text(json.dumps(extended), encoding="utf-8")
    ext = _load(str(path))
    before = sum(freqs[w] * len(words[w]) for w in freqs)
    after = sum(freqs[w] * len(ext.model.tokenize(w)) for w in freqs)
    assert len(ids) == 200 and after == before - sum(m.saved for m in merges)


def test_thai_without_spaces(corpus, tmp_path):
    out = str(tmp_path / "th-ext")
    assert main(["extend-vocab", "--base", corpus.base, "--manifest", corpus.manifest, "--add", "60",
                 "--output", out, "--lang", "th", "--holdout", "0.2"]) == 0
    rep = json.loads(Path(os.path.join(out, "extend_report.json")).read_text(encoding="utf-8"))
    held = rep["held_out"]
    assert held["after"]["tokens_per_word"] < 0.7 * held["before"]["tokens_per_word"]
    ext = _load(os.path.join(out, "tokenizer.json"))
    for text in corpus.texts("th"):
        assert ext.decode(ext.encode(text).ids) == text


def test_sentencepiece_style_base_with_byte_fallback(corpus, tmp_path):
    """Metaspace + byte fallback (Llama-2 style): fallback bytes are never merged, ids and text survive."""
    from bench.bench_extend_vocab import english_text

    tok = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    fallback = [f"<0x{i:02X}>" for i in range(256)]
    tok.train_from_iterator(english_text(), trainers.BpeTrainer(vocab_size=1500, show_progress=False,
                                                                special_tokens=["<unk>", *fallback]))
    base_path, out = str(tmp_path / "sp.json"), str(tmp_path / "sp-ext")
    tok.save(base_path)
    assert main(["extend-vocab", "--base", base_path, "--manifest", corpus.manifest, "--add", "100",
                 "--output", out]) == 0
    ext = _load(os.path.join(out, "tokenizer.json"))
    assert all(ext.token_to_id(t) == i for t, i in tok.get_vocab().items())
    new = [json.loads(x)["token"] for x in Path(out, "new_tokens.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(new) == 100 and not any("<0x" in t or "<unk>" in t for t in new)
    for text in corpus.texts("pt"):
        assert ext.decode(ext.encode(text).ids) == tok.decode(tok.encode(text).ids)
        assert len(ext.encode(text).ids) <= len(tok.encode(text).ids)


def test_loads_with_transformers_fast_tokenizer(corpus, extended):
    transformers = pytest.importorskip("transformers")
    fast = transformers.PreTrainedTokenizerFast(tokenizer_file=os.path.join(extended, "tokenizer.json"))
    ext = _load(os.path.join(extended, "tokenizer.json"))
    text = corpus.texts("pt")[0]
    assert fast(text, add_special_tokens=False)["input_ids"] == ext.encode(text, add_special_tokens=False).ids
    assert fast.decode(fast(text)["input_ids"]) == text


# ---------------------------------------------------------------------------------------------
# bad input: exit 2, a message naming the problem, nothing at --output


def _other_model(kind: str, path: str) -> str:
    texts = ["a small corpus for a tokenizer of another kind"] * 20
    if kind == "WordPiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        trainer = trainers.WordPieceTrainer(vocab_size=100, special_tokens=["[UNK]"], show_progress=False)
    else:
        tok = Tokenizer(models.Unigram())
        trainer = trainers.UnigramTrainer(vocab_size=60, show_progress=False)
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(texts, trainer)
    tok.save(path)
    return path


def _refused(args: list[str], out: str, capsys) -> str:
    assert main(["extend-vocab", *args, "--output", out]) == 2
    assert not os.path.exists(out)
    assert not [n for n in os.listdir(os.path.dirname(out)) if n.startswith(".extend-vocab-")]
    return capsys.readouterr().err


@pytest.mark.parametrize("kind", ["WordPiece", "Unigram"])
def test_unsupported_model_type(corpus, tmp_path, capsys, kind):
    base = _other_model(kind, str(tmp_path / f"{kind}.json"))
    err = _refused(["--base", base, "--manifest", corpus.manifest, "--add", "10"], str(tmp_path / "out"), capsys)
    assert f"model type {kind}" in err and "BPE" in err


def test_more_tokens_than_the_sample_supports(corpus, tmp_path, capsys):
    err = _refused(["--base", corpus.base, "--manifest", corpus.manifest, "--add", "100000"],
                   str(tmp_path / "out"), capsys)
    assert "--add 100000" in err and "supports only" in err


def test_too_little_target_language_text(corpus, tmp_path, capsys):
    err = _refused(["--base", corpus.base, "--manifest", corpus.manifest, "--add", "10", "--lang", "ko"],
                   str(tmp_path / "out"), capsys)
    assert "lang=ko" in err
    err = _refused(["--base", corpus.base, "--manifest", corpus.manifest, "--add", "1000", "--lang", "fr"],
                   str(tmp_path / "out"), capsys)  # 4 French pages: too little text for 1000
    assert "supports only" in err


def test_a_failure_after_writing_began_leaves_nothing(corpus, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("injected")

    monkeypatch.setattr(ev, "_write_new_tokens", broken)
    out = str(tmp_path / "out")
    with pytest.raises(RuntimeError, match="injected"):
        ev.extend_vocab(corpus.base, corpus.manifest, 20, out, lang="pt")
    assert os.listdir(tmp_path) == []
