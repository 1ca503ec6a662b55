"""The command line, typed: what every step of a command may ask of it.

Kept apart from the steps so that ``bake-ci --version`` and argument errors cost no
more than parsing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

#: push: images and cache to the registry; load: images into the local engine;
#: cache-only: registry cache without any image (pull requests from forks, pre-warming).
Output = Literal["push", "load", "cache-only"]
Progress = Literal["auto", "plain", "tty", "quiet"]


@dataclass(frozen=True)
class Args:
    """The parsed command line (options a command lacks keep their defaults)."""

    command: str
    config: Path | None = None
    log_format: Literal["console", "json"] = "console"
    verbose: bool = False
    targets: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()
    pythons: tuple[str, ...] = ()
    branch: str | None = None
    output: Output | None = None
    no_reuse: bool = False
    cache_to: bool = False
    jobs: int | None = None
    retries: int = 8  # bake.retry.RETRIES
    builder: str | None = None
    metadata_file: Path | None = None
    report: Path | None = None
    progress: Progress = "auto"
    keep_going: bool = False
    no_cache: bool = False
    pull: bool = False
    json: bool = False
    state_dir: Path | None = None
    # shell and run
    run_command: tuple[str, ...] = ()
    mount: bool = True
    env: tuple[str, ...] = ()
    #: one platform (``--platform``): of a multi-platform project's build, status, pull; of shell and run
    platform: str | None = None
    commit: str | None = None
    pr: int | None = None
    #: the CI job's command, for the reproduction line (build, warm)
    test_command: str | None = None
    #: what ``matrix`` lists one entry per: target, platform, or target-platform
    per: str = "target"
    # gc
    apply: bool = False
    grace: str | None = None
    branch_days: float | None = None
    pr_days: float | None = None
    commit_days: float | None = None
    keep_fingerprints: int | None = None
    branches_file: Path | None = None
    remote: str | None = None

    @property
    def warm(self) -> bool:
        return self.command == "warm"


def uses_fingerprints(command: str, output: Output, no_reuse: bool = False) -> bool:
    """Whether a run of ``command`` with ``output`` fingerprints its targets: the one rule.

    status and pull always (they compare by fingerprint); build and warm always: a push
    tags its images by fingerprint (``--no-reuse`` too: it only skips reusing, so that a
    later run can reuse what this one pushed), a ``--load`` build records it for status,
    and a run exporting registry cache skips an export whose cache is there already. plan
    when it prints a push, unless ``--no-reuse`` asks for the definition without the look-ups
    (then without the fingerprint label). merge always: it finds each platform's image by
    its fingerprint. Never matrix or doctor."""
    if command in ("status", "pull", "build", "warm", "merge"):
        return True
    return command == "plan" and output == "push" and not no_reuse
