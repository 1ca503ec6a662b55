"""How a build's progress is shown: plain lines, GitHub Actions groups, a live board, or nothing.

Every display is fed from worker threads and serialises its own output. Events come
from :class:`bake.progress.Tracker`; each display also gets the final result of each
target, and every target's plain lines are kept in its log file whatever is shown.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Literal, Protocol

from bake import ci, logs, naming, workflow_commands
from bake.progress import Event, TargetProgress, Vertex, describe
from bake.report import Result

if TYPE_CHECKING:  # rich is imported only when the board is shown: start-up time counts
    from rich.console import Console, ConsoleOptions, ConsoleRenderable
    from rich.live import Live
    from rich.text import Text

Mode = Literal["plain", "github", "board", "quiet"]

log = logs.get_logger("bake")


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
            print(workflow_commands.group(f"{result.target}: {_outcome(result)}"), file=self.stream)
            for line in lines:
                print(line, file=self.stream)
            print(workflow_commands.endgroup(), file=self.stream)
            if result.status == "failed":
                print(
                    workflow_commands.error(result.failed_step or "see the log", title=f"{result.target} failed"),
                    file=self.stream,
                )
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


class _Row:
    """What the board knows about one target."""

    def __init__(self) -> None:
        self.state = "waiting"
        self.vertexes: dict[str, Vertex] = {}  # this attempt's, by digest, in order of first event
        self.began: float | None = None  # the target's first vertex start (board clock)
        self.last_done: float | None = None  # its latest vertex completion (board clock)
        self.result: Result | None = None


@dataclass(frozen=True)
class Line:
    """One target's line on the board, as text cells."""

    target: str
    state: str  # waiting | building | retry N | the result's status
    seconds: float | None  # the target's own elapsed time
    steps: tuple[int, int] | None  # (cached, total) steps
    step: str  # what it runs now, else what it did last ("cached: ...", "done: ..."), or where it failed


_STYLES = {
    "built": "green",
    "reused": "cyan",
    "merged": "green",
    "failed": "bold red",
    "cancelled": "yellow",
    "waiting": "dim",
}


def _status(result: Result) -> str:
    status = result.status
    return str(getattr(status, "value", status))  # a plain string or a string enum


def _one_line(text: str) -> str:
    """A vertex name on one line (a RUN with a heredoc has newlines in its name)."""
    return " ".join(text.split())


def _running(v: Vertex) -> bool:
    """Started and not over. A vertex reported CACHED never counts as running."""
    return v.started is not None and v.completed is None and not v.cached and not v.error


def _line(target: str, row: _Row, now: float) -> Line:
    if row.result is not None:
        r = row.result
        seconds = r.seconds
        if seconds is None and row.began is not None:
            seconds = max(0.0, (row.last_done or now) - row.began)
        steps = (r.cached or 0, r.steps) if r.steps is not None else None
        return Line(target, _status(r), seconds, steps, f"at {_one_line(r.failed_step)}" if r.failed_step else "")
    vertexes = list(row.vertexes.values())
    cached: dict[str, bool] = {}  # step name -> reported CACHED (BuildKit may report a step twice)
    for v in vertexes:
        if v.is_step:
            cached[v.name] = cached.get(v.name, False) or v.cached
    running = [v for v in vertexes if _running(v)]
    seconds = None
    if row.began is not None:
        exported = any(v.name.startswith("exporting to") and v.completed for v in vertexes)
        over = exported and not running and row.last_done is not None
        seconds = max(0.0, (row.last_done if over and row.last_done is not None else now) - row.began)
    if running:
        step = ([v for v in running if v.is_step] or running)[-1].name
    else:
        ended = [v for v in vertexes if v.completed or v.cached]
        step = f"{'cached' if ended[-1].cached else 'done'}: {ended[-1].name}" if ended else ""
    steps = (sum(cached.values()), len(cached)) if cached else None
    return Line(target, row.state, seconds, steps, _one_line(step))


class _View:
    """The board's lines as rich renders them: aligned columns, each line cut to the width.

    Not a ``rich.table.Table``: when a table is too wide it shrinks every no-wrap column
    alike (target names become ``de…``); here the step column gives way first.
    """

    def __init__(self, lines: Sequence[Line]) -> None:
        self.lines = lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Text]:
        from rich.text import Text

        width = options.max_width
        spell = width >= 60  # "3/5 cached"; narrower: "3/5"
        cells = []
        for line in self.lines:
            seconds = f"{line.seconds:.1f}s" if line.seconds is not None else "-"
            steps = f"{line.steps[0]}/{line.steps[1]}" + (" cached" if spell else "") if line.steps else ""
            cells.append((line, seconds, steps))
        w_target = max((len(c[0].target) for c in cells), default=0)
        w_state = max([len(c[0].state) for c in cells] + [8])
        w_time = max([len(c[1]) for c in cells] + [5])
        w_steps = max((len(c[2]) for c in cells), default=0)
        for line, seconds, steps in cells:
            text = Text(no_wrap=True, overflow="ellipsis", end="\n")
            text.append(line.target.ljust(w_target), style="bold")
            text.append(" ")
            text.append(line.state.ljust(w_state), style=_STYLES.get(line.state, "blue"))
            text.append(" ")
            text.append(seconds.rjust(w_time))
            text.append(" ")
            text.append(steps.ljust(w_steps), style="dim")
            if line.step:
                text.append(" ")
                text.append(line.step, style="dim" if line.step.startswith(("cached: ", "done: ")) else "")
            text.rstrip()
            text.truncate(width, overflow="ellipsis")
            yield text


def _live(console: Console, render: Callable[[], _View]) -> Live:
    """rich's Live, told how a terminal that reflows lines (tmux, most emulators) moved the
    board when it got narrower: rich would move the cursor up by the old line count and
    leave the wrapped remainder of the old board on the screen."""
    from rich.live import Live

    class Reflowing(Live):
        drawn: tuple[int, int] | None = None  # (widest line, lines) of the last render
        assumed: tuple[int, int] | None = None

        def process_renderables(self, renderables: list[ConsoleRenderable]) -> list[ConsoleRenderable]:
            with self._lock:
                live_render = self._live_render
                shape = live_render._shape
                if shape is not None:
                    if shape != self.assumed:
                        self.drawn = shape  # rendered since: its real shape
                    assert self.drawn is not None
                    widest, lines = self.drawn
                    width = max(1, self.console.width)
                    rows = lines * -(-widest // width) if widest > width else lines
                    live_render._shape = self.assumed = (min(widest, width), rows)
                return super().process_renderables(renderables)

    return Reflowing(console=console, get_renderable=render, redirect_stdout=False, redirect_stderr=False)


class Board:
    """A live board on a terminal (rich): one line per target, redrawn in place.

    Each line holds the target, its state, its own elapsed time (from its first vertex
    start to its last completion; once finished, the summary's time), its cached/total
    steps and what it runs now. Log lines (structlog's, and buildx's warnings and
    errors) are printed above the board through the same console; when it closes, each
    failure with its log tail.
    """

    def __init__(
        self,
        targets: Sequence[str],
        stream: IO[str] | None = None,
        *,
        console: Console | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from rich.console import Console

        self.console = console or Console(file=stream or sys.stderr, highlight=False)
        self.clock = clock
        self.rows = {t: _Row() for t in targets}
        self.lock = threading.Lock()
        self.closed = False
        self.live = _live(self.console, self.render)
        self.live.start()
        logs.route(self.print_line)

    # -- what is shown -------------------------------------------------------------------

    def lines(self) -> list[Line]:
        now = self.clock()
        with self.lock:
            return [_line(naming.shown(target), row, now) for target, row in self.rows.items()]

    def render(self) -> _View:
        return _View(self.lines())

    def print_line(self, line: str) -> None:
        """One log line above the board (its colours kept; the terminal wraps it)."""
        from rich.text import Text

        self.console.print(Text.from_ansi(line), soft_wrap=True)

    # -- the Display protocol --------------------------------------------------------------

    def event(self, event: Event) -> None:
        if event.kind == "log":
            return
        with self.lock:
            row = self.rows.get(event.target)
            if row is None:
                return
            now = self.clock()
            row.vertexes.setdefault(event.vertex.digest, event.vertex)
            if event.kind == "start" and row.began is None:
                row.began = now
            if event.kind == "done":
                row.last_done = now

    def text(self, target: str, line: str) -> None:
        """buildx's own text: warnings and errors go above the board, the rest only to the log file."""
        if line.lstrip().upper().startswith(("ERROR", "WARNING", "WARN ")):
            self.print_line(f"[{target}] {line}")

    def started(self, target: str, attempt: int) -> None:
        with self.lock:
            row = self.rows.setdefault(target, _Row())
            row.state = "building" if attempt == 1 else f"retry {attempt - 1}"
            row.vertexes = {}  # each attempt reports its vertexes afresh
            row.result = None

    def finished(self, result: Result, progress: TargetProgress | None) -> None:
        with self.lock:
            row = self.rows.setdefault(result.target, _Row())
            row.result = result
            row.state = _status(result)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with self.lock:
            failed = [row.result for row in self.rows.values() if row.result and _status(row.result) == "failed"]
        try:
            for r in failed:
                self._print_failure(r)
            self.live.refresh()
        finally:
            self.live.stop()
            logs.route(None)

    def _print_failure(self, r: Result) -> None:
        from rich.text import Text

        where = f" at {_one_line(r.failed_step)}" if r.failed_step else ""
        self.console.print(
            Text(f"{r.target} failed{where}: {r.error or 'see its log'}", style="bold red"), soft_wrap=True
        )
        for line in r.log_tail:
            self.console.print(Text(f"  | {line}"), soft_wrap=True)
        if r.log_file:
            self.console.print(Text(f"  full log: {r.log_file}", style="dim"), soft_wrap=True)


def choose(progress: str, targets: Sequence[str], context: ci.Context, json_logs: bool) -> Display:
    """``auto``: a board on a terminal, GitHub groups in Actions, plain lines elsewhere."""
    if progress == "quiet":
        return Quiet()
    if progress == "tty" or (progress == "auto" and sys.stderr.isatty() and not context.ci):
        return Board(targets, sys.stderr)
    if context.github_actions and not json_logs:
        return GitHub(sys.stderr)
    return Plain(sys.stderr, json_logs)
