"""The docker CLI: where it is, its global options, and a python-on-whales client for it.

Calls that python-on-whales answers with typed objects (``buildx inspect``, ``imagetools
create``) use :func:`client`. The others run the CLI itself through
:func:`bake.engine.process.run` with :func:`docker_cmd`, and each says why where it is
made: python-on-whales cannot make it as asked, or it is made on a path whose whole
budget is a fraction of a second, where python-on-whales' import alone would take a
third of it.
"""

from __future__ import annotations

import functools
import re
import shutil
import threading
from typing import TYPE_CHECKING

from bake import logs
from bake.engine import process
from bake.errors import EnvironmentProblem
from bake.redact import redact

if TYPE_CHECKING:
    from python_on_whales import DockerClient

log = logs.get_logger("bake.engine")

NO_CLI = (
    "the docker CLI is not on PATH. Install Docker (the CLI and the buildx plugin) "
    "or fix PATH; on a bare Debian machine `ci/engine-up` of this project sets up "
    "an engine, buildx and a local registry."
)


_import_lock = threading.Lock()


@functools.cache
def _client(cli: str, host: str | None, context: str | None, config: str | None) -> DockerClient:
    # imported on first use (it costs start-up time the reuse path does not have), and
    # under a lock: worker threads asking at once would deadlock in the import system
    with _import_lock:
        import python_on_whales.client_config
        import python_on_whales.exceptions  # noqa: F401  (imported here, under the lock)
        from python_on_whales import DockerClient

    return DockerClient(client_call=[cli], host=host, context=context, config=config)


def client() -> DockerClient:
    """A python-on-whales client for the docker CLI and engine the runner's environment
    names (EnvironmentProblem if there is no docker CLI)."""
    env = process.environment()
    cli = docker_cmd()[0]
    return _client(
        cli, env.get("DOCKER_HOST") or None, env.get("DOCKER_CONTEXT") or None, env.get("DOCKER_CONFIG") or None
    )


def docker_cmd() -> list[str]:
    """The docker CLI (EnvironmentProblem if there is none on PATH).

    It reads DOCKER_HOST, DOCKER_CONTEXT and DOCKER_CONFIG from the runner's environment
    itself.
    """
    found = shutil.which("docker", path=process.environment().get("PATH"))
    if found is None:
        raise EnvironmentProblem(NO_CLI)
    return [found]


def docker_cli() -> str:
    """Where the docker CLI is."""
    return docker_cmd()[0]


_ENGINE_DOWN_RE = re.compile(
    r"cannot connect to the docker daemon|is the docker daemon running|error during connect|"
    r"permission denied while trying to connect|dial unix [^:]*: connect:",
    re.IGNORECASE,
)


def engine_hint() -> str:
    host = process.environment().get("DOCKER_HOST")
    where = f"DOCKER_HOST={redact(host)}" if host else "the default socket"
    return (
        f"the Docker engine does not answer at {where}. Start dockerd (on this project's "
        "CI machines: `ci/engine-up`), or point DOCKER_HOST / `docker context use` at a "
        "running engine."
    )


def engine_down(output: str) -> bool:
    """Whether a docker command failed because no engine answered."""
    return _ENGINE_DOWN_RE.search(output) is not None


def failed(exc: process.CommandFailed) -> Exception:
    """What a failed docker command means to the user: no engine (exit 3), or the failure."""
    return EnvironmentProblem(engine_hint()) if engine_down(exc.output) else exc


def docker(*args: str) -> str:
    """``docker ARGS``: stdout, or CommandFailed (EnvironmentProblem when no engine answers)."""
    try:
        return process.run([*docker_cmd(), *args])
    except process.CommandFailed as exc:
        raise failed(exc) from None


def interactive(*args: str) -> int:
    """``docker ARGS`` in the foreground (``docker run`` of ``bake-ci shell``): it owns the
    terminal, gets every signal bake-ci gets, and its exit code is returned."""
    return process.foreground([*docker_cmd(), *args])


def logged(*args: str) -> None:
    """Log a docker command that python-on-whales is about to run for us."""
    log.debug("run", cmd=process.shell(["docker", *args]))


_NOT_FOUND_RE = re.compile(
    r"not found|no such (?:image|object|manifest)|manifest unknown|name unknown|\b404\b", re.IGNORECASE
)


def is_not_found(output: str) -> bool:
    """Whether a docker command said the image is absent (not that a host was unreachable:
    "no such host" is a DNS failure, and must not pass for an image that is not there)."""
    return _NOT_FOUND_RE.search(output) is not None
