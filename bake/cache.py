"""Registry cache the build reads and writes, cut to what helps, from one look-up per ref.

Every cache source costs each target a manifest resolution inside BuildKit, found or
not, and every registry export walks and re-pushes the target's whole cache even when
the ref already holds exactly that (measured in ``bench/definitions.py``: on 16 targets a
fully cached rebuild spent more on these than a cold build took). Before the build, all
refs are asked at once (a HEAD-sized GET each, in parallel) and:

- a cache source that does not exist, or names a manifest an earlier source already
  names, is dropped; the default branch's image (inline cache, never more than a cache
  ref holds) is kept only when no cache ref exists;
- a registry export is dropped when the cache repository already holds the cache
  written for the target's fingerprint (its tag ``STAGE-pyX.Y-fp-<12 hex>``, the hex
  also covering the export options). After the build the branch's ref is pointed at it,
  or, where the export ran, the fresh cache is tagged with the fingerprint;
- a target that is reused instead of built gets the same: the branch cache ref it would
  have exported is pointed at the fingerprint's cache, the cache of the very build whose
  image it reuses (:func:`point_reused`). Without it the default branch's cache ref would
  stay at an older build after it reused a branch's image, and a later cold build of the
  default branch would miss.

Cache can only make a step's result come from somewhere else when BuildKit's own key of
that step matches, so none of this can ship a stale image: a wrong decision costs cache
hits, nothing else. A ref that cannot be asked (auth, network) is kept as planned. Only
runs that may write fingerprint tags (see bake.policy.policy) tag cache by fingerprint: the
tag is shared by every branch, like the fingerprint tag of an image.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from bake import logs, registry
from bake.plan import Plan, TargetPlan, fingerprint_tag
from bake.pool import parallel
from bake.redact import redact

log = logs.get_logger("bake")

#: A look-up's answer: the manifest, None when the registry does not have the ref, or
#: UNKNOWN when it could not be asked.
UNKNOWN = registry.Manifest("", "", b"")
Found = Mapping[str, "registry.Manifest | None"]


def registry_ref(entry: str) -> str | None:
    """``type=registry,ref=R,mode=max`` -> R; None for other cache types."""
    fields = dict(part.split("=", 1) for part in entry.split(",") if "=" in part)
    return fields.get("ref") if fields.get("type") == "registry" else None


def _export(t: TargetPlan) -> str | None:
    return next((e for e in t.cache_to if registry_ref(e)), None)


def fingerprint_ref(t: TargetPlan, fingerprint: str) -> str | None:
    """Where the cache written for ``fingerprint`` (with these export options) is tagged."""
    export = _export(t)
    if export is None:
        return None
    ref = registry_ref(export)
    assert ref is not None
    options = ",".join(sorted(p for p in export.split(",") if not p.startswith("ref=")))
    key = hashlib.sha256(f"{fingerprint}\n{options}".encode()).hexdigest()
    return f"{ref.rpartition(':')[0]}:{fingerprint_tag(t.target, key, t.platform)}"


def refs_to_ask(plan: Plan, fingerprints: Mapping[str, str]) -> list[str]:
    refs = [r for t in plan.targets for r in map(registry_ref, t.cache_from) if r]
    refs += [r for t in plan.targets if t.id in fingerprints for r in [fingerprint_ref(t, fingerprints[t.id])] if r]
    refs += [r for t in plan.targets if t.id in fingerprints for r in [registry_ref(_export(t) or "")] if r]
    return list(dict.fromkeys(refs))


@dataclass(frozen=True)
class After:
    """Registry cache tags to write once a target is built: (source ref, new ref)."""

    tags: Mapping[str, tuple[tuple[str, str], ...]]


def trim(plan: Plan, fingerprints: Mapping[str, str], found: Found, *, record_fingerprints: bool) -> tuple[Plan, After]:
    """The plan with only useful cache sources and exports, given each ref's look-up (pure).

    ``record_fingerprints``: whether this run may tag a fresh export with its fingerprint
    (only runs trusted to write fingerprint tags: cache maps BuildKit's keys to layers, and
    a fork that could tag cache for main's inputs could plant layers in main's builds)."""
    targets = []
    after: dict[str, tuple[tuple[str, str], ...]] = {}
    for t in plan.targets:
        sources: list[str] = []
        digests: set[str] = set()
        for entry in t.cache_from:
            ref = registry_ref(entry)
            manifest = found.get(ref, UNKNOWN) if ref else UNKNOWN
            if ref is None or manifest is UNKNOWN:
                sources.append(entry)
                continue
            if manifest is None or manifest.digest in digests:
                continue
            if ref.startswith(f"{t.repository}:") and sources:
                continue  # the default branch's image: its inline cache is no more than a cache ref holds
            digests.add(manifest.digest)
            sources.append(entry)
        cache_to = list(t.cache_to)
        fp = fingerprints.get(t.id)
        export = _export(t)
        fp_ref = fingerprint_ref(t, fp) if fp else None
        if export is not None and fp_ref is not None:
            branch_ref = registry_ref(export)
            assert branch_ref is not None
            have, current = found.get(fp_ref, UNKNOWN), found.get(branch_ref, UNKNOWN)
            if have is not None and have is not UNKNOWN:
                cache_to.remove(export)  # these inputs' cache is in the registry already
                if current is None or current is UNKNOWN or current.digest != have.digest:
                    after[t.id] = ((fp_ref, branch_ref),)
            elif have is None and record_fingerprints:
                after[t.id] = ((branch_ref, fp_ref),)  # record the fresh export under the fingerprint
        targets.append(dataclasses.replace(t, cache_from=tuple(sources), cache_to=tuple(cache_to)))
    return dataclasses.replace(plan, targets=tuple(targets)), After(after)


def reused_after(plan: Plan, fingerprints: Mapping[str, str], reused: Collection[str], found: Found) -> After:
    """For each ``reused`` target (its image re-tagged, not built): point the branch cache ref
    its plan exports at the cache tagged with its fingerprint, when that is there and the
    branch ref names something else (pure). A plan exports a branch cache ref only where
    the trust policy lets the run write it, and a run reuses only where it may write its
    branch tags: a fork, which may do neither, gets nothing here."""
    after: dict[str, tuple[tuple[str, str], ...]] = {}
    for t in plan.targets:
        fp = fingerprints.get(t.id)
        export = _export(t)
        if t.id not in reused or fp is None or export is None:
            continue
        fp_ref, branch_ref = fingerprint_ref(t, fp), registry_ref(export)
        assert fp_ref is not None
        assert branch_ref is not None
        have, current = found.get(fp_ref, UNKNOWN), found.get(branch_ref, UNKNOWN)
        if have is None or have is UNKNOWN:
            continue  # no cache recorded for these inputs: the branch ref stays as it is
        if current is None or current is UNKNOWN or current.digest != have.digest:
            after[t.id] = ((fp_ref, branch_ref),)
    return After(after)


def point_reused(client: registry.Client, plan: Plan, fingerprints: Mapping[str, str], reused: Collection[str]) -> None:
    """Point the branch cache refs of ``reused`` targets at their fingerprint's cache
    (:func:`reused_after`): a manifest copy in the registry, nothing pulled."""
    targets = [t for t in plan.targets if t.id in reused and t.id in fingerprints and _export(t)]
    refs = [r for t in targets for r in (fingerprint_ref(t, fingerprints[t.id]), registry_ref(_export(t) or "")) if r]
    if not refs:
        return
    after = reused_after(plan, fingerprints, reused, look_up(client, list(dict.fromkeys(refs))))
    parallel(lambda t: finish(client, after, t), list(after.tags))


def look_up(client: registry.Client, refs: list[str]) -> dict[str, registry.Manifest | None]:
    """Every ref's manifest, in parallel; UNKNOWN for refs the registry could not be asked about."""

    def one(ref: str) -> registry.Manifest | None:
        try:
            return client.manifest(ref)
        except registry.RegistryError as exc:
            log.debug("cannot look up a cache ref; keeping it as planned", ref=ref, reason=redact(str(exc)))
            return UNKNOWN

    return dict(zip(refs, parallel(one, refs, workers=16), strict=True))


def finish(client: registry.Client, after: After, target: str) -> None:
    """Write ``target``'s cache tags after its build; a failure only costs cache hits later."""
    for source, new in after.tags.get(target, ()):
        try:
            manifest = client.manifest(source)
            if manifest is not None:
                client.tag(manifest, new)
        except registry.RegistryError as exc:
            log.warning("cannot tag registry cache", ref=new, reason=redact(str(exc)))
