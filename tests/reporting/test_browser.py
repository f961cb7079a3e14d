"""The reports open offline in headless Chromium: they render, link only to files that exist,
and request nothing from the network; the checker itself catches pages that would.

Chromium is required where it can be installed: as root (CI, through tools/ensure-chromium)
these tests fail without it; a user without root and without Chromium sees them skipped with
the reason (``conftest.chromium_or_skip``). Set TSEPIPE_SCREENSHOT_DIR to keep the
screenshots of the real reports.
"""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from pathlib import Path

import pytest

from tests.conftest import chromium_or_skip, run
from tests.support import browser

pytestmark = pytest.mark.browser


@pytest.fixture
def chromium() -> str:
    """The browser; missing, the test fails as root (CI) and is skipped otherwise."""
    return chromium_or_skip()


def keep(screenshot: Path, name: str) -> None:
    """Copy a screenshot to $TSEPIPE_SCREENSHOT_DIR (CI keeps it as an artifact) if set."""
    folder = os.environ.get("TSEPIPE_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy2(screenshot, Path(folder) / name)


def png(width: int, height: int, pixel=lambda x, y: (255, 255, 255)) -> bytes:
    """A small RGB PNG (stdlib only)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    rows = b"".join(b"\x00" + bytes(c for x in range(width) for c in pixel(x, y))
                    for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                             0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_the_png_reader_tells_blank_from_drawn(tmp_path):
    blank = write(tmp_path / "blank.png", png(7, 5))
    drawn = write(tmp_path / "drawn.png", png(7, 5, lambda x, y: (0, 0, 0) if (x, y) == (6, 4)
                                              else (255, 255, 255)))
    assert browser.png_info(blank) == (7, 5, True)
    assert browser.png_info(drawn) == (7, 5, False)
    assert browser.screenshot_problems(drawn, (7, 5)) == []
    assert browser.screenshot_problems(drawn, (8, 5)) == ["the screenshot is 7x5, not 8x5"]
    assert "blank" in browser.screenshot_problems(blank, (7, 5))[0]


def test_a_self_contained_page_renders_offline(tmp_path, chromium):
    write(tmp_path / "site" / "img" / "dot.png",
          png(16, 16, lambda x, y: (200, 30, 30) if x < 8 else (30, 30, 200)))
    write(tmp_path / "site" / "more" / "second.html",
          "<!doctype html><title>2</title><p>second page</p>")
    page = write(tmp_path / "site" / "index.html", """<!doctype html>
<html><head><meta charset="utf-8"><title>Report</title>
<style>body { font-family: sans-serif; } h1 { color: #245; }</style></head>
<body><h1 id="top">A report</h1>
<p>Numbers <img src="img/dot.png" alt="dot" width="32" height="32"></p>
<p><a href="more/second.html#part">second page</a> <a href="#top">top</a></p>
<p id="late" hidden>not shown</p>
<script>document.body.insertAdjacentHTML("beforeend", "<p>written by a script</p>")</script>
</body></html>""")
    shot = tmp_path / "shot.png"
    rendered = browser.render(page, shot, width=1000, height=700).check()
    assert rendered.requests == [] and rendered.problems() == []
    assert "A report" in rendered.text and "written by a script" in rendered.text
    assert "not shown" not in rendered.text
    assert rendered.links == ["img/dot.png", "more/second.html#part", "#top"]
    assert browser.png_info(shot)[:2] == (1000, 700)


def test_requests_external_links_and_broken_links_are_reported(tmp_path, chromium):
    page = write(tmp_path / "calls-out.html", """<!doctype html>
<html><head><script src="https://example.com/x.js"></script></head>
<body><h1>Calls out</h1><img src="http://example.org/a.png">
<a href="missing.html">gone</a> <a href="mailto:someone@example.com">mail</a>
<script>fetch("https://api.example.net/data").catch(() => {})</script></body></html>""")
    rendered = browser.render(page, tmp_path / "shot.png")
    assert "https://example.com/x.js" in rendered.requests
    assert "http://example.org/a.png" in rendered.requests
    assert "https://api.example.net/data" in rendered.requests
    problems = rendered.problems()
    assert "the page requested https://example.com/x.js" in problems
    assert "link to another host: http://example.org/a.png" in problems
    assert f"broken link: missing.html (no {tmp_path / 'missing.html'})" in problems
    assert "unexpected mailto link: mailto:someone@example.com" in problems
    with pytest.raises(browser.BrowserError, match="example.org/a.png"):
        rendered.check()
    # links alone (no browser): another host, protocol-relative, allowed host
    assert browser.link_problems(page, ["//cdn.example.com/s.css", "https://plotly.com/"],
                                 allowed_hosts=["plotly.com"]) == [
        "link to another host: //cdn.example.com/s.css"]


def test_a_blank_page_is_reported(tmp_path, chromium):
    page = write(tmp_path / "blank.html", "<!doctype html><html><body>  </body></html>")
    problems = browser.render(page, tmp_path / "shot.png", width=400, height=300).problems()
    assert problems[0].startswith("no visible text")
    assert "blank (a single colour)" in problems[1]


def test_the_validation_report_renders_offline(chromium, project, tmp_path):
    run(["tsepipe", "sample-data", "--out", "data/raw", "--days", "300"], cwd=project)
    run(["tsepipe", "ingest"], cwd=project)
    run(["tsepipe", "validate"], cwd=project)
    page = project / "reports" / "validation" / "index.html"
    shot = tmp_path / "validation.png"
    rendered = browser.render(page, shot).check(min_text=200)
    keep(shot, "validation.png")
    assert rendered.requests == []
    assert "IRX6XTPI0009" in rendered.text


def test_evidently_drift_report_renders_offline(tmp_path, chromium):
    """Evidently 0.7's page inlines its scripts and data; its charts need no network.

    Its Plotly charts carry a "Produced with Plotly" link to plotly.com (a link, not a
    request): that host alone is let through.
    """
    from pipelines.reporting.drift import drift_report
    from tests.reporting.test_drift import NAMES, frames

    reference, current = frames(stable=False)
    drift_report(reference, current, NAMES, tmp_path / "drift.html", tmp_path / "drift.json",
                 prediction_column="probability_up", target_column="label")
    shot = tmp_path / "drift.png"
    rendered = browser.render(tmp_path / "drift.html", shot).check(
        min_text=200, allowed_hosts=["plotly.com"])
    keep(shot, "evidently-drift.png")
    assert rendered.requests == []
    assert "Dataset Drift" in rendered.text and "IDX0__logret" in rendered.text
