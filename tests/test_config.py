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


def _config_error(data: dict) -> str:
    with pytest.raises(ConfigError) as err:
        parse_config(data, "c.yaml")
    return str(err.value)


def test_filter_rule_values_are_range_checked():
    msg = _config_error({"filter": {"rules": {
        "gopher_repetition": {"dup_line_frac": 7, "top_n_grams": [[2, 1.5]]},
        "gopher_quality": {"min_doc_words": -5, "min_stop_words": 2.5, "enabled": "yes"},
        "fineweb_quality": {"short_line_length": None, "new_line_ratio": -0.1},
    }}})
    for line in (
        "filter.rules.gopher_repetition.dup_line_frac: got 7; expected a fraction between 0 and 1",
        "filter.rules.gopher_repetition.top_n_grams: got [[2, 1.5]]; expected a list of [n, fraction] pairs",
        "filter.rules.gopher_quality.min_doc_words: got -5; expected a whole number >= 0",
        "filter.rules.gopher_quality.min_stop_words: got 2.5; expected a whole number >= 0",
        "filter.rules.gopher_quality.enabled: got 'yes'; expected true or false",
        "filter.rules.fineweb_quality.short_line_length: got None; expected a whole number >= 0",
        "filter.rules.fineweb_quality.new_line_ratio: got -0.1; expected a number >= 0",
    ):
        assert line in msg, (line, msg)
    # null turns a threshold off; in-range values pass
    cfg = parse_config({"filter": {"rules": {"gopher_quality": {"max_doc_words": None, "min_doc_words": 10},
                                             "gopher_repetition": {"dup_line_frac": 0.5}}}})
    assert cfg.filter.rules["gopher_quality"]["max_doc_words"] is None


def test_a_minimum_above_its_maximum_is_an_error():
    msg = _config_error({"filter": {"preset": "pt", "rules": {
        "gopher_quality": {"min_doc_words": 300, "max_doc_words": 200}}}})
    assert "filter.rules.gopher_quality.min_doc_words: got 300; expected at most gopher_quality.max_doc_words, " \
           "which is 200" in msg
    # against the preset's own maximum when only the minimum is overridden
    msg = _config_error({"filter": {"rules": {"gopher_quality": {"min_avg_word_length": 50}}}})
    assert "min_avg_word_length: got 50; expected at most gopher_quality.max_avg_word_length" in msg
    assert "preset pt" in msg and "the defaults" in msg


def test_filter_preset_must_name_a_preset_language():
    msg = _config_error({"filter": {"preset": "portuguese"}})
    assert "filter.preset: got 'portuguese'; expected a language with a preset in" in msg
    assert "pt" in msg and "ISO 639-1" in msg
    msg = _config_error({"filter": {"preset": "fi", "unknown_language": "keep"}})
    assert "'fi' documents would be kept unfiltered" in msg
    msg = _config_error({"filter": {"preset_dir": "/nonexistent/presets"}})
    assert "filter.preset_dir: got '/nonexistent/presets'; expected a directory" in msg
    # ISO 639-3 and BCP-47 spellings of a preset language are read as its preset; a language without
    # one is filtered with FineWeb's defaults when unknown_language says so
    for preset in ("pt", "por", "pt-BR", "por_Latn", "fi"):
        assert parse_config({"filter": {"preset": preset}}).filter.preset == preset


def test_check_output_writable(tmp_path):
    from pipelines.config import check_output_writable

    check_output_writable(str(tmp_path / "new" / "run"))
    assert (tmp_path / "new" / "run").is_dir() and not list((tmp_path / "new" / "run").iterdir())
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"output: cannot write the run directory .*file/run.*a path component "
                                          r"is a file"):
        check_output_writable(str(tmp_path / "file" / "run"))
    with pytest.raises(ConfigError, match=r"output: .*a path component is a file"):
        check_output_writable(str(tmp_path / "file"))
    # object-store outputs are probed on the store itself: tests/test_object_storage.py


def test_check_output_writable_read_only_directory(tmp_path):
    import os

    from pipelines.config import check_output_writable

    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        probe = locked / "probe"
        try:  # root ignores permission bits: then this test has nothing to check
            probe.mkdir()
            probe.rmdir()
            pytest.skip("running as a user that can write a read-only directory")
        except PermissionError:
            pass
        with pytest.raises(ConfigError, match=r"output: cannot write the run directory .*Permission denied"):
            check_output_writable(str(locked / "run"))
    finally:
        os.chmod(locked, 0o700)
