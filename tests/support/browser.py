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

Only the standard library: this file is also the script that runs inside the namespace
(``python browser.py --inner spec.json``).
"""

from __future__ import annotations

import functools
import html.parser
import json
import os
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
from dataclasses import dataclass, field
from pathlib import Path
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
