"""params.yaml is kept in the form DVC writes it (ruamel's round trip: block lists, single
quotes, no comment straight after a list), so that ``dvc exp run -S KEY=VALUE`` changes
that key's line and nothing else, and the version commit of an experiment shows only it."""

from __future__ import annotations

import difflib
import shutil

import pytest

from tests.conftest import ROOT


def changed_lines(path, overrides: list[str]) -> list[str]:
    from dvc.utils.hydra import apply_overrides  # what `dvc exp run -S` does to the file

    before = path.read_text(encoding="utf-8").splitlines()
    apply_overrides(path, overrides)
    after = path.read_text(encoding="utf-8").splitlines()
    return [line for line in difflib.unified_diff(before, after, lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


@pytest.mark.parametrize(("override", "old", "new"), [
    ("evaluate.refit_every=30", "  refit_every: 60 ", "  refit_every: 30 "),
    ("remote.endpoint_url=http://127.0.0.1:9000", "  endpoint_url: ''",
     "  endpoint_url: http://127.0.0.1:9000"),
    ("drift.threshold=0.6", "  threshold: 0.5 ", "  threshold: 0.6 "),
])
def test_dvc_exp_run_set_param_changes_that_line_only(tmp_path, override, old, new):
    params = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params)
    changed = changed_lines(params, [override])
    assert len(changed) == 2, "\n".join(changed)
    assert changed[0].startswith(f"-{old}") and changed[1].startswith(f"+{new}"), changed
    # the key's own comment stays, in its column
    assert changed[0].split("#", 1)[1] == changed[1].split("#", 1)[1]
    assert changed_lines(params, [override]) == []  # and again: nothing more moves


def test_a_list_set_changes_its_items_only(tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params)
    assert changed_lines(params, ["train.seeds=[1,2]"]) == ["-  - 3"]
