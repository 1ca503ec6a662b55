"""A small stand-in for a CI runner: it runs the shell steps of a GitHub Action or workflow
job, and the script of a GitLab job, as the runner would (bash, the same environment
files), with ``${{ ... }}`` expressions given by the test. Steps that use other actions
(checkout, setup-buildx, login, upload-artifact) are recorded, not run: this machine's
checkout, builder and registry stand for them."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


class Unknown(Exception):
    """An expression the test did not give a value for."""


@dataclass
class Runner:
    """One job's runner: its environment, work folder and the files GitHub reads back."""

    workdir: Path
    temp: Path
    env: dict[str, str]
    expressions: dict[str, str] = field(default_factory=dict)
    used: list[dict[str, Any]] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.temp.mkdir(parents=True, exist_ok=True)
        self.summary = self.temp / "step-summary.md"
        self.summary.touch()
        self.github_env = self.temp / "github-env"
        self.github_path = self.temp / "github-path"
        self.github_env.touch()
        self.github_path.touch()

    def value(self, text: str, scope: Mapping[str, str]) -> str:
        def one(match: re.Match[str]) -> str:
            name = " ".join(match[1].split())
            for table in (scope, self.expressions):
                if name in table:
                    return table[name]
            raise Unknown(name)

        return EXPRESSION.sub(one, text)

    def bash(self, script: str, env: Mapping[str, str]) -> tuple[int, dict[str, str], str]:
        """Run one step's script as GitHub does (``bash --noprofile --norc -eo pipefail``)."""
        outputs = self.temp / f"output-{len(self.logs)}"
        outputs.write_text("")
        path = self.temp / f"step-{len(self.logs)}.sh"
        path.write_text(script)
        added = [p for p in self.github_path.read_text().splitlines() if p]
        full = {
            **self.env,
            **env,
            "GITHUB_OUTPUT": str(outputs),
            "GITHUB_STEP_SUMMARY": str(self.summary),
            "GITHUB_ENV": str(self.github_env),
            "GITHUB_PATH": str(self.github_path),
            "RUNNER_TEMP": str(self.temp),
        }
        full["PATH"] = os.pathsep.join([*reversed(added), full.get("PATH", os.environ["PATH"])])
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(path)],
            cwd=self.workdir,
            env=full,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        self.logs.append(proc.stdout + proc.stderr)
        for line in self.github_env.read_text().splitlines():
            if "=" in line:
                key, _, val = line.partition("=")
                self.env[key] = val
        return proc.returncode, read_outputs(outputs.read_text()), proc.stdout + proc.stderr

    def action(self, path: Path, inputs: Mapping[str, str]) -> tuple[int, dict[str, str]]:
        """Run a composite action's steps; its exit code and outputs."""
        action = yaml.safe_load((path / "action.yml").read_text())
        given = {f"inputs.{k}": str(v.get("default", "")) for k, v in action.get("inputs", {}).items()}
        given.update({f"inputs.{k}": v for k, v in inputs.items()})
        given["github.action_path"] = str(path)
        given.setdefault("github.action_repository", "OWNER/bake-ci")
        given["runner.temp"] = str(self.temp)
        code = 0
        for step in action["runs"]["steps"]:
            condition = str(step.get("if", ""))
            needed = re.findall(r"(steps\.[\w-]+\.outputs\.[\w-]+) != ''", condition)
            if any(not given.get(name) for name in needed):
                continue
            if "uses" in step:
                if code == 0 or condition.startswith("always()"):
                    self.used.append({"uses": step["uses"], "with": {
                        k: self.value(str(v), given) for k, v in (step.get("with") or {}).items()
                    }})  # fmt: skip
                continue
            if code != 0 and not condition.startswith("always()"):
                continue
            env = {k: self.value(str(v), given) for k, v in (step.get("env") or {}).items()}
            step_code, outputs, _ = self.bash(self.value(step["run"], given), env)
            for key, val in outputs.items():
                given[f"steps.{step.get('id')}.outputs.{key}"] = val
            code = code or step_code
        outputs = {}
        for name, spec in action.get("outputs", {}).items():
            try:
                outputs[name] = self.value(str(spec["value"]), given)
            except Unknown:
                outputs[name] = ""
        return code, outputs


def read_outputs(text: str) -> dict[str, str]:
    """A GITHUB_OUTPUT file: ``key=value`` lines and ``key<<DELIMITER`` blocks."""
    found: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, _, delimiter = line.partition("<<")
            body = []
            for inner in lines:
                if inner == delimiter:
                    break
                body.append(inner)
            found[key] = "\n".join(body)
        elif "=" in line:
            key, _, val = line.partition("=")
            found[key] = val
    return found


def gitlab_variables(document: Mapping[str, Any], base: Mapping[str, str]) -> dict[str, str]:
    """The pipeline's global variables, expanded as GitLab does (the Docker-in-Docker ones
    left out: this machine's engine stands for the docker:dind service)."""
    env = dict(base)
    for key, val in (document.get("variables") or {}).items():
        if key.startswith("DOCKER_"):
            continue
        env[key] = re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m[1], ""), str(val))
    return env


def flatten(script: Any) -> list[str]:
    if isinstance(script, str):
        return [script]
    return [line for item in script or [] for line in flatten(item)]
