"""Multi-platform projects: which platforms a run handles, one at a time, and their fingerprints.

A project with two or more ``platforms`` builds each platform of a target as its own
bake target (``ci-py312__linux-arm64``), pushed by digest under per-platform tags, with
its own cache ref and its own fingerprint (its base images resolved to their child for
that platform). The multi-platform image under the target's usual tags is then an index
of those images, written by :mod:`bake.merge`: at the end of ``build`` when it built
every platform (one runner, emulation), or by ``bake-ci merge`` after one job per
platform (native runners). A project with one platform, or none, is built as before.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

from bake import config, registry
from bake.config import Project
from bake.engine.process import Runner
from bake.errors import UsageError
from bake.fingerprint import TargetFingerprints, of_targets
from bake.plan import Target, build_args
from bake.state import State

#: Commands that work on one platform by default: the engine's own.
LOCAL_COMMANDS = ("status", "pull")

#: ``docker info``'s Architecture (the kernel's name) -> Go's, as platforms name it.
_KERNEL_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm/v7", "armv6l": "arm/v6", "i686": "386"}


def multi(project: Project) -> bool:
    """Whether the project's images are multi-platform indexes (two or more platforms)."""
    return len(project.config.platforms) >= 2


def engine_platform(runner: Runner) -> str | None:
    """The local engine's own platform (``linux/amd64``), or None if it cannot be asked."""
    from bake.engine import checks

    info = checks.engine_info(runner)
    os_name, arch = info.get("OSType"), info.get("Architecture")
    if not isinstance(os_name, str) or not isinstance(arch, str) or not os_name or not arch:
        return None
    return f"{os_name}/{_KERNEL_ARCH.get(arch, arch)}"


def chosen(runner: Runner, project: Project, command: str, platform: str | None, output: str | None) -> tuple[str, ...]:
    """The platforms a run builds or looks at one by one; () for a single-platform project.

    ``build``/``plan``/``warm`` push every configured platform (``--platform`` one of
    them); ``--load`` and ``status``/``pull`` work on one: ``--platform``, else the
    engine's own; ``merge`` needs them all.
    """
    configured = project.config.platforms
    where = f"{project.config_file.name} [{config.TABLE}] platforms"
    if not multi(project):
        if platform is not None and platform not in configured:
            raise UsageError(
                f"--platform {platform}: this project builds "
                f"{'for ' + configured[0] if configured else 'for the engine own platform'} only ({where} = "
                f"{json.dumps(configured)}). List every platform there, e.g. platforms = "
                '["linux/amd64", "linux/arm64"], or drop --platform.'
            )
        return ()
    if platform is not None:
        if platform not in configured:
            raise UsageError(
                f"--platform {platform}: not one of the configured platforms ({where} = "
                f"{json.dumps(configured)}). Use one of them, or add it there."
            )
        if command == "merge":
            raise UsageError("merge assembles every platform's image: it takes no --platform.")
        return (platform,)
    if command in LOCAL_COMMANDS or output == "load":
        own = engine_platform(runner)
        if own is None or own not in configured:
            raise UsageError(
                f"{command} works on one platform of this multi-platform project, and the engine's own "
                f"({own or 'unknown'}) is not one of {where} = {json.dumps(configured)}. "
                "Name one with --platform, e.g. --platform " + configured[0] + "."
            )
        return (own,)
    return tuple(configured)


def fingerprint_targets(
    client: registry.Client,
    runner: Runner,
    project: Project,
    targets: Sequence[Target],
    state: State | None,
    platforms: Sequence[str],
) -> TargetFingerprints:
    """The targets' fingerprints, keyed by plan identifier: per platform
    (``ci-py312__linux-arm64``) when ``platforms`` are given, else as one image."""
    args = {t.id: build_args(project, t) for t in targets}
    return of_targets(project, targets, args, state, platforms=platforms, client=client, runner=runner)


def index_fingerprint(per_platform: Mapping[str, str]) -> str:
    """The fingerprint of a multi-platform image: of its platforms' fingerprints (pure)."""
    text = json.dumps(dict(sorted(per_platform.items())), sort_keys=True)
    return hashlib.sha256(f"bake-ci index\n{text}".encode()).hexdigest()
