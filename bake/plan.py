"""From a validated project to a typed plan: pure data, no I/O.

:func:`build_plan` is called once per command. Its :class:`Plan` is what reuse,
execution, status and reports read; :meth:`Plan.bake_definition` turns it into the
JSON that ``docker buildx bake`` reads, at the edge. The same project, selection,
branch and commit always give byte-identical JSON (what ``bake-ci plan`` prints).
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from bake.args import Output
from bake.config import Project
from bake.errors import UsageError
from bake.naming import PythonVersion, branch_tag, platform_suffix, tag_prefix, target_id
from bake.policy import Writes
from bake.redact import redact_definition

#: The target of a project's docker-bake.hcl that generated targets inherit.
BASE_TARGET = "bake-ci"


@dataclass(frozen=True)
class Target:
    """One (stage, Python) cell of the matrix."""

    stage: str
    python: PythonVersion

    @property
    def id(self) -> str:
        return target_id(self.stage, self.python)


@dataclass(frozen=True)
class Selection:
    """What the user asked for: identifiers or fnmatch patterns, stages, Pythons."""

    patterns: Sequence[str] = ()
    stages: Sequence[str] = ()
    pythons: Sequence[str] = ()


def matrix(project: Project) -> list[Target]:
    """Every target, stages outer, Python versions inner, in configured order."""
    return [Target(s, p) for s in project.stages for p in project.config.pythons]


def select(targets: list[Target], selection: Selection) -> list[Target]:
    """Filter the matrix; anything that matches nothing is a usage error listing the choices."""
    known = ", ".join(t.id for t in targets)
    chosen = list(targets)
    if selection.stages:
        stages = {t.stage for t in targets}
        for stage in selection.stages:
            if stage not in stages:
                raise UsageError(
                    f"--stage {stage}: not a configured stage. Configured stages: {', '.join(sorted(stages))}."
                )
        chosen = [t for t in chosen if t.stage in selection.stages]
    if selection.pythons:
        wanted = set()
        for text in selection.pythons:
            try:
                wanted.add(PythonVersion.parse(text))
            except ValueError:
                raise UsageError(f"--python {text}: not a version of the form X.Y, e.g. --python 3.12.") from None
        missing = wanted - {t.python for t in targets}
        if missing:
            raise UsageError(
                f"--python {min(missing)}: not a configured Python version. Configured: "
                f"{', '.join(sorted({str(t.python) for t in targets}))}."
            )
        chosen = [t for t in chosen if t.python in wanted]
    if selection.patterns:
        matched: list[Target] = []
        for pattern in selection.patterns:
            hits = [t for t in targets if fnmatch.fnmatchcase(t.id, pattern) or pattern in (t.stage, t.python.group)]
            if not hits:
                raise UsageError(
                    f"{pattern!r} matches no target. Targets are named STAGE-pyXY; "
                    f"this project has: {known}. Patterns like 'ci-*' or '*-py312' work too."
                )
            matched += hits
        chosen = [t for t in chosen if t in matched]
    if not chosen:
        raise UsageError(f"the selection matches no target. This project has: {known}.")
    return chosen


FINGERPRINT_LABEL = "dev.bake-ci.fingerprint"
#: The fingerprint of an image's inputs but the files only its own stage reads
#: (:attr:`bake.fingerprint.Fingerprint.environment`): ``bake-ci shell`` mounts those.
ENVIRONMENT_LABEL = "dev.bake-ci.environment"


def fingerprint_tag(target: Target, fingerprint: str, platform: str | None = None) -> str:
    """The tag that names an image by its inputs: ``STAGE-pyX.Y-fp-<12 hex>``, and one
    platform's image of a multi-platform target ``STAGE-pyX.Y-fp-<12 hex>__OS-ARCH``."""
    suffix = platform_suffix(platform) if platform else ""
    return f"{tag_prefix(target.stage, target.python)}-fp-{fingerprint[:12]}{suffix}"


def build_args(project: Project, target: Target) -> dict[str, str]:
    """The build args of ``target``: the configured ones plus BASE_IMAGE and PYTHON_VERSION."""
    python = str(target.python)
    return {
        **project.config.args,
        "BASE_IMAGE": project.config.base_image.replace("{python}", python),
        "PYTHON_VERSION": python,
    }


@dataclass(frozen=True)
class TargetPlan:
    """What one target's build reads and writes."""

    target: Target
    #: ``registry/image`` (or just ``image`` without a registry)
    repository: str
    #: every tag this run gives the image: the branch tag first, the fingerprint tag last
    tags: tuple[str, ...]
    fingerprint: str | None
    args: Mapping[str, str]
    labels: Mapping[str, str]
    cache_from: tuple[str, ...]
    cache_to: tuple[str, ...]
    output: Output
    #: One platform of a multi-platform target (its own bake target, tags and cache ref),
    #: or None: every configured platform in one image (or the engine's, with none configured).
    platform: str | None = None

    @property
    def id(self) -> str:
        """The bake target: ``STAGE-pyXY``, and ``STAGE-pyXY__OS-ARCH`` for one platform."""
        return self.target.id + (platform_suffix(self.platform) if self.platform else "")

    @property
    def image(self) -> str:
        """The image reference users see for this target (its branch tag)."""
        return self.tags[0] if self.tags else ""

    @property
    def bake_tags(self) -> tuple[str, ...]:
        """The tags buildx writes. A pushed image gets only its branch tag from buildx;
        the others are added through the registry API once it is there, the fingerprint
        tag last, so an image is never found by fingerprint before it is complete."""
        if self.output == "cache-only":
            return ()
        return self.tags[:1] if self.output == "push" else self.tags

    @property
    def later_tags(self) -> tuple[str, ...]:
        """The tags added after buildx pushed the image (see :attr:`bake_tags`)."""
        return self.tags[1:] if self.output == "push" else ()


@dataclass(frozen=True)
class Plan:
    """The whole run: one :class:`TargetPlan` per selected target, and what they share."""

    targets: tuple[TargetPlan, ...]
    branch: str
    sha: str | None
    output: Output
    context: str
    dockerfile: str
    inherits_base: bool
    platforms: tuple[str, ...]

    def __getitem__(self, target_id: str) -> TargetPlan:
        for t in self.targets:
            if t.id == target_id:
                return t
        raise KeyError(target_id)

    @property
    def ids(self) -> list[str]:
        return [t.id for t in self.targets]

    @property
    def exports_cache(self) -> bool:
        return any(t.cache_to for t in self.targets)

    def bake_definition(self) -> dict[str, Any]:
        """The JSON for ``docker buildx bake``: one target each, plus groups.

        Groups: ``default`` (everything selected), one per stage (``ci``) and one per
        Python version (``py312``).
        """
        groups: dict[str, list[str]] = {"default": self.ids}
        for t in self.targets:
            groups.setdefault(t.target.stage, []).append(t.id)
        for t in self.targets:
            groups.setdefault(t.target.python.group, []).append(t.id)
        return {
            "group": {name: {"targets": ids} for name, ids in groups.items()},
            "target": {t.id: self._bake_target(t) for t in self.targets},
        }

    def _bake_target(self, t: TargetPlan) -> dict[str, Any]:
        output = {"push": "type=registry", "load": "type=docker", "cache-only": "type=cacheonly"}[t.output]
        definition: dict[str, Any] = {
            "context": self.context,
            "dockerfile": self.dockerfile,
            "target": t.target.stage,
            "args": dict(t.args),
            "labels": dict(t.labels),
            "tags": list(t.bake_tags),
            "cache-from": list(t.cache_from),
            "cache-to": list(t.cache_to),
            "output": [output],
        }
        if self.inherits_base:
            definition["inherits"] = [BASE_TARGET]
        if t.platform:
            definition["platforms"] = [t.platform]
        elif self.platforms:
            definition["platforms"] = list(self.platforms)
        return definition

    def to_json(self, *, redacted: bool = False) -> str:
        """The bake definition as JSON: as buildx reads it, or ``redacted`` for printing
        (credentials in a base image or an arg shown as ``***``)."""
        definition = self.bake_definition()
        if redacted:
            definition = redact_definition(definition)
        return json.dumps(definition, indent=2, sort_keys=True) + "\n"


def _cache_opts(project: Project) -> str:
    cache = project.config.cache
    opts = f",mode={cache.mode}"
    if cache.image_manifest:
        opts += ",image-manifest=true,oci-mediatypes=true"
    if cache.ignore_error:
        opts += ",ignore-error=true"
    return opts


def _target(
    project: Project,
    target: Target,
    *,
    branch: str,
    sha: str | None,
    output: Output,
    fingerprint: str | None,
    export_cache: bool,
    cache_dir: PurePath | None,
    writes: Writes | None,
    environment: str | None = None,
    platform: str | None = None,
) -> TargetPlan:
    config = project.config
    repository = f"{config.registry}/{config.image}" if config.registry else config.image
    prefix = tag_prefix(target.stage, target.python)
    # one platform's refs in the registry end with its suffix; a local image keeps the usual tags
    own = platform if output != "load" else None
    suffix = platform_suffix(own) if own else ""
    tags = [f"{repository}:{branch_tag(target.stage, target.python, branch, own)}"]
    if sha:
        tags.append(f"{repository}:{prefix}-{sha[:7]}{suffix}")
    bare = writes.default_tags if writes is not None and output == "push" else branch == config.default_branch
    if bare and not own:  # the bare tag names the whole (multi-platform) image only
        tags.append(f"{repository}:{prefix}")
    if fingerprint:
        tags.append(f"{repository}:{fingerprint_tag(target, fingerprint, own)}")

    cache_from: list[str] = []
    cache_to: list[str] = []
    if config.registry:
        cache_repo = f"{config.registry}/{config.image}-cache"
        reads = writes.cache_from if writes is not None else [branch, *config.fallback_branches]
        branches = list(dict.fromkeys(reads))
        cache_from = [
            f"type=registry,ref={cache_repo}:{branch_tag(target.stage, target.python, b, platform)}" for b in branches
        ]
        cache_from.append(f"type=registry,ref={repository}:{prefix}")
        if export_cache:
            ref = f"{cache_repo}:{branch_tag(target.stage, target.python, branch, platform)}"
            cache_to.append(f"type=registry,ref={ref}{_cache_opts(project)}")
        if output == "push" and config.cache.inline:
            cache_to.append("type=inline")
    elif cache_dir is not None:
        directory = str(cache_dir / (target.id + (platform_suffix(platform) if platform else "")))
        cache_from = [f"type=local,src={directory}"]
        cache_to = [f"type=local,dest={directory},mode={config.cache.mode}"]

    labels = {**config.labels, "dev.bake-ci.target": target.id}
    if fingerprint:
        labels[FINGERPRINT_LABEL] = fingerprint
        if environment:
            labels[ENVIRONMENT_LABEL] = environment
    return TargetPlan(
        target=target,
        repository=repository,
        tags=tuple(tags) if output != "cache-only" else (),
        fingerprint=fingerprint,
        args=build_args(project, target),
        labels=labels,
        cache_from=tuple(cache_from),
        cache_to=tuple(cache_to),
        output=output,
        platform=platform,
    )


def build_plan(
    project: Project,
    targets: Sequence[Target],
    *,
    branch: str,
    sha: str | None,
    output: Output,
    fingerprints: Mapping[str, str] | None = None,
    export_cache: bool | None = None,
    cache_dir: PurePath | None = None,
    writes: Writes | None = None,
    environments: Mapping[str, str] | None = None,
    platforms: Sequence[str | None] = (),
) -> Plan:
    """The plan for ``targets``.

    With ``platforms`` (a multi-platform project built one platform at a time), each
    target gets one :class:`TargetPlan` per platform, with its own bake target, tags,
    cache ref and fingerprint (``fingerprints`` keyed by the per-platform identifier);
    pushed under its per-platform tags (buildx 0.13's docker driver cannot push by
    digest), and :mod:`bake.merge` makes the index.

    With ``fingerprints`` (pushing to a registry), each image also gets its fingerprint
    tag and label (and ``environments``' label). Registry cache is exported when pushing (or cache-only), and with
    ``--load`` only if ``export_cache`` asks for it: a laptop reads the team's cache but
    does not write it. Without a registry, cache goes to ``cache_dir`` (bake-ci's state
    folder, outside the build context).

    ``writes`` (from :func:`bake.policy.policy`) is what this CI run may write: it names the
    branch and output, whether the bare and fingerprint tags are written, and which
    cache refs are read and written.
    """
    if writes is not None:
        branch, output = writes.identity, writes.output
        export_cache = writes.cache_to is not None
        if output == "push" and not writes.fingerprint_tags:
            fingerprints = None
    fingerprints = fingerprints or {}
    if export_cache is None:
        export_cache = output != "load"
    config = project.config
    context = posixpath.normpath(config.context)
    return Plan(
        targets=tuple(
            _target(
                project,
                target,
                branch=branch,
                sha=sha,
                output=output,
                fingerprint=fingerprints.get(target.id + (platform_suffix(platform) if platform else "")),
                export_cache=export_cache,
                cache_dir=cache_dir,
                writes=writes,
                environment=(environments or {}).get(target.id + (platform_suffix(platform) if platform else "")),
                platform=platform,
            )
            for target in targets
            for platform in (list(platforms) if platforms else [None])
        ),
        branch=branch,
        sha=sha,
        output=output,
        context=context,
        dockerfile=posixpath.relpath(posixpath.normpath(config.dockerfile), context),
        inherits_base=project.inherits_base,
        platforms=tuple(config.platforms),
    )
