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

import json
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import structlog

from bake import auth, dockerfile, fingerprint, registry
from bake.config import Project
from bake.engine import images
from bake.engine.process import CommandFailed
from bake.errors import EnvironmentProblem
from bake.files import write_atomic
from bake.fingerprint import Fingerprint
from bake.plan import Plan, Target, TargetPlan, fingerprint_tag
from bake.redact import redact
from bake.report import Result
from bake.state import State

log = structlog.get_logger("bake")
T = TypeVar("T")
R = TypeVar("R")


def parallel(fn: Callable[[T], R], items: Sequence[T], workers: int = 8) -> list[R]:
    """``fn`` over ``items`` in threads (each docker call is its own process)."""
    if len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(fn, items))


_client: registry.Client | None = None


def client() -> registry.Client:
    """The process's registry client (it keeps tokens between requests)."""
    global _client
    if _client is None:
        _client = registry.Client(auth.credentials)
    return _client


def lookup(ref: str) -> registry.Manifest | None:
    """The manifest of ``ref`` in its registry (None if absent): over HTTP, else through buildx."""
    try:
        return client().manifest(ref)
    except registry.RegistryError as exc:
        log.debug("registry API unavailable, asking buildx", image=ref, reason=redact(str(exc)))
    descriptor = images.registry_descriptor(ref)
    if descriptor is None:
        return None
    return registry.Manifest(str(descriptor.get("mediaType", "")), str(descriptor["digest"]), b"")


def resolve_base(ref: str) -> str | None:
    """A base image's digest in its registry, else its ID in the local engine, else None."""
    try:
        found = lookup(ref)
        if found is not None:
            return found.digest
    except CommandFailed as exc:
        log.debug("base image not in its registry", image=ref, error=exc.output[-300:])
    except EnvironmentProblem:  # no docker CLI: no fingerprint, not a failure of planning
        return None
    try:
        return images.local_image_id(ref)
    except (CommandFailed, EnvironmentProblem):
        return None


@dataclass(frozen=True)
class Fingerprints:
    """Fingerprints of some targets, and why the others have none."""

    values: dict[str, Fingerprint]
    missing: dict[str, str]


def compute(project: Project, targets: Sequence[Target], args: Mapping[str, Mapping[str, str]]) -> Fingerprints:
    """Fingerprint ``targets``; ``args`` are each target's resolved build args (from the plan)."""
    config = project.config
    context = project.root / config.context
    ignore = fingerprint.read_ignore(context, project.root / config.dockerfile)
    all_files = fingerprint.context_files(context, ignore)
    stages = dockerfile.stages(project.dockerfile_text)
    keys = {s.key for s in stages} | {str(s.index) for s in stages} | {"scratch"}
    preamble = dockerfile.preamble(project.dockerfile_text)
    defaults = fingerprint.arg_defaults(preamble)

    bases: dict[str, list[str]] = {}
    for target in targets:
        resolved = {**defaults, **args[target.id]}
        bases[target.id] = [
            fingerprint.substitute(s.base, resolved)
            for s in dockerfile.chain(stages, target.stage)
            if s.base.lower() not in keys
        ]
    unique = sorted({ref for refs in bases.values() for ref in refs})
    digests = dict(zip(unique, parallel(resolve_base, unique), strict=True))

    extra: dict[str, str] = {}
    if project.inherits_base and project.bake_file is not None:
        extra["bake file"] = fingerprint.file_hashes(project.root, [project.bake_file.name])[project.bake_file.name]
    if config.labels:
        extra["labels"] = json.dumps(config.labels, sort_keys=True)

    hashes: dict[str, str] = {}
    values: dict[str, Fingerprint] = {}
    missing: dict[str, str] = {}
    for target in targets:
        unresolved = [ref for ref in bases[target.id] if not digests[ref]]
        if unresolved:
            missing[target.id] = f"base image {unresolved[0]} is in neither its registry nor the local engine"
            continue
        patterns, external = fingerprint.input_patterns(stages, target.stage, project.inputs)
        files = all_files if "." in patterns else fingerprint.select(all_files, patterns)
        for path in files:
            if path not in hashes:
                hashes.update(fingerprint.file_hashes(context, [path]))
        values[target.id] = fingerprint.compute(
            stage_texts=["\n".join(preamble)] + [s.text for s in dockerfile.chain(stages, target.stage)],
            args=args[target.id],
            base_digests={ref: str(digests[ref]) for ref in bases[target.id]},
            files={p: hashes[p] for p in files},
            platforms=config.platforms,
            external=external,
            extra=extra,
        )
    return Fingerprints(values, missing)


# -- the local record -----------------------------------------------------------------------


def record(state: State, target: str, fp: Fingerprint, image: str, image_id: str | None) -> None:
    """Remember which fingerprint the local image of ``target`` was made from."""
    data = {"fingerprint": fp.value, "parts": fp.parts, "image": image, "image_id": image_id}
    write_atomic(state.fingerprint_record(target), json.dumps(data, indent=1, sort_keys=True) + "\n")


def recorded(state: State, target: str) -> dict[str, object] | None:
    try:
        data = json.loads(state.fingerprint_record(target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def add_tags(image: str, manifest: registry.Manifest, tags: Sequence[str]) -> None:
    """Tag an existing manifest: its bytes over HTTP (same digest), else buildx imagetools."""
    if not tags:
        return
    if manifest.body:
        try:
            parallel(lambda tag: client().tag(manifest, tag), list(tags))
            return
        except registry.RegistryError as exc:
            log.debug("registry API unavailable, asking buildx", image=image, reason=redact(str(exc)))
    images.retag(f"{image}@{manifest.digest}", tags, index=manifest.is_index)


def publish(t: TargetPlan, digest: str) -> None:
    """Give a pushed image the rest of its tags, the fingerprint tag last: an image is
    found by its fingerprint only once every other tag of it is in the registry."""
    if not t.later_tags:
        return
    manifest = lookup(f"{t.repository}@{digest}")
    if manifest is None:
        raise CommandFailed(["tag", f"{t.repository}@{digest}"], 1, f"{t.repository}@{digest}: manifest unknown")
    fp_tags = [tag for tag in t.later_tags if t.fingerprint and tag.endswith(fingerprint_tag(t.target, t.fingerprint))]
    add_tags(t.repository, manifest, [tag for tag in t.later_tags if tag not in fp_tags])
    add_tags(t.repository, manifest, fp_tags)


def reuse(plan: Plan, fps: Fingerprints) -> dict[str, Result]:
    """Targets whose fingerprint image is in the registry, with this run's tags added to it."""

    def one(t: TargetPlan) -> Result | None:
        fp = fps.values.get(t.id)
        if fp is None:
            return None
        started = time.monotonic()
        fp_tag = fingerprint_tag(t.target, fp.value)
        try:
            manifest = lookup(f"{t.repository}:{fp_tag}")
        except CommandFailed as exc:
            log.warning("cannot look up the fingerprint image", target=t.id, error=redact(exc.output[-300:]))
            return None
        if manifest is None:
            log.info("not reused: no image for this fingerprint", target=t.id, tag=fp_tag)
            return None
        tags = [tag for tag in t.tags if not tag.endswith(f":{fp_tag}")]
        try:
            add_tags(t.repository, manifest, tags)
        except CommandFailed as exc:
            log.warning("cannot tag the fingerprint image", target=t.id, error=redact(exc.output[-300:]))
            return None
        log.debug("reused", target=t.id, fingerprint=fp.short, digest=manifest.digest)
        return Result(
            target=t.id, status="reused", image=t.image, digest=manifest.digest, seconds=time.monotonic() - started
        )

    found = parallel(one, list(plan.targets))
    return {r.target: r for r in found if r is not None}
