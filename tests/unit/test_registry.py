"""The registry HTTP client against a small registry served in-process (no Docker)."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from bake import retry
from bake.registry import Client, Reference, RegistryError, parse_challenge, plain_http

MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json"}).encode()
INDEX = "application/vnd.oci.image.index.v1+json"


class Registry(BaseHTTPRequestHandler):
    """Manifests behind Bearer tokens that a token endpoint hands out for user:secret."""

    manifests: ClassVar[dict[str, tuple[str, bytes]]] = {}
    token_requests: ClassVar[list[str]] = []

    def log_message(self, *args: object) -> None:
        pass

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") == "Bearer good-token":
            return True
        host = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.send_response(401)
        self.send_header("WWW-Authenticate", f'Bearer realm="{host}/token",service="test"')
        self.end_headers()
        return False

    def do_GET(self) -> None:
        if self.path.startswith("/token"):
            self.token_requests.append(self.path)
            ok = self.headers.get("Authorization") == "Basic " + base64.b64encode(b"bot:s3cret").decode()
            body = json.dumps({"token": "good-token" if ok else "bad"}).encode()
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)
            return
        if not self._authorized():
            return
        tag = self.path.rsplit("/", 1)[1]
        if tag not in self.manifests:
            self.send_response(404)
            self.end_headers()
            return
        media_type, body = self.manifests[tag]
        self.send_response(200)
        self.send_header("Content-Type", media_type)
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self) -> None:
        if not self._authorized():
            return
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.manifests[self.path.rsplit("/", 1)[1]] = (self.headers["Content-Type"], body)
        self.send_response(201)
        self.end_headers()


@pytest.fixture
def registry() -> Iterator[str]:
    Registry.manifests = {"fp-1": (INDEX, MANIFEST)}
    Registry.token_requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_manifest_and_tag_through_a_bearer_token(registry: str) -> None:
    client = Client(lambda host: ("bot", "s3cret") if host == registry else None)
    manifest = client.manifest(f"{registry}/acme/app-ci:fp-1")
    assert manifest is not None
    assert manifest.digest == "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
    assert manifest.is_index
    client.tag(manifest, f"{registry}/acme/app-ci:ci-py3.12-feature")
    assert Registry.manifests["ci-py3.12-feature"] == (INDEX, MANIFEST)  # same bytes: same digest
    assert client.manifest(f"{registry}/acme/app-ci:missing") is None
    assert any("scope=repository%3Aacme%2Fapp-ci%3Apull" in r for r in Registry.token_requests)


def test_wrong_credentials_are_an_error_not_a_miss(registry: str) -> None:
    client = Client(lambda host: ("bot", "wrong"))
    with pytest.raises(RegistryError):
        client.manifest(f"{registry}/acme/app-ci:fp-1")


def test_an_unreachable_registry_is_an_error() -> None:
    waits: list[float] = []  # retried on the usual schedule, without waiting here
    with pytest.raises(RegistryError):
        Client(lambda host: None, clock=retry.Clock(sleep=waits.append)).manifest("127.0.0.1:9/acme/app-ci:fp-1")


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("python:3.12-slim", Reference("registry-1.docker.io", "library/python", "3.12-slim")),
        ("docker.io/acme/app", Reference("registry-1.docker.io", "acme/app", "latest")),
        ("localhost:5000/a/b:t", Reference("localhost:5000", "a/b", "t")),
        ("ghcr.io/acme/app-ci@sha256:" + "ab" * 32, Reference("ghcr.io", "acme/app-ci", "sha256:" + "ab" * 32)),
        ("acme/app:1", Reference("registry-1.docker.io", "acme/app", "1")),
    ],
)
def test_references_are_read_as_docker_reads_them(ref: str, expected: Reference) -> None:
    assert Reference.parse(ref) == expected


def test_plain_http_only_on_loopback() -> None:
    assert plain_http("localhost:5000")
    assert plain_http("127.0.0.1:5000")
    assert not plain_http("ghcr.io")
    assert not plain_http("registry.example.com:5000")


def test_challenges_are_parsed() -> None:
    scheme, params = parse_challenge('Bearer realm="https://auth.example/token",service="registry.example"')
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.example/token", "service": "registry.example"}
