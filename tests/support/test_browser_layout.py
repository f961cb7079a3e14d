"""The layout check (`browser.layout`) can fail and can pass: small pages written here, laid
out at a phone's 390 px and a desktop's 1400 px, say whether anything sticks out sideways.

Without Chromium these tests skip with the reason, or fail as root (``conftest``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import chromium_or_skip
from tests.support import browser

pytestmark = pytest.mark.browser

PHONE, DESKTOP = 390, 1400
TABLE = """<table id="leaderboard" class="board" style="width:2000px">
<tr><th>model</th><th>kind</th><th>validation MCC</th></tr>
<tr><td>logistic</td><td>linear</td><td>0.12</td></tr></table>"""


@pytest.fixture
def chromium() -> str:
    """The browser; missing, the test fails as root (CI) and is skipped otherwise."""
    return chromium_or_skip()


def page(folder: Path, body: str, head: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "index.html"
    path.write_text(f'<!doctype html>\n<html><head><meta charset="utf-8"><title>t</title>{head}'
                    f"</head>\n<body><h1>Report</h1>\n{body}\n</body></html>\n",
                    encoding="utf-8")
    return path


def test_a_wide_table_overflows_a_phone(tmp_path, chromium):
    measured = browser.layout(page(tmp_path, TABLE), PHONE)
    assert measured.inner_width == PHONE
    assert measured.scroll_width > 2000
    problems = measured.problems()
    assert problems[0] == f"the page is {measured.scroll_width} px wide at a 390 px window"
    assert problems[1].startswith("<table id=leaderboard class=board> sticks out to ")
    assert "'model kind validation MCC" in problems[1]
    assert [item.id for item in measured.overflowing] == ["leaderboard"]  # not its cells
    with pytest.raises(browser.BrowserError, match="id=leaderboard"):
        measured.check()
    assert sorted(item.name for item in tmp_path.iterdir()) == ["index.html"]  # copies gone


def test_a_wide_table_in_a_scrolling_box_does_not(tmp_path, chromium):
    wrapped = f'<div style="overflow-x:auto">{TABLE}</div>'
    measured = browser.layout(page(tmp_path, wrapped), PHONE)
    assert (measured.inner_width, measured.scroll_width) == (PHONE, PHONE)
    assert measured.problems() == [] and measured.overflowing == []
    assert measured.check() is measured


def test_a_text_page_fits_a_phone_and_a_desktop(tmp_path, chromium):
    text = "<p>" + " ".join(["The forecast stands on the last good run."] * 12) + "</p>"
    viewport = '<meta name="viewport" content="width=device-width, initial-scale=1">'
    path = page(tmp_path / "site", text, head=viewport)
    for width in (PHONE, DESKTOP):
        shot = tmp_path / f"shot-{width}.png"
        measured = browser.layout(path, width, screenshot=shot)
        assert measured.problems() == [], width
        assert measured.inner_width == width
        assert browser.png_info(shot) == (width, 900, False)
        # the Layout's rendering is the page's own: its name, text, no trace of the script
        rendered = measured.rendered
        assert rendered.page == path and rendered.screenshot == shot
        assert rendered.problems() == []
        assert rendered.requests == [] and rendered.links == []
        assert "forecast stands" in rendered.text and "<script" not in rendered.dom
        assert rendered.dom.startswith("<!DOCTYPE html>")
    assert sorted(item.name for item in path.parent.iterdir()) == ["index.html"]


def test_a_long_unbroken_word_overflows_a_phone(tmp_path, chromium):
    word = "validation" * 8
    measured = browser.layout(page(tmp_path, f"<p>Best model: {word}</p>"), PHONE)
    assert [(item.tag, item.id) for item in measured.overflowing] == [("p", "")]
    assert measured.overflowing[0].right > PHONE
    assert any(line.startswith("<p> sticks out to ") and "'Best model: validation" in line
               for line in measured.problems())
    assert browser.layout(measured.page, DESKTOP).problems() == []  # 800 px of word: fits


def test_the_copies_are_removed_when_rendering_fails(tmp_path, monkeypatch):
    def fails(*args, **kwargs):
        raise browser.BrowserError("chromium failed")

    monkeypatch.setattr(browser, "render", fails)
    path = page(tmp_path, "<p>text</p>")
    with pytest.raises(browser.BrowserError, match="chromium failed"):
        browser.layout(path, PHONE)
    assert sorted(item.name for item in tmp_path.iterdir()) == ["index.html"]
