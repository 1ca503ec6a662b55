"""Log lines pass through the command's redactor: a credential bake-ci has read is hidden
in every field, whoever wrote the line and whether or not they redacted it first."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Literal

import pytest
import structlog

from bake import logs, redact

SECRET = "s3cr3t word-Tok"


@pytest.fixture(autouse=True)
def _structlog_config() -> Iterator[None]:
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)
    redact.forget_all()


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_a_registered_secret_is_hidden_in_every_field_of_a_log_line(
    fmt: Literal["console", "json"], capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure(fmt)
    redact.register(SECRET)
    logs.get_logger("bake").warning(f"pull failed with {SECRET}", image="app", reason=f"said {SECRET}!")
    err = capsys.readouterr().err
    assert SECRET not in err
    assert "said ***!" in err
    if fmt == "json":
        assert json.loads(err)["image"] == "app"


def test_each_command_starts_with_no_secret_of_an_earlier_one(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("json")
    redact.register(SECRET)
    logs.configure("json")  # the next command of the same process
    logs.get_logger("bake").info("note", value=SECRET)
    assert json.loads(capsys.readouterr().err)["value"] == SECRET
