"""Looking images up in their registry: a manifest by reference, and a base image's digest.

Both ask the registry's HTTP API (:mod:`bake.registry`) with the client they are given,
and fall back to buildx (a login or an auth scheme the client lacks) and, for a base
image, to the engine's registry mirrors first and its local image last. A failure the
client already retried is final here: retries never nest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from bake import logs, registry, retry
from bake.engine import docker, images
from bake.engine.process import CommandFailed, Runner
from bake.errors import EnvironmentProblem
from bake.redact import redact

log = logs.get_logger("bake")


R = TypeVar("R")


def through_buildx(runner: Runner, call: Callable[[], R], what: str, clock: retry.Clock = retry.REAL_TIME) -> R:
    """A buildx command standing in for the registry client (a login or an auth scheme
    it lacks), retried on the client's schedule while it fails for a transient reason."""
    from bake.execute import is_transient  # only on this rare path: the reuse path's imports are counted

    retries = retry.Retry(registry.policy(runner.environ), clock)
    while True:
        try:
            return call()
        except CommandFailed as exc:
            delay = retries.delay() if is_transient(None, [exc.output]) else None
            if delay is None:
                raise
            log.warning("retry", what=what, attempt=retries.attempt, delay=round(delay, 2), reason=redact(exc.output))
            retries.wait(delay)


def fall_back(exc: registry.RegistryError, image: str) -> None:
    """After the registry client failed: a transient failure it retried already is final
    (retries never nest); otherwise buildx is asked instead."""
    if exc.transient:
        raise exc
    log.debug("registry API unavailable, asking buildx", image=image, reason=redact(str(exc)))


def lookup(client: registry.Client, runner: Runner, ref: str) -> registry.Manifest | None:
    """The manifest of ``ref`` in its registry (None if absent): over HTTP, else through buildx.
    :class:`registry.RegistryError` when the registry stayed unreachable while retried."""
    try:
        return client.manifest(ref)
    except registry.RegistryError as exc:
        fall_back(exc, ref)
    descriptor = through_buildx(runner, lambda: images.registry_descriptor(runner, ref), f"look up {ref}")
    if descriptor is None:
        return None
    return registry.Manifest(str(descriptor.get("mediaType", "")), str(descriptor["digest"]), b"")


def engine_mirrors(runner: Runner) -> tuple[list[str], str | None]:
    """The engine's docker.io mirrors, and why there are none if it could not be asked
    (from the run's one ``docker info``, :func:`bake.engine.checks.engine_info`)."""
    from bake.engine import checks

    try:
        info = checks.engine_info(runner)
    except EnvironmentProblem as exc:
        return [], "docker info: " + in_one_line(exc)
    if not info.get("ServerVersion"):
        errors = info.get("ServerErrors") or [docker.engine_hint(runner)]
        return [], "docker info: " + redact(str(errors[0]))
    try:
        return registry.mirrors_of((info.get("RegistryConfig") or {}).get("Mirrors")), None
    except registry.RegistryError as exc:
        return [], "docker info: " + in_one_line(exc)


def in_one_line(exc: Exception) -> str:
    """A failure in one line: the last line of a command's output, or a message's first sentence."""
    if isinstance(exc, CommandFailed):
        lines = exc.output.strip().splitlines()
        return redact(lines[-1] if lines else str(exc))
    return redact(str(exc).split(". ")[0])


def resolve_base(client: registry.Client, runner: Runner, ref: str, platform: str | None = None) -> registry.Resolution:
    """A base image's digest the way the engine pulls it, with every answer on the way.

    A reference with a digest is that digest, asked of no one. A docker.io name is asked
    of the engine's registry mirrors first, then of its own registry (over HTTP, else
    through buildx), and last the local engine's image ID. With ``platform``, a
    multi-platform image resolves to that platform's child (:func:`resolve_platform`).
    """
    answers: list[registry.Answer] = []

    def found(digest: str | registry.Manifest) -> registry.Resolution:
        if isinstance(digest, registry.Manifest):
            if platform is None or not digest.body:
                digest = digest.digest
            else:
                child, why = registry.platform_child(digest, platform)
                if child is None:
                    answers.append(registry.Answer(ref, why))
                    return registry.Resolution(ref, None, tuple(answers))
                digest = child
        return registry.Resolution(ref, digest, tuple(answers))

    try:
        parsed = registry.Reference.parse(ref)
    except registry.InvalidReference as exc:
        return registry.Resolution(ref, None, (registry.Answer(ref, f"not an image reference: {exc}"),))
    if parsed.digest:  # the reference names its image: nothing to ask, nothing that can change
        log.debug("pinned by digest, not looked up", image=ref, digest=parsed.digest)
        return registry.Resolution(ref, parsed.digest, (registry.Answer(ref, "pinned by digest"),))
    if parsed.host == registry.DOCKER_HUB:
        mirrors, problem = engine_mirrors(runner)
        if problem:
            answers.append(registry.Answer("the engine's registry mirrors", problem))
        for mirror in mirrors:
            candidate = registry.via_mirror(parsed, mirror)
            if candidate is None:
                answers.append(registry.Answer(f"mirror {mirror}", "not a registry URL"))
                continue
            try:
                manifest = client.manifest(candidate)
            except registry.RegistryError as exc:
                answers.append(registry.Answer(f"{candidate} (mirror)", redact(str(exc))))
                continue
            if manifest is not None:
                return found(manifest)
            answers.append(registry.Answer(f"{candidate} (mirror)", "not found"))
    try:
        manifest = client.manifest(parsed)
        if manifest is not None:
            return found(manifest)
        answers.append(registry.Answer(str(parsed), "not found"))
    except registry.RegistryError as exc:
        answers.append(registry.Answer(str(parsed), redact(str(exc))))
        try:  # buildx knows every login docker has; the HTTP client only the common ones
            descriptor = images.registry_descriptor(runner, ref)
            if descriptor is not None:
                return found(str(descriptor["digest"]))
            answers.append(registry.Answer(f"buildx imagetools inspect {ref}", "not found"))
        except (CommandFailed, EnvironmentProblem) as failed:
            answers.append(registry.Answer(f"buildx imagetools inspect {ref}", in_one_line(failed)))
    try:
        image_id = images.local_image_id(runner, ref)
        if image_id:
            return found(image_id)
        answers.append(registry.Answer("the local engine", "no such image"))
    except (CommandFailed, EnvironmentProblem) as failed:
        answers.append(registry.Answer("the local engine", in_one_line(failed)))
    log.debug("base image not resolved", image=ref, answers=[f"{a.asked}: {a.said}" for a in answers])
    return registry.Resolution(ref, None, tuple(answers))


def resolve_platform(client: registry.Client, runner: Runner, ref: str, platform: str) -> registry.Resolution:
    """The digest of ``platform``'s image of the base ``ref``: a re-pushed child of one
    platform changes that platform's fingerprint only."""
    return resolve_base(client, runner, ref, platform)
