"""A fault-injecting HTTP proxy in front of a registry, and a throwaway registry to put behind it.

The proxy listens on loopback only and forwards the registry API (keep-alive, streamed
bodies, chunked uploads) to an upstream on loopback. A test arms faults through its
Python API; each fault applies to the next requests that match its methods, path and
User-Agent (buildx's and bake-ci's own registry client differ), ``times`` times or until
:meth:`FaultProxy.clear`:

- ``fail``: answer 5xx, 429 or 401 without forwarding (the body is read and dropped);
- ``reset``: reset the connection (TCP RST) instead of answering;
- ``eof``: close the connection (FIN) instead of answering: the client reads ``EOF``;
- ``cut``: forward the request line, headers and the first ``after`` bytes of the body,
  then reset both connections (a blob upload that dies mid-stream);
- ``down_on``: at the first matching request, go down as ``down()`` does;
- ``down()`` / ``up()``: stop listening (new connections are refused) and close every open
  connection, then listen again on the same port: the registry killed, then back.

Bounded: at most ``MAX_CONNECTIONS`` connections at once (more are closed at once), every
socket read and write times out, request heads and bodies have size limits.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import random
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MAX_CONNECTIONS = 64
TIMEOUT = 60.0  # seconds, any single socket read or write
MAX_BODY = 2 * 1024**3  # a request body larger than this is refused (413)
CHUNK = 64 * 1024

REASONS = {401: "Unauthorized", 429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway"}
REASONS |= {503: "Service Unavailable", 504: "Gateway Timeout"}
CODES = {401: "UNAUTHORIZED", 429: "TOOMANYREQUESTS"}


@dataclass
class Fault:
    """One armed fault: what it does, to which requests, how many more times (None: until cleared)."""

    kind: str  # "status", "reset", "eof", "cut" or "down"
    times: int | None
    methods: frozenset[str] | None = None
    path: re.Pattern[str] | None = None
    agent: re.Pattern[str] | None = None
    status: int = 503
    after: int = 0
    hits: int = 0

    def matches(self, method: str, path: str, agent: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.methods is not None and method not in self.methods:
            return False
        if self.agent is not None and self.agent.search(agent) is None:
            return False
        return self.path is None or self.path.search(path) is not None


@dataclass(frozen=True)
class Seen:
    """A request the proxy received, and what it did with it."""

    method: str
    path: str
    action: str  # "forwarded", "status 503", "reset", "cut", ...
    status: int | None = None
    agent: str = ""  # the client's User-Agent


@dataclass
class _State:
    faults: list[Fault] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    injected: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _close(sock: socket.socket | None) -> None:
    """Close the way a killed process's sockets close (FIN): an idle peer reads ``EOF``."""
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


def _reset(sock: socket.socket | None) -> None:
    """Close with an RST instead of a FIN: the peer reads ``connection reset by peer``."""
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], proxy: FaultProxy) -> None:
        self.proxy = proxy
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.open: set[socket.socket] = set()
        self.open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        with self.open_lock:
            self.open.add(request)
        try:
            super().process_request(request, client_address)
        except Exception:
            self._release(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(request)

    def _release(self, request: socket.socket) -> None:
        with self.open_lock:
            if request in self.open:
                self.open.discard(request)
                self.slots.release()

    def close_all(self) -> None:
        with self.open_lock:
            sockets = list(self.open)
        for sock in sockets:
            _close(sock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = TIMEOUT
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.upstream: http.client.HTTPConnection | None = None

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        if self.upstream is not None:
            self.upstream.close()

    def handle_one_request(self) -> None:
        try:
            if self.connection.recv(1, socket.MSG_PEEK) == b"\x16":
                # a TLS handshake: answer like a plain-HTTP Go server does, so that docker's
                # client falls back to HTTP for a loopback registry, as it does for the real one
                self.wfile.write(b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
                self.close_connection = True
                return
            super().handle_one_request()
        except OSError:
            self.close_connection = True

    def __getattr__(self, name: str) -> Callable[[], None]:
        if name.startswith("do_"):
            return self._proxy
        raise AttributeError(name)

    # -- one request -------------------------------------------------------------------

    def _note(self, action: str, status: int | None = None) -> None:
        agent = self.headers.get("User-Agent", "")
        self.server.proxy._record(self.command, self.path, agent, action, status)

    def _proxy(self) -> None:
        proxy = self.server.proxy
        fault = proxy._take(self.command, self.path, self.headers.get("User-Agent", ""))
        if fault is None:
            self._forward(None)
        elif fault.kind == "reset":
            self._note("reset")
            self.close_connection = True
            _reset(self.connection)
        elif fault.kind == "eof":
            self._note("eof")
            self.close_connection = True
            _close(self.connection)
        elif fault.kind == "down":
            self._note("down")
            self.close_connection = True
            proxy.went_down.set()
            # in a thread of its own: this request's thread is not the one to stop the server
            threading.Thread(target=proxy.down, name="faultproxy-down", daemon=True).start()
            _close(self.connection)
        elif fault.kind == "cut":
            self._note(f"cut after {fault.after} bytes")
            self._forward(fault.after)
        else:
            self._note(f"status {fault.status}", fault.status)
            self._answer(fault.status)

    def _answer(self, status: int) -> None:
        """A registry-style error answer, without asking upstream."""
        for _ in self._body():  # read the request away, so the connection stays usable
            pass
        code = CODES.get(status, "UNAVAILABLE")
        body = json.dumps({"errors": [{"code": code, "message": f"injected {status}"}]}).encode()
        self.send_response(status, REASONS.get(status))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="faultproxy"')
        if status == 429:
            self.send_header("Retry-After", "1")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _body(self) -> Iterator[bytes]:
        """The request body as it arrives on the wire (chunk framing kept), bounded."""
        length = self.headers.get("Content-Length")
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        total = 0
        if chunked:
            while True:
                line = self.rfile.readline(1024)
                if not line.endswith(b"\n"):
                    raise OSError("bad chunk header")
                size = int(line.split(b";")[0].strip() or b"0", 16)
                total += size
                if total > MAX_BODY:
                    raise OSError("request body too large")
                yield line
                remaining = size + 2  # data and its CRLF
                if size == 0:
                    # trailers up to an empty line
                    while True:
                        trailer = self.rfile.readline(1024)
                        yield trailer
                        if trailer in (b"\r\n", b"\n", b""):
                            return
                while remaining:
                    data = self.rfile.read(min(CHUNK, remaining))
                    if not data:
                        raise OSError("client closed mid-body")
                    remaining -= len(data)
                    yield data
        elif length:
            remaining = int(length)
            if remaining > MAX_BODY:
                raise OSError("request body too large")
            while remaining:
                data = self.rfile.read(min(CHUNK, remaining))
                if not data:
                    raise OSError("client closed mid-body")
                remaining -= len(data)
                yield data

    def _connect(self) -> http.client.HTTPConnection:
        if self.upstream is None:
            host, port = self.server.proxy.upstream
            self.upstream = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
        return self.upstream

    def _forward(self, cut_after: int | None) -> None:
        if int(self.headers.get("Content-Length") or 0) > MAX_BODY:
            self.send_error(413)
            self.close_connection = True
            return
        upstream = self._connect()
        try:
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in ("connection", "keep-alive", "proxy-connection"):
                    upstream.putheader(name, value)
            upstream.endheaders()
            sent = 0
            for data in self._body():
                if cut_after is not None and sent + len(data) >= cut_after:
                    upstream.send(data[: max(cut_after - sent, 0)])
                    raise _Cut
                upstream.send(data)
                sent += len(data)
            if cut_after is not None:  # a body shorter than the cut: cut at its end
                raise _Cut
            response = upstream.getresponse()
        except _Cut:
            self.close_connection = True
            _reset(upstream.sock)
            self.upstream = None
            _reset(self.connection)
            return
        except OSError:
            # upstream gone (registry down): the client sees its connection reset
            self._note("upstream failed")
            self.close_connection = True
            self.upstream = None
            _reset(self.connection)
            return
        self._note("forwarded", response.status)
        self._relay(response)

    def _relay(self, response: http.client.HTTPResponse) -> None:
        self.send_response_only(response.status, response.reason)
        length = response.getheader("Content-Length")
        chunked = "chunked" in (response.getheader("Transfer-Encoding") or "").lower()
        bodiless = self.command == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200
        for name, value in response.getheaders():
            if name.lower() not in ("connection", "keep-alive", "transfer-encoding"):
                self.send_header(name, value)
        delimited = not bodiless and length is None and not chunked
        if chunked and not bodiless:
            self.send_header("Transfer-Encoding", "chunked")
        if delimited:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if bodiless:
            response.read()
            return
        while True:
            data = response.read1(CHUNK) if chunked else response.read(CHUNK)
            if not data:
                break
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n" if chunked else data)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        if response.will_close and self.upstream is not None:
            self.upstream.close()
            self.upstream = None


class _Cut(Exception):
    pass


class FaultProxy:
    """A fault-injecting proxy on ``127.0.0.1:port`` in front of ``upstream`` (also loopback)."""

    def __init__(self, upstream: tuple[str, int], port: int = 0) -> None:
        if not _loopback(upstream[0]):
            raise ValueError(f"the proxy only forwards to loopback, not {upstream[0]}")
        self.upstream = upstream
        self._state = _State()
        self.went_down = threading.Event()
        self._lifecycle = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = port
        self.up()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- arming faults --------------------------------------------------------------------

    def _arm(self, fault: Fault, methods: str | None, path: str | None, agent: str | None) -> Fault:
        fault.methods = frozenset(methods.upper().split(",")) if methods else None
        fault.path = re.compile(path) if path else None
        fault.agent = re.compile(agent) if agent else None
        with self._state.lock:
            self._state.faults.append(fault)
        return fault

    def fail(
        self,
        status: int,
        times: int | None = 1,
        *,
        methods: str | None = None,
        path: str | None = None,
        agent: str | None = None,
    ) -> Fault:
        """Answer ``status`` (401, 429, 5xx) to the next ``times`` matching requests (None: until cleared)."""
        return self._arm(Fault("status", times, status=status), methods, path, agent)

    def reset(
        self, times: int | None = 1, *, methods: str | None = None, path: str | None = None, agent: str | None = None
    ) -> Fault:
        """Reset the connection of the next ``times`` matching requests."""
        return self._arm(Fault("reset", times), methods, path, agent)

    def eof(
        self, times: int | None = 1, *, methods: str | None = None, path: str | None = None, agent: str | None = None
    ) -> Fault:
        """Close the connection of the next ``times`` matching requests without an answer."""
        return self._arm(Fault("eof", times), methods, path, agent)

    def cut(
        self,
        after: int,
        times: int | None = 1,
        *,
        methods: str | None = "PATCH,PUT",
        path: str | None = r"/blobs/",
        agent: str | None = None,
    ) -> Fault:
        """Forward only the first ``after`` bytes of the next matching request bodies, then reset."""
        return self._arm(Fault("cut", times, after=after), methods, path, agent)

    def down_on(self, *, methods: str | None = None, path: str | None = None, agent: str | None = None) -> Fault:
        """Go down (see :meth:`down`) when the first matching request arrives; ``went_down`` is set then."""
        return self._arm(Fault("down", 1), methods, path, agent)

    def clear(self) -> None:
        """Disarm every fault: from now on everything is forwarded."""
        with self._state.lock:
            self._state.faults.clear()

    def _take(self, method: str, path: str, agent: str) -> Fault | None:
        with self._state.lock:
            for fault in self._state.faults:
                if fault.matches(method, path, agent):
                    fault.hits += 1
                    self._state.injected += 1
                    return fault
        return None

    def _record(self, method: str, path: str, agent: str, action: str, status: int | None = None) -> None:
        with self._state.lock:
            self._state.seen.append(Seen(method, path, action, status, agent))

    @property
    def seen(self) -> list[Seen]:
        with self._state.lock:
            return list(self._state.seen)

    def injected(self) -> int:
        """How many requests a fault was applied to so far (cleared faults count too)."""
        with self._state.lock:
            return self._state.injected

    def summary(self) -> str:
        """What the proxy did with each request, one line each, for assertion messages."""
        return "\n".join(f"{s.method} {s.path[:120]} -> {s.action}" for s in self.seen[-60:])

    # -- the registry going away ------------------------------------------------------------

    def down(self) -> None:
        """Stop listening (connections are refused) and close every open connection."""
        with self._lifecycle:
            server, self._server = self._server, None
            if server is None:
                return
            server.shutdown()
            server.server_close()
            server.close_all()
            if self._thread is not None:
                self._thread.join(timeout=TIMEOUT)

    def up(self) -> None:
        """Listen again, on the same port as before."""
        with self._lifecycle:
            if self._server is not None:
                return
            self._server = _Server(("127.0.0.1", self.port), self)
            self.port = self._server.server_address[1]
            self._thread = threading.Thread(target=self._server.serve_forever, name="faultproxy", daemon=True)
            self._thread.start()

    @property
    def is_up(self) -> bool:
        return self._server is not None

    def close(self) -> None:
        self.down()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def registry_port() -> int:
    """A free loopback port in 5001-5099, the range kept for registries of one's own."""
    for port in random.sample(range(5001, 5100), 99):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port in 5001-5099 for a registry of the tests' own")


class Registry:
    """A ``docker-registry serve`` of its own on a free loopback port, storage in a temp folder.

    ``seed``: the storage folder (:attr:`data`) of another registry, stopped, to start with a
    copy of what it held (cheaper than pushing the same images again).
    """

    def __init__(self, seed: Path | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="faults-registry-"))
        if seed is not None:
            shutil.copytree(seed, self.data)
        self.port = registry_port()
        config = self.dir / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.data}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n",
            encoding="utf-8",
        )
        self.log = (self.dir / "registry.log").open("wb")
        binary = shutil.which("docker-registry") or shutil.which("registry")
        if binary is None:
            raise RuntimeError("no docker-registry binary (ci/engine-up installs it)")
        self.proc = subprocess.Popen(
            [binary, "serve", str(config)], stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v2/", timeout=2).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError(f"the test registry did not start: {self.log_text()}") from None
                time.sleep(0.1)

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def data(self) -> Path:
        """Its storage folder."""
        return self.dir / "data"

    def log_text(self) -> str:
        self.log.flush()
        return (self.dir / "registry.log").read_text(errors="replace")[-2000:]

    def tags(self, repository: str) -> set[str]:
        """Tags this registry holds for ``repository`` (asked directly, not through the proxy)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v2/{repository}/tags/list", timeout=10) as r:
                return set(json.load(r).get("tags") or [])
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return set()
            raise

    def stop(self) -> None:
        """Stop serving; the storage folder stays until :meth:`close`."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def close(self) -> None:
        self.stop()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def catalog(host: str) -> set[str]:
    """Repositories a registry holds (all pages)."""
    found: set[str] = set()
    url: str | None = f"http://{host}/v2/_catalog?n=1000"
    while url:
        with urllib.request.urlopen(url, timeout=10) as resp:
            found |= set(json.load(resp).get("repositories") or [])
            link = resp.headers.get("Link", "")
        match = re.match(r"<([^>]+)>", link)
        url = f"http://{host}{match[1]}" if match else None
    return found


__all__ = ["FaultProxy", "Registry", "Seen", "catalog", "free_port"]
