"""The docker CLI: where it is, its global options, and a python-on-whales client for it.

Calls that python-on-whales answers with typed objects (builders, images, pull, tag)
use :func:`client`; the few it cannot make (``docker info`` as JSON, ``imagetools
inspect`` with the digest, ``bake`` with rawjson progress) go through
:func:`bake.engine.process.run` with :func:`docker_cmd`.
"""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING

import structlog

from bake.engine import process
from bake.errors import EnvironmentProblem

if TYPE_CHECKING:
    from python_on_whales import DockerClient

log = structlog.get_logger("bake.engine")

NO_CLI = (
    "the docker CLI is not on PATH. Install Docker (the CLI and the buildx plugin) "
    "or fix PATH; on a bare Debian machine `ci/engine-up` of this project sets up "
    "an engine, buildx and a local registry."
)


_import_lock = threading.Lock()


@functools.cache
def _client(host: str | None, context: str | None, config: str | None) -> DockerClient:
    # imported on first use (it costs start-up time the reuse path does not have), and
    # under a lock: worker threads asking at once would deadlock in the import system
    with _import_lock:
        import python_on_whales.client_config
        import python_on_whales.exceptions  # noqa: F401  (imported here, under the lock)
        from python_on_whales import DockerClient

    return DockerClient(host=host, context=context, config=config)


def client() -> DockerClient:
    """A python-on-whales client for the engine the runner's environment names."""
    env = process.environment()
    return _client(env.get("DOCKER_HOST") or None, env.get("DOCKER_CONTEXT") or None, env.get("DOCKER_CONFIG") or None)


def docker_cmd() -> list[str]:
    """``docker`` with its global options (EnvironmentProblem if there is no docker CLI)."""
    docker_client = client()
    from python_on_whales.client_config import ClientNotFoundError

    try:
        return [str(a) for a in docker_client.docker_cmd]
    except ClientNotFoundError:
        raise EnvironmentProblem(NO_CLI) from None


def docker_cli() -> str:
    """Where the docker CLI is."""
    return docker_cmd()[0]


def docker(*args: str) -> str:
    """``docker ARGS``: stdout, or CommandFailed."""
    return process.run([*docker_cmd(), *args])


def logged(*args: str) -> None:
    """Log a docker command that python-on-whales is about to run for us."""
    log.debug("run", cmd=process.shell(["docker", *args]))


def is_not_found(output: str) -> bool:
    text = output.lower()
    return any(s in text for s in ("not found", "no such", "manifest unknown", "name unknown", "404"))
