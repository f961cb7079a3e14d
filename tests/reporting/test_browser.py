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
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.core.params.data import DataSection
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
    # the header links the front page, which the report stage writes later
    front = project / "reports" / "index.html"
    assert not front.exists()
    front.write_text("<!doctype html><title>front</title><p>the front page</p>")
    shot = tmp_path / "validation.png"
    rendered = browser.render(page, shot).check(min_text=200)
    keep(shot, "validation.png")
    assert rendered.requests == []
    assert "IRX6XTPI0009" in rendered.text
    assert rendered.text.startswith("tsepipe · Input validation: 16 of 16 export files usable")
    assert "model: none (this page checks the inputs) · data: 16 export files in data/raw" \
        in rendered.text
    assert "../index.html" in rendered.links
    # each file's expectations by name (<wbr> after each _: text pieces of their own)
    assert "expect_column_values_to_not_be_null (date)" in rendered.text.replace("_ ", "_")


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


# --- hostile names (issue 31): shown as text on every page, never run -----------------

PWNED = "data-pwned"  # an attribute only a payload that ran (or got into the markup) sets
PAYLOADS = [
    "q' onmouseover='alert(4)' x='",
    "<script>document.documentElement.setAttribute('data-pwned', 's')</script>",
    "\"><svg onload=\"document.documentElement.setAttribute('data-pwned', 'v')\">",
    "<img src=x onerror=document.documentElement.setAttribute('data-pwned','i')>",
]


class _Attributes(HTMLParser):
    """Every element's attributes as the browser left them (after its scripts ran)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [(tag, name, value or "") for name, value in attrs]


def payload_problems(page: Path) -> list[str]:
    """What shows a payload ran or became markup: the marker set, an injected handler."""
    parser = _Attributes()
    parser.feed(browser.render(page).dom)
    return [f"<{tag} {name}={value!r}>" for tag, name, value in parser.found
            if name == PWNED or (name.startswith("on") and ("alert(" in value
                                                             or PWNED in value))]


@pytest.mark.slow
def test_hostile_names_are_shown_never_run(chromium, tmp_path):
    """Names from input that can still reach a page (ids are refused upstream): a feature
    (column) name on Evidently's drift page, a model name (a key of train.models) on its
    classification page, an index's name (an export's <NAME>) and a refused file's name on
    the validation page."""
    from pipelines.core.html import header
    from pipelines.core.params.paths import Paths
    from pipelines.core.params.validate import ValidateSection
    from pipelines.data import sample
    from pipelines.data.ingest import ingest
    from pipelines.data.validate import validate
    from pipelines.reporting.drift import drift_report
    from pipelines.reporting.evidently_pages import classification_page, html_safe_name

    rng = np.random.default_rng(31)
    features = [f"{payload}__logret" for payload in PAYLOADS]
    frame = pd.DataFrame(rng.normal(size=(120, len(features))), columns=features)
    drift_page = tmp_path / "drift.html"
    drift_report(frame[:60], frame[60:], features, drift_page, tmp_path / "drift.json")

    days = pd.date_range("2024-01-01", periods=40)
    label = rng.integers(0, 2, len(days))
    predictions = pd.concat([pd.DataFrame({
        "date": days, "split": ["validation"] * 20 + ["test"] * 20, "model": model,
        "label": label, "predicted": rng.integers(0, 2, len(days)),
        "probability_up": rng.uniform(size=len(days))}) for model in PAYLOADS[:2]])
    accuracy_page = tmp_path / "classification.html"
    classification_page(predictions, PAYLOADS[:2], accuracy_page, champion=PAYLOADS[1],
                        page_header=header(accuracy_page, tmp_path / "index.html", "",
                                           model=PAYLOADS[1]))

    raw = tmp_path / "raw"
    sample.generate(raw, n_days=120)
    target = raw / "IRX6XTPI0009.csv"
    lines = target.read_bytes().decode("utf-16").split("\r\n")
    lines[1:] = [",".join(line.split(",")[:11] + [PAYLOADS[1].replace(",", ";")]
                          + line.split(",")[12:]) if line else line for line in lines[1:]]
    target.write_bytes(("\ufeff" + "\r\n".join(lines)).encode("utf-16-le"))
    (raw / f"{PAYLOADS[0]}.csv").write_bytes(target.read_bytes())
    (raw / "<svg onload=alert(5)>.csv").write_bytes(target.read_bytes())
    paths = Paths.model_validate({"raw_dir": str(raw)} | {
        name: str(tmp_path / "out" / value) for name, value in Paths().model_dump().items()
        if name != "raw_dir"})
    ingest(raw, paths.tables_dir, paths.ingest_report)
    validate(paths, ValidateSection(min_usable_files=1, min_rows=50), DataSection())
    validation_page = paths.validation_page
    assert "onmouseover=&#39;alert(4)&#39;" in validation_page.read_text(encoding="utf-8")

    for page in (drift_page, accuracy_page, validation_page):
        assert payload_problems(page) == [], page
    # each model's name, as text, above its section (the champion first), and in the header
    shown = browser.render(accuracy_page).text
    heads = [shown.index(html_safe_name(name)) for name in (f"{PAYLOADS[1]} (champion)",
                                                            f"{PAYLOADS[0]}:")]
    assert heads == sorted(heads) and f"{PAYLOADS[1]} (champion), {PAYLOADS[0]}" in shown


# --- the accuracy and front pages of a trained project, as a reader sees them (issue 33) ---

# Put before </body> of a copy: how wide the leaderboard is against the box that scrolls it.
MEASURE = b"""<script>(() => {
  const table = document.getElementById("leaderboard"), box = table.parentElement;
  document.documentElement.setAttribute("data-leaderboard", JSON.stringify({
    box: box.className, overflow: getComputedStyle(box).overflowX,
    width: box.clientWidth, content: box.scrollWidth}));
})();</script>"""


def leaderboard_layout(page: Path, width: int, shot: Path) -> tuple[browser.Layout, dict]:
    """The page laid out at ``width`` (checked: nothing sticks out of the window) and the
    leaderboard's width against its scrolling box's."""
    return browser.measured_layout(page, width, MEASURE, "leaderboard", 1600, shot)


def test_the_accuracy_and_front_pages_fit_and_say_what_they_show(chromium, trained_sample,
                                                                  tmp_path):
    """The pages of the session's trained sample project (networks, baselines, the
    combination): the leaderboard fits a 1,400 px window whole and scrolls inside its own
    box at 390 px; each page has the project's header (the accuracy page the way back);
    the front page names the target as TSETMC does, with the ISIN, and its times in Tehran
    time; a merge of one index says "1 index"."""
    import json

    from pipelines.core.params.paths import Paths
    from pipelines.modelling.leaderboard import Leaderboard, model_cards
    from pipelines.reporting.front_page import front_page

    reports = tmp_path / "reports"  # a copy: the layout's files never touch the shared project
    shutil.copytree(trained_sample.project / "reports", reports)
    accuracy = reports / "accuracy" / "index.html"
    wide, fits = leaderboard_layout(accuracy, 1400, tmp_path / "accuracy-1400.png")
    keep(tmp_path / "accuracy-1400.png", "accuracy-1400.png")
    assert wide.scroll_width <= wide.inner_width == 1400
    assert fits["box"] == "scroll" and fits["content"] <= fits["width"], fits  # whole
    narrow, scrolls = leaderboard_layout(accuracy, 390, tmp_path / "accuracy-390.png")
    keep(tmp_path / "accuracy-390.png", "accuracy-390.png")
    assert narrow.scroll_width <= narrow.inner_width == 390  # the page does not scroll...
    assert scrolls["overflow"] == "auto" and scrolls["content"] > scrolls["width"], scrolls
    text = wide.rendered.check(min_text=1000).text  # ...its box does; links resolve
    champion = json.loads((trained_sample.project / "models/champion.json").read_text())
    assert "tsepipe · accuracy of every model and baseline" in text
    assert f"model: {champion['champion']} (" in text
    assert f"data: dataset {champion['data_version'][:8]} (validation " in text
    assert "← front page" in text and "../index.html" in wide.rendered.links

    front = reports / "index.html"
    for width in (1400, 390):
        shown = browser.layout(front, width, height=1600,
                               screenshot=tmp_path / f"front-{width}.png").check()
        keep(tmp_path / f"front-{width}.png", f"front-page-sample-{width}.png")
    text = shown.rendered.text
    merge = json.loads((trained_sample.project / "data/processed/merge_summary.json"
                        ).read_text())
    assert f"data: dataset {merge['md5'][:8]}: " in text and "← front page" not in text
    assert "TEDPIXnext-daydirection·شاخصكل(IRX6XTPI0009)" in "".join(text.split())
    assert f"{merge['indices_included']} indices merged" in text
    assert "Tehran time (UTC+03:30)" in text
    assert "T" not in text.split("Generated ")[1].split(" Tehran time")[0]  # no raw ISO
    assert "one-sided McNemar test that" in text

    # one index merged: "1 index"
    project = trained_sample.project
    paths = Paths.model_validate({name: str(project / value) for name, value
                                  in Paths().model_dump().items()})
    read = {name: json.loads(getattr(paths, name).read_text()) for name in (
        "validation_summary", "merge_summary", "drift_summary", "forecast",
        "accuracy_summary")}
    merge = read["merge_summary"] | {"indices_included": 1, "indices": [
        i for i in read["merge_summary"]["indices"] if i["index_id"] == "IRX6XTPI0009"]}
    page = front_page(tmp_path / "one" / "index.html", validation=read["validation_summary"],
                      merge=merge, board=Leaderboard.read(paths.leaderboard),
                      drift=read["drift_summary"], forecast=read["forecast"],
                      cards=model_cards(paths.models_dir), accuracy=read["accuracy_summary"],
                      links={"validation": paths.validation_page, "accuracy": paths.accuracy_page,
                             "classification": paths.classification_page,
                             "drift": paths.drift_page})
    html_text = page.read_text(encoding="utf-8")
    assert "1 index merged" in html_text and "1 indices" not in html_text


def test_every_page_has_the_header_the_way_back_and_fits_a_desktop(chromium, trained_project,
                                                                   tmp_path):
    """Every HTML page a run writes (every one under reports/, found, not listed) and the
    page `dvc plots show` writes: in Chromium at 1,400 px, the project's header says what
    the page shows and for which model and data; each page but the front page links back to
    it; nothing sticks out sideways; the Evidently classification page names each model."""
    import json

    project = trained_project
    shown = run(["dvc", "plots", "show"], project)
    assert "dvc_plots/index.html" in shown.stdout + shown.stderr
    front = project / "reports/index.html"
    pages = sorted(project.glob("reports/**/*.html")) + [project / "dvc_plots/index.html"]
    assert len(pages) >= 7, pages  # front, validation, accuracy, classification, drift x2, plots
    texts = {}
    for page in pages:
        name = page.relative_to(project).as_posix()
        laid = browser.layout(page, 1400, height=1200,
                              screenshot=tmp_path / (name.replace("/", "-") + ".png"))
        assert laid.problems() == [], (name, laid.problems())
        text = texts[name] = " ".join(laid.rendered.text.split())
        assert text.startswith("tsepipe · "), (name, text[:200])  # the header comes first
        if "dvc_plots" not in name:  # a page of this version's model and data
            assert "model: " in text and "data: " in text, (name, text[:400])
        backs = [link for link in laid.rendered.links
                 if (page.parent / link.split("#")[0]).resolve() == front.resolve()]
        assert (page == front) == (not backs), (name, laid.rendered.links)
    board = json.loads((project / "reports/evaluation/leaderboard.json").read_text())
    compared = {board["champion"], board["best_baseline_on_test"]} | {
        name for name, model in board["models"].items() if model["kind"] == "network"}
    shown = texts["reports/accuracy/classification.html"]
    assert f"{board['champion']} (champion)" in shown
    for model in compared:  # each model's section, headed by its name
        assert f"{model}: Confusion Matrix" in shown or f"{model} (champion)" in shown, model
