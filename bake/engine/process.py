"""The one place bake-ci starts processes.

A :class:`Runner` is made once per command and passed down to whatever starts a
process: every child gets the environment the runner was given (the CLI hands it the
one it was called with), and every command is logged, redacted, before it runs. Short
commands are captured (:meth:`Runner.run`); the long-running build is streamed
(:meth:`Runner.stream`) in a process group of its own, so that :meth:`Runner.stop_all`
can stop it together with the buildx plugin it runs. The runner also keeps what the
run learned from the engine once (:meth:`Runner.memo`: ``docker info``, the
python-on-whales clients), so nothing of a run lives in a module.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

from bake import logs

log = logs.get_logger("bake.process")

T = TypeVar("T")


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


class Runner:
    """One command's process runner: the environment its children get, the streamed
    commands to stop on an interrupt, and what it asked the engine once."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ: Mapping[str, str] = dict(environ)
        self._live: set[subprocess.Popen[str]] = set()
        self._live_lock = threading.Lock()
        self._memo: dict[Hashable, Any] = {}
        self._memo_locks: dict[Hashable, threading.Lock] = {}
        self._memo_lock = threading.Lock()

    def memo(self, key: Hashable, make: Callable[[], T]) -> T:
        """``make()``, once per runner and ``key`` (threads asking at once wait for the one answer)."""
        with self._memo_lock:
            lock = self._memo_locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._memo:
                self._memo[key] = make()
            found: T = self._memo[key]
            return found

    def run(
        self,
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
                env=self.environ,
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
    def stream(self, args: Sequence[str], *, cwd: Path) -> Iterator[subprocess.Popen[str]]:
        """Start a long-running command whose stderr the caller reads line by line.

        The child runs in a session of its own: a Ctrl-C on the terminal does not reach it
        directly, and :meth:`stop_all` stops it (SIGINT, so buildx cancels the build).
        """
        log.info("run", cmd=shell(args), cwd=str(cwd))
        with self._live_lock:
            proc = subprocess.Popen(
                list(args),
                cwd=cwd,
                env=self.environ,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                start_new_session=True,
            )
            self._live.add(proc)
        try:
            yield proc
            proc.wait()
        finally:
            with self._live_lock:
                self._live.discard(proc)
            if proc.returncode is None:
                _stop([proc], grace=10.0)

    def stop_all(self, grace: float = 10.0) -> None:
        """Stop every streamed command: SIGINT to its process group, SIGKILL after ``grace`` s."""
        with self._live_lock:
            procs = list(self._live)
        _stop(procs, grace)

    def foreground(self, args: Sequence[str], *, cwd: Path | None = None) -> int:
        """Run an interactive command on bake-ci's own terminal and standard streams, with
        every signal bake-ci gets passed on to it; its exit code (128+N if a signal ended it)."""
        log.debug("run", cmd=shell(args))
        try:
            proc = subprocess.Popen(list(args), cwd=cwd, env=self.environ)
        except FileNotFoundError:
            raise CommandFailed(args, 127, f"{args[0]}: not found") from None
        except OSError as exc:
            raise CommandFailed(args, 126, f"{args[0]}: {exc.strerror}") from None

        def forward(signum: int, frame: object) -> None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signum)

        previous = {}
        if threading.current_thread() is threading.main_thread():
            previous = {s: signal.signal(s, forward) for s in FORWARDED}
        try:
            code = proc.wait()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        return 128 - code if code < 0 else code


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


#: Signals a foreground command gets when bake-ci gets them (a terminal's Ctrl-C reaches
#: both already: the command shares bake-ci's process group, and takes what it gets twice).
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


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
