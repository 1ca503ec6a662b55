"""GitHub's workflow commands: log groups, annotations, and pausing command processing.

A line such as ``::group::TITLE`` in a GitHub Actions log is read by the runner, not
shown. Each function returns one such line, its text escaped so that it stays one line
and one command. Written here and nowhere else; :attr:`bake.ci.Context.github_actions`
says whether the run's output is read this way.
"""

from __future__ import annotations


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def group(title: str) -> str:
    """Start a collapsible group in the GitHub Actions log."""
    return f"::group::{_escape_data(title)}"


def endgroup() -> str:
    return "::endgroup::"


def error(message: str, title: str | None = None) -> str:
    """An error annotation (shown on the run's summary page)."""
    props = f" title={_escape_property(title)}" if title else ""
    return f"::error{props}::{_escape_data(message)}"


def warning(message: str, title: str | None = None) -> str:
    props = f" title={_escape_property(title)}" if title else ""
    return f"::warning{props}::{_escape_data(message)}"


def stop_commands(token: str) -> str:
    """Stop GitHub from acting on workflow commands until :func:`resume_commands` with the same token.

    Print it before a build log (a Dockerfile's ``RUN echo ::add-mask::...`` is otherwise
    obeyed); make the token unguessable, e.g. ``secrets.token_hex(16)``.
    """
    return f"::stop-commands::{token}"


def resume_commands(token: str) -> str:
    return f"::{token}::"
