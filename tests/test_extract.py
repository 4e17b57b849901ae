import time

import pyarrow.parquet as pq
import pytest

from pipelines.config import parse_config
from pipelines.extract import ExtractStage, RecordTimeout, doc_id, domain_of, snapshot_of, time_limit
from pipelines.runner import run_shards
from pipelines.schema import EXTRACT_COLUMNS
from tests.conftest import SHARED_WARC, html_page

PT = ["A fotossíntese é o processo pelo qual as plantas transformam a luz do sol em energia química.",
      "Durante esse processo, a água e o gás carbônico são convertidos em glicose e oxigênio.",
      "Por isso, as florestas são tão importantes para o equilíbrio do clima no planeta."]


def _stage(tmp_path, **extract):
    return ExtractStage(parse_config({"name": "t", "output": str(tmp_path / "run"), "extract": extract}))


def _mixed_warc(warc_builder):
    return (warc_builder("CC-MAIN-2024-10-part.warc.gz")
            .request("https://www.exemplo.com.br/ciencia")
            .response("https://www.exemplo.com.br/ciencia", html_page("Ciência", PT, "pt").encode())
            .response("https://x.org/img.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "image/png")
            .response("https://x.org/fake.html", b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "text/html")
            .response("https://x.org/missing", html_page("404", ["Not here."]).encode(), status="404 Not Found")
            .response("https://x.org/notype", html_page("No type", PT, "pt").encode(), content_type=None)
            .response("https://x.org/empty", b"<html><head><script>var menu = 1;</script></head><body><img src=x.png></body></html>")
            .write())


@pytest.mark.parametrize("extractor", ["trafilatura", "resiliparse"])
def test_extract_keeps_html_and_explains_the_rest(tmp_path, warc_builder, extractor):
    path = _mixed_warc(warc_builder)
    out = tmp_path / "extract"
    stats = _stage(tmp_path, extractor=extractor).process_shard(str(path), str(out), "part")
    kept = pq.read_table(out / "part.parquet")
    rejected = pq.read_table(out / "rejected" / "part.parquet")
    assert stats["docs_in"] == 6 == kept.num_rows + rejected.num_rows
    assert tuple(kept.column_names) == EXTRACT_COLUMNS
    rows = kept.to_pylist()
    assert [r["url"] for r in rows] == ["https://www.exemplo.com.br/ciencia", "https://x.org/notype"]
    assert "fotossíntese" in rows[0]["text"] and "menu" not in rows[0]["text"]
    assert rows[0]["domain"] == "www.exemplo.com.br" and rows[0]["snapshot"] == "CC-MAIN-2024-10"
    assert rows[0]["source_file"] == str(path) and rows[0]["warc_date"] == "2024-02-20T10:00:00Z"
    reasons = dict(zip(rejected.column("url").to_pylist(), rejected.column("reject_reason").to_pylist(), strict=True))
    assert reasons["https://x.org/img.png"] == "binary_payload"
    assert reasons["https://x.org/fake.html"] == "binary_payload"
    assert reasons["https://x.org/missing"] == "http_status:404"
    assert reasons["https://x.org/empty"] == "empty_extraction"


def test_ids_are_stable_across_runs(tmp_path, warc_builder):
    path = _mixed_warc(warc_builder)
    a = _stage(tmp_path).process_shard(str(path), str(tmp_path / "a"), "s")
    b = _stage(tmp_path).process_shard(str(path), str(tmp_path / "b"), "s")
    assert a["docs_out"] == b["docs_out"]
    assert pq.read_table(tmp_path / "a" / "s.parquet").equals(pq.read_table(tmp_path / "b" / "s.parquet"))
    assert doc_id("<urn:uuid:1>", "f", 0, None) == doc_id("<urn:uuid:1>", "g", 5, "u")
    assert doc_id(None, "f", 0, "u") != doc_id(None, "f", 1, "u")


def test_size_cap_and_broken_file_are_failures(tmp_path, warc_builder):
    big = html_page("Big", PT * 200).encode()
    path = warc_builder().response("https://a/big", big).response("https://a/ok", html_page("ok", PT).encode()).write()
    stats = _stage(tmp_path, max_record_bytes=len(big) - 1).process_shard(str(path), str(tmp_path / "o"), "s")
    assert stats["docs_out"] == 1 and stats["reasons"] == {"record_too_large": 1}
    assert stats["failure_counts"] == {"record_too_large": 1}
    garbage = tmp_path / "garbage.warc.gz"
    garbage.write_bytes(b"definitely not a WARC file" * 40)
    stats = _stage(tmp_path).process_shard(str(garbage), str(tmp_path / "o"), "g")
    assert stats["docs_in"] == 0 and stats["failure_counts"] == {"not_a_warc": 1}
    assert stats["failures"][0]["file"] == str(garbage)
    assert pq.read_table(tmp_path / "o" / "g.parquet").num_rows == 0


def test_extractor_that_hangs_is_time_limited(tmp_path, warc_builder):
    path = warc_builder().response("https://a/slow", html_page("slow", PT).encode()).write()
    stage = _stage(tmp_path, record_timeout_s=0.2)

    def hang(html):
        time.sleep(5)

    stage._extract = hang
    started = time.perf_counter()
    stats = stage.process_shard(str(path), str(tmp_path / "o"), "s")
    assert time.perf_counter() - started < 3
    assert stats["reasons"] == {"extract_timeout": 1} and stats["failure_counts"] == {"extract_timeout": 1}


def test_deeply_nested_html_does_not_crash(tmp_path, warc_builder):
    nested = ("<html><body>" + "<div>" * 10_000 + "<p>deep text here.</p>" + "</div>" * 10_000 + "</body></html>")
    path = warc_builder().response("https://a/deep", nested.encode()).response("https://a/ok", html_page("ok", PT).encode()).write()
    stats = _stage(tmp_path).process_shard(str(path), str(tmp_path / "o"), "s")
    assert stats["docs_in"] == 2 and stats["docs_out"] >= 1


def test_time_limit_raises():
    with pytest.raises(RecordTimeout), time_limit(0.05):
        time.sleep(1)


def test_helpers():
    assert domain_of("https://WWW.Example.COM:8080/a") == "www.example.com"
    assert domain_of("not a url") is None
    assert snapshot_of("s3://commoncrawl/crawl-data/CC-MAIN-2024-10/segments/x.warc.gz", None) == "CC-MAIN-2024-10"
    assert snapshot_of("/data/x.warc.gz", "mine") == "mine"


def _snapshot(tmp_path, path, configured: str | None = None) -> str | None:
    _stage(tmp_path, snapshot=configured).process_shard(str(path), str(tmp_path / "snap"), path.name)
    return pq.read_table(tmp_path / "snap" / f"{path.name}.parquet").column("snapshot")[0].as_py()


def test_snapshot_from_warcinfo_when_the_file_name_lacks_it(tmp_path, warc_builder):
    page = html_page("ok", PT).encode()
    renamed = warc_builder("renamed-copy.warc.gz").warcinfo({"isPartOf": "CC-MAIN-2024-22"}) \
        .response("https://a/", page).write()
    assert _snapshot(tmp_path, renamed) == "CC-MAIN-2024-22"
    assert _snapshot(tmp_path, renamed, "CC-MAIN-2023-50") == "CC-MAIN-2023-50"  # extract.snapshot wins
    named = warc_builder("CC-MAIN-2024-10-00001.warc.gz").warcinfo({"isPartOf": "CC-MAIN-2024-22"}) \
        .response("https://a/", page).write()
    assert _snapshot(tmp_path, named, "CC-MAIN-2023-50") == "CC-MAIN-2024-10"  # the file's own name first
    other = warc_builder("pywb.warc.gz").warcinfo({"isPartOf": "my-collection"}).response("https://a/", page).write()
    assert _snapshot(tmp_path, other) is None  # not a Common Crawl crawl name


@pytest.mark.skipif(not (SHARED_WARC / "cc-2024-one-record.warc.gz").is_file(), reason="shared data absent")
def test_snapshot_of_a_real_common_crawl_file_without_the_crawl_in_its_name(tmp_path):
    assert _snapshot(tmp_path, SHARED_WARC / "cc-2024-one-record.warc.gz") == "CC-MAIN-2024-22"


def test_record_time_limit_holds_inside_ray_tasks(tmp_path, warc_builder, ray_session):
    """SIGALRM works only on a main thread: this proves Ray runs stage tasks on one."""
    big = html_page("slow", PT * 400).encode()  # ~100 KB of paragraphs: far over 1 ms for trafilatura
    path = warc_builder().response("https://a/1", big).response("https://a/2", big).write()
    cfg = parse_config({"name": "t", "output": str(tmp_path / "run"), "extract": {"record_timeout_s": 0.001},
                        "ray": {"max_retries": 0}})
    summary = run_shards(ExtractStage(cfg), [str(path)], str(tmp_path / "ray-out"), cfg.ray, progress=False)
    assert summary["docs_in"] == 2 and summary["docs_out"] == 0
    assert summary["reasons"] == {"extract_timeout": 2} and summary["failures_by_reason"] == {"extract_timeout": 2}
