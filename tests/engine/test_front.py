"""The front door on the real engine: bake-ci shell/run and their image choice, the
GitHub Action and the CI templates run as a runner would, the reproduction line."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import REGISTRY, Project, bake_ci, docker, make_project
from .runner import Runner, flatten, gitlab_variables
from .test_platforms import FIXTURE as PLATFORMS_FIXTURE
from .test_platforms import IMAGE as PLATFORMS_IMAGE
from .test_platforms import platforms_of

pytestmark = pytest.mark.engine

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "ci" / "templates"
TEST_COMMAND = "python -m unittest -v"
#: A line a user would read as an error (the JSON logs' ``"error": null`` fields are not).
ERRORISH = re.compile(r"\berror\b|\bfailed\b|\bfatal\b", re.IGNORECASE)


def choice_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("bake-ci: ci-py311: ")]
    assert len(lines) == 1, err
    return lines[0]


def git(project: Project, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=project.path, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


def manifest_digest(repository: str, tag: str) -> str:
    request = urllib.request.Request(
        f"http://{REGISTRY}/v2/{repository}/manifests/{tag}",
        method="HEAD",
        headers={"Accept": "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
                 "application/vnd.docker.distribution.manifest.v2+json, "
                 "application/vnd.docker.distribution.manifest.list.v2+json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(response.headers["Docker-Content-Digest"])


def errorish(text: str) -> list[str]:
    found = []
    for line in text.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("level") in ("error", "critical", "warning") or ERRORISH.search(str(event.get("event"))):
                found.append(line)
            if ERRORISH.search(str(event.get("line", ""))):
                found.append(line)
        elif ERRORISH.search(line):
            found.append(line)
    return found


def github_env(project: Project, tmp_path: Path) -> dict[str, str]:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"repository": {"default_branch": "main"}}))
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("BAKE_CI_", "GITHUB_", "CI"))}
    return {
        **keep, **project.env, "CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "push",
        "GITHUB_REF": "refs/heads/main", "GITHUB_REF_NAME": "main", "GITHUB_REF_TYPE": "branch",
        "GITHUB_SHA": project.sha, "GITHUB_REPOSITORY": "acme/app", "GITHUB_REPOSITORY_OWNER": "acme",
        "GITHUB_EVENT_PATH": str(event), "GITHUB_JOB": "image", "GITHUB_WORKSPACE": str(project.path),
    }  # fmt: skip


# -- shell and run ----------------------------------------------------------------------------


def test_run_picks_the_image_by_what_changed_and_exits_with_the_command(project: Project, tmp_path: Path) -> None:
    env = {**project.env, "CI": "true"}
    pushed = bake_ci("build", "--push", cwd=project.path, env={**env, "GITHUB_SHA": project.sha})
    assert pushed.code == 0, pushed.err
    docker("image", "rm", "-f", f"{project.registry}/fixture/app-ci:ci-py3.11-main")  # a laptop without it

    # nothing changed since CI pushed: pulled, not built
    first = bake_ci("run", "ci-py311", "--", "python", "-c", "print('one')", cwd=project.path, env=project.env)
    assert first.code == 0, first.err
    assert first.out == "one\n"
    assert ": pulled " in choice_line(first.err)
    assert "locally first" not in first.err
    again = bake_ci("run", "ci-py311", "--", "python", "-c", "print('two')", cwd=project.path, env=project.env)
    assert ": local " in choice_line(again.err)

    # the container's exit code is bake-ci's
    seven = bake_ci("run", "ci-py311", "--", "sh", "-c", "exit 7", cwd=project.path, env=project.env)
    assert seven.code == 7

    # a source-only change: no build, the container sees the file
    (project.path / "app.py").write_text('def greeting(name):\n    return "changed " + name\n')
    source = bake_ci("run", "ci-py311", "--", "cat", "app.py", cwd=project.path, env=project.env)
    assert source.code == 0, source.err
    assert "changed" in source.out
    assert ": mounted over " in choice_line(source.err)
    assert "locally first" not in source.err

    # a requirements change: built first, deps step included
    (project.path / "requirements.txt").write_text("six==1.17.0\n")
    deps = bake_ci(
        "run", "ci-py311", "--", "python", "-c", "import six; print(six.__version__)", cwd=project.path, env=project.env
    )
    assert deps.code == 0, deps.err
    assert deps.out == "1.17.0\n"
    assert ": built " in choice_line(deps.err)
    assert "pip install" in deps.err  # the deps step ran (the build's output goes to stderr)


def test_files_made_in_the_mount_belong_to_the_checkouts_owner_under_root(project: Project) -> None:
    if os.getuid() != 0:
        pytest.skip("as root (sudo), bake-ci gives the files to the checkout's owner; here it is not root")
    for path in [project.path, *project.path.rglob("*")]:
        os.lchown(path, 4321, 4321)
    made = bake_ci("run", "ci-py311", "--", "sh", "-c", "touch made-here && id -u && echo $HOME",
                   cwd=project.path, env=project.env)  # fmt: skip
    assert made.code == 0, made.err
    assert made.out.split() == ["4321", "/tmp"]
    stat = (project.path / "made-here").stat()
    assert (stat.st_uid, stat.st_gid) == (4321, 4321)


def test_commit_runs_the_image_ci_pushed_for_it_after_main_moved(project: Project) -> None:
    env = {**project.env, "CI": "true"}
    first = project.sha
    assert bake_ci("build", "--push", "ci-py311", cwd=project.path, env={**env, "GITHUB_SHA": first}).code == 0
    (project.path / "requirements.txt").write_text("six==1.17.0\n")
    git(project, "commit", "-qam", "newer six")
    second = git(project, "rev-parse", "HEAD")
    assert bake_ci("build", "--push", "ci-py311", cwd=project.path, env={**env, "GITHUB_SHA": second}).code == 0

    script = "import six; print(six.__version__)"
    old = bake_ci("run", "ci-py311", "--commit", first, "--", "python", "-c", script, cwd=project.path, env=project.env)
    assert old.code == 0, old.err
    assert old.out == "1.16.0\n"
    assert f"ci-py3.11-{first[:7]}" in choice_line(old.err)
    new = bake_ci("run", "ci-py311", "--commit", second[:9], "--", "python", "-c", script,
                  cwd=project.path, env=project.env)  # fmt: skip
    assert new.out == "1.17.0\n"
    missing = bake_ci("run", "ci-py311", "--commit", "0" * 40, "--", "true", cwd=project.path, env=project.env)
    assert missing.code == 1
    assert "no image" in missing.err


# -- the GitHub Action --------------------------------------------------------------------------


def test_the_action_outputs_each_targets_image_and_digest(project: Project, tmp_path: Path) -> None:
    runner = Runner(project.path, tmp_path / "runner", github_env(project, tmp_path))
    code, outputs = runner.action(ROOT, {"targets": "ci", "output": "push", "test-command": TEST_COMMAND})
    assert code == 0, "\n".join(runner.logs)
    report = json.loads(outputs["report"])
    assert [t["target"] for t in report["targets"]] == ["ci-py311", "ci-py313"]
    images, digests = json.loads(outputs["images"]), json.loads(outputs["digests"])
    repository = f"{project.namespace}/fixture/app-ci"
    for target, python in (("ci-py311", "3.11"), ("ci-py313", "3.13")):
        assert images[target] == f"{project.registry}/fixture/app-ci:ci-py{python}-main"
        assert digests[target] == manifest_digest(repository, f"ci-py{python}-main")
    assert outputs["result"] == "success"
    (upload,) = runner.used
    assert upload["uses"].startswith("actions/upload-artifact@")
    uploaded = Path(upload["with"]["path"])
    assert json.loads((uploaded / "report.json").read_text()) == report
    assert sorted(p.name for p in (uploaded / "logs").iterdir()) == ["ci-py311.log", "ci-py313.log"]

    # the step summary and the log end with the reproduction line, and it runs as printed
    summary = runner.summary.read_text()
    line = f"bake-ci run ci-py311 --commit {project.sha[:7]} -- {TEST_COMMAND}"
    assert line in summary
    assert f"reproduce ci-py311 locally: {line}" in runner.logs[-1]
    assert not errorish(runner.logs[-1]), errorish(runner.logs[-1])
    local = {k: v for k, v in os.environ.items() if not k.startswith(("BAKE_CI_", "GITHUB_", "CI"))}
    proc = subprocess.run(
        [sys.executable, "-m", "bake", *shlex.split(line)[1:]], cwd=project.path, env={**local, **project.env},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "OK" in proc.stderr.splitlines()[-1]
    assert f"ci-py3.11-{project.sha[:7]}" in choice_line(proc.stderr)


def test_the_action_merges_the_images_of_the_platform_jobs(tmp_path: Path) -> None:
    """command: merge after one build --platform per platform (what github-platforms.yml's
    jobs do): the index of both, in the report and the outputs like a build's."""
    project = make_project(tmp_path, PLATFORMS_FIXTURE)
    for platform in ("linux/amd64", "linux/arm64"):  # arm64 under emulation: a tiny fixture
        built = bake_ci("build", "ci-py311", "--platform", platform, "--push", cwd=project.path, env=project.env)
        assert built.code == 0, built.err[-4000:]
    runner = Runner(project.path, tmp_path / "runner", github_env(project, tmp_path))
    code, outputs = runner.action(ROOT, {"command": "merge", "targets": "ci-py311"})
    assert code == 0, "\n".join(runner.logs)
    assert outputs["result"] == "success"
    (row,) = [t for t in json.loads(outputs["report"])["targets"] if t["target"] == "ci-py311"]
    assert row["status"] == "merged", row
    repository = f"{project.namespace}/{PLATFORMS_IMAGE}"
    assert json.loads(outputs["images"])["ci-py311"] == f"{project.registry}/{PLATFORMS_IMAGE}:ci-py3.11-main"
    assert json.loads(outputs["digests"])["ci-py311"] == manifest_digest(repository, "ci-py3.11-main")
    assert sorted(platforms_of(repository, "ci-py3.11-main")) == ["linux/amd64", "linux/arm64"]
    (upload,) = runner.used
    assert json.loads((Path(upload["with"]["path"]) / "report.json").read_text())["command"] == "merge"

    # an input of another command is refused before anything runs
    code, _ = runner.action(ROOT, {"command": "merge", "platform": "linux/arm64"})
    assert code == 2
    assert "platform is an input of command build, not of merge" in runner.logs[-1]


# -- the templates ------------------------------------------------------------------------------


def template_step_env(job: dict[str, Any], workflow: dict[str, Any]) -> dict[str, str]:
    return {**{k: str(v) for k, v in (workflow.get("env") or {}).items()}, **(job.get("env") or {})}


def test_github_templates_run_as_a_runner_would(project: Project, tmp_path: Path) -> None:
    workflow = yaml.safe_load((TEMPLATES / "github-build.yml").read_text())
    env = github_env(project, tmp_path)
    env.update(
        {"BAKE_CI_REGISTRY": project.registry.upper().replace("LOCALHOST", "localhost"), "TEST_COMMAND": TEST_COMMAND}
    )
    expressions = {
        "github.repository_owner": "acme",
        "github.event.pull_request.head.repo.fork && 'load' || 'push'": "push",
        "env.TEST_COMMAND": TEST_COMMAND,
    }
    runner = Runner(project.path, tmp_path / "runner", env, expressions)

    def job(name: str) -> dict[str, str]:
        """Run a job's steps in order; the outputs of its bake-ci action."""
        found: dict[str, str] = {}
        for step in workflow["jobs"][name]["steps"]:
            if str(step.get("uses", "")).endswith("/bake-ci@v0.1.0"):
                inputs = {k: runner.value(str(v), {}) for k, v in step["with"].items()}
                code, found = runner.action(ROOT, inputs)
                assert code == 0, "\n".join(runner.logs)
            elif "run" in step:
                code, _, said = runner.bash(runner.value(step["run"], {}), {})
                assert code == 0, said
            else:
                runner.used.append(step)
        return found

    matrix = json.loads(job("matrix")["matrix"])
    assert [e["target"] for e in matrix["include"]] == ["deps-py311", "deps-py313", "ci-py311", "ci-py313"]
    runner.expressions["matrix.target"] = "ci-py311"  # one image job, as its matrix entry
    assert set(json.loads(job("image")["images"])) == {"ci-py311"}
    tested = runner.logs[-1]
    assert "Ran 2 tests" in tested
    assert tested.rstrip().endswith("OK"), tested
    assert ": local " in tested or ": pulled " in tested  # the image just pushed, not a build
    build_log = runner.logs[-2]
    assert f"reproduce ci-py311 locally: bake-ci run ci-py311 --commit {project.sha[:7]} -- {TEST_COMMAND}" in build_log
    assert not errorish(build_log), errorish(build_log)


def test_github_platforms_template_runs_as_runners_would(tmp_path: Path) -> None:
    """github-platforms.yml's jobs in order: the matrix, one image job per platform of
    ci-py311 (arm64 under emulation here, natively on GitHub) with the tests in its image,
    then merge."""
    project = make_project(tmp_path, PLATFORMS_FIXTURE)
    workflow = yaml.safe_load((TEMPLATES / "github-platforms.yml").read_text())
    env = {**github_env(project, tmp_path), "BAKE_CI_REGISTRY": project.registry, "TEST_COMMAND": "uname -m"}
    expressions = {
        "github.repository_owner": "acme",
        "github.event.pull_request.head.repo.fork && 'load' || 'push'": "push",
        "env.TEST_COMMAND": "uname -m",
    }

    def job(name: str, matrix: dict[str, str], want: int = 0) -> tuple[dict[str, str], Runner]:
        temp = tmp_path / f"runner-{name}-{matrix.get('suffix', '')}"
        scope = {**expressions, **{f"matrix.{k}": v for k, v in matrix.items()}}
        runner = Runner(project.path, temp, {**env, "GITHUB_JOB": name}, scope)
        found: dict[str, str] = {}
        for step in workflow["jobs"][name]["steps"]:
            if str(step.get("uses", "")).endswith("/bake-ci@v0.1.0"):
                code, found = runner.action(ROOT, {k: runner.value(str(v), {}) for k, v in step["with"].items()})
                assert code == want, "\n".join(runner.logs)
            elif "run" in step:
                code, _, said = runner.bash(runner.value(step["run"], {}), {})
                assert code == 0, said
        return found, runner

    entries = json.loads(job("matrix", {})[0]["matrix"])["include"]
    assert {(e["target"], e["platform"]) for e in entries} == {
        (t, p) for t in ("deps-py311", "deps-py313", "ci-py311", "ci-py313") for p in ("linux/amd64", "linux/arm64")
    }
    for entry in [e for e in entries if e["target"] == "ci-py311"]:
        outputs, runner = job("image", entry)
        assert set(json.loads(outputs["images"])) == {"ci-py311__" + entry["suffix"]}
        machines = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}
        printed = runner.logs[-1].splitlines()  # the tests' output, in this platform's image
        assert [m for m in machines.values() if m in printed] == [machines[entry["platform"]]], printed
        (upload,) = runner.used
        assert upload["with"]["name"] == f"bake-ci-image-ci-py311-linux-{entry['suffix'][6:]}"
    merged, merging = job("merge", {}, want=1)  # only ci-py311's platform jobs ran: the others fail, naming them
    assert [u["with"]["name"] for u in merging.used] == ["bake-ci-merge-all"]  # a failed run uploads its report too
    statuses = {t["target"]: (t["status"], t["error"]) for t in json.loads(merged["report"])["targets"]}
    assert statuses.pop("ci-py311") == ("merged", None)
    for target, (status, error) in statuses.items():
        assert status == "failed", (target, error)
        assert f"bake-ci build {target} --platform linux/amd64" in error, (target, error)
    repository = f"{project.namespace}/{PLATFORMS_IMAGE}"
    assert json.loads(merged["digests"])["ci-py311"] == manifest_digest(repository, "ci-py3.11-main")
    assert sorted(platforms_of(repository, "ci-py3.11-main")) == ["linux/amd64", "linux/arm64"]


def test_gitlab_template_generates_its_jobs_and_they_run(project: Project, tmp_path: Path) -> None:
    document = yaml.safe_load((TEMPLATES / "gitlab-ci.yml").read_text())
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("BAKE_CI_", "GITHUB_", "CI"))}
    keep["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{keep['PATH']}"  # installed: bake-ci on PATH
    base = {
        **keep, "BAKE_CI_STATE_DIR": project.env["BAKE_CI_STATE_DIR"], "CI": "true", "GITLAB_CI": "true",
        "CI_REGISTRY_IMAGE": project.registry, "CI_COMMIT_SHA": project.sha, "CI_COMMIT_REF_NAME": "main",
        "CI_COMMIT_BRANCH": "main", "CI_DEFAULT_BRANCH": "main", "CI_PIPELINE_SOURCE": "push",
    }  # fmt: skip
    env = gitlab_variables(document, base)
    assert env["BAKE_CI_REGISTRY"] == project.registry
    env["TEST_COMMAND"] = TEST_COMMAND

    def script(lines: list[str], extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-e", "-c", "\n".join(lines)], cwd=project.path, env={**env, **extra},
                              capture_output=True, text=True, timeout=1200)  # fmt: skip

    install = flatten(document[".install"])
    matrix_script = [line for line in flatten(document["matrix"]["script"]) if line not in install]
    made = script(matrix_script, {})
    assert made.returncode == 0, made.stderr
    child = yaml.safe_load((project.path / "bake-ci-jobs.yml").read_text())
    (job,) = child.values()
    assert job["parallel"]["matrix"] == [{"TARGET": ["deps-py311", "deps-py313", "ci-py311", "ci-py313"]}]
    ran = script(flatten(job["script"]), {"TARGET": "ci-py311", "CI_PIPELINE_SOURCE": "parent_pipeline"})
    assert ran.returncode == 0, ran.stderr
    assert "Ran 2 tests" in ran.stderr
    assert json.loads((project.path / "bake-ci-report.json").read_text())["targets"][0]["status"] == "built"
    assert f"bake-ci run ci-py311 --commit {project.sha[:7]} -- {TEST_COMMAND}" in ran.stderr
    assert not errorish(ran.stderr), errorish(ran.stderr)
