"""Worker-node loss: a node removed while a stage runs; retries finish it with the same result.

Runs in a subprocess: it needs its own two-node `ray.cluster_utils.Cluster`, not the session's runtime.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import glob, json, os, sys, threading, time
    import pyarrow.parquet as pq
    import ray
    from ray.cluster_utils import Cluster
    from pipelines.config import parse_config
    from pipelines.extract import ExtractStage
    from pipelines.runner import run_shards

    sample, out = sys.argv[1], sys.argv[2]
    files = sorted(glob.glob(os.path.join(sample, "*.warc.gz")))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address)
    cluster.wait_for_nodes()
    cfg = parse_config({"ray": {"max_retries": 4, "task_memory_mb": 256}})

    def remove_worker_when_busy():
        stats_dir = os.path.join(out, "lost", "_stats")
        while not (os.path.isdir(stats_dir) and os.listdir(stats_dir)):
            time.sleep(0.02)
        cluster.remove_node(worker, allow_graceful=False)
        print("REMOVED", len(os.listdir(stats_dir)), flush=True)

    t = threading.Thread(target=remove_worker_when_busy, daemon=True)
    t.start()
    lost = run_shards(ExtractStage(cfg), files, os.path.join(out, "lost"), cfg.ray, progress=False)
    t.join(timeout=5)
    clean = run_shards(ExtractStage(cfg), files, os.path.join(out, "clean"), cfg.ray, progress=False)
    same = all(pq.read_table(os.path.join(out, "lost", os.path.basename(p))).equals(pq.read_table(p))
               for p in glob.glob(os.path.join(out, "clean", "*.parquet")))
    print("RESULT", json.dumps({"lost": lost["shards"], "clean": lost["docs_out"] == clean["docs_out"], "same": same}))
    ray.shutdown()
    cluster.shutdown()
""")


def test_stage_survives_losing_a_worker_node(tmp_path, sample_dir):
    script = tmp_path / "node_loss.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(sample_dir), str(tmp_path / "out")], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "REMOVED" in out, out[-3000:]
    result = next(line for line in out.splitlines() if line.startswith("RESULT"))
    assert '"failed": 0' in result and '"clean": true' in result and '"same": true' in result, result
