"""``bake-ci plan``: the bake definition JSON, as snapshots and as the rules behind them.

Snapshots live in ``snapshots/NAME.json`` and are compared byte for byte. To rewrite
them after an intended change: ``BAKE_CI_UPDATE_SNAPSHOTS=1 pytest tests/unit``, then
read the diff.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bake import workflow
from bake.cli import _args, _parser
from bake.plan import Plan

SHA = "0123456789abcdef0123456789abcdef01234567"
#: bake-ci's state folder is outside the project, wherever the user's cache is: fixed here
ENV = {"GITHUB_SHA": SHA, "BAKE_CI_STATE_DIR": "/state"}
SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("BAKE_CI_UPDATE_SNAPSHOTS") == "1"
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")

LOCAL = """\
[tool.bake-ci]
image = "acme/app-ci"
python = ["3.11", "3.12"]
stages = ["deps", "ci"]
"""

REGISTRY = """\
[tool.bake-ci]
image = "app-ci"
registry = "ghcr.io/acme"
python = ["3.12", "3.13"]
"""


@dataclass(frozen=True)
class Case:
    toml: str
    args: tuple[str, ...]
    files: dict[str, str] = field(default_factory=dict)


CASES = {
    "local_load": Case(LOCAL, ("--load", "--branch", "main")),
    "registry_push_main": Case(REGISTRY, ("--push", "--no-reuse", "--branch", "main")),
    "registry_push_feature": Case(REGISTRY, ("--push", "--no-reuse", "--branch", "feature/Foo_Bar")),
    "registry_load_feature": Case(REGISTRY, ("--load", "--branch", "feature/Foo_Bar")),
    "bake_file_inherits": Case(
        LOCAL,
        ("--load", "--branch", "main"),
        files={"docker-bake.hcl": 'target "bake-ci" {\n  secret = ["id=pip,env=PIP_TOKEN"]\n}\n'},
    ),
    "cache_options": Case(
        REGISTRY
        + """\
[tool.bake-ci.cache]
mode = "min"
inline = false
image-manifest = true
ignore-error = true
fallback-branches = ["develop", "main"]
""",
        ("--push", "--no-reuse", "--branch", "fix/login"),
    ),
    "platforms": Case(
        REGISTRY + 'platforms = ["linux/amd64", "linux/arm64"]\n',
        ("--push", "--no-reuse", "--branch", "main"),
    ),
    "args_labels": Case(
        LOCAL
        + """\
base-image = "registry.acme.dev/python:{python}-bookworm"
[tool.bake-ci.args]
PIP_INDEX_URL = "https://pypi.acme.dev/simple"
UV_VERSION = "0.5.0"
[tool.bake-ci.labels]
"org.opencontainers.image.source" = "https://github.com/acme/app"
""",
        ("--load", "--branch", "main"),
    ),
}


def _plan(project, cli, case: Case, env: dict[str, str] | None = None) -> str:
    project(case.toml, files=case.files)
    run = cli("plan", *case.args, env=ENV if env is None else env)
    assert run.rc == 0, run.err
    return run.out


@pytest.mark.parametrize("name", CASES)
def test_plan_snapshot(project, cli, name: str) -> None:
    text = _plan(project, cli, CASES[name])
    path = SNAPSHOTS / f"{name}.json"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
    assert path.is_file(), f"no snapshot {path}; run with BAKE_CI_UPDATE_SNAPSHOTS=1 to write it"
    # byte for byte (decoding UTF-8 is one-to-one), shown as a readable diff on failure
    assert text == path.read_bytes().decode("utf-8")


def _targets(project, cli, name: str) -> dict[str, dict[str, object]]:
    definition = json.loads(_plan(project, cli, CASES[name]))
    return definition["target"]


def _typed(project, name: str, env: dict[str, str] | None = None) -> Plan:
    """The typed plan that ``bake-ci plan ARGS`` prints, through the same steps."""
    case = CASES[name]
    project(case.toml, files=case.files)
    ns = _parser().parse_args(["plan", *case.args])
    run = workflow.Run.start(_args(ns, "console"), ENV if env is None else env)
    workflow.execute(workflow.COMMANDS["plan"][:-1], run)
    return run.plan


# -- the rules the snapshots encode ----------------------------------------------------------


def test_tags_on_the_default_branch(project) -> None:
    target = _typed(project, "registry_push_main")["ci-py312"]
    assert target.tags == (
        "ghcr.io/acme/app-ci:ci-py3.12-main",
        "ghcr.io/acme/app-ci:ci-py3.12-0123456",
        "ghcr.io/acme/app-ci:ci-py3.12",
    )
    assert target.output == "push"


def test_buildx_pushes_the_branch_tag_and_the_rest_are_added_after(project, cli) -> None:
    target = _typed(project, "registry_push_main")["ci-py312"]
    assert target.bake_tags == ("ghcr.io/acme/app-ci:ci-py3.12-main",)
    assert target.later_tags == ("ghcr.io/acme/app-ci:ci-py3.12-0123456", "ghcr.io/acme/app-ci:ci-py3.12")
    printed = _targets(project, cli, "registry_push_main")["ci-py312"]
    assert printed["tags"] == ["ghcr.io/acme/app-ci:ci-py3.12-main"]
    assert printed["output"] == ["type=registry"]


def test_loaded_images_get_every_tag_from_buildx(project) -> None:
    target = _typed(project, "local_load")["deps-py311"]
    assert target.bake_tags == target.tags
    assert target.later_tags == ()


def test_tags_on_a_feature_branch_have_no_bare_tag(project) -> None:
    target = _typed(project, "registry_push_feature")["ci-py313"]
    assert target.tags == (
        "ghcr.io/acme/app-ci:ci-py3.13-feature-foo_bar",
        "ghcr.io/acme/app-ci:ci-py3.13-0123456",
    )


def test_registry_cache_on_a_feature_branch(project, cli) -> None:
    target = _targets(project, cli, "registry_push_feature")["ci-py312"]
    assert target["cache-from"] == [
        "type=registry,ref=ghcr.io/acme/app-ci-cache:ci-py3.12-feature-foo_bar",
        "type=registry,ref=ghcr.io/acme/app-ci-cache:ci-py3.12-main",
        "type=registry,ref=ghcr.io/acme/app-ci:ci-py3.12",
    ]
    assert target["cache-to"] == [
        "type=registry,ref=ghcr.io/acme/app-ci-cache:ci-py3.12-feature-foo_bar,mode=max,ignore-error=true",
        "type=inline",
    ]


def test_registry_cache_on_the_default_branch_lists_it_once(project, cli) -> None:
    target = _targets(project, cli, "registry_push_main")["ci-py312"]
    assert target["cache-from"] == [
        "type=registry,ref=ghcr.io/acme/app-ci-cache:ci-py3.12-main",
        "type=registry,ref=ghcr.io/acme/app-ci:ci-py3.12",
    ]


def test_loading_with_a_registry_reads_but_does_not_write_cache(project, cli) -> None:
    target = _targets(project, cli, "registry_load_feature")["ci-py312"]
    assert target["cache-to"] == []
    assert len(target["cache-from"]) == 3
    assert target["output"] == ["type=docker"]


def test_cache_options(project, cli) -> None:
    target = _targets(project, cli, "cache_options")["ci-py312"]
    assert target["cache-from"] == [
        "type=registry,ref=ghcr.io/acme/app-ci-cache:ci-py3.12-fix-login",
        "type=registry,ref=ghcr.io/acme/app-ci-cache:ci-py3.12-develop",
        "type=registry,ref=ghcr.io/acme/app-ci-cache:ci-py3.12-main",
        "type=registry,ref=ghcr.io/acme/app-ci:ci-py3.12",
    ]
    assert target["cache-to"] == [
        "type=registry,ref=ghcr.io/acme/app-ci-cache:ci-py3.12-fix-login,"
        "mode=min,image-manifest=true,oci-mediatypes=true,ignore-error=true"
    ]


def test_local_cache_without_registry(project, cli) -> None:
    targets = _targets(project, cli, "local_load")
    assert list(targets) == ["ci-py311", "ci-py312", "deps-py311", "deps-py312"]
    deps = targets["deps-py311"]
    assert deps["target"] == "deps"
    assert deps["tags"] == [
        "acme/app-ci:deps-py3.11-main",
        "acme/app-ci:deps-py3.11-0123456",
        "acme/app-ci:deps-py3.11",
    ]
    assert deps["cache-from"] == ["type=local,src=/state/cache/deps-py311"]
    assert deps["cache-to"] == ["type=local,dest=/state/cache/deps-py311,mode=max"]
    assert deps["args"] == {"BASE_IMAGE": "python:3.11-slim", "PYTHON_VERSION": "3.11"}
    assert deps["labels"] == {"dev.bake-ci.target": "deps-py311"}
    assert "inherits" not in deps


def test_groups(project, cli) -> None:
    definition = json.loads(_plan(project, cli, CASES["local_load"]))
    assert definition["group"] == {
        "default": {"targets": ["deps-py311", "deps-py312", "ci-py311", "ci-py312"]},
        "deps": {"targets": ["deps-py311", "deps-py312"]},
        "ci": {"targets": ["ci-py311", "ci-py312"]},
        "py311": {"targets": ["deps-py311", "ci-py311"]},
        "py312": {"targets": ["deps-py312", "ci-py312"]},
    }


def test_targets_inherit_the_bake_file_base_target(project, cli) -> None:
    for target in _targets(project, cli, "bake_file_inherits").values():
        assert target["inherits"] == ["bake-ci"]


def test_platforms_args_and_labels(project, cli) -> None:
    per_platform = _targets(project, cli, "platforms")
    assert sorted(per_platform) == [f"ci-py31{v}__linux-{a}" for v in (2, 3) for a in ("amd64", "arm64")]
    arm = per_platform["ci-py313__linux-arm64"]
    assert arm["platforms"] == ["linux/arm64"]
    assert arm["tags"] == ["ghcr.io/acme/app-ci:ci-py3.13-main__linux-arm64"]  # the others through the registry API
    assert arm["output"] == ["type=registry"]
    assert arm["cache-to"][0].startswith("type=registry,ref=ghcr.io/acme/app-ci-cache:ci-py3.13-main__linux-arm64,")
    target = _targets(project, cli, "args_labels")["ci-py312"]
    assert target["args"] == {
        "BASE_IMAGE": "registry.acme.dev/python:3.12-bookworm",
        "PIP_INDEX_URL": "https://pypi.acme.dev/simple",
        "PYTHON_VERSION": "3.12",
        "UV_VERSION": "0.5.0",
    }
    assert target["labels"] == {
        "dev.bake-ci.target": "ci-py312",
        "org.opencontainers.image.source": "https://github.com/acme/app",
    }


def test_dockerfile_is_relative_to_the_context(project, cli) -> None:
    case = Case(
        LOCAL + 'context = "app"\ndockerfile = "docker/ci.Dockerfile"\n',
        ("--load", "--branch", "main"),
        files={
            "app/main.py": "",
            "docker/ci.Dockerfile": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE} AS deps\nFROM deps AS ci\n",
        },
    )
    target = json.loads(_plan(project, cli, case))["target"]["ci-py312"]
    assert (target["context"], target["dockerfile"]) == ("app", "../docker/ci.Dockerfile")


def test_every_tag_is_valid_for_long_branch_names(project, cli) -> None:
    project(REGISTRY)
    run = cli("plan", "--push", "--no-reuse", "--branch", "feature/" + "x" * 300, env=ENV)
    assert run.rc == 0
    for target in json.loads(run.out)["target"].values():
        for ref in target["tags"]:
            assert TAG_RE.match(ref.rpartition(":")[2]), ref


@pytest.mark.parametrize("length", [60, 116, 125])
def test_long_stage_names_give_valid_tags_or_a_config_error(project, cli, length: int) -> None:
    stage = "s" * length
    project(REGISTRY + f'stages = ["{stage}"]\n', dockerfile=f"ARG BASE_IMAGE\nFROM ${{BASE_IMAGE}} AS {stage}\n")
    run = cli("plan", "--push", "--no-reuse", "--branch", "main", env=ENV)  # must not raise
    if run.rc == 2:
        assert "tool.bake-ci.stages" in run.err
        return
    assert run.rc == 0
    for target in json.loads(run.out)["target"].values():
        for ref in target["tags"]:
            assert TAG_RE.match(ref.rpartition(":")[2]), ref


def test_plan_is_the_same_in_other_processes_and_folders(project, tmp_path: Path) -> None:
    """Two processes with different hash seeds, in two copies of the project: the same bytes."""
    case = CASES["cache_options"]
    first = project(case.toml, files=case.files)
    second = tmp_path.parent / (tmp_path.name + "-copy")
    shutil.copytree(first, second)
    outputs = []
    for seed, where in (("1", first), ("2", second)):
        env = {**ENV, "PYTHONHASHSEED": seed, "PATH": os.environ.get("PATH", "")}
        proc = subprocess.run(
            [sys.executable, "-m", "bake", "plan", *case.args],
            cwd=where, env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        outputs.append(proc.stdout)
    assert outputs[0] == outputs[1]
    assert outputs[0] == (SNAPSHOTS / "cache_options.json").read_text(encoding="utf-8")


def test_plan_does_not_depend_on_key_order(project, cli) -> None:
    one = """\
[tool.bake-ci]
image = "app-ci"
registry = "ghcr.io/acme"
python = ["3.12", "3.13"]
stages = ["deps", "ci"]
platforms = ["linux/amd64"]
args = { A = "1", B = "2" }
labels = { "x.y" = "1", "a.b" = "2" }

[tool.bake-ci.cache]
mode = "min"
inline = false
"""
    two = """\
[tool.bake-ci.cache]
inline = false
mode = "min"

[tool.bake-ci]
labels = { "a.b" = "2", "x.y" = "1" }
stages = ["deps", "ci"]
args = { B = "2", A = "1" }
python = ["3.12", "3.13"]
platforms = ["linux/amd64"]
registry = "ghcr.io/acme"
image = "app-ci"
"""
    args = ("--push", "--no-reuse", "--branch", "topic")
    assert _plan(project, cli, Case(one, args)) == _plan(project, cli, Case(two, args))


def test_branch_and_sha_come_from_ci_variables(project, cli) -> None:
    project(REGISTRY)
    ns = _parser().parse_args(["plan", "--push", "--no-reuse"])
    run = workflow.Run.start(_args(ns, "console"), {"GITHUB_REF_NAME": "release/2.0", "GITHUB_SHA": "fedcba9876543210"})
    workflow.execute(workflow.COMMANDS["plan"][:-1], run)
    assert run.plan["ci-py312"].tags == (
        "ghcr.io/acme/app-ci:ci-py3.12-release-2.0",
        "ghcr.io/acme/app-ci:ci-py3.12-fedcba9",
    )


def test_state_folder_is_outside_the_project_and_keyed_by_its_path(tmp_path: Path) -> None:
    from bake.state import State

    env = {"HOME": str(tmp_path / "home")}
    one = State.locate(tmp_path / "a" / "app", env)
    two = State.locate(tmp_path / "b" / "app", env)
    assert one.root.parent == tmp_path / "home" / ".cache" / "bake-ci" / "projects"
    assert one.root != two.root
    assert one.root.name.startswith("app-")
    assert not one.inside(tmp_path / "a" / "app")
    assert State.locate(tmp_path / "a", {**env, "XDG_CACHE_HOME": str(tmp_path / "xdg")}).root.is_relative_to(
        tmp_path / "xdg"
    )
    assert State.locate(tmp_path, {**env, "BAKE_CI_STATE_DIR": str(tmp_path / "s")}).root == tmp_path / "s"
    assert State.locate(tmp_path, env, tmp_path / "opt").origin == "--state-dir"
    assert State(tmp_path / "app" / ".state").inside(tmp_path / "app")


def test_each_run_has_a_folder_of_its_own(tmp_path: Path) -> None:
    from bake.state import KEEP_RUNS, State

    state = State(tmp_path)
    runs = [state.new_run_folder() for _ in range(KEEP_RUNS + 3)]
    assert len({r.root for r in runs}) == len(runs)
    assert len(list((tmp_path / "runs").iterdir())) == KEEP_RUNS
    assert runs[-1].root.is_dir()
