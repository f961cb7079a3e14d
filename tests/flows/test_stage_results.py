"""How a stage's end, as DVC tells it, is read: the signal that killed it, whichever shell
ran it (bash runs the command in its own place, dash waits and reports 128 + N)."""

from __future__ import annotations

import signal

import pytest

from flows.dvc_commands import CommandResult
from flows.runs import KILLED, stage_failed


def repro(stage_exit: int, shell_line: str = "") -> CommandResult:
    output = (f"Running stage 'evaluate':\n> tsepipe evaluate\n{shell_line}"
              f"ERROR: failed to reproduce 'evaluate': failed to run: tsepipe evaluate, "
              f"exited with {stage_exit}\n")
    return CommandResult(["dvc", "repro", "evaluate"], 255, output)


@pytest.mark.parametrize(("stage_exit", "shell_line"), [(-9, ""), (137, "Killed\n")])
def test_a_killed_stage_is_told_whichever_shell_ran_it(stage_exit, shell_line):
    result = repro(stage_exit, shell_line)
    assert result.stopped_by == signal.SIGKILL and result.told
    state = stage_failed(result)
    assert state.name == KILLED
    assert state.message == ("the evaluate stage was killed (SIGKILL: out of memory, or "
                             "stopped from outside); its last good outputs stay; run again")


def test_a_stage_that_stopped_on_sigterm_is_told_and_a_crash_is_not():
    assert repro(143, "Terminated\n").stopped_by == signal.SIGTERM
    crashed = repro(1)
    assert crashed.stopped_by is None and not crashed.told
    assert repro(3).told and repro(3).stopped_by is None
