"""The GitHub Action and the CI templates: valid against SchemaStore's schemas, and every
``bake-ci`` command in them accepted by the real parser. (tests/engine/test_front.py runs
them as a shell would, against the real engine.)"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from bake.cli import parse_args

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "ci" / "templates"
ACTION = ROOT / "action.yml"
GITHUB = ["github-build.yml", "github-nightly.yml", "github-platforms.yml"]
GITLAB = ["gitlab-ci.yml", "gitlab-platforms.yml"]
GITLAB_SCRIPT_KEYS = ("before_script", "script", "after_script")

#: What the expressions of the CI systems stand for when a command line is parsed.
SUBSTITUTIONS = [
    (re.compile(r"\$\{\{\s*matrix\.target\s*\}\}"), "ci-py312"),
    (re.compile(r"\$TEST_COMMAND\b"), "python -m pytest"),
    (re.compile(r"\$\{\{.*?\}\}"), "x"),
    (re.compile(r"\"?\$(?:TARGET\b|\{TARGET\})\"?"), "ci-py312"),
]
#: Where the ``bake-ci`` command of a shell line ends: a redirection, a pipe or the next command.
SHELL_END = re.compile(r"\s(?:[0-9]*>|\||&&|;)")
#: ``bake-ci`` inside a command substitution, e.g. ``echo "matrix=$(bake-ci matrix)"``.
SUBSTITUTED = re.compile(r"\$\(\s*(bake-ci\s[^)]*)\)")


@dataclass(frozen=True)
class Command:
    template: str
    job: str
    line: str
    args: argparse.Namespace


def load(name: str) -> dict[str, Any]:
    document = yaml.safe_load((TEMPLATES / name).read_text(encoding="utf-8"))
    assert isinstance(document, dict), f"{name}: not a YAML mapping"
    return document


def lines(script: Any) -> Iterator[str]:
    """The shell lines of a script: a string (possibly multi-line) or a list of them, nested or not."""
    if isinstance(script, str):
        for line in script.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                yield line
    elif isinstance(script, list):
        for item in script:
            yield from lines(item)


def bake_ci_lines(script: Any) -> Iterator[str]:
    for line in lines(script):
        if line.startswith("bake-ci "):
            yield line
        yield from SUBSTITUTED.findall(line)
        # the jobs the GitLab template writes into its child pipeline, quoted in Python
        yield from (m.replace("\\'", "'") for m in re.findall(r"'(bake-ci [^']*)'", line))


def parse(template: str, line: str) -> argparse.Namespace:
    text = line
    for pattern, value in SUBSTITUTIONS:
        text = pattern.sub(value, text)
    text = SHELL_END.split(text, maxsplit=1)[0]
    args = shlex.split(text)
    assert args[0] == "bake-ci", line
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            return parse_args(args[1:])
    except SystemExit:
        pass  # fail outside the handler, so the report shows argparse's message and not its exit
    pytest.fail(f"{template}: bake-ci rejects {line!r} (parsed as {args}):\n{stderr.getvalue()}")


def github_jobs(name: str) -> dict[str, Any]:
    jobs = load(name)["jobs"]
    assert isinstance(jobs, dict), f"{name}: no jobs"
    assert jobs, f"{name}: no jobs"
    return jobs


def step_commands(name: str, step: dict[str, Any], job: str = "") -> list[Command]:
    return [Command(name, job, line, parse(name, line)) for line in bake_ci_lines(step.get("run"))]


def gitlab_jobs(name: str) -> dict[str, Any]:
    return {key: value for key, value in load(name).items() if isinstance(value, dict)}


def commands(name: str) -> list[Command]:
    found: list[Command] = []
    if name in GITHUB:
        for job_id, job in github_jobs(name).items():
            for step in job.get("steps", []):
                found += step_commands(name, step, job_id)
    else:
        for job_id, job in gitlab_jobs(name).items():
            for key in GITLAB_SCRIPT_KEYS:
                found += [Command(name, job_id, line, parse(name, line)) for line in bake_ci_lines(job.get(key))]
    return found


def triggers(document: dict[str, Any]) -> dict[str, Any]:
    """The ``on:`` table (YAML 1.1 reads the bare key ``on`` as ``True``)."""
    on = document.get("on", document.get(True))
    return on if isinstance(on, dict) else {event: None for event in ([on] if isinstance(on, str) else on)}


def uses(step: dict[str, Any], action: str) -> bool:
    return str(step.get("uses", "")).split("@")[0] == action


def builds(command: Command) -> bool:
    return command.args.command in ("build", "warm")


@pytest.mark.parametrize("name", GITHUB + GITLAB)
def test_every_bake_ci_command_parses(name: str) -> None:
    found = commands(name)
    through_action = name in GITHUB and any(
        action_steps(s) and s.get("with", {}).get("command", "build") in ("build", "warm")
        for job in github_jobs(name).values()
        for s in job.get("steps", [])
    )
    assert found or through_action, f"{name}: no bake-ci command found, the test would pass vacuously"
    assert any(builds(c) for c in found) or through_action, f"{name}: builds nothing"


@pytest.mark.parametrize("name", GITHUB + GITLAB)
def test_starts_with_a_comment(name: str) -> None:
    assert (TEMPLATES / name).read_text(encoding="utf-8").startswith("# bake-ci: ")


def action_steps(step: dict[str, Any]) -> bool:
    """A step that uses bake-ci's own action (``OWNER/bake-ci@REF``)."""
    return str(step.get("uses", "")).split("@")[0].endswith("/bake-ci")


def schema_check(schema: str, *paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_action_and_templates_pass_schemastore_schemas() -> None:
    for schema, paths in (
        ("vendor.github-actions", [ACTION]),
        ("vendor.github-workflows", [TEMPLATES / n for n in GITHUB]),
        ("vendor.gitlab-ci", [TEMPLATES / n for n in GITLAB]),
    ):
        checked = schema_check(schema, *paths)
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_schema_check_can_fail(tmp_path: Path) -> None:
    broken = tmp_path / "action.yml"
    broken.write_text("name: x\nruns:\n  using: composite\n  steps:\n    - run: echo\n")  # a run step needs a shell
    assert schema_check("vendor.github-actions", broken).returncode != 0


def test_action_is_composite_with_the_inputs_and_outputs_it_documents() -> None:
    action = yaml.safe_load(ACTION.read_text(encoding="utf-8"))
    assert action["runs"]["using"] == "composite"
    assert {"command", "targets", "output", "keep-going", "version", "config", "test-command"} <= set(action["inputs"])
    assert {"report", "images", "digests", "result", "matrix"} <= set(action["outputs"])
    steps = action["runs"]["steps"]
    for step in steps:
        assert "uses" in step or step.get("shell") == "bash", step  # no runtime but bash (and actions it uses)
        assert "${{" not in str(step.get("run", "")), f"an expression inside a script: {step.get('name')}"
    uploads = [s for s in steps if uses(s, "actions/upload-artifact")]
    assert uploads
    assert uploads[0]["if"].startswith("always()")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in action["inputs"]:
        if name not in ("python", "artifact-name", "progress", "command"):
            assert f"`{name}`" in readme, f"the README does not name the action's input {name}"


@pytest.mark.parametrize("name", GITHUB)
def test_github_templates_build_through_the_action_after_login_and_builder(name: str) -> None:
    document = load(name)
    assert str(document["env"]["BAKE_CI_REGISTRY"]).startswith("ghcr.io/${{ github.repository_owner }}")
    assert document["permissions"] == {"contents": "read", "packages": "write"}
    building = 0
    for job_id, job in github_jobs(name).items():
        steps = job.get("steps", [])
        builds_here = [
            i for i, s in enumerate(steps) if action_steps(s) and s.get("with", {}).get("command") != "matrix"
        ]
        if not builds_here:
            continue
        building += 1
        first = builds_here[0]
        logins = [i for i, s in enumerate(steps) if uses(s, "docker/login-action")]
        assert logins, f"{name}: job {job_id} never logs in"
        assert logins[0] < first, f"{name}: job {job_id} builds before logging in"
        assert steps[logins[0]]["with"]["password"] == "${{ secrets.GITHUB_TOKEN }}"
        # merge only writes indexes through the registry API: the jobs that build need a builder
        building_steps = [i for i in builds_here if steps[i].get("with", {}).get("command", "build") != "merge"]
        if building_steps:
            setups = [i for i, s in enumerate(steps) if uses(s, "docker/setup-buildx-action")]
            assert setups, f"{name}: job {job_id} builds without a buildx builder"
            assert setups[0] < building_steps[0], f"{name}: job {job_id} sets up its builder after building"
            assert steps[setups[0]]["with"]["driver"] == "docker-container"
        for step in steps:
            assert "secrets." not in str(step.get("run", "")), f"{name}: a secret in a shell line: {step}"
            assert "pip install bake-ci" not in str(step.get("run", "")), f"{name}: bake-ci is on no index yet"
    assert building, f"{name}: no job builds"


def test_github_build_matrix_comes_from_the_action_and_tests_run_in_the_image() -> None:
    name = "github-build.yml"
    jobs = github_jobs(name)
    matrix_jobs = {i: j for i, j in jobs.items() if isinstance(j.get("strategy", {}).get("matrix"), str)}
    assert matrix_jobs
    for job_id, job in matrix_jobs.items():
        assert job["strategy"].get("fail-fast") is False
        expression = r"\$\{\{\s*fromJSON\(needs\.([\w-]+)\.outputs\.([\w-]+)\)\s*\}\}"
        match = re.fullmatch(expression, job["strategy"]["matrix"])
        assert match, job["strategy"]["matrix"]
        source = jobs[match[1]]
        step_id = re.fullmatch(r"\$\{\{\s*steps\.([\w-]+)\.outputs\.matrix\s*\}\}", source["outputs"][match[2]])
        assert step_id, source["outputs"]
        (step,) = [s for s in source["steps"] if s.get("id") == step_id[1]]
        assert action_steps(step)
        assert step["with"]["command"] == "matrix"
        steps = job["steps"]
        (build,) = [i for i, s in enumerate(steps) if action_steps(s)]
        assert steps[build]["with"]["targets"] == "${{ matrix.target }}"
        assert "'load'" in steps[build]["with"]["output"]
        assert "fork" in steps[build]["with"]["output"]
        runs = [c for s in steps[build + 1 :] for c in step_commands(name, s) if c.args.command == "run"]
        assert runs, f"{name}: job {job_id} never runs the tests in the image"
        assert runs[0].args.target == "ci-py312"
        assert runs[0].args.run_command


def test_github_build_builds_each_commit_once() -> None:
    name = "github-build.yml"
    document = load(name)
    assert {"push", "pull_request"} <= set(triggers(document))
    first = github_jobs(name)["matrix"]
    condition = first["if"].replace(" ", "")
    # pull requests from the same repository are built by the push of their branch
    assert "github.event_name=='push'" in condition
    assert "github.event.pull_request.head.repo.full_name!=github.repository" in condition


def test_github_nightly_warms() -> None:
    name = "github-nightly.yml"
    on = triggers(load(name))
    assert "workflow_dispatch" in on
    assert [len(entry["cron"].split()) for entry in on["schedule"]] == [5]
    (job,) = github_jobs(name).values()
    assert [s["with"]["command"] for s in job["steps"] if action_steps(s)] == ["warm"]


def test_github_nightly_runs_gc_apply_after_warm() -> None:
    name = "github-nightly.yml"
    (job,) = github_jobs(name).values()
    steps = job["steps"]
    warm = [i for i, s in enumerate(steps) if action_steps(s) and s["with"]["command"] == "warm"]
    gcs = [i for i, s in enumerate(steps) for c in step_commands(name, s) if c.args.command == "gc"]
    assert warm, f"{name}: no warm"
    assert gcs, f"{name}: no gc"
    assert all(c.args.apply for s in steps for c in step_commands(name, s) if c.args.command == "gc")
    assert gcs[0] > warm[0], f"{name}: gc must follow warm"
    assert steps[gcs[0]]["if"] == "${{ !cancelled() }}", "gc runs even when warm failed"


def test_gitlab_nightly_runs_gc_apply_after_warm() -> None:
    name = "gitlab-ci.yml"
    found = commands(name)
    warm = [i for i, c in enumerate(found) if c.args.command == "warm"]
    gcs = [i for i, c in enumerate(found) if c.args.command == "gc"]
    assert warm, f"{name}: no warm"
    assert gcs, f"{name}: no gc"
    assert all(found[i].args.apply for i in gcs), [found[i].line for i in gcs]
    assert found[gcs[0]].job == found[warm[0]].job, f"{name}: gc and warm in different jobs"
    assert gcs[0] > warm[0], f"{name}: gc must follow warm"


def test_gitlab_generates_its_matrix_and_warms() -> None:
    name = "gitlab-ci.yml"
    document = load(name)
    assert document["variables"]["BAKE_CI_REGISTRY"] == "$CI_REGISTRY_IMAGE"
    jobs = gitlab_jobs(name)
    matrix_job = jobs["matrix"]
    assert [c.args.command for c in commands(name) if c.job == "matrix"][:1] == ["matrix"]
    assert "bake-ci-jobs.yml" in matrix_job["artifacts"]["paths"]
    trigger = jobs["build"]["trigger"]
    assert trigger["include"] == [{"artifact": "bake-ci-jobs.yml", "job": "matrix"}]
    assert trigger["strategy"] == "depend"
    child = [c for c in commands(name) if c.job == "matrix" and c.args.command in ("build", "run")]
    assert [c.args.command for c in child] == ["build", "run"], "the child jobs build, then test in the image"
    assert child[0].args.output == "push"
    assert child[0].args.report
    (warm,) = [c.job for c in commands(name) if c.args.command == "warm"]
    conditions = [rule["if"] for rule in jobs[warm]["rules"]]
    assert all('$CI_PIPELINE_SOURCE == "schedule"' in c for c in conditions), conditions
    assert jobs[warm]["artifacts"]["when"] == "always"


def test_gitlab_set_up_logs_in_through_stdin() -> None:
    name = "gitlab-ci.yml"
    text = (TEMPLATES / name).read_text(encoding="utf-8")
    logins = [line for line in text.splitlines() if "docker login" in line]
    assert logins
    for line in logins:
        assert "--password-stdin" in line, line
        assert not re.search(r"\s(-p|--password)[\s=]", line), line


def test_github_platforms_builds_each_platform_natively_then_merges() -> None:
    name = "github-platforms.yml"
    document = load(name)
    assert {"push", "pull_request"} <= set(triggers(document))
    jobs = github_jobs(name)
    # the matrix job: one entry per (target, platform), from the action, each commit once
    matrix_steps = [s for s in jobs["matrix"]["steps"] if action_steps(s)]
    assert [(s["with"]["command"], s["with"].get("per")) for s in matrix_steps] == [("matrix", "target-platform")]
    condition = jobs["matrix"]["if"].replace(" ", "")
    assert "github.event_name=='push'" in condition
    assert "github.event.pull_request.head.repo.full_name!=github.repository" in condition
    image = jobs["image"]
    assert image["needs"] == "matrix"
    assert image["strategy"]["matrix"] == "${{ fromJSON(needs.matrix.outputs.matrix) }}"
    assert image["strategy"]["fail-fast"] is False
    assert "'linux/arm64' && 'ubuntu-24.04-arm'" in image["runs-on"]
    steps = image["steps"]
    (build,) = [i for i, s in enumerate(steps) if action_steps(s)]
    with_ = steps[build]["with"]
    assert with_.get("command", "build") == "build"
    assert with_["targets"] == "${{ matrix.target }}"
    assert with_["platform"] == "${{ matrix.platform }}"
    assert "'load'" in with_["output"]
    assert "'push'" in with_["output"]
    assert "fork" in with_["output"]
    runs = [c for s in steps[build + 1 :] for c in step_commands(name, s) if c.args.command == "run"]
    assert runs, f"{name}: the image jobs never run the tests in the image"
    assert runs[0].args.target == "ci-py312"
    assert runs[0].args.platform == "x"  # ${{ matrix.platform }}
    assert runs[0].args.run_command
    merge = jobs["merge"]
    assert merge["needs"] == "image"
    assert [s["with"]["command"] for s in merge["steps"] if action_steps(s)] == ["merge"]
    assert "fork" in merge["if"]


def test_gitlab_platforms_builds_each_platform_on_its_runner_then_merges() -> None:
    name = "gitlab-platforms.yml"
    jobs = gitlab_jobs(name)
    entries = jobs["build"]["parallel"]["matrix"]
    assert {e["PLATFORM"]: e["RUNNER"] for e in entries} == {
        "linux/amd64": "saas-linux-small-amd64",
        "linux/arm64": "saas-linux-small-arm64",
    }
    assert jobs["build"]["tags"] == ["$RUNNER"]
    assert [c.args.command for c in commands(name) if c.job == "build"] == ["build", "run"], "build, then test in it"
    assert [c.args.command for c in commands(name) if c.job == "merge"] == ["merge"]
    assert jobs["merge"]["needs"] == ["build"]
    assert load(name)["stages"] == ["build", "merge"]
