"""The live board (rendered with rich to a string) and the choice of display."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from rich.cells import cell_len
from rich.console import Console

from bake import ci, display, logs
from bake.progress import Tracker
from bake.report import Result

from .helpers import vertex

TARGETS = ["deps-py311", "deps-py313", "ci-py311", "ci-py313"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LONG_STEP = "[deps 2/3] RUN pip install --no-cache-dir " + " ".join(f"package-number-{i}" for i in range(30))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Fed:
    """A board fed the way the executor feeds it: rawjson statuses through a real Tracker."""

    def __init__(self, board: display.Board, targets: list[str]) -> None:
        self.board = board
        self.tracker = Tracker(targets)

    def feed(self, *vertexes: dict[str, Any]) -> None:
        for event in self.tracker.feed({"vertexes": list(vertexes)}):
            self.board.event(event)


def console(width: int) -> Console:
    return Console(file=io.StringIO(), width=width, force_terminal=True, highlight=False)


def shown(board: display.Board, width: int) -> list[str]:
    """The board's lines as a terminal of ``width`` columns shows them (colour codes removed)."""
    out = console(width)
    out.print(board.render())
    text = out.file.getvalue()  # type: ignore[attr-defined]
    return [ANSI.sub("", line) for line in text.splitlines()]


def result(target: str, status: str = "built", **fields: Any) -> Result:
    values: dict[str, Any] = {
        "target": target, "status": status, "image": f"localhost:5000/app:{target}", "digest": None,
        "seconds": 4.2, "steps": 5, "cached": 3, **fields,
    }  # fmt: skip
    return Result(**values)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def board(clock: Clock) -> Iterator[display.Board]:
    shown_on = console(80)
    b = display.Board(TARGETS, console=shown_on, clock=clock)
    yield b
    b.close()


def building(board: display.Board, clock: Clock) -> Fed:
    """Every target building; the deps targets in a very long RUN step, the ci ones exporting."""
    fed = Fed(board, TARGETS)
    for t in TARGETS:
        board.started(t, 1)
    fed.feed(
        *(vertex(f"{t}-base", f"[{t} base 2/2] RUN python3 -m venv /opt/venv", 0, 1, cached=True) for t in TARGETS),
        *(vertex(f"{t}-pip", f"[{t} {LONG_STEP[1:]}", 1) for t in TARGETS[:2]),
        *(vertex(f"{t}-export", f"[{t}] exporting to image", 1) for t in TARGETS[2:]),
    )
    return fed


@pytest.mark.parametrize("width", [40, 80, 200])
def test_one_line_per_target_never_wider_than_the_terminal(board: display.Board, clock: Clock, width: int) -> None:
    building(board, clock)
    lines = shown(board, width)
    assert [line.split()[0] for line in lines] == TARGETS
    assert all(cell_len(line) <= width for line in lines), lines


@pytest.mark.parametrize("width", [40, 80, 200])
def test_long_step_names_are_cut_with_an_ellipsis_not_wrapped(board: display.Board, clock: Clock, width: int) -> None:
    building(board, clock)
    deps = shown(board, width)[0]
    assert deps.startswith("deps-py311 building")
    assert deps.endswith("…")
    assert cell_len(deps) == width
    if width >= 80:
        assert "[deps 2/3] RUN pip install" in deps


def test_columns_line_up_and_step_names_keep_a_line_of_their_own(board: display.Board, clock: Clock) -> None:
    fed = building(board, clock)
    fed.feed(vertex("ci-py311-heredoc", "[ci-py311 ci 2/2] RUN <<EOF\npython -m pytest\nEOF", 2))
    lines = shown(board, 200)
    assert len(lines) == 4
    assert "RUN <<EOF python -m pytest EOF" in lines[2]
    assert len({line.index("building") for line in lines}) == 1


def test_a_step_reported_cached_is_never_shown_as_running(board: display.Board, clock: Clock) -> None:
    """The report that started this: a CACHED pip step shown as the current step for the whole build."""
    fed = Fed(board, TARGETS)
    board.started("deps-py311", 1)
    pip = "[deps-py311 deps 2/2] RUN pip install -r requirements.txt"
    fed.feed(vertex("pip", pip, 1))
    assert shown(board, 200)[0].endswith("[deps 2/2] RUN pip install -r requirements.txt")  # running: shown as such

    fed.feed(vertex("pip", pip, 1, cached=True))  # BuildKit then finds it in cache (no completion yet)
    line = shown(board, 200)[0]
    assert "cached: [deps 2/2] RUN pip install" in line
    assert "1/1 cached" in line

    fed.feed(vertex("pip", pip, 1, 1.5, cached=True), vertex("export", "[deps-py311] exporting to image", 2))
    assert shown(board, 200)[0].endswith("exporting to image")


def test_started_and_cached_at_once_is_not_running(board: display.Board, clock: Clock) -> None:
    fed = Fed(board, TARGETS)
    board.started("ci-py311", 1)
    fed.feed(vertex("copy", "[ci-py311 ci 1/1] COPY . .", 1, 1, cached=True))
    line = shown(board, 200)[2]
    assert line.split()[:2] == ["ci-py311", "building"]
    assert line.endswith("cached: [ci 1/1] COPY . .")


def test_each_target_shows_its_own_elapsed_time(board: display.Board, clock: Clock) -> None:
    fed = Fed(board, TARGETS)
    for t in TARGETS:
        board.started(t, 1)  # one bake call: all started at once
    clock.now = 101.0
    fed.feed(vertex("d1", "[deps-py311 deps 1/1] RUN make", 0))
    clock.now = 103.0
    fed.feed(vertex("c1", "[ci-py311 ci 1/1] RUN make", 2))
    clock.now = 104.5
    fed.feed(
        vertex("d1", "[deps-py311 deps 1/1] RUN make", 0, 3),
        vertex("d2", "[deps-py311] exporting to image", 3, 3.5),
    )
    clock.now = 110.0  # deps-py311 is over, ci-py311 still runs, the others never started
    seconds = {line.split()[0]: line.split()[2] for line in shown(board, 200)}
    assert seconds == {"deps-py311": "3.5s", "ci-py311": "7.0s", "deps-py313": "-", "ci-py313": "-"}

    board.finished(result("deps-py311", seconds=3.4), None)  # the summary's own figure wins
    assert shown(board, 200)[0].split()[:5] == ["deps-py311", "built", "3.4s", "3/5", "cached"]


def test_retry_and_final_states(board: display.Board, clock: Clock) -> None:
    board.started("deps-py311", 1)
    board.started("deps-py311", 2)
    board.finished(result("deps-py313", "reused", seconds=None, steps=None, cached=None), None)
    board.finished(result("ci-py313", "cancelled", seconds=None, steps=None, cached=None), None)
    states = [line.split()[1:3] for line in shown(board, 80)]
    assert states == [["retry", "1"], ["reused", "-"], ["waiting", "-"], ["cancelled", "-"]]


def test_failures_are_printed_with_their_log_tail_when_the_board_closes(clock: Clock) -> None:
    out = console(80)
    board = display.Board(TARGETS, console=out, clock=clock)
    board.finished(result("deps-py311"), None)
    failed = result(
        "ci-py311", "failed", failed_step="[ci 2/2] RUN pytest", error="exit code: 1",
        log_tail=("collected 3 items", "FAILED test_app.py::test_version"), log_file=".bake-ci/logs/ci-py311.log",
    )  # fmt: skip
    board.finished(failed, None)
    board.close()
    text = ANSI.sub("", out.file.getvalue())  # type: ignore[attr-defined]
    heading = text.index("ci-py311 failed at [ci 2/2] RUN pytest: exit code: 1")
    tail = text.index("  | FAILED test_app.py::test_version")
    assert heading < text.index("  | collected 3 items") < tail < text.index("full log: .bake-ci/logs/ci-py311.log")
    final = text.rindex("ci-py311   failed")  # the board's last drawing, below the failure
    assert tail < final
    assert "at [ci 2/2] RUN pytest" in text[final:].splitlines()[0]


@pytest.fixture
def structlog_config() -> Iterator[None]:
    """structlog's configuration as it was before the test (which points it at its captured stderr)."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.mark.usefixtures("structlog_config")
def test_log_lines_go_above_the_board_while_it_is_shown(clock: Clock, capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("console")  # as the CLI does, to this test's captured stderr
    out = console(80)
    board = display.Board(TARGETS, console=out, clock=clock)
    structlog.get_logger("bake").info("build", targets=TARGETS)
    board.text("all", "WARNING: current commit information was not captured by the build")
    board.text("all", "#0 building with default instance using docker driver")
    board.close()
    structlog.get_logger("bake").info("after")

    text = ANSI.sub("", out.file.getvalue())  # type: ignore[attr-defined]
    assert "[info     ] build" in text
    assert "[all] WARNING: current commit information" in text
    assert "#0 building" not in text
    assert text.index("WARNING: current commit") < text.rindex("deps-py311 waiting")
    err = capsys.readouterr().err
    assert "build" not in err  # nothing written past the board while it was shown
    assert "after" in err  # and structlog's own stream once it closed


def test_a_narrower_terminal_redraws_in_place(clock: Clock) -> None:
    """A terminal that reflows (tmux, most emulators) turns each old line into several rows:
    the redraw must move up over all of them, or their remainder stays on the screen."""
    out = console(200)
    board = display.Board(TARGETS, console=out, clock=clock)
    building(board, clock)
    board.live.refresh()
    widest = max(cell_len(ANSI.sub("", line)) for line in shown(board, 200))
    assert widest > 120
    out.file.seek(0)  # type: ignore[attr-defined]
    out.file.truncate()  # type: ignore[attr-defined]
    out.width = 60
    board.live.refresh()
    moved = out.file.getvalue().count("\x1b[1A")  # type: ignore[attr-defined]
    rows = 4 * -(-widest // 60)
    assert moved == rows - 1
    board.close()
    assert all(cell_len(line) <= 60 for line in shown(board, 60))


def test_off_a_terminal_the_plain_displays_stay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr", io.StringIO())
    local, actions = ci.detect({}), ci.detect({"CI": "true", "GITHUB_ACTIONS": "true"})
    assert isinstance(display.choose("auto", TARGETS, local, json_logs=False), display.Plain)
    assert type(display.choose("auto", TARGETS, actions, False)) is display.GitHub
    assert type(display.choose("plain", TARGETS, local, json_logs=True)) is display.Plain
    assert type(display.choose("quiet", TARGETS, local, json_logs=False)) is display.Quiet
