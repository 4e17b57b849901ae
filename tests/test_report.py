"""The run report: a self-contained HTML page from a (possibly partial) run directory."""

from __future__ import annotations

import base64
import re

import pytest

from pipelines import io
from pipelines.cli import main
from pipelines.config import parse_config
from pipelines.manifest import build_manifest
from pipelines.report import write_report
from pipelines.shard import write_shards
from tests.test_shard import make_inputs

pytestmark = pytest.mark.usefixtures("ray_session")  # stages use the session's runtime


def _fake_run(run, with_manifest: bool = True) -> None:
    stages = {"extract": (1200, 1000, {"http_status:404": 120, "not_html:image/png": 80}),
              "langid": (1000, 950, {"lang_low_score": 30, "lang_not_wanted": 20}),
              "filter": (950, 900, {"gopher_quality:word_count": 50})}
    for stage, (docs_in, out, reasons) in stages.items():
        io.write_json_atomic(str(run / stage / "_summary.json"), {
            "stage": stage, "docs_in": docs_in, "docs_out": out, "docs_rejected": docs_in - out,
            "reasons": reasons, "counters": {"lang": {"pt": 600, "en": 300}} if stage == "langid" else {}})
    (run / "failures.jsonl").write_text('{"reason": "gzip_error", "file": "a"}\n')
    cfg = parse_config({"name": "fake", "output": str(run), "shard": {"num_shards": 3}})
    inputs = make_inputs(run / "dedup", files=2, rows=150)
    write_shards(cfg, inputs, cfg.stage_dir("shard"))
    if with_manifest:
        build_manifest(cfg, cfg.stage_dir("manifest"))


def _sections(page: str) -> dict[str, str]:
    return dict(re.findall(r"<section><h2>(.*?)</h2>(.*?)</section>", page, flags=re.S))


def test_report_has_every_plot_embedded(tmp_path):
    run = tmp_path / "run"
    _fake_run(run)
    path = write_report(str(run))
    assert path == str(run / "report" / "index.html")
    page = (run / "report" / "index.html").read_text()
    sections = _sections(page)
    for title in ("Funnel per stage", "Rejections per rule", "Language distribution", "Score histograms",
                  "Duplicate-cluster sizes", "Shard token balance"):
        assert "data:image/png;base64," in sections[title], title
    assert "not available" in sections["Mixtures"]  # no mix yet: a note, not an error
    assert "gzip_error" in sections["Skipped files and records"]
    assert "extract: http_status:404" in page  # the rejection reasons are labelled by stage
    assert "src=\"http" not in page and "<script" not in page  # self-contained
    png = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page).group(1)
    assert base64.b64decode(png)[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_falls_back_to_shards_without_a_manifest(tmp_path):
    run = tmp_path / "run"
    _fake_run(run, with_manifest=False)
    with open(write_report(str(run)), encoding="utf-8") as fh:
        sections = _sections(fh.read())
    assert "data:image/png" in sections["Score histograms"]
    assert "data:image/png" in sections["Duplicate-cluster sizes"]
    assert "langid summary" in sections["Language distribution"]


def test_report_on_an_empty_or_partial_run_dir(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 0
    page = (tmp_path / "empty" / "report" / "index.html").read_text()
    assert page.count("not available") >= 6
    partial = tmp_path / "partial"
    io.write_json_atomic(str(partial / "extract" / "_summary.json"), {"stage": "extract", "docs_in": 5})
    with open(write_report(str(partial)), encoding="utf-8") as fh:
        sections = _sections(fh.read())
    assert "data:image/png" in sections["Funnel per stage"]
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "run directory not found" in capsys.readouterr().err
