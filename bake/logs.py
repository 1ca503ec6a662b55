"""structlog set-up: a console renderer on a terminal, JSON lines in CI.

While a live display owns the terminal, every rendered line is handed to it
(:func:`route`) so it prints above the display instead of into it.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from typing import Any, Literal

import structlog

Format = Literal["auto", "console", "json"]

#: Where rendered lines go instead of the log stream, while a live display is shown.
_sink: Callable[[str], None] | None = None


def route(sink: Callable[[str], None] | None) -> None:
    """Hand every rendered log line to ``sink`` (None: back to the log stream)."""
    global _sink
    _sink = sink


class _Logger:
    """Prints each rendered line to stderr (the one in place when it is written: a test's
    capture ends, the next test's begins), or hands it to a live display (:func:`route`)."""

    _lock = threading.Lock()

    def msg(self, message: str) -> None:
        sink = _sink
        if sink is not None:
            sink(message)
            return
        with self._lock:
            print(message, file=sys.stderr, flush=True)

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


def _factory(*args: Any) -> _Logger:
    return _Logger()


def resolve(fmt: Format, in_ci: bool) -> Literal["console", "json"]:
    """``auto``: JSON lines in CI, a console renderer elsewhere."""
    if fmt != "auto":
        return fmt
    return "json" if in_ci else "console"


def configure(fmt: Literal["console", "json"], verbose: bool = False) -> None:
    renderer: structlog.typing.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    else:
        # structlog picks rich for tracebacks whenever it is installed; keep plain ones
        renderer = structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG if verbose else logging.INFO),
        logger_factory=_factory,
        cache_logger_on_first_use=False,
    )
