"""Each step of a command reads what the steps before it made: out of order, it says which step."""

from __future__ import annotations

import pytest

from bake import workflow
from bake.cli import _args, _parser
from bake.errors import StepOrderError

from .conftest import MakeProject

TOML = """\
[tool.bake-ci]
image = "acme/app-ci"
python = ["3.12"]
"""


def run_of(*argv: str) -> workflow.Run:
    return workflow.Run.start(_args(_parser().parse_args(list(argv)), "console"), {})


@pytest.mark.parametrize(
    ("steps", "missing", "maker"),
    [
        ((workflow.select_targets,), "project", "load"),
        ((workflow.load, workflow.print_matrix), "targets", "select_targets"),
        ((workflow.load, workflow.select_targets, workflow.plan), "output", "destination"),
        (
            (workflow.load, workflow.select_targets, workflow.destination, workflow.check_images),
            "target_fingerprints",
            "fingerprint",
        ),
        ((workflow.load, workflow.select_targets, workflow.destination, workflow.print_plan), "plan", "plan"),
    ],
)
def test_a_step_run_without_the_step_it_needs_names_that_step(
    project: MakeProject, monkeypatch: pytest.MonkeyPatch, steps: tuple[workflow.Step, ...], missing: str, maker: str
) -> None:
    monkeypatch.chdir(project(TOML))
    run = run_of("plan", "--branch", "main")
    with pytest.raises(StepOrderError) as raised:
        workflow.execute(steps, run)
    message = str(raised.value)
    assert f"run.{missing} " in message
    assert f"before {maker}" in message
    assert raised.value.exit_code == 70


def test_every_command_runs_its_steps_in_an_order_that_gives_each_what_it_reads(
    project: MakeProject, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """plan and matrix start no engine: their whole table runs here, in order."""
    monkeypatch.chdir(project(TOML))
    workflow.execute(workflow.COMMANDS["plan"], run_of("plan", "--branch", "main"))
    workflow.execute(workflow.COMMANDS["matrix"], run_of("matrix"))
    out = capsys.readouterr().out
    assert '"ci-py312"' in out
    assert '"include"' in out
