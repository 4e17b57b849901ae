from pathlib import Path

import pytest

from pipelines.config import ConfigError, load_config, parse_config

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["demo.yaml", "pt.yaml"])
def test_shipped_configs_validate(name):
    cfg = load_config(REPO / "configs" / name)
    assert cfg.name == name.removesuffix(".yaml")
    assert cfg.extract.extractor == "trafilatura"


def test_defaults_and_run_dir():
    cfg = parse_config({"name": "x", "input": "a.warc.gz"})
    assert cfg.input == ["a.warc.gz"]
    assert cfg.run_dir == "runs/x"
    assert cfg.stage_dir("extract") == "runs/x/extract"
    assert cfg.stage_dir("shard") == cfg.stage_dir("manifest") == "runs/x/corpus"
    assert cfg.langid.threshold_for("pt") == 0.65


def test_unknown_key_is_named():
    with pytest.raises(ConfigError) as err:
        parse_config({"langid": {"treshold": 0.7}}, "my.yaml")
    msg = str(err.value)
    assert "my.yaml" in msg and "langid.treshold" in msg and "unknown key" in msg


def test_bad_value_names_key_value_and_expectation():
    with pytest.raises(ConfigError) as err:
        parse_config({"langid": {"threshold": 1.5}, "extract": {"extractor": "boilerpipe"}})
    msg = str(err.value)
    assert "langid.threshold: got 1.5" in msg and "less than or equal to 1" in msg
    assert "extract.extractor: got 'boilerpipe'" in msg and "trafilatura" in msg


def test_per_language_threshold_range():
    with pytest.raises(ConfigError, match=r"threshold for 'pt' is 2"):
        parse_config({"langid": {"thresholds": {"pt": 2}}})


def test_yaml_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_resolved_yaml_round_trips(tmp_path):
    cfg = parse_config({"name": "rt", "langid": {"languages": ["pt"]}})
    path = tmp_path / "rt.yaml"
    path.write_text(cfg.resolved_yaml())
    again = load_config(path)
    assert again == cfg and again.digest() == cfg.digest()
