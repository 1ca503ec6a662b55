"""The CI templates in ci/templates: valid YAML whose every ``bake-ci`` command the real parser accepts."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from bake.cli import _parser

TEMPLATES = Path(__file__).resolve().parents[2] / "ci" / "templates"
GITHUB = ["github-build.yml", "github-nightly.yml"]
GITLAB = ["gitlab-ci.yml"]
GITLAB_SCRIPT_KEYS = ("before_script", "script", "after_script")

#: What the expressions of the CI systems stand for when a command line is parsed.
SUBSTITUTIONS = [
    (re.compile(r"\$\{\{\s*matrix\.target\s*\}\}"), "ci-py312"),
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
            return _parser().parse_args(args[1:])
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
    assert found, f"{name}: no bake-ci command found, the test would pass vacuously"
    assert any(builds(c) for c in found), f"{name}: builds nothing"


@pytest.mark.parametrize("name", GITHUB + GITLAB)
def test_starts_with_a_comment(name: str) -> None:
    assert (TEMPLATES / name).read_text(encoding="utf-8").startswith("# bake-ci: ")


@pytest.mark.parametrize("name", GITHUB)
def test_github_building_jobs_report_and_upload_always(name: str) -> None:
    building = 0
    for job_id, job in github_jobs(name).items():
        steps = job.get("steps", [])
        reports = {str(c.args.report) for step in steps for c in step_commands(name, step) if builds(c)}
        if not any(builds(c) for step in steps for c in step_commands(name, step)):
            continue
        building += 1
        missing = [c.line for step in steps for c in step_commands(name, step) if builds(c) and not c.args.report]
        assert not missing, f"{name}: job {job_id} builds without --report: {missing}"
        uploads = [s for s in steps if uses(s, "actions/upload-artifact")]
        assert uploads, f"{name}: job {job_id} does not upload its report"
        for upload in uploads:
            assert str(upload.get("if", "")).replace(" ", "") in ("always()", "${{always()}}"), upload
        uploaded = {str(p) for u in uploads for p in lines(u.get("with", {}).get("path"))}
        assert reports <= uploaded, f"{name}: job {job_id} writes {reports} but uploads {uploaded}"
    assert building, f"{name}: no job builds"


@pytest.mark.parametrize("name", GITHUB)
def test_github_login_and_builder_come_before_the_build(name: str) -> None:
    document = load(name)
    assert str(document["env"]["BAKE_CI_REGISTRY"]).startswith("ghcr.io/${{ github.repository_owner }}")
    assert document["permissions"] == {"contents": "read", "packages": "write"}
    for job_id, job in github_jobs(name).items():
        steps = job.get("steps", [])
        first_build = next((i for i, s in enumerate(steps) if any(builds(c) for c in step_commands(name, s))), None)
        if first_build is None:
            continue
        logins = [i for i, s in enumerate(steps) if uses(s, "docker/login-action")]
        assert logins, f"{name}: job {job_id} never logs in"
        assert logins[0] < first_build, f"{name}: job {job_id} builds before logging in"
        assert steps[logins[0]]["with"]["registry"] == "ghcr.io"
        assert steps[logins[0]]["with"]["password"] == "${{ secrets.GITHUB_TOKEN }}"
        setups = [i for i, s in enumerate(steps) if uses(s, "docker/setup-buildx-action")]
        assert setups, f"{name}: job {job_id} builds without a buildx builder"
        assert setups[0] < first_build, f"{name}: job {job_id} sets up its builder after building"
        assert steps[setups[0]]["with"]["driver"] == "docker-container"
    for job in github_jobs(name).values():
        for step in job.get("steps", []):
            assert "secrets." not in str(step.get("run", "")), f"{name}: a secret in a shell line: {step}"


def test_github_build_matrix_comes_from_bake_ci_matrix() -> None:
    name = "github-build.yml"
    assert {"push", "pull_request"} <= set(triggers(load(name)))
    jobs = github_jobs(name)
    matrix_jobs = {
        job_id: job for job_id, job in jobs.items() if isinstance(job.get("strategy", {}).get("matrix"), str)
    }
    assert matrix_jobs, f"{name}: no job takes its matrix from an expression"
    for job_id, job in matrix_jobs.items():
        strategy = job["strategy"]
        assert strategy.get("fail-fast") is False, f"{name}: job {job_id} must not fail fast"
        match = re.fullmatch(r"\$\{\{\s*fromJSON\(needs\.([\w-]+)\.outputs\.([\w-]+)\)\s*\}\}", strategy["matrix"])
        assert match, f"{name}: job {job_id}: matrix {strategy['matrix']!r}"
        source_id, output = match.groups()
        needs = job["needs"] if isinstance(job["needs"], list) else [job["needs"]]
        assert source_id in needs
        source = jobs[source_id]
        step_output = re.fullmatch(r"\$\{\{\s*steps\.([\w-]+)\.outputs\.([\w-]+)\s*\}\}", source["outputs"][output])
        assert step_output, f"{name}: job {source_id}: output {output} does not come from a step"
        step_id, key = step_output.groups()
        (step,) = [s for s in source["steps"] if s.get("id") == step_id]
        assert [c.args.command for c in step_commands(name, step)] == ["matrix"], step
        assert f"{key}=" in step["run"], step
        assert "$GITHUB_OUTPUT" in step["run"], step
        targets = {tuple(c.args.targets) for s in job["steps"] for c in step_commands(name, s) if builds(c)}
        assert targets == {("ci-py312",)}, f"{name}: job {job_id} does not build ${{{{ matrix.target }}}}"


def test_github_forks_build_without_registry_writes() -> None:
    name = "github-build.yml"
    fork = "github.event.pull_request.head.repo.fork"
    outputs: dict[str, str] = {}
    for job in github_jobs(name).values():
        for step in job.get("steps", []):
            for command in step_commands(name, step):
                if command.args.command == "build":
                    condition = str(step.get("if", ""))
                    assert fork in condition, f"{name}: {command.line!r} runs for forks and others alike"
                    outputs[command.args.output] = condition
    assert set(outputs) == {"push", "load"}, outputs
    assert "!" not in outputs["load"], outputs
    assert "!" in outputs["push"], outputs


def test_github_nightly_warms() -> None:
    name = "github-nightly.yml"
    on = triggers(load(name))
    assert "workflow_dispatch" in on
    assert [len(entry["cron"].split()) for entry in on["schedule"]] == [5]
    assert "warm" in {c.args.command for c in commands(name)}


@pytest.mark.parametrize("name", ["github-nightly.yml", "gitlab-ci.yml"])
def test_nightly_runs_gc_apply_after_warm(name: str) -> None:
    found = commands(name)
    warm = [i for i, c in enumerate(found) if c.args.command == "warm"]
    gcs = [i for i, c in enumerate(found) if c.args.command == "gc"]
    assert warm, f"{name}: no warm"
    assert gcs, f"{name}: no gc"
    assert all(found[i].args.apply for i in gcs), [found[i].line for i in gcs]
    assert found[gcs[0]].job == found[warm[0]].job, f"{name}: gc and warm in different jobs"
    assert gcs[0] > warm[0], f"{name}: gc must follow warm"


def test_gitlab_build_and_warm_jobs() -> None:
    name = "gitlab-ci.yml"
    document = load(name)
    assert document["variables"]["BAKE_CI_REGISTRY"] == "$CI_REGISTRY_IMAGE"
    assert "DOCKER_TLS_CERTDIR" in document["variables"]
    jobs = gitlab_jobs(name)
    by_command: dict[str, list[str]] = {}
    for command in commands(name):
        if builds(command):
            by_command.setdefault(command.args.command, []).append(command.job)
            artifacts = jobs[command.job].get("artifacts", {})
            assert artifacts.get("when") == "always", f"{name}: job {command.job}"
            assert str(command.args.report) in artifacts.get("paths", []), f"{name}: job {command.job}"
    assert set(by_command) == {"build", "warm"}, by_command

    (build,) = by_command["build"]
    (entry,) = jobs[build]["parallel"]["matrix"]
    assert entry["TARGET"], f"{name}: empty TARGET list"
    for target in entry["TARGET"]:
        assert re.fullmatch(r"[a-z0-9._-]+-py[0-9]{2,3}", target), target

    (warm,) = by_command["warm"]
    conditions = [rule["if"] for rule in jobs[warm]["rules"]]
    assert conditions, f"{name}: warm runs in every pipeline"
    assert all('$CI_PIPELINE_SOURCE == "schedule"' in c for c in conditions), conditions


def test_gitlab_set_up_logs_in_through_stdin() -> None:
    name = "gitlab-ci.yml"
    logins = 0
    for job_id, job in gitlab_jobs(name).items():
        script = [line for key in GITLAB_SCRIPT_KEYS for line in lines(job.get(key))]
        for line in script:
            if "CI_REGISTRY_PASSWORD" in line:
                assert "--password-stdin" in line, line
                assert not re.search(r"\s(-p|--password)[\s=]", line), line
        if any(line.startswith("docker login") or "| docker login" in line for line in script):
            logins += 1
            assert any("buildx create --use --driver docker-container" in line for line in script), job_id
            assert any(service.startswith("docker:") and "dind" in service for service in job["services"])
    assert logins, f"{name}: nothing logs in to the registry"
