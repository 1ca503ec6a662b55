"""The one fake registry of the unit tests: a small OCI distribution API served in-process.

It keeps manifests by ``repository:reference`` (GET, HEAD and PUT of ``/v2/REPO/manifests/REF``)
and records every request. Optional, per test:

- ``credentials=(user, password)``: every ``/v2/`` request needs ``Bearer good-token``; a
  token endpoint (``/token``) hands that token out for those credentials (and ``bad`` for
  any other), as Docker Hub and GHCR do;
- ``script``: faults the next requests meet, one each, in order (``ok`` once it is empty):
  ``"503"`` (any status), ``"429 retry-after 3"`` (with a ``Retry-After``), ``"reset"``
  (the connection is reset) or ``"eof"`` (closed without an answer).

    with FakeRegistry() as fake:
        fake.put("acme/app:fp-1", body)
        ...  # talk to fake.address ("127.0.0.1:PORT")

or through the ``fake_registry`` fixture (tests/unit/conftest.py), which stops every
registry it made when the test ends.
"""

from __future__ import annotations

import base64
import json
import socket
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass
class FakeRegistry:
    credentials: tuple[str, str] | None = None
    manifests: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    script: list[str] = field(default_factory=list)
    #: every request, as ``METHOD PATH``
    requests: list[str] = field(default_factory=list)
    #: the paths of the token endpoint's requests
    token_requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    @property
    def asked(self) -> list[str]:
        """The paths of the manifest GETs, in order."""
        return [r.removeprefix("GET ") for r in self.requests if r.startswith("GET /v2/")]

    def put(self, name: str, body: bytes, media_type: str = MANIFEST) -> None:
        """Store ``body`` as the manifest ``repository:reference``."""
        self.manifests[name] = (media_type, body)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler(fake: FakeRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body and self.command != "HEAD":
                self.wfile.write(body)

        def _fault(self) -> bool:
            """Play the next fault of the script; True when the request got it instead of an answer."""
            action = fake.script.pop(0) if fake.script else "ok"
            if action == "ok":
                return False
            if action in ("reset", "eof"):
                if action == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()
                return True
            status, _, after = action.partition(" retry-after ")
            self._send(int(status), headers={"Retry-After": after} if after else None)
            return True

        def _authorized(self) -> bool:
            if fake.credentials is None or self.headers.get("Authorization") == "Bearer good-token":
                return True
            realm = f"http://{fake.address}/token"
            self._send(401, headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="test"'})
            return False

        def _token(self) -> None:
            fake.token_requests.append(self.path)
            user, password = fake.credentials or ("", "")
            basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            ok = self.headers.get("Authorization") == basic
            self._send(200, json.dumps({"token": "good-token" if ok else "bad"}).encode())

        def _name(self) -> str:
            repository, _, reference = self.path.removeprefix("/v2/").partition("/manifests/")
            return f"{repository}:{reference}"

        def _start(self) -> bool:
            """Record the request; False when a fault or a 401 already answered it."""
            fake.requests.append(f"{self.command} {self.path}")
            return not self._fault() and self._authorized()

        def do_GET(self) -> None:
            if self.path.startswith("/token"):
                self._token()
                return
            if not self._start():
                return
            found = fake.manifests.get(self._name())
            if found is None:
                self._send(404)
                return
            media_type, body = found
            self._send(200, body, {"Content-Type": media_type})

        do_HEAD = do_GET

        def do_PUT(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if not self._start():
                return
            fake.manifests[self._name()] = (self.headers["Content-Type"], body)
            self._send(201)

    return Handler
