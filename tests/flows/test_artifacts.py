"""The artifacts' markdown as the Prefect UI renders it: names as written, never markup."""

from __future__ import annotations

import pytest
from markdown_it import MarkdownIt

from flows.artifacts import code_span, inert_markdown

RENDER = MarkdownIt("commonmark").enable("table")


@pytest.mark.parametrize("name", [
    "IRX6XTPI0009__logret", "mean_forecast", "*bold* ~~gone~~", "a|b", "# heading",
    "> quote", "- item", "[x](javascript:alert(1))", "&lt;b&gt; &#95;", "back\\slash",
    "<script>alert(1)</script>", "<img src=x onerror=alert(2)>",
])
def test_a_name_shows_as_written_in_a_line_and_in_a_table_cell(name):
    html_name = name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    line = RENDER.render(f"- model: {inert_markdown(name)} (kind)\n")
    assert line == f"<ul>\n<li>model: {html_name} (kind)</li>\n</ul>\n", line
    table = RENDER.render(f"| a | b |\n|---|---|\n| {inert_markdown(name)} | 1 |\n")
    assert f"<td>{html_name}</td>\n<td>1</td>" in table, table
    assert ("&#" in inert_markdown(name)) == ("&#" in name)  # no entity of ours
    alone = RENDER.render(inert_markdown(name))  # a value that starts the line
    assert alone == f"<p>{html_name}</p>\n", alone


def test_a_code_span_holds_backticks_and_newlines_verbatim():
    assert RENDER.render(code_span("s3://bucket/a`b")) == "<p><code>s3://bucket/a`b</code></p>\n"
    assert RENDER.render(code_span("`x\ny")) == "<p><code>`x y</code></p>\n"
