"""Every stage's output on an object store (the session's local S3 server, moto on 127.0.0.1).

`cptcorpus run` writes the whole run directory to ``s3://``; `validate`, `mix` and `report` read it back
from there. Objects are written whole and the shard's completion marker (its stats file) last, so a
shard whose data object exists without its marker is redone on the next run, with the same bytes.
An output location the store refuses is a config error before any work (exit 2, naming the URL).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pipelines.cli import main

pytestmark = pytest.mark.usefixtures("ray_session")


def _config(tmp_path, sample_dir, s3_server, output: str, name: str = "s3run") -> str:
    data = {"name": name, "output": output, "input": [str(sample_dir / "*.warc.gz")],
            "storage_options": {"s3": {"endpoint_url": s3_server.endpoint_url}},
            "extract": {"extractor": "resiliparse"},
            "langid": {"languages": ["pt", "en", "es", "de"]}, "shard": {"num_shards": 2}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.fixture(scope="module")
def s3_run(tmp_path_factory, sample_dir, s3_server):
    tmp = tmp_path_factory.mktemp("s3run")
    output = s3_server.bucket("runs") + "/pt"
    cfg = _config(tmp, sample_dir, s3_server, output)
    assert main(["run", "--config", cfg, "--no-progress"]) == 0
    return output, cfg


def _key(url: str) -> str:
    return url[len("s3://"):]


def test_run_writes_its_whole_run_directory_to_s3(s3_run, s3_server, capsys):
    output, _ = s3_run
    fs = s3_server.filesystem()
    names = [p[len(_key(output)) + 1:] for p in fs.find(_key(output))]
    for stage in ("extract", "langid", "filter", "dedup"):
        assert f"{stage}/_summary.json" in names and any(n.startswith(f"{stage}/_stats/") for n in names), stage
    assert any(n.startswith("corpus/shard-") and n.endswith(".parquet") for n in names)
    assert {"corpus/manifest.json", "config.resolved.yaml", "failures.jsonl"} <= set(names)
    assert not [n for n in names if "/.tmp-" in f"/{n}"], "a spooled temporary object was left behind"
    capsys.readouterr()
    assert main(["validate", f"{output}/corpus/manifest.json"]) == 0
    assert capsys.readouterr().out.strip().endswith(": valid")


def test_mix_and_report_read_and_write_the_run_on_s3(s3_run, s3_server, tmp_path, capsys):
    output, cfg = s3_run
    recipe = tmp_path / "mix.yaml"
    recipe.write_text(yaml.safe_dump({"name": "mix", "target_tokens": 5000, "seed": 0, "components": [
        {"name": "pt", "filter": "lang == pt", "ratio": 0.7}, {"name": "rest", "filter": "lang != pt", "ratio": 0.3}]}))
    capsys.readouterr()
    assert main(["mix", "--recipe", str(recipe), "--config", cfg]) == 0
    mixture_url = capsys.readouterr().out.strip().splitlines()[-1]
    assert mixture_url == f"{output}/mixture/mix.mixture.json"
    with s3_server.filesystem().open(_key(mixture_url)) as fh:
        mixture = json.load(fh)
    assert [c["name"] for c in mixture["components"]] == ["pt", "rest"]
    assert all(f["path"].startswith(output) for c in mixture["components"] for f in c["files"])
    assert main(["report", "--config", cfg]) == 0
    assert s3_server.filesystem().isfile(_key(output) + "/report/index.html")


def test_a_data_object_without_its_marker_is_redone_with_the_same_bytes(s3_run, s3_server, capsys):
    """A run killed between a shard's upload and its marker: the object is treated as absent."""
    output, cfg = s3_run
    fs = s3_server.filesystem()
    shard = sorted(p for p in fs.ls(_key(output) + "/extract") if p.endswith(".parquet"))[0]
    name = shard.rsplit("/", 1)[1].removesuffix(".parquet")
    marker = f"{_key(output)}/extract/_stats/{name}.json"
    before = fs.cat(shard)
    fs.rm(marker)
    fs.pipe(shard, b"half an upload")  # what an interrupted writer may leave (a PUT is whole, but be strict)
    others = {p: fs.info(p)["LastModified"] for p in fs.ls(_key(output) + "/extract") if p.endswith(".parquet")
              and p != shard}
    assert main(["extract", "--config", cfg, "--no-progress"]) == 0
    assert fs.cat(shard) == before and fs.isfile(marker)
    assert {p: fs.info(p, refresh=True)["LastModified"] for p in others} == others  # done shards skipped


@pytest.mark.parametrize("where", ["missing bucket", "unreachable endpoint"])
def test_an_unusable_output_location_is_a_config_error_before_any_work(where, tmp_path, sample_dir, s3_server, capsys):
    output = "s3://no-such-bucket-anywhere/run" if where == "missing bucket" else s3_server.bucket("x") + "/run"
    cfg = _config(tmp_path, sample_dir, s3_server, output)
    if where == "unreachable endpoint":
        data = yaml.safe_load(Path(cfg).read_text())
        data["storage_options"]["s3"] = {"endpoint_url": "http://127.0.0.1:9",
                                         "config_kwargs": {"retries": {"max_attempts": 1}}}
        Path(cfg).write_text(yaml.safe_dump(data))
    capsys.readouterr()
    assert main(["run", "--config", cfg, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert output in err and "cannot write there" in err, err
    reason = "bucket does not exist" if where == "missing bucket" else "Could not connect"
    assert reason in err, err
