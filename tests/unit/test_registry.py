"""The registry HTTP client against the fake registry served in-process (no Docker)."""

from __future__ import annotations

import hashlib
import json

import pytest

from bake import retry
from bake.registry import Client, Reference, RegistryError, parse_challenge, plain_http

from .conftest import MakeRegistry
from .fake_registry import FakeRegistry

MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json"}).encode()
INDEX = "application/vnd.oci.image.index.v1+json"


@pytest.fixture
def registry(fake_registry: MakeRegistry) -> FakeRegistry:
    """Manifests behind Bearer tokens that a token endpoint hands out for bot:s3cret."""
    fake = fake_registry(credentials=("bot", "s3cret"))
    fake.put("acme/app-ci:fp-1", MANIFEST, INDEX)
    return fake


def test_manifest_and_tag_through_a_bearer_token(registry: FakeRegistry) -> None:
    host = registry.address
    client = Client(lambda asked: ("bot", "s3cret") if asked == host else None)
    manifest = client.manifest(f"{host}/acme/app-ci:fp-1")
    assert manifest is not None
    assert manifest.digest == "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
    assert manifest.is_index
    client.tag(manifest, f"{host}/acme/app-ci:ci-py3.12-feature")
    assert registry.manifests["acme/app-ci:ci-py3.12-feature"] == (INDEX, MANIFEST)  # same bytes: same digest
    assert client.manifest(f"{host}/acme/app-ci:missing") is None
    assert any("scope=repository%3Aacme%2Fapp-ci%3Apull" in r for r in registry.token_requests)


def test_wrong_credentials_are_an_error_not_a_miss(registry: FakeRegistry) -> None:
    client = Client(lambda host: ("bot", "wrong"))
    with pytest.raises(RegistryError):
        client.manifest(f"{registry.address}/acme/app-ci:fp-1")


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
