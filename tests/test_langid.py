from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from classifiers.langid import (
    LanguageIdentifier,
    bundled_lid_model,
    label_form,
    model_labels,
    suggest_label,
    unknown_language_codes,
)
from pipelines.config import ConfigError, LangidConfig, parse_config
from pipelines.langid import LangidStage

TEXTS = {
    "pt": "O governo anunciou hoje novas medidas para melhorar a educação pública nas escolas do país.",
    "en": "The government announced new measures today to improve public education in the country's schools.",
    "es": "El gobierno anunció hoy nuevas medidas para mejorar la educación pública en las escuelas del país.",
    "de": "Die Regierung hat heute neue Maßnahmen angekündigt, um die öffentliche Bildung zu verbessern.",
    "fr": "Le gouvernement a annoncé aujourd'hui de nouvelles mesures pour améliorer l'éducation publique.",
}


def test_bundled_model_predicts_batches():
    assert bundled_lid_model().endswith("lid.176.ftz")
    ident = LanguageIdentifier()
    pred = ident.predict(list(TEXTS.values()) + ["", None], k=3)
    assert pred.lang == list(TEXTS) + ["und", "und"]
    assert all(0.65 < s <= 1 for s in pred.score[:5]) and pred.score[5] == 0
    assert len(pred.top[0]) == 3 and pred.top[0][0][0] == "pt"
    multi_line = ident.predict(["O governo anunciou hoje\nnovas medidas\n\npara a educação."])
    assert multi_line.lang == ["pt"]


def test_langid_stage_keeps_targets_and_explains_rejections(tmp_path):
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": list(TEXTS), "text": list(TEXTS.values()), "extra": [1, 2, 3, 4, 5]}), src)
    cfg = parse_config({"langid": {"languages": ["pt", "en", "es"], "thresholds": {"es": 0.9999}}})
    stats = LangidStage(cfg).process_shard(str(src), str(tmp_path / "out"), "in")
    kept = pq.read_table(tmp_path / "out" / "in.parquet")
    rejected = pq.read_table(tmp_path / "out" / "rejected" / "in.parquet")
    assert kept.column("id").to_pylist() == ["pt", "en"]
    assert kept.column("extra").to_pylist() == [1, 2]  # extra columns pass through
    assert {"lang", "lang_score", "lang_top"} <= set(kept.column_names)
    reasons = dict(zip(rejected.column("id").to_pylist(), rejected.column("reject_reason").to_pylist(), strict=True))
    assert reasons["de"] == "lang_not_target:de" and reasons["fr"] == "lang_not_target:fr"
    assert reasons["es"].startswith("lang_low_score:es=")
    assert stats["docs_in"] == 5 == stats["docs_out"] + stats["docs_rejected"]
    assert stats["counters"]["lang"] == {"de": 1, "en": 1, "es": 1, "fr": 1, "pt": 1}


def test_iso_639_3_codes_are_rejected_with_the_lid_176_code():
    # `input.languages` of the Common Crawl index says 'por'; lid.176 says 'pt': 'por' would keep nothing
    with pytest.raises(ConfigError) as err:
        parse_config({"langid": {"languages": ["por", "en"], "thresholds": {"deu": 0.8}}}, "pt.yaml")
    msg = str(err.value)
    assert "langid.languages: got ['por', 'en']" in msg and "'por' (did you mean 'pt'?)" in msg
    assert "langid.thresholds: got ['deu']" in msg and "did you mean 'de'?" in msg
    assert "ISO 639-1" in msg and "'en' is not" not in msg and "'en' (did" not in msg  # 'en' is a label
    assert "ISO 639-1" in LangidConfig.model_fields["languages"].description
    assert "'por'" in LangidConfig.model_fields["languages"].description
    cfg = parse_config({"langid": {"languages": ["pt", "ceb", "und"], "thresholds": {"pt": 0.5}}})
    assert cfg.langid.languages == ["pt", "ceb", "und"]


def test_suggestions_follow_the_models_spelling():
    labels = model_labels()
    assert len(labels) == 176 and "pt" in labels and not any(lab.startswith("__label__") for lab in labels)
    assert [suggest_label(c, labels) for c in ("por", "pt-BR", "por_Latn", "PT", "fin", "xyz")] == \
        ["pt", "pt", "pt", "pt", "fi", None]
    glot = ("por_Latn", "eng_Latn", "deu_Latn", "cmn_Hani")
    assert [suggest_label(c, glot) for c in ("pt", "por", "de", "zh")] == ["por_Latn", "por_Latn", "deu_Latn",
                                                                          "cmn_Hani"]
    assert "ISO 639-3 code + script" in label_form(glot) and "ISO 639-1" in label_form(labels)
    assert unknown_language_codes(["pt", "und"], labels, "lid.176") is None


def _glotlid_style_model(tmp_path: Path) -> str:
    """A real (tiny) fastText LID model whose labels are spelt like GlotLID's: por_Latn, eng_Latn."""
    import fasttext

    from classifiers.train import zeroed_allocations

    train = tmp_path / "lid.txt"
    lines = [f"__label__por_Latn {TEXTS['pt']}", f"__label__eng_Latn {TEXTS['en']}"] * 20
    train.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with zeroed_allocations():  # fastText's matrices start uninitialised without it (see classifiers.train)
        model = fasttext.train_supervised(str(train), epoch=5, dim=8, bucket=1000, thread=1, seed=0, verbose=0)
    path = tmp_path / "glot.bin"
    model.save_model(str(path))
    return str(path)


def test_a_custom_models_labels_are_checked_when_the_stage_loads_it(tmp_path):
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": ["pt"], "text": [TEXTS["pt"]]}), src)
    model = _glotlid_style_model(tmp_path)
    cfg = parse_config({"langid": {"model": model, "languages": ["pt"]}})  # its labels are unknown until loaded
    with pytest.raises(ConfigError) as err:
        LangidStage(cfg).check_inputs([str(src)])
    msg = str(err.value)
    assert "langid.languages: got ['pt']" in msg and "did you mean 'por_Latn'?" in msg and model in msg
    good = parse_config({"langid": {"model": model, "languages": ["por_Latn"], "thresholds": {"por_Latn": 0.1}}})
    LangidStage(good).check_inputs([str(src)])
    assert set(LanguageIdentifier(model).labels) == {"por_Latn", "eng_Latn"}
