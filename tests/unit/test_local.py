"""``status``'s verdicts from what the registry and the local engine hold (both faked here:
their real answers are covered by the engine tests), and its table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bake import bases, config_load, local, registry, reuse
from bake.engine import images, process
from bake.engine.process import CommandFailed
from bake.fingerprint import Fingerprint, TargetFingerprints, record_local_image
from bake.plan import FINGERPRINT_LABEL, Plan, build_plan, matrix
from bake.state import State

from .conftest import MakeProject

TOML = """\
[tool.bake-ci]
image = "acme/app-ci"
registry = "registry.example/acme"
python = ["3.12"]
stages = ["ci"]
"""
OLD = Fingerprint("a" * 64, {"file:requirements.txt": "1", "file:app.py": "1", "base": "x"})
NEW = Fingerprint("b" * 64, {"file:requirements.txt": "2", "file:app.py": "1", "base": "x"})
MANIFEST = registry.Manifest("application/vnd.oci.image.index.v1+json", "sha256:" + "c" * 64, b"{}")


class World:
    """What the fakes answer: fingerprint tags in the registry, local images by reference."""

    def __init__(self) -> None:
        self.registry: set[str] = set()
        #: the fingerprint label of the image under a tag, where it is not that tag's fingerprint
        self.labels: dict[str, str | None] = {}
        self.local: dict[str, images.LocalImage] = {}
        self.unreachable = False


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    w = World()

    def lookup(client: object, runner: object, ref: str) -> registry.Manifest | None:
        if w.unreachable:
            raise CommandFailed(["imagetools"], 1, "dial tcp: connect: connection refused")
        tag = ref.rsplit(":", 1)[-1]
        return registry.Manifest(tag, MANIFEST.digest, MANIFEST.body) if tag in w.registry else None

    def labels(client: object, runner: object, repository: str, manifest: registry.Manifest) -> set[str | None]:
        tag = manifest.media_type  # the fake manifest names its tag there
        own = next(fp.value for fp in (OLD, NEW) if tag.endswith(fp.short))
        return {w.labels.get(tag, own)}

    monkeypatch.setattr(bases, "lookup", lookup)
    monkeypatch.setattr(reuse, "fingerprint_labels", labels)
    monkeypatch.setattr(images, "local_image", lambda runner, ref: w.local.get(ref))
    return w


@pytest.fixture
def setup(project: MakeProject, tmp_path: Path) -> tuple[Plan, State]:
    root = project(TOML, dockerfile="FROM python:3.12-slim AS ci\nCOPY . .\n")
    proj = config_load.load(root / "pyproject.toml", {})
    plan = build_plan(proj, matrix(proj), branch="main", sha=None, output="load")
    return plan, State(tmp_path / "state")


def verdict(setup: tuple[Plan, State], fp: Fingerprint | None, output: str = "push") -> local.Status:
    plan, state = setup
    fps = TargetFingerprints({"ci-py312": fp} if fp else {}, {} if fp else {"ci-py312": "base image x is nowhere"})
    runner = process.Runner({})
    [row] = local.status(reuse.client(runner), runner, plan, state, output, fps, "registry.example/acme")  # type: ignore[arg-type]
    return row


def test_no_fingerprint_means_build_and_says_why(world: World, setup: tuple[Plan, State]) -> None:
    row = verdict(setup, None)
    assert (row.action, row.why) == ("build", "cannot fingerprint: base image x is nowhere")


def test_the_registry_has_it_so_build_would_reuse(world: World, setup: tuple[Plan, State]) -> None:
    world.registry.add(f"ci-py3.12-fp-{NEW.short}")
    assert verdict(setup, NEW).action == "reuse"
    assert verdict(setup, NEW, output="load").action == "pull"


def test_an_image_labelled_with_another_fingerprint_is_not_reused(world: World, setup: tuple[Plan, State]) -> None:
    """A fingerprint tag that something else than the build of these inputs wrote."""
    tag = f"ci-py3.12-fp-{NEW.short}"
    world.registry.add(tag)
    for label in (OLD.value, None, NEW.value[:12] + "0" * 52):
        world.labels[tag] = label
        assert verdict(setup, NEW).action == "build"
        assert verdict(setup, NEW, output="load").action == "build"


def test_a_local_image_with_the_fingerprint_label_is_current(world: World, setup: tuple[Plan, State]) -> None:
    plan, _ = setup
    world.local[plan["ci-py312"].image] = images.LocalImage("sha256:x", {FINGERPRINT_LABEL: NEW.value})
    row = verdict(setup, NEW, output="load")
    assert (row.action, row.local) == ("none", True)


def test_changed_inputs_since_the_local_image_are_named(world: World, setup: tuple[Plan, State]) -> None:
    plan, state = setup
    image = plan["ci-py312"].image
    world.local[image] = images.LocalImage("sha256:local", {FINGERPRINT_LABEL: OLD.value})
    record_local_image(state, "ci-py312", OLD, image, "sha256:local")
    row = verdict(setup, NEW, output="load")
    assert row.action == "build"
    assert row.changed == ("requirements.txt",)
    assert "requirements.txt" in row.why


def test_many_changed_inputs_are_cut_short_in_the_table(world: World, setup: tuple[Plan, State]) -> None:
    plan, state = setup
    image = plan["ci-py312"].image
    world.local[image] = images.LocalImage("sha256:local", {FINGERPRINT_LABEL: OLD.value})
    many = {f"file:src/m{i:02d}.py": str(i) for i in range(12)}
    record_local_image(state, "ci-py312", OLD._replace(parts={**OLD.parts, **many}), image, "sha256:local")
    row = verdict(setup, NEW, output="load")
    assert len(row.changed) == 13  # requirements.txt and the twelve that are gone, all in --json
    assert row.why.endswith(" and 8 more (--json lists all)")
    assert row.why.count(", ") == local.SHOWN_CHANGES - 1


def test_without_the_recorded_parts_the_inputs_changed(world: World, setup: tuple[Plan, State]) -> None:
    plan, state = setup
    image = plan["ci-py312"].image
    world.local[image] = images.LocalImage("sha256:local", {FINGERPRINT_LABEL: OLD.value})
    record_local_image(state, "ci-py312", OLD, image, "sha256:local")
    parts = state.fingerprint_parts("ci-py312")
    parts.write_text(json.dumps({"fingerprint": "another", "parts": OLD.parts}))  # another build's
    assert verdict(setup, NEW, output="load").changed == ("inputs",)
    parts.unlink()
    assert verdict(setup, NEW, output="load").changed == ("inputs",)


def test_a_record_of_an_earlier_version_still_names_what_changed(world: World, setup: tuple[Plan, State]) -> None:
    plan, state = setup
    image = plan["ci-py312"].image
    world.local[image] = images.LocalImage("sha256:local", {FINGERPRINT_LABEL: OLD.value})
    record = {"fingerprint": OLD.value, "parts": OLD.parts, "image": image, "image_id": "sha256:local"}
    state.fingerprint_record("ci-py312").parent.mkdir(parents=True, exist_ok=True)
    state.fingerprint_record("ci-py312").write_text(json.dumps(record))  # its parts inline, no parts file
    assert verdict(setup, NEW, output="load").changed == ("requirements.txt",)


def test_a_record_of_a_replaced_local_image_says_nothing(world: World, setup: tuple[Plan, State]) -> None:
    plan, state = setup
    image = plan["ci-py312"].image
    record_local_image(state, "ci-py312", OLD, image, "sha256:old")
    world.local[image] = images.LocalImage("sha256:someone-else", {})
    row = verdict(setup, NEW, output="load")
    assert (row.action, row.changed) == ("build", ())


def test_an_unreachable_registry_is_a_reason_not_a_crash(world: World, setup: tuple[Plan, State]) -> None:
    world.unreachable = True
    row = verdict(setup, NEW)
    assert row.action == "build"
    assert row.why.startswith("registry not reachable: dial tcp")


def test_status_table_keeps_the_reason_whole() -> None:
    rows = [
        local.Status("ci-py312", "abc", True, False, "reuse", "the registry has an image for these inputs"),
        local.Status("deps-py312", None, None, False, "build", "cannot fingerprint: " + "x" * 150),
    ]
    lines = local.status_table(rows).splitlines()
    assert lines[0].split() == ["TARGET", "FINGERPRINT", "REGISTRY", "LOCAL", "ACTION", "WHY"]
    assert lines[2].endswith("x" * 150)
    assert lines[1].index("reuse") == lines[2].index("build") == lines[0].index("ACTION")


def test_with_a_registry_status_tells_what_a_push_would_do_and_names_the_image(
    world: World, setup: tuple[Plan, State]
) -> None:
    plan, _ = setup
    image = plan["ci-py312"].image
    world.local[image] = images.LocalImage("sha256:x", {FINGERPRINT_LABEL: NEW.value})
    row = verdict(setup, NEW, output="load")
    assert (row.action, row.registry, row.on_push, row.image) == ("none", False, "build", image)
    assert "build --push would build" in row.why
    assert "ON PUSH" in local.status_table([row])
    assert row.to_dict()["image"] == image
    world.registry.add(f"ci-py3.12-fp-{NEW.short}")
    assert verdict(setup, NEW, output="load").on_push == "reuse"
