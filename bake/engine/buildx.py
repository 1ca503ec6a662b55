"""``docker buildx``: the builder a build runs on, and ``bake`` itself.

``bake`` is run through the process runner rather than python-on-whales: its
``buildx.bake`` cannot ask for ``--progress rawjson`` (the per-target stream the
results and the board are made of) and runs a second ``bake --print`` after every build.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from bake.engine import process
from bake.engine.docker import client, docker_cmd, logged
from bake.errors import EnvironmentProblem
from bake.redact import redact


@dataclass(frozen=True)
class Builder:
    name: str
    driver: str
    platforms: tuple[str, ...] = ()


def inspect_builder(runner: process.Runner, builder: str | None) -> Builder:
    """The builder's name, driver and platforms."""
    docker_client = client(runner)
    from python_on_whales.exceptions import DockerException

    logged("buildx", "inspect", *([builder] if builder else []))
    try:
        found = docker_client.buildx.inspect(builder)
    except (DockerException, ValueError) as exc:
        detail = str(getattr(exc, "stderr", None) or exc).strip()
        raise EnvironmentProblem(
            f"builder {builder or '(current)'} cannot be inspected: {detail}. "
            "List builders with `docker buildx ls` and pass one with --builder."
        ) from None
    platforms = tuple(str(p) for node in (found.nodes or []) for p in (node.platforms or []))
    return Builder(str(found.name), str(found.driver), platforms)


@dataclass
class BakeRun:
    returncode: int
    #: Non-JSON lines buildx printed (its final error message, warnings).
    messages: list[str]


def iter_json_objects(stream: IO[str], on_text: Callable[[str], None]) -> Iterator[dict[str, Any]]:
    """Decode a stream of (possibly indented) JSON objects mixed with plain text lines."""
    decoder = json.JSONDecoder()
    buffer = ""
    for line in stream:
        if not buffer and not line.startswith("{"):
            if line.strip():
                on_text(line.rstrip("\n"))
            continue
        buffer += line
        try:
            obj, end = decoder.raw_decode(buffer)
        except json.JSONDecodeError:
            continue
        rest = buffer[end:].strip()
        buffer = ""
        if isinstance(obj, dict):
            yield obj
        if rest:
            on_text(rest)
    if buffer.strip():
        on_text(buffer.strip())


def bake(
    runner: process.Runner,
    files: Sequence[Path],
    targets: Sequence[str],
    *,
    cwd: Path,
    metadata_file: Path,
    builder: str | None = None,
    no_cache: bool = False,
    pull: bool = False,
    on_status: Callable[[dict[str, Any]], None] = lambda status: None,
    on_text: Callable[[str], None] = lambda line: None,
) -> BakeRun:
    """Run one ``docker buildx bake`` over ``targets``, streaming its rawjson progress."""
    cmd = [*docker_cmd(runner), "buildx", "bake", "--progress", "rawjson", "--metadata-file", str(metadata_file)]
    for file in files:
        cmd += ["--file", str(file)]
    if builder:
        cmd += ["--builder", builder]
    if no_cache:
        cmd.append("--no-cache")
    if pull:
        cmd.append("--pull")
    cmd += list(targets)
    messages: list[str] = []

    def text(line: str) -> None:
        line = redact(line)  # buildx's own errors name a failed ADD's URL, credentials and all
        messages.append(line)
        on_text(line)

    with runner.stream(cmd, cwd=cwd) as proc:
        for status in iter_json_objects(process.lines(proc), text):
            on_status(status)
    return BakeRun(proc.returncode, messages)
