"""dvc.yaml lists each stage's import closure as its code dependencies (pipelines.ops.stagedeps)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

from pipelines.ops import stagedeps

ROOT = Path(__file__).resolve().parents[2]


def test_every_stage_lists_exactly_the_modules_it_imports():
    assert stagedeps.disagreements(ROOT / "dvc.yaml") == {}


def test_a_module_missing_from_a_stage_is_named(tmp_path):
    config = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    deps = config["stages"]["evaluate"]["deps"]
    deps.remove("pipelines/modelling/fitting.py")  # where fit_network lives
    # not imported by train
    config["stages"]["train"]["deps"].append("pipelines/reporting/front_page.py")
    changed = tmp_path / "dvc.yaml"
    changed.write_text(yaml.safe_dump(config, sort_keys=False))
    found = stagedeps.disagreements(changed)
    assert found["evaluate"] == {"missing": ["pipelines/modelling/fitting.py"], "extra": []}
    assert found["train"] == {"missing": [], "extra": ["pipelines/reporting/front_page.py"]}
    assert set(found) == {"evaluate", "train"}


def test_imports_inside_functions_count():
    # predict imports fitting and baselines inside forecast(), not at module level
    assert {"modelling.fitting", "modelling.baselines", "modelling.forecaster"} <= (
        stagedeps.import_closure("modelling.predict"))
    assert "modelling.fitting" in stagedeps.import_closure("modelling.train")
    assert "pipelines/modelling/fitting.py" in stagedeps.code_deps("evaluate")
    # the CLI (tsepipe/cli.py) sits above the package: no stage depends on it (docstring)
    assert not any("cli" in dep for dep in stagedeps.code_deps("report"))


def test_the_templates_a_stage_renders_count():
    # validate renders validation.html, which extends base.html: both are its code
    assert {"pipelines/core/templates/validation.html",
            "pipelines/core/templates/base.html"} <= set(stagedeps.code_deps("validate"))
    assert "pipelines/core/templates/accuracy.html" in stagedeps.code_deps("accuracy")
    # the front page's stage does not depend on the accuracy page's template, nor on the
    # accuracy page's code (charts, metrics, Evidently's classification page)
    report = stagedeps.code_deps("report")
    assert "pipelines/core/templates/index.html" in report
    assert not {"pipelines/core/templates/accuracy.html", "pipelines/reporting/accuracy.py",
                "pipelines/modelling/metrics.py", "pipelines/reporting/charts.py"} & set(report)
    assert "pipelines/core/templates/index.html" not in stagedeps.code_deps("drift")


def test_the_closure_follows_imports_through_other_modules(tmp_path, monkeypatch):
    package = tmp_path / "pipelines"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pipelines import b\n")
    (package / "b.py").write_text("def f():\n    from pipelines.c import g\n")
    (package / "c.py").write_text("import os\nfrom . import d\n")
    (package / "d.py").write_text("from pipelines.sub import f\n")
    (package / "e.py").write_text("")
    (package / "sub").mkdir()
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "f.py").write_text("from .g import h\n")
    (package / "sub" / "g.py").write_text("")
    monkeypatch.setattr(stagedeps, "PACKAGE_DIR", package)
    stagedeps._tree.cache_clear()
    stagedeps.direct_imports.cache_clear()
    try:
        assert stagedeps.import_closure("a") == {"a", "b", "c", "d", "sub.f", "sub.g"}
        # importing pipelines.sub.f runs pipelines/sub/__init__.py: a dependency too
        assert stagedeps._packages("sub.f") == {"sub.__init__"}
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
    models = sorted(networks + params["evaluate"]["baselines"]
                    + list(params["evaluate"]["combinations"]))
    for kind in ("rolling", "ROC", "Calibration"):  # a column per model
        columns = next(spec["y"] for title, spec in plots.items() if kind in title)
        assert sorted(next(iter(columns.values()))) == models, kind
    for key, name in (("loss", "Training loss"), ("val_loss", "Validation loss")):
        curves = next(spec["y"] for title, spec in plots.items() if title.startswith(name))
        assert curves == {f"${{paths.models_dir}}/{name}/${{files.training_log}}/plots/metrics/"
                          f"{key}.tsv": key for name in networks}, key
    assert "metrics" not in dvc  # DVCLive's metrics.json: plots only (one metrics file)


def test_every_file_name_is_written_once():
    """The names of the files in the output folders live in pipelines/core/files.yaml:
    dvc.yaml reaches them as ${files.NAME}, the code through pipelines.core.params.paths;
    neither writes one out (a template's name in render() is a template, not an output)."""
    from pipelines.core.params.paths import FILES

    text = (ROOT / "dvc.yaml").read_text(encoding="utf-8")
    assert "pipelines/core/files.yaml" in yaml.safe_load(text)["vars"]
    outputs = "\n".join(line for line in text.splitlines()  # not the code deps (templates)
                        if "pipelines/" not in line)
    # inside DVCLive's folder the names are DVCLive's (plots/metrics/NAME.tsv, metrics.json)
    outputs = re.sub(r"\$\{files\.training_log\}/\S+", "", outputs)
    written = [name for name in FILES.values() if re.search(rf"/{re.escape(name)}\b", outputs)]
    assert written == []
    found = []
    for folder in ("pipelines", "flows", "tsepipe"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            templates = {id(node.args[0]) for node in ast.walk(tree)
                         if isinstance(node, ast.Call) and node.args
                         and getattr(node.func, "id", None) == "render"}
            found += [f"{path.relative_to(ROOT)}:{node.lineno} {node.value}"
                      for node in ast.walk(tree)
                      if isinstance(node, ast.Constant) and node.value in FILES.values()
                      and id(node) not in templates]
    assert found == []


def test_a_section_schema_is_code_of_the_stages_that_read_it_only():
    """Editing the remote's (or the sweep's) schema leaves every stage up to date; the
    merge's marks merge changed, not evaluate or train."""
    deps = {stage: stagedeps.code_deps(stage) for stage in stagedeps.STAGE_MODULES}
    for section in ("remote", "fetch", "sweep", "sample"):
        assert not [stage for stage, files in deps.items()
                    if f"pipelines/core/params/{section}.py" in files], section
    merge = [stage for stage, files in deps.items() if "pipelines/core/params/merge.py" in files]
    assert merge == ["merge"]
    assert "pipelines/core/params/load.py" not in {f for files in deps.values() for f in files}


def test_imports_for_annotations_only_are_no_dependency(tmp_path, monkeypatch):
    package = tmp_path / "pipelines"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from typing import TYPE_CHECKING\nimport pipelines.b\n"
                                  "if TYPE_CHECKING:\n    from pipelines.c import C\n"
                                  "else:\n    from pipelines.d import D\n")
    for name in "bcd":
        (package / f"{name}.py").write_text("")
    monkeypatch.setattr(stagedeps, "PACKAGE_DIR", package)
    stagedeps._tree.cache_clear()
    stagedeps.direct_imports.cache_clear()
    try:
        assert stagedeps.import_closure("a") == {"a", "b", "d"}
    finally:
        stagedeps._tree.cache_clear()
        stagedeps.direct_imports.cache_clear()


def test_the_model_artifact_is_the_models_folder():
    """dvc.yaml's artifacts: (not interpolated by DVC) name params.yaml's paths.models_dir."""
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    artifact = dvc["artifacts"]["tedpix-models"]
    assert artifact["path"] == params["paths"]["models_dir"]
    assert artifact["type"] == "model" and artifact["desc"]
