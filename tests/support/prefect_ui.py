"""Open a page of the Prefect UI (a JavaScript app served by a test's ``prefect server`` on
127.0.0.1, see ``prefect_server(..., ui=True)``) in headless Chromium and read what it shows.

``ui_page(url)`` returns the DOM after the app's scripts ran and fetched from the API
(``--dump-dom`` after ``--virtual-time-budget``), and writes a screenshot when asked.
Unlike ``tests/support/browser.render`` (a local file, in a network namespace of its own)
the page is on the host's loopback, so Chromium runs in this one; every other host
resolves to nothing (``browser.FLAGS``).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from tests.support import browser


def ui_page(url: str, screenshot: Path | None = None, width: int = 1400, height: int = 1000,
            budget_ms: int = 8000) -> str:
    """The DOM of ``url`` once the UI has drawn it; a PNG of it at ``width`` px."""
    with tempfile.TemporaryDirectory(prefix="tsepipe-ui-") as work:
        args = [browser.find_chromium(), *browser.FLAGS, f"--user-data-dir={work}/profile",
                f"--window-size={width},{height}", f"--virtual-time-budget={budget_ms}",
                "--dump-dom"]
        if screenshot is not None:
            args.append(f"--screenshot={Path(screenshot).resolve()}")
        done = subprocess.run([*args, url], capture_output=True, text=True,
                              timeout=browser.TIMEOUT, env=os.environ | {"HOME": work},
                              stdin=subprocess.DEVNULL)
    if done.returncode != 0 or "<body" not in done.stdout:
        raise browser.BrowserError(f"{url}: chromium exited {done.returncode}:\n"
                                   f"{browser.tail(done.stderr)}")
    return done.stdout


def ui_page_showing(url: str, shows: Callable[[str], bool], screenshot: Path | None = None,
                    tries: int = 4, **layout) -> str:
    """``ui_page`` until the page ``shows`` what the caller waits for, each try with twice
    the time budget of the one before (8 s, 16 s, 32 s, 64 s of virtual time): on a busy
    machine the app can draw its first request's answer before another's (a deployment's
    next scheduled run before its list of runs). The last try's DOM if it never does."""
    budget = layout.pop("budget_ms", 8000)
    for _ in range(tries):
        dom = ui_page(url, screenshot, budget_ms=budget, **layout)
        if shows(dom):
            break
        budget *= 2
    return dom


def state_badges(dom: str) -> list[tuple[str, str]]:
    """The state badges the page shows: (their state type's class, the state's name)."""
    return re.findall(r'class="p-tag state-badge state--(\w+)".*?<span>([^<]*)</span>', dom,
                      flags=re.DOTALL)
