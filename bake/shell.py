"""A target's CI environment on the developer's machine: ``bake-ci shell`` and ``bake-ci run``.

Which image (:func:`choose`), in order:

1. ``--commit SHA`` / ``--pr N``: the image CI pushed for that commit or pull request;
2. the image of the current fingerprint: the local engine's, else pulled from the registry;
3. the newest image of the target whose *environment* (everything but the files only the
   target's own stage reads, :attr:`bake.fingerprint.Fingerprint.environment`) is the
   current one, with the checkout mounted over it;
4. else the target is built locally first (``--load``, with the registry cache).

A multi-platform project runs one platform's image (:func:`run_platform`: ``--platform``,
else the engine's own): its fingerprint is that platform's, found in the registry under
the per-platform fingerprint tag a platform's job pushed, else as that platform's child
of the index under the branch tag.

Then ``docker run`` in the foreground (:func:`bake.engine.docker.interactive`): the
checkout mounted at the image's working directory, as the invoking user, a TTY only when
stdin is one, the container removed afterwards.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bake import ci, logs, platforms, registry, reuse
from bake.bases import lookup
from bake.config import Project
from bake.engine import docker, images
from bake.engine.process import CommandFailed, Runner
from bake.errors import NoImage, UsageError
from bake.fingerprint import Fingerprint, local_image_parts, local_image_record, record_local_image
from bake.naming import branch_tag, platform_suffix, tag_prefix
from bake.plan import ENVIRONMENT_LABEL, FINGERPRINT_LABEL, TargetPlan, fingerprint_tag
from bake.pool import background
from bake.redact import redact
from bake.registry import Client as RegistryClient
from bake.state import State

log = logs.get_logger("bake")

#: Where the checkout goes in an image that sets no working directory.
DEFAULT_MOUNT = "/src"
#: HOME inside the container: the invoking user has no home in the image, /tmp is writable by all.
HOME = "/tmp"
#: What ``bake-ci shell`` runs: bash where the image has it.
SHELL = ["sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash; else exec sh; fi"]


@dataclass(frozen=True)
class Choice:
    """The image to run, how it was found, and why."""

    image: str
    how: str  # "local" | "pulled" | "mounted over" | "built" | "CI's image"
    why: str
    #: the checkout must be mounted for this image to be the current one
    needs_mount: bool = False
    #: the local engine's image, when choosing it asked the engine already
    found: images.LocalImage | None = None

    def line(self, target: str) -> str:
        return f"bake-ci: {target}: {self.how} {self.image}: {self.why}"


# -- which image ------------------------------------------------------------------------------


def exact_ref(t: TargetPlan, commit: str | None, pr: int | None) -> tuple[str, str]:
    """The reference CI pushed for ``commit`` or pull request ``pr``, and a phrase for it."""
    prefix = tag_prefix(t.target.stage, t.target.python)
    if commit is not None:
        if not ci.SHA_RE.fullmatch(commit):
            raise UsageError(f"--commit {commit!r}: not a commit. Give 7 to 64 hexadecimal characters, e.g. 1a2b3c4.")
        return f"{t.repository}:{prefix}-{commit[:7].lower()}", f"the image CI pushed for commit {commit[:7].lower()}"
    assert pr is not None
    tag = branch_tag(t.target.stage, t.target.python, f"pr-{pr}")
    return f"{t.repository}:{tag}", f"the image CI pushed for pull request {pr}"


def have(runner: Runner, ref: str, platform: str | None) -> images.LocalImage | None:
    """The local engine's ``ref``, pulled first if it has none; None if the registry has none either."""
    found = images.local_image(runner, ref)
    if found is not None:
        return found
    try:
        images.pull(runner, ref, platform=platform)
    except CommandFailed as exc:
        if docker.is_not_found(exc.output):
            return None
        raise
    return images.local_image(runner, ref)


def _recorded_image(runner: Runner, state: State, target: str) -> tuple[str, dict[str, object]] | None:
    """The image the last local build or pull of ``target`` recorded, if the engine still has it."""
    record = local_image_record(state, target)
    if record is None or not isinstance(record.get("image"), str):
        return None
    image = str(record["image"])
    local = images.local_image(runner, image)
    if local is None or local.id != record.get("image_id"):
        return None
    return image, record


def run_platform(runner: Runner, project: Project, platform: str | None) -> str | None:
    """The platform whose image runs: for a multi-platform project ``--platform`` (one of
    its platforms), else the engine's own; as given for any other project."""
    if not platforms.multi(project):
        return platform
    return platforms.chosen(runner, project, "shell", platform, "load")[0]


def _published(
    client: RegistryClient, runner: Runner, t: TargetPlan, fp: Fingerprint, platform: str | None
) -> tuple[str, str] | None:
    """The registry's image for ``fp`` by digest, and where it was found: under its
    fingerprint tag (a platform's own with ``platform``), else, for a multi-platform
    project, ``platform``'s child of the index under the branch tag when that child
    carries the fingerprint."""
    fp_tag = fingerprint_tag(t.target, fp.value, platform)
    manifest = lookup(client, runner, f"{t.repository}:{fp_tag}")
    if manifest is not None:
        return f"{t.repository}@{manifest.digest}", fp_tag
    if platform is None:
        return None
    index = lookup(client, runner, t.image)
    if index is None or not index.is_index:
        return None
    child, _ = registry.platform_child(index, platform)
    if child is None:
        return None
    try:
        found = lookup(client, runner, f"{t.repository}@{child}")
        if found is None or reuse.fingerprint_labels(client, runner, t.repository, found) != {fp.value}:
            return None
    except (CommandFailed, registry.RegistryError) as exc:  # then it is built, as without an index
        log.debug("cannot read the index's child", image=t.image, platform=platform, error=redact(str(exc))[-200:])
        return None
    return f"{t.repository}@{child}", f"the {platform} image of {t.image}"


def only_mounted_changed(fp: Fingerprint, parts: Mapping[str, str]) -> bool:
    """Whether the inputs recorded as ``parts`` differ from ``fp`` only in files that the
    target's own stage reads and nothing below it does (a mounted checkout has them)."""
    names = set(fp.parts) | set(parts)
    changed = [n for n in names if fp.parts.get(n) != parts.get(n)]
    return all(n.startswith("file:") and n[5:] in fp.own for n in changed)


def choose(
    project: Project,
    t: TargetPlan,
    state: State,
    *,
    mount: bool,
    platform: str | None,
    build: Callable[[], None],
    client: RegistryClient,
    runner: Runner,
) -> Choice:
    """The image for ``t`` (see the module's docstring); ``build`` builds it locally.
    ``platform`` is :func:`run_platform`'s: one platform of a multi-platform project."""
    # the engine is asked for the local image while the inputs are fingerprinted
    asked = background(lambda: images.local_image(runner, t.image), name="local-image")
    own = platform if platforms.multi(project) else None  # fingerprinted as that platform's image
    fps = platforms.fingerprint_targets(client, runner, project, [t.target], state, (own,) if own else ())
    key = t.id + (platform_suffix(own) if own else "")
    fp = fps.values.get(key)
    if fp is None:
        build()
        return Choice(t.image, "built", f"cannot fingerprint its inputs ({fps.missing.get(key, 'unknown')})")
    local = asked.result()
    if local is not None and local.labels.get(FINGERPRINT_LABEL) == fp.value:
        return Choice(t.image, "local", f"it matches the current inputs (fingerprint {fp.short})", found=local)
    recorded = _recorded_image(runner, state, t.id)
    if recorded is not None and recorded[1].get("fingerprint") == fp.value:
        return Choice(recorded[0], "local", f"it matches the current inputs (fingerprint {fp.short})")
    if project.config.registry:
        published = _published(client, runner, t, fp, own)
        if published is not None:
            ref, where = published
            images.pull(runner, ref, platform=platform)
            images.tag(runner, ref, t.image)
            pulled = images.local_image(runner, t.image)
            record_local_image(state, t.id, fp, t.image, pulled.id if pulled is not None else None)
            why = f"the registry has the image for the current inputs ({where})"
            return Choice(t.image, "pulled", why, found=pulled)
    if mount:
        choice = _mounted_over(runner, project, t, state, fp, local, recorded, platform)
        if choice is not None:
            return choice
    build()
    why = "no image has the current inputs"
    if not mount:
        why += " (and --no-mount: sources cannot be mounted over an older one)"
    else:
        why += ", and no image differs only in files the mount covers"
    return Choice(t.image, "built", why)


def _mounted_over(
    runner: Runner,
    project: Project,
    t: TargetPlan,
    state: State,
    fp: Fingerprint,
    local: images.LocalImage | None,
    recorded: tuple[str, dict[str, object]] | None,
    platform: str | None,
) -> Choice | None:
    """The newest image of ``t`` that only lacks the current sources, if there is one."""
    why = "only sources changed since it was built; they are mounted over it"
    if local is not None and local.labels.get(ENVIRONMENT_LABEL) == fp.environment:
        return Choice(t.image, "mounted over", why, needs_mount=True)
    if recorded is not None:
        parts = local_image_parts(state, t.id, recorded[1])
        if parts is not None and only_mounted_changed(fp, parts):
            return Choice(recorded[0], "mounted over", why, needs_mount=True)
    if not project.config.registry:
        return None
    prefix = tag_prefix(t.target.stage, t.target.python)
    for ref in dict.fromkeys([t.image, f"{t.repository}:{prefix}"]):  # this branch's, then the default branch's
        try:
            found = have(runner, ref, platform)
        except CommandFailed as exc:
            log.debug("no image to mount over", image=ref, error=exc.output[-200:])
            continue
        if found is not None and found.labels.get(ENVIRONMENT_LABEL) == fp.environment:
            return Choice(ref, "mounted over", why, needs_mount=True)
    return None


# -- running it -------------------------------------------------------------------------------


def invoker(checkout: Path, environ: Mapping[str, str]) -> tuple[int, int]:
    """Whose files the container's files in the checkout should be: the caller's, or for
    root (``sudo bake-ci ...``) the checkout's owner."""
    uid, gid = os.getuid(), os.getgid()
    if uid != 0:
        return uid, gid
    try:
        owner = checkout.stat()
    except OSError:
        return uid, gid
    return owner.st_uid, owner.st_gid


def environment_options(given: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    """``-e`` options for docker run: ``VAR=VALUE`` as given, ``VAR`` passed through from
    bake-ci's environment (docker reads it from there), HOME unless the user sets it."""
    options: list[str] = []
    for item in given:
        name = item.split("=", 1)[0]
        if not name or not name.replace("_", "a").isalnum() or name[0].isdigit():
            raise UsageError(f"-e {item!r}: not an environment variable. Give -e NAME or -e NAME=VALUE.")
        options += ["-e", item]
    if not any(item.split("=", 1)[0] == "HOME" for item in given):
        options += ["-e", f"HOME={HOME}"]
    return options


def docker_run_args(
    image: str,
    command: Sequence[str],
    *,
    checkout: Path | None,
    working_dir: str,
    user: tuple[int, int],
    env: Sequence[str],
    platform: str | None,
    tty: bool,
) -> list[str]:
    """The arguments of ``docker run`` (pure)."""
    args = ["run", "--rm", "--init", "--interactive", "--pull", "never"]
    if tty:
        args.append("--tty")
    if platform:
        args += ["--platform", platform]
    args += ["--user", f"{user[0]}:{user[1]}", *env]
    if checkout is not None:
        target = working_dir if working_dir not in ("", "/") else DEFAULT_MOUNT
        args += ["--mount", f"type=bind,source={checkout},target={target}", "--workdir", target]
    return [*args, image, *command]


def enter(
    project: Project,
    t: TargetPlan,
    state: State,
    *,
    command: Sequence[str],
    mount: bool,
    env: Sequence[str],
    platform: str | None,
    commit: str | None,
    pr: int | None,
    environ: Mapping[str, str],
    build: Callable[[], None],
    client: RegistryClient,
    runner: Runner,
) -> int:
    """Choose the image, say which and why on one line, run it; the container's exit code."""
    env_options = environment_options(env, environ)  # bad input fails before anything is pulled
    platform = run_platform(runner, project, platform)
    if commit is not None or pr is not None:
        if not project.config.registry:
            option = "--commit" if commit is not None else "--pr"
            raise UsageError(
                f"{option} runs the image CI pushed to the registry, and no registry is configured. "
                "Set registry in [tool.bake-ci] or BAKE_CI_REGISTRY."
            )
        ref, phrase = exact_ref(t, commit, pr)
        if have(runner, ref, platform) is None:
            raise NoImage(
                f"the registry has no {ref} ({phrase}). CI pushes it only from runs that push images: check the "
                f"commit or number, and that CI built {t.id} for it (a fork's pull request pushes none)."
            )
        choice = Choice(ref, "CI's image", phrase)
    else:
        choice = choose(project, t, state, mount=mount, platform=platform, build=build, client=client, runner=runner)
    found = choice.found or images.local_image(runner, choice.image)
    if found is None:
        raise NoImage(f"the local engine has no {choice.image} after choosing it. Run again, or build it with --load.")
    print(choice.line(t.id), file=sys.stderr, flush=True)
    checkout = (project.root / project.config.context).resolve() if mount else None
    args = docker_run_args(
        choice.image,
        list(command) or SHELL,
        checkout=checkout,
        working_dir=found.working_dir,
        user=invoker(checkout or project.root, environ),
        env=env_options,
        platform=platform,
        tty=sys.stdin.isatty(),
    )
    return docker.interactive(runner, *args)


def reproduction(target: str, commit: str | None, command: str | None) -> str:
    """The command that runs a CI job's image on a developer's machine: ``run`` with the
    job's command, else ``shell`` (a placeholder would not run as printed)."""
    line = f"bake-ci {'run' if command else 'shell'} {target}"
    if commit:
        line += f" --commit {commit[:7]}"
    return f"{line} -- {command}" if command else line


def test_command(given: str | None, environ: Mapping[str, str]) -> str | None:
    """The CI job's command: ``--test-command``, else ``BAKE_CI_TEST_COMMAND``."""
    text = given if given is not None else environ.get("BAKE_CI_TEST_COMMAND")
    return text.strip() or None if text is not None else None
