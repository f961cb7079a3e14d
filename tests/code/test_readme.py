"""The README starts short and true: the two commands, then the demo's recorded result.

Its first table must show the figures of ``docs/demo-result.json`` (what ``python
tools/demo.py --record`` took from a ``make demo`` run), and every link of the README and of
``docs/`` must lead somewhere. Reads files only: no training, no run.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import demo  # noqa: E402  (tools/demo.py: not a package)

README = ROOT / "README.md"
DOCS = ROOT / "docs"
FIRST_SCREEN = 80  # lines
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FIGURE = re.compile(r"-?\d+\.\d{3}")


def first_table(text: str) -> tuple[int, list[list[str]]]:
    """The line number (from 1) where the first Markdown table ends, and its body rows'
    cells (header and rule left out)."""
    lines = text.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("|"))
    end = next((n for n in range(start, len(lines)) if not lines[n].startswith("|")),
               len(lines))
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in lines[start + 2:end]]
    return end, rows


def table_differences(text: str, record: dict) -> list[str]:
    """Each figure of the README's first table that is not the recorded one, and each row
    the record has that the table lacks (or the other way round)."""
    _, rows = first_table(text)
    models = {row["model"]: row for row in record["models"]}
    found, wrong = [], []
    for cells in rows:
        name = re.sub(r"\*|\s*\(.*\)$", "", cells[0])
        found.append(name)
        if name not in models:
            wrong.append(f"{name}: not in the record")
            continue
        recorded = models[name]
        shown = [float(x) for x in FIGURE.findall(cells[1]) + FIGURE.findall(cells[2])]
        wanted = [recorded["test_mcc"], *recorded["test_mcc_interval"],
                  recorded["validation_mcc"]]
        if shown != wanted:
            wrong.append(f"{name}: the README shows {shown}, the record {wanted}")
        if ("champion" in cells[0]) != (name == record["champion"]):
            wrong.append(f"{name}: champion in one and not in the other")
    expected = [row["model"] for row in demo.result_rows(record)]
    if found != expected:
        wrong.append(f"rows {found}, the record's {expected}")
    return wrong


def test_the_readme_starts_with_the_two_commands_and_ci_runs_the_second():
    lines = README.read_text(encoding="utf-8").splitlines()
    fence = lines.index("```bash")
    commands = [line.split("#")[0].strip() for line in lines[fence + 1:lines.index("```")]]
    assert fence < 5 and commands == ["make demo", "make test"]
    ci = (ROOT / ".ci/run").read_text(encoding="utf-8").splitlines()
    assert any(line.split("#")[0].strip() == commands[1] for line in ci)


def test_the_first_screen_shows_the_recorded_demo_result():
    text = README.read_text(encoding="utf-8")
    record = json.loads((DOCS / "demo-result.json").read_text(encoding="utf-8"))
    end, rows = first_table(text)
    assert end <= FIRST_SCREEN and len(rows) >= 3  # champion, best baseline, persistence
    assert table_differences(text, record) == []
    names = {re.sub(r"\*|\s*\(.*\)$", "", cells[0]) for cells in rows}
    assert {record["champion"], record["best_baseline"], "persistence"} <= names
    block = text[text.index(demo.BLOCK_START):text.index(demo.BLOCK_END) + len(demo.BLOCK_END)]
    assert block == demo.result_block(record), "python tools/demo.py --readme rewrites it"
    assert f"P(up) {record['call']['probability_up']:.3f}" in block


def test_the_check_finds_a_figure_out_of_step():
    text = README.read_text(encoding="utf-8")
    record = json.loads((DOCS / "demo-result.json").read_text(encoding="utf-8"))
    champion = next(row for row in record["models"] if row["model"] == record["champion"])
    moved = {**record, "models": [
        {**row, "test_mcc": round(row["test_mcc"] + 0.001, 3)} if row is champion else row
        for row in record["models"]]}
    shown = [champion["test_mcc"], *champion["test_mcc_interval"], champion["validation_mcc"]]
    wanted = [round(shown[0] + 0.001, 3), *shown[1:]]
    assert table_differences(text, moved) == [
        f"{record['champion']}: the README shows {shown}, the record {wanted}"]
    assert demo.figures(moved) != demo.figures(record)  # make demo would say it differs


def anchors(path: Path) -> set[str]:
    """The heading anchors of a Markdown file as GitHub makes them (code blocks skipped)."""
    found, fenced = set(), False
    for line in path.read_text(encoding="utf-8").splitlines():
        fenced ^= line.startswith("```")
        if not fenced and line.startswith("#"):
            heading = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", heading).replace(" ", "-"))
    return found


def test_every_link_of_the_readme_and_the_docs_leads_somewhere():
    pages = [README, *sorted(DOCS.glob("*.md"))]
    broken = []
    for page in pages:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            name, _, anchor = target.partition("#")
            linked = (page.parent / name).resolve() if name else page
            if not linked.exists() or (anchor and anchor not in anchors(linked)):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    unlisted = [path.name for path in DOCS.glob("*.md")
                if path.name != "index.md" and f"]({path.name})" not in index]
    assert unlisted == []


def test_the_link_check_can_fail(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# A title: `here`\n\n```\n# not a heading\n```\n", encoding="utf-8")
    assert anchors(page) == {"a-title-here"}
    assert LINK.findall("see [the\nmerge](data.md#the-merge) and ![x](y.png)") == [
        "data.md#the-merge", "y.png"]
