"""structlog set-up: a console renderer on a terminal, JSON lines in CI.

While a live display owns the terminal, every rendered line is handed to it
(:func:`route`) so it prints above the display instead of into it.

Modules log through :func:`get_logger`, whose loggers import structlog only when a
line is actually written: a run that writes none (``plan``, ``status`` on the reuse
path, whose whole budget is a fraction of a second) does not pay its import, which
takes about three times bake-ci's own start-up (it brings asyncio and logging).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

from bake import redact

if TYPE_CHECKING:
    import structlog

Format = Literal["auto", "console", "json"]

# the standard library's level numbers (logging itself is imported with structlog)
DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40


def resolve(fmt: Format, in_ci: bool) -> Literal["console", "json"]:
    """``auto``: JSON lines in CI, a console renderer elsewhere."""
    if fmt != "auto":
        return fmt
    return "json" if in_ci else "console"


class LogOutput:
    """Where log lines of this process go, and how they are rendered.

    Prints each rendered line to stderr (the one in place when it is written: a test's
    capture ends, the next test's begins; structlog's PrintLogger keeps the stream it was
    made with), or hands it to a live display (:meth:`route`). Its :meth:`logger` is
    structlog's logger factory, so structlog's own configuration holds on to it once
    structlog is imported.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: Where rendered lines go instead of stderr, while a live display is shown.
        self.sink: Callable[[str], None] | None = None
        #: What :func:`configure` asked for, applied to structlog once it is imported.
        self.pending: tuple[Literal["console", "json"], bool] | None = None
        #: Lines below this level are dropped before structlog is asked.
        self.threshold = DEBUG
        self.import_lock = threading.Lock()

    def route(self, sink: Callable[[str], None] | None) -> None:
        self.sink = sink

    def msg(self, message: str) -> None:
        sink = self.sink
        if sink is not None:
            sink(message)
            return
        with self._lock:
            print(message, file=sys.stderr, flush=True)

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg

    def logger(self, *args: Any) -> LogOutput:
        return self


# Logging is process-wide by design (structlog's configuration is too), and loggers are
# made at import (:func:`get_logger`). structlog's configuration would be the natural
# home for the settings, but structlog is imported only when a line is written (see the
# module's docstring): until then the settings wait on this one object, which
# structlog's configuration then holds (its logger factory).
_OUTPUT = LogOutput()


def route(sink: Callable[[str], None] | None) -> None:
    """Hand every rendered log line to ``sink`` (None: back to the log stream)."""
    _OUTPUT.route(sink)


def _structlog() -> ModuleType:
    """structlog, imported and configured on first use."""
    with _OUTPUT.import_lock:
        if "structlog" not in sys.modules:
            # structlog imports rich at its own import whenever rich is installed (for
            # console tracebacks, which bake-ci does not use): hidden, unless the live
            # board has imported it already
            hide = "rich" not in sys.modules
            if hide:
                sys.modules["rich"] = None  # type: ignore[assignment]
            try:
                import structlog
            finally:
                if hide:
                    del sys.modules["rich"]
        import structlog

        if _OUTPUT.pending is not None:
            _apply(*_OUTPUT.pending)
            _OUTPUT.pending = None
    return structlog


class Logger:
    """A structlog logger of ``name``, made when the first line is written."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _write(self, level: int, method: str, event: str, fields: dict[str, Any]) -> None:
        if level < _OUTPUT.threshold:
            return
        getattr(_structlog().get_logger(self.name), method)(event, **fields)

    def debug(self, event: str, **fields: Any) -> None:
        self._write(DEBUG, "debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._write(INFO, "info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._write(WARNING, "warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._write(ERROR, "error", event, fields)


def get_logger(name: str) -> Logger:
    return Logger(name)


def configure(fmt: Literal["console", "json"], verbose: bool = False) -> None:
    """Start a command's logging: render as ``fmt``, debug lines only when ``verbose`` (now
    if structlog is imported already, else when the first line is written), every line
    redacted by the command's :class:`bake.redact.Redactor`, which starts empty."""
    redact.start()
    _OUTPUT.threshold = DEBUG if verbose else INFO
    with _OUTPUT.import_lock:
        if "structlog" in sys.modules:
            _OUTPUT.pending = None
            _apply(fmt, verbose)
        else:
            _OUTPUT.pending = (fmt, verbose)


def reset() -> None:
    """Forget :func:`configure` (every line is written again, as structlog's defaults do)."""
    _OUTPUT.pending, _OUTPUT.threshold = None, DEBUG


def _apply(fmt: Literal["console", "json"], verbose: bool) -> None:
    import structlog

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
            redact.REDACTOR,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(DEBUG if verbose else INFO),
        logger_factory=_OUTPUT.logger,
        cache_logger_on_first_use=False,
    )
