"""BENCHMARKS.md's "scale on paper": a full Common Crawl snapshot, projected from the recorded figures.

    .venv/bin/python bench/projection.py

Measured inputs come from the recorded results (bench/results.json: docs/s per core end to end;
bench/dedup_results.json: band rows per document; bench/driver_scale_results.json: the shard plan's
driver memory at a snapshot's size). The rest are assumptions, stated here and in the output, not measurements:
the snapshot's size, the price of a core-hour, the cluster size and one language's share. Writes
bench/projection.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "projection.json"

ASSUMPTIONS = {
    "snapshot_pages": 3e9,  # order of magnitude of one crawl; check the crawl's published statistics
    "snapshot_warc_files": 90_000,
    "snapshot_compressed_bytes": 100e12,
    "usd_per_core_hour": 0.04,  # on-demand vCPU-hour, order of magnitude
    "cores": 1000,
    "language_share": 0.02,  # e.g. Portuguese, of a snapshot's pages (index-driven mode reads only these)
    "kept_documents_global": 1e9,  # a dedup run over a whole multilingual corpus
    "kept_documents_one_language": 60e6,
}


def load(name: str) -> dict:
    return json.loads((REPO / "bench" / name).read_text())


def project() -> dict:
    a = ASSUMPTIONS
    rows = load("results.json")["rows"]
    per_core = {"ours, trafilatura": [rows[f"ours-trafilatura-{w}w"]["docs_per_s_per_core"] for w in (1, 2)],
                "ours, resiliparse": [rows[f"ours-resiliparse-{w}w"]["docs_per_s_per_core"] for w in (1, 2)],
                "datatrove, trafilatura": [rows[f"datatrove-{w}w"]["docs_per_s_per_core"] for w in (1, 2)]}
    table = {}
    for mode, speeds in per_core.items():
        hours = sorted(a["snapshot_pages"] / s / 3600 for s in speeds)
        table[mode] = {"docs_per_s_per_core": sorted(speeds), "core_hours": [round(h, -2) for h in hours],
                       "usd": [round(h * a["usd_per_core_hour"], -1) for h in hours],
                       "wall_hours_on_cores": [round(h / a["cores"], 1) for h in hours]}
    traf = table["ours, trafilatura"]
    table["ours, index-driven, one language (trafilatura)"] = {
        "docs_per_s_per_core": traf["docs_per_s_per_core"],
        "core_hours": [round(h * a["language_share"], -1) for h in traf["core_hours"]],
        "usd": [round(u * a["language_share"], 1) for u in traf["usd"]],
        "wall_hours_on_cores": [round(h * a["language_share"], 2) for h in traf["wall_hours_on_cores"]]}
    bytes_per_page = a["snapshot_compressed_bytes"] / a["snapshot_pages"]
    read_gb_s = {mode: round(max(t["docs_per_s_per_core"]) * a["cores"] * bytes_per_page / 1e9, 2)
                 for mode, t in table.items() if not mode.startswith("ours, index")}
    dedup = load("dedup_results.json")["runs"]["100000"]["cptcorpus"]
    band_rows_per_doc = dedup["counters"]["bucket_rows"] / dedup["summary"]["docs_in"]
    band_bytes = 16 * band_rows_per_doc  # a band row: uint64 bucket + int64 key
    plan = load("driver_scale_results.json")["shard_plan"]
    return {
        "command": "python bench/projection.py " + " ".join(sys.argv[1:]), "assumptions": a,
        "table": table,
        "compressed_bytes_per_page": round(bytes_per_page),
        "read_gb_per_s_at_fastest_speed": read_gb_s,
        "dedup_band_rows_per_doc": band_rows_per_doc,
        "dedup_band_gb_for_global_corpus": round(band_bytes * a["kept_documents_global"] / 1e9),
        "shard_plan_driver_mb_at_files": {"files": plan["files"], "shards": plan["shards"],
                                          "mb": round(plan["driver_bytes_total"] / 1e6, 1)},
    }


def main() -> None:
    out = project()
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
