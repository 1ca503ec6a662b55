"""Choosing targets: identifiers, patterns, group names, --stage and --python."""

from __future__ import annotations

import json

import pytest

from bake.errors import UsageError
from bake.naming import PythonVersion
from bake.plan import Selection, Target, select

MATRIX = [Target(s, PythonVersion.parse(p)) for s in ("deps", "ci") for p in ("3.11", "3.12", "3.13")]


def ids(patterns: tuple[str, ...] = (), stages: tuple[str, ...] = (), pythons: tuple[str, ...] = ()) -> list[str]:
    return [t.id for t in select(MATRIX, Selection(patterns, stages, pythons))]


def test_nothing_asked_means_everything() -> None:
    assert ids() == [t.id for t in MATRIX]


@pytest.mark.parametrize(
    ("patterns", "expected"),
    [
        (("ci-py312",), ["ci-py312"]),
        (("ci-*",), ["ci-py311", "ci-py312", "ci-py313"]),
        (("*-py313",), ["deps-py313", "ci-py313"]),
        (("ci",), ["ci-py311", "ci-py312", "ci-py313"]),
        (("py312",), ["deps-py312", "ci-py312"]),
        (("deps-py31[12]",), ["deps-py311", "deps-py312"]),
        # several: union, in matrix order, each once
        (("ci-py313", "deps-*", "ci-py313"), ["deps-py311", "deps-py312", "deps-py313", "ci-py313"]),
        (("py311", "ci"), ["deps-py311", "ci-py311", "ci-py312", "ci-py313"]),
    ],
)
def test_patterns(patterns: tuple[str, ...], expected: list[str]) -> None:
    assert ids(patterns) == expected


def test_patterns_are_case_sensitive() -> None:
    with pytest.raises(UsageError):
        ids(("CI-*",))


def test_stage_option() -> None:
    assert ids(stages=("ci",)) == ["ci-py311", "ci-py312", "ci-py313"]
    assert ids(stages=("ci", "deps")) == [t.id for t in MATRIX]


def test_python_option() -> None:
    assert ids(pythons=("3.11",)) == ["deps-py311", "ci-py311"]
    assert ids(pythons=("3.13", "3.11")) == ["deps-py311", "deps-py313", "ci-py311", "ci-py313"]


@pytest.mark.parametrize(
    ("patterns", "stages", "pythons", "expected"),
    [
        ((), ("ci",), ("3.11", "3.13"), ["ci-py311", "ci-py313"]),
        (("*-py312",), ("deps",), (), ["deps-py312"]),
        (("ci-*", "deps-py311"), (), ("3.11",), ["deps-py311", "ci-py311"]),
        (("py313",), ("ci",), ("3.13",), ["ci-py313"]),
    ],
)
def test_combinations_intersect(
    patterns: tuple[str, ...], stages: tuple[str, ...], pythons: tuple[str, ...], expected: list[str]
) -> None:
    assert ids(patterns, stages, pythons) == expected


@pytest.mark.parametrize(
    ("patterns", "stages", "pythons", "mentions"),
    [
        (("docs-*",), (), (), ["'docs-*' matches no target", "deps-py311", "ci-py313"]),
        (("ci-py314",), (), (), ["'ci-py314'", "ci-py313"]),
        ((), ("docs",), (), ["--stage docs", "ci, deps"]),
        ((), ("base",), (), ["--stage base"]),  # in the Dockerfile, but not configured
        ((), (), ("3.14",), ["--python 3.14", "3.11, 3.12, 3.13"]),
        ((), (), ("3.x",), ["--python 3.x", "X.Y"]),
        (("ci-*",), ("deps",), (), ["matches no target"]),
        (("deps-py311",), (), ("3.12",), ["matches no target"]),
    ],
)
def test_errors_are_usage_errors(
    patterns: tuple[str, ...], stages: tuple[str, ...], pythons: tuple[str, ...], mentions: list[str]
) -> None:
    with pytest.raises(UsageError) as info:
        ids(patterns, stages, pythons)
    assert info.value.exit_code == 2
    for text in mentions:
        assert text in str(info.value)


# -- through the command line --------------------------------------------------------------

TOML = """\
[tool.bake-ci]
image = "acme/app-ci"
python = ["3.11", "3.12", "3.13"]
stages = ["deps", "ci"]
"""


def test_cli_selection(project, cli) -> None:
    project(TOML)
    run = cli("matrix", "ci-*", "--python", "3.12", "--python", "3.13")
    assert run.rc == 0
    assert [row["target"] for row in json.loads(run.out)["include"]] == ["ci-py312", "ci-py313"]


def test_cli_plan_selection_limits_targets_and_groups(project, cli) -> None:
    project(TOML)
    run = cli("plan", "*-py313", "--branch", "main", env={"GITHUB_SHA": "0" * 40})
    assert run.rc == 0
    definition = json.loads(run.out)
    assert sorted(definition["target"]) == ["ci-py313", "deps-py313"]
    assert definition["group"]["default"] == {"targets": ["deps-py313", "ci-py313"]}
    assert definition["group"]["py313"] == {"targets": ["deps-py313", "ci-py313"]}
    assert "py311" not in definition["group"]


@pytest.mark.parametrize(
    ("args", "mention"),
    [
        (("nope",), "'nope' matches no target"),
        (("--stage", "docs"), "--stage docs"),
        (("--python", "3.9"), "--python 3.9"),
    ],
)
def test_cli_selection_errors_exit_2(project, cli, args: tuple[str, ...], mention: str) -> None:
    project(TOML)
    run = cli("matrix", *args)
    assert (run.rc, run.out) == (2, "")
    assert run.err.startswith("bake-ci: usage error: ")
    assert mention in run.err
    assert "Traceback" not in run.err
