"""Open an HTML report in headless Chromium with the network off, and check what it shows.

`render(page)` loads ``file://page`` once and returns the DOM after its scripts ran
(``--dump-dom``), a screenshot (``--screenshot``), and every network request the page
attempted.  The network is off in two layers:

1. where ``unshare -rn`` works, Chromium runs in a fresh network namespace (no interfaces
   but a loopback), so nothing can leave the machine whatever Chromium does;
2. always, every http(s)/ws(s) request goes to a recording proxy on that loopback, which
   answers 403 (``--proxy-server``), and host names resolve to nothing
   (``--host-resolver-rules``).

Requests are read from Chromium's own network log (``--log-net-log``): a request whose
initiator is a page (not the browser itself) is the page's.  The browser's own background
requests (sign-in, time, search-engine fetches) are switched off by flags where Chromium
allows it and otherwise kept apart in ``Rendered.background``.  Anything the proxy saw for a
host that the log does not give to the browser counts as the page's too.

`layout(page, width)` lays the page out at exactly `width` px (a phone's 390, a desktop's
1400) and lists what sticks out past the window's right edge (``Layout.problems()``).

Only the standard library: this file is also the script that runs inside the namespace
(``python browser.py --inner spec.json``).
"""

from __future__ import annotations

import functools
import html
import html.parser
import json
import os
import re
import shutil
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

TIMEOUT = 60  # seconds for one Chromium run (and for every other subprocess here)
NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
NETWORK_SCHEMES = ("http", "https", "ws", "wss", "ftp")
# Chromium's own requests that flags can switch off (checked with Chromium 150, Debian 12):
# network time, the search engine's preconnect, the AI-mode eligibility fetch.
DISABLED_FEATURES = ("NetworkTimeServiceQuerying", "PreconnectToSearch",
                     "AimServerEligibilityEnabled", "AimEnabled", "OptimizationHints",
                     "MediaRouter", "Translate", "AutofillServerCommunication",
                     "CertificateTransparencyComponentUpdater")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
    "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-default-apps",
    "--disable-extensions", "--disable-breakpad", "--disable-crash-reporter",
    "--disable-domain-reliability", "--disable-client-side-phishing-detection",
    "--no-pings", "--metrics-recording-only", "--mute-audio", "--hide-scrollbars",
    f"--disable-features={','.join(DISABLED_FEATURES)}",
    "--proxy-bypass-list=<-loopback>",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
)
# noise in Chromium's stderr on a machine with no D-Bus / no GPU (left out of failure messages)
NOISE = ("dbus", "unexpected operator", "Fontconfig", "bytes written to file")


class BrowserError(AssertionError):
    """Chromium is missing or failed; the message says why (with its stderr tail)."""


# --------------------------------------------------------------------------- the browser

@functools.cache
def find_chromium() -> str:
    """The Chromium (or Chrome) to use: $TSEPIPE_CHROMIUM, else the first of NAMES on PATH."""
    wanted = os.environ.get("TSEPIPE_CHROMIUM")
    candidates = [wanted] if wanted else list(NAMES)
    for name in candidates:
        path = shutil.which(name) or (name if os.path.isfile(name) else None)
        if not path:
            continue
        try:
            done = subprocess.run([path, "--version"], capture_output=True, text=True,
                                  timeout=TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise BrowserError(f"{path} --version failed: {error}") from error
        if done.returncode == 0 and done.stdout.strip():
            return path
        raise BrowserError(f"{path} --version exited {done.returncode}: "
                           f"{tail(done.stdout + done.stderr)}")
    where = f"TSEPIPE_CHROMIUM={wanted!r} is not" if wanted else f"none of {', '.join(NAMES)} is"
    raise BrowserError(f"no headless browser: {where} an executable. The browser tests need "
                       "one: `apt-get install chromium` (.ci/run does this), or set "
                       "TSEPIPE_CHROMIUM to a Chromium/Chrome binary.")


@functools.cache
def chromium_version() -> str:
    return subprocess.run([find_chromium(), "--version"], capture_output=True, text=True,
                          timeout=TIMEOUT).stdout.strip()


@functools.cache
def can_unshare() -> bool:
    """Whether this machine lets an unprivileged process make its own network namespace."""
    if os.environ.get("TSEPIPE_BROWSER_UNSHARE", "1") == "0" or not shutil.which("unshare"):
        return False
    try:
        return subprocess.run(["unshare", "-rn", "true"], capture_output=True,
                              timeout=TIMEOUT).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def tail(text: str, lines: int = 25) -> str:
    kept = [line for line in text.splitlines() if line.strip()
            and not any(noise in line for noise in NOISE)]
    return "\n".join(kept[-lines:]) or "(nothing)"


# --------------------------------------------------------------------------- rendering

@dataclass
class Rendered:
    page: Path
    dom: str                   # the DOM after the page's scripts ran
    screenshot: Path | None
    size: tuple[int, int]      # the window asked for (width, height)
    requests: list[str]        # network requests the page attempted (all refused)
    background: list[str]      # the browser's own requests (refused; not the page's doing)
    proxied: list[str]         # request lines the recording proxy saw (page's and browser's)
    isolated: bool             # ran in its own network namespace (unshare -rn)
    seconds: float             # Chromium's wall time
    stderr: str = field(repr=False)

    @functools.cached_property
    def _read(self) -> _Reader:
        return _read(self.dom)

    @property
    def text(self) -> str:
        """The visible text of the body (see visible_text)."""
        return " ".join(self._read.text)

    @property
    def links(self) -> list[str]:
        """The DOM's links (see links)."""
        return list(self._read.links)

    def problems(self, min_text: int = 1, allowed_hosts: Iterable[str] = ()) -> list[str]:
        """Everything wrong: requests, external or broken links, no text, a blank screenshot.

        `allowed_hosts`: other hosts that links (never requests) may point to.
        """
        found = [f"the page requested {url}" for url in self.requests]
        found += link_problems(self.page, self.links, allowed_hosts)
        if len(self.text) < min_text:
            found.append(f"no visible text (fewer than {min_text} characters) in the body")
        if self.screenshot is not None:
            found += screenshot_problems(self.screenshot, self.size)
        return found

    def check(self, min_text: int = 1, allowed_hosts: Iterable[str] = ()) -> Rendered:
        """Raise BrowserError listing problems() (with Chromium's stderr tail) if any."""
        found = self.problems(min_text, allowed_hosts)
        if found:
            raise BrowserError(f"{self.page} in {chromium_version()}"
                               f"{' (own network namespace)' if self.isolated else ''}:\n  "
                               + "\n  ".join(found) + f"\nchromium stderr:\n{tail(self.stderr)}")
        return self


def render(page: Path, screenshot: Path | None = None, width: int = 1280, height: int = 900,
           timeout: float = TIMEOUT, budget_ms: int = 5000, isolate: bool | None = None
           ) -> Rendered:
    """Load `page` (a local file) in headless Chromium with the network off.

    `screenshot`: where to write a PNG of the first `width` x `height` pixels (None: none).
    `budget_ms`: virtual time the page's scripts and timers get before the DOM is read.
    `isolate`: run in a fresh network namespace (default: where `unshare -rn` works).
    """
    page = Path(page).resolve()
    if not page.is_file():
        raise BrowserError(f"no page to render: {page}")
    isolate = can_unshare() if isolate is None else isolate
    with tempfile.TemporaryDirectory(prefix="tsepipe-browser-") as work_name:
        work = Path(work_name)
        netlog, result = work / "netlog.json", work / "result.json"
        args = [f"--user-data-dir={work / 'profile'}", f"--window-size={width},{height}",
                f"--virtual-time-budget={budget_ms}", f"--log-net-log={netlog}",
                "--net-log-capture-mode=Default", "--dump-dom"]
        if screenshot is not None:
            screenshot = Path(screenshot).resolve()
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.unlink(missing_ok=True)
            args.append(f"--screenshot={screenshot}")
        spec = {"chromium": find_chromium(), "args": [*FLAGS, *args, page.as_uri()],
                "timeout": timeout, "isolated": isolate, "home": str(work / "home"),
                "result": str(result)}
        (work / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
        command = [sys.executable, str(Path(__file__).resolve()), "--inner",
                   str(work / "spec.json")]
        if isolate:
            command = ["unshare", "-rn", *command]
        try:
            outer = subprocess.run(command, capture_output=True, text=True, timeout=timeout + 30)
        except subprocess.TimeoutExpired as error:
            raise BrowserError(f"rendering {page} did not finish in {timeout + 30} s") from error
        if not result.exists():
            raise BrowserError(f"the browser runner for {page} exited {outer.returncode}:\n"
                               f"{tail(outer.stdout + outer.stderr)}")
        run = json.loads(result.read_text(encoding="utf-8"))
        if run["error"] or run["returncode"] != 0 or not run["dom"].strip():
            why = run["error"] or f"chromium exited {run['returncode']}"
            raise BrowserError(f"rendering {page} failed: {why}\n"
                               f"chromium stderr:\n{tail(run['stderr'])}")
        page_urls, browser_urls = netlog_requests(netlog)
    browser_hosts = {urlsplit(url).hostname for url in browser_urls}
    known_hosts = browser_hosts | {urlsplit(url).hostname for url in page_urls}
    for line in run["proxied"]:  # the second layer: what got past the log's attribution
        if proxy_host(line) not in known_hosts:
            page_urls.append(f"{line} (seen by the proxy only)")
    return Rendered(page=page, dom=run["dom"], screenshot=screenshot, size=(width, height),
                    requests=page_urls, background=browser_urls, proxied=run["proxied"],
                    isolated=isolate, seconds=run["seconds"], stderr=run["stderr"])


def netlog_requests(netlog: Path) -> tuple[list[str], list[str]]:
    """(the page's, the browser's own) network URL requests in a Chromium net-log file."""
    if not netlog.exists():
        raise BrowserError(f"chromium wrote no net-log ({netlog})")
    text = netlog.read_text(encoding="utf-8", errors="replace").rstrip()
    try:
        log = json.loads(text)
    except json.JSONDecodeError:  # cut short (a killed browser): close the events list
        log = json.loads(text.rstrip(",") + "]}")
    names = {number: name for name, number in log["constants"]["logEventTypes"].items()}
    page, browser = [], []
    for event in log.get("events", []):
        params = event.get("params") or {}
        if names.get(event["type"]) != "URL_REQUEST_START_JOB" or "url" not in params:
            continue
        url = params["url"]
        parts = urlsplit(url)
        remote_file = parts.scheme == "file" and parts.hostname not in (None, "", "localhost")
        if parts.scheme not in NETWORK_SCHEMES and not remote_file:
            continue
        # a request the browser makes for itself has no initiator ("not an origin")
        own = params.get("initiator", "not an origin") == "not an origin"
        target = browser if own else page
        if url not in target:
            target.append(url)
    return page, browser


def proxy_host(line: str) -> str | None:
    """The host in a proxied request line ("CONNECT h:443 HTTP/1.1", "GET http://h/ ...")."""
    words = line.split()
    if len(words) < 2:
        return None
    if words[0] == "CONNECT":
        return urlsplit(f"//{words[1]}").hostname
    return urlsplit(words[1]).hostname


# --------------------------------------------------------------------------- layout

# Measures the page it is put into (a copy) and posts the result to the frame around it:
# inline, so it requests nothing, and it takes itself out of the DOM so the page's text and
# links are the page's own.  An element "sticks out" when its box, or a text of its own (a
# long word), ends past the window's right edge; it does not count inside an ancestor (below
# <body>) that scrolls or clips sideways.  <html>/<body> clipping is no excuse: their overflow
# is the window's, and what it hides cannot be scrolled to.  Only the outermost are listed.
LAYOUT_SCRIPT = """<script>(() => {
  document.currentScript.remove();
  const clips = new Set(["auto", "scroll", "hidden", "clip"]), inside = new Map();
  const root = document.documentElement;
  function clipped(el) {  // an ancestor below <body> scrolls or clips sideways
    const up = el.parentElement;
    if (!up || up === document.body || up === root) return false;
    if (!inside.has(up)) inside.set(up, clips.has(getComputedStyle(up).overflowX) || clipped(up));
    return inside.get(up);
  }
  function measure() {
    const limit = innerWidth + 1, right = new Map();
    const all = document.body ? [document.body, ...document.body.querySelectorAll("*")] : [];
    for (const el of all) {
      const box = el.getBoundingClientRect();
      if (box.width || box.height) right.set(el, box.right + scrollX);
    }
    if (document.body) {  // a text past its element's box counts against the element
      const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
      const range = document.createRange();
      for (let node = walk.nextNode(); node; node = walk.nextNode()) {
        const el = node.parentElement;
        if (!el || !/\\S/.test(node.data)) continue;
        range.selectNodeContents(node);
        const edge = range.getBoundingClientRect().right + scrollX;
        if (edge > limit && edge > (right.get(el) || 0)
            && !clips.has(getComputedStyle(el).overflowX)) right.set(el, edge);
      }
    }
    const overflowing = [], listed = new Set();
    for (const el of all) {
      if (listed.has(el.parentElement)) { listed.add(el); continue; }
      if (!((right.get(el) || 0) > limit) || clipped(el)) continue;
      listed.add(el);
      overflowing.push({tag: el.localName, id: el.getAttribute("id") || "",
                        class: el.getAttribute("class") || "", right: Math.ceil(right.get(el)),
                        text: (el.innerText ?? el.textContent ?? "").replace(/\\s+/g, " ")
                              .trim().slice(0, 60)});
    }
    const doctype = document.doctype ? new XMLSerializer().serializeToString(document.doctype)
                                       + "\\n" : "";  // as --dump-dom writes it
    parent.postMessage(JSON.stringify({innerWidth, scrollWidth: root.scrollWidth, overflowing,
                                       dom: doctype + root.outerHTML}), "*");
  }
  function twice() { measure(); setTimeout(measure, 1000); }  // again for late-drawn charts
  if (document.readyState === "complete") twice(); else addEventListener("load", twice);
})();</script>"""
# The window Chromium lays the page out in is never narrower than 500 px (--window-size
# 390,900 gives innerWidth 500; only --screenshot is taken at 390), so the copy is measured
# in a frame exactly `width` px wide: its innerWidth and media queries are a `width` window's.
LAYOUT_FRAME = """<!doctype html>
<html><head><meta charset="utf-8"><title>layout</title>
<style>html, body {{ margin: 0; overflow: hidden }}
iframe {{ display: block; border: 0; width: {width}px; height: {height}px }}</style>
<script>addEventListener("message", event => {{
  if (event.source === frames[0]) document.getElementById("{mark}").textContent = event.data;
}});</script></head>
<body><iframe src="{copy}"></iframe><pre id="{mark}" hidden></pre></body></html>
"""
LAYOUT_MARK = "tsepipe-layout"


@dataclass
class Overflow:
    """An element that sticks out past the window's right edge (not scrolled or clipped)."""
    tag: str
    id: str
    classes: str   # its class attribute
    right: int     # its right edge (or its own text's), px from the page's left
    text: str      # the first 60 characters of its text

    def __str__(self) -> str:
        classes = f'"{self.classes}"' if " " in self.classes else self.classes
        return (f"<{self.tag}{f' id={self.id}' if self.id else ''}"
                f"{f' class={classes}' if self.classes else ''}>")


@dataclass
class Layout:
    page: Path
    width: int                  # the window width asked for
    inner_width: int            # window.innerWidth the page saw
    scroll_width: int           # document.documentElement.scrollWidth: the page's width
    overflowing: list[Overflow]  # the outermost elements that stick out (see LAYOUT_SCRIPT)
    rendered: Rendered          # the page's DOM, requests and screenshot at this width

    def problems(self, most: int = 20) -> list[str]:
        """What overflows sideways, in words (at most `most` elements); [] when nothing does."""
        found = []
        if self.inner_width != self.width:  # measured at another width: nothing else holds
            found.append(f"the window is {self.inner_width} px wide, not the {self.width} px "
                         "asked for")
        if self.scroll_width > self.inner_width:
            found.append(f"the page is {self.scroll_width} px wide at a {self.inner_width} px "
                         "window")
        found += [f"{item} sticks out to {item.right} px: {item.text!r}"
                  for item in self.overflowing[:most]]
        if len(self.overflowing) > most:
            found.append(f"and {len(self.overflowing) - most} more elements stick out")
        return found

    def check(self) -> Layout:
        """Raise BrowserError listing problems() if any."""
        found = self.problems()
        if found:
            raise BrowserError(f"{self.page} at {self.width}x{self.rendered.size[1]} in "
                               f"{chromium_version()}:\n  " + "\n  ".join(found))
        return self


def measured_layout(page: Path, width: int, script: bytes, attribute: str, height: int,
                    screenshot: Path | None = None) -> tuple[Layout, Any]:
    """``layout`` of a copy of ``page`` with ``script`` before its </body> (``measured.html``
    beside it), checked (nothing sticks out of the window), and the JSON the script left in
    the DOM's ``data-ATTRIBUTE`` attribute."""
    copy = page.with_name("measured.html")
    source = page.read_bytes()
    end = source.lower().rfind(b"</body")
    copy.write_bytes(source[:end] + script + source[end:])
    laid_out = layout(copy, width, height=height, screenshot=screenshot).check()
    found = re.search(rf'data-{attribute}="([^"]*)"', laid_out.rendered.dom)
    assert found, f"{page}: the script measured nothing (no data-{attribute})"
    return laid_out, json.loads(html.unescape(found.group(1)))


def layout(page: Path, width: int, height: int = 900, screenshot: Path | None = None,
           timeout: float = TIMEOUT, budget_ms: int = 5000) -> Layout:
    """How `page` (a local file) lays out in a `width` x `height` window: what sticks out.

    A copy of the page with LAYOUT_SCRIPT before its </body> and a frame page holding it at
    exactly `width` x `height` px are written beside `page` (hidden names, so relative links
    still resolve; removed however this ends) and the frame page is `render`ed: same flags,
    network off.  `screenshot`: a PNG of the page at that size (None: none).  The Layout's
    `rendered` has the page's own DOM (as the script saw it, a second after load), the
    requests of the page and a screenshot; its `page` is `page`.
    """
    page = Path(page).resolve()
    if not page.is_file():
        raise BrowserError(f"no page to measure: {page}")
    source = page.read_bytes()  # bytes: the page's own encoding stays as it is
    end = source.lower().rfind(b"</body")
    end = len(source) if end < 0 else end
    copy = frame = None
    try:
        handle, name = tempfile.mkstemp(prefix=f".{page.stem}.layout-", suffix=".html",
                                        dir=page.parent)
        copy = Path(name)
        with os.fdopen(handle, "wb") as out:
            out.write(source[:end] + LAYOUT_SCRIPT.encode() + b"\n" + source[end:])
        handle, name = tempfile.mkstemp(prefix=f".{page.stem}.layout-frame-", suffix=".html",
                                        dir=page.parent)
        frame = Path(name)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(LAYOUT_FRAME.format(width=width, height=height, mark=LAYOUT_MARK,
                                          copy=copy.name))
        rendered = render(frame, screenshot, width=width, height=height, timeout=timeout,
                          budget_ms=budget_ms)
    finally:
        for made in (copy, frame):
            if made is not None:
                made.unlink(missing_ok=True)
    found = re.search(f'<pre id="{LAYOUT_MARK}"[^>]*>(.*?)</pre>', rendered.dom, re.DOTALL)
    if not found or not found.group(1).strip():
        raise BrowserError(f"the layout of {page} was not measured: the page did not finish "
                           "loading, or blocks inline scripts (Content-Security-Policy)\n"
                           f"chromium stderr:\n{tail(rendered.stderr)}")
    measured = json.loads(html.unescape(found.group(1)))
    overflowing = [Overflow(tag=item["tag"], id=item["id"], classes=item["class"],
                            right=item["right"], text=item["text"])
                   for item in measured["overflowing"]]
    return Layout(page=page, width=width, inner_width=measured["innerWidth"],
                  scroll_width=measured["scrollWidth"], overflowing=overflowing,
                  rendered=replace(rendered, page=page, dom=measured["dom"]))


# --------------------------------------------------------------------------- the DOM

SKIPPED = {"script", "style", "noscript", "template", "head", "title"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
        "source", "track", "wbr"}
LINK_ATTRIBUTES = {"a": "href", "area": "href", "link": "href", "img": "src", "script": "src",
                   "iframe": "src", "frame": "src", "embed": "src", "source": "src",
                   "video": "src", "audio": "src", "track": "src", "object": "data",
                   "image": "href"}


class _Reader(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.links: list[str] = []
        self.hidden_depth = 0  # inside a skipped or hidden element
        self.stack: list[bool] = []  # per open element: whether it started hiding

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        wanted = LINK_ATTRIBUTES.get(tag)
        if wanted and values.get(wanted):
            self.links.append(values[wanted].strip())
        if tag == "image" and values.get("xlink:href"):
            self.links.append(values["xlink:href"].strip())
        if values.get("srcset"):
            self.links += [item.split()[0] for item in values["srcset"].split(",")
                           if item.strip()]
        if tag in VOID:
            return
        style = values.get("style", "").replace(" ", "").lower()
        hides = (tag in SKIPPED or "hidden" in values or "display:none" in style
                 or "visibility:hidden" in style)
        self.stack.append(hides)
        self.hidden_depth += hides

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag not in VOID and self.stack:
            self.hidden_depth -= self.stack.pop()

    def handle_data(self, data: str) -> None:
        if not self.hidden_depth and data.strip():
            self.text.append(data.strip())


def _read(dom: str) -> _Reader:
    reader = _Reader()
    reader.feed(dom)
    reader.close()
    return reader


def visible_text(dom: str) -> str:
    """The text a reader sees (not in script/style/head or hidden elements), space-joined."""
    return " ".join(_read(dom).text)


def links(dom: str) -> list[str]:
    """Every href of <a>/<area>/<link>, src of img/script/iframe/media, data of <object>."""
    return _read(dom).links


def link_problems(page: Path, hrefs: Iterable[str], allowed_hosts: Iterable[str] = ()
                  ) -> list[str]:
    """Links (e.g. `links(dom)`) that leave the machine, or lead to no file beside `page`.

    Anchors (#...), data:, blob:, about: and javascript: links are fine; a link to a host in
    `allowed_hosts` (or a subdomain of one) is let through.
    """
    page = Path(page).resolve()
    allowed = tuple(host.lower() for host in allowed_hosts)
    found = []
    for link in dict.fromkeys(hrefs):
        parts = urlsplit(link)
        scheme = parts.scheme.lower()
        if not link or link.startswith("#") or scheme in ("data", "blob", "about", "javascript"):
            continue
        if scheme in NETWORK_SCHEMES or link.startswith("//"):
            host = (parts.hostname or "").lower()
            if not any(host == name or host.endswith(f".{name}") for name in allowed):
                found.append(f"link to another host: {link}")
            continue
        if scheme in ("mailto", "tel"):
            found.append(f"unexpected {scheme} link: {link}")
            continue
        if scheme not in ("", "file"):
            found.append(f"link with an unexpected scheme: {link}")
            continue
        target = urlsplit(urljoin(page.as_uri(), link))
        if target.hostname not in (None, "", "localhost"):
            found.append(f"link to another host: {link}")
            continue
        path = Path(unquote(target.path))
        if not path.exists():
            found.append(f"broken link: {link} (no {path})")
    return found


# --------------------------------------------------------------------------- the screenshot

def png_info(path: Path) -> tuple[int, int, bool]:
    """(width, height, blank) of a PNG; blank: every pixel has the same colour.

    Plain stdlib decoding of the 8-bit, non-interlaced PNGs Chromium writes; it stops at the
    first row that shows a second colour (a page's first line of text: quick).
    """
    data = Path(path).read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG")
    position, header, compressed = 8, b"", []
    while position < len(data):
        (length,) = struct.unpack(">I", data[position:position + 4])
        kind = data[position + 4:position + 8]
        body = data[position + 8:position + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            compressed.append(body)
        elif kind == b"IEND":
            break
        position += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace:
        raise ValueError(f"{path}: unsupported PNG (depth {depth}, colour type {colour}, "
                         f"interlace {interlace})")
    raw = zlib.decompress(b"".join(compressed))
    stride = width * channels
    if len(raw) < height * (stride + 1):
        raise ValueError(f"{path}: truncated image data")
    previous = bytearray(stride)
    uniform = b""
    for y in range(height):
        start = y * (stride + 1)
        row = bytearray(raw[start + 1:start + 1 + stride])
        _unfilter(raw[start], row, previous, channels)
        uniform = uniform or bytes(row[:channels]) * width
        if row != uniform:
            return width, height, False
        previous = row
    return width, height, True


def _unfilter(kind: int, row: bytearray, previous: bytearray, bpp: int) -> None:
    if kind == 0:
        return
    n = len(row)
    if kind == 1:
        for i in range(bpp, n):
            row[i] = (row[i] + row[i - bpp]) & 0xFF
    elif kind == 2:
        for i in range(n):
            row[i] = (row[i] + previous[i]) & 0xFF
    elif kind == 3:
        for i in range(n):
            left = row[i - bpp] if i >= bpp else 0
            row[i] = (row[i] + ((left + previous[i]) >> 1)) & 0xFF
    elif kind == 4:
        for i in range(n):
            a = row[i - bpp] if i >= bpp else 0
            b = previous[i]
            c = previous[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
    else:
        raise ValueError(f"unknown PNG filter type {kind}")


def screenshot_problems(path: Path, size: tuple[int, int]) -> list[str]:
    if not path.exists() or path.stat().st_size == 0:
        return [f"no screenshot written at {path}"]
    try:
        width, height, blank = png_info(path)
    except (ValueError, zlib.error, struct.error) as error:
        return [f"the screenshot {path} is unreadable: {error}"]
    found = []
    if (width, height) != tuple(size):
        found.append(f"the screenshot is {width}x{height}, not {size[0]}x{size[1]}")
    if blank:
        found.append(f"the screenshot {path} is blank (a single colour)")
    return found


# --------------------------------------------------------------------------- inside the namespace

def _loopback_up() -> None:
    """Bring `lo` up in a fresh network namespace (SIOCGIFFLAGS / SIOCSIFFLAGS)."""
    import fcntl

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh14x", b"lo", 0)
        flags = struct.unpack("16sh14x", fcntl.ioctl(sock, 0x8913, request))[1]
        fcntl.ioctl(sock, 0x8914, struct.pack("16sh14x", b"lo", flags | 0x1))


class _Refuser(socketserver.BaseRequestHandler):
    """Record a proxied request's first line, answer 403, close."""

    def handle(self) -> None:
        self.request.settimeout(5)
        head = b""
        try:
            while b"\r\n" not in head and len(head) < 65536:
                chunk = self.request.recv(4096)
                if not chunk:
                    break
                head += chunk
            line = head.split(b"\r\n", 1)[0].decode("latin-1").strip()
            if line:
                self.server.lines.append(line)  # type: ignore[attr-defined]
            self.request.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n"
                                 b"Connection: close\r\n\r\n")
        except OSError:
            pass


class _Proxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Refuser)
        self.lines: list[str] = []


def _inner(spec_file: str) -> None:
    """Run Chromium once as `spec` says (the proxy in this process); write the result JSON."""
    spec = json.loads(Path(spec_file).read_text(encoding="utf-8"))
    result = {"dom": "", "stderr": "", "returncode": None, "proxied": [], "seconds": 0.0,
              "error": None}
    try:
        if spec["isolated"]:
            _loopback_up()
        proxy = _Proxy()
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        port = proxy.server_address[1]
        home = Path(spec["home"])
        home.mkdir(parents=True, exist_ok=True)
        env = os.environ | {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
        command = [spec["chromium"], f"--proxy-server=http://127.0.0.1:{port}", *spec["args"]]
        started = time.monotonic()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        try:
            out, err = process.communicate(timeout=spec["timeout"])
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate()
            result["error"] = f"chromium did not finish in {spec['timeout']} s"
        result["seconds"] = round(time.monotonic() - started, 2)
        result.update(dom=out.decode("utf-8", "replace"), stderr=err.decode("utf-8", "replace"),
                      returncode=process.returncode)
        proxy.shutdown()
        result["proxied"] = list(proxy.lines)
    except Exception as error:  # reported to the caller, with the type
        result["error"] = f"{type(error).__name__}: {error}"
    Path(spec["result"]).write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__" and sys.argv[1:2] == ["--inner"]:
    _inner(sys.argv[2])
