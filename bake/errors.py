"""Every failure a user can cause or meet, each with its own exit code.

The CLI entry point catches :class:`BakeError` once and turns it into a one-paragraph
message and the exit code; nothing else prints tracebacks for these.
"""

from __future__ import annotations


class BakeError(Exception):
    """Base class: a message for the user and the process exit code."""

    exit_code = 1
    kind = "error"


class BuildFailed(BakeError):
    """A build ran and at least one target failed."""

    exit_code = 1
    kind = "build failed"


class NoImage(BakeError):
    """The image asked for is in neither the local engine nor the registry."""

    exit_code = 1
    kind = "no image"


class UsageError(BakeError):
    """Bad command-line usage (unknown target, conflicting flags)."""

    exit_code = 2
    kind = "usage error"


class ConfigError(UsageError):
    """The configuration file is missing, malformed or invalid."""

    kind = "config error"


class EnvironmentProblem(BakeError):
    """Docker, buildx, the engine or the builder cannot do what the build needs."""

    exit_code = 3
    kind = "environment problem"


class StateFolderError(EnvironmentProblem):
    """bake-ci's own state folder cannot be written: read-only, full, or not ours to write."""

    kind = "state folder problem"


class Interrupted(BakeError):
    """The user or the CI runner stopped the build (SIGINT/SIGTERM)."""

    exit_code = 130
    kind = "interrupted"


class StepOrderError(BakeError):
    """A step of a command read what an earlier step makes, and that step had not run:
    a mistake in bake-ci's command table (bake/workflow.py), not in the user's input."""

    exit_code = 70  # EX_SOFTWARE
    kind = "internal error"
