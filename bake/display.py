"""How a build's progress is shown: plain lines, GitHub Actions groups, a live board, or nothing.

Every display is fed from worker threads and serialises its own output. Events come
from :class:`bake.progress.Tracker`; each display also gets the final result of each
target, and every target's plain lines are kept in its log file whatever is shown.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from typing import IO, Literal, Protocol

import structlog

from bake.progress import Event, TargetProgress, describe
from bake.report import Result

Mode = Literal["plain", "github", "board", "quiet"]

log = structlog.get_logger("bake")


class Display(Protocol):
    def event(self, event: Event) -> None: ...
    def text(self, target: str, line: str) -> None: ...
    def started(self, target: str, attempt: int) -> None: ...
    def finished(self, result: Result, progress: TargetProgress | None) -> None: ...
    def close(self) -> None: ...


def step_lines(target: str, progress: TargetProgress | None) -> list[str]:
    """Each build step of a finished target with its final state (what the summary counts)."""
    if progress is None or (not progress.finished and progress.failure is None):
        return []  # cancelled before it got anywhere: its steps say nothing
    names = {"cached": "CACHED", "skipped": "CACHED", "done": "DONE", "error": "ERROR", "pending": "NOT RUN"}
    return [f"[{target}] step {s.name}: {names[s.state]}" for s in progress.steps]


def _outcome(result: Result) -> str:
    secs = f"{result.seconds:.1f}s" if result.seconds is not None else "-"
    cached = f", {result.cached}/{result.steps} steps cached" if result.steps is not None else ""
    where = f" at {result.failed_step}" if result.failed_step else ""
    return f"{result.status}{where} in {secs}{cached}"


class Plain:
    """Lines prefixed with the target, as they happen (console or JSON log lines)."""

    def __init__(self, stream: IO[str], json_logs: bool) -> None:
        self.stream = stream
        self.json = json_logs
        self.lock = threading.Lock()

    def _emit(self, target: str, line: str, kind: str = "progress") -> None:
        with self.lock:
            if self.json:
                log.info(kind, target=target, line=line)
            else:
                print(line, file=self.stream, flush=True)

    def event(self, event: Event) -> None:
        self._emit(event.target, describe(event))

    def text(self, target: str, line: str) -> None:
        self._emit(target, f"[{target}] {line}")

    def started(self, target: str, attempt: int) -> None:
        again = f" (attempt {attempt})" if attempt > 1 else ""
        self._emit(target, f"[{target}] started{again}")

    def finished(self, result: Result, progress: TargetProgress | None) -> None:
        for line in step_lines(result.target, progress):
            self._emit(result.target, line)
        self._emit(result.target, f"[{result.target}] {_outcome(result)}")

    def close(self) -> None:
        pass


class GitHub(Plain):
    """GitHub Actions: each target's lines in a collapsible group, printed when it ends.

    Concurrent targets would interleave inside one group, so lines are held per
    target and written as one block; a one-line notice marks each start.
    """

    def __init__(self, stream: IO[str]) -> None:
        super().__init__(stream, json_logs=False)
        self.held: dict[str, list[str]] = {}

    def _emit(self, target: str, line: str, kind: str = "progress") -> None:
        with self.lock:
            self.held.setdefault(target, []).append(line)

    def started(self, target: str, attempt: int) -> None:
        with self.lock:
            print(f"{target}: started" + (f" (attempt {attempt})" if attempt > 1 else ""), file=self.stream, flush=True)

    def finished(self, result: Result, progress: TargetProgress | None) -> None:
        for line in step_lines(result.target, progress):
            self._emit(result.target, line)
        with self.lock:
            lines = self.held.pop(result.target, [])
            print(f"::group::{result.target}: {_outcome(result)}", file=self.stream)
            for line in lines:
                print(line, file=self.stream)
            print("::endgroup::", file=self.stream)
            if result.status == "failed":
                print(f"::error title={result.target} failed::{result.failed_step or 'see the log'}", file=self.stream)
            self.stream.flush()


class Quiet:
    def event(self, event: Event) -> None:
        pass

    def text(self, target: str, line: str) -> None:
        pass

    def started(self, target: str, attempt: int) -> None:
        pass

    def finished(self, result: Result, progress: TargetProgress | None) -> None:
        pass

    def close(self) -> None:
        pass


class Board:
    """A live board on a terminal: one line per target with its state, step and time."""

    def __init__(self, targets: Sequence[str], stream: IO[str]) -> None:
        self.stream = stream
        self.order = list(targets)
        self.state = dict.fromkeys(targets, "waiting")
        self.step = dict.fromkeys(targets, "")
        self.began: dict[str, float] = {}
        self.ended: dict[str, float] = {}
        self.lock = threading.Lock()
        self.drawn = 0
        self.stop = threading.Event()
        self.ticker = threading.Thread(target=self._tick, daemon=True)
        self.ticker.start()

    def _tick(self) -> None:
        while not self.stop.wait(0.5):
            self._draw()

    def _draw(self) -> None:
        with self.lock:
            now = time.monotonic()
            width = max(len(t) for t in self.order)
            lines = []
            for t in self.order:
                secs = (self.ended.get(t, now) - self.began[t]) if t in self.began else 0.0
                lines.append(f"{t.ljust(width)}  {self.state[t]:<10} {secs:6.1f}s  {self.step[t]}"[:200])
            out = ("\x1b[F" * self.drawn) + "".join(f"\x1b[2K{line}\n" for line in lines)
            self.stream.write(out)
            self.stream.flush()
            self.drawn = len(lines)

    def event(self, event: Event) -> None:
        if event.kind == "start" and event.vertex.instruction:
            with self.lock:
                self.step[event.target] = event.vertex.name

    def text(self, target: str, line: str) -> None:
        pass

    def started(self, target: str, attempt: int) -> None:
        with self.lock:
            self.state[target] = "building" if attempt == 1 else f"retry {attempt - 1}"
            self.began.setdefault(target, time.monotonic())
        self._draw()

    def finished(self, result: Result, progress: TargetProgress | None) -> None:
        with self.lock:
            self.state[result.target] = result.status
            self.ended[result.target] = time.monotonic()
            if result.steps is not None:
                self.step[result.target] = f"{result.cached}/{result.steps} steps cached"
        self._draw()

    def close(self) -> None:
        self.stop.set()
        self.ticker.join()
        self._draw()


def choose(progress: str, targets: Sequence[str], environ: dict[str, str], json_logs: bool) -> Display:
    """``auto``: a board on a terminal, GitHub groups in Actions, plain lines elsewhere."""
    if progress == "quiet":
        return Quiet()
    if progress == "tty" or (progress == "auto" and sys.stderr.isatty() and not environ.get("CI")):
        return Board(targets, sys.stderr)
    if environ.get("GITHUB_ACTIONS") == "true" and not json_logs:
        return GitHub(sys.stderr)
    return Plain(sys.stderr, json_logs)
