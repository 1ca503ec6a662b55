"""structlog set-up: a console renderer on a terminal, JSON lines in CI."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Literal

import structlog

Format = Literal["auto", "console", "json"]


def resolve(fmt: Format, environ: Mapping[str, str]) -> Literal["console", "json"]:
    if fmt != "auto":
        return fmt
    return "json" if environ.get("CI") else "console"


def configure(fmt: Literal["console", "json"], verbose: bool = False) -> None:
    renderer: structlog.typing.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG if verbose else logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
