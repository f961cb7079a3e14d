"""Run tsepipe on the real data the repository carries, in a demo project of its own.

    python tools/demo.py tedpix    # TEDPIX 2008-2019 alone, single-index mode: demo/tedpix/
    python tools/demo.py indices   # the 16 exports of 1397-1398: demo/indices/

(``make demo`` and ``make demo-indices``.) A demo project is a git repository under
``demo/`` (ignored by this checkout's git and DVC) holding a copy of this checkout's code
and configuration, with the demo's settings written into its ``params.yaml`` and committed
there, and its own DVC remote (``demo/NAME/dvcstore``). Then ``tsepipe run --raw-dir
data/examples/...`` runs the whole pipeline in it. This checkout's ``params.yaml``,
``data/`` and git history are never touched, so a run on your own exports here keeps the
defaults. Run again, a demo brings its copy of the code up to date with this checkout
(DVC reruns only the stages an edit affects).

The README's first table shows the TEDPIX demo's result as recorded in
``docs/demo-result.json``. After each TEDPIX run the demo writes that run's result to
``demo/tedpix-result.json`` and says whether its figures are the recorded ones; it never
changes the checkout's files by itself:

    python tools/demo.py --record  # record demo/tedpix's last run, rewrite the README's table
    python tools/demo.py --readme  # rewrite the README's table from docs/demo-result.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = Path("data/examples")  # the real data in the repository (its README.md)
# Written by the demo project's own runs (its versions), never copied from the checkout.
OWN_FILES = ("dvc.lock",)
OWN_SUFFIXES = (".dvc",)
OWN_FOLDERS = ("metrics/",)  # paths.metrics_dir: the headline metrics, in each version


@dataclass(frozen=True)
class Demo:
    what: str
    source: Path  # the export files, relative to the checkout
    settings: dict[str, Any] = field(default_factory=dict)  # params.yaml keys -> values
    recorded: bool = False  # its result is the README's first table (docs/demo-result.json)


DEMOS = {
    "tedpix": Demo(
        "TEDPIX's real daily history 2008-2019 (2,679 days, TSETMC's JSON), the target alone",
        EXAMPLES / "tedpix-2008-2019",
        # one index: the set rule asks for 1 usable file, not 12 of 16
        {"validate.min_usable_files": 1},
        recorded=True,
    ),
    "indices": Demo(
        "the 16 real index exports of 1397-1398 (417 days, UTF-16, Jalali dates), every "
        "index a target",
        EXAMPLES / "tse-indices-1397-1398",
        # a call for each index that passes validation and the merge, global networks
        {"data.targets": "all"},
    ),
}


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True,
                          text=True).stdout


def project_files() -> list[str]:
    """The checkout's code and configuration: tracked or new files, not ignored ones, less
    the example data and the checkout's own data versions."""
    listed = git(ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    return sorted(name for name in listed.split("\0") if name and (ROOT / name).is_file()
                  and not name.startswith(f"{EXAMPLES.as_posix()}/") and not own(name))


def own(name: str) -> bool:
    return name in OWN_FILES or name.endswith(OWN_SUFFIXES) or name.startswith(OWN_FOLDERS)


def sync(project: Path) -> None:
    """Make the demo project's copy of the code match the checkout's."""
    wanted = project_files()
    for name in wanted:
        source, target = ROOT / name, project / name
        if not target.is_file() or target.read_bytes() != source.read_bytes():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    if (project / ".git").is_dir():  # files the checkout no longer has
        kept = set(wanted)
        for name in git(project, "ls-files", "-z").split("\0"):
            if name and name not in kept and not own(name):
                (project / name).unlink(missing_ok=True)


def apply_settings(params_file: Path, settings: dict[str, Any]) -> None:
    """Set ``section.key`` values in params.yaml, keeping its comments and layout; each
    line set says so, with the default it replaced."""
    yaml = YAML()  # ruamel's round trip, as `dvc exp run -S` writes the file
    params = yaml.load(params_file)
    for dotted, value in settings.items():
        *sections, key = dotted.split(".")
        node = params
        for section in sections:
            node = node[section]
        if key not in node:
            raise SystemExit(f"error: {dotted}: no such key in {params_file}")
        default = node[key]
        node[key] = value
        comment = (node.ca.items.get(key) or [None] * 3)[2]
        said = comment.value.strip().lstrip("#").strip() if comment else ""
        node.yaml_add_eol_comment(f"# demo (default {default}){'; ' + said if said else ''}",
                                  key, column=comment.column if comment else None)
    yaml.dump(params, params_file)


def commit(project: Path, demo: Demo) -> None:
    from pipelines.ops.versions import git_identity

    if not (project / ".git").is_dir():
        git(project, "init", "--quiet")
    # the code and settings only: dvc.lock and the .dvc files are the runs' own versions
    git(project, "add", "--all", "--", ".", *(f":!{name}" for name in OWN_FILES),
        *(f":!*{suffix}" for suffix in OWN_SUFFIXES),
        *(f":!{folder}" for folder in OWN_FOLDERS))
    if not git(project, "diff", "--cached", "--name-only"):
        return
    checkout = git(ROOT, "rev-parse", "--short", "HEAD").strip()
    dirty = " with uncommitted changes" if git(ROOT, "status", "--porcelain", "--",
                                               ".", f":!{EXAMPLES}").strip() else ""
    settings = ", ".join(f"{k}={v}" for k, v in demo.settings.items()) or "the defaults"
    git(project, *git_identity(project), "commit", "--quiet", "-m",
        f"Demo: the code of {checkout}{dirty}; {settings}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", nargs="?", choices=sorted(DEMOS), help="which demo to run")
    parser.add_argument("--record", nargs="?", const=ROOT / "demo" / "tedpix", type=Path,
                        metavar="PROJECT", help=(
                            "run nothing: record the last run of demo/tedpix (or PROJECT) in "
                            "docs/demo-result.json and rewrite the README's first table"))
    parser.add_argument("--readme", action="store_true", help=(
        "run nothing: rewrite the README's first table from docs/demo-result.json"))
    options = parser.parse_args(argv)
    if options.record or options.readme:
        return rewrite(options.record)
    if options.name is None:
        parser.error("name a demo (tedpix, indices), or --record, or --readme")
    name = options.name
    demo = DEMOS[name]
    project = ROOT / "demo" / name
    if project.exists() and not (project / ".git").is_dir():
        shutil.rmtree(project)  # a demo whose creation was interrupted: start again
    sync(project)
    apply_settings(project / "params.yaml", demo.settings)

    from pipelines.core.params.load import load_params  # the settings pass the schema, or why not

    load_params(project / "params.yaml")
    commit(project, demo)
    print(f"demo: {demo.what}, in {shown(project)}", flush=True)
    command = ["tsepipe", "run"]
    if not same_files(ROOT / demo.source, project / "data" / "raw"):
        command += ["--raw-dir", str(ROOT / demo.source)]  # copied into data/raw first
    done = subprocess.run(command, cwd=project, check=False)
    if done.returncode == 0:
        print(f"demo: open {shown(project / 'reports' / 'index.html')} in a browser; "
              f"in {shown(project)}: tsepipe history, dvc metrics show")
        if demo.recorded:
            compare_with_recorded(project)
    return done.returncode


def rewrite(project: Path | None) -> int:
    """``--record`` and ``--readme``: the recorded result, and the README's table from it."""
    if project is not None:
        if not (project / "params.yaml").is_file():
            print(f"error: {shown(project)}: no demo project here (make demo makes one)",
                  file=sys.stderr)
            return 2
        record_result(project)
        print(f"demo: recorded {shown(project)}'s result in {shown(RESULT)}")
    else:
        record = json.loads(RESULT.read_text(encoding="utf-8"))
        README.write_text(with_result(README.read_text(encoding="utf-8"), record),
                          encoding="utf-8")
    print(f"demo: {shown(README)}'s first table shows {shown(RESULT)}")
    return 0


def compare_with_recorded(project: Path) -> None:
    """Write this run's result beside the project (demo/NAME-result.json) and say whether
    the README's table (docs/demo-result.json) shows the same figures."""
    record = demo_result(project)
    mine = project.with_name(f"{project.name}-result.json")
    mine.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    recorded = json.loads(RESULT.read_text(encoding="utf-8"))
    if figures(record) == figures(recorded):
        print(f"demo: the same figures as the README's table ({shown(RESULT)})")
    else:
        print(f"demo: figures other than the README's table ({shown(RESULT)}, commit "
              f"{recorded['code']}): this run's are in {shown(mine)}; "
              "python tools/demo.py --record makes them the README's")


def same_files(source: Path, raw: Path) -> bool:
    """Whether ``raw`` holds exactly the files of ``source``, byte for byte (then a plain
    ``tsepipe run`` answers at once when nothing else changed)."""
    if not raw.is_dir():
        return False
    names = sorted(p.name for p in source.iterdir() if p.is_file())
    return names == sorted(p.name for p in raw.iterdir() if p.is_file()) and all(
        (source / name).read_bytes() == (raw / name).read_bytes() for name in names)


def shown(path: Path) -> str:
    return os.path.relpath(path)


# -- the recorded result: docs/demo-result.json and the README's first table ------------

RESULT = ROOT / "docs" / "demo-result.json"  # the figures the README's first table shows
README = ROOT / "README.md"
BLOCK_START = ("<!-- demo-result: docs/demo-result.json's figures; "
               "python tools/demo.py --readme rewrites them -->")
BLOCK_END = "<!-- /demo-result -->"


def demo_result(project: Path) -> dict[str, Any]:
    """What a demo run shows, from the project's outputs (the champion record, the
    leaderboard, the forecast): every model's validation and test MCC with the test
    interval, the champion, the best baseline, the call, and the code and stack that ran."""
    from pipelines.core.params.load import load_params

    paths = load_params(project / "params.yaml").paths
    board = json.loads((project / paths.leaderboard).read_text(encoding="utf-8"))
    forecast = json.loads((project / paths.forecast).read_text(encoding="utf-8"))
    code, dirty = demo_code(project)
    device = board["device"]
    return {
        "demo": project.name,
        "run": forecast["created"],
        "code": code,
        "code_uncommitted_changes": dirty,
        "stack": {"tensorflow": device.get("tensorflow"), "device": device["kind"],
                  "device_name": device.get("name"), "device_count": device.get("count")},
        "days": board["days"],
        "champion": board["champion"],
        "champion_reason": board["champion_reason"],
        "best_baseline": board["best_baseline_on_validation"],
        "models": [model_figures(row) for row in board["models"].values()],
        "backtest": {name: {"cumulative_return": round(figures["cumulative_return"], 3),
                            "sharpe": round(figures["sharpe"], 3)}
                     for name, figures in board["backtest"]["strategies"].items()},
        "call": {**{key: forecast[key] for key in (
            "as_of", "next_trading_day", "call", "no_call_reasons", "calibration")},
            **{key: round(forecast[key], 3) for key in (
                "probability_up", "probability_up_raw")}},
    }


def model_figures(row: dict[str, Any]) -> dict[str, Any]:
    """One leaderboard row's headline: what it is and reads, its validation MCC, its test
    MCC with the 95 % interval (3 decimals, as the README shows them)."""
    low, high = row["test"]["mcc_ci"]
    return {"model": row["model"], "kind": row["kind"], "reads": row["reads"],
            "validation_mcc": round(row["validation"]["mcc"], 3),
            "test_mcc": round(row["test"]["mcc"], 3),
            "test_mcc_interval": [round(low, 3), round(high, 3)]}


def demo_code(project: Path) -> tuple[str, bool]:
    """The checkout's commit whose code the demo ran, and whether it had uncommitted
    changes, from the demo's last "Demo: the code of ..." commit (else the project's own
    HEAD)."""
    subject = git(project, "log", "-1", "--format=%s", "--grep=^Demo: the code of ").strip()
    if not subject:
        return git(project, "rev-parse", "--short", "HEAD").strip(), False
    words = subject.removeprefix("Demo: the code of ").split(";")[0]
    return words.split()[0], "with uncommitted changes" in words


def result_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows the README shows: the champion, the networks, the best baseline and
    persistence, each once, with its role."""
    models = {row["model"]: row for row in record["models"]}
    roles = {record["champion"]: ["champion"]}
    for row in record["models"]:
        if row["kind"] == "network":
            roles.setdefault(row["model"], [])
    roles.setdefault(record["best_baseline"], []).append("best baseline")
    roles.setdefault("persistence", [])
    return [{**models[name], "roles": said} for name, said in roles.items() if name in models]


def result_block(record: dict[str, Any]) -> str:
    """The README's first table and the call under it, as Markdown."""
    lines = [BLOCK_START, "", "| model | test MCC [95 % interval] | validation MCC | what it is |",
             "|---|---|---|---|"]
    for row in result_rows(record):
        name = f"**{row['model']}**" if "champion" in row["roles"] else row["model"]
        said = f" ({', '.join(row['roles'])})" if row["roles"] else ""
        low, high = row["test_mcc_interval"]
        lines.append(f"| {name}{said} | {row['test_mcc']:.3f} [{low:.3f}, {high:.3f}] | "
                     f"{row['validation_mcc']:.3f} | {row['kind']}: {row['reads']} |")
    lines += ["", wrapped(call_line(record["call"])), "", wrapped(recorded_line(record)), "",
              BLOCK_END]
    return "\n".join(lines)


def wrapped(sentence: str) -> str:
    return textwrap.fill(sentence, width=90, break_long_words=False, break_on_hyphens=False)


def call_line(call: dict[str, Any]) -> str:
    """The demo's forecast in one sentence: the call (or no call and why) and P(up)."""
    said = (f"**{call['call']}**" if call["call"] != "no call" else
            f"**no call** ({'; '.join(call['no_call_reasons'])})")
    calibrated = (f"calibrated with `{call['calibration']}` on the validation days; "
                  f"{call['probability_up_raw']:.3f} raw" if call["calibration"] != "none"
                  else "not calibrated")
    return (f"The call for {call['next_trading_day']}, from the data to {call['as_of']}: "
            f"{said}, P(up) {call['probability_up']:.3f} ({calibrated}).")


def recorded_line(record: dict[str, Any]) -> str:
    stack = record["stack"]
    dirty = " with uncommitted changes" if record["code_uncommitted_changes"] else ""
    days = record["days"]
    return (f"From `make demo`'s run on {record['run'][:10]} of the code of commit "
            f"{record['code']}{dirty}, TensorFlow {stack['tensorflow']} on "
            f"{stack['device_count']} {stack['device'].upper()} cores "
            f"([`docs/demo-result.json`](docs/demo-result.json)); test days "
            f"{days['test_first']} .. {days['test_last']} ({days['test']}), validation days "
            f"{days['validation_first']} .. {days['validation_last']} ({days['validation']}).")


def figures(record: dict[str, Any]) -> list[str]:
    """What the README shows of a result: its table and its call (not when nor by what)."""
    return [line for line in result_block(record).splitlines()
            if line.startswith(("|", "The call"))]


def with_result(readme: str, record: dict[str, Any]) -> str:
    """``readme`` with its result block (between the markers) rewritten from ``record``."""
    start, end = readme.index(BLOCK_START), readme.index(BLOCK_END) + len(BLOCK_END)
    return readme[:start] + result_block(record) + readme[end:]


def record_result(project: Path, result: Path = RESULT, readme: Path = README) -> dict[str, Any]:
    """Record the demo ``project``'s result in ``result`` and rewrite ``readme``'s table."""
    record = demo_result(project)
    result.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    readme.write_text(with_result(readme.read_text(encoding="utf-8"), record), encoding="utf-8")
    return record


if __name__ == "__main__":
    sys.exit(main())
