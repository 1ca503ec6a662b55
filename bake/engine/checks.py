"""Can this engine and builder do the build? Checked once, before anything is built."""

from __future__ import annotations

import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import structlog

from bake.engine import process
from bake.engine.buildx import Builder, inspect_builder
from bake.engine.docker import docker_cmd
from bake.engine.images import parse_buildx_version
from bake.errors import EnvironmentProblem
from bake.redact import redact

log = structlog.get_logger("bake.engine")

MIN_BUILDX = (0, 13)


@dataclass(frozen=True)
class EngineInfo:
    buildx_version: tuple[int, int, int]
    builder: Builder


def engine_hint() -> str:
    host = process.environment().get("DOCKER_HOST")
    where = f"DOCKER_HOST={redact(host)}" if host else "the default socket"
    return (
        f"the Docker engine does not answer at {where}. Start dockerd (on this project's "
        "CI machines: `ci/engine-up`), or point DOCKER_HOST / `docker context use` at a "
        "running engine."
    )


def engine_info() -> dict[str, Any]:
    """``docker info`` as JSON: the CLI's plugins always, the engine's side when it answers.

    Not python-on-whales' ``system.info()``: that raises when the engine is down, and the
    client's half (is there a buildx plugin?) is what tells the user what to fix.
    """
    out = process.run([*docker_cmd(), "info", "--format", "{{json .}}"], check=False)
    try:
        info = json.loads(out or "{}")
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


def check_buildx(info: Mapping[str, Any]) -> tuple[int, int, int]:
    """The buildx plugin's version; EnvironmentProblem if it is missing or older than 0.13."""
    plugins = (info.get("ClientInfo") or {}).get("Plugins") or []
    raw = next((str(p.get("Version", "")) for p in plugins if p.get("Name") == "buildx"), None)
    if raw is None:
        raise EnvironmentProblem(
            "docker buildx is not available (the docker CLI has no buildx plugin). "
            "Install the buildx plugin, version 0.13 or newer (Debian: docker-buildx)."
        )
    version = parse_buildx_version(raw)
    if version is None or version[:2] < MIN_BUILDX:
        raise EnvironmentProblem(f"docker buildx {raw!r} is too old: bake-ci needs 0.13 or newer. Upgrade buildx.")
    return version


def check_engine(info: Mapping[str, Any]) -> str:
    """The engine's version; EnvironmentProblem if it did not answer."""
    if not info.get("ServerVersion"):
        raise EnvironmentProblem(engine_hint())
    return str(info["ServerVersion"])


def check_cache_export(info: Mapping[str, Any], builder: Builder) -> None:
    """The docker driver exports build cache only with the containerd image store."""
    if builder.driver == "docker" and "io.containerd.snapshotter" not in json.dumps(info.get("DriverStatus")):
        raise EnvironmentProblem(
            f"builder {builder.name!r} uses the docker driver, which can export build cache only with the "
            "containerd image store, and this engine uses the classic store. Turn it on "
            '(`{"features": {"containerd-snapshotter": true}}` in /etc/docker/daemon.json, then '
            "restart dockerd), or create a builder that can: "
            "`docker buildx create --use --driver docker-container`."
        )


def check(builder: str | None, *, cache_export: bool) -> EngineInfo:
    """Fail with EnvironmentProblem unless docker, buildx, the engine and builder can build.

    One ``docker info`` tells the buildx plugin's version, whether the engine answers and
    its image store; the builder inspection runs alongside it.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        inspecting = pool.submit(inspect_builder, builder)
        info = engine_info()
        version = check_buildx(info)
        check_engine(info)
        found = inspecting.result()
    if cache_export:
        check_cache_export(info, found)
    log.debug("engine", buildx=".".join(map(str, version)), builder=found.name, driver=found.driver)
    return EngineInfo(version, found)
