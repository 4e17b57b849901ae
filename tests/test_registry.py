"""The stage registry is the one declaration of stages: CLI, run order, Makefile and README follow it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import cli, registry
from pipelines.config import STAGES, parse_config
from pipelines.registry import REGISTRY, StageSpec

REPO = Path(__file__).resolve().parents[1]


def test_every_stage_is_a_cli_command_in_registry_order():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert [s.name for s in REGISTRY] == list(STAGES)
    assert set(STAGES) <= set(sub.choices)


def test_every_stage_implementation_loads_with_the_declared_shape():
    from pipelines.stage import Stage

    for spec in REGISTRY:
        impl = spec.load()
        if spec.runs == "per_shard":
            assert isinstance(impl, type) and issubclass(impl, Stage), spec.name
            assert impl.name == spec.name
        else:
            assert callable(impl), spec.name


def test_makefile_targets_come_from_the_registry():
    out = subprocess.run([sys.executable, "pipelines/registry.py", "make-targets"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == [s.make_target for s in REGISTRY]
    dry = subprocess.run(["make", "-n", "--no-print-directory", out[-1], "CONFIG=configs/x.yaml"], cwd=REPO,
                         capture_output=True, text=True)
    assert f"cptcorpus {out[-1]} --config configs/x.yaml" in dry.stdout, dry.stderr


def test_readme_stage_table_is_the_registry_table():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- stages:begin -->\n(.*?)\n<!-- stages:end -->", readme, re.S)
    assert block, "README lost its stage table markers"
    assert block.group(1) == registry.markdown_table(), "regenerate with `cptcorpus stages`"


def test_run_order_skips_disabled_optional_stages_and_reads_past_them(monkeypatch):
    optional = StageSpec("tagger", "per_shard", "previous", "pipelines.filter:FilterStage", "tagger", "test",
                         enabled_by="filter.keep_stats")
    extended = (*REGISTRY[:5], optional, *REGISTRY[5:])
    monkeypatch.setattr(registry, "REGISTRY", extended)
    monkeypatch.setattr(cli, "REGISTRY", extended)
    monkeypatch.setattr(cli, "STAGES", tuple(s.name for s in extended))
    off = parse_config({"name": "t"})
    assert "tagger" not in cli.run_order(off, "extract", "manifest")
    assert cli.default_inputs(off, "shard") == [off.stage_dir("dedup")]
    on = parse_config({"name": "t", "filter": {"keep_stats": True}})
    assert cli.run_order(on, "extract", "manifest").index("tagger") == 5
    assert cli.default_inputs(on, "shard") == [on.stage_dir("tagger")]


def test_gpu_stages_are_not_fused():
    gpu = parse_config({"classify": {"num_gpus": 1}})
    assert cli.plan_run(gpu, list(STAGES))[:2] == [["extract", "langid", "filter"], ["classify"]]


def test_unknown_stage_names_the_known_ones():
    with pytest.raises(KeyError, match="extract"):
        registry.get("nope")


def test_manifest_before_shard_is_an_error_not_an_empty_manifest(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"name: t\noutput: {tmp_path / 'run'}\n")
    assert cli.main(["manifest", "--config", str(cfg), "--no-progress"]) == 2
    assert "run the shard stage first" in capsys.readouterr().err
    assert not (tmp_path / "run" / "corpus" / "manifest.json").exists()
