"""GitHub's workflow commands: each stays one line and one command, whatever its text."""

from __future__ import annotations

from bake import workflow_commands


def test_workflow_commands_escape_their_text() -> None:
    assert workflow_commands.group("ci-py312: built") == "::group::ci-py312: built"
    assert workflow_commands.endgroup() == "::endgroup::"
    assert workflow_commands.error("RUN pip install\n100% failed", title="ci-py312 failed") == (
        "::error title=ci-py312 failed::RUN pip install%0A100%25 failed"
    )
    assert workflow_commands.warning("x", title="a:b,c") == "::warning title=a%3Ab%2Cc::x"
    assert workflow_commands.group("a\n::endgroup::") == "::group::a%0A::endgroup::"  # one line, whatever the title
    assert (workflow_commands.stop_commands("t0k"), workflow_commands.resume_commands("t0k")) == (
        "::stop-commands::t0k",
        "::t0k::",
    )
