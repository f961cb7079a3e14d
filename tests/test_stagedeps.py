"""dvc.yaml lists each stage's import closure as its code dependencies (pipelines.stagedeps)."""

from __future__ import annotations

from pathlib import Path

import yaml

from pipelines import stagedeps

ROOT = Path(__file__).resolve().parents[1]


def test_every_stage_lists_exactly_the_modules_it_imports():
    assert stagedeps.disagreements(ROOT / "dvc.yaml") == {}


def test_a_module_missing_from_a_stage_is_named(tmp_path):
    config = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    deps = config["stages"]["evaluate"]["deps"]
    deps.remove("pipelines/fitting.py")  # where fit_network lives
    config["stages"]["train"]["deps"].append("pipelines/report.py")  # not imported by train
    changed = tmp_path / "dvc.yaml"
    changed.write_text(yaml.safe_dump(config, sort_keys=False))
    found = stagedeps.disagreements(changed)
    assert found["evaluate"] == {"missing": ["pipelines/fitting.py"], "extra": []}
    assert found["train"] == {"missing": [], "extra": ["pipelines/report.py"]}
    assert set(found) == {"evaluate", "train"}


def test_imports_inside_functions_count():
    # predict imports fitting and baselines inside forecast(), not at module level
    assert {"fitting", "baselines", "champion"} <= stagedeps.import_closure("predict")
    assert "fitting" in stagedeps.import_closure("train")
    assert "pipelines/fitting.py" in stagedeps.code_deps("evaluate")
    # the CLI (tsepipe/cli.py) sits above the package: no stage depends on it (docstring)
    assert not any("cli" in dep for dep in stagedeps.code_deps("report"))


def test_the_templates_a_stage_renders_count():
    # validate renders validation.html, which extends base.html: both are its code
    assert {"pipelines/templates/validation.html", "pipelines/templates/base.html"} <= set(
        stagedeps.code_deps("validate"))
    assert "pipelines/templates/accuracy.html" in stagedeps.code_deps("accuracy")
    # the front page's stage does not depend on the accuracy page's template, nor on the
    # accuracy page's code (charts, metrics, Evidently's classification page)
    report = stagedeps.code_deps("report")
    assert "pipelines/templates/index.html" in report
    assert not {"pipelines/templates/accuracy.html", "pipelines/accuracy.py",
                "pipelines/metrics.py", "pipelines/charts.py"} & set(report)
    assert "pipelines/templates/index.html" not in stagedeps.code_deps("drift")


def test_the_closure_follows_imports_through_other_modules(tmp_path, monkeypatch):
    package = tmp_path / "pipelines"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pipelines import b\n")
    (package / "b.py").write_text("def f():\n    from pipelines.c import g\n")
    (package / "c.py").write_text("import os\nfrom . import d\n")
    (package / "d.py").write_text("")
    (package / "e.py").write_text("")
    monkeypatch.setattr(stagedeps, "PACKAGE_DIR", package)
    stagedeps._tree.cache_clear()
    stagedeps.direct_imports.cache_clear()
    try:
        assert stagedeps.import_closure("a") == {"a", "b", "c", "d"}
    finally:
        stagedeps._tree.cache_clear()
        stagedeps.direct_imports.cache_clear()


def test_the_plots_name_every_model_and_no_folder():
    """dvc.yaml's plots: folders only as ${paths...}, a column or a history per model."""
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    plots = {title: spec for entry in dvc["plots"] for title, spec in entry.items()}
    files = [file for spec in plots.values() for file in spec["y"]]
    assert all(file.startswith("${paths.") for file in files), files
    networks = list(params["train"]["models"])
    rolling = next(spec["y"] for title, spec in plots.items() if "rolling" in title)
    assert sorted(next(iter(rolling.values()))) == sorted(
        networks + params["evaluate"]["baselines"])
    curves = next(spec["y"] for title, spec in plots.items() if "Training curves" in title)
    assert sorted(curves) == sorted(f"${{paths.models_dir}}/{name}/history.csv"
                                    for name in networks)
