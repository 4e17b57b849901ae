"""`cptcorpus run` with its run directory on local disk vs on an S3-compatible server, same input.

    .venv/bin/python bench/bench_storage.py [--html-records 2000] [--files 4] [--repeats 2]

The S3 server is moto on 127.0.0.1 (the one the tests use), started in this process so every
request the run makes is counted (by HTTP method, from the server's access log). Both runs read the
same distinct-page WARCs from local disk (``bench/make_input.py --mode distinct``) and use resiliparse,
so storage is a larger share of the time than with trafilatura (the ratio is the conservative one).
Runs alternate local/S3, ``--repeats`` times; wall seconds include Ray's start, as a user sees them.

Reported: the wall-time ratio S3/local (median), and per HTML page of input and per document
written to the corpus: requests to the store (all, and PUTs) and bytes stored under the run
directory. Loopback S3 has no network latency or bandwidth limit: a real store adds both, and
the request counts are what to multiply by its latency and price.

Writes bench/storage_results.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
WORK = REPO / "bench" / "work" / "storage"
RESULTS = REPO / "bench" / "storage_results.json"
CPT = Path(sys.executable).parent / "cptcorpus"


class RequestCounter(logging.Handler):
    """Counts the S3 server's requests by method (werkzeug logs one line per request)."""

    _line = re.compile(r'"(GET|PUT|POST|HEAD|DELETE) ')

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        match = self._line.search(record.getMessage())
        if match:
            self.counts[match.group(1)] += 1


def _config(input_dir: Path, output: str, endpoint: str | None) -> Path:
    data = {"name": "storage", "output": output, "input": [str(input_dir / "*.warc.gz")],
            "extract": {"extractor": "resiliparse"}, "shard": {"num_shards": 4},
            "langid": {"languages": ["en", "pt", "es", "de", "fr", "it", "nl", "ru", "ja", "zh"]}}
    if endpoint:
        data["storage_options"] = {"s3": {"endpoint_url": endpoint}}
    path = WORK / ("s3.yaml" if endpoint else "local.yaml")
    path.write_text(yaml.safe_dump(data))
    return path


def _run(config: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run([str(CPT), "run", "--config", str(config), "--no-progress"], cwd=REPO, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"cptcorpus run failed ({config}):\n{proc.stderr[-3000:]}")
    return time.perf_counter() - started


def _shard_hashes(manifest: dict) -> list[tuple[str, str]]:
    return [(s["path"], s["sha256"]) for ds in manifest["datasets"] for s in ds["shards"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html-records", type=int, default=2000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import fsspec
    from moto.server import ThreadedMotoServer

    from bench.make_input import build

    WORK.mkdir(parents=True, exist_ok=True)
    input_dir = WORK / "input"
    meta = build(input_dir, args.html_records, args.files, "distinct")
    counter = RequestCounter()
    werkzeug = logging.getLogger("werkzeug")
    werkzeug.setLevel(logging.INFO)
    werkzeug.propagate = False
    werkzeug.addHandler(counter)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": os.devnull,
               "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_EC2_METADATA_DISABLED": "true",
               "RAY_USAGE_STATS_ENABLED": "0"}
        env.pop("RAY_ADDRESS", None)
        os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")})
        fs = fsspec.filesystem("s3", endpoint_url=endpoint, skip_instance_cache=True)
        seconds: dict[str, list[float]] = {"local": [], "s3": []}
        requests: list[dict[str, int]] = []
        stored: list[int] = []
        same: list[bool] = []  # the local and the S3 run wrote byte-identical corpus shards
        corpus_docs = None
        for rep in range(args.repeats):
            local_out = WORK / f"local-{rep}"
            subprocess.run(["rm", "-rf", str(local_out)], check=True)
            seconds["local"].append(_run(_config(input_dir, str(local_out), None), env))
            bucket = f"bench-{rep}"
            fs.mkdir(bucket)
            counter.counts.clear()
            seconds["s3"].append(_run(_config(input_dir, f"s3://{bucket}/storage", endpoint), env))
            requests.append(dict(counter.counts))
            stored.append(int(fs.du(f"{bucket}/storage")))
            manifest = json.loads(fs.cat(f"{bucket}/storage/corpus/manifest.json"))
            corpus_docs = sum(ds["totals"]["rows"] for ds in manifest["datasets"])
            local_manifest = json.loads((local_out / "corpus" / "manifest.json").read_text())
            same.append(_shard_hashes(local_manifest) == _shard_hashes(manifest))
            print(f"repeat {rep}: local {seconds['local'][-1]:.1f} s, s3 {seconds['s3'][-1]:.1f} s, "
                  f"{sum(requests[-1].values())} requests", file=sys.stderr, flush=True)
    finally:
        server.stop()
    pages = meta["html_records"]
    last = requests[-1]
    total = sum(last.values())
    result = {
        "command": "python bench/bench_storage.py " + " ".join(sys.argv[1:]),
        "input": {"html_pages": pages, "files": args.files, "mode": "distinct", "extractor": "resiliparse"},
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "seconds": seconds,
        "local_median_s": statistics.median(seconds["local"]),
        "s3_median_s": statistics.median(seconds["s3"]),
        "s3_over_local": round(statistics.median(seconds["s3"]) / statistics.median(seconds["local"]), 3),
        "same_corpus_shards": same,
        "requests_by_method": last,
        "corpus_docs": corpus_docs,
        "requests_per_page": round(total / pages, 3),
        "puts_per_page": round((last.get("PUT", 0) + last.get("POST", 0)) / pages, 3),
        "requests_per_corpus_doc": round(total / corpus_docs, 3),
        "bytes_stored": stored[-1],
        "bytes_stored_per_page": round(stored[-1] / pages, 1),
        "bytes_stored_per_corpus_doc": round(stored[-1] / corpus_docs, 1),
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
