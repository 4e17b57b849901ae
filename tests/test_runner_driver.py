"""The driver's bookkeeping per task stays O(1): `as_completed` and the runner's progress count.

With one ``ray.wait`` over all pending refs per completion, n tasks cost the driver O(n^2) ref scans
(1.25 billion at 50,000 shards). These tests count the refs the real ``ray.wait`` is handed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import ray

from pipelines import runner
from pipelines.config import parse_config
from pipelines.runner import as_completed, run_shards
from pipelines.stage import Stage

pytestmark = pytest.mark.usefixtures("ray_session")
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the test stage runs in Ray workers


@ray.remote
def _task(i: int, sleep_s: float = 0.0) -> int:
    time.sleep(sleep_s)
    if i % 7 == 3:
        raise ValueError(f"task {i} fails")
    return i


class CountingWait:
    """Calls the real ``ray.wait`` and counts the refs each call scans."""

    def __init__(self) -> None:
        self.calls = 0
        self.scanned = 0
        self.real = ray.wait

    def __call__(self, refs, **kwargs):
        self.calls += 1
        self.scanned += len(refs)
        return self.real(refs, **kwargs)


def test_finished_tasks_cost_a_bounded_number_of_ref_scans_each(monkeypatch):
    n = 1500
    refs = [_task.remote(i) for i in range(n)]
    ray.wait(refs, num_returns=n)  # all finished: what is measured is the driver's loop, not the tasks
    wait = CountingWait()
    monkeypatch.setattr(runner.ray, "wait", wait)
    seen = {label: (result, err) for label, result, err in as_completed({ref: i for i, ref in enumerate(refs)})}
    assert sorted(seen) == list(range(n))
    assert all(result == i and err is None for i, (result, err) in seen.items() if i % 7 != 3)
    assert all(result is None and "fails" in str(err) for i, (result, err) in seen.items() if i % 7 == 3)
    # each call asks for 1/8 of what is pending: about 8 scans per task (one wait per task: n*(n+1)/2)
    assert wait.scanned <= 9 * n, (wait.calls, wait.scanned)
    assert wait.calls < 100


def test_tasks_still_running_are_all_yielded_once_as_they_finish():
    refs = {_task.remote(i, 0.02 * (i % 5)): i for i in range(40)}
    labels = [label for label, _, _ in as_completed(refs)]
    assert sorted(labels) == list(range(40))


class DocsStage(Stage):
    """Each shard reports as many documents as its input file name says."""

    name = "docs"
    input_suffixes = (".in",)

    def process_shard(self, input_path: str, output_dir: str, shard: str) -> dict:
        return {"docs_in": int(Path(input_path).stem.removeprefix("s")), "outputs": {}}


def test_run_shards_counts_every_task_and_document(tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(300):
        (inputs / f"s{i}.in").touch()
    cfg = parse_config({})
    summary = run_shards(DocsStage(cfg), [str(inputs)], str(tmp_path / "out"), cfg.ray, progress=True)
    assert summary["shards"]["processed"] == 300 and summary["docs_in"] == sum(range(300))
    assert f"docs={sum(range(300))}" in capsys.readouterr().err  # the bar's running count, last drawn at close
