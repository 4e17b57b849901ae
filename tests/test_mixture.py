"""Mixture recipes: the filter language, recipe validation, resolution, exports and the streaming reader."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from pipelines import io
from pipelines.cli import main
from pipelines.filterexpr import FilterSyntaxError, compile_filter
from pipelines.mixture import MixtureReader, RecipeError, load_recipe, parse_recipe, resolve_mixture

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# filter language


@pytest.mark.parametrize(("text", "expected"), [
    ("lang == pt and edu_score >= 0.5", ["a"]),
    ("lang == 'pt' or stem_score > 0.8", ["a", "b", "c"]),
    ("lang in [en, \"es\"]", ["c", "d"]),
    ("lang not in [pt]", ["c", "d", "e"]),
    ("not (lang == pt) and edu_score < 0.5", ["c", "d"]),
    ("lang is null", ["e"]),
    ("lang is not null and edu_score != 0.2", ["a", "b", "c"]),
    ("flag == true", ["a"]),
    ("n >= 2 and n <= 3", ["b", "c"]),
])
def test_filter_language_compiles_to_pyarrow(text, expected):
    table = pa.table({"id": list("abcde"), "lang": ["pt", "pt", "en", "es", None],
                      "edu_score": [0.9, 0.1, 0.3, 0.2, 0.7], "stem_score": [0.1, 0.2, 0.9, 0.1, 0.1],
                      "flag": [True, False, False, False, None], "n": [1, 2, 3, 4, 5]})
    assert table.filter(compile_filter(text).expression).column("id").to_pylist() == expected


@pytest.mark.parametrize(("text", "message"), [
    ("lang = pt", "unexpected character '='"),
    ("lang ==", "expected a value"),
    ("edu_score >= 0.5 lang == pt", "missing and/or"),
    ("open('x')", "expected a comparison"),
    ("__import__('os').system('x')", "unexpected character '.'"),
    ("(lang == pt", "expected ')'"),
    ("lang in pt", "expected '['"),
    ("", "empty filter"),
])
def test_filter_errors_point_at_the_problem(text, message):
    with pytest.raises(FilterSyntaxError, match=re.escape(message)):
        compile_filter(text)


def test_filter_checks_columns_against_the_schema():
    flt = compile_filter("lang == pt and edu >= 0.5")
    assert flt.columns == ("lang", "edu")
    with pytest.raises(FilterSyntaxError, match="unknown column.*'edu'.*available: lang, edu_score"):
        flt.check_columns(pa.schema([("lang", pa.string()), ("edu_score", pa.float32())]))


# ---------------------------------------------------------------------------------------------
# recipes


def _recipe(**over) -> dict:
    data = {"name": "r", "target_tokens": 1000, "components": [
        {"name": "pt", "filter": "lang == pt", "ratio": 0.7},
        {"name": "en", "source": "parquet", "path": "x/*.parquet", "ratio": 0.3}]}
    data.update(over)
    return data


@pytest.mark.parametrize(("change", "message"), [
    ({"components": [{"name": "a", "ratio": 0.5}, {"name": "b", "ratio": 0.4}]},
     "ratios must sum to 1; got a=0.5 + b=0.4 = 0.9"),
    ({"components": [{"name": "a", "ratio": 0.5}, {"name": "a", "ratio": 0.5}]}, "repeated: a"),
    ({"components": [{"name": "a", "ratio": 1, "source": "parquet"}]}, "source parquet needs `path`"),
    ({"components": [{"name": "a", "ratio": 1, "filter": "lang = pt"}]},
     "components.0.filter: got 'lang = pt'; expected a valid filter"),
    ({"components": [{"name": "a", "ratio": 1.5}]}, "components.0.ratio: got 1.5"),
    ({"target_tokens": 0}, "target_tokens: got 0"),
    ({"treshold": 1}, "treshold: unknown key"),
])
def test_recipe_validation_errors_are_clear(change, message):
    with pytest.raises(RecipeError) as err:
        parse_recipe(_recipe(**change), "recipe.yaml")
    assert "invalid recipe recipe.yaml" in str(err.value)
    assert message in str(err.value), str(err.value)


def test_demo_recipe_is_valid():
    recipe = load_recipe(REPO / "configs" / "mixture-demo.yaml")
    assert recipe.name == "mixture-demo" and abs(sum(c.ratio for c in recipe.components) - 1) < 1e-9
    assert {c.source for c in recipe.components} == {"corpus", "parquet"}


# ---------------------------------------------------------------------------------------------
# resolution


def _shards(directory: Path, n_files: int, rows: int, seed: int, langs: list[str]) -> list[str]:
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for f in range(n_files):
        tokens = rng.integers(20, 200, rows)
        table = pa.table({
            "id": [f"{directory.name}-{f}-{i}" for i in range(rows)],
            "text": ["x" * (4 * int(t)) for t in tokens],
            "lang": rng.choice(langs, rows).tolist(),
            "edu_score": pa.array(rng.random(rows), pa.float32()),
            "stem_score": pa.array(rng.random(rows), pa.float32()),
            "token_count": pa.array(tokens, pa.int64()),
        })
        path = directory / f"shard-{f:05d}.parquet"
        pq.write_table(table, path)
        out.append(str(path))
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """A corpus with a manifest, and an external English replay set without a token_count column."""
    tmp = tmp_path_factory.mktemp("mix")
    corpus = tmp / "run" / "corpus"
    shards = _shards(corpus, 3, 400, 0, ["pt", "pt", "en"])
    manifest = {"manifest_version": "1.1", "name": "run", "datasets": [{"name": "run", "shards": [
        {"path": Path(p).name, "rows": 400, "tokens": int(pq.read_table(p).column("token_count").to_numpy().sum()),
         "bytes": Path(p).stat().st_size, "sha256": io.sha256_file(p)} for p in shards]}],
        "lineage": {"config_sha256": "0" * 64}}
    io.write_json_atomic(str(corpus / "manifest.json"), manifest)
    replay = _shards(tmp / "replay", 2, 300, 1, ["en"])
    for p in replay:
        pq.write_table(pq.read_table(p).drop_columns(["token_count"]), p)
    recipe = {"name": "demo", "manifest": str(corpus / "manifest.json"), "target_tokens": 150_000, "seed": 3,
              "components": [
                  {"name": "pt_edu", "filter": "lang == pt and edu_score >= 0.5", "ratio": 0.5},
                  {"name": "stem", "filter": "stem_score >= 0.97", "ratio": 0.2},
                  {"name": "en_replay", "source": "parquet", "path": str(tmp / "replay" / "*.parquet"),
                   "ratio": 0.3}]}
    return {"tmp": tmp, "corpus": corpus, "recipe": recipe}


def test_resolve_measures_components_and_warns_about_epochs_and_overlap(world):
    mixture = resolve_mixture(parse_recipe(world["recipe"]))
    assert mixture["path"] == str(world["tmp"] / "run" / "mixture" / "demo.mixture.json")
    comps = {c["name"]: c for c in mixture["components"]}
    corpus = pa.concat_tables([pq.read_table(p) for p in sorted(world["corpus"].glob("*.parquet"))])
    pt_edu = corpus.filter(compile_filter("lang == pt and edu_score >= 0.5").expression)
    assert comps["pt_edu"]["rows_available"] == pt_edu.num_rows
    assert comps["pt_edu"]["tokens_available"] == pt_edu.column("token_count").to_numpy().sum()
    assert comps["pt_edu"]["tokens_taken"] == 75_000
    assert comps["pt_edu"]["epochs"] == pytest.approx(75_000 / comps["pt_edu"]["tokens_available"], rel=1e-5)
    assert comps["en_replay"]["token_counter"] == "bytes/4" and comps["en_replay"]["token_column"] is None
    assert comps["stem"]["epochs"] > 4 and comps["stem"]["repeats"] == int(np.ceil(comps["stem"]["epochs"]))
    assert any("'stem' would repeat" in w for w in mixture["warnings"])
    assert not any("'pt_edu' would repeat" in w for w in mixture["warnings"])
    assert any("'pt_edu' and 'stem' overlap" in w for w in mixture["warnings"])
    assert comps["pt_edu"]["files"][0]["path"] == "../corpus/shard-00000.parquet"  # portable with the run dir
    on_disk = json.loads(Path(mixture["path"]).read_text())
    assert on_disk["components"] == mixture["components"]


def test_exports_for_megatron_hf_and_json(world):
    mixture = resolve_mixture(parse_recipe(world["recipe"]))
    exp = mixture["exports"]
    assert exp["megatron"]["data_path"] == ("0.5 pt_edu_text_document 0.2 stem_text_document "
                                            "0.3 en_replay_text_document")
    assert exp["megatron"]["nemo_data_prefix"][:2] == [0.5, "pt_edu_text_document"]
    probs = exp["hf_interleave_datasets"]["probabilities"]
    assert sum(probs) == pytest.approx(1, abs=1e-5)
    means = [c["mean_tokens_per_row"] for c in mixture["components"]]
    expected = np.array([0.5, 0.2, 0.3]) / np.array(means)
    assert probs == pytest.approx((expected / expected.sum()).tolist(), abs=1e-5)
    assert [e["name"] for e in exp["json"]] == ["pt_edu", "stem", "en_replay"]
    stem = Path(mixture["path"]).with_suffix("").with_suffix("")
    assert Path(f"{stem}.megatron.txt").read_text().strip() == exp["megatron"]["data_path"]


def test_resolution_errors_name_the_component(world, tmp_path):
    bad = dict(world["recipe"], components=[{"name": "x", "filter": "edu >= 0.5", "ratio": 1}])
    with pytest.raises(RecipeError, match="component 'x'.*unknown column.*'edu'"):
        resolve_mixture(parse_recipe(bad), output_dir=str(tmp_path))
    empty = dict(world["recipe"], components=[{"name": "x", "filter": "lang == fr", "ratio": 1}])
    with pytest.raises(RecipeError, match="component 'x': no tokens available"):
        resolve_mixture(parse_recipe(empty), output_dir=str(tmp_path))
    optional = dict(world["recipe"], components=[{"name": "x", "filter": "lang == fr", "ratio": 0.5,
                                                  "required": False}, {"name": "y", "ratio": 0.5}])
    mixture = resolve_mixture(parse_recipe(optional), output_dir=str(tmp_path))
    assert [c["name"] for c in mixture["components"]] == ["y"] and mixture["components"][0]["ratio"] == 1
    no_manifest = dict(world["recipe"], manifest=None)
    with pytest.raises(RecipeError, match="no manifest was given"):
        resolve_mixture(parse_recipe(no_manifest), output_dir=str(tmp_path))


# ---------------------------------------------------------------------------------------------
# the reader


@pytest.fixture(scope="module")
def mixture_path(world) -> str:
    recipe = dict(world["recipe"], target_tokens=60_000)
    return resolve_mixture(parse_recipe(recipe), output_dir=str(world["tmp"] / "reader"))["path"]


def test_reader_is_deterministic_and_meets_the_token_ratios(mixture_path):
    first = list(MixtureReader(mixture_path))
    second = list(MixtureReader(mixture_path))
    assert [r["id"] for r in first] == [r["id"] for r in second]
    mixture = json.loads(Path(mixture_path).read_text())
    for comp in mixture["components"]:
        got = sum(r["tokens"] for r in first if r["component"] == comp["name"])
        assert comp["tokens_taken"] <= got < comp["tokens_taken"] + 200  # at most one document over
    # interleaved, not one component after the other: every component appears in the first tenth
    assert {r["component"] for r in first[: len(first) // 10]} == {"pt_edu", "stem", "en_replay"}
    # stem is repeated: its documents come back in later epochs
    stem = mixture["components"][1]
    assert stem["name"] == "stem" and stem["epochs"] > 2
    assert max(r["epoch"] for r in first if r["component"] == "stem") == int(np.ceil(stem["epochs"])) - 1
    pt = [r for r in first if r["component"] == "pt_edu"]
    assert all(r["text"] for r in pt) and len({r["id"] for r in pt}) == len(pt)  # < 1 epoch: no repeats


def test_reader_resumes_from_a_state(mixture_path):
    full = list(MixtureReader(mixture_path, columns=("id",)))
    for k in (0, 1, 137, len(full) - 1):
        reader = MixtureReader(mixture_path, columns=("id",))
        head = [next(reader) for _ in range(k)]
        state = json.loads(json.dumps(reader.state()))  # a checkpoint survives JSON
        assert state["position"] == k
        tail = list(MixtureReader(mixture_path, state=state, columns=("id",)))
        assert head + tail == full


def test_cli_mix_writes_the_mixture(world, tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({k: v for k, v in world["recipe"].items() if k != "manifest"}))
    out = tmp_path / "out"
    assert main(["mix", "--recipe", str(recipe), "--manifest", str(world["corpus"] / "manifest.json"),
                 "--output", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out / "demo.mixture.json") and "warning: component 'stem'" in captured.err
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(dict(world["recipe"], components=[{"name": "a", "ratio": 0.4}])))
    assert main(["mix", "--recipe", str(bad)]) == 2
    assert "ratios must sum to 1" in capsys.readouterr().err


def test_cli_mix_with_a_run_config_and_run_dir_paths(world, tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    components = [{"name": "pt", "filter": "lang == pt", "ratio": 0.5},
                  {"name": "en", "source": "parquet", "path": "${RUN_DIR}/corpus/shard-*.parquet",
                   "filter": "lang == en", "ratio": 0.5}]
    recipe.write_text(yaml.safe_dump({"name": "cfgmix", "target_tokens": 10_000, "components": components}))
    run_config = tmp_path / "run.yaml"
    run_config.write_text(yaml.safe_dump({"name": "x", "output": str(world["tmp"] / "run")}))
    assert main(["mix", "--recipe", str(recipe), "--config", str(run_config)]) == 0
    mixture = json.loads((world["tmp"] / "run" / "mixture" / "cfgmix.mixture.json").read_text())
    assert [f["path"] for f in mixture["components"][1]["files"]] == [
        f"../corpus/shard-{i:05d}.parquet" for i in range(3)]
    capsys.readouterr()
    recipe.write_text(yaml.safe_dump({"name": "cfgmix", "target_tokens": 10_000,
                                      "components": [dict(components[1], ratio=1)]}))
    assert main(["mix", "--recipe", str(recipe), "--output", str(tmp_path)]) == 2
    assert "${RUN_DIR} in `path` needs a manifest" in capsys.readouterr().err
