"""A real Ray cluster job on object storage: `make submit` runs `cptcorpus run` with every input and
output on an S3-compatible server, on a cluster of separate Ray processes (a head node and a worker
node, each with its own raylet and object store, token authentication on, all on 127.0.0.1).

The second test removes the worker node while the job runs; the job still finishes with the same corpus.
Every process the fixture starts is stopped by pid at the end, even when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class RayCluster:
    """``ray start --head`` plus worker nodes, as separate processes, stopped by pid."""

    def __init__(self, env: dict[str, str]) -> None:
        self.temp_dir = tempfile.mkdtemp(prefix="cptrc-", dir="/tmp")  # short: Ray's socket paths have a limit
        self.env = {**os.environ, **env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
                    "RAY_USAGE_STATS_ENABLED": "0", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        self.env.pop("RAY_ADDRESS", None)
        self.procs: dict[str, subprocess.Popen] = {}
        self.gcs_port, self.dashboard_port = _free_ports(2)

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def _node_ports(self) -> list[str]:
        manager, objects, agent, agent_grpc, metrics, runtime_env, client = _free_ports(7)
        return ["--node-manager-port", str(manager), "--object-manager-port", str(objects),
                "--dashboard-agent-listen-port", str(agent), "--dashboard-agent-grpc-port", str(agent_grpc),
                "--metrics-export-port", str(metrics), "--runtime-env-agent-port", str(runtime_env)]

    def _start(self, name: str, command: list[str], args: list[str], env: dict[str, str]) -> None:
        log = open(os.path.join(self.temp_dir, f"{name}.log"), "wb")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen(
            [*command, "start", "--block", "--num-cpus", "1", *args, *self._node_ports()], cwd=REPO, env=env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def start_head(self) -> None:
        # `ray start --head` on Linux advertises the machine's outbound address even when given
        # 127.0.0.1, unless Ray runs in its single-host mode (the variable below); that mode only
        # refuses `ray start --address`, which the worker nodes run through tests.ray_loopback.
        client_port = _free_ports(1)[0]
        self._start("head", [str(BIN / "ray")],
                    ["--head", "--node-ip-address", "127.0.0.1", "--port", str(self.gcs_port),
                     "--temp-dir", self.temp_dir, "--dashboard-host", "127.0.0.1",
                     "--dashboard-port", str(self.dashboard_port), "--ray-client-server-port", str(client_port)],
                    {**self.env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"})

    def add_worker(self, name: str) -> None:
        self._start(name, [sys.executable, "-m", "tests.ray_loopback"],
                    ["--address", f"127.0.0.1:{self.gcs_port}", "--node-ip-address", "127.0.0.1"], self.env)

    def wait_for_nodes(self, n: int, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            alive = self.alive_nodes()
            if alive is not None and alive >= n:
                return
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"ray node {name} exited: {self.log(name)[-2000:]}")
            time.sleep(2)
        raise TimeoutError(f"{n} Ray nodes not alive after {timeout}s: {self.log('head')[-2000:]}")

    def alive_nodes(self) -> int | None:
        out = subprocess.run([str(BIN / "ray"), "list", "nodes", "--format", "json", "--address", self.dashboard],
                             env=self.env, capture_output=True, text=True, timeout=60)
        try:
            nodes = json.loads(out.stdout) if out.returncode == 0 else None
        except json.JSONDecodeError:  # "No resource in the cluster" while the head is starting
            nodes = None
        return None if nodes is None else sum(1 for node in nodes if node.get("state") == "ALIVE")

    def log(self, name: str) -> str:
        return Path(self.temp_dir, f"{name}.log").read_text(errors="replace")

    def kill_node(self, name: str) -> None:
        """Remove a node as a machine failure would: SIGKILL its raylet, workers and `ray start`."""
        proc = self.procs.pop(name)
        _kill_tree(proc.pid)

    def listening_addresses(self) -> set[str]:
        """The IP addresses every process of the cluster listens on."""
        pids = set()
        for proc in self.procs.values():
            try:
                root = psutil.Process(proc.pid)
                pids |= {p.pid for p in [root, *root.children(recursive=True)]}
            except psutil.NoSuchProcess:
                continue
        return {c.laddr.ip for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN and c.pid in pids}

    def stop(self) -> None:
        for name in list(self.procs)[::-1]:
            self.kill_node(name)
        # daemons that left their parent (none should) are still found by the temp dir in their command line
        for p in psutil.process_iter(["pid", "cmdline"]):
            if any(self.temp_dir in part for part in (p.info["cmdline"] or [])):
                _kill_tree(p.info["pid"])
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _kill_tree(pid: int) -> None:
    try:
        root = psutil.Process(pid)
        procs = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(signal.SIGKILL)
    psutil.wait_procs(procs, timeout=20)


@pytest.fixture(scope="module")
def cluster(s3_server):
    c = RayCluster(s3_server.env)
    try:
        c.start_head()
        c.add_worker("worker-1")
        c.wait_for_nodes(2)
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def s3_inputs(s3_server, sample_dir):
    bucket = s3_server.bucket("cluster")
    fs = s3_server.filesystem()
    for path in sorted(sample_dir.glob("*.warc.gz")):
        fs.put_file(str(path), f"{bucket}/warc/{path.name}"[len("s3://"):])
    return bucket


def _config(tmp_path: Path, bucket: str, run: str, endpoint: str) -> Path:
    cfg = tmp_path / f"{run}.yaml"
    cfg.write_text(json.dumps({  # JSON is YAML
        "name": run,
        "input": [f"{bucket}/warc/*.warc.gz"],
        "output": f"{bucket}/runs/{run}",
        "storage_options": {"s3": {"endpoint_url": endpoint}},
        "ray": {"task_memory_mb": 256, "max_retries": 4},
        "extract": {"extractor": "resiliparse"},
        "langid": {"languages": ["pt", "en", "es", "de", "fr"]},
        "shard": {"num_shards": 2},
    }))
    return cfg


def _submit(cluster: RayCluster, cfg: Path, timeout: float = 420) -> subprocess.Popen:
    env = {**cluster.env, "RAY_ADDRESS": cluster.dashboard}
    return subprocess.Popen(["make", "--no-print-directory", "submit", "STAGE=run", f"CONFIG={cfg}", "ARGS=-v"], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _finish(proc: subprocess.Popen, timeout: float = 420) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_tree(proc.pid)
        out, _ = proc.communicate()
        pytest.fail(f"job did not finish in {timeout}s:\n{out[-4000:]}")
    assert proc.returncode == 0, out[-4000:]
    return out


def _manifest(s3_server, bucket: str, run: str) -> dict:
    with s3_server.filesystem().open(f"{bucket}/runs/{run}/corpus/manifest.json"[len("s3://"):]) as fh:
        return json.load(fh)


def test_make_submit_runs_the_pipeline_on_the_cluster_with_everything_on_s3(cluster, s3_server, s3_inputs,
                                                                          tmp_path):
    assert cluster.listening_addresses() <= {"127.0.0.1", "::ffff:127.0.0.1"}
    out = _finish(_submit(cluster, _config(tmp_path, s3_inputs, "whole", s3_server.endpoint_url)))
    assert f"{s3_inputs}/runs/whole" in out
    manifest = _manifest(s3_server, s3_inputs, "whole")
    shards = manifest["datasets"][0]["shards"]
    assert len(shards) == 2 and sum(s["rows"] for s in shards) > 50
    # validate reads every shard back from S3 and checks sha256, rows and tokens
    env = {**os.environ, **s3_server.env}
    check = subprocess.run([str(BIN / "cptcorpus"), "validate", f"{s3_inputs}/runs/whole/corpus/manifest.json"],
                           env=env, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "valid" in check.stdout
    # the stages ran as tasks on both nodes (the job's driver alone would not reach the worker node)
    fs = s3_server.filesystem()
    nodes = set()
    for stats in fs.glob(f"{s3_inputs}/runs/whole/dedup/_stats/*.json"[len("s3://"):]):
        with fs.open(stats) as fh:
            nodes.add(json.load(fh).get("node_id"))
    assert nodes and None not in nodes


def test_the_job_survives_losing_the_worker_node_with_the_same_corpus(cluster, s3_server, s3_inputs, tmp_path):
    reference = _manifest(s3_server, s3_inputs, "whole")
    proc = _submit(cluster, _config(tmp_path, s3_inputs, "lossy", s3_server.endpoint_url))
    fs = s3_server.filesystem()
    deadline = time.time() + 300
    while not fs.glob(f"{s3_inputs}/runs/lossy/extract/_stats/*.json"[len("s3://"):], refresh=True):
        assert time.time() < deadline and proc.poll() is None, "the job never started extracting"
        time.sleep(0.5)
    cluster.kill_node("worker-1")  # mid-run: the remaining input files are still being extracted
    _finish(proc)
    lossy = _manifest(s3_server, s3_inputs, "lossy")
    same = [(s["rows"], s["tokens"], s["sha256"]) for s in lossy["datasets"][0]["shards"]]
    assert same == [(s["rows"], s["tokens"], s["sha256"]) for s in reference["datasets"][0]["shards"]]
