import pyarrow as pa
import pyarrow.parquet as pq

from classifiers.langid import LanguageIdentifier, bundled_lid_model
from pipelines.config import parse_config
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
