"""Base-image digests the way the engine pulls them: mirrors first, then docker.io, then the engine.

Two fake registries served in-process (tests/unit/fake_registry.py) stand for the engine's
mirror and for Docker Hub; the engine's mirror list is a fake, and no process may be started
unless a test says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from bake import bases, registry, retry
from bake.engine import checks, images, process
from bake.engine.process import CommandFailed
from bake.pool import parallel
from bake.registry import Reference, parse_mirrors, via_mirror

from .conftest import MakeRegistry
from .fake_registry import MANIFEST as MEDIA_TYPE
from .fake_registry import FakeRegistry


def resolve(ref: str) -> registry.Resolution:
    """``bases.resolve_base`` with a client that has no login and does not retry, and a
    runner that starts nothing (each test refuses processes)."""
    client = registry.Client(lambda host: None, policy=retry.Policy(retries=0))
    return bases.resolve_base(client, process.Runner({}), ref)


def manifest(name: str) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": MEDIA_TYPE, "annotations": {"n": name}}).encode()


def digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


@dataclass
class World:
    mirror: FakeRegistry
    hub: FakeRegistry
    local: dict[str, str] = field(default_factory=dict)  # the engine's images: ref -> ID


@pytest.fixture
def world(fake_registry: MakeRegistry, monkeypatch: pytest.MonkeyPatch) -> World:
    """The engine mirrors docker.io through ``mirror``; ``hub`` stands for Docker Hub."""
    mirror, hub = fake_registry(), fake_registry()
    world = World(mirror, hub)

    def refuse(*args: object, **kwargs: object) -> Any:
        raise AssertionError(f"a process was started: {args!r}")

    def buildx_descriptor(runner: object, ref: str) -> None:
        raise CommandFailed(["docker", "buildx", "imagetools", "inspect", ref], 1, "ERROR: buildx fake")

    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(registry, "DOCKER_HUB", hub.address)
    monkeypatch.setattr(bases, "engine_mirrors", lambda runner: ([f"http://{mirror.address}/"], None))
    monkeypatch.setattr(images, "registry_descriptor", buildx_descriptor)
    monkeypatch.setattr(images, "local_image_id", lambda runner, ref: world.local.get(ref))
    return world


@pytest.mark.parametrize(
    "name",
    ["python:3.11-slim", "docker.io/library/python:3.11-slim", "index.docker.io/library/python:3.11-slim"],
)
def test_a_docker_io_name_resolves_through_the_engines_mirror_without_asking_docker_io(world: World, name: str) -> None:
    body = manifest("mirrored")
    world.mirror.put("library/python:3.11-slim", body)
    resolution = resolve(name)
    assert resolution.digest == digest(body)
    assert world.mirror.asked == ["/v2/library/python/manifests/3.11-slim"]
    assert world.hub.asked == []


def test_a_name_without_tag_is_latest_of_that_repository(world: World) -> None:
    body = manifest("latest")
    world.mirror.put("library/python:latest", body)
    assert resolve("library/python").digest == digest(body)


def test_what_the_mirror_lacks_comes_from_docker_io(world: World) -> None:
    body = manifest("from the hub")
    world.hub.put("library/python:3.13-slim", body)
    resolution = resolve("python:3.13-slim")
    assert resolution.digest == digest(body)
    assert world.mirror.asked == ["/v2/library/python/manifests/3.13-slim"]


@pytest.mark.parametrize("name", ["python:3.11-slim@{d}", "python@{d}", "localhost:5000/library/python:3.11-slim@{d}"])
def test_a_reference_with_a_digest_is_that_digest_and_nothing_is_asked(world: World, name: str) -> None:
    pinned = digest(manifest("pinned"))
    world.mirror.put("library/python:3.11-slim", manifest("the tag moved on"))
    world.local[name.format(d=pinned)] = "sha256:" + "e" * 64
    resolution = resolve(name.format(d=pinned))
    assert resolution.digest == pinned
    assert world.mirror.asked == []
    assert world.hub.asked == []


def test_an_image_no_registry_has_falls_back_to_the_local_engine(world: World) -> None:
    world.local["python:3.13-slim"] = "sha256:" + "e" * 64
    assert resolve("python:3.13-slim").digest == "sha256:" + "e" * 64


def test_another_registry_is_never_asked_through_the_mirror(world: World, fake_registry: MakeRegistry) -> None:
    own = fake_registry()
    body = manifest("own")
    own.put("team/python:3.11", body)
    assert resolve(f"{own.address}/team/python:3.11").digest == digest(body)
    assert world.mirror.asked == []


def test_an_unresolvable_base_says_which_refs_were_tried_and_what_each_answered(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry, "DOCKER_HUB", "127.0.0.1:1")  # nothing listens: an error, not a 404
    resolution = resolve("python:3.99-slim")
    assert resolution.digest is None
    answers = {a.asked: a.said for a in resolution.answers}
    assert answers[f"{world.mirror.address}/library/python:3.99-slim (mirror)"] == "not found"
    assert "Connection refused" in answers["127.0.0.1:1/library/python:3.99-slim"]
    assert answers["buildx imagetools inspect python:3.99-slim"] == "ERROR: buildx fake"
    assert answers["the local engine"] == "no such image"
    reason = resolution.reason()
    assert "python:3.99-slim" in reason
    assert f"{world.mirror.address}/library/python:3.99-slim" in reason
    assert "built every time" in reason


def test_when_the_engine_cannot_say_its_mirrors_the_reason_says_so(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bases, "engine_mirrors", lambda runner: ([], "docker info: Cannot connect"))
    resolution = resolve("python:3.99-slim")
    assert resolution.digest is None
    assert "the engine's registry mirrors: docker info: Cannot connect" in resolution.reason()
    assert world.mirror.asked == []


def test_the_engine_is_asked_for_its_mirrors_once_per_run() -> None:
    calls: list[list[str]] = []

    class Runner(process.Runner):
        def run(self, args: Sequence[str], **kwargs: Any) -> str:
            calls.append(list(args))
            return json.dumps({"ServerVersion": "26.1.5", "RegistryConfig": {"Mirrors": ["http://localhost:5000/"]}})

    runner = Runner(os.environ)
    found = parallel(lambda _: bases.engine_mirrors(runner), list(range(8)))
    assert found == [(["http://localhost:5000/"], None)] * 8
    assert [c[1:] for c in calls] == [["info", "--format", "{{json .}}"]]
    checks.check_engine(runner, checks.engine_info(runner))  # the checks before a build read the same answer
    assert len(calls) == 1
    bases.engine_mirrors(Runner(os.environ))  # another run asks again
    assert len(calls) == 2


def test_an_engine_that_does_not_answer_means_no_mirrors_and_a_reason() -> None:
    class Runner(process.Runner):
        def run(self, args: Sequence[str], **kwargs: Any) -> str:  # docker info prints the client's half, and why
            return json.dumps(
                {"ClientInfo": {}, "ServerErrors": ["Cannot connect to the Docker daemon at unix:///x.sock"]}
            )

    mirrors, problem = bases.engine_mirrors(Runner(os.environ))
    assert mirrors == []
    assert problem is not None
    assert "Cannot connect to the Docker daemon" in problem


def test_parse_mirrors() -> None:
    assert parse_mirrors('["http://localhost:5000/", "https://mirror.example"]\n') == [
        "http://localhost:5000/",
        "https://mirror.example",
    ]
    assert parse_mirrors("null\n") == []
    assert parse_mirrors("[]") == []
    with pytest.raises(registry.RegistryError):
        parse_mirrors("Cannot connect")
    with pytest.raises(registry.RegistryError):
        parse_mirrors('{"a": 1}')


def test_via_mirror_keeps_the_mirrors_scheme_and_mirrors_only_docker_hub() -> None:
    hub = Reference.parse("python:3.11-slim")
    assert via_mirror(hub, "http://localhost:5000/") == Reference(
        "localhost:5000", "library/python", "3.11-slim", "http"
    )
    assert via_mirror(hub, "https://mirror.example") == Reference(
        "mirror.example", "library/python", "3.11-slim", "https"
    )
    assert via_mirror(hub, "mirror.example:5000") == Reference(
        "mirror.example:5000", "library/python", "3.11-slim", "https"
    )
    assert via_mirror(Reference.parse("ghcr.io/org/python:3.11"), "http://localhost:5000") is None
    assert via_mirror(hub, "ftp://mirror.example") is None
    assert (
        str(Reference.parse("python@sha256:" + "a" * 64)) == f"{registry.DOCKER_HUB}/library/python@sha256:" + "a" * 64
    )
