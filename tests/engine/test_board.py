"""The live board in a real terminal: a 2x2 build under tmux, its screen sampled with capture-pane."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import FIXTURE, Project, make_project

pytestmark = pytest.mark.engine

TARGETS = ["deps-py311", "deps-py313", "ci-py311", "ci-py313"]
DONE = "bake-ci exited with status"


class Terminal:
    """A tmux server of its own (its socket in the test's folder), running one command in a
    window of a fixed size."""

    def __init__(self, tmux: str, socket: Path) -> None:
        self.cmd = [tmux, "-S", str(socket), "-f", os.devnull]

    def start(self, command: str, *, width: int, height: int, cwd: Path, env: dict[str, str]) -> None:
        # the pane stays open when the command ends (`read`), so its last output can be read
        held = f"{command}; echo {DONE} $?; read -r _"
        new = [*self.cmd, "new-session", "-d", "-s", "board", "-x", str(width), "-y", str(height), "-c", str(cwd)]
        subprocess.run([*new, "sh", "-c", held], env=env, check=True, timeout=30)

    def screen(self) -> list[str]:
        """The visible screen, a line wrapped by the terminal joined back into one (-J)."""
        out = subprocess.run(
            [*self.cmd, "capture-pane", "-p", "-J", "-t", "board"], capture_output=True, text=True, check=True
        )
        return out.stdout.splitlines()

    def close(self) -> None:
        subprocess.run([*self.cmd, "kill-server"], capture_output=True, check=False)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    tmux = shutil.which("tmux")
    if tmux is None:
        message = "tmux is not installed (ci/engine-up installs it): the board is tested in a real terminal"
        if os.environ.get("BAKE_CI_REQUIRE_ENGINE"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    term = Terminal(tmux, tmp_path / "tmux.sock")
    yield term
    term.close()


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """The fixture project, its ci stage also running the project's tests: with a file of its own
    in the build context, that stage is built while the deps stage comes from cache."""
    source = tmp_path / "source"
    shutil.copytree(FIXTURE, source)
    (source / "build_id.txt").write_text(f"{uuid.uuid4()}\n")
    config = source / "pyproject.toml"
    config.write_text(config.read_text().replace('"fixture/app-ci"', '"board-test/app-ci"'))
    with (source / "Dockerfile").open("a") as fh:
        fh.write("RUN python -m unittest -v\n")
    return make_project(tmp_path, source)


def board_lines(screen: list[str]) -> tuple[list[str], int]:
    """The lines of the board (one per target) above the summary table, and where that table starts."""
    header = next((i for i, line in enumerate(screen) if line.split()[:2] == ["TARGET", "STATUS"]), len(screen))
    lines = [line for line in screen[:header] if line.split() and line.split()[0] in TARGETS]
    return lines, header


@pytest.mark.parametrize("width", [80, 200])
def test_the_board_holds_one_line_per_target_in_a_real_terminal(
    terminal: Terminal, project: Project, width: int
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BAKE_CI_", "GITHUB_", "CI", "TMUX"))}
    env.update(project.env)
    command = shlex.join([sys.executable, "-m", "bake", "build", "--push", "--no-reuse", "--progress", "tty"])
    terminal.start(command, width=width, height=50, cwd=project.path, env=env)

    samples: list[list[str]] = []  # every screen since the board appeared
    deadline = time.monotonic() + 900
    while True:
        screen = terminal.screen()
        finished = any(line.startswith(DONE) for line in screen)
        if samples or board_lines(screen)[0] or finished:
            samples.append(screen)
        if finished:
            break
        assert time.monotonic() < deadline, "\n".join(screen)
        time.sleep(0.05)  # paces the sampling (each capture starts a process); it times nothing

    final = samples[-1]
    assert f"{DONE} 0" in final, "\n".join(final)
    assert len(samples) >= 10, f"only {len(samples)} screens while the board was shown"
    for screen in samples:
        lines, _ = board_lines(screen)
        shown = "\n".join(screen)
        assert [line.split()[0] for line in lines] == TARGETS, shown
        assert all(len(line) <= width for line in lines), shown

    lines, header = board_lines(final)
    assert final.index(lines[-1]) == header - 1, "the summary table follows the board"
    for target, line in zip(TARGETS, lines, strict=True):
        assert line.split()[:2] == [target, "built"], line
    rows = [line.split()[:2] for line in final[header + 1 : header + 5]]
    assert rows == [[target, "built"] for target in TARGETS]
    # the table fits too, but for the image, which is never cut (it is what a user copies):
    # a narrow terminal drops the digest column instead
    for line in final[header : header + 5]:
        image = line.split()[-1]
        assert len(line) <= width or (len(line) - len(image) < width and "sha256:" not in line), "\n".join(final)
