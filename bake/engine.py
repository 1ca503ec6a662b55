"""The one module that runs processes: docker, buildx and git.

Every command goes through :func:`_run` (short calls, output captured) or
:func:`bake` (the long-running build, streamed), and both log the command they run.
python-on-whales finds the docker CLI and carries its global options; its ``run``
raises a ``DockerException`` with the captured output.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import re
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import structlog

from bake.errors import EnvironmentProblem
from bake.redact import redact

if TYPE_CHECKING:
    from python_on_whales import DockerClient

log = structlog.get_logger("bake.engine")

MIN_BUILDX = (0, 13)


def _shell(args: Sequence[str | Path]) -> str:
    return redact(shlex.join(str(a) for a in args))


def _client() -> DockerClient:
    from python_on_whales import DockerClient

    return DockerClient()


def _docker_cmd() -> list[str]:
    from python_on_whales.client_config import ClientNotFoundError

    try:
        return [str(a) for a in _client().docker_cmd]
    except ClientNotFoundError:
        raise EnvironmentProblem(
            "the docker CLI is not on PATH. Install Docker (the CLI and the buildx plugin) "
            "or fix PATH; on a bare Debian machine `ci/engine-up` of this project sets up "
            "an engine, buildx and a local registry."
        ) from None


class CommandFailed(Exception):
    def __init__(self, args: Sequence[str], code: int, output: str) -> None:
        super().__init__(f"{_shell(args)} exited {code}")
        self.args_ = list(args)
        self.code = code
        self.output = output


def _run(args: Sequence[str], *, cwd: Path | None = None) -> str:
    """Run a short command, log it, return its stdout; raise CommandFailed on failure."""
    log.debug("run", cmd=_shell(args))
    try:
        proc = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise CommandFailed(args, 127, f"{args[0]}: not found") from None
    if proc.returncode != 0:
        raise CommandFailed(args, proc.returncode, (proc.stderr or proc.stdout).strip())
    return proc.stdout


def docker_cli() -> str:
    """Where the docker CLI is (EnvironmentProblem if it is not on PATH)."""
    return _docker_cmd()[0]


def docker(*args: str, cwd: Path | None = None) -> str:
    """``docker ARGS`` with the client's global options; stdout, or CommandFailed."""
    return _run([*_docker_cmd(), *args], cwd=cwd)


# -- git and the CI's view of the checkout ------------------------------------------------


def _git(args: Sequence[str], cwd: Path) -> str | None:
    try:
        return _run(["git", *args], cwd=cwd).strip() or None
    except CommandFailed:
        return None


def detect_branch(cwd: Path, environ: Mapping[str, str]) -> str:
    """The branch being built: the CI's variables first, then git."""
    for var in ("GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME"):
        if environ.get(var):
            return environ[var]
    branch = _git(["rev-parse", "--abbrev-ref", "HEAD"], cwd)
    if branch is None:
        return "local"
    return "detached" if branch == "HEAD" else branch


def detect_sha(cwd: Path, environ: Mapping[str, str]) -> str | None:
    for var in ("GITHUB_SHA", "CI_COMMIT_SHA"):
        if environ.get(var):
            return environ[var]
    return _git(["rev-parse", "HEAD"], cwd)


# -- checking the environment before a build ----------------------------------------------


@dataclass(frozen=True)
class EngineInfo:
    buildx_version: tuple[int, int, int]
    builder: str
    driver: str


def parse_buildx_version(text: str) -> tuple[int, int, int] | None:
    """``github.com/docker/buildx 0.13.1+ds1 ...`` or ``... v0.20.0 ...`` -> (0, 13, 1)."""
    match = re.search(r"\bv?(\d+)\.(\d+)\.(\d+)", text)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def _engine_hint(environ: Mapping[str, str]) -> str:
    host = environ.get("DOCKER_HOST")
    where = f"DOCKER_HOST={redact(host)}" if host else "the default socket"
    return (
        f"the Docker engine does not answer at {where}. Start dockerd (on this project's "
        "CI machines: `ci/engine-up`), or point DOCKER_HOST / `docker context use` at a "
        "running engine."
    )


def engine_info() -> dict[str, Any]:
    """``docker info`` as JSON: the CLI's plugins always, the engine's side when it answers."""
    cmd = [*_docker_cmd(), "info", "--format", "{{json .}}"]
    log.debug("run", cmd=_shell(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    try:
        info = json.loads(proc.stdout or "{}")
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


def check_engine(info: Mapping[str, Any], environ: Mapping[str, str] = os.environ) -> str:
    """The engine's version; EnvironmentProblem if it did not answer."""
    if not info.get("ServerVersion"):
        raise EnvironmentProblem(_engine_hint(environ))
    return str(info["ServerVersion"])


def inspect_builder(builder: str | None) -> tuple[str, str]:
    """The builder's name and driver (``buildx inspect`` has no JSON output in 0.13)."""
    try:
        text = docker("buildx", "inspect", *([builder] if builder else []))
    except CommandFailed as exc:
        raise EnvironmentProblem(
            f"builder {builder or '(current)'} cannot be inspected: {exc.output.strip()}. "
            "List builders with `docker buildx ls` and pass one with --builder."
        ) from None
    fields = dict((k.strip(), v.strip()) for k, v in (line.split(":", 1) for line in text.splitlines() if ":" in line))
    return fields.get("Name", builder or "default"), fields.get("Driver", "unknown")


def check_cache_export(info: Mapping[str, Any], name: str, driver: str) -> None:
    """The docker driver exports build cache only with the containerd image store."""
    if driver == "docker" and "io.containerd.snapshotter" not in json.dumps(info.get("DriverStatus")):
        raise EnvironmentProblem(
            f"builder {name!r} uses the docker driver, which can export build cache only with the "
            "containerd image store, and this engine uses the classic store. Turn it on "
            '(`{"features": {"containerd-snapshotter": true}}` in /etc/docker/daemon.json, then '
            "restart dockerd), or create a builder that can: "
            "`docker buildx create --use --driver docker-container`."
        )


def check(builder: str | None, *, cache_export: bool, environ: Mapping[str, str] = os.environ) -> EngineInfo:
    """Fail with EnvironmentProblem unless docker, buildx, the engine and builder can build.

    One ``docker info`` tells the buildx plugin's version, whether the engine answers and
    its image store; ``buildx inspect``, run alongside, tells the builder's driver.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        inspecting = pool.submit(inspect_builder, builder)
        info = engine_info()
        version = check_buildx(info)
        check_engine(info, environ)
        name, driver = inspecting.result()
    if cache_export:
        check_cache_export(info, name, driver)
    log.debug("engine", buildx=".".join(map(str, version)), builder=name, driver=driver)
    return EngineInfo(version, name, driver)


# -- building -----------------------------------------------------------------------------


@dataclass
class BakeRun:
    returncode: int
    #: Non-JSON lines buildx printed (its final error message, warnings).
    messages: list[str]


_live: set[subprocess.Popen[str]] = set()
_live_lock = threading.Lock()


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
    """Run one ``docker buildx bake`` over ``targets``, streaming its rawjson progress.

    The child gets a process group of its own: a Ctrl-C on the terminal does not reach
    it directly, and :func:`stop_all` stops it together with the buildx plugin it runs.
    """
    cmd = [*_docker_cmd(), "buildx", "bake", "--progress", "rawjson", "--metadata-file", str(metadata_file)]
    for file in files:
        cmd += ["--file", str(file)]
    if builder:
        cmd += ["--builder", builder]
    if no_cache:
        cmd.append("--no-cache")
    if pull:
        cmd.append("--pull")
    cmd += list(targets)
    log.info("run", cmd=_shell(cmd), cwd=str(cwd))
    messages: list[str] = []

    def text(line: str) -> None:
        messages.append(line)
        on_text(line)

    with _live_lock:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        _live.add(proc)
    try:
        assert proc.stderr is not None
        for status in iter_json_objects(proc.stderr, text):
            on_status(status)
        returncode = proc.wait()
    finally:
        with _live_lock:
            _live.discard(proc)
    return BakeRun(returncode, messages)


def stop_all(grace: float = 10.0) -> None:
    """Stop every running bake: SIGINT to its process group (buildx cancels the build),
    SIGKILL after ``grace`` seconds."""
    with _live_lock:
        procs = list(_live)
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """In the main thread, make SIGTERM (a CI runner cancelling the job) act like Ctrl-C."""

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- images in registries and in the local engine -----------------------------------------


def _not_found(output: str) -> bool:
    text = output.lower()
    return any(s in text for s in ("not found", "no such", "manifest unknown", "name unknown", "404"))


def registry_descriptor(ref: str) -> dict[str, Any] | None:
    """The descriptor (mediaType, digest, size) of ``ref`` in its registry, or None if absent."""
    try:
        out = docker("buildx", "imagetools", "inspect", ref, "--format", "{{json .Manifest}}")
    except CommandFailed as exc:
        if _not_found(exc.output):
            return None
        raise
    descriptor = json.loads(out)
    return descriptor if isinstance(descriptor, dict) and descriptor.get("digest") else None


def local_image_id(ref: str) -> str | None:
    """The local engine's image ID for ``ref``, or None if it has no such image."""
    try:
        return docker("image", "inspect", "--format", "{{.Id}}", ref).strip() or None
    except CommandFailed as exc:
        if _not_found(exc.output):
            return None
        raise


def local_repositories_with_label(key: str, value: str) -> set[str]:
    """Repositories of the local images labelled ``key=value``."""
    out = docker("image", "ls", "--filter", f"label={key}={value}", "--format", "{{.Repository}}")
    return set(out.split())


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
    args = ["buildx", "imagetools", "create", "--progress", "plain"]
    if not index:
        version = buildx_version()
        if version is not None and version[:2] >= (0, 14):
            args.append("--prefer-index=false")
        else:
            log.warning("this buildx wraps a single-manifest image in a new index when retagging", image=source)
    for tag in tags:
        args += ["--tag", tag]
    docker(*args, source)


def pull(ref: str) -> None:
    docker("pull", "--quiet", ref)


def tag(source: str, target: str) -> None:
    docker("tag", source, target)


def registry_credentials(host: str, environ: Mapping[str, str] = os.environ) -> tuple[str, str] | None:
    """The login docker keeps for ``host`` (credential helper, store, or config.json), if any.

    The secret is returned to the caller only; it is never logged.
    """
    directory = Path(environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    try:
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    keys = [host, f"https://{host}", f"http://{host}"]
    if host == "registry-1.docker.io":
        keys.insert(0, "https://index.docker.io/v1/")
    helper = next((config["credHelpers"][k] for k in keys if k in (config.get("credHelpers") or {})), None)
    helper = helper or config.get("credsStore")
    if helper:
        for key in keys:
            try:
                proc = subprocess.run(
                    [f"docker-credential-{helper}", "get"], input=key, capture_output=True, text=True, timeout=30
                )
            except (OSError, subprocess.TimeoutExpired):
                return None
            if proc.returncode == 0:
                data = json.loads(proc.stdout or "{}")
                if data.get("Username") and data.get("Secret"):
                    return str(data["Username"]), str(data["Secret"])
        return None
    auths = config.get("auths") or {}
    for key in keys:
        encoded = (auths.get(key) or {}).get("auth")
        if encoded:
            user, _, secret = base64.b64decode(encoded).decode(errors="replace").partition(":")
            return user, secret
    return None
