"""Every damaged or foreign file a command reads is one ``error:`` line naming the file and
the way back, with its exit status and no traceback; a damaged line of the runs record is
skipped with one warning. Real files, the real ``tsepipe`` command."""

from __future__ import annotations

import json
import resource
import subprocess
import time
from pathlib import Path

import pandas as pd

from pipelines.core.errors import LINE_LIMIT
from pipelines.core.fileio import append_jsonl, read_jsonl
from tests.conftest import BIN, ROOT, env, run


def _lines(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def _one_error(done: subprocess.CompletedProcess, code: int = 3) -> str:
    """The one ``error:`` line of a command that failed with ``code``, and no traceback."""
    output = done.stdout + done.stderr
    assert done.returncode == code, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    errors = _lines(done.stderr, "error: ")
    assert len(errors) == 1, output[-3000:]
    return errors[0]


def _limited_memory() -> None:
    """``preexec_fn``: at most 2 GB of address space (a YAML bomb expanded takes more)."""
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


BOMB = "\n".join(["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"] + [
    f"{name}: &{name} [{', '.join([f'*{before}'] * 10)}]"
    for before, name in zip("abcdefghi", "bcdefghij", strict=True)]) + "\n"  # 10^10 strings


def test_a_params_file_that_is_not_utf8_a_folder_a_bomb_or_wrong_is_one_line(tmp_path):
    text = (ROOT / "params.yaml").read_text(encoding="utf-8")
    cases = {  # file name -> (its content, or None for a folder; what the line says)
        "utf16.yaml": (text.encode("utf-16"), "saved as UTF-16; save it as UTF-8"),
        "utf16-no-bom.yaml": (text.encode("utf-16-le"), "saved as UTF-16; save it as UTF-8"),
        "folder.yaml": (None, "a folder, not the parameters file (git checkout -- "
                              "params.yaml restores"),
        "list.yaml": (b"- evaluate\n- train\n", "expected a mapping of sections"),
        "junk.yaml": (bytes(range(128, 256)) * 8, "not UTF-8 text (byte 0x80 at offset 0); "
                                                  "save it as UTF-8 text"),
        "bomb.yaml": (BOMB.encode(), "line 2, column 8: an alias (*a) is not allowed"),
        "deep.yaml": (b"a: " + b"[" * 100_000, "nested too deeply"),
        "lstn.yaml": (text.replace("mean_forecast:\n    - lstm\n", "mean_forecast:\n    - lstn\n")
                      .encode(),
                      "evaluate.combinations.mean_forecast: lstn: not a network of "
                      "train.models or a baseline (known: lstm, gru, majority,"),
        "markup.yaml": (text.replace("\n    gru:\n", "\n    \"g' onmouseover='alert(4)\":\n")
                        .encode(),
                        "train.models.\"g' onmouseover='alert(4)\": a network's "
                        "name is a letter, then up to 39 letters"),
    }
    assert len(BOMB) < 1100 and "mean_forecast:\n    - lstm\n" in text
    assert "\n    gru:\n" in text
    for name, (content, said) in cases.items():
        path = tmp_path / name
        if content is None:
            path.mkdir()
        else:
            path.write_bytes(content)
        started = time.monotonic()
        done = subprocess.run([str(BIN / "tsepipe"), "params", "--params", name],
                              cwd=tmp_path, env=env(), capture_output=True, text=True,
                              timeout=120, preexec_fn=_limited_memory)
        line = _one_error(done)
        assert line.startswith(f"error: {name}: ") and said in line, (name, line)
        assert time.monotonic() - started < 30, name  # the bomb: refused, not expanded
    # a long value or key is shown clipped, with its length: a line of a few hundred
    # characters, however long what it quotes
    long = tmp_path / "long.yaml"
    long.write_text(text.replace("refit_every: 60", f"refit_every: {'x' * 100_000}")
                    + f"? {'k' * 100_000}\n: 1\n", encoding="utf-8")  # a long section name
    done = run([str(BIN / "tsepipe"), "params", "--params", long.name], tmp_path, check=False)
    assert done.returncode == 3 and "Traceback" not in done.stderr
    errors = _lines(done.stderr, "error: ")
    assert len(errors) == 2 and all(len(line) < LINE_LIMIT + 40 for line in errors), errors
    assert "refit_every: Input should be a valid integer (got 'xxx" in errors[0], errors[0]
    assert errors[1].endswith("... (100000 characters): unknown section"), errors[1]


def _foreign_table(path: Path) -> None:
    pd.DataFrame({"day": ["2019-01-01"], "price": [1.0]}).to_parquet(path)


def test_a_merged_dataset_that_is_another_table_is_one_line_from_every_reader(
        trained_project):
    project = trained_project
    dataset = project / "data/processed/merged.parquet"
    _foreign_table(dataset)
    way_back = ("rebuild it with tsepipe merge, or dvc checkout "
                "data/processed/merged.parquet")
    for command in ("evaluate", "train", "predict", "drift", "track-record"):
        line = _one_error(run([str(BIN / "tsepipe"), command], project, check=False))
        assert line == ("error: data/processed/merged.parquet: not tsepipe's merged dataset "
                        f"(no column date, IRX6XTPI0009__close); {way_back}"), (command, line)
    dataset.write_text("date,close\n2019-01-01,1\n")  # not Parquet at all
    line = _one_error(run([str(BIN / "tsepipe"), "predict"], project, check=False))
    assert line.startswith("error: data/processed/merged.parquet: the merged dataset is "
                           "damaged (") and line.endswith(way_back), line
    assert "magic bytes" in line


def test_a_forecast_log_cut_short_or_foreign_is_refused_and_kept(trained_project):
    """predict refuses a damaged log (its good rows are not dropped for a fresh one) and
    writes nothing; so does track-record; a damaged track record stops the front page."""
    project = trained_project
    log, latest = project / "forecasts/log.parquet", project / "forecasts/latest.json"
    whole, published = log.read_bytes(), latest.read_bytes()
    way_back = ("restore it with dvc checkout --force forecasts/log.parquet (DVC sees it "
                "changed), or move it aside to start a new log (tsepipe predict)")
    log.write_bytes(whole[: len(whole) // 2])
    cut = log.read_bytes()
    for command in ("predict", "track-record"):
        line = _one_error(run([str(BIN / "tsepipe"), command], project, check=False))
        assert line.startswith("error: forecasts/log.parquet: the forecast log is damaged (")
        assert line.endswith(way_back), line
    assert log.read_bytes() == cut and latest.read_bytes() == published  # nothing written

    _foreign_table(log)
    line = _one_error(run([str(BIN / "tsepipe"), "track-record"], project, check=False))
    assert line == ("error: forecasts/log.parquet: not tsepipe's forecast log (no column "
                    f"as_of, call); {way_back}")
    log.write_bytes(whole)
    frame = pd.read_parquet(log)
    frame.loc[0, "call"] = "sideways"
    frame.to_parquet(log)
    line = _one_error(run([str(BIN / "tsepipe"), "predict"], project, check=False))
    assert line.startswith("error: forecasts/log.parquet: row 1: forecast log, as_of ")
    assert "expected a call of up, down, no call, got 'sideways'" in line and \
        line.endswith(way_back), line

    log.write_bytes(whole)
    record = project / "forecasts/record.json"
    record.write_text(record.read_text()[:100])
    line = _one_error(run([str(BIN / "tsepipe"), "report"], project, check=False))
    assert line == ("error: forecasts/record.json: damaged, not a JSON object; run the stage "
                    "that writes it again (dvc repro), or dvc checkout forecasts/record.json")


def test_a_runs_record_with_a_half_written_line_is_read_with_one_warning(trained_project,
                                                                        tmp_path):
    project = trained_project
    runs = project / "reports/runs.jsonl"
    records = read_jsonl(runs)
    assert records
    # a run killed while appending: its record cut short, with no newline after it
    runs.write_text(runs.read_text() + "not json\n" + json.dumps({"failed": True})[:9])
    for command in (["report"], ["run", "--no-push"]):  # the front page; a run's own check
        done = subprocess.run([str(BIN / "tsepipe"), *command], cwd=project,
                              env=env() | {"PREFECT_HOME": str(tmp_path / "prefect")},
                              capture_output=True, text=True, timeout=300)
        output = done.stdout + done.stderr
        assert done.returncode == 0 and "Traceback" not in output, output[-3000:]
        first = len(records) + 1
        warnings = [line for line in _lines(done.stderr, "warning: ") if "runs.jsonl" in line]
        assert len(warnings) == 1, output[-3000:]
        assert warnings[0].endswith(
            f"reports/runs.jsonl: lines {first}, {first + 1}: not JSON records (a run stopped "
            "while appending, or an edit); skipped"), warnings[0]
    # the run's record (after the cut line) and the next start lines of their own
    append_jsonl(runs, {"finished": "now"})
    assert runs.read_text().splitlines()[-1] == '{"finished": "now"}'
    now = read_jsonl(runs)
    assert now[:len(records)] == records and len(now) == len(records) + 2
    assert now[-2]["dataset"] == "data/processed/merged.parquet"


def test_train_writes_the_models_folder_whole(trained_project):
    """What train did not write (a temporary file a killed writer left, a stray file) is
    gone after it, so DVC does not version it with the models."""
    project = trained_project
    planted = [project / "models/gru/.seed_1.keras.1234.tmp", project / "models/gru/junk.txt"]
    for path in planted:
        path.write_text("planted")
    run([str(BIN / "tsepipe"), "train"], project)
    assert not any(path.exists() for path in planted)
    assert (project / "models/gru/seed_1.keras").is_file()
    assert not list((project / "models").glob(".models*"))
    assert not [path for path in project.glob(".models*")]


def test_the_daily_path_forecasts_with_the_models_as_trained(trained_project):
    """``tsepipe run --no-retrain`` does not train: a file put into models/ since (a
    temporary file, a stray copy) or a changed one would be read by predict and versioned
    in its dependencies. ``restore_models`` (the report flow's first task) moves them
    aside, says so in one warning, and checks the folder out as train wrote it."""
    from flows.stages import restore_models

    project = trained_project
    assert restore_models(project) == []  # as trained: nothing to say
    scaler = project / "models/gru/scaler.json"
    trained = scaler.read_bytes()
    planted = [project / "models/gru/.seed_1.keras.1234.tmp", project / "models/gru/junk.txt"]
    for path in planted:
        path.write_text("planted")
    scaler.write_text("{}")
    (warning,) = restore_models(project)
    assert warning.startswith("models/ held 3 file(s) train did not write or that changed")
    assert "models/gru/junk.txt" in warning and "checked out as train wrote it" in warning
    assert not any(path.exists() for path in planted) and scaler.read_bytes() == trained
    aside = next((project / ".dvc/tmp/aside").glob("*/models/gru/junk.txt"))
    assert aside.read_text() == "planted"
    status = run([str(BIN / "dvc"), "status", "train"], project)
    assert "up to date" in status.stdout + status.stderr
