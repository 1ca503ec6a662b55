"""The developer's side: is my image stale and why, fetch the right one, is my set-up sound."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bake import auth, config_load, reuse
from bake.args import Output
from bake.bases import lookup, resolve_base
from bake.engine import buildx, checks, images
from bake.engine.docker import docker_cli
from bake.engine.process import CommandFailed, Runner
from bake.errors import BakeError
from bake.fingerprint import Fingerprint, TargetFingerprints, local_image_parts, local_image_record, record_local_image
from bake.plan import FINGERPRINT_LABEL, Plan, TargetPlan, build_args, matrix
from bake.pool import background, parallel
from bake.redact import redact
from bake.registry import Client as RegistryClient
from bake.registry import RegistryError
from bake.report import align
from bake.state import ENV as STATE_ENV
from bake.state import State

# -- status ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Status:
    target: str
    fingerprint: str | None
    registry: bool | None  # None: no registry configured
    local: bool
    action: str  # reuse | pull | build | none
    why: str
    changed: tuple[str, ...] = ()
    #: the target's image (its branch tag), what shell and run start
    image: str = ""
    #: what ``build --push`` would do (reuse | build); None without a registry
    on_push: str | None = None

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["changed"] = list(self.changed)
        return data


#: Changed inputs named in status's table (its JSON lists them all).
SHOWN_CHANGES = 5

LocalImages = Callable[[str], "images.LocalImage | None"]


def ask_local_images(runner: Runner, plan: Plan, state: State) -> LocalImages:
    """Ask the local engine now, each in a thread of its own, for the images that
    :func:`status` looks at (each target's image, and the one its last local build
    recorded); the answers are waited for when they are looked up."""
    refs = {t.image for t in plan.targets}
    for t in plan.targets:
        record = local_image_record(state, t.id)
        if record is not None and isinstance(record.get("image"), str):
            refs.add(str(record["image"]))
    answers = {ref: background(functools.partial(images.local_image, runner, ref), name="local-image") for ref in refs}

    def lookup(ref: str) -> images.LocalImage | None:
        answer = answers.get(ref)
        return answer.result() if answer is not None else images.local_image(runner, ref)

    return lookup


def _local_state(
    state: State, target: str, image: str, fp: Fingerprint, local_image: LocalImages
) -> tuple[bool, tuple[str, ...]]:
    """Whether the local image of ``target`` (``image``, its branch tag) was made from
    ``fp``; if not, which inputs changed since the last local build of ``target``."""
    local = local_image(image)
    if local is not None and local.labels.get(FINGERPRINT_LABEL) == fp.value:
        return True, ()
    record = local_image_record(state, target)
    if record is None:
        return False, ()
    built = local if record.get("image") == image else local_image(str(record.get("image")))
    if built is None or built.id != record.get("image_id"):
        return False, ()  # that image has been replaced or removed since: nothing to compare with
    if record.get("fingerprint") == fp.value:
        return True, ()
    parts = local_image_parts(state, target, record)
    return False, tuple(fp.changed_since(parts) if parts is not None else ["inputs"])


def status(
    client: RegistryClient,
    runner: Runner,
    plan: Plan,
    state: State,
    output: Output,
    fps: TargetFingerprints,
    registry: str | None,
    local_image: LocalImages | None = None,
) -> list[Status]:
    """For each target of a ``--load`` plan: its fingerprint, where an image for it exists,
    and what build with ``output`` would do (``local_image``: the local engine's image of
    a reference, as :func:`ask_local_images` gives it)."""

    lookup = local_image or functools.partial(images.local_image, runner)

    def one(t: TargetPlan) -> Status:
        found = _one(t)
        on_push = None
        if registry:
            on_push = "reuse" if found.registry else "build"
        return dataclasses.replace(found, image=t.image, on_push=on_push)

    def _one(t: TargetPlan) -> Status:
        fp = fps.values.get(t.id)
        if fp is None:
            why = fps.missing.get(t.id, "no fingerprint")
            return Status(t.id, None, None, False, "build", f"cannot fingerprint: {why}")
        in_registry: bool | None = None
        if registry:
            try:
                in_registry = reuse.find(client, runner, t, fp) is not None
            except (CommandFailed, RegistryError) as exc:
                said = exc.output if isinstance(exc, CommandFailed) else str(exc)
                error = redact(said.strip().splitlines()[-1] if said.strip() else str(exc))
                return Status(t.id, fp.short, False, False, "build", f"registry not reachable: {error}")
        local, changed = _local_state(state, t.id, t.image, fp, lookup)
        if output == "push" and in_registry:
            return Status(t.id, fp.short, True, local, "reuse", "the registry has an image for these inputs")
        if local:
            why = "the local image matches the inputs"
            if in_registry is False:
                why += "; the registry has none, so build --push would build"
            return Status(t.id, fp.short, in_registry, True, "none", why)
        if in_registry:
            why = "the registry has an image for these inputs, the local engine does not"
            return Status(t.id, fp.short, True, False, "pull", why)
        if changed:
            shown = ", ".join(changed[:SHOWN_CHANGES])
            more = len(changed) - SHOWN_CHANGES
            why = f"changed since the local image: {shown}" + (
                f" and {more} more (--json lists all)" if more > 0 else ""
            )
        else:
            why = f"no image for these inputs (no local {t.image})"
        return Status(t.id, fp.short, in_registry, False, "build", why, changed)

    return parallel(one, list(plan.targets))


def status_table(rows: Sequence[Status]) -> str:
    def flag(value: bool | None) -> str:
        return "-" if value is None else ("yes" if value else "no")

    pushes = any(r.on_push is not None for r in rows)
    header = ["TARGET", "FINGERPRINT", "REGISTRY", "LOCAL", "ACTION", *(["ON PUSH"] if pushes else []), "WHY"]
    cells = [header]
    for r in rows:
        push = [r.on_push or "-"] if pushes else []
        cells.append([r.target, r.fingerprint or "-", flag(r.registry), flag(r.local), r.action, *push, r.why])
    return align(cells, last_free=True)


# -- pull -------------------------------------------------------------------------------------


def pull(client: RegistryClient, runner: Runner, plan: Plan, state: State, fps: TargetFingerprints) -> list[str]:
    """Fetch each target's image for its current fingerprint; return the targets the registry lacks."""

    def one(t: TargetPlan) -> str | None:
        fp = fps.values.get(t.id)
        if fp is None:
            return t.id
        manifest = reuse.find(client, runner, t, fp)
        if manifest is None:
            return t.id
        digest = manifest.digest
        images.pull(runner, f"{t.repository}@{digest}", platform=t.platform)
        images.tag(runner, f"{t.repository}@{digest}", t.image)
        record_local_image(state, t.id, fp, t.image, images.local_image_id(runner, t.image))
        print(f"{t.id}: pulled {t.image} ({digest[:19]})")
        return None

    return [m for m in parallel(one, list(plan.targets)) if m is not None]


# -- doctor -----------------------------------------------------------------------------------

#: doctor fails a state folder with less room than this (a run's logs and records need some)
MIN_FREE = 1024 * 1024


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _check(name: str, fix: str, fn: Callable[[], str]) -> Check:
    """Run one check: its detail on success, the error and the fix on failure."""
    try:
        return Check(name, True, fn())
    except BakeError as exc:
        return Check(name, False, str(exc).split(". ")[0], fix)
    except CommandFailed as exc:
        return Check(name, False, redact(exc.output.strip()[-200:] or str(exc)), fix)
    except RegistryError as exc:
        return Check(name, False, redact(str(exc)[-200:]), fix)


def doctor(
    client: RegistryClient,
    runner: Runner,
    config_file: Path | None,
    builder: str | None,
    state_dir: Path | None = None,
) -> list[Check]:
    """Every check, in order; a failed prerequisite ends the list (later ones would only repeat it).
    The environment checked is the runner's."""
    environ = runner.environ
    found = [_check("docker CLI", "install the docker CLI or fix PATH", lambda: docker_cli(runner))]
    if not found[0].ok:
        return found
    info = checks.engine_info(runner)
    found.append(
        _check(
            "buildx",
            "install docker-buildx 0.13 or newer",
            lambda: "version " + ".".join(map(str, checks.check_buildx(info))),
        )
    )
    found.append(
        _check(
            "engine",
            "start dockerd, or point DOCKER_HOST / `docker context use` at a running engine",
            lambda: (
                f"dockerd {checks.check_engine(runner, info)} at "
                + redact(environ.get("DOCKER_HOST", "the default socket"))
            ),
        )
    )
    if not all(c.ok for c in found):
        return found

    def builder_detail() -> str:
        b = buildx.inspect_builder(runner, builder)
        checks.check_cache_export(info, b)
        return f"{b.name} ({b.driver} driver) can export registry cache"

    found.append(
        _check(
            "builder",
            'turn on the containerd image store ({"features": {"containerd-snapshotter": true}} in '
            "/etc/docker/daemon.json) or `docker buildx create --use --driver docker-container`",
            builder_detail,
        )
    )
    try:
        project = config_load.load(config_file, environ)
    except BakeError as exc:
        return [*found, Check("config", False, str(exc), "fix the configuration as the message says")]
    stages = ", ".join(project.stages)
    found.append(Check("config", True, f"image {project.config.image}, Python {', '.join(project.config.python)}"))
    found.append(Check("Dockerfile", True, f"{project.config.dockerfile} parses and declares {stages}"))

    state = State.locate(project.root, environ, state_dir)

    def state_detail() -> str:
        state.check_writable()
        if state.inside(project.root / project.config.context):
            raise BakeError(f"{state.root} is inside the build context: every build would see it change")
        free = state.free_bytes()
        if free is not None and free < MIN_FREE:
            raise BakeError(f"{state.root} has only {free // 1024} KiB free: logs and records would not fit")
        return str(state.root) + (f" ({free / 2**30:.1f} GiB free)" if free is not None else "")

    found.append(
        _check(
            "state folder",
            f"point {STATE_ENV} or --state-dir at a folder you can write, with room, outside the build context",
            state_detail,
        )
    )

    registry = project.config.registry
    if registry:

        def registry_detail() -> str:
            lookup(
                client, runner, f"{registry}/{project.config.image}:bake-ci-doctor"
            )  # absent is fine; unreachable raises
            login = auth.credentials(runner, registry.split("/", 1)[0]) is not None
            return (
                f"{registry} answers; credentials: {'found' if login else 'none (fine for a registry without login)'}"
            )

        found.append(_check("registry", f"check that {registry} is up and reachable from here", registry_detail))
    else:
        found.append(Check("registry", True, "none configured: builds stay local (--load, cache in the state folder)"))

    bases = sorted({build_args(project, t)["BASE_IMAGE"] for t in matrix(project)})
    for resolution in parallel(functools.partial(resolve_base, client, runner), bases):
        name = f"base image {resolution.ref}"
        if resolution.digest:
            found.append(Check(name, True, resolution.digest[:19]))
        else:
            fix = "push it to its registry or the engine's mirror, or point base-image / BAKE_CI_BASE_IMAGE at one"
            found.append(Check(name, False, resolution.reason(), fix))
    return found
