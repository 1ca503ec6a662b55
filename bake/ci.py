"""The CI provider: the only reader of CI variables (branch, commit, event, step summary)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Context:
    ci: bool
    github_actions: bool
    branch: str | None
    sha: str | None
    step_summary: Path | None


def detect(environ: Mapping[str, str]) -> Context:
    branch = next(
        (environ[v] for v in ("GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME") if environ.get(v)), None
    )
    sha = next((environ[v] for v in ("GITHUB_SHA", "CI_COMMIT_SHA") if environ.get(v)), None)
    summary = environ.get("GITHUB_STEP_SUMMARY")
    return Context(
        ci=bool(environ.get("CI")),
        github_actions=environ.get("GITHUB_ACTIONS") == "true",
        branch=branch,
        sha=sha,
        step_summary=Path(summary) if summary else None,
    )


def group(title: str) -> str:
    return f"::group::{title}"


def endgroup() -> str:
    return "::endgroup::"
