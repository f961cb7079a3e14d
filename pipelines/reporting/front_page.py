"""The front page a reviewer opens first: ``reports/index.html``.

``front_page`` writes tomorrow's call (or "no call" and why) with what its probability has
meant, the base rates, the members' and the best baseline's forecasts, the track record of
the published calls beside the walk-forward's, data health, drift, models, versions
(``pipelines.core.provenance``) and links to every detailed report, from the stages' JSON
outputs: the validation and merge summaries, the leaderboard, the drift summary, the
forecast and its track record, and the accuracy stage's ``accuracy.json``
(``pipelines.reporting.accuracy``, whose pages are redrawn only when the evaluation
changes). With several targets it opens with tomorrow's call for each index
(``pipelines.reporting.targets_table``).

The page is a Jinja2 template with autoescaping (index names and file names are
untrusted), carries its own CSS and requests nothing from any other host. It names each
index as TSETMC does, with the ISIN, and writes every time in Tehran time, the zone said
(``pipelines.core.display``); its header names the champion and the dataset.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pipelines.core import provenance
from pipelines.core.display import index_html, index_label, index_name, tehran_time
from pipelines.core.errors import DataError, printable
from pipelines.core.fileio import file_md5, read_jsonl
from pipelines.core.html import data_version, generated, header, model_version, render
from pipelines.core.params.paths import Paths
from pipelines.modelling.features import describe
from pipelines.modelling.leaderboard import Leaderboard, model_cards, score
from pipelines.reporting import targets_table
from pipelines.reporting.call_text import agreement, opinions, the_call
from pipelines.reporting.calls_chart import calls_chart
from pipelines.reporting.evidently_pages import ranked_drifted


def _read_json(path: Path | str) -> dict[str, Any]:
    """A stage's JSON summary; a damaged one (a cut file, an edit) is a DataError of one
    line naming it and the way back."""
    try:
        read = json.loads(Path(path).read_text(encoding="utf-8", errors="replace"))
    except ValueError:  # not JSON, cut short
        read = None
    if not isinstance(read, dict):
        raise DataError(f"{printable(path)}: damaged, not a JSON object; run the stage that "
                        f"writes it again (dvc repro), or dvc checkout {printable(path)}")
    return read


def _names(page: Path, merge: dict[str, Any], validation: dict[str, Any],
           champion_record: dict[str, Any] | None) -> dict[str, Any]:
    """The page's header (what it shows: the call for the target index; the champion; the
    dataset; no way back, it is the front page) and each index's name as TSETMC gives it,
    with the ISIN (``pipelines.core.display``), escaped for the template."""
    names = {i["index_id"]: index_html(i["index_id"], i["index_name"]) for i in merge["indices"]}
    files = validation["files"]
    target = merge.get("target_index") or validation.get("target_index")
    what = (f"tomorrow's call for {index_label(target, _given(target, merge))} and the "
            "evidence behind it" if target else "tomorrow's call and the evidence behind it")
    return {"header": header(page, None, what, model=model_version(champion_record),
                             data=data_version(merge)),
            "target_label": index_html(target, _given(target, merge)) if target else None,
            "target_id": target, "index_names": names,
            "index_labels": {f["index_id"]: index_html(f["index_id"], f["index_name"])
                             for f in files if f.get("index_id")} | names,
            "names_in_files": {  # the name a file gives, where it says more than the label
                f["index_id"]: f["index_name"] for f in files if f.get("index_id")
                and f.get("index_name") not in (None, "", f["index_id"],
                                                index_name(f["index_id"]))}}


def _times(last_data_run: str | None, failed_run: dict[str, Any] | None) -> dict[str, Any]:
    """The page's times in Tehran time, the zone said: when it was written, when the last
    (good) data run finished, when the failed one did."""
    stamp = generated()
    return {"generated": stamp, "generated_at": tehran_time(stamp["utc"]),
            "last_data_run": tehran_time(last_data_run),
            "failed_at": tehran_time((failed_run or {}).get("finished"))}


def _given(index_id: str, merge: dict[str, Any]) -> str | None:
    """The name the index's file gave it, as the merge summary kept it."""
    return next((i["index_name"] for i in merge.get("indices", [])
                 if i["index_id"] == index_id), None)


def _relative(target: Path, page: Path) -> str:
    return Path(os.path.relpath(target, page.parent)).as_posix()


def _tomorrow(found: targets_table.Tomorrow | None) -> dict[str, Any]:
    """The "Tomorrow, index by index" section's context: the rows, their cells as the
    Prefect artifact shows them, the pooled figures, the adjustment in words."""
    if found is None:
        return {"tomorrow": None}
    return {"tomorrow": found, "tomorrow_cells": targets_table.plain_rows(found.rows),
            "tomorrow_pooled": targets_table.pooled_lines(found),
            "tomorrow_pooled_over": targets_table.pooled_over(found),
            "tomorrow_adjusted": targets_table.adjustment_text(found)}


def front_page(out: Path | str, *, validation: dict[str, Any], merge: dict[str, Any],
               board: Leaderboard, drift: dict[str, Any], forecast: dict[str, Any],
               cards: dict[str, dict[str, Any]], accuracy: dict[str, Any],
               links: dict[str, Path], raw_md5: str | None = None,
               git_commit: str | None = None, last_data_run: str | None = None,
               failed_run: dict[str, Any] | None = None, record: dict[str, Any] | None = None,
               champion_record: dict[str, Any] | None = None,
               tomorrow: targets_table.Tomorrow | None = None) -> Path:
    """Write the front page ``out`` from the stages' JSON outputs (all strings escaped);
    ``failed_run``: the run log's last record when that data run failed (said first);
    ``record``: the published forecasts' track record (``track_record.summarise``);
    ``champion_record``: ``models/champion.json``, for the header (``_names``);
    ``tomorrow``: every target's call, the section it opens with (``targets_table``)."""
    page = Path(out)
    champion, best = board.champion, board.best_baseline_on_test
    champion_row, best_row = ({r["model"]: r for r in accuracy["leaderboard"]}[name]
                              for name in (champion, best))
    drifted = [(f["feature"], drift["features"][f["feature"]])
               for f in ranked_drifted(drift["features"])]
    files = validation["files"]
    attention = []
    if failed_run:
        attention.append(f"the last data run failed ({failed_run['failed']})")
    if not validation["passed"]:
        attention.append("validation failed")
    if validation["files_quarantined"]:
        attention.append(f"{validation['files_quarantined']} file(s) quarantined")
    excluded = [i for i in merge["indices"] if not i["included"]]
    if excluded:
        attention.append(f"{len(excluded)} index(es) left out of the merge")
    dropped_rows = [{"file": f["file"], "unit": f.get("unit", "line")} | row
                    for f in files if f["usable"] for row in f.get("dropped_rows", [])]
    if dropped_rows:  # a row per failed check; a row failing three checks is one row
        attention.append(f"{validation['rows_dropped']} bad row(s) dropped")
    if drift["dataset_drift"]:
        attention.append("data drift")
    stale = (forecast.get("staleness") or {})
    if stale.get("stale"):
        attention.append(f"stale data ({stale['trading_days']:,} trading days old)")
    if forecast.get("note"):
        attention.append(f"{forecast['champion']} forecasts in place of {champion}")
    if board.models[champion].kind == "baseline":
        attention.append(f"no network beats the best baseline: {champion} is the champion")
    elif score(champion_row["mcc"]) < score(best_row["mcc"]):
        attention.append(f"the champion scores below {best} on the test days")
    return render("index.html", page, forecast=forecast, validation=validation, merge=merge,
        **_names(page, merge, validation, champion_record),
        files=files, board=board, drift=drift, drifted=drifted[:10],
        champion=champion_row, best=best_row, leaderboard=accuracy["leaderboard"], cards=cards,
        attention=attention, links={k: _relative(v, page) for k, v in links.items()},
        versions=provenance.package_versions(), raw_md5=raw_md5, git_commit=git_commit,
        **_times(last_data_run, failed_run), failed_run=failed_run,
        excluded=excluded, dropped_rows=dropped_rows, backtest=board.backtest,
        drift_kinds=describe(list(drift["features"])), call=the_call(forecast),
        stale=stale if stale.get("stale") else None, band=forecast.get("band"),
        rates=forecast.get("base_rate"), opinions=opinions(forecast),
        agreement=agreement(forecast), rule=forecast.get("rule") or {},
        record=record, recent=(record or {}).get("recent", []),
        calls_chart=calls_chart((record or {}).get("recent", [])), **_tomorrow(tomorrow),
    )


def build_reports(paths: Paths) -> dict[str, Path]:
    """The report stage: the front page, linking every detailed page."""
    board = Leaderboard.read(paths.leaderboard)
    accuracy = _read_json(paths.accuracy_summary)
    if accuracy.get("leaderboard_md5") != file_md5(paths.leaderboard):
        raise DataError(f"{paths.accuracy_summary}: drawn from another leaderboard than "
                        f"{paths.leaderboard}; run tsepipe accuracy (or dvc repro) first")
    raw_md5 = provenance.snapshot_md5(paths.raw_dvc)
    runs = read_jsonl(paths.run_log)  # a published version, or a failed run's record
    failed_run = runs[-1] if runs and runs[-1].get("failed") else None
    last_good = next((run for run in reversed(runs) if not run.get("failed")), {})
    links = {"validation": paths.validation_page, "accuracy": paths.accuracy_page,
             "classification": paths.classification_page, "drift": paths.drift_page}
    front_page(paths.front_page, validation=_read_json(paths.validation_summary),
               merge=_read_json(paths.merge_summary), board=board,
               drift=_read_json(paths.drift_summary),
               forecast=_read_json(paths.forecast), cards=model_cards(paths.models_dir),
               accuracy=accuracy, links=links, raw_md5=raw_md5,
               git_commit=provenance.git_commit(), last_data_run=last_good.get("finished"),
               failed_run=failed_run, record=_read_json(paths.track_record)
               if paths.track_record.exists() else None,
               champion_record=_read_json(paths.champion_record)
               if paths.champion_record.exists() else None,
               tomorrow=targets_table.read_tomorrow(paths))
    return {"front_page": Path(paths.front_page), **links}
