"""What `pip install .` gives a user: a wheel that carries its run-time data and filters with it.

The slow test builds the wheel from a copy of the checkout (offline: setuptools is a dev dependency),
installs it into a fresh virtual environment outside the repository whose only view of the
dependencies is a ``.pth`` line to this environment's site-packages (which does not run the
editable install's own ``.pth`` hook), and runs ``cptcorpus filter`` from an unrelated directory.
A preset the wheel lacks would now be a config error; the documents are chosen so that Portuguese
thresholds and the FineWeb defaults decide them differently, so the output shows which were used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from filters import RuleChain, load_preset
from filters.presets import default_preset
from pipelines import io
from pipelines.config import ConfigError, parse_config
from pipelines.filter import FilterStage
from tests.test_filter_stage import PT_GOOD

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pipelines", "filters", "classifiers")
#: Top-level folders of a checkout that the wheel is not built from (outputs, caches, tests, docs).
NOT_SOURCE = {".git", ".venv", "runs", "data", "build", "dist", "bench", "docs", "tests"}

#: Kept by Portuguese (char_duplicates_ratio 0.1), rejected by the FineWeb default (0.01).
DUP_LINE_DOC = PT_GOOD + "\nVisite a biblioteca da escola.\n" + "Visite a biblioteca da escola."


def _few_punct_lines_doc() -> str:
    """One line in seven ends in a period (0.14): under Portuguese's 0.154, over the default 0.12."""
    words = PT_GOOD.replace(".", "").replace(",", "").split()
    lines = [" ".join(words[i:i + 6]) for i in range(0, len(words), 6)]
    return "\n".join(line + ("." if i % 7 == 0 else "") for i, line in enumerate(lines))


def _rows(directory: Path, columns: list[str]) -> list[dict]:
    return [row for f in io.list_parquet(str(directory)) for row in pq.read_table(f, columns=columns).to_pylist()]


def _decisions(preset: dict, texts: list[str]) -> list[str | None]:
    chain = RuleChain.from_preset(preset)
    return [chain.apply(t)[1] for t in texts]


def _source_files(root: Path) -> list[Path]:
    """The files a clone would hand to `pip install .` (caches, venvs and run outputs left out)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        dirnames[:] = [d for d in dirnames if not (rel == Path(".") and d in NOT_SOURCE)
                       and d != "__pycache__" and not d.startswith(".") and not d.endswith(".egg-info")]
        out += [rel / f for f in filenames if not f.endswith((".pyc", ".pyo"))]
    return out


def _build_wheel(tmp: Path) -> Path:
    src = tmp / "src"
    for rel in _source_files(REPO):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, src / rel)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(tmp / "dist"), str(src)], check=True, capture_output=True, text=True, timeout=300)
    (wheel,) = (tmp / "dist").glob("cptcorpus-*.whl")
    return wheel


def _fresh_venv(tmp: Path, wheel: Path) -> Path:
    """A venv holding only the wheel; dependencies come from this environment through a .pth line."""
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True, text=True, timeout=300)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "_cptcorpus_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n", encoding="utf-8")
    return venv


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CPTCORPUS_PRESET_DIR", "VIRTUAL_ENV")}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    return env


def _run_filter(venv: Path, work: Path, preset: str) -> subprocess.CompletedProcess:
    cfg = work / f"{preset}.yaml"
    cfg.write_text(yaml.safe_dump({"name": preset, "ray": {"num_cpus": 1},
                                   "filter": {"preset": preset, "url_filter": False}}), encoding="utf-8")
    return subprocess.run([str(venv / "bin" / "cptcorpus"), "filter", "--config", cfg.name, "--input", "docs.parquet",
                           "--output", f"out-{preset}", "--no-progress"],
                          cwd=work, env=_clean_env(), capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_installed_wheel_carries_its_data_and_filters_with_the_pt_preset(tmp_path):
    texts = [PT_GOOD, DUP_LINE_DOC, _few_punct_lines_doc()]
    fallback = default_preset("pt")
    fallback["c4"]["enabled"] = False  # what a missing preset used to fall back to
    expected = _decisions(load_preset("pt"), texts)
    assert expected[0] is None and expected[1] is None and expected[2].startswith("fineweb_quality:line_punct")
    assert _decisions(fallback, texts)[1:] != expected[1:], "the documents no longer tell the presets apart"

    wheel = _build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    data = [rel for rel in _source_files(REPO) if rel.parts[0] in PACKAGES and rel.suffix not in (".py", ".md")]
    assert data and {p.as_posix() for p in data} <= names, sorted({p.as_posix() for p in data} - names)

    venv = _fresh_venv(tmp_path, wheel)
    work = tmp_path / "work"
    work.mkdir()
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import filters; print(filters.__file__)"],
                           cwd=work, env=_clean_env(), check=True, capture_output=True, text=True).stdout
    assert where.startswith(str(venv)), f"filters imported from {where}, not from the installed wheel"
    walk = subprocess.run([str(venv / "bin" / "python"), "-c",
                           "import pipelines.fast_extract.blocks as b; print(b._walk.__file__)"],
                          cwd=work, env=_clean_env(), check=True, capture_output=True, text=True).stdout
    assert walk.startswith(str(venv)), f"the fast extractor's C walk is not in the wheel ({walk})"
    pq.write_table(pa.table({"id": ["good", "dup", "punct"], "text": texts,
                             "lang": ["pt"] * 3, "url": [None] * 3}), work / "docs.parquet")

    done = _run_filter(venv, work, "pt")
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(r["id"] for r in _rows(work / "out-pt", ["id"])) == ["dup", "good"]
    assert _rows(work / "out-pt" / "rejected", ["id", "reject_reason"]) == [{"id": "punct", "reject_reason": expected[2]}]

    unknown = _run_filter(venv, work, "xx")
    assert unknown.returncode == 2, unknown.stderr[-3000:]
    assert "filter.preset" in unknown.stderr and "'xx'" in unknown.stderr and "presets" in unknown.stderr

    # An install that lost its package data says so instead of filtering with the defaults.
    shipped = Path(where).parent / "data" / "presets"
    shutil.rmtree(shipped)
    broken = _run_filter(venv, work, "pt")
    assert broken.returncode == 2, broken.stderr[-3000:]
    assert f"filter.preset_dir: no <lang>.yaml presets in {shipped}" in broken.stderr


def test_an_empty_preset_directory_is_a_config_error(tmp_path):
    (tmp_path / "presets").mkdir()
    stage = FilterStage(parse_config({"filter": {"preset_dir": str(tmp_path / "presets")}}))
    with pytest.raises(ConfigError, match="filter.preset_dir: no <lang>.yaml presets in .*presets"):
        stage.check_inputs([])


@pytest.mark.parametrize("preset", [None, "sw"])
def test_languages_judged_with_the_defaults_are_counted_and_logged(preset, caplog):
    stage = FilterStage(parse_config({"filter": {"preset": preset}}))
    table = pa.table({"id": ["a", "b", "c"], "text": [PT_GOOD] * 3, "lang": ["pt", "sw", "sw"]})
    with caplog.at_level("WARNING", logger="pipelines.filter"):
        _, _, counters = stage.process_batch(table)
    assert counters["default_preset_by_lang"] == ({"sw": 2} if preset is None else {"sw": 3})
    assert "no preset for language 'sw'" in caplog.text
