"""A TSETMC look-alike on loopback: serves index histories and injects faults on request.

A real HTTP server (``http.server.ThreadingHTTPServer`` on 127.0.0.1, a free port, in a
daemon thread) answering ``GET [/api]/Index/GetIndexB2History/{insCode}`` like
``https://cdn.tsetmc.com/api`` does, from a dict ``insCode -> answer bytes``. By default it
serves the recorded TEDPIX answer (2,679 days, 2008-12-04 .. 2019-12-31) that the
repository carries (``data/examples/tedpix-2008-2019/IRX6XTPI0009.json``). Any other path
or code is answered 404.

    with TsetmcServer() as server:                     # or TsetmcServer(answers={code: bytes})
        server.base_url                                # http://127.0.0.1:PORT/api
        server.faults[TEDPIX_CODE] = [Fault.http_error(500, times=2)]  # then the answer
        server.answers[TEDPIX_CODE] = encode(cut(recorded_rows(), 20190630))
        ...
        server.requests                                # [Request(path, code, time, status)]

``faults[code]`` is a queue, consumed one request at a time: each ``Fault`` applies to its
next ``times`` requests for that code (``times=None``: to every one from then on), then the
next fault; when the queue is empty the code's normal answer is served. Faults: an HTTP
error status, a delay (longer than the client's timeout: the client gives up), a truncated
answer, any other body, the normal answer transformed (an empty history, a renamed field,
a shortened history, changed values), or a connection dropped without an answer.

It imports nothing from the project, so any test (the end-to-end one too) can use it.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "data" / "examples"  # the real data in the repository (its README.md)
TEDPIX_ISIN = "IRX6XTPI0009"
TEDPIX_CODE = 32097828799138957
TEDPIX_DAYS = 2679
CLOSE, LOW, HIGH = "xNivInuClMresIbs", "xNivInuPbMresIbs", "xNivInuPhMresIbs"
_PATH = re.compile(r"(?:/api)?/Index/GetIndexB2History/(\d+)/?")

Rows = list[dict[str, Any]]


# -- answers --------------------------------------------------------------------------------

def recorded_answer_path() -> Path:
    """The recorded answer of GetIndexB2History/32097828799138957 (TEDPIX)."""
    return EXAMPLES / "tedpix-2008-2019" / f"{TEDPIX_ISIN}.json"


@functools.cache
def recorded_answer() -> bytes:
    """The recorded TEDPIX answer, as TSETMC sent it."""
    return recorded_answer_path().read_bytes()


def recorded_rows() -> Rows:
    """The recorded TEDPIX rows (a fresh copy each call: change it freely)."""
    return json.loads(recorded_answer())["indexB2"]


def rows_for(code: int, rows: Rows | None = None) -> Rows:
    """``rows`` (default: the recorded TEDPIX rows) as another index's: insCode replaced."""
    return [row | {"insCode": code} for row in (recorded_rows() if rows is None else rows)]


def encode(rows: Rows) -> bytes:
    """An answer body, compact like TSETMC's: ``{"indexB2":[...]}``."""
    return json.dumps({"indexB2": rows}, separators=(",", ":")).encode("utf-8")


def cut(rows: Rows, last_day: int) -> Rows:
    """The rows up to ``last_day`` (YYYYMMDD) included."""
    return [row for row in rows if row["dEven"] <= last_day]


def rename_field(rows: Rows, old: str, new: str) -> Rows:
    """Every row with field ``old`` renamed ``new`` (an upstream schema change)."""
    return [{(new if key == old else key): value for key, value in row.items()}
            for row in rows]


def change(rows: Rows, changes: Mapping[int, Mapping[str, float]]) -> Rows:
    """``rows`` with some values changed: ``{dEven: {field: new value}}``."""
    return [row | dict(changes.get(row["dEven"], {})) for row in rows]


# -- faults ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Fault:
    """What to do instead of the normal answer, for the next ``times`` requests.

    Build them with the class methods. ``status``: the HTTP status; ``delay``: seconds to
    wait before answering; ``body``: the body to send instead; ``location``: a redirect's
    target; ``transform``: applied to
    the normal answer's rows; ``truncate_at``: send only this many bytes of the body (as a
    complete HTTP answer: the JSON is cut, not the connection); ``drop``: close the
    connection without answering.
    """

    kind: str
    status: int = 200
    delay: float = 0.0
    body: bytes | None = None
    transform: Callable[[Rows], Rows] | None = None
    truncate_at: int | None = None
    drop: bool = False
    location: str | None = None
    times: int | None = 1

    @classmethod
    def http_error(cls, status: int = 500, times: int | None = 1) -> Fault:
        return cls("http_error", status=status, body=b'{"error":"injected"}', times=times)

    @classmethod
    def slow(cls, seconds: float, times: int | None = 1) -> Fault:
        """Answer normally, but only after ``seconds`` (longer than the client's timeout)."""
        return cls("slow", delay=seconds, times=times)

    @classmethod
    def truncated(cls, at: int | None = None, times: int | None = 1) -> Fault:
        """The normal answer cut after ``at`` bytes (default: half of it)."""
        return cls("truncated", truncate_at=-1 if at is None else at, times=times)

    @classmethod
    def answer(cls, body: bytes, status: int = 200, times: int | None = 1) -> Fault:
        return cls("answer", status=status, body=body, times=times)

    @classmethod
    def empty_history(cls, times: int | None = 1) -> Fault:
        return cls("empty_history", body=b'{"indexB2":[]}', times=times)

    @classmethod
    def renamed_field(cls, old: str = CLOSE, new: str = "xNivInuClMresIbsNew",
                      times: int | None = 1) -> Fault:
        return cls("renamed_field", transform=lambda rows: rename_field(rows, old, new),
                   times=times)

    @classmethod
    def shortened(cls, last_day: int, times: int | None = 1) -> Fault:
        """The normal answer without the days after ``last_day`` (YYYYMMDD)."""
        return cls("shortened", transform=lambda rows: cut(rows, last_day), times=times)

    @classmethod
    def changed(cls, changes: Mapping[int, Mapping[str, float]],
                times: int | None = 1) -> Fault:
        """The normal answer with ``{dEven: {field: new value}}`` changed."""
        changes = copy.deepcopy(dict(changes))
        return cls("changed", transform=lambda rows: change(rows, changes), times=times)

    @classmethod
    def redirect(cls, location: str, status: int = 302, times: int | None = 1) -> Fault:
        """Answer ``status`` with ``Location: location`` and no body."""
        return cls("redirect", status=status, body=b"", location=location, times=times)

    @classmethod
    def dropped(cls, times: int | None = 1) -> Fault:
        """Close the connection without sending an answer."""
        return cls("dropped", drop=True, times=times)


@dataclass(frozen=True)
class Request:
    """One request received: its path, the insCode asked for (or None), when it arrived
    (``time.monotonic()``), the status answered, and the fault applied (its kind)."""

    path: str
    code: int | None
    time: float
    status: int
    fault: str | None


# -- the server -----------------------------------------------------------------------------

class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: TsetmcServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.server.owner._connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._connections.discard(self.connection)

    def do_GET(self) -> None:
        owner = self.server.owner
        arrived = time.monotonic()
        match = _PATH.fullmatch(self.path.split("?", 1)[0])
        code = int(match.group(1)) if match else None
        status, body, fault = owner._answer(code)
        owner._record(Request(self.path, code, arrived, status, fault and fault.kind))
        if fault is not None and fault.delay and owner._stopping.wait(fault.delay):
            return  # stopped while waiting
        if fault is not None and fault.drop:
            self.close_connection = True
            return
        try:
            self.send_response(status)
            if fault is not None and fault.location:
                self.send_header("Location", fault.location)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except OSError:  # the client gave up (timed out) meanwhile
            self.close_connection = True


class TsetmcServer:
    """The server (see the module's docstring); a context manager, started on entry."""

    def __init__(self, answers: Mapping[int, bytes] | None = None):
        self.answers: dict[int, bytes] = (dict(answers) if answers is not None
                                          else {TEDPIX_CODE: recorded_answer()})
        self.faults: dict[int, list[Fault]] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        """The API root to give fetch, like ``https://cdn.tsetmc.com/api``."""
        return f"http://127.0.0.1:{self.port}/api"

    def url(self, code: int) -> str:
        return f"{self.base_url}/Index/GetIndexB2History/{code}"

    def start(self) -> TsetmcServer:
        httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._stopping.clear()
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"tsetmc-server-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection: the port then refuses."""
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        for conn in list(self._connections):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None

    def __enter__(self) -> TsetmcServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def requests_for(self, code: int) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.code == code]

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _answer(self, code: int | None) -> tuple[int, bytes, Fault | None]:
        """(status, body, fault) for a request for ``code``; consumes one fault's use."""
        with self._lock:
            normal = self.answers.get(code) if code is not None else None
            queue = self.faults.get(code) if code is not None else None
            fault = None
            if queue:
                fault = queue[0]
                if fault.times is not None:
                    if fault.times <= 1:
                        queue.pop(0)
                    else:
                        queue[0] = dataclasses.replace(fault, times=fault.times - 1)
        if normal is None and (fault is None or fault.body is None):
            return 404, b'{"error":"not found"}', fault
        if fault is None:
            return 200, normal, None
        body = fault.body if fault.body is not None else normal
        if fault.transform is not None:
            body = encode(fault.transform(json.loads(normal)["indexB2"]))
        if fault.truncate_at is not None:
            at = len(body) // 2 if fault.truncate_at < 0 else fault.truncate_at
            body = body[:at]
        return fault.status, body, fault


def dead_base_url() -> str:
    """A base URL on a loopback port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api"
