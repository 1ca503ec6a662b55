"""Shared by every test: bake-ci's default state folders go under a cache home of the
session's own, never into the user's ``~/.cache``; and the session leaves no process behind."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests check what holds for every input, not how fast: on a loaded 2-core runner a
# single example can take longer than Hypothesis's default 200 ms deadline.
settings.register_profile("bake-ci", deadline=None)
settings.load_profile("bake-ci")


@pytest.fixture(autouse=True, scope="session")
def _cache_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache-home")))
        yield


def _processes() -> dict[int, tuple[int, str, str]]:
    """Every process of the machine: pid -> (parent pid, state, command line)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # it ended meanwhile
            continue
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        found[int(entry.name)] = (int(ppid), state, cmdline)
    return found


def left_running(pid: int) -> list[str]:
    """The processes still running that ``pid`` started, directly or not (zombies aside)."""
    processes = _processes()
    children: dict[int, list[int]] = {}
    for child, (parent, _, _) in processes.items():
        children.setdefault(parent, []).append(child)
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        todo.extend(children.get(child, []))
        _, state, cmdline = processes[child]
        if state != "Z":
            found.append(f"{child}: {cmdline}")
    return found


@pytest.fixture(autouse=True, scope="session")
def _leaves_no_process() -> Iterator[None]:
    """The suite stops everything it starts: daemons (a registry of a test's own, a second
    dockerd), servers and CLI runs. Checked once every other fixture has been torn down."""
    yield
    if not Path("/proc").is_dir():
        return
    left = left_running(os.getpid())
    assert not left, "the test session left processes running:\n" + "\n".join(left)
