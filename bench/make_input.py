"""Build the benchmark input: >= N HTML response records in real WARC format.

The pages are the real archives in ../shared/data/warc (Common Crawl, Internet Archive and wget
captures) plus the bundled sample, repeated with fresh record ids and URLs until there are enough
HTML responses; non-HTML records ride along in their real proportion. Output is deterministic.

    python bench/make_input.py OUT_DIR [--html-records 5000] [--files 8]
"""

from __future__ import annotations

import argparse
import io
import json
import uuid
from pathlib import Path

from fastwarc.warc import ArchiveIterator, WarcRecordType
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from pipelines.sample import write_sample
from pipelines.warc import html_decision

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "warc"


def collect_records(paths: list[Path]) -> list[tuple[str, str, list[tuple[str, str]], bytes, bool]]:
    """(url, status line, HTTP headers, payload, is_html_2xx) for every parsable response record."""
    out = []
    for path in paths:
        try:
            for rec in ArchiveIterator(str(path), record_types=WarcRecordType.response, parse_http=True,
                                       fsspec_args=False):
                if not rec.is_http:
                    continue
                http = rec.http_headers
                headers = [(k, v) for k, v in http.items()
                           if k.lower() not in ("content-length", "transfer-encoding", "content-encoding")]
                payload = rec.reader.read()
                status = f"{http.status_code or 200} {http.reason_phrase or 'OK'}"
                ok = 200 <= (http.status_code or 0) < 300 and html_decision(rec.http_content_type, payload) is None
                out.append((rec.headers.get("WARC-Target-URI") or "http://unknown/", status, headers, payload, ok))
        except OSError:
            continue  # broken archives are the tests' business, not the benchmark's
    return out


def build(out_dir: Path, html_records: int, n_files: int) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    meta_path = out_dir / "input.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("html_records", 0) >= html_records and meta.get("files") == n_files:
            return meta
    sample_dir = out_dir / "_sample"
    sources = sorted(SHARED.glob("*.warc.gz")) if SHARED.is_dir() else []
    sources += write_sample(sample_dir)
    records = collect_records(sources)
    per_round = sum(1 for r in records if r[4])
    rounds = -(-html_records // max(per_round, 1))
    writers = []
    buffers = []
    for _ in range(n_files):
        buf = io.BytesIO()
        buffers.append(buf)
        writers.append(WARCWriter(buf, gzip=True))
    n_html = n_total = 0
    for r in range(rounds):
        for i, (url, status, headers, payload, ok) in enumerate(records):
            sep = "&" if "?" in url else "?"
            rid = uuid.uuid5(uuid.NAMESPACE_URL, f"bench/{r}/{i}")
            http = StatusAndHeaders(status, headers, protocol="HTTP/1.1")
            writer = writers[n_total % n_files]
            writer.write_record(writer.create_warc_record(
                f"{url}{sep}bench_round={r}", "response", payload=io.BytesIO(payload), http_headers=http,
                warc_headers_dict={"WARC-Record-ID": f"<urn:uuid:{rid}>", "WARC-Date": "2024-02-20T00:00:00Z"},
            ))
            n_total += 1
            n_html += ok
    total_bytes = 0
    for k, buf in enumerate(buffers):
        path = out_dir / f"bench-{k:04d}.warc.gz"
        path.write_bytes(buf.getvalue())
        total_bytes += path.stat().st_size
    meta = {"html_records": n_html, "records": n_total, "files": n_files, "bytes": total_bytes,
            "sources": [str(s) for s in sources], "rounds": rounds}
    meta_path.write_text(json.dumps(meta, indent=2))
    return meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--html-records", type=int, default=5000)
    parser.add_argument("--files", type=int, default=8)
    args = parser.parse_args()
    print(json.dumps(build(args.out_dir, args.html_records, args.files), indent=2))


if __name__ == "__main__":
    main()
