"""Versions compared with DVC's own commands, as a team that knows DVC would.

Real ``tsepipe run`` (ephemeral Prefect), real DVC and git, in a copy of the project: two
versions made with different ``params.yaml``; ``dvc params diff`` and ``dvc metrics diff``
between their commits; an experiment (``dvc exp run -S``, ``dvc exp apply``) committed by
the next ``tsepipe run``; the registered models fetched with ``dvc artifacts get`` in a
fresh clone from the local DVC remote, where ``tsepipe predict`` gives the published
probability again.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import BIN, ROOT, chromium_or_skip, isolated, run
from tests.e2e.test_pipeline_e2e import assert_metrics_and_plots
from tests.support import browser

pytestmark = pytest.mark.slow


def tsepipe_run(project: Path, tmp_path: Path, *args: str) -> str:
    done = subprocess.run([str(BIN / "tsepipe"), "run", "--no-push", *args], cwd=project,
                          env=isolated(tmp_path), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def head(project: Path) -> str:
    return run(["git", "rev-parse", "HEAD"], project).stdout.strip()


def uncommitted(project: Path) -> str:
    return run(["git", "status", "--porcelain", "--", "params.yaml", "dvc.yaml", "dvc.lock",
                "data/raw.dvc", "metrics"], project).stdout.strip()


# TensorFlow's, Keras's and Dask's start-up lines (issue 32): none in a run's log
NOISE = ("absl::InitializeLog", "oneDNN custom operations", "cpu_feature_guard",
         "rebuild TensorFlow", "Unable to register cu", "computation placer", "TF-TRT",
         "Skipping variable loading for optimizer", "is already in use", "Dask dashboard")


def assert_quiet(output: str) -> None:
    assert not [line for line in output.splitlines()
                if any(noise in line for noise in NOISE)], output


def assert_plots_page(project: Path, *revisions: str) -> set[str]:
    """``dvc plots show`` (``dvc plots diff REVISIONS``) writes dvc_plots/index.html from the
    project's template (.dvc/config plots.html_template, Vega bundled): in Chromium with the
    network off, every plot of dvc.yaml draws (an SVG each, no request), names its axes as
    dvc.yaml does, and the ROC has a line per model and revision; the project's header
    links back to the front page. Returns the revisions the legend names."""
    chromium_or_skip()
    run(["dvc", "plots", "diff", *revisions] if revisions else ["dvc", "plots", "show"],
        project)
    page = project / "dvc_plots/index.html"
    shown = browser.render(page, budget_ms=20000, timeout=120).check()  # no request or dead link
    dom = shown.dom
    plots = [spec for entry in yaml.safe_load((project / "dvc.yaml").read_text())["plots"]
             for spec in entry.values()]
    assert dom.count('data-drawn="yes"') == len(plots) and 'data-drawn="no"' not in dom, \
        re.findall(r'class="plot-error">([^<]*)', dom)
    assert len(re.findall(r'<svg[^>]*class="marks"', dom)) == len(plots)
    for spec in plots:  # both axes named, as dvc.yaml says
        for label in (spec["x_label"], spec["y_label"]):
            assert f">{html.escape(label, quote=False)}</text>" in dom, label
    params = yaml.safe_load((project / "params.yaml").read_text())
    home = re.search(r'<header class="tsepipe".*?<a class="home" href="([^"]+)"', dom, re.DOTALL)
    assert home and (page.parent / home.group(1)).resolve() == (
        project / params["paths"]["front_page"]).resolve(), home
    roc = re.findall(r'aria-label="false positive rate: [^"]*; model: ([^;"]+); '
                     r'revision: ([^;"]+)"[^>]*aria-roledescription="line mark"', dom)
    models = (list(params["train"]["models"]) + params["evaluate"]["baselines"]
              + list(params["evaluate"]["combinations"]))
    revs = {rev for _, rev in roc}
    assert sorted(roc) == sorted((model, rev) for model in models for rev in revs), roc
    return revs


def experiments_table() -> list[str]:
    """The experiments table's command, as docs/experiments.md gives it."""
    text = (ROOT / "docs/experiments.md").read_text(encoding="utf-8")
    line = next(line for line in text.splitlines() if line.startswith("dvc exp show "))
    return shlex.split(line)


def test_versions_compare_with_dvc_and_an_experiment_becomes_a_version(
        trained_sample, trained_project, tmp_path):
    project, out = trained_project, trained_sample.output  # a first tsepipe run
    assert "models registered as tedpix-models@v0.0.1" in out, out
    # what a person reads in the run's log (and in the Prefect UI)
    assert "To track the changes with git" not in out  # tsepipe commits the versions
    assert '"as_of"' not in out and '"dataset_md5"' not in out  # no JSON states
    assert "Task run 'artifact forecast'" in out and "Task run 'artifact leaderboard'" in out
    assert_quiet(out)
    first = head(project)
    assert uncommitted(project) == ""  # parameters, pipeline, locks and metrics: all in git
    status = run(["dvc", "status"], project).stdout
    assert "Data and pipelines are up to date." in status, status  # nothing missing
    assert_metrics_and_plots(project)
    assert assert_plots_page(project) == {"workspace"}

    # a second version, made with other parameters
    other = tmp_path / "other.yaml"
    params = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    refit_every = params["evaluate"]["refit_every"]
    params["evaluate"]["refit_every"] = refit_every - 40
    other.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    out = tsepipe_run(project, tmp_path, "--params", str(other))
    assert f"params.yaml: replaced by {other}" in out
    assert "models registered as tedpix-models@v0.0.2" in out, out
    assert_quiet(out)
    second = head(project)
    assert second != first and uncommitted(project) == ""

    diff = run(["dvc", "params", "diff", first, second], project).stdout
    assert len(diff.splitlines()) < 60, diff
    assert any(line.split()[:3] == ["params.yaml", "evaluate.refit_every", str(refit_every)]
               for line in diff.splitlines()), diff
    changed = run(["dvc", "metrics", "diff", first, second], project).stdout
    assert len(changed.splitlines()) < 60, changed
    assert "metrics/headline.json" in changed and "test_mcc" in changed, changed
    assert "caveat" not in changed and "features" not in changed
    assert len(assert_plots_page(project, first, second)) == 2  # what dvc exp show's plots use
    history = run([str(BIN / "tsepipe"), "history"], project).stdout.splitlines()
    assert f"evaluate.refit_every {refit_every} -> {refit_every - 40}" in history[1], history

    # an experiment of a key of select's (no walk-forward), compared as docs/experiments.md
    # says: the headline and the changed params, no dependency; applied, it becomes the
    # next version through tsepipe run
    run(["dvc", "exp", "run", "-S", "evaluate.bootstrap_samples=100"], project)
    table = run([*experiments_table(), "--csv"], project).stdout
    rows = list(csv.DictReader(io.StringIO(table)))
    header = list(rows[0])
    assert len(header) <= 25 and not [name for name in header if "/" in name], header
    assert {"champion", "test_mcc", "mcc_lo", "mcc_hi", "baseline_mcc",
            "evaluate.bootstrap_samples"} <= set(header), header
    assert {row["evaluate.bootstrap_samples"] for row in rows} == {"100", "200"}, rows
    assert all(row["champion"] and float(row["mcc_lo"]) < float(row["mcc_hi"])
               and -1 <= float(row["test_mcc"]) <= 1 for row in rows), rows
    shown = json.loads(run(["dvc", "exp", "show", "--json"], project).stdout)
    name = next(row["experiments"] for row in shown if row.get("experiments"))[0]["name"]
    run(["dvc", "exp", "apply", name], project)
    assert "params.yaml" in uncommitted(project)
    out = tsepipe_run(project, tmp_path)
    assert "version: committed" in out, out
    assert uncommitted(project) == "" and head(project) != second

    # the registered models, fetched by name in a fresh clone from the DVC remote
    run(["dvc", "push"], project)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    run(["dvc", "remote", "modify", "--local", "local", "url", str(project / "dvcstore")],
        clone)
    run(["dvc", "artifacts", "get", ".", "tedpix-models", "-o", str(tmp_path / "fetched")],
        clone)
    fetched = tmp_path / "fetched"
    champion = json.loads((fetched / "champion.json").read_text(encoding="utf-8"))
    assert champion["champion"] in json.loads(
        (project / "reports/evaluation/leaderboard.json").read_text())["models"]
    for name in ("lstm", "gru"):  # every seed of every network, as evaluated
        card = json.loads((fetched / name / "card.json").read_text(encoding="utf-8"))
        assert [entry["seed"] for entry in card["seeds"]] == [1]  # the project's train.seeds
        assert all((fetched / name / entry["file"]).is_file() for entry in card["seeds"])
    assert (fetched / "logistic_window/baseline.json").is_file()  # baselines, fitted alike

    # ... and the forecast they make there is the one published, without a refit
    run(["dvc", "pull", "data/processed/merged.parquet"], clone)
    (fetched).rename(clone / "models")
    assert_quiet(run([str(BIN / "tsepipe"), "predict"], clone).stderr)
    published, again = (json.loads((where / "forecasts/latest.json").read_text())
                        for where in (project, clone))
    assert abs(again["probability_up"] - published["probability_up"]) <= 1e-6
    assert abs(again["probability_up_raw"] - published["probability_up_raw"]) <= 1e-6
    assert (again["call"], again["champion"]) == (published["call"], published["champion"])


def test_checkout_of_a_data_only_version_leaves_that_version_alone(trained_project):
    """The trained sample's first version is the data flow's (no models, selection, drift
    or reports): checked out, the workspace holds that version only, what it lacks moved
    aside where the warning says; back at HEAD, everything returns. Without the DVC cache
    and remote: refused in one line, the workspace as it was."""
    project = trained_project
    tsepipe = str(BIN / "tsepipe")
    data_only = run(["git", "rev-parse", "HEAD~1"], project).stdout.strip()
    assert "Version from tsepipe-data" in run(["git", "log", "-1", "--format=%s", data_only],
                                              project).stdout
    done = run([tsepipe, "checkout", "HEAD~1"], project)
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1, done.stderr
    assert warnings[0].startswith("warning: moved aside to .dvc/tmp/aside/"), warnings
    aside = warnings[0].split("moved aside to ", 1)[1].split("/ ", 1)[0]
    for path in ("models", "metrics/headline.json", "reports/index.html",
                 "reports/evaluation/leaderboard.json", "reports/drift/index.html",
                 "forecasts/latest.json"):
        assert not (project / path).exists(), path
        assert (project / aside / path).exists(), path
    for path in ("data/processed/merged.parquet", "data/processed/merge_summary.json",
                 "reports/validation/index.html"):
        assert (project / path).exists(), path
    assert "Data and pipelines are up to date." not in run(["dvc", "status"], project).stdout

    # back to the latest version: every output returns from the cache
    run(["git", "checkout", "HEAD", "--", "."], project)
    run(["dvc", "checkout"], project)
    assert "Data and pipelines are up to date." in run(["dvc", "status"], project).stdout
    assert (project / "models/champion.json").exists()

    # neither the cache nor a remote has the data: one line, nothing changed
    shutil.rmtree(project / ".dvc/cache")
    (project / "data/processed/merged.parquet").unlink()
    refused = run([tsepipe, "checkout", "HEAD"], project, check=False)
    assert refused.returncode == 3, refused.stderr
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: HEAD ({head(project)[:8]}): its data are neither in the DVC "
                      "cache nor on the DVC remote (missing: data/processed/merged.parquet); "
                      "the workspace is left as it was"], refused.stderr
    assert "Traceback" not in refused.stderr
