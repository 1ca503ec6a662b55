"""The developer's side: is my image stale and why, fetch the right one, is my set-up sound."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bake import config, engine, reuse
from bake.errors import BakeError
from bake.fingerprint import Fingerprint
from bake.plan import FINGERPRINT_LABEL, Output, Plan, Target, build_plan, fingerprint_tag, matrix
from bake.redact import redact

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

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["changed"] = list(self.changed)
        return data


def _local_state(
    project: config.Project, target: str, repository: str, fp: Fingerprint
) -> tuple[bool, tuple[str, ...]]:
    """Whether the local engine has an image of ``repository`` for ``fp``, and which inputs
    changed since the local image of ``target``."""
    if repository in engine.local_repositories_with_label(FINGERPRINT_LABEL, fp.value):
        return True, ()
    record = reuse.recorded(project, target)
    if record is None or engine.local_image_id(str(record.get("image"))) != record.get("image_id"):
        return False, ()
    if record.get("fingerprint") == fp.value:
        return True, ()
    parts = record.get("parts")
    return False, tuple(fp.changed_since(parts) if isinstance(parts, dict) else ["inputs"])


def status(
    project: config.Project, targets: Sequence[Target], branch: str, output: Output, fps: reuse.Fingerprints
) -> list[Status]:
    """For each target: its fingerprint, where an image for it exists, and what build would do."""
    plan = build_plan(project, list(targets), branch=branch, sha=None, output="load")
    registry = project.config.registry

    def one(target: Target) -> Status:
        fp = fps.values.get(target.id)
        if fp is None:
            why = fps.missing.get(target.id, "no fingerprint")
            return Status(target.id, None, None, False, "build", f"cannot fingerprint: {why}")
        in_registry: bool | None = None
        if registry:
            ref = f"{registry}/{project.config.image}:{fingerprint_tag(target, fp.value)}"
            try:
                in_registry = reuse.lookup(ref) is not None
            except engine.CommandFailed as exc:
                error = redact(exc.output.strip().splitlines()[-1] if exc.output.strip() else str(exc))
                return Status(target.id, fp.short, False, False, "build", f"registry not reachable: {error}")
        local, changed = _local_state(project, target.id, plan.image_refs[target.id], fp)
        if output == "push" and in_registry:
            return Status(target.id, fp.short, True, local, "reuse", "the registry has an image for these inputs")
        if local:
            return Status(target.id, fp.short, in_registry, True, "none", "the local image matches the inputs")
        if in_registry:
            why = "the registry has an image for these inputs, the local engine does not"
            return Status(target.id, fp.short, True, False, "pull", why)
        if changed:
            why = "changed since the local image: " + ", ".join(changed)
        else:
            why = f"no image for these inputs (no local {plan.definition['target'][target.id]['tags'][0]})"
        return Status(target.id, fp.short, in_registry, False, "build", why, changed)

    return reuse.parallel(one, list(targets))


def status_table(rows: Sequence[Status]) -> str:
    def flag(value: bool | None) -> str:
        return "-" if value is None else ("yes" if value else "no")

    header = ["TARGET", "FINGERPRINT", "REGISTRY", "LOCAL", "ACTION", "WHY"]
    cells = [header] + [
        [r.target, r.fingerprint or "-", flag(r.registry), flag(r.local), r.action, r.why] for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header) - 1)]
    lines = ["  ".join([*(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)), row[-1]]) for row in cells]
    return "\n".join(lines) + "\n"


# -- pull -------------------------------------------------------------------------------------


def pull(project: config.Project, plan: Plan, fps: reuse.Fingerprints) -> list[str]:
    """Fetch each target's image for its current fingerprint; return the targets the registry lacks."""

    def one(target: Target) -> str | None:
        fp = fps.values.get(target.id)
        if fp is None:
            return target.id
        image = plan.image_refs[target.id]
        manifest = reuse.lookup(f"{image}:{fingerprint_tag(target, fp.value)}")
        if manifest is None:
            return target.id
        digest = manifest.digest
        engine.pull(f"{image}@{digest}")
        local_tag = plan.definition["target"][target.id]["tags"][0]
        engine.tag(f"{image}@{digest}", local_tag)
        reuse.record(project, target.id, fp, local_tag, engine.local_image_id(local_tag))
        print(f"{target.id}: pulled {local_tag} ({digest[:19]})")
        return None

    return [m for m in reuse.parallel(one, plan.targets) if m is not None]


# -- doctor -----------------------------------------------------------------------------------


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
    except engine.CommandFailed as exc:
        return Check(name, False, redact(exc.output.strip()[-200:] or str(exc)), fix)


def doctor(config_file: Path | None, environ: Mapping[str, str], builder: str | None) -> list[Check]:
    """Every check, in order; a failed prerequisite ends the list (later ones would only repeat it)."""
    checks = [_check("docker CLI", "install the docker CLI or fix PATH", engine.docker_cli)]
    if not checks[0].ok:
        return checks
    info = engine.engine_info()
    checks.append(
        _check(
            "buildx",
            "install docker-buildx 0.13 or newer",
            lambda: "version " + ".".join(map(str, engine.check_buildx(info))),
        )
    )
    checks.append(
        _check(
            "engine",
            "start dockerd, or point DOCKER_HOST / `docker context use` at a running engine",
            lambda: (
                f"dockerd {engine.check_engine(info, environ)} at "
                + redact(environ.get("DOCKER_HOST", "the default socket"))
            ),
        )
    )
    if not all(c.ok for c in checks):
        return checks

    def builder_detail() -> str:
        name, driver = engine.inspect_builder(builder)
        engine.check_cache_export(info, name, driver)
        return f"{name} ({driver} driver) can export registry cache"

    checks.append(
        _check(
            "builder",
            'turn on the containerd image store ({"features": {"containerd-snapshotter": true}} in '
            "/etc/docker/daemon.json) or `docker buildx create --use --driver docker-container`",
            builder_detail,
        )
    )
    try:
        project = config.load(config_file, environ)
    except BakeError as exc:
        return [*checks, Check("config", False, str(exc), "fix the configuration as the message says")]
    stages = ", ".join(project.stages)
    checks.append(Check("config", True, f"image {project.config.image}, Python {', '.join(project.config.python)}"))
    checks.append(Check("Dockerfile", True, f"{project.config.dockerfile} parses and declares {stages}"))

    registry = project.config.registry
    if registry:

        def registry_detail() -> str:
            reuse.lookup(f"{registry}/{project.config.image}:bake-ci-doctor")  # absent is fine; unreachable raises
            found = engine.registry_credentials(registry.split("/", 1)[0], environ) is not None
            return (
                f"{registry} answers; credentials: {'found' if found else 'none (fine for a registry without login)'}"
            )

        checks.append(_check("registry", f"check that {registry} is up and reachable from here", registry_detail))
    else:
        checks.append(Check("registry", True, "none configured: builds stay local (--load, cache in .bake-ci/cache)"))

    plan = build_plan(project, matrix(project), branch=project.config.default_branch, sha=None, output="load")
    for base in sorted({t["args"]["BASE_IMAGE"] for t in plan.definition["target"].values()}):

        def base_detail(base: str = base) -> str:
            digest = reuse.resolve_base(base)
            if not digest:
                raise engine.CommandFailed(["resolve"], 1, "in neither its registry nor the local engine")
            return digest[:19]

        fix = "push it to its registry, or point base-image / BAKE_CI_BASE_IMAGE at a reachable mirror"
        checks.append(_check(f"base image {base}", fix, base_detail))
    return checks
