"""The classify stage, and the annotate -> train-classifier -> classify loop from the CLI."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from pipelines.classify import ClassifyStage
from pipelines.cli import main
from pipelines.config import ConfigError, parse_config

SCIENCE = ["a fotossíntese converte luz em energia química nas folhas", "the derivative measures the rate of change",
           "a célula é a unidade básica da vida", "electrons orbit the nucleus of an atom",
           "a equação do segundo grau tem duas raízes", "photosynthesis produces oxygen and glucose"]
OTHER = ["promoção imperdível compre agora com desconto", "click here for the best prices today",
         "o jogo de ontem terminou empatado no estádio", "celebrity gossip and the latest fashion trends",
         "receita de bolo de chocolate com cobertura", "win a free cruise by signing up now"]


def _docs(n: int) -> pa.Table:
    texts = [(SCIENCE if i % 2 == 0 else OTHER)[i % 6] + f" ({i})" for i in range(n)]
    return pa.table({"id": [f"d{i:03d}" for i in range(n)], "text": texts})


def test_demo_models_score_drop_and_tag(tmp_path):
    src = tmp_path / "in.parquet"
    pq.write_table(_docs(40), src)
    cfg = parse_config({"output": str(tmp_path / "run"), "classify": {"models": [
        {"name": "edu_score", "path": "demo:edu"},
        {"name": "stem_score", "path": "demo:stem", "tag_at_least": 0.0, "tag": "stem"},
        {"name": "toxic_score", "path": "demo:toxic", "drop_below": 1.0},  # drops everything, on purpose
    ]}})
    stage = ClassifyStage(cfg)
    stage.check_inputs([str(src)])
    stats = stage.process_shard(str(src), str(tmp_path / "out"), "in")
    rejected = pq.read_table(tmp_path / "out" / "rejected" / "in.parquet")
    assert stats["docs_in"] == 40 == stats["docs_out"] + stats["docs_rejected"] and stats["docs_rejected"] == 40
    for col in ("edu_score", "stem_score", "toxic_score"):
        scores = rejected.column(col).to_numpy()
        assert rejected.schema.field(col).type == pa.float32() and ((scores >= 0) & (scores <= 1)).all()
    assert rejected.column("tags").to_pylist()[0] == ["stem"]
    assert rejected.column("reject_reason")[0].as_py().startswith("classifier_drop:toxic_score=")
    again = ClassifyStage(cfg)
    again.check_inputs([str(src)])
    out, _, _ = again.process_batch(_docs(40))
    assert out.column("edu_score").equals(rejected.column("edu_score"))  # deterministic


def test_model_config_is_validated():
    with pytest.raises(ConfigError, match="at_least needs `threshold`"):
        parse_config({"classify": {"models": [{"name": "edu_score", "path": "m.bin", "mode": "at_least"}]}})
    with pytest.raises(ConfigError, match="unique"):
        parse_config({"classify": {"models": [{"name": "a", "path": "x"}, {"name": "a", "path": "y"}]}})


class _ScoringLLM(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that scores science sentences 4 and everything else 1."""

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        score = 4 if any(s in prompt for s in SCIENCE) else 1
        answer = {"choices": [{"message": {"role": "assistant", "content": f"Reasoning...\nScore: {score}"}}]}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_annotate_train_classify_loop_from_the_cli(tmp_path, monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ScoringLLM)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        docs = tmp_path / "docs.parquet"
        pq.write_table(_docs(300), docs)
        config = tmp_path / "c.yaml"
        config.write_text(yaml.safe_dump({
            "name": "loop", "output": str(tmp_path / "run"),
            "annotate": {"base_url": f"http://127.0.0.1:{server.server_port}/v1", "model": "fake",
                         "api_key_env": "FAKE_LLM_KEY", "concurrency": 4},
            "classify": {"models": [{"name": "edu_score", "path": str(tmp_path / "edu" / "model.bin")}]},
        }))
        monkeypatch.setenv("FAKE_LLM_KEY", "sk-test-not-a-real-key")
        ann = tmp_path / "ann.jsonl"
        assert main(["annotate", "--config", str(config), "--property", "edu", "--sample", "300",
                     "--input", str(docs), "--output", str(ann)]) == 0
        rows = [json.loads(line) for line in ann.read_text().splitlines()]
        assert len(rows) == 300 and {r["score"] for r in rows} == {1, 4}
        assert "sk-test-not-a-real-key" not in "".join(p.read_text() for p in tmp_path.rglob("*.json*"))
        assert main(["train-classifier", "--input", str(ann), "--output", str(tmp_path / "edu"),
                     "--score-column", "score", "--binarize", "3", "--epoch", "30"]) == 0
        report = json.loads((tmp_path / "edu" / "report.json").read_text())
        assert report  # precision/recall/F1, confusion matrix, threshold curve
        stage = ClassifyStage(parse_config(yaml.safe_load(config.read_text())))
        stage.check_inputs([str(docs)])
        out, reasons, _ = stage.process_batch(_docs(20))
        scores = out.column("edu_score").to_numpy()
        science = scores[0::2].mean()
        other = scores[1::2].mean()
        assert science > 0.7 > 0.3 > other
    finally:
        server.shutdown()
