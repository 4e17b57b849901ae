"""Kill -9 at several points of `cptcorpus run`, then resume: the corpus equals an uninterrupted run's.

Each run is a subprocess in its own session, so SIGKILL takes the driver and its whole local Ray
runtime down at once, as a lost machine would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def _write_config(tmp_path: Path, sample_dir: Path, name: str) -> Path:
    data = {"name": "run", "output": str(tmp_path / name), "input": [str(sample_dir / "*.warc.gz")],
            "ray": {"num_cpus": 1, "max_retries": 1}, "langid": {"languages": ["pt", "en", "es", "de"]},
            "shard": {"num_shards": 3}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


FAKE_SECRETS = {"AWS_SECRET_ACCESS_KEY": "cptcorpus-fake-aws-secret-9f3b", "OPENAI_API_KEY": "sk-cptcorpus-fake-7d1e"}


def _start(config: Path) -> subprocess.Popen:
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", **FAKE_SECRETS)
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", "--config", str(config), "--no-progress"],
                            cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _run(config: Path) -> None:
    proc = _start(config)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out.decode(errors="replace")[-3000:]


def _kill_when(config: Path, ready, timeout: float = 240) -> bool:
    """Start a run and SIGKILL its process group as soon as ``ready()`` is true; False if it finished first."""
    proc = _start(config)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if ready():
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
                return True
            if proc.poll() is not None:
                return False
            time.sleep(0.01)
        raise AssertionError("kill point never reached")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def _corpus(run: Path) -> list[pa.Table]:
    return [pq.read_table(p) for p in sorted((run / "corpus").glob("shard-*.parquet"))]


def _manifest_without_times(run: Path) -> dict:
    manifest = json.loads((run / "corpus" / "manifest.json").read_text())
    manifest.pop("nondeterministic")
    manifest["lineage"].pop("config")
    manifest["lineage"].pop("config_sha256")
    return manifest


def _differences(a, b, where: str = "") -> list[str]:
    """The JSON paths where two manifests differ, with both values (readable when the test fails)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _differences(a.get(k), b.get(k), f"{where}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def _has(directory: Path, pattern: str) -> bool:
    return directory.is_dir() and any(directory.glob(pattern))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, sample_dir):
    """An uninterrupted run, made twice into the same directory; the first copy is kept beside it."""
    tmp = tmp_path_factory.mktemp("reference")
    config = _write_config(tmp, sample_dir, "ref")
    _run(config)
    (tmp / "ref").rename(tmp / "ref-first")
    _run(config)
    return tmp / "ref"


def test_two_runs_give_identical_manifests_apart_from_one_field(reference):
    first = json.loads((reference.parent / "ref-first" / "corpus" / "manifest.json").read_text())
    second = json.loads((reference / "corpus" / "manifest.json").read_text())
    assert first.pop("nondeterministic") != {} and second.pop("nondeterministic") != {}
    assert _differences(first, second) == []
    for a, b in zip(_corpus(reference.parent / "ref-first"), _corpus(reference), strict=True):
        assert a.equals(b)


def test_no_credential_reaches_the_run_directory(reference):
    for path in [*reference.rglob("*"), *(reference.parent / "ref-first").rglob("*")]:
        if path.is_file():
            data = path.read_bytes()
            for secret in FAKE_SECRETS.values():
                assert secret.encode() not in data, f"{secret} leaked into {path}"


KILL_POINTS = {
    # after the first extract shard is complete, while the others run
    "extract": lambda run: _has(run / "extract" / "_stats", "*.json"),
    # mid-chain: the first shard has passed filter (fused with extract, langid, classify)
    "filter": lambda run: _has(run / "filter" / "_stats", "*.json"),
    # once dedup has started writing (phase files or its first outputs)
    "dedup": lambda run: _has(run / "dedup", "**/*"),
    # once the corpus directory exists, before or while shards are written
    "shard": lambda run: (run / "corpus").is_dir(),
}


@pytest.mark.parametrize("point", sorted(KILL_POINTS))
def test_kill_and_resume_gives_the_uninterrupted_result(tmp_path, sample_dir, reference, point):
    config = _write_config(tmp_path, sample_dir, "killed")
    run = tmp_path / "killed"
    killed = _kill_when(config, lambda: KILL_POINTS[point](run))
    assert killed, f"the run finished before reaching the {point} kill point"
    _run(config)
    ours, ref = _corpus(run), _corpus(reference)
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref, strict=True):
        assert a.equals(b)
    assert _manifest_without_times(run)["datasets"] == _manifest_without_times(reference)["datasets"]
    assert list(run.rglob(".tmp-*")) == []


def test_rerun_of_a_complete_run_does_no_stage_work(tmp_path, reference):
    run = tmp_path / "again"
    shutil.copytree(reference, run)
    config = tmp_path / "again.yaml"
    data = yaml.safe_load((reference / "config.resolved.yaml").read_text())
    data["output"] = str(run)
    config.write_text(yaml.safe_dump(data))
    _run(config)
    for stage in ("extract", "langid", "filter", "classify"):
        summary = json.loads((run / stage / "_summary.json").read_text())
        assert summary["shards"]["skipped_complete"] == summary["shards"]["total"], stage
