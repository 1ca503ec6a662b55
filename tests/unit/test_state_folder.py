"""A state folder that cannot be written: a real 64 KiB tmpfs (full) and a read-only one.

Every write bake-ci makes there fails as a clear StateFolderError (exit 3) naming the
folder, or, where the write only saves time (the memo), with a warning; nothing
half-written is left behind. Mounting needs root: without it these tests are skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bake import config_load, display
from bake.engine import process
from bake.engine.buildx import BakeRun
from bake.errors import StateFolderError
from bake.execute import Executor, Options
from bake.files import write_atomic
from bake.fingerprint import Fingerprint, local_image_record, record_local_image
from bake.plan import Plan, build_plan, matrix
from bake.state import State

from .conftest import MakeProject, RunCli

DIGEST = "sha256:" + "d" * 64

Mount = Callable[..., Path]


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Mount]:
    """``mount(size="64k", ro=False, fill=0)``: a fresh tmpfs folder, ``fill`` bytes taken."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mounted: list[Path] = []

    def make(size: str = "64k", *, ro: bool = False, fill: int = 0) -> Path:
        where = tmp_path / f"tmpfs-{len(mounted)}"
        where.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
        mounted.append(where)
        if fill:
            with (where / "filler").open("wb") as fh, contextlib.suppress(OSError):
                fh.write(b"x" * fill)
        if ro:
            subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)
        return where

    yield make
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], check=False)


def full(mount: Mount) -> Path:
    """A 64 KiB tmpfs with no room left."""
    return mount(fill=64 * 1024)


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# -- writing files ---------------------------------------------------------------------------


def test_a_write_that_does_not_fit_leaves_the_old_file_and_nothing_else(mount: Mount) -> None:
    folder = mount()
    target = folder / "record.json"
    write_atomic(target, "old\n")
    with pytest.raises(OSError, match="No space left"):
        write_atomic(target, "x" * 100_000)
    assert target.read_text() == "old\n"
    assert listing(folder) == ["record.json"]


def test_a_write_to_a_read_only_folder_fails_and_leaves_nothing(mount: Mount) -> None:
    folder = mount(ro=True)
    with pytest.raises(OSError, match="Read-only"):
        write_atomic(folder / "record.json", "new\n")
    assert listing(folder) == []


# -- the state folder's own checks -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["full", "read-only"])
def test_checking_the_folder_says_what_is_wrong_and_how_to_fix_it(mount: Mount, kind: str) -> None:
    folder = full(mount) if kind == "full" else mount(ro=True)
    state = State(folder / "state" if kind == "full" else folder, "BAKE_CI_STATE_DIR")
    with pytest.raises(StateFolderError) as caught:
        state.check_writable()
    message = str(caught.value)
    assert caught.value.exit_code == 3
    for part in (str(state.root), "BAKE_CI_STATE_DIR", "--state-dir"):
        assert part in message
    for part in ["No space left", "free some space"] if kind == "full" else ["Read-only"]:
        assert part in message
    assert listing(folder) in (["filler"], ["filler", "state"], [])


def test_a_fingerprint_record_that_does_not_fit_is_a_state_folder_error_and_no_half_record(mount: Mount) -> None:
    folder = mount()
    state = State(folder, "--state-dir")
    small = Fingerprint("a" * 64, {"file:app.py": "1"})
    record_local_image(state, "ci-py311", small, "app:ci", "sha256:1")
    before = {p: (folder / p).read_text() for p in listing(folder) if (folder / p).is_file()}
    large = Fingerprint("b" * 64, {f"file:src/{i:05}.py": "x" * 64 for i in range(2000)})  # ~170 KB of parts
    with pytest.raises(StateFolderError, match=r"No space left.*recording which inputs the local image of ci-py311"):
        record_local_image(state, "ci-py311", large, "app:ci", "sha256:2")
    after = {p: (folder / p).read_text() for p in listing(folder) if (folder / p).is_file()}
    assert after == before  # the earlier record, whole; no temporary file
    assert local_image_record(state, "ci-py311") == {"fingerprint": "a" * 64, "image": "app:ci", "image_id": "sha256:1"}


# -- the executor: a build goes on when its logs no longer fit ---------------------------------


@pytest.fixture
def plan(project: MakeProject) -> Plan:
    root = project(
        '[tool.bake-ci]\nimage = "acme/app-ci"\nregistry = "registry.example/acme"\npython = ["3.11", "3.12"]\n',
        dockerfile="ARG BASE_IMAGE\nFROM ${BASE_IMAGE} AS ci\nRUN make\n",
    )
    proj = config_load.load(root / "pyproject.toml", {})
    return build_plan(proj, matrix(proj), branch="main", sha=None, output="push")


def test_logs_that_no_longer_fit_lose_the_log_not_the_build(mount: Mount, plan: Plan, tmp_path: Path) -> None:
    folder = mount("256k")
    state = State(folder / "state", "--state-dir")
    run = state.new_run_folder()
    (folder / "filler").write_bytes(b"x" * (200 * 1024))  # the run's folder exists; little room is left

    def bake(files: Any, targets: Any, *, metadata_file: Path, on_status: Any, on_text: Any, **_: Any) -> BakeRun:
        metadata_file.write_text(json.dumps({t: {"containerimage.digest": DIGEST} for t in targets}))
        for i in range(2000):  # about 300 KB of build output: more than there is room for
            on_text(f"#{i} a long line of build output that has to go to the target's log file ...........")
        return BakeRun(0, [])

    executor = Executor(
        plan,
        root=tmp_path,
        files=[],
        run_folder=run,
        options=Options(),
        display=display.Quiet(),
        runner=process.Runner({}),
        bake=bake,
    )
    results = executor.run()
    assert [r.status for r in results] == ["built", "built"]
    assert isinstance(executor.state_error, StateFolderError)
    assert "No space left" in str(executor.state_error)
    assert "writing the log" in str(executor.state_error)


def test_buildx_failing_to_write_its_metadata_there_is_a_state_folder_error(plan: Plan, tmp_path: Path) -> None:
    state = State(tmp_path / "state")
    run = state.new_run_folder()

    def bake(files: Any, targets: Any, *, metadata_file: Path, **_: Any) -> BakeRun:
        return BakeRun(1, [f"ERROR: write {metadata_file.parent}/.tmp-all.json123: no space left on device"])

    executor = Executor(
        plan,
        root=tmp_path,
        files=[],
        run_folder=run,
        options=Options(),
        display=display.Quiet(),
        runner=process.Runner({}),
        bake=bake,
    )
    executor.run()
    assert isinstance(executor.state_error, StateFolderError)
    assert "no space left on device" in str(executor.state_error)


# -- commands that need no engine ------------------------------------------------------------

TOML = """\
[tool.bake-ci]
image = "acme/app-ci"
python = ["3.11"]
"""


@pytest.mark.parametrize("kind", ["full", "read-only"])
@pytest.mark.parametrize("command", ["plan", "matrix"])
def test_commands_that_only_read_work_with_a_warning_at_most(
    mount: Mount, project: MakeProject, cli: RunCli, kind: str, command: str
) -> None:
    folder = full(mount) if kind == "full" else mount(ro=True)
    project(TOML, dockerfile="ARG BASE_IMAGE\nFROM ${BASE_IMAGE} AS ci\nCOPY . /app\n", files={"app.py": "1\n"})
    result = cli(command, "--log-format", "console", env={"BAKE_CI_STATE_DIR": str(folder / "state"), "HOME": "/"})
    assert result.rc == 0, result.err
    assert "internal error" not in result.err
    assert "Traceback" not in result.err
    assert listing(folder) in ([], ["filler"])
