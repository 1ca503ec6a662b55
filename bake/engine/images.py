"""Images in the local engine and in registries, as the docker CLI and buildx see them."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bake import logs
from bake.engine.docker import client, docker, failed, is_not_found, logged
from bake.engine.process import CommandFailed

log = logs.get_logger("bake.engine")


def _failed(exc: Exception, args: Sequence[str]) -> Exception:
    """python-on-whales' DockerException as the runner's CommandFailed (or no engine: exit 3)."""
    output = str(getattr(exc, "stderr", None) or getattr(exc, "stdout", None) or exc)
    return failed(CommandFailed(["docker", *args], int(getattr(exc, "return_code", 1) or 1), output.strip()))


@dataclass(frozen=True)
class LocalImage:
    id: str
    labels: Mapping[str, str]
    #: the image's working directory (``WORKDIR``), "" when it sets none
    working_dir: str = ""


def local_image(ref: str) -> LocalImage | None:
    """The local engine's image ``ref`` (its ID and labels), or None if it has no such image.

    Asked of the CLI itself: ``status`` asks it on the reuse path (python-on-whales'
    import: see :mod:`bake.engine.docker`)."""
    try:
        found = json.loads(docker("image", "inspect", ref))
    except CommandFailed as exc:
        if is_not_found(exc.output):
            return None
        raise
    except ValueError:
        raise CommandFailed(["docker", "image", "inspect", ref], 1, "the answer is not JSON") from None
    image = found[0] if isinstance(found, list) and found and isinstance(found[0], dict) else None
    if image is None or not image.get("Id"):
        return None
    config = image.get("Config") or {}
    labels = (config.get("Labels") if isinstance(config, dict) else None) or {}
    working_dir = str(config.get("WorkingDir") or "") if isinstance(config, dict) else ""
    return LocalImage(str(image["Id"]), {str(k): str(v) for k, v in labels.items()}, working_dir)


def local_image_id(ref: str) -> str | None:
    """The local engine's image ID for ``ref``, or None if it has no such image."""
    found = local_image(ref)
    return found.id if found is not None else None


def pull(ref: str, platform: str | None = None) -> None:
    """``docker pull`` (the CLI itself: python-on-whales' import would cost ``shell`` and
    ``run`` a tenth of a second before the user's command starts)."""
    docker("pull", "--quiet", *(["--platform", platform] if platform else []), ref)


def tag(source: str, target: str) -> None:
    """``docker tag``: the CLI itself, for the reason :func:`pull` (which it follows) gives."""
    docker("tag", source, target)


def registry_descriptor(ref: str) -> dict[str, Any] | None:
    """The descriptor (mediaType, digest, size) of ``ref`` in its registry, or None if absent.

    python-on-whales' ``imagetools.inspect`` returns the parsed manifest without its
    digest, which is the one thing asked here, so this is a plain CLI call.
    """
    try:
        out = docker("buildx", "imagetools", "inspect", ref, "--format", "{{json .Manifest}}")
    except CommandFailed as exc:
        if is_not_found(exc.output):
            return None
        raise
    descriptor = json.loads(out)
    return descriptor if isinstance(descriptor, dict) and descriptor.get("digest") else None


def registry_image_configs(ref: str) -> list[dict[str, Any]]:
    """The image configs of ``ref`` in its registry: one, or one per platform of an index
    (attestations left out); empty when absent.

    A plain CLI call: python-on-whales' ``imagetools.inspect`` returns the manifest, not
    the image configs it names.
    """
    try:
        out = docker("buildx", "imagetools", "inspect", ref, "--format", "{{json .Image}}")
    except CommandFailed as exc:
        if is_not_found(exc.output):
            return []
        raise
    found = json.loads(out or "null")
    if not isinstance(found, dict):
        return []
    if "config" in found or "rootfs" in found:
        return [found]
    return [c for c in found.values() if isinstance(c, dict)]  # per platform


def parse_buildx_version(text: str) -> tuple[int, int, int] | None:
    """``github.com/docker/buildx 0.13.1+ds1 ...`` or ``... v0.20.0 ...`` -> (0, 13, 1)."""
    match = re.search(r"\bv?(\d+)\.(\d+)\.(\d+)", text)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


@functools.cache
def buildx_version() -> tuple[int, int, int] | None:
    try:
        return parse_buildx_version(docker("buildx", "version"))
    except CommandFailed:
        return None


def retag(source: str, tags: Sequence[str], *, index: bool) -> None:
    """Add ``tags`` to the image ``source`` in the registry, without pulling or building.

    An index (what buildx pushes with its default provenance attestation) is copied as it
    is. A single manifest is too from buildx 0.14 on (``--prefer-index=false``); older
    buildx wraps it in a new index, whose digest then differs from the source's.
    """
    docker_client = client()
    from python_on_whales.exceptions import DockerException

    args = ["buildx", "imagetools", "create", "--progress", "plain"]
    if not index:
        version = buildx_version()
        if version is not None and version[:2] >= (0, 14):
            args.append("--prefer-index=false")
        else:
            log.warning("this buildx wraps a single-manifest image in a new index when retagging", image=source)
    if "--prefer-index=false" in args:  # python-on-whales has no such option
        for t in tags:
            args += ["--tag", t]
        docker(*args, source)
        return
    logged(*args, *[f"--tag={t}" for t in tags], source)
    try:
        docker_client.buildx.imagetools.create([source], list(tags))
    except DockerException as exc:
        raise _failed(exc, args) from None
