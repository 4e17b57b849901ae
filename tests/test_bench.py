"""`make bench`'s arithmetic (medians, per-core and per-CPU-second figures, ratios and stage costs)
and its input (distinct pages by default, repeated pages on request).

The runs themselves take minutes and are not tests; what turns their timings into the published
table is, so it is checked here on hand-made timings with known answers.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from bench.bench import STAGES, markdown, stage_core_seconds, summarise
from bench.make_input import MODES, build, vary_page
from pipelines.config import PER_SHARD_STAGES

META = {"html_records": 1000, "records": 1500, "bytes": 10_000_000, "files": 4}


def _ours(seconds: float, cpu: float, extract_task_s: float, dedup_wall: float) -> dict:
    stages = {s: {"name": s, "seconds": seconds, "task_seconds": 1.0, "docs_in": 1000, "bytes_in": 0}
              for s in STAGES}
    stages["extract"]["task_seconds"] = extract_task_s
    stages["dedup"].update(seconds=dedup_wall, task_seconds=0.01)  # driver-coordinated: wall x workers counts
    stages["shard"].update(seconds=0.5, task_seconds=None)
    return {"seconds": seconds, "memory": {"max_worker_mb": 300.0, "max_process_mb": 400.0, "cpu_seconds": cpu},
            "stages": stages}


def _datatrove(seconds: float, cpu: float) -> dict:
    return {"seconds": seconds, "memory": {"max_worker_mb": 0, "max_process_mb": 500.0, "cpu_seconds": cpu},
            "phase_seconds": {"main": seconds - 1, "minhash_signatures": 1.0}}


def test_ratios_scaling_and_stage_costs():
    raw = {
        "ours-trafilatura-1w": [_ours(100.0, 110.0, 80.0, 2.0), _ours(120.0, 130.0, 90.0, 2.0),
                                _ours(110.0, 120.0, 85.0, 2.0)],
        "datatrove-1w": [_datatrove(220.0, 200.0)],
        "ours-trafilatura-2w": [_ours(55.0, 100.0, 82.0, 1.0)],
        "datatrove-2w": [_datatrove(110.0, 220.0)],
    }
    out = summarise(raw, META)
    rows, d = out["rows"], out["derived"]
    t1 = rows["ours-trafilatura-1w"]
    assert t1["median_seconds"] == 110.0 and t1["docs_per_s"] == pytest.approx(1000 / 110, abs=0.05)
    assert t1["cpu_seconds"] == 120.0 and t1["docs_per_cpu_s"] == pytest.approx(1000 / 120, abs=0.05)
    assert rows["ours-trafilatura-2w"]["docs_per_s_per_core"] == pytest.approx(1000 / 55 / 2, abs=0.05)
    assert d["ratio_ours_over_datatrove_1w"] == 2.0
    assert d["ratio_ours_over_datatrove_2w"] == 2.0
    assert d["ratio_ours_over_datatrove_per_cpu_second_1w"] == pytest.approx(200 / 120, abs=0.01)
    assert d["scaling_1_to_2_ours-trafilatura"] == pytest.approx(110 / 55, abs=0.01)
    assert d["scaling_1_to_2_datatrove"] == 2.0
    # per-shard stages cost their task seconds; dedup and shard their wall seconds x workers
    assert t1["stages"]["extract"]["core_seconds"] == 85.0
    assert rows["ours-trafilatura-2w"]["stages"]["dedup"]["core_seconds"] == 2.0
    per_shard_others = [s for s in STAGES if s in PER_SHARD_STAGES and s != "extract"]  # 1.0 task second each
    others = 1.0 * len(per_shard_others) + 2.0 + 0.5  # + dedup and shard (wall x workers)
    assert d["non_extract_over_extract_trafilatura_1w"] == pytest.approx(others / 85.0, abs=0.001)
    table = markdown(out, META, {"cpus": 2, "python": "3.11", "repeats": 3, "datatrove_repeats": 1})
    assert "| ours-trafilatura-1w | 1 | 110.0 (100.0, 120.0, 110.0) |" in table
    assert "`ratio_ours_over_datatrove_2w`: 2.0" in table


def test_stage_cost_without_task_seconds_falls_back_to_wall_times_workers():
    assert stage_core_seconds({"name": "filter", "seconds": 3.0, "task_seconds": 5.0}, 2) == 5.0
    assert stage_core_seconds({"name": "dedup", "seconds": 3.0, "task_seconds": 0.1}, 2) == 6.0
    assert stage_core_seconds({"seconds": 4.0}, 2) == 8.0  # results saved before stages carried their name


def _extracted_texts(input_dir: Path, out: Path) -> list[str]:
    from pipelines.config import parse_config
    from pipelines.extract import ExtractStage

    stage = ExtractStage(parse_config({}))
    texts = []
    for i, path in enumerate(sorted(input_dir.glob("bench-*.warc.gz"))):
        stage.process_shard(str(path), str(out), f"b{i}")
        texts += pq.read_table(out / f"b{i}.parquet", columns=["text"]).column("text").to_pylist()
    return texts


@pytest.mark.parametrize("mode", MODES)
def test_distinct_mode_makes_every_page_text_unique_and_repeated_mode_does_not(tmp_path, mode):
    # the bundled sample alone, three rounds of it: in repeated mode every page comes back twice more
    meta = build(tmp_path / "in", html_records=500, n_files=2, mode=mode, shared=None)
    assert meta["mode"] == mode and meta["rounds"] == 3
    texts = _extracted_texts(tmp_path / "in", tmp_path / "out")
    assert len(texts) > 0.8 * meta["html_records"]  # varied pages still extract (the words are the page's own)
    if mode == "distinct":
        assert len(set(texts)) == len(texts)
    else:
        assert len(set(texts)) <= len(texts) / 3


def test_input_built_in_another_mode_is_rebuilt(tmp_path):
    first = build(tmp_path / "in", html_records=10, n_files=1, mode="repeated", shared=None)
    again = build(tmp_path / "in", html_records=10, n_files=1, mode="repeated", shared=None)
    other = build(tmp_path / "in", html_records=10, n_files=1, mode="distinct", shared=None)
    assert again == first and other["mode"] == "distinct"
    with pytest.raises(ValueError, match="mode: expected one of distinct, repeated, got 'shuffled'"):
        build(tmp_path / "x", html_records=10, n_files=1, mode="shuffled")


def test_vary_page_changes_words_only_outside_markup():
    html = (b"<html><head><style>p { color: red }</style><script>var a = 1;</script></head><body>"
            b"<p class='x'>" + b" ".join(b"w%d" % i for i in range(200)) + b"</p><!-- a comment --></body></html>")
    varied = vary_page(html, [0, 0], set())
    assert varied != html and len(varied.split()) == len(html.split())
    for markup in (b"<style>p { color: red }</style>", b"<script>var a = 1;</script>", b"<p class='x'>",
                   b"<!-- a comment -->"):
        assert markup in varied
    assert vary_page(b"<p></p>", [0, 0], set()) == b"<p></p>"  # nothing to vary
