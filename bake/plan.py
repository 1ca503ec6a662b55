"""From a validated project to the bake definition: pure data, no I/O.

The same project, selection, branch and commit always give byte-identical JSON, which
is what ``bake-ci plan`` prints and what ``bake-ci build`` hands to ``docker buildx bake``.
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bake.config import Project
from bake.errors import UsageError
from bake.naming import PythonVersion, branch_tag, tag_prefix, target_id

#: push: images and cache to the registry; load: images into the local engine;
#: cache-only: registry cache without any image (pull requests from forks, pre-warming).
Output = Literal["push", "load", "cache-only"]
#: Where local (no registry) cache lives, relative to the project root.
STATE_DIR = ".bake-ci"
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


@dataclass(frozen=True)
class Plan:
    """The bake definition plus what execution and reporting need to know about it."""

    targets: list[Target]
    definition: dict[str, Any]
    image_refs: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.definition, indent=2, sort_keys=True) + "\n"


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


def _cache_opts(project: Project) -> str:
    cache = project.config.cache
    opts = f",mode={cache.mode}"
    if cache.image_manifest:
        opts += ",image-manifest=true,oci-mediatypes=true"
    if cache.ignore_error:
        opts += ",ignore-error=true"
    return opts


FINGERPRINT_LABEL = "dev.bake-ci.fingerprint"


def fingerprint_tag(target: Target, fingerprint: str) -> str:
    """The tag that names an image by its inputs: ``STAGE-pyX.Y-fp-<12 hex>``."""
    return f"{tag_prefix(target.stage, target.python)}-fp-{fingerprint[:12]}"


def _target(
    project: Project,
    target: Target,
    branch: str,
    sha: str | None,
    output: Output,
    fingerprint: str | None,
    export_cache: bool,
) -> tuple[dict[str, Any], str]:
    config = project.config
    python = str(target.python)
    image = f"{config.registry}/{config.image}" if config.registry else config.image
    prefix = tag_prefix(target.stage, target.python)
    tags = [f"{image}:{branch_tag(target.stage, target.python, branch)}"]
    if sha:
        tags.append(f"{image}:{prefix}-{sha[:7]}")
    if branch == config.default_branch:
        tags.append(f"{image}:{prefix}")
    if fingerprint:
        tags.append(f"{image}:{fingerprint_tag(target, fingerprint)}")

    if config.registry:
        cache_repo = f"{config.registry}/{config.image}-cache"
        branches = list(dict.fromkeys([branch, *config.fallback_branches]))
        cache_from = [f"type=registry,ref={cache_repo}:{branch_tag(target.stage, target.python, b)}" for b in branches]
        cache_from.append(f"type=registry,ref={image}:{prefix}")
        cache_to: list[str] = []
        if export_cache:
            ref = f"{cache_repo}:{branch_tag(target.stage, target.python, branch)}"
            cache_to.append(f"type=registry,ref={ref}{_cache_opts(project)}")
        if output == "push" and config.cache.inline:
            cache_to.append("type=inline")
    else:
        directory = posixpath.join(STATE_DIR, "cache", target.id)
        cache_from = [f"type=local,src={directory}"]
        cache_to = [f"type=local,dest={directory},mode={config.cache.mode}"]

    context = posixpath.normpath(config.context)
    dockerfile = posixpath.relpath(posixpath.normpath(config.dockerfile), context)
    args = {
        **config.args,
        "BASE_IMAGE": config.base_image.replace("{python}", python),
        "PYTHON_VERSION": python,
    }
    labels = {**config.labels, "dev.bake-ci.target": target.id}
    if fingerprint:
        labels[FINGERPRINT_LABEL] = fingerprint
    definition: dict[str, Any] = {
        "context": context,
        "dockerfile": dockerfile,
        "target": target.stage,
        "args": args,
        "labels": labels,
        "tags": tags if output != "cache-only" else [],
        "cache-from": cache_from,
        "cache-to": cache_to,
        "output": [{"push": "type=registry", "load": "type=docker", "cache-only": "type=cacheonly"}[output]],
    }
    if project.inherits_base:
        definition["inherits"] = [BASE_TARGET]
    if config.platforms:
        definition["platforms"] = list(config.platforms)
    return definition, image


def build_plan(
    project: Project,
    targets: list[Target],
    *,
    branch: str,
    sha: str | None,
    output: Output,
    fingerprints: Mapping[str, str] | None = None,
    export_cache: bool | None = None,
) -> Plan:
    """The bake definition for ``targets``: one target each, plus groups.

    Groups: ``default`` (everything selected), one per stage (``ci``) and one per
    Python version (``py312``). With ``fingerprints`` (pushing to a registry), each
    image also gets its fingerprint tag and label. Registry cache is exported when
    pushing (or cache-only), and with ``--load`` only if ``export_cache`` asks for it:
    a laptop reads the team's cache but does not write it.
    """
    fingerprints = fingerprints or {}
    if export_cache is None:
        export_cache = output != "load"
    defs: dict[str, Any] = {}
    refs: dict[str, str] = {}
    for target in targets:
        defs[target.id], refs[target.id] = _target(
            project, target, branch, sha, output, fingerprints.get(target.id), export_cache
        )
    groups: dict[str, list[str]] = {"default": [t.id for t in targets]}
    for target in targets:
        groups.setdefault(target.stage, []).append(target.id)
    for target in targets:
        groups.setdefault(target.python.group, []).append(target.id)
    definition = {
        "group": {name: {"targets": ids} for name, ids in groups.items()},
        "target": defs,
    }
    return Plan(targets=list(targets), definition=definition, image_refs=refs)
