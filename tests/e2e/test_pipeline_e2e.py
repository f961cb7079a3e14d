"""End to end: the Prefect flow and `dvc repro` in throw-away git repos (real tools, no mocks)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from markdown_it import MarkdownIt

from pipelines.core.fileio import file_md5
from pipelines.data.dataset import read_dataset
from tests.conftest import TARGET, chromium_or_skip, copy_exports, run
from tests.reporting.test_browser import keep
from tests.support import browser

pytestmark = pytest.mark.slow


def md5s(folder: Path) -> dict[str, str]:
    return {p.name: file_md5(p) for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def isolated_prefect(tmp_path, monkeypatch):
    """No Prefect server configured: the flow must start its own ephemeral one."""
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)


HOSTILE_NAME = "<script>alert(1)</script>"
HOSTILE_STEM = "IRX6X44T0006<img src=x onerror=alert(2)>"
REPORTS = ("reports/index.html", "reports/validation/index.html", "reports/accuracy/index.html",
           "reports/accuracy/classification.html", "reports/drift/index.html",
           "reports/drift/evidently.html")


def hostile_copy(real_dir: Path, target: Path) -> Path:
    """The real files with one index named <script>..., and beside them a copy of one file
    whose stem holds an <img>: not an index id, so it is refused with a warning as the exports
    are copied in (it never reaches the data, a page or an artifact), and the 16 indices are
    read as before."""
    copy_exports(real_dir, target)
    named = target / "IRX6X27T0007.csv"
    text = named.read_bytes()[2:].decode("utf-16-le").replace("Index Group 27", HOSTILE_NAME)
    named.write_bytes(b"\xff\xfe" + text.encode("utf-16-le"))
    (target / f"{HOSTILE_STEM}.csv").write_bytes((target / "IRX6X44T0006.csv").read_bytes())
    return target


def artifact_keys(project: Path) -> set[str]:
    """Artifact keys in the ephemeral Prefect database the CLI run left in PREFECT_HOME."""
    code = ("from prefect.client.orchestration import get_client\n"
            "with get_client(sync_client=True) as c:\n"
            "    print(sorted({a.key for a in c.read_artifacts()}))")
    done = run(["python", "-c", code], project)
    return set(eval(done.stdout.strip().splitlines()[-1]))  # noqa: S307 (our own output)


def artifact_markdown(project: Path) -> list[str]:
    """Every piece of markdown the artifacts hold, as stored: a markdown artifact's text,
    a table's text cells (the Prefect UI renders each as markdown), each description."""
    code = ("import json\n"
            "from prefect.client.orchestration import get_client\n"
            "with get_client(sync_client=True) as c:\n"
            "    print(json.dumps([[a.data, a.description or ''] for a in c.read_artifacts()]))")
    done = run(["python", "-c", code], project)
    pieces = []
    for data, description in json.loads(done.stdout.strip().splitlines()[-1]):
        rows = json.loads(data) if data.startswith("[") else [{"text": data}]
        pieces += [v for row in rows for v in row.values() if isinstance(v, str)] + [description]
    return pieces


def test_real_files_through_the_flow_in_ephemeral_mode(project, real_dir, isolated_prefect,
                                                      tmp_path, monkeypatch):
    before = md5s(real_dir)
    exports = hostile_copy(real_dir, tmp_path / "exports")
    # one dirty row: a low of 1.5 times its high fails four checks (high >= low, open and
    # close within [low, high], a low within validate.max_daily_move of the close) and is
    # dropped as one row
    dirty = exports / "IRX6XAFF0005.csv"
    lines = dirty.read_bytes()[2:].decode("utf-16-le").split("\n")
    fields = lines[39].split(",")
    fields[3] = f"{float(fields[2]) * 1.5:.2f}"
    lines[39] = ",".join(fields)
    dirty.write_bytes(b"\xff\xfe" + "\n".join(lines).encode("utf-16-le"))
    done = run(["tsepipe", "run", "--raw-dir", str(exports)], project)
    assert "417 trading days" in done.stdout, done.stdout + done.stderr
    assert "warning: 1 bad row(s) dropped by validation" in done.stderr
    assert f"{HOSTILE_STEM}.csv: a file name that is not an index id" in done.stdout + done.stderr
    frame, meta = read_dataset(project / "data/processed/merged.parquet")
    assert len(frame) == 417
    assert frame["date"].iloc[0] == pd.Timestamp("2018-03-25")
    assert frame["date"].iloc[-1] == pd.Timestamp("2019-12-18")
    assert len({c.split("__")[0] for c in frame.columns[1:]}) == 16
    assert len(meta["index_names"]) == 16
    assert HOSTILE_NAME in meta["index_names"].values()
    text = (real_dir / f"{TARGET}.csv").read_bytes()[2:].decode("utf-16-le")
    file_closes = [line.split(",")[4] for line in text.splitlines()[1:]]
    assert [f"{c:.2f}" for c in frame[f"{TARGET}__close"]] == file_closes
    assert md5s(real_dir) == before  # the user's files were only read
    # versioned: raw snapshot, lock file, remote
    assert (project / "data/raw.dvc").exists()
    lock = (project / "dvc.lock").read_text()
    assert file_md5(project / "data/processed/merged.parquet") in lock
    assert any((project / "dvcstore").rglob("*")), "dvc push sent nothing to the remote"
    assert (project / "reports/validation/index.html").exists()
    # the training half: models, walk-forward predictions, leaderboard, forecast
    for name in ("lstm", "gru"):
        card = json.loads((project / f"models/{name}/card.json").read_text())
        assert card["data_version"] == file_md5(project / "data/processed/merged.parquet")
        assert [seed["seed"] for seed in card["seeds"]] == [1]  # train.seeds, every one
        assert (project / f"models/{name}/seed_1.keras").exists()
        assert card["training"]["made"].startswith("the walk-forward's last models (seeds ")
    board = json.loads((project / "reports/evaluation/leaderboard.json").read_text())
    assert {"lstm", "gru", "majority", "persistence"} <= set(board["models"])
    assert board["champion"] in board["models"]
    forecast = json.loads((project / "forecasts/latest.json").read_text())
    assert forecast["as_of"] == "2019-12-18" and forecast["next_trading_day"] == "2019-12-21"
    assert forecast["champion"] == board["champion"]
    assert "forecast for 2019-12-21" in done.stdout
    history = (project / "reports/runs.jsonl").read_text().splitlines()
    assert json.loads(history[-1])["dataset_md5"] == file_md5(
        project / "data/processed/merged.parquet")
    status = run(["dvc", "status"], project)
    assert "up to date" in status.stdout
    # the run's version is committed to git: the version files, nothing else
    committed = run(["git", "show", "--name-only", "--format=%s", "HEAD"], project).stdout
    assert committed.splitlines()[0].startswith("Version from tsepipe-train:")
    files = set(committed.split("\n", 1)[1].split())
    assert {"dvc.lock", "metrics/headline.json"} <= files, files
    assert all(name in {"dvc.lock", "data/raw.dvc", "params.yaml", "dvc.yaml"}
               or name.startswith("metrics/") for name in files), files
    # nothing changed: answered without a flow, the same summary
    again = run(["tsepipe", "run"], project)
    assert "nothing changed since the last run" in again.stdout
    assert "forecast for 2019-12-21" in again.stdout and "417 trading days" in again.stdout
    assert "Prefect" not in again.stdout + again.stderr
    assert len((project / "reports/runs.jsonl").read_text().splitlines()) == len(history)
    # the reports: all there, the hostile names escaped (or neutralised) in every one
    for page in REPORTS:
        html = (project / page).read_text(encoding="utf-8")
        assert "<script>alert(1)" not in html and "<img src=x" not in html, page
    front = (project / "reports/index.html").read_text(encoding="utf-8")
    assert "1 bad row(s) dropped" in front  # the attention badge counts rows, not checks
    assert "Bad rows dropped (1; 4 failed checks)" in front
    for page in ("reports/index.html", "reports/validation/index.html"):
        html = (project / page).read_text(encoding="utf-8")
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, page
        assert "img src=x" not in html, page  # the refused file name never reached the data
    drift_html = (project / "reports/drift/index.html").read_text(encoding="utf-8")
    assert "img src=x" not in drift_html  # the refused name never became a feature
    assert "2019-12-21" in front and forecast["champion"] in front
    accuracy = (project / "reports/accuracy/index.html").read_text(encoding="utf-8")
    assert 'id="backtest"' in accuracy and accuracy.count("<svg") == 4  # + the equity chart
    assert board["champion_reason"] in accuracy.replace("&#39;", "'")
    assert "backtest (long/flat" in front
    drift = json.loads((project / "reports/drift/drift.json").read_text())
    assert drift["n_features"] == 64 and drift["current"]["rows"] == 60  # 16 x 4 features
    assert drift["current"]["last_date"] == "2019-12-18"
    assert drift["reference"]["last_date"] < drift["current"]["first_date"]
    assert {"validation", "merge-summary", "dataset-version", "leaderboard", "forecast",
            "drift", "report"} <= artifact_keys(project)
    # the Prefect artifacts: names show as written, never as markup (CommonMark's escapes,
    # not HTML entities, which the UI shows raw); rendered as markdown renders them
    pieces = artifact_markdown(project)
    rendered = [MarkdownIt("commonmark").enable("table").render(piece) for piece in pieces]
    assert any("&lt;script&gt;alert(1)&lt;/script&gt;" in html for html in rendered)
    assert any(f"champion: {forecast['champion']} (" in html for html in rendered)
    assert any("<td>always_up</td>" in html for html in rendered)  # the report's leaderboard
    assert any(re.search(r"most drifted: IRX6X\w+__\w+ \(", html) for html in rendered)
    for piece, html in zip(pieces, rendered, strict=True):
        assert "&#" not in piece, piece[:300]
        assert "<script" not in html and "<img" not in html, html[:300]
    # every report opens in a real headless Chromium with the network off
    assert_a_failed_data_run_heads_the_front_page(project)
    record = assert_published_calls_are_scored(project, monkeypatch)
    chromium_or_skip()  # missing: fails as root (CI); otherwise skips the browser checks only
    for width in (1400, 390):  # a desktop and a phone: the call and its evidence, no overflow
        front_shot = tmp_path / f"front-page-{width}.png"
        laid_out = browser.layout(project / "reports/index.html", width, height=2400,
                                  screenshot=front_shot).check()
        shown = laid_out.rendered.check(min_text=1000)
        keep(front_shot, f"front-page-real-data-{width}.png")
        assert "TEDPIX" in shown.text and HOSTILE_NAME in shown.text  # shown as text, inert
        assert_the_call_and_its_evidence_are_shown(shown.text, record, json.loads(
            (project / "forecasts/latest.json").read_text()))
    local = [link for link in shown.links if not link.startswith("#")]
    assert len(local) >= 4  # validation, accuracy, classification, drift: all resolve
    for page in REPORTS[1:]:
        evidently = page.endswith(("classification.html", "drift/evidently.html"))
        browser.render(project / page, tmp_path / (page.replace("/", "-") + ".png")).check(
            min_text=300, allowed_hosts=["plotly.com"] if evidently else ())


def assert_a_failed_data_run_heads_the_front_page(project: Path) -> None:
    """The page a reader opens the morning after: not the last good run's "validation
    passed" but the failed run, its problems, and the last good data the forecast stands
    on; once a daily run (data, then the reports) goes through, the notice is gone."""
    target = project / f"data/raw/{TARGET}.csv"
    kept = target.read_bytes()
    forecast = json.loads((project / "forecasts/latest.json").read_text())
    target.write_bytes(kept[: len(kept) // 2 + 7])  # cut short mid-line
    failed = run(["tsepipe", "run", "--no-retrain"], project, check=False)
    assert failed.returncode == 3, failed.stdout + failed.stderr
    front = (project / "reports/index.html").read_text(encoding="utf-8")
    assert "attention: the last data run failed (BadData)" in front
    assert f"<li>{TARGET}.csv: the target index {TARGET} is unreadable</li>" in front
    assert "last good data run finished" in front and "validation <span class=\"badge " \
        "failed\">FAILED</span>" in front
    assert json.loads((project / "forecasts/latest.json").read_text()) == forecast
    target.write_bytes(kept)
    again = run(["tsepipe", "run", "--no-retrain"], project)
    assert "nothing changed since the last run" not in again.stdout
    front = (project / "reports/index.html").read_text(encoding="utf-8")
    assert "the last data run failed" not in front and "failed-run" not in front
    assert json.loads((project / "forecasts/latest.json").read_text()) == forecast


def assert_published_calls_are_scored(project: Path, monkeypatch: pytest.MonkeyPatch
                                      ) -> dict:
    """Forecasts published on each of the last days of the real data (the dataset as it
    stood that morning), then the days after them added: the front page's track record
    is the hand count of their calls against the closes that followed. The champion is
    the combination first (a promotion margin that ties every candidate: the selection
    and the models again, no walk-forward), so that its members are on the page."""
    import pyarrow.parquet as pq

    from pipelines.core.params.forecast import ForecastSection
    from pipelines.core.params.load import load_params
    from pipelines.modelling.predict import predict
    from pipelines.modelling.select import select
    from pipelines.modelling.settings import EvaluationSettings
    from pipelines.modelling.train import train
    from pipelines.reporting.accuracy import build_accuracy

    monkeypatch.chdir(project)
    params = load_params(project / "params.yaml")
    tied = EvaluationSettings.of(params).but(evaluate={"promotion_margin": 1.0})
    assert select(params.paths, tied, params.backtest, params.forecast, True).champion == (
        "mean_forecast")
    train(params.paths, params.data, tied)
    build_accuracy(params.paths, params.evaluate, None)
    # every day a call (no skill asked for, no band): the record has calls to count
    settings = ForecastSection(require_skill=False, no_call_band=0.0)
    dataset = project / "data/processed/merged.parquet"
    whole, kept = pq.read_table(dataset), dataset.read_bytes()
    published = []
    for held_back in range(20, -1, -1):  # the morning of each of the last 21 days
        if held_back:
            pq.write_table(whole.slice(0, whole.num_rows - held_back), dataset)
        else:  # today: the dataset as the run left it
            dataset.write_bytes(kept)
        result, _ = predict(params.paths, params.data, params.features, params.calendar,
                            settings, params.evaluate)
        published.append(result)
    frame = whole.to_pandas()
    day = {f"{d:%Y-%m-%d}": i for i, d in enumerate(frame["date"])}
    close = frame[f"{TARGET}__close"].to_numpy()
    # by hand: each morning's call against the next close; the last one is pending
    calls = [(f["call"], "up" if close[day[f["as_of"]] + 1] > close[day[f["as_of"]]] else "down")
             for f in published[:-1]]
    made = [(call, outcome) for call, outcome in calls if call != "no call"]
    hits = sum(call == outcome for call, outcome in made)
    # calls to count, and outcomes of both kinds (a score off by a day would show)
    assert len(made) >= 10 and {"up", "down"} <= {outcome for _, outcome in calls}, calls
    run(["tsepipe", "report"], project)
    record = json.loads((project / "forecasts/record.json").read_text())
    assert (record["calls"], record["hits"], record["pending"]) == (len(made), hits, 1)
    assert record["no_calls"] == len(calls) - len(made)
    assert record["since"] == published[0]["as_of"] and record["last"] == published[-1]["as_of"]
    front = (project / "reports/index.html").read_text(encoding="utf-8")
    card = front[front.index('id="track-record"'):front.index("</section>",
                                                               front.index('id="track-record"'))]
    assert f'<div class="big">{hits} / {len(made)}</div>' in card
    assert f"hit rate <strong>{100 * hits / len(made):.0f}&nbsp;%</strong>" in card
    assert f"{len(calls) - len(made)} no call" in card and "1 pending" in card
    listed = run(["tsepipe", "track-record"], project).stdout
    assert f"{len(made)} calls since {published[0]['as_of']}: {hits} hits" in listed
    return record


def assert_the_call_and_its_evidence_are_shown(text: str, record: dict, forecast: dict
                                               ) -> None:
    """What the front page says beside tomorrow's P(up), as a reader sees it."""
    assert "Forecast for 2019-12-21" in text
    assert ("no call" in text.split("Forecast for 2019-12-21")[1][:40]
            or "\u25b2 up" in text or "\u25bc down" in text)
    assert "P(up)" in text and "has meant: of the" in text  # what its band has meant
    assert "Base rate:" in text and "of the last 60" in text
    assert "Stale data: the dataset ends 2019-12-18" in text  # years before today
    assert f"The champion's own direction is {forecast['model_direction']}" in text
    behind = text.split("The call and the models behind it")[1].split("Track record")[0]
    assert [m["model"] for m in forecast["members"]] == ["lstm", "gru", "logistic_window"]
    for other in forecast["members"] + [forecast["best_baseline"]] * bool(
            forecast["best_baseline"]):  # each beside the call, with its P(up) and direction
        assert f"{other['model']} " in behind and f"{other['probability_up']:.3f}" in behind
        assert ("disagrees" if not other["agrees"] else "agrees") in behind
    assert f"{record['hits']} / {record['calls']}" in text and "Walk-forward test record" in text


def test_flow_publishes_artifacts_and_a_failed_run_keeps_the_last_good_dataset(
    project, small_sample_dir
):
    from prefect.client.orchestration import get_client
    from prefect.testing.utilities import prefect_test_harness

    from flows.data import data_flow

    raw = copy_exports(small_sample_dir, project / "data/raw")
    with prefect_test_harness(server_startup_timeout=None):
        state = data_flow(project_dir=str(project), push_remote=False, return_state=True)
        assert state.is_completed(), state.message
        version = state.result()
        assert version["dataset_md5"] == file_md5(project / "data/processed/merged.parquet")
        with get_client(sync_client=True) as client:
            keys = {a.key for a in client.read_artifacts()}
        assert {"validation", "merge-summary", "dataset-version"} <= keys

        good_md5 = version["dataset_md5"]
        good_lock = (project / "dvc.lock").read_text()
        target = raw / f"{TARGET}.csv"
        lines = target.read_bytes()[2:].decode("utf-16-le").split("\r\n")
        for number in range(6, 11):  # negative closes on lines 7-11: more than 1 % of 300
            fields = lines[number].split(",")
            fields[5] = "-" + fields[5]
            lines[number] = ",".join(fields)
        target.write_bytes(b"\xff\xfe" + "\r\n".join(lines).encode("utf-16-le"))
        broken_md5 = file_md5(target)

        state = data_flow(project_dir=str(project), push_remote=False, return_state=True)
        assert state.is_failed() and state.name == "Failed"  # Prefect's own, for the UI
        assert state.message.startswith("BadData: ")
        assert (f"{TARGET}.csv: lines 7, 8, 9, 10, 11, column close: price is not > 0"
                in state.message)
        assert f"{TARGET}.csv: the target index {TARGET} is invalid" in state.message
    assert file_md5(project / "data/processed/merged.parquet") == good_md5
    assert file_md5(target) == broken_md5  # left in place, untouched
    record = json.loads((project / f"data/quarantine/{TARGET}.csv.json").read_text())
    assert record["md5"] == broken_md5 and record["status"] == "invalid"
    lock = (project / "dvc.lock").read_text()
    merge_part = lambda text: text[text.index("  merge:"):]  # noqa: E731
    assert merge_part(lock) == merge_part(good_lock)


def assert_metrics_and_plots(project: Path) -> None:
    """dvc metrics show: one file, the headline (the champion, its test MCC and interval,
    the best baseline's), in 120 columns; dvc plots show: a line per model in the ROC and
    calibration plots, DVCLive's training curves per network."""
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], project).stdout)
    workspace = {path: found["data"] for path, found in shown[""]["data"].items()}
    assert list(workspace) == ["metrics/headline.json"], workspace
    headline = workspace["metrics/headline.json"]
    board = json.loads((project / "reports/evaluation/leaderboard.json").read_text())
    test = board["models"][board["champion"]]["test"]
    assert headline == {
        "champion": board["champion"], "test_mcc": round(test["mcc"], 4),
        "mcc_lo": round(test["mcc_ci"][0], 4), "mcc_hi": round(test["mcc_ci"][1], 4),
        "baseline": board["best_baseline_on_test"],
        "baseline_mcc": round(board["models"][board["best_baseline_on_test"]]["test"]["mcc"], 4)}
    text = run(["dvc", "metrics", "show"], project).stdout  # not a terminal: no wrapping
    assert len(text.splitlines()) == 2 and board["champion"] in text, text
    assert max(len(line) for line in text.splitlines()) <= 120, text
    assert (project / "forecasts/latest.json").exists()

    rendered = json.loads(run(["dvc", "plots", "show", "--json"], project).stdout)
    assert not rendered.get("errors"), rendered.get("errors")
    plots = {title: items[0]["content"] for title, items in rendered["data"].items()}
    models = {"lstm", "gru", "majority", "always_up", "persistence", "logistic",
              "logistic_window", "mean_forecast"}
    for kind in ("ROC", "Calibration", "Walk-forward accuracy"):
        spec = next(spec for title, spec in plots.items() if title.startswith(kind))
        # a line per model and revision (.dvc/plots/*lines.json): a colour per model (DVC's
        # field, or the network's folder), a dash per revision
        assert spec["encoding"]["color"]["field"] == "model", kind
        assert spec["encoding"]["strokeDash"]["field"] == "rev", kind
        lines = {row["field"] for row in spec["data"]["values"]}
        assert lines == models, kind
    roc = next(spec for title, spec in plots.items() if title.startswith("ROC"))
    assert roc["mark"]["type"] == "line" and "loess" not in json.dumps(roc)  # no smoothing
    per_model = [row for row in roc["data"]["values"] if row["field"] == "lstm"]
    assert len(per_model) == 101 and float(per_model[-1]["dvc_inferred_y_value"]) == 1.0
    for kind in ("Training loss", "Validation loss"):  # DVCLive's logs, a line per network
        spec = next(spec for title, spec in plots.items() if title.startswith(kind))
        files = {row["filename"] for row in spec["data"]["values"]}
        assert {name.split("/")[0] for name in files} == {"lstm", "gru"}, files
        assert all("/dvclive/plots/metrics/" in name for name in files)
    assert any(title.startswith("Backtest") for title in plots)


def test_dvc_repro_twice_then_push_and_pull(project):
    run(["tsepipe", "sample-data", "--days", "300"], project)
    first = run(["dvc", "repro"], project)
    for stage in ("ingest", "validate", "merge", "evaluate", "select", "train", "accuracy",
                  "predict", "drift", "report"):
        assert f"Running stage '{stage}'" in first.stdout
    second = run(["dvc", "repro"], project)
    assert "Running stage" not in second.stdout
    assert "Data and pipelines are up to date." in second.stdout
    # an edit of fit_network (pipelines/modelling/fitting.py) makes exactly the stages that
    # import it stale, evaluate and train among them; the data stages stay up to date
    fitting = project / "pipelines/modelling/fitting.py"
    source = fitting.read_text()
    fitting.write_text(source.replace("def fit_network(", "def fit_network(  # edited\n", 1))
    status = run(["dvc", "status"], project).stdout
    stale = {line.split(":")[0] for line in status.splitlines()
             if line.strip() and not line.startswith((" ", "\t"))}
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    importers = {name for name, stage in stages.items()
                 if "pipelines/modelling/fitting.py" in stage["deps"]}
    assert {"evaluate", "train"} <= importers
    assert stale == importers, status
    assert not stale & {"ingest", "validate", "merge"}, status
    fitting.write_text(source)
    assert "up to date" in run(["dvc", "status"], project).stdout
    assert_metrics_and_plots(project)

    experiment = run(["dvc", "exp", "run", "-S", "evaluate.refit_every=40"], project)
    assert "Running stage 'evaluate'" in experiment.stdout
    assert "Running stage 'merge'" not in experiment.stdout  # only what the change touches
    # the champion rule, a combination of evaluated members, the calibration: no refit, the
    # selection and what follows it only (benchmarks/champion_rule.py times it on the demo)
    changes = ("evaluate.promotion_margin=0", "forecast.calibration=isotonic",
               "+evaluate.combinations.pair=[lstm,logistic]")  # a new pair of evaluated members
    rerun = run(["dvc", "exp", "run", *[arg for c in changes for arg in ("-S", c)]], project)
    ran = {line.split("'")[1] for line in rerun.stdout.splitlines()
           if line.startswith("Running stage '")}
    assert ran == {"select", "train", "accuracy", "predict", "drift", "report"}, ran
    assert {"evaluate.promotion_margin", "forecast.calibration", "evaluate.combinations"} <= (
        set(stages["select"]["params"]))
    board = json.loads((project / "reports/evaluation/leaderboard.json").read_text())
    assert board["models"]["pair"]["members"] == ["lstm", "logistic"]
    assert board["promotion_margin"] == 0
    assert board["calibration"]["setting"] == "isotonic"
    shown = json.loads(run(["dvc", "exp", "show", "--json"], project).stdout)
    assert any(exp.get("experiments") for exp in shown), "no experiment recorded"

    dataset = project / "data/processed/merged.parquet"
    dataset_md5 = file_md5(dataset)
    run(["dvc", "push"], project)
    shutil.rmtree(project / ".dvc/cache")
    shutil.rmtree(project / "data/processed")
    shutil.rmtree(project / "data/interim")
    run(["dvc", "pull"], project)
    assert file_md5(dataset) == dataset_md5
    assert "up to date" in run(["dvc", "status"], project).stdout
    assert os.path.isdir(project / "data/interim/tables")
