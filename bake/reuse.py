"""Build avoidance: fingerprints for the targets of a project, and reusing images that match.

Fingerprinting reads the project's files and resolves each base image's digest (from
its registry, else from the local engine). With a registry, every pushed image also
carries the tag ``STAGE-pyX.Y-fp-<12 hex>`` and the label ``dev.bake-ci.fingerprint``;
a later build whose target has the same fingerprint adds this branch's tags to that
image with ``imagetools create`` instead of building it.

What was built or fetched locally is recorded in bake-ci's state folder
(``fingerprints/TARGET.json``: fingerprint, its parts, the local image ID), so
``status`` can tell which inputs changed since the local image.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from bake import auth, inputs, logs, registry, retry
from bake.config import Project
from bake.engine import docker, images
from bake.engine.process import CommandFailed, Runner
from bake.errors import EnvironmentProblem
from bake.files import write_atomic
from bake.fingerprint import Fingerprint
from bake.plan import FINGERPRINT_LABEL, Plan, Target, TargetPlan, fingerprint_tag
from bake.pool import parallel
from bake.redact import redact
from bake.report import Result
from bake.state import State

log = logs.get_logger("bake")


def client(runner: Runner) -> registry.Client:
    """A run's registry client (it keeps tokens between requests: make one per run, and
    pass it down), with the logins docker keeps as ``runner``'s environment names them."""
    policy = dataclasses.replace(registry.POLICY, budget=retry.budget(runner.environ))
    return registry.Client(auth.logins(runner), policy=policy)


R = TypeVar("R")


def through_buildx(runner: Runner, call: Callable[[], R], what: str, clock: retry.Clock = retry.REAL_TIME) -> R:
    """A buildx command standing in for the registry client (a login or an auth scheme
    it lacks), retried on the client's schedule while it fails for a transient reason."""
    from bake.execute import is_transient  # only on this rare path: the reuse path's imports are counted

    retries = retry.Retry(dataclasses.replace(registry.POLICY, budget=retry.budget(runner.environ)), clock)
    while True:
        try:
            return call()
        except CommandFailed as exc:
            delay = retries.delay() if is_transient(None, [exc.output]) else None
            if delay is None:
                raise
            log.warning("retry", what=what, attempt=retries.attempt, delay=round(delay, 2), reason=redact(exc.output))
            retries.wait(delay)


def _fall_back(exc: registry.RegistryError, image: str) -> None:
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
        _fall_back(exc, ref)
    descriptor = through_buildx(runner, lambda: images.registry_descriptor(runner, ref), f"look up {ref}")
    if descriptor is None:
        return None
    return registry.Manifest(str(descriptor.get("mediaType", "")), str(descriptor["digest"]), b"")


def engine_mirrors(runner: Runner) -> tuple[list[str], str | None]:
    """The engine's docker.io mirrors, and why there are none if it could not be asked
    (from the process's one ``docker info``, :func:`bake.engine.checks.engine_info`)."""
    from bake.engine import checks

    try:
        info = checks.engine_info(runner)
    except EnvironmentProblem as exc:
        return [], "docker info: " + _said(exc)
    if not info.get("ServerVersion"):
        errors = info.get("ServerErrors") or [docker.engine_hint(runner)]
        return [], "docker info: " + redact(str(errors[0]))
    try:
        return registry.mirrors_of((info.get("RegistryConfig") or {}).get("Mirrors")), None
    except registry.RegistryError as exc:
        return [], "docker info: " + _said(exc)


def _said(exc: Exception) -> str:
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
            answers.append(registry.Answer(f"buildx imagetools inspect {ref}", _said(failed)))
    try:
        image_id = images.local_image_id(runner, ref)
        if image_id:
            return found(image_id)
        answers.append(registry.Answer("the local engine", "no such image"))
    except (CommandFailed, EnvironmentProblem) as failed:
        answers.append(registry.Answer("the local engine", _said(failed)))
    log.debug("base image not resolved", image=ref, answers=[f"{a.asked}: {a.said}" for a in answers])
    return registry.Resolution(ref, None, tuple(answers))


def resolve_platform(client: registry.Client, runner: Runner, ref: str, platform: str) -> registry.Resolution:
    """The digest of ``platform``'s image of the base ``ref``: a re-pushed child of one
    platform changes that platform's fingerprint only."""
    return resolve_base(client, runner, ref, platform)


@dataclass(frozen=True)
class Fingerprints:
    """Fingerprints of some targets, and why the others have none."""

    values: dict[str, Fingerprint]
    missing: dict[str, str]
    #: every image reference that was resolved, and what was found
    resolutions: dict[str, registry.Resolution] = field(default_factory=dict)


def compute(
    project: Project,
    targets: Sequence[Target],
    args: Mapping[str, Mapping[str, str]],
    state: State | None = None,
    platforms: Sequence[str] = (),
    *,
    client: registry.Client,
    runner: Runner,
) -> Fingerprints:
    """Fingerprint ``targets``; ``args`` are each target's resolved build args (from the plan).
    Images are resolved with :func:`resolve_base`; see :mod:`bake.inputs`. With ``state``,
    files whose lstat has not changed since an earlier run are not read again. With
    ``platforms``, the fingerprints of each platform's images (keyed ``TARGET__OS-ARCH``):
    every image resolved to its child for that platform, and that platform alone hashed."""

    resolutions: dict[str, registry.Resolution] = {}

    def resolve(ref: str) -> tuple[str | None, str]:
        found = resolutions[ref] = resolve_base(client, runner, ref)
        return found.digest, found.reason() if found.digest is None else ""

    def resolve_for(ref: str, platform: str) -> tuple[str | None, str]:
        found = resolve_platform(client, runner, ref, platform)
        resolutions.setdefault(ref, found)
        return found.digest, found.reason() if found.digest is None else ""

    memo = state.blob_memo() if state is not None else None
    values, missing = inputs.fingerprints(
        project,
        targets,
        args,
        resolve=resolve,
        memo_file=memo,
        platforms=platforms,
        resolve_platform=resolve_for,
        runner=runner,
    )
    return Fingerprints(values, missing, resolutions)


# -- the local record -----------------------------------------------------------------------


def record(state: State, target: str, fp: Fingerprint, image: str, image_id: str | None) -> None:
    """Remember which fingerprint the local image of ``target`` was made from. Its parts
    (one per context file: megabytes for a large context) go to a file of their own,
    read only to say what changed (:func:`recorded_parts`). StateFolderError if they cannot
    be written (the record is then the old one or none: never half)."""
    parts = {"fingerprint": fp.value, "parts": fp.parts}
    data = {"fingerprint": fp.value, "image": image, "image_id": image_id}
    with state.writing(f"recording which inputs the local image of {target} was made from"):
        write_atomic(state.fingerprint_parts(target), json.dumps(parts, sort_keys=True) + "\n")
        write_atomic(state.fingerprint_record(target), json.dumps(data, indent=1, sort_keys=True) + "\n")


def recorded(state: State, target: str) -> dict[str, object] | None:
    """The record of ``target``'s local image: its fingerprint, image and image ID."""
    try:
        data = json.loads(state.fingerprint_record(target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def recorded_parts(state: State, target: str, record: Mapping[str, object]) -> dict[str, str] | None:
    """The parts of the fingerprint ``record`` (:func:`recorded`) names, if they are still
    on record: in their own file, or inline in a record from before they had one."""
    try:
        data = json.loads(state.fingerprint_parts(target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = record
    if not isinstance(data, dict) or data.get("fingerprint") != record.get("fingerprint"):
        return None
    parts = data.get("parts")
    return {str(k): str(v) for k, v in parts.items()} if isinstance(parts, dict) else None


_ATTESTATION = "attestation-manifest"


def _config_labels(config: object) -> dict[str, object]:
    inner = config.get("config") if isinstance(config, dict) else None
    labels = inner.get("Labels") if isinstance(inner, dict) else None
    return labels if isinstance(labels, dict) else {}


def fingerprint_labels(
    client: registry.Client, runner: Runner, repository: str, manifest: registry.Manifest
) -> set[str | None]:
    """The fingerprint label (``dev.bake-ci.fingerprint``) of every image ``manifest`` holds:
    itself, or each platform's image of an index (attestations left out). None for an image
    without one. Raises CommandFailed when they cannot be read."""
    try:
        return _labels_over_http(client, repository, manifest)
    except (registry.RegistryError, ValueError, KeyError, TypeError) as exc:
        log.debug("registry API unavailable, asking buildx", image=repository, reason=redact(str(exc)))
    configs = images.registry_image_configs(runner, f"{repository}@{manifest.digest}")
    if not configs:
        raise CommandFailed(["imagetools", "inspect", f"{repository}@{manifest.digest}"], 1, "no image config")
    return {_label(_config_labels(c)) for c in configs}


def _label(labels: Mapping[str, object]) -> str | None:
    value = labels.get(FINGERPRINT_LABEL)
    return value if isinstance(value, str) else None


def _labels_over_http(client: registry.Client, repository: str, manifest: registry.Manifest) -> set[str | None]:
    if not manifest.body:
        raise registry.RegistryError("no manifest body")
    document = json.loads(manifest.body)
    manifests = [document]
    if manifest.is_index:
        children = [
            m["digest"]
            for m in document["manifests"]
            if (m.get("annotations") or {}).get("vnd.docker.reference.type") != _ATTESTATION
            and (m.get("platform") or {}).get("os") != "unknown"
        ]
        found = parallel(lambda digest: client.manifest(f"{repository}@{digest}"), children)
        manifests = [json.loads(m.body) for m in found if m is not None]
    if not manifests:
        raise registry.RegistryError("no image in the index")
    configs = parallel(lambda m: client.blob(repository, m["config"]["digest"]), manifests)
    return {_label(_config_labels(json.loads(c))) for c in configs}


def find(
    client: registry.Client, runner: Runner, t: TargetPlan, fp: Fingerprint, *, loading: bool = False
) -> registry.Manifest | None:
    """The image in the registry for ``t``'s fingerprint ``fp``: under its fingerprint tag,
    and labelled with that very fingerprint. An image whose label says otherwise (the tag
    was written by something else than the build of these inputs) is not it: warned about,
    and None, so the target is built."""
    fp_tag = fingerprint_tag(t.target, fp.value, None if loading else t.platform)
    manifest = lookup(client, runner, f"{t.repository}:{fp_tag}")
    if manifest is None:
        return None
    labels = fingerprint_labels(client, runner, t.repository, manifest)
    if labels != {fp.value}:
        shown = sorted((label or "none")[:12] for label in labels)
        log.warning(
            "not reused: the image under the fingerprint tag has another fingerprint label; building instead",
            target=t.id, tag=fp_tag, digest=manifest.digest, label=shown, expected=fp.short,
        )  # fmt: skip
        return None
    return manifest


def add_tags(
    client: registry.Client, runner: Runner, image: str, manifest: registry.Manifest, tags: Sequence[str]
) -> None:
    """Tag an existing manifest: its bytes over HTTP (same digest), else buildx imagetools."""
    if not tags:
        return
    if manifest.body:
        try:
            parallel(lambda tag: client.tag(manifest, tag), list(tags))
            return
        except registry.RegistryError as exc:
            _fall_back(exc, image)
    source = f"{image}@{manifest.digest}"
    through_buildx(runner, lambda: images.retag(runner, source, tags, index=manifest.is_index), f"tag {source}")


def publish(client: registry.Client, runner: Runner, t: TargetPlan, digest: str) -> None:
    """Give a pushed image the rest of its tags, the fingerprint tag last: an image is
    found by its fingerprint only once every other tag of it is in the registry."""
    if not t.later_tags:
        return
    manifest = lookup(client, runner, f"{t.repository}@{digest}")
    if manifest is None:
        raise CommandFailed(["tag", f"{t.repository}@{digest}"], 1, f"{t.repository}@{digest}: manifest unknown")
    fp_tags = [
        tag
        for tag in t.later_tags
        if t.fingerprint and tag.endswith(fingerprint_tag(t.target, t.fingerprint, t.platform))
    ]
    add_tags(client, runner, t.repository, manifest, [tag for tag in t.later_tags if tag not in fp_tags])
    add_tags(client, runner, t.repository, manifest, fp_tags)


def reuse(client: registry.Client, runner: Runner, plan: Plan, fps: Fingerprints) -> dict[str, Result]:
    """Targets whose fingerprint image is in the registry, with this run's tags added to it."""

    def one(t: TargetPlan) -> Result | None:
        fp = fps.values.get(t.id)
        if fp is None:
            return None
        started = time.monotonic()
        # a --load of the engine's own platform is found under the tag without a platform
        loading = t.output == "load"
        fp_tag = fingerprint_tag(t.target, fp.value, None if loading else t.platform)
        try:
            manifest = find(client, runner, t, fp, loading=loading)
        except (CommandFailed, registry.RegistryError) as exc:
            log.warning("cannot look up the fingerprint image", target=t.id, error=_said(exc)[-300:])
            return None
        if manifest is None:
            log.info("not reused: no image for this fingerprint", target=t.id, tag=fp_tag)
            return None
        tags = [tag for tag in t.tags if not tag.endswith(f":{fp_tag}")]
        try:
            add_tags(client, runner, t.repository, manifest, tags)
        except (CommandFailed, registry.RegistryError) as exc:
            log.warning("cannot tag the fingerprint image", target=t.id, error=_said(exc)[-300:])
            return None
        log.debug("reused", target=t.id, fingerprint=fp.short, digest=manifest.digest)
        return Result(
            target=t.id, status="reused", image=t.image, digest=manifest.digest, seconds=time.monotonic() - started
        )

    found = parallel(one, list(plan.targets))
    return {r.target: r for r in found if r is not None}
