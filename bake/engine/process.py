"""The one place bake-ci starts processes.

Every child gets the environment the runner was given (the CLI hands it the one it
was called with), and every command is logged, redacted, before it runs. Short
commands are captured (:func:`run`); the long-running build is streamed
(:func:`stream`) in a process group of its own, so that :func:`stop_all` can stop it
together with the buildx plugin it runs.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

from bake import logs

log = logs.get_logger("bake.process")

_environ: dict[str, str] = dict(os.environ)
_live: set[subprocess.Popen[str]] = set()
_live_lock = threading.Lock()


def use_environment(environ: Mapping[str, str]) -> None:
    """Give every later child this environment (the CLI's, not necessarily ``os.environ``)."""
    global _environ
    _environ = dict(environ)


def environment() -> Mapping[str, str]:
    return _environ


def shell(args: Sequence[str | Path]) -> str:
    """A command line as a user would type it, with credentials redacted."""
    from bake.redact import redact  # here: a run that starts no process does not import it

    return redact(shlex.join(str(a) for a in args))


class CommandFailed(Exception):
    """A command exited non-zero (or could not start); ``output`` is what it said."""

    def __init__(self, args: Sequence[str], code: int, output: str) -> None:
        super().__init__(f"{shell(args)} exited {code}")
        self.command = list(args)
        self.code = code
        self.output = output


def run(
    args: Sequence[str],
    *,
    cwd: Path | None = None,
    input: str | None = None,
    timeout: float | None = None,
    check: bool = True,
) -> str:
    """Run a short command, log it, return its stdout; CommandFailed on failure
    (with ``check=False``, the stdout of a failed command too)."""
    log.debug("run", cmd=shell(args))
    try:
        proc = subprocess.run(
            list(args),
            cwd=cwd,
            env=_environ,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise CommandFailed(args, 127, f"{args[0]}: not found") from None
    except subprocess.TimeoutExpired:
        raise CommandFailed(args, 124, f"{args[0]}: no answer within {timeout:.0f}s") from None
    except OSError as exc:
        raise CommandFailed(args, 126, f"{args[0]}: {exc.strerror}") from None
    if proc.returncode != 0 and check:
        raise CommandFailed(args, proc.returncode, (proc.stderr or proc.stdout).strip())
    return proc.stdout


@contextlib.contextmanager
def stream(args: Sequence[str], *, cwd: Path) -> Iterator[subprocess.Popen[str]]:
    """Start a long-running command whose stderr the caller reads line by line.

    The child runs in a session of its own: a Ctrl-C on the terminal does not reach it
    directly, and :func:`stop_all` stops it (SIGINT, so buildx cancels the build).
    """
    log.info("run", cmd=shell(args), cwd=str(cwd))
    with _live_lock:
        proc = subprocess.Popen(
            list(args),
            cwd=cwd,
            env=_environ,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        _live.add(proc)
    try:
        yield proc
        proc.wait()
    finally:
        with _live_lock:
            _live.discard(proc)
        if proc.returncode is None:
            _stop([proc], grace=10.0)


def lines(proc: subprocess.Popen[str]) -> IO[str]:
    assert proc.stderr is not None
    return proc.stderr


def _stop(procs: Sequence[subprocess.Popen[str]], grace: float) -> None:
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def stop_all(grace: float = 10.0) -> None:
    """Stop every streamed command: SIGINT to its process group, SIGKILL after ``grace`` s."""
    with _live_lock:
        procs = list(_live)
    _stop(procs, grace)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """In the main thread, make SIGTERM (a CI runner cancelling the job) act like Ctrl-C."""

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
