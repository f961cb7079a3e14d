"""The project stands on its own: a clone anywhere has its data, finds its Python, runs its
demos in projects of their own, and says under which licence it may be used."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from pipelines.core.params.load import load_params
from tests.conftest import REAL_DATA, ROOT, run
from tests.support.tsetmc_server import EXAMPLES, TEDPIX_DAYS, recorded_rows

sys.path.insert(0, str(ROOT / "tools"))
import demo  # noqa: E402  (tools/demo.py: not a package)

# a reference to the team's folder beside the repository, which a clone does not have
TEAM_FOLDER = re.compile(r"\.\./" + "shared|parents?(\\[\\d\\])?\\s*/\\s*[\"']" + "shared[\"']")


def project_files() -> list[Path]:
    """Every file of the project as a clone has it: tracked, or new and not ignored."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout
    return [ROOT / name for name in listed.split("\0") if name and (ROOT / name).is_file()]


def test_nothing_refers_to_the_team_folder_beside_the_repository():
    files = project_files()
    assert len(files) > 100
    found = []
    for path in files:
        text = path.read_bytes().decode("utf-8", errors="replace")
        found += [f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}"
                  for m in TEAM_FOLDER.finditer(text)]
    assert found == []


def test_the_pattern_would_catch_the_old_references():
    assert TEAM_FOLDER.search('ROOT.parent / "sha' 'red" / "data"')
    assert TEAM_FOLDER.search("see ../" "shared/docs/input-formats.md")
    assert not TEAM_FOLDER.search("a shared S3 remote; shared by every config")


def test_the_repository_carries_the_real_data_the_tests_and_demos_use():
    exports = sorted(REAL_DATA.glob("*.csv"))
    assert len(exports) == 16
    assert all(path.read_bytes()[:2] == b"\xff\xfe" for path in exports)  # UTF-16 LE, BOM
    assert len(recorded_rows()) == TEDPIX_DAYS
    assert (EXAMPLES / "README.md").is_file()
    for name in (path.name for path in EXAMPLES.iterdir() if path.is_dir()):
        assert f"`{name}/" in (EXAMPLES / "README.md").read_text(encoding="utf-8"), name
    # git must not turn the UTF-16 exports' line ends: they are data, byte for byte
    done = run(["git", "check-attr", "text", "--", str(exports[0].relative_to(ROOT))], ROOT)
    assert done.stdout.strip().endswith("text: unset")


def test_fetch_codes_are_tsetmcs_own():
    """Each insCode in params.yaml is in TSETMC's recorded list of TSE indices."""
    answer = json.loads((EXAMPLES / "tse-index-list/GetIndexB1LastAll_1.json").read_bytes())
    names = {int(row["insCode"]): row["lVal30"] for row in answer["indexB1"]}
    indices = load_params(ROOT / "params.yaml").fetch.indices
    assert len(names) == 56 and len(indices) == 13
    assert {isin: code in names for isin, code in indices.items()} == dict.fromkeys(indices, True)
    assert names[indices["IRX6XTPI0009"]] == "شاخص كل"  # TEDPIX: "overall index"
    assert set(indices) <= {path.stem for path in REAL_DATA.glob("*.csv")}


# -- the Python that make uses ---------------------------------------------------------

def fake_python(folder: Path, name: str, version: str) -> None:
    """A ``name`` on the PATH that says it is Python ``version`` and can do nothing else."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / name
    script.write_text(f"#!/bin/sh\necho {version}\n", encoding="utf-8")
    script.chmod(0o755)


def make_copy(tmp_path: Path) -> Path:
    """What ``make`` reads before it sets anything up, in a folder of its own."""
    target = tmp_path / "clone"
    (target / "tools").mkdir(parents=True)
    for name in ("Makefile", "pyproject.toml", "constraints.txt", "constraints-gpu.txt",
                 "tools/find-python"):
        shutil.copy2(ROOT / name, target / name)
    return target


def test_make_demo_without_a_supported_python_says_what_to_install(tmp_path):
    clone = make_copy(tmp_path)
    fake_python(tmp_path / "bin", "python3", "3.12")
    before = sorted(p.name for p in clone.iterdir())
    done = subprocess.run([shutil.which("make"), "demo"], cwd=clone, capture_output=True,
                          text=True, env={"PATH": str(tmp_path / "bin"), "HOME": str(tmp_path)})
    assert done.returncode != 0
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert "needs Python 3.11 (python3 is 3.12)" in lines[0]
    assert "python3.11-venv" in lines[0]
    assert sorted(p.name for p in clone.iterdir()) == before  # no .venv, nothing else


def test_find_python_takes_python3_11_when_python3_is_another_version(tmp_path):
    folder = tmp_path / "bin"
    fake_python(folder, "python3", "3.12")
    (folder / "python3.11").symlink_to(sys.executable)  # a real 3.11, with venv
    done = subprocess.run([str(ROOT / "tools/find-python")], capture_output=True, text=True,
                          env={"PATH": str(folder)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(folder / "python3.11")


def test_find_python_takes_the_one_named(tmp_path):
    done = subprocess.run([str(ROOT / "tools/find-python"), sys.executable],
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert done.stdout.strip() == sys.executable
    fake_python(tmp_path, "python3.12", "3.12")
    refused = subprocess.run([str(ROOT / "tools/find-python"), str(tmp_path / "python3.12")],
                             capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert refused.returncode == 1 and "python3.12 is 3.12" in refused.stderr


# -- the demos ---------------------------------------------------------------------------

def within(given: object, loaded: object) -> bool:
    """Whether ``loaded`` holds what ``given`` says (a network's keys left out take their
    defaults there)."""
    if isinstance(given, dict):
        return isinstance(loaded, dict) and all(within(value, loaded.get(key))
                                                for key, value in given.items())
    return given == loaded


@pytest.mark.parametrize("name", sorted(demo.DEMOS))
def test_each_demo_is_real_data_and_settings_the_schema_accepts(name, tmp_path):
    chosen = demo.DEMOS[name]
    exports = sorted((ROOT / chosen.source).iterdir())
    assert exports and all(path.stem.startswith("IR") for path in exports)
    params = tmp_path / "params.yaml"
    shutil.copy2(ROOT / "params.yaml", params)
    demo.apply_settings(params, chosen.settings)
    loaded = load_params(params).model_dump(mode="json", by_alias=True)
    for dotted, value in chosen.settings.items():
        section, key = dotted.split(".")
        assert loaded[section][key] == value
    # only those keys changed, and the comments that explain every setting are kept
    original = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    for section, values in original.items():
        for key, value in values.items():
            if f"{section}.{key}" not in chosen.settings:
                assert within(value, loaded[section][key]), (section, key)
    comments = [line for line in (ROOT / "params.yaml").read_text(encoding="utf-8").splitlines()
                if line.lstrip().startswith("#")]
    assert all(line in params.read_text(encoding="utf-8") for line in comments)


def test_the_tedpix_demo_runs_one_index_and_the_indices_demo_every_index():
    assert demo.DEMOS["tedpix"].settings["validate.min_usable_files"] == 1
    assert [p.name for p in (ROOT / demo.DEMOS["tedpix"].source).iterdir()] == [
        "IRX6XTPI0009.json"]
    # the 16 exports: the defaults, and every index that passes validation a target
    assert demo.DEMOS["indices"].settings == {"data.targets": "all"}


def test_a_demo_project_gets_the_code_not_the_checkouts_data_versions(tmp_path):
    project = tmp_path / "demo"
    demo.sync(project)
    copied = {p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file()}
    assert {"dvc.yaml", "params.yaml", ".dvc/config", "pipelines/data/merge.py",
            "flows/pipeline.py", "tsepipe/cli.py"} <= copied
    assert not {"dvc.lock", "data/raw.dvc"} & copied
    assert not any(name.startswith("data/examples/") for name in copied)
    # a module the checkout no longer has goes from the demo's copy too
    demo.commit(project, demo.DEMOS["indices"])
    (project / "pipelines/gone.py").write_text("", encoding="utf-8")
    run(["git", "add", "pipelines/gone.py"], project)
    demo.sync(project)
    assert not (project / "pipelines/gone.py").exists()
    assert (project / "pipelines/data/merge.py").read_bytes() == (
        ROOT / "pipelines/data/merge.py").read_bytes()


def test_a_demo_run_again_on_the_same_files_needs_no_copy(tmp_path):
    source = ROOT / demo.DEMOS["indices"].source
    raw = tmp_path / "raw"
    assert not demo.same_files(source, raw)
    shutil.copytree(source, raw)
    assert demo.same_files(source, raw)  # then a plain `tsepipe run`: nothing changed
    edited = raw / "IRX6XTPI0009.csv"
    edited.write_bytes(edited.read_bytes()[:-2])
    assert not demo.same_files(source, raw)
    shutil.copy2(source / edited.name, edited)
    (raw / "IRX6XTPI0009 (1).csv").write_bytes(edited.read_bytes())
    assert not demo.same_files(source, raw)


def test_the_licence_is_stated_once_and_shipped():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert meta["license"] == "Apache-2.0" and meta["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").split()[:4] == [
        "Apache", "License", "Version", "2.0,"]
    assert "Apache-2.0" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_ci_requires_the_browser_tests():
    assert "TSEPIPE_REQUIRE_BROWSER=1" in (ROOT / ".ci/run").read_text(encoding="utf-8")
    assert os.access(ROOT / "tools/find-python", os.X_OK)
