"""``[tool.bake-ci]``: what a user sees for a bad configuration, and what a good one means."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from bake import config

GOOD = """\
[tool.bake-ci]
image = "acme/app-ci"
python = ["3.12"]
"""


@dataclass(frozen=True)
class Bad:
    toml: str
    #: Every one of these must appear in the message (key path, value, what to do).
    expect: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    #: None of these may appear in the message.
    forbid: tuple[str, ...] = ()


BAD = {
    "no-table": Bad(
        '[project]\nname = "app"\n',
        ("[tool.bake-ci]", "Add one", 'image = "OWNER/NAME-ci"'),
    ),
    "missing-image": Bad(
        '[tool.bake-ci]\npython = ["3.12"]\n',
        ("tool.bake-ci.image", "required", 'Add image = "OWNER/NAME-ci"'),
    ),
    "unknown-key": Bad(
        '[tool.bake-ci]\nimage = "acme/app-ci"\npython = ["3.12"]\npythn = ["3.13"]\n',
        ("tool.bake-ci.pythn", "not a known key", "Did you mean 'python'?", "Remove or rename it"),
    ),
    "unknown-cache-key": Bad(
        GOOD + '[tool.bake-ci.cache]\nmod = "min"\n',
        ("tool.bake-ci.cache.mod", "not a known key", "Did you mean 'mode'?", "Remove or rename it"),
    ),
    "python-float": Bad(
        '[tool.bake-ci]\nimage = "acme/app-ci"\npython = [3.10]\n',
        ("tool.bake-ci.python[0]", "3.1", "Quote", '"3.10"'),
    ),
    "python-single-number": Bad(
        '[tool.bake-ci]\nimage = "acme/app-ci"\npython = ["3"]\n',
        ("tool.bake-ci.python[0]", "'3'", "X.Y"),
    ),
    "python-word": Bad(
        '[tool.bake-ci]\nimage = "acme/app-ci"\npython = ["3.12", "three"]\n',
        ("tool.bake-ci.python[1]", "'three'", "X.Y"),
    ),
    "python-x": Bad(
        '[tool.bake-ci]\nimage = "acme/app-ci"\npython = ["3.x"]\n',
        ("tool.bake-ci.python[0]", "'3.x'", "X.Y"),
    ),
    "unknown-stage": Bad(
        GOOD + 'stages = ["deps", "cii"]\n',
        ("tool.bake-ci.stages[1]", "'cii'", "Did you mean 'ci'?", "base, deps, ci"),
    ),
    "malformed-toml": Bad(
        '[tool.bake-ci]\nimage = acme/app-ci\npython = ["3.12"]\n',
        ("not valid TOML", "line 2", "column 9", "Fix the syntax"),
    ),
    "no-dockerfile": Bad(
        GOOD + 'dockerfile = "docker/ci.Dockerfile"\n',
        ("tool.bake-ci.dockerfile", "docker/ci.Dockerfile", "no such file", "Create it or point dockerfile at"),
    ),
    "cache-mode": Bad(
        GOOD + 'cache.mode = "medium"\n',
        ("tool.bake-ci.cache.mode", "'medium'", "'max' or 'min'"),
    ),
    "image-with-registry-host": Bad(
        '[tool.bake-ci]\nimage = "ghcr.io/acme/app-ci"\nregistry = "ghcr.io/acme"\npython = ["3.12"]\n',
        ("tool.bake-ci.image", "'ghcr.io/acme/app-ci'", "registry"),
    ),
    "image-with-tag": Bad(
        '[tool.bake-ci]\nimage = "acme/app-ci:latest"\npython = ["3.12"]\n',
        ("tool.bake-ci.image", "'acme/app-ci:latest'", "no tag"),
    ),
    "args-number": Bad(
        GOOD + "args = { PIP_RETRIES = 3 }\n",
        ("tool.bake-ci.args.PIP_RETRIES", "3", 'quote it: "3"'),
    ),
    "platforms-not-a-list": Bad(
        GOOD + 'platforms = "linux/amd64"\n',
        ("tool.bake-ci.platforms", "'linux/amd64'", "list"),
    ),
    "base-image-placeholder": Bad(
        GOOD + 'base-image = "python:{py}-slim"\n',
        ("tool.bake-ci.base-image", "'python:{py}-slim'", "{python}"),
    ),
    "registry-scheme": Bad(
        GOOD + 'registry = "https://ghcr.io/acme"\n',
        ("tool.bake-ci.registry", "https://ghcr.io/acme", "drop the scheme"),
    ),
    "registry-credentials": Bad(
        GOOD + 'registry = "bot:hunter2@ghcr.io/acme"\n',
        ("tool.bake-ci.registry", "credentials", "docker login"),
        forbid=("hunter2",),
    ),
    "registry-scheme-and-credentials": Bad(
        GOOD + 'registry = "https://bot:hunter2@ghcr.io/acme"\n',
        ("tool.bake-ci.registry",),
        forbid=("hunter2",),
    ),
    "env-registry": Bad(
        GOOD + 'registry = "ghcr.io/acme"\n',
        ("BAKE_CI_REGISTRY", "tool.bake-ci.registry", "'Not A Registry'", 'e.g. "ghcr.io/acme"'),
        env={"BAKE_CI_REGISTRY": "Not A Registry"},
    ),
    "env-registry-credentials": Bad(
        GOOD,
        ("BAKE_CI_REGISTRY", "credentials", "docker login"),
        env={"BAKE_CI_REGISTRY": "bot:hunter2@ghcr.io/acme"},
        forbid=("hunter2",),
    ),
}


@pytest.mark.parametrize("case", BAD.values(), ids=BAD.keys())
def test_bad_config_is_one_paragraph_exit_2(project, cli, case: Bad) -> None:
    project(case.toml)
    run = cli("matrix", env=case.env)
    assert run.rc == 2
    assert run.out == ""
    assert run.err.startswith("bake-ci: config error: pyproject.toml: ")
    assert "Traceback" not in run.err
    assert "\n\n" not in run.err.strip(), "one paragraph"
    for text in case.expect:
        assert text in run.err
    for text in case.forbid:
        assert text not in run.err


def test_each_bad_key_is_named_in_the_same_paragraph(project, cli) -> None:
    project('[tool.bake-ci]\nimage = "Acme/App"\npython = []\nplatform = ["linux/amd64"]\n')
    run = cli("matrix")
    assert run.rc == 2
    assert "tool.bake-ci.image = 'Acme/App'" in run.err
    assert "tool.bake-ci.python must not be empty" in run.err
    assert "tool.bake-ci.platform is not a known key. Did you mean 'platforms'?" in run.err
    assert "\n" not in run.err.strip()


def test_bad_config_also_fails_plan(project, cli) -> None:
    project('[tool.bake-ci]\nimage = "acme/app-ci"\npython = ["3.x"]\n')
    run = cli("plan", "--branch", "main", env={"GITHUB_SHA": "0" * 40})
    assert (run.rc, run.out) == (2, "")
    assert "tool.bake-ci.python[0]" in run.err


def test_duplicate_python_version_is_rejected_or_built_once(project, cli) -> None:
    project('[tool.bake-ci]\nimage = "acme/app-ci"\npython = ["3.12", "3.13", "3.12"]\n')
    run = cli("matrix")
    if run.rc == 2:
        assert "tool.bake-ci.python" in run.err
        assert "3.12" in run.err
    else:
        targets = [row["target"] for row in json.loads(run.out)["include"]]
        assert targets == ["ci-py312", "ci-py313"]


def test_registry_with_trailing_newline_never_reaches_a_tag(project, cli) -> None:
    # CI variables and secrets often end with a newline.
    project(GOOD)
    run = cli(
        "plan",
        "--push",
        "--no-reuse",
        "--branch",
        "main",
        env={"BAKE_CI_REGISTRY": "ghcr.io/acme\n", "GITHUB_SHA": "0" * 40},
    )
    if run.rc == 2:
        assert "BAKE_CI_REGISTRY" in run.err
    else:
        assert run.rc == 0
        target = json.loads(run.out)["target"]["ci-py312"]
        refs = target["tags"] + target["cache-from"] + target["cache-to"]
        assert all("\n" not in ref for ref in refs), refs
        assert target["tags"][0] == "ghcr.io/acme/acme/app-ci:ci-py3.12-main"


# -- good configurations -------------------------------------------------------------------


def test_stages_that_would_share_a_target_name_are_rejected(project, cli) -> None:
    dockerfile = "FROM python AS test.unit\nFROM python AS test_unit\n"
    toml = '[tool.bake-ci]\nimage = "a/b"\npython = ["3.12"]\nstages = ["test.unit", "test_unit"]\n'
    project(toml, dockerfile=dockerfile)
    result = cli("plan", "--load")
    assert result.rc == 2
    assert "'test.unit' and 'test_unit'" in result.err
    assert "test_unit-py312" in result.err


def test_defaults(project) -> None:
    project(GOOD)
    loaded = config.load(None, {})
    assert loaded.stages == ["ci"]  # the Dockerfile's last stage
    assert loaded.config.registry is None
    assert loaded.config.default_branch == "main"
    assert loaded.config.fallback_branches == ["main"]
    assert loaded.config.dockerfile == "Dockerfile"
    assert loaded.config.context == "."
    assert loaded.config.base_image == "python:{python}-slim"
    assert (loaded.config.cache.mode, loaded.config.cache.inline) == ("max", True)
    assert loaded.bake_file is None
    assert loaded.inherits_base is False


def test_default_stage_is_the_last_one_of_the_dockerfile(project, cli) -> None:
    project(GOOD, dockerfile="FROM python:3.12 AS Build\nRUN true\nFROM build AS Test\n")
    run = cli("matrix")
    assert run.rc == 0
    assert json.loads(run.out) == {"include": [{"target": "test-py312", "stage": "test", "python": "3.12"}]}


def test_fallback_branches_default_to_the_default_branch(project) -> None:
    project(GOOD + 'default-branch = "trunk"\n')
    assert config.load(None, {}).config.fallback_branches == ["trunk"]


def test_fallback_branches_can_be_set(project) -> None:
    project(GOOD + 'default-branch = "trunk"\n[tool.bake-ci.cache]\nfallback-branches = ["develop", "trunk"]\n')
    assert config.load(None, {}).config.fallback_branches == ["develop", "trunk"]


def test_configured_stages_keep_their_order(project) -> None:
    project(GOOD + 'stages = ["ci", "deps"]\n')
    assert config.load(None, {}).stages == ["ci", "deps"]


def test_env_registry_overrides_the_file(project) -> None:
    project(GOOD + 'registry = "ghcr.io/acme"\n')
    assert config.load(None, {}).config.registry == "ghcr.io/acme"
    assert config.load(None, {"BAKE_CI_REGISTRY": "localhost:5000/ci"}).config.registry == "localhost:5000/ci"


def test_empty_env_registry_means_no_registry(project, cli) -> None:
    project(GOOD + 'registry = "ghcr.io/acme"\n')
    assert config.load(None, {"BAKE_CI_REGISTRY": ""}).config.registry is None
    env = {"BAKE_CI_REGISTRY": "", "CI": "true", "GITHUB_SHA": "0" * 40, "BAKE_CI_STATE_DIR": "/state"}
    run = cli("plan", "--branch", "main", env=env)
    assert run.rc == 0
    target = json.loads(run.out)["target"]["ci-py312"]
    assert target["tags"][0] == "acme/app-ci:ci-py3.12-main"
    assert target["cache-from"] == ["type=local,src=/state/cache/ci-py312"]
    assert target["output"] == ["type=docker"]


def test_bake_file_with_base_target_is_detected(project) -> None:
    project(GOOD, files={"docker-bake.hcl": 'target "bake-ci" {\n  labels = { a = "b" }\n}\n'})
    loaded = config.load(None, {})
    assert loaded.bake_file is not None
    assert loaded.bake_file.name == "docker-bake.hcl"
    assert loaded.inherits_base is True


def test_bake_file_without_base_target_is_not_inherited(project) -> None:
    project(GOOD, files={"docker-bake.hcl": 'target "other" {}\n# target "bake-ci" {}\n'})
    loaded = config.load(None, {})
    assert loaded.bake_file is not None
    assert loaded.inherits_base is False
