"""Retention: which of the refs bake-ci wrote to a registry are kept, which go, and why (pure).

bake-ci writes, per target ``STAGE-pyX.Y`` (see :mod:`bake.naming`, :func:`bake.policy.identity`):

- in the image repository ``IMAGE``: the bare tag ``STAGE-pyX.Y`` (default branch), the
  branch tag ``STAGE-pyX.Y-IDENTITY`` (a branch, ``branch-NAME`` for one whose name takes a
  reserved form, or ``pr-N``), the commit tag ``STAGE-pyX.Y-<7 hex>`` and the fingerprint
  tag ``STAGE-pyX.Y-fp-<12 hex>``;
- in the cache repository ``IMAGE-cache``: the cache ref ``STAGE-pyX.Y-IDENTITY`` and the
  cache fingerprint ref ``STAGE-pyX.Y-fp-<12 hex>`` (:func:`bake.cache.fingerprint_ref`);
- for each platform of a multi-platform project, the same refs with ``__OS-ARCH`` after
  them (docs/tags.md): judged by the ref before the suffix, by the same rules (the last K
  fingerprints counted per target and platform), and a per-platform fingerprint tag whose
  image a kept multi-platform index lists is kept with it.

:func:`classify` reads each tag by exactly those forms and gives it a verdict with the
reason. Anything it cannot read (another target's tag, a form it does not know, or a ref
whose age cannot be told) is kept, and the reason says so.
:func:`actions` then says how a ref that goes is removed: its manifest deleted by digest,
or, when a kept ref still reaches that manifest, the tag alone moved away ("untag").
Nothing here does I/O: :mod:`bake.gc` gathers the facts and applies the verdicts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from bake.naming import MAX_TAG, PLATFORM_SUFFIX_RE, reserved, slug

DAY = 86400.0
Repo = Literal["image", "cache"]
Kind = Literal["bare", "branch", "commit", "fingerprint", "pr", "placeholder", "unknown"]
Action = Literal["keep", "delete", "untag"]

_FP_RE = re.compile(r"fp-[0-9a-f]{12}")
_COMMIT_RE = re.compile(r"[0-9a-f]{7,64}")
_PR_RE = re.compile(r"pr-([1-9][0-9]{0,9})")
_SLUG_RE = re.compile(r"[a-z0-9_][a-z0-9_.-]*")
#: per-platform refs (docs/tags.md): any other form followed by ``__OS-ARCH[-VARIANT]``
_PLAT_RE = PLATFORM_SUFFIX_RE


@dataclass(frozen=True)
class Settings:
    """``[tool.bake-ci.retention]`` with the command line's overrides applied."""

    branch_days: float = 14
    pr_days: float = 14
    commit_days: float = 30
    keep_fingerprints: int = 5
    grace: float = 3600.0  # seconds


@dataclass(frozen=True)
class Ref:
    """One tag in the registry, and what its manifest says about it."""

    repo: Repo
    tag: str
    digest: str
    #: The newest build time known for what the tag names (unix time): the image config's
    #: ``created``, the cache's newest ``buildkit/createdat``; None when nothing tells.
    written: float | None = None
    #: The image's ``dev.bake-ci.fingerprint`` label (image repository).
    fingerprint: str | None = None
    #: A placeholder manifest bake-ci's gc pushes to untag a tag (left by an interrupted run).
    placeholder: bool = False


@dataclass(frozen=True)
class Facts:
    """What the verdicts depend on besides the refs themselves."""

    now: float
    #: ``STAGE-pyX.Y`` of every configured target.
    prefixes: Sequence[str]
    default_branch: str
    fallback_branches: Sequence[str] = ()
    #: Live branches, as the identity their refs are named after, with their last commit's
    #: time (None: not known, so not stale).
    branches: Mapping[str, float | None] = field(default_factory=dict)
    #: Where the live branches come from, for reasons ("git ls-remote origin").
    branches_from: str = "the branch list"
    #: Open pull/merge requests' numbers, when a list was given.
    open_prs: frozenset[int] | None = None
    #: Commit time of each commit git knows, by its 7-character prefix.
    commits: Mapping[str, float] = field(default_factory=dict)
    #: 7-character prefixes of the live branches' head commits.
    heads: frozenset[str] = frozenset()
    #: 7-character prefixes of every commit reachable from a live branch (None: unknown).
    reachable: frozenset[str] | None = None
    #: cache fingerprint tag -> the image fingerprint tag it was written for.
    cache_of: Mapping[str, str] = field(default_factory=dict)
    #: image manifest digest -> the manifests it lists (an index's images and attestations).
    children: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    ref: Ref
    kind: Kind
    keep: bool
    reason: str
    action: Action = "keep"

    def to_dict(self) -> dict[str, object]:
        return {
            "repository": self.ref.repo,
            "tag": self.ref.tag,
            "digest": self.ref.digest,
            "kind": self.kind,
            "verdict": "keep" if self.keep else "delete",
            "action": self.action,
            "reason": self.reason,
        }


# -- reading tags -------------------------------------------------------------------------------


def split(tag: str, prefixes: Iterable[str]) -> tuple[str, str] | None:
    """``(prefix, suffix)`` for the longest configured ``STAGE-pyX.Y`` the tag starts with."""
    best = None
    for prefix in prefixes:
        if (tag == prefix or tag.startswith(prefix + "-")) and (best is None or len(prefix) > len(best)):
            best = prefix
    return None if best is None else (best, tag[len(best) + 1 :])


def platform_of(tag: str) -> tuple[str, str]:
    """``(ref, platform)`` of a per-platform ref ``REF__OS-ARCH`` (``("ci-py3.12-main",
    "linux-arm64")``); ``(tag, "")`` for any other tag."""
    found = _PLAT_RE.search(tag)
    return (tag, "") if found is None else (tag[: found.start()], tag[found.start() + 2 :])


def kind_of(repo: Repo, suffix: str) -> tuple[Kind, str]:
    """What a tag's suffix (after ``STAGE-pyX.Y-``) is, by the forms bake-ci writes, and why
    when it is ``unknown``."""
    if suffix == "":
        return ("bare", "") if repo == "image" else ("unknown", "bake-ci writes no bare tag to the cache repository")
    if _FP_RE.fullmatch(suffix):
        return "fingerprint", ""
    if _PR_RE.fullmatch(suffix):
        return "pr", ""
    if repo == "image" and _COMMIT_RE.fullmatch(suffix):
        return "commit", ""
    if _PLAT_RE.search(suffix) or "__" in suffix:
        return "unknown", "a per-platform ref, which this version of bake-ci does not read"
    if reserved(suffix):
        return "unknown", "a form reserved for a kind of ref this version of bake-ci does not write"
    if _SLUG_RE.fullmatch(suffix) and not suffix.endswith((".", "-")):
        return "branch", ""
    return "unknown", "not a form bake-ci writes"


def _days(seconds: float) -> str:
    days = seconds / DAY
    if days >= 2:
        return f"{days:.0f} days"
    hours = seconds / 3600
    return f"{hours:.1f} h" if hours >= 1 else f"{max(seconds, 0) / 60:.0f} min"


def branch_tag(prefix: str, name: str) -> str:
    """The suffix bake-ci gives ``name``'s refs under ``prefix`` (as :func:`bake.naming.branch_tag`)."""
    return slug(name, MAX_TAG - len(prefix) - 1)


# -- verdicts ------------------------------------------------------------------------------------


def classify(refs: Sequence[Ref], facts: Facts, settings: Settings) -> list[Verdict]:
    """A verdict for every ref, in the order given."""
    protected = {facts.default_branch: "the default branch"}
    for name in facts.fallback_branches:
        protected.setdefault(name, "a fallback branch")
    first: dict[tuple[Repo, str], Verdict] = {}
    for ref in refs:
        if ref.repo == "cache" or not _is_fingerprint(ref, facts):
            first[(ref.repo, ref.tag)] = _one(ref, facts, settings, protected)
    # Fingerprint tags: kept when a kept tag names the same image, or among the newest K.
    kept_digests: dict[tuple[Repo, str], str] = {}
    for verdict in first.values():
        if verdict.keep:
            kept_digests.setdefault((verdict.ref.repo, verdict.ref.digest), verdict.ref.tag)
    by_prefix: dict[tuple[str, str], list[Ref]] = {}
    for ref in refs:
        if ref.repo == "image" and _is_fingerprint(ref, facts):
            parts = split(ref.tag, facts.prefixes)
            assert parts is not None
            by_prefix.setdefault((parts[0], platform_of(ref.tag)[1]), []).append(ref)
    listed: dict[str, str] = {}  # image digest -> the kept multi-platform image that lists it
    # plain fingerprint tags first: a per-platform one is kept with the kept index that lists its image
    for (prefix, platform), group in sorted(by_prefix.items(), key=lambda item: (item[0][1] != "", item[0])):
        if platform and not listed:
            listed = _listed(first.values(), facts.children)
        of = f"{prefix} ({platform})" if platform else prefix
        dated = sorted((r for r in group if r.written is not None), key=lambda r: (-(r.written or 0), r.tag))
        newest = {r.tag for r in dated[: settings.keep_fingerprints]}
        for ref in group:
            shared = kept_digests.get(("image", ref.digest))
            lister = next((listed[d] for d in {ref.digest, *facts.children.get(ref.digest, ())} if d in listed), None)
            if shared is not None:
                verdict = Verdict(ref, "fingerprint", True, f"the image of kept tag {shared}")
            elif lister is not None:
                verdict = Verdict(ref, "fingerprint", True, f"its image is in kept multi-platform image {lister}")
            elif ref.tag in newest:
                verdict = Verdict(
                    ref, "fingerprint", True, f"one of the last {settings.keep_fingerprints} fingerprints of {of}"
                )
            elif ref.written is None:
                verdict = Verdict(ref, "fingerprint", True, "its build time cannot be told (no created date)")
            else:
                why = f"not among the last {settings.keep_fingerprints} fingerprints of {of}; no kept tag uses it"
                verdict = _graced(ref, "fingerprint", why, facts, settings)
            first[(ref.repo, ref.tag)] = verdict
    image_verdicts = {tag: v for (repo, tag), v in first.items() if repo == "image"}
    kept_cache = {
        v.ref.digest: v.ref.tag
        for (repo, _), v in first.items()
        if repo == "cache" and v.keep and v.kind != "fingerprint"
    }
    out = []
    for ref in refs:
        verdict = first[(ref.repo, ref.tag)]
        if ref.repo == "cache" and verdict.kind == "fingerprint":
            verdict = _cache_fingerprint(ref, facts, settings, image_verdicts, kept_cache)
        out.append(verdict)
    return out


def _is_fingerprint(ref: Ref, facts: Facts) -> bool:
    parts = split(platform_of(ref.tag)[0], facts.prefixes)
    return not ref.placeholder and parts is not None and kind_of(ref.repo, parts[1])[0] == "fingerprint"


def _listed(verdicts: Iterable[Verdict], children: Mapping[str, frozenset[str]]) -> dict[str, str]:
    """Every image digest a kept plain (not per-platform) image tag lists, and that tag."""
    out: dict[str, str] = {}
    for v in verdicts:
        if v.keep and v.ref.repo == "image" and not platform_of(v.ref.tag)[1]:
            for child in children.get(v.ref.digest, ()):
                out.setdefault(child, v.ref.tag)
    return out


def _graced(ref: Ref, kind: Kind, why: str, facts: Facts, settings: Settings) -> Verdict:
    """Delete for ``why``, unless the ref was written within the grace window or when cannot be told."""
    if settings.grace > 0:
        if ref.written is None:
            return Verdict(ref, kind, True, f"{why}, but when it was written cannot be told (grace window)")
        age = facts.now - ref.written
        if age < settings.grace:
            return Verdict(ref, kind, True, f"{why}, but written {_days(age)} ago, within the grace window")
    return Verdict(ref, kind, False, why, "delete")


def _one(ref: Ref, facts: Facts, settings: Settings, protected: Mapping[str, str]) -> Verdict:
    if ref.placeholder:
        return Verdict(ref, "placeholder", False, "a placeholder an interrupted gc left behind", "delete")
    base, platform = platform_of(ref.tag)
    if platform and "__" in base:
        return Verdict(ref, "unknown", True, "not a form bake-ci writes (a ref of a ref of a platform): kept")
    if platform:  # one platform's ref: judged as the ref it is made from
        found = _one(replace(ref, tag=base), facts, settings, protected)
        if found.kind == "bare":
            return Verdict(ref, "unknown", True, "a per-platform bare tag, which bake-ci does not write: kept")
        return replace(found, ref=ref, reason=f"the {platform} ref of {base}: {found.reason}")
    parts = split(ref.tag, facts.prefixes)
    if parts is None:
        return Verdict(ref, "unknown", True, "not a tag of a configured target (STAGE-pyX.Y): unknown to bake-ci")
    prefix, suffix = parts
    kind, why = kind_of(ref.repo, suffix)
    if kind == "unknown":
        return Verdict(ref, kind, True, f"{why}: kept")
    if kind == "bare":
        return Verdict(ref, kind, True, "the default branch's bare tag")
    if kind == "fingerprint":  # a cache fingerprint ref: decided with its image (see classify)
        return Verdict(ref, kind, True, "pending")
    if kind == "pr":
        return _pr(ref, int(suffix[3:]), facts, settings)
    if kind == "commit":
        return _commit(ref, suffix, facts, settings)
    for name, what in protected.items():
        if branch_tag(prefix, name) == suffix:
            return Verdict(ref, kind, True, f"{what} {name}")
    for name, committed in facts.branches.items():
        if branch_tag(prefix, name) != suffix:
            continue
        if committed is None:
            return Verdict(ref, kind, True, f"branch {name} is live (its last commit's date is unknown)")
        age = facts.now - committed
        if age <= settings.branch_days * DAY:
            return Verdict(ref, kind, True, f"branch {name} is live (last commit {_days(age)} ago)")
        why = f"branch {name} has had no commit for {_days(age)} (branch-days = {settings.branch_days:g})"
        return _graced(ref, kind, why, facts, settings)
    return _graced(ref, kind, f"no live branch is named {suffix} (per {facts.branches_from})", facts, settings)


def _pr(ref: Ref, number: int, facts: Facts, settings: Settings) -> Verdict:
    if facts.open_prs is not None and number not in facts.open_prs:
        return _graced(ref, "pr", f"pull request {number} is not in the list of open requests", facts, settings)
    if ref.written is None:
        return Verdict(ref, "pr", True, f"pull request {number}: when it was built cannot be told")
    age = facts.now - ref.written
    if age > settings.pr_days * DAY:
        why = f"pull request {number} was last built {_days(age)} ago (pr-days = {settings.pr_days:g})"
        return _graced(ref, "pr", why, facts, settings)
    return Verdict(ref, "pr", True, f"pull request {number} built {_days(age)} ago")


def _commit(ref: Ref, sha: str, facts: Facts, settings: Settings) -> Verdict:
    if sha in facts.heads:
        return Verdict(ref, "commit", True, f"commit {sha} is the head of a live branch")
    when, source = facts.commits.get(sha), "committed"
    if when is not None and facts.reachable is not None and sha not in facts.reachable:
        return _graced(ref, "commit", f"commit {sha} is on no live branch", facts, settings)
    if when is None:
        when, source = ref.written, "built"
    if when is None:
        return Verdict(ref, "commit", True, f"commit {sha}: not known to git and no build time")
    age = facts.now - when
    if age > settings.commit_days * DAY:
        why = f"commit {sha} was {source} {_days(age)} ago (commit-days = {settings.commit_days:g})"
        return _graced(ref, "commit", why, facts, settings)
    return Verdict(ref, "commit", True, f"commit {sha} was {source} {_days(age)} ago")


def _cache_fingerprint(
    ref: Ref, facts: Facts, settings: Settings, images: Mapping[str, Verdict], kept_cache: Mapping[str, str]
) -> Verdict:
    image_tag = facts.cache_of.get(ref.tag)
    image = images.get(image_tag) if image_tag else None
    if image is not None:
        if image.keep:
            return Verdict(ref, "fingerprint", True, f"the cache of kept fingerprint tag {image_tag}")
        return replace(image, ref=ref, reason=f"the cache of fingerprint tag {image_tag}, which goes")
    shared = kept_cache.get(ref.digest)
    if shared is not None:
        return Verdict(ref, "fingerprint", True, f"the cache kept cache ref {shared} holds")
    why = "no image of this fingerprint is left and no kept cache ref holds it"
    return _graced(ref, "fingerprint", why, facts, settings)


# -- how each ref goes ---------------------------------------------------------------------------


def actions(verdicts: Sequence[Verdict], reached: Mapping[Repo, frozenset[str]]) -> list[Verdict]:
    """Each verdict with its action: a ref that goes has its manifest deleted, unless a kept
    ref of the same repository names or reaches that manifest (``reached``: every digest kept
    tags reach through indexes, their children, attestations and cache manifests): then only
    the tag is moved away (``untag``)."""
    kept: dict[Repo, set[str]] = {"image": set(), "cache": set()}
    for v in verdicts:
        if v.keep:
            kept[v.ref.repo].add(v.ref.digest)
    out = []
    for v in verdicts:
        if v.keep:
            out.append(replace(v, action="keep"))
        elif v.ref.digest in kept[v.ref.repo] or v.ref.digest in reached.get(v.ref.repo, frozenset()):
            out.append(replace(v, action="untag"))
        else:
            out.append(replace(v, action="delete"))
    return out


def freed(verdicts: Sequence[Verdict], blobs: Mapping[str, Mapping[str, int]], kept_blobs: Iterable[str] = ()) -> int:
    """Bytes of the blobs referenced only by manifests that are deleted: ``blobs`` maps a
    manifest digest to its blobs' digests and sizes (children included); blobs of every
    manifest that stays, and ``kept_blobs``, are not counted."""
    gone: dict[str, int] = {}
    staying = set(kept_blobs)
    deleted = {v.ref.digest for v in verdicts if v.action == "delete"}
    for v in verdicts:
        target = gone if v.ref.digest in deleted else None
        for blob, size in blobs.get(v.ref.digest, {}).items():
            if target is None:
                staying.add(blob)
            else:
                target[blob] = size
    return sum(size for blob, size in gone.items() if blob not in staying)
