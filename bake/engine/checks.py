"""Can this engine and builder do the build? Checked once, before anything is built."""

from __future__ import annotations

import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bake import logs
from bake.engine import process
from bake.engine.buildx import Builder, inspect_builder
from bake.engine.docker import docker_cmd, engine_hint
from bake.engine.images import parse_buildx_version
from bake.errors import EnvironmentProblem

log = logs.get_logger("bake.engine")

MIN_BUILDX = (0, 13)


@dataclass(frozen=True)
class EngineInfo:
    buildx_version: tuple[int, int, int]
    builder: Builder


def engine_info(runner: process.Runner) -> dict[str, Any]:
    """``docker info`` as JSON: the CLI's plugins always, the engine's side when it answers.

    Asked once per runner (and engine): the engine's registry mirrors, for base images,
    and the checks before a build read the same answer. Not python-on-whales'
    ``system.info()``: that raises when the engine is down, and the client's half (is
    there a buildx plugin?) is what tells the user what to fix.
    """
    env = runner.environ
    key = ("docker info", *(env.get(k) for k in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG", "PATH")))

    def ask() -> dict[str, Any]:
        out = runner.run([*docker_cmd(runner), "info", "--format", "{{json .}}"], check=False)
        try:
            info = json.loads(out or "{}")
        except ValueError:
            info = {}
        return info if isinstance(info, dict) else {}

    return runner.memo(key, ask)


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


def check_engine(runner: process.Runner, info: Mapping[str, Any]) -> str:
    """The engine's version; EnvironmentProblem if it did not answer."""
    if not info.get("ServerVersion"):
        raise EnvironmentProblem(engine_hint(runner))
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


def check(runner: process.Runner, builder: str | None, *, cache_export: bool) -> EngineInfo:
    """Fail with EnvironmentProblem unless docker, buildx, the engine and builder can build.

    One ``docker info`` tells the buildx plugin's version, whether the engine answers and
    its image store; the builder inspection runs alongside it.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        inspecting = pool.submit(inspect_builder, runner, builder)
        info = engine_info(runner)
        version = check_buildx(info)
        check_engine(runner, info)
        found = inspecting.result()
    if cache_export:
        check_cache_export(info, found)
    log.debug("engine", buildx=".".join(map(str, version)), builder=found.name, driver=found.driver)
    return EngineInfo(version, found)
