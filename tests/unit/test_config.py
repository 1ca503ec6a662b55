"""``[tool.bake-ci]``: what a user sees for a bad configuration, and what a good one means."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bake import config_errors, config_load, redact
from bake.errors import ConfigError

GOOD = """\
[tool.bake-ci]
image = "acme/app-ci"
python = ["3.12"]
"""
TWO = '[tool.bake-ci]\nimage = "acme/app-ci"\npython = ["3.11", "3.13"]\n'
#: No error paragraph, as printed ("bake-ci: config error: ..."), is longer than this.
MAX_PRINTED = 600


CAPPED = config_errors._capped


@pytest.fixture(autouse=True)
def _no_registered_secrets() -> Iterator[None]:
    redact.forget_all()
    yield
    redact.forget_all()


@pytest.fixture(autouse=True)
def _no_last_resort_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    """Length checks here measure the messages as built, not the last-resort cut."""
    monkeypatch.setattr(config_errors, "_capped", lambda message: message)


def test_the_last_resort_cut_keeps_the_start_and_the_fix() -> None:
    text = "pyproject.toml: tool.bake-ci.x = 'y': " + "z" * 5000 + " Write x = 1."
    cut = CAPPED(text)
    assert len(cut) == config_errors.MAX_MESSAGE
    assert cut.startswith("pyproject.toml: tool.bake-ci.x = 'y': ")
    assert cut.endswith(" Write x = 1.")


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
    "env-registry-password-with-a-space": Bad(
        GOOD,
        ("BAKE_CI_REGISTRY (overrides tool.bake-ci.registry)", "'***@ghcr.io'", "docker login"),
        env={"BAKE_CI_REGISTRY": "bot:hunter2 and more@ghcr.io"},
        forbid=("hunter2", "and more"),
    ),
    # -- image length: docker repository names are at most 255 characters, host included
    "image-over-255": Bad(
        '[tool.bake-ci]\nimage = "acme/' + "a" * 300 + '"\npython = ["3.12"]\n',
        ("tool.bake-ci.image = 'acme/aaa", "(305 characters)", "at most 255 characters", "shorten it"),
    ),
    "registry-and-image-over-255": Bad(
        '[tool.bake-ci]\nregistry = "ghcr.io/acme"\nimage = "a/' + "b" * 240 + '"\npython = ["3.12"]\n',
        (
            "tool.bake-ci.registry = 'ghcr.io/acme'",
            "tool.bake-ci.image = 'a/bbb",
            "cache repository 'ghcr.io/acme/a/bbb",
            "(261 characters)",
            "at most 255 characters",
            "Shorten image or registry",
        ),
    ),
    "env-registry-and-image-over-255": Bad(
        '[tool.bake-ci]\nimage = "a/' + "b" * 240 + '"\npython = ["3.12"]\n',
        ("BAKE_CI_REGISTRY (overrides tool.bake-ci.registry) = 'registry.example.com:5000/team'", "at most 255"),
        env={"BAKE_CI_REGISTRY": "registry.example.com:5000/team"},
    ),
    "local-image-over-255-as-library": Bad(
        '[tool.bake-ci]\nimage = "' + "a" * 250 + '"\npython = ["3.12"]\n',
        ("tool.bake-ci.image", "library/", "258 characters", "give it an owner"),
    ),
    # -- build args
    "args-empty-name": Bad(
        GOOD + 'args = { "" = "1" }\n',
        ("tool.bake-ci.args key ''", "not a build arg name", "[A-Za-z_][A-Za-z0-9_]*"),
    ),
    "args-name-with-space": Bad(
        GOOD + 'args = { "A B" = "1" }\n',
        ("tool.bake-ci.args key 'A B'", "not a build arg name", "e.g. PIP_INDEX_URL"),
    ),
    "args-name-is-a-variable": Bad(
        GOOD + 'args = { "${X}" = "1", "1ST" = "2" }\n',
        ("tool.bake-ci.args key '${X}'", "tool.bake-ci.args key '1ST'", "not a build arg name"),
    ),
    "args-base-image": Bad(
        GOOD + 'args = { BASE_IMAGE = "python:3.12-bookworm" }\n',
        ("tool.bake-ci.args key 'BASE_IMAGE'", "sets BASE_IMAGE itself", "base-image", "python:{python}-slim"),
    ),
    "args-python-version": Bad(
        GOOD + 'args = { PYTHON_VERSION = "3.12" }\n',
        ("tool.bake-ci.args key 'PYTHON_VERSION'", "sets PYTHON_VERSION itself", 'python = ["3.12", "3.13"]'),
    ),
    # -- platforms
    "platform-unknown-arch": Bad(
        GOOD + 'platforms = ["windows/foo"]\n',
        ("tool.bake-ci.platforms[0] = 'windows/foo'", "unknown architecture 'foo'", "Known: amd64, arm64"),
    ),
    "platform-empty": Bad(
        GOOD + 'platforms = [""]\n',
        ("tool.bake-ci.platforms[0] = ''", "empty", '"linux/amd64"', "remove the entry"),
    ),
    "platform-no-arch": Bad(
        GOOD + 'platforms = ["linux"]\n',
        ("tool.bake-ci.platforms[0] = 'linux'", "not os/arch[/variant]", "platforms = []"),
    ),
    "platform-unknown-os": Bad(
        GOOD + 'platforms = ["linx/amd64"]\n',
        ("tool.bake-ci.platforms[0] = 'linx/amd64'", "unknown os 'linx'", "Did you mean 'linux'?"),
    ),
    "platform-arch-alias": Bad(
        GOOD + 'platforms = ["linux/x86_64"]\n',
        ("tool.bake-ci.platforms[0] = 'linux/x86_64'", 'write "linux/amd64"'),
    ),
    "platform-os-alias": Bad(
        GOOD + 'platforms = ["macos/arm64"]\n',
        ("tool.bake-ci.platforms[0] = 'macos/arm64'", 'write "darwin/arm64"'),
    ),
    "platform-uppercase": Bad(
        GOOD + 'platforms = ["Linux/AMD64"]\n',
        ("tool.bake-ci.platforms[0] = 'Linux/AMD64'", "lowercase", 'write "linux/amd64"'),
    ),
    "platform-unknown-variant": Bad(
        GOOD + 'platforms = ["linux/arm/v9"]\n',
        ("tool.bake-ci.platforms[0] = 'linux/arm/v9'", "arm has no variant 'v9'", "v5, v6, v7 or v8"),
    ),
    "platform-twice": Bad(
        GOOD + 'platforms = ["linux/amd64", "linux/amd64"]\n',
        ("tool.bake-ci.platforms", "'linux/amd64' is listed twice", "list each once"),
    ),
    # -- branches
    "fallback-branch-empty": Bad(
        GOOD + '[tool.bake-ci.cache]\nfallback-branches = [""]\n',
        ("tool.bake-ci.cache.fallback-branches[0] = ''", "blank", 'e.g. "main"', "remove the entry"),
    ),
    "fallback-branch-blank": Bad(
        GOOD + '[tool.bake-ci.cache]\nfallback-branches = ["main", "  "]\n',
        ("tool.bake-ci.cache.fallback-branches[1] = '  '", "blank"),
    ),
    "fallback-branch-padded": Bad(
        GOOD + '[tool.bake-ci.cache]\nfallback-branches = ["develop "]\n',
        ("tool.bake-ci.cache.fallback-branches[0] = 'develop '", "spaces around it", "write 'develop'"),
    ),
    "default-branch-blank": Bad(
        GOOD + 'default-branch = " "\n',
        ("tool.bake-ci.default-branch = ' '", "blank", 'e.g. "main"'),
    ),
    # -- paths outside the project
    "context-outside-the-project": Bad(
        GOOD + 'context = "../../../../etc"\n',
        ("tool.bake-ci.context = '../../../../etc'", "outside the project", 'context = "."'),
    ),
    "context-absolute": Bad(
        GOOD + 'context = "/etc"\n',
        ("tool.bake-ci.context = '/etc'", "resolves to /etc, outside the project", "relative to the config file"),
    ),
    "dockerfile-outside-the-project": Bad(
        GOOD + 'dockerfile = "../Dockerfile"\n',
        ("tool.bake-ci.dockerfile = '../Dockerfile'", "outside the project", 'dockerfile = "Dockerfile"'),
    ),
    # -- base-image and Python versions
    "base-image-without-python-and-two-versions": Bad(
        TWO + 'base-image = "python:3.11-slim"\n',
        (
            "tool.bake-ci.base-image = 'python:3.11-slim'",
            "no {python} placeholder",
            "tool.bake-ci.python lists 2 versions (3.11, 3.13)",
            "Write base-image = 'python:{python}-slim'",
        ),
    ),
    "base-image-without-python-suggests-the-users-own-image": Bad(
        TWO + 'base-image = "ghcr.io/acme/py:3.13-bookworm"\n',
        ("tool.bake-ci.base-image", "Write base-image = 'ghcr.io/acme/py:{python}-bookworm'"),
    ),
    "env-base-image-without-python": Bad(
        TWO,
        ("BAKE_CI_BASE_IMAGE (overrides tool.bake-ci.base-image) = 'mirror.example/python:3.11'", "{python}"),
        env={"BAKE_CI_BASE_IMAGE": "mirror.example/python:3.11"},
    ),
    "env-base-image-with-credentials": Bad(
        TWO,
        ("BAKE_CI_BASE_IMAGE (overrides tool.bake-ci.base-image) = '***@host/img'", "docker login"),
        env={"BAKE_CI_BASE_IMAGE": "user:p@ss word@host/img"},
        forbid=("p@ss", "ss word", "user:"),
    ),
    "base-image-with-credentials": Bad(
        GOOD + 'base-image = "ci-bot:tok/en@registry.example.com/python:{python}-slim"\n',
        ("tool.bake-ci.base-image", "credentials do not belong", "docker login"),
        forbid=("ci-bot", "tok/en"),
    ),
    "env-base-image-trailing-newline": Bad(
        GOOD,
        ("BAKE_CI_BASE_IMAGE (overrides tool.bake-ci.base-image)", "trailing newline", "remove them"),
        env={"BAKE_CI_BASE_IMAGE": "python:{python}-slim\n"},
    ),
    "python-versions-with-one-target-name": Bad(
        '[tool.bake-ci]\nimage = "acme/app-ci"\npython = ["3.11", "31.1"]\n',
        ("tool.bake-ci.python lists '3.11' and '31.1'", "same target names", "py311"),
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
    assert len(run.err) <= MAX_PRINTED
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
    loaded = config_load.load(None, {})
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
    assert config_load.load(None, {}).config.fallback_branches == ["trunk"]


def test_fallback_branches_can_be_set(project) -> None:
    project(GOOD + 'default-branch = "trunk"\n[tool.bake-ci.cache]\nfallback-branches = ["develop", "trunk"]\n')
    assert config_load.load(None, {}).config.fallback_branches == ["develop", "trunk"]


def test_configured_stages_keep_their_order(project) -> None:
    project(GOOD + 'stages = ["ci", "deps"]\n')
    assert config_load.load(None, {}).stages == ["ci", "deps"]


def test_env_registry_overrides_the_file(project) -> None:
    project(GOOD + 'registry = "ghcr.io/acme"\n')
    assert config_load.load(None, {}).config.registry == "ghcr.io/acme"
    assert config_load.load(None, {"BAKE_CI_REGISTRY": "localhost:5000/ci"}).config.registry == "localhost:5000/ci"


def test_empty_env_registry_means_no_registry(project, cli) -> None:
    project(GOOD + 'registry = "ghcr.io/acme"\n')
    assert config_load.load(None, {"BAKE_CI_REGISTRY": ""}).config.registry is None
    env = {"BAKE_CI_REGISTRY": "", "CI": "true", "GITHUB_SHA": "0" * 40, "BAKE_CI_STATE_DIR": "/state"}
    run = cli("plan", "--branch", "main", env=env)
    assert run.rc == 0
    target = json.loads(run.out)["target"]["ci-py312"]
    assert target["tags"][0] == "acme/app-ci:ci-py3.12-main"
    assert target["cache-from"] == ["type=local,src=/state/cache/ci-py312"]
    assert target["output"] == ["type=docker"]


def test_bake_file_with_base_target_is_detected(project) -> None:
    project(GOOD, files={"docker-bake.hcl": 'target "bake-ci" {\n  labels = { a = "b" }\n}\n'})
    loaded = config_load.load(None, {})
    assert loaded.bake_file is not None
    assert loaded.bake_file.name == "docker-bake.hcl"
    assert loaded.inherits_base is True


def test_bake_file_without_base_target_is_not_inherited(project) -> None:
    project(GOOD, files={"docker-bake.hcl": 'target "other" {}\n# target "bake-ci" {}\n'})
    loaded = config_load.load(None, {})
    assert loaded.bake_file is not None
    assert loaded.inherits_base is False


# -- no paragraph grows with the input ------------------------------------------------------------


def _versions(n: int) -> str:
    return ", ".join(f'"3.{i}"' for i in range(n))


HUGE = {
    "2000-bad-python-versions": (
        f'[tool.bake-ci]\nimage = "a/b"\npython = [{_versions(2000)}]\n',
        ("tool.bake-ci.python[100] = '3.100'", "tool.bake-ci.python[101] = '3.101'", "and 1,898 more", "X.Y"),
    ),
    "2000-bad-versions-and-other-problems": (
        f'[tool.bake-ci]\nimage = "a/b"\npython = [{_versions(2000)}]\nplatforms = ["x"]\n'
        'args = { "a b" = "1" }\ndefault-branch = " "\n' + "".join(f"unknown{i} = 1\n" for i in range(500)),
        ("and 1,898 more", "more problems: fix these and run again"),
    ),
    "500-bad-platforms": (
        GOOD + "platforms = [" + ", ".join(f'"linux/x{i}"' for i in range(500)) + "]\n",
        ("tool.bake-ci.platforms[0] = 'linux/x0'", "more problems"),
    ),
    "2000-duplicate-versions": (
        '[tool.bake-ci]\nimage = "a/b"\npython = [' + ", ".join(['"3.12"'] * 2000) + "]\n",
        ("tool.bake-ci.python", "'3.12' is listed twice"),
    ),
    "a-key-of-100k-characters": (
        GOOD + "k" * 100_000 + " = 1\n",
        ("tool.bake-ci.kkkk", "not a known key"),
    ),
    "an-args-name-of-100k-characters": (
        GOOD + 'args = { "' + "A B" * 30_000 + '" = "1" }\n',
        ("tool.bake-ci.args key 'A BA B", "(90,000 characters)", "not a build arg name"),
    ),
    "a-base-image-of-100k-characters": (
        TWO + 'base-image = "' + "x" * 100_000 + '"\n',
        ("tool.bake-ci.base-image = 'xxx", "(100,000 characters)", "{python}"),
    ),
    "a-context-of-10k-characters": (
        GOOD + 'context = "' + "../" * 3_000 + 'etc"\n',
        ("tool.bake-ci.context = '../../", "(9,003 characters)", "outside the project"),
    ),
    "a-platform-variant-of-100k-characters": (
        GOOD + 'platforms = ["linux/riscv64/' + "a" * 100_000 + '"]\n',
        ("tool.bake-ci.platforms[0]", "riscv64 has no variant 'aaaa", "up to 32 lowercase letters"),
    ),
    "a-macos-platform-of-100k-characters": (
        GOOD + 'platforms = ["macos/' + "a" * 100_000 + '"]\n',
        ("tool.bake-ci.platforms[0]", "the os is called 'darwin'"),
    ),
    "a-platform-of-100k-characters": (
        GOOD + 'platforms = ["linux/' + "a" * 100_000 + '"]\n',
        ("tool.bake-ci.platforms[0]", "(100,006 characters)", "unknown architecture"),
    ),
}


@pytest.mark.parametrize(("toml", "expect"), HUGE.values(), ids=HUGE.keys())
def test_long_inputs_give_short_paragraphs(project, cli, toml: str, expect: tuple[str, ...]) -> None:
    project(toml)
    run = cli("matrix")
    assert run.rc == 2
    assert "Traceback" not in run.err
    assert len(run.err) <= MAX_PRINTED, len(run.err)
    assert run.err.count("\n") == 1, "one line"
    for text in expect:
        assert text in run.err


def test_a_dockerfile_with_many_stages_is_summarised(project, cli) -> None:
    stages = "".join(f"FROM python AS stage{i}\n" for i in range(1000))
    project(GOOD + 'stages = ["stage1", "nope"]\n', dockerfile=stages)
    run = cli("matrix")
    assert run.rc == 2
    assert len(run.err) <= MAX_PRINTED
    assert "tool.bake-ci.stages[1] = 'nope'" in run.err
    assert "Its stages are: stage0, stage1" in run.err
    assert "and 992 more" in run.err


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=400),
    lambda inner: st.lists(inner, max_size=30) | st.dictionaries(st.text(max_size=300), inner, max_size=10),
    max_leaves=200,
)
KEYS = st.sampled_from(
    ["image", "registry", "python", "stages", "platforms", "args", "labels", "base-image", "default-branch", "cache"]
)


@given(
    table=st.dictionaries(KEYS | st.text(max_size=300), JSONISH, max_size=12),
    env=st.dictionaries(st.sampled_from(["BAKE_CI_REGISTRY", "BAKE_CI_BASE_IMAGE"]), st.text(max_size=400)),
)
def test_any_table_is_accepted_or_explained_in_one_short_paragraph(table, env) -> None:
    try:
        config_load.parse(table, Path("pyproject.toml"), env)
    except ConfigError as exc:
        message = str(exc)
        assert len(message) <= config_errors.MAX_MESSAGE
        assert message.startswith("pyproject.toml: ")
    redact.forget_all()


# -- what is accepted ---------------------------------------------------------------------------


def test_platforms_buildx_knows_are_accepted(project) -> None:
    platforms = ["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm64/v8", "linux/amd64/v3", "windows/amd64"]
    project(GOOD + f"platforms = {json.dumps(platforms)}\n")
    assert config_load.load(None, {}).config.platforms == platforms


def test_base_image_without_python_is_fine_with_one_version(project) -> None:
    project(GOOD + 'base-image = "python:3.12-slim"\n')
    assert config_load.load(None, {}).config.base_image == "python:3.12-slim"


def test_args_with_ordinary_names_are_accepted(project) -> None:
    project(GOOD + 'args = { PIP_INDEX_URL = "https://pypi.example/simple", _x = "", a1 = "b" }\n')
    assert set(config_load.load(None, {}).config.args) == {"PIP_INDEX_URL", "_x", "a1"}


def test_an_image_of_exactly_255_characters_with_its_registry_is_accepted(project) -> None:
    image = "a/" + "b" * (255 - len("ghcr.io/acme/a/") - len("-cache"))
    project(f'[tool.bake-ci]\nregistry = "ghcr.io/acme"\nimage = "{image}"\npython = ["3.12"]\n')
    loaded = config_load.load(None, {})
    assert len(f"{loaded.config.registry}/{loaded.config.image}-cache") == 255


def test_context_in_a_subdirectory_is_accepted(project) -> None:
    project(GOOD + 'context = "app/../app"\n', files={"app/x.txt": "x"})
    assert config_load.load(None, {}).config.context == "app/../app"


def test_a_context_linked_outside_the_project_is_rejected(project, cli, tmp_path_factory) -> None:
    outside = tmp_path_factory.mktemp("outside")
    root = project(GOOD + 'context = "ctx"\n')
    (root / "ctx").symlink_to(outside)
    run = cli("matrix")
    assert run.rc == 2
    assert "tool.bake-ci.context = 'ctx' resolves to" in run.err
    assert "outside the project" in run.err


# -- credentials in configured values ---------------------------------------------------------------


def test_base_image_credentials_never_reach_a_printed_plan(project) -> None:
    """A login cannot be part of an image reference: refused before anything is planned or printed."""
    project(GOOD)
    base = "user:p@ss word@registry.example.com/python:{python}-slim"
    with pytest.raises(ConfigError) as caught:
        config_load.load(None, {"BAKE_CI_BASE_IMAGE": base})
    assert "p@ss" not in str(caught.value)
    assert "ss word" not in str(caught.value)
    # and wherever the value turns up later in a log line or message
    real = base.replace("{python}", "3.12")
    assert "p@ss word" not in redact.redact(f"pulling {real}: 401 Unauthorized")
