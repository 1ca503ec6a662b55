"""Build avoidance: fingerprints for the targets of a project, and reusing images that match.

Fingerprinting reads the project's files and resolves each base image's digest (from
its registry, else from the local engine). With a registry, every pushed image also
carries the tag ``STAGE-pyX.Y-fp-<12 hex>`` and the label ``dev.bake-ci.fingerprint``;
a later build whose target has the same fingerprint adds this branch's tags to that
image with ``imagetools create`` instead of building it.

What was built or fetched locally is recorded in ``.bake-ci/fingerprints/TARGET.json``
(fingerprint, its parts, the local image ID), so ``status`` can tell which inputs
changed since the local image.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import structlog

from bake import engine, inputs, registry
from bake.config import Project
from bake.errors import EnvironmentProblem
from bake.files import write_atomic
from bake.fingerprint import Fingerprint
from bake.plan import STATE_DIR, Plan, Target, fingerprint_tag
from bake.redact import redact
from bake.report import Result

log = structlog.get_logger("bake")
T = TypeVar("T")
R = TypeVar("R")
LABEL = "dev.bake-ci.fingerprint"


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
        _client = registry.Client(engine.registry_credentials)
    return _client


def lookup(ref: str) -> registry.Manifest | None:
    """The manifest of ``ref`` in its registry (None if absent): over HTTP, else through buildx."""
    try:
        return client().manifest(ref)
    except registry.RegistryError as exc:
        log.debug("registry API unavailable, asking buildx", image=ref, reason=redact(str(exc)))
    descriptor = engine.registry_descriptor(ref)
    if descriptor is None:
        return None
    return registry.Manifest(str(descriptor.get("mediaType", "")), str(descriptor["digest"]), b"")


def resolve_base(ref: str) -> str | None:
    """A base image's digest in its registry, else its ID in the local engine, else None."""
    try:
        found = lookup(ref)
        if found is not None:
            return found.digest
    except engine.CommandFailed as exc:
        log.debug("base image not in its registry", image=ref, error=exc.output[-300:])
    except EnvironmentProblem:  # no docker CLI: no fingerprint, not a failure of planning
        return None
    try:
        return engine.local_image_id(ref)
    except (engine.CommandFailed, EnvironmentProblem):
        return None


@dataclass(frozen=True)
class Fingerprints:
    """Fingerprints of some targets, and why the others have none."""

    values: dict[str, Fingerprint]
    missing: dict[str, str]


def compute(project: Project, targets: Sequence[Target], args: Mapping[str, Mapping[str, str]]) -> Fingerprints:
    """Fingerprint ``targets``; ``args`` are each target's resolved build args (from the plan).
    Images are resolved with :func:`resolve_base`; see :mod:`bake.inputs`."""
    values, missing = inputs.fingerprints(project, targets, args, resolve=lambda ref: resolve_base(ref))
    return Fingerprints(values, missing)


# -- the local record -----------------------------------------------------------------------


def _record_file(project: Project, target: str) -> Path:
    return project.root / STATE_DIR / "fingerprints" / f"{target}.json"


def record(project: Project, target: str, fp: Fingerprint, image: str, image_id: str | None) -> None:
    """Remember which fingerprint the local image of ``target`` was made from."""
    data = {"fingerprint": fp.value, "parts": fp.parts, "image": image, "image_id": image_id}
    write_atomic(_record_file(project, target), json.dumps(data, indent=1, sort_keys=True) + "\n")


def recorded(project: Project, target: str) -> dict[str, object] | None:
    try:
        data = json.loads(_record_file(project, target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def add_tags(image: str, manifest: registry.Manifest, tags: Sequence[str]) -> None:
    """Tag an existing manifest: its bytes over HTTP (same digest), else buildx imagetools."""
    if manifest.body:
        try:
            parallel(lambda tag: client().tag(manifest, tag), list(tags))
            return
        except registry.RegistryError as exc:
            log.debug("registry API unavailable, asking buildx", image=image, reason=redact(str(exc)))
    engine.retag(f"{image}@{manifest.digest}", tags, index=manifest.is_index)


def reuse(plan: Plan, fps: Fingerprints) -> dict[str, Result]:
    """Targets whose fingerprint image is in the registry, with this branch's tags added to it."""

    def one(target: Target) -> Result | None:
        fp = fps.values.get(target.id)
        if fp is None:
            return None
        started = time.monotonic()
        image = plan.image_refs[target.id]
        fp_tag = fingerprint_tag(target, fp.value)
        try:
            manifest = lookup(f"{image}:{fp_tag}")
        except engine.CommandFailed as exc:
            log.warning("cannot look up the fingerprint image", target=target.id, error=redact(exc.output[-300:]))
            return None
        if manifest is None:
            log.info("not reused: no image for this fingerprint", target=target.id, tag=fp_tag)
            return None
        tags = [t for t in plan.definition["target"][target.id]["tags"] if not t.endswith(f":{fp_tag}")]
        try:
            add_tags(image, manifest, tags)
        except engine.CommandFailed as exc:
            log.warning("cannot tag the fingerprint image", target=target.id, error=redact(exc.output[-300:]))
            return None
        log.debug("reused", target=target.id, fingerprint=fp.short, digest=manifest.digest)
        return Result(target.id, "reused", tags[0], manifest.digest, time.monotonic() - started, None, None)

    found = parallel(one, plan.targets)
    return {r.target: r for r in found if r is not None}
