"""Worker-node loss: a node removed while a stage runs; retries finish it with the same result.

Runs in a subprocess: it needs its own two-node `ray.cluster_utils.Cluster`, not the session's runtime.
"""

from __future__ import annotations

import json
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
    attempts = os.path.join(out, "attempts.jsonl")

    class RecordingExtract(ExtractStage):
        \"\"\"Extract that logs each attempt's node at its start and end; it holds each task 2 s after
        logging the start, so the node can be removed while the task is known to be running there.\"\"\"

        def process_shard(self, input_path, output_dir, shard):
            node = ray.get_runtime_context().get_node_id()
            self._log(shard, node, "start")
            time.sleep(2.0)
            stats = super().process_shard(input_path, output_dir, shard)
            self._log(shard, node, "end")
            return stats

        def _log(self, shard, node, event):
            with open(attempts, "a") as fh:
                fh.write(json.dumps({"shard": shard, "node": node, "event": event}) + "\\n")

    def events():
        if not os.path.isfile(attempts):
            return []
        with open(attempts) as fh:
            return [json.loads(line) for line in fh if line.endswith("\\n")]

    files = sorted(glob.glob(os.path.join(sample, "*.warc.gz")))
    os.makedirs(out)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address)
    cluster.wait_for_nodes()
    removed = worker.node_id
    cfg = parse_config({"ray": {"max_retries": 4, "task_memory_mb": 256}})

    def remove_worker_while_a_task_runs_there():
        while not any(e["node"] == removed and e["event"] == "start" for e in events()):
            time.sleep(0.02)
        cluster.remove_node(worker, allow_graceful=False)
        print("REMOVED", flush=True)

    t = threading.Thread(target=remove_worker_while_a_task_runs_there, daemon=True)
    t.start()
    lost = run_shards(RecordingExtract(cfg), files, os.path.join(out, "lost"), cfg.ray, progress=False)
    t.join(timeout=5)
    clean = run_shards(ExtractStage(cfg), files, os.path.join(out, "clean"), cfg.ray, progress=False)
    same = all(pq.read_table(os.path.join(out, "lost", os.path.basename(p))).equals(pq.read_table(p))
               for p in glob.glob(os.path.join(out, "clean", "*.parquet")))
    log = events()
    cut = sorted({e["shard"] for e in log if e["node"] == removed and e["event"] == "start"}
                 - {e["shard"] for e in log if e["node"] == removed and e["event"] == "end"})
    retried = [s for s in cut if any(e["shard"] == s and e["node"] != removed and e["event"] == "end" for e in log)]
    print("RESULT", json.dumps({"lost": lost["shards"], "clean": lost["docs_out"] == clean["docs_out"], "same": same,
                                "cut_on_removed_node": cut, "retried_elsewhere": retried}))
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
    result = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT")).removeprefix("RESULT "))
    assert result["lost"]["failed"] == 0 and result["clean"] and result["same"], result
    # a task was running on the removed node when it went (started there, never finished there) ...
    assert result["cut_on_removed_node"], result
    # ... and Ray ran it again on the surviving node, to completion
    assert result["retried_elsewhere"] == result["cut_on_removed_node"], result
