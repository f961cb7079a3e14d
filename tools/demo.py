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
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = Path("data/examples")  # the real data in the repository (its README.md)
# Written by the demo project's own runs (its versions), never copied from the checkout.
OWN_FILES = ("dvc.lock",)
OWN_SUFFIXES = (".dvc",)
OWN_FOLDERS = ("metrics/",)  # paths.metrics_dir: each stage's metrics, in each version


@dataclass(frozen=True)
class Demo:
    what: str
    source: Path  # the export files, relative to the checkout
    settings: dict[str, Any] = field(default_factory=dict)  # params.yaml keys -> values


DEMOS = {
    "tedpix": Demo(
        "TEDPIX's real daily history 2008-2019 (2,679 days, TSETMC's JSON), the target alone",
        EXAMPLES / "tedpix-2008-2019",
        # one index: the set rule asks for 1 usable file, not 12 of 16
        {"validate.min_usable_files": 1},
    ),
    "indices": Demo(
        "the 16 real index exports of 1397-1398 (417 days, UTF-16, Jalali dates)",
        EXAMPLES / "tse-indices-1397-1398",
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
    parser.add_argument("name", choices=sorted(DEMOS), help="which demo")
    name = parser.parse_args(argv).name
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
    return done.returncode


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


if __name__ == "__main__":
    sys.exit(main())
