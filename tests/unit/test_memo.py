"""What an earlier run hashed (content.Memo): files whose lstat has not changed are
not read again, and every change a build could see is still seen. No Docker, no git."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bake import content
from bake.content import Memo
from bake.context import Ignore, scan

LATER = 60 * 1_000_000_000  # a run that began a minute after the files were written


def records(context: Path, memo_file: Path, *, started: int | None = None) -> tuple[dict[str, str], list[str]]:
    """The records of every path of ``context`` and the files read to get them."""
    read: list[str] = []
    original = content.blob_hash

    def spy(path: str | os.PathLike[str]) -> str:
        read.append(os.path.relpath(path, context))
        return original(path)

    memo = Memo(memo_file, context, started=time.time_ns() + LATER if started is None else started)
    entries = scan(context, Ignore(()))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(content, "blob_hash", spy)
        found = content.content_records(context, entries, list(entries), memo=memo)
    memo.save(entries)
    return found, sorted(read)


@pytest.fixture
def context(tmp_path: Path) -> Path:
    root = tmp_path / "context"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("print('hello')\n")
    (root / "README").write_text("readme\n")
    return root


def test_a_second_run_reads_no_file_and_gets_the_same_records(context: Path, tmp_path: Path) -> None:
    first, read = records(context, tmp_path / "memo")
    assert read == ["README", "src/app.py"]
    second, read = records(context, tmp_path / "memo")
    assert read == []
    assert second == first == content.file_hashes(context, first)


def test_a_same_size_change_with_its_mtime_put_back_is_seen(context: Path, tmp_path: Path) -> None:
    before, _ = records(context, tmp_path / "memo")
    app = context / "src" / "app.py"
    st = app.stat()
    app.write_text("print('HELLO')\n")  # same size
    os.utime(app, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime as it was; ctime cannot be put back
    after, read = records(context, tmp_path / "memo")
    assert read == ["src/app.py"]
    assert after["src/app.py"] != before["src/app.py"]
    assert after["src/app.py"] == content.file_hashes(context, ["src/app.py"])["src/app.py"]


def test_a_mode_change_is_seen(context: Path, tmp_path: Path) -> None:
    before, _ = records(context, tmp_path / "memo")
    (context / "README").chmod(0o600)
    after, read = records(context, tmp_path / "memo")
    assert read == ["README"]
    assert after["README"] != before["README"]


def test_files_changed_just_before_a_run_are_not_remembered(context: Path, tmp_path: Path) -> None:
    # the run began right after the files were written: a change in the same timestamp
    # tick would leave the same lstat, so neither file is trusted next time
    records(context, tmp_path / "memo", started=time.time_ns())
    _, read = records(context, tmp_path / "memo")
    assert read == ["README", "src/app.py"]


def test_another_context_or_a_cut_short_file_is_not_trusted(context: Path, tmp_path: Path) -> None:
    records(context, tmp_path / "memo")
    other = tmp_path / "other"
    other.mkdir()
    (other / "README").write_text("other\n")
    _, read = records(other, tmp_path / "memo")  # the same memo file, another context
    assert read == ["README"]

    records(context, tmp_path / "memo")
    text = (tmp_path / "memo").read_text()
    (tmp_path / "memo").write_text(text[: len(text) // 2])
    _, read = records(context, tmp_path / "memo")
    assert read == ["README", "src/app.py"]


def test_no_memo_file_is_written_when_nothing_changed(context: Path, tmp_path: Path) -> None:
    records(context, tmp_path / "memo")
    written = (tmp_path / "memo").stat()
    records(context, tmp_path / "memo")
    assert (tmp_path / "memo").stat().st_ino == written.st_ino  # not replaced


def test_a_state_folder_that_cannot_be_written_costs_only_time(context: Path, tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    first, _ = records(context, blocked / "memo")
    second, read = records(context, blocked / "memo")
    assert second == first
    assert read == ["README", "src/app.py"]


def test_a_memo_is_rewritten_with_what_still_holds(context: Path, tmp_path: Path) -> None:
    records(context, tmp_path / "memo")
    (context / "README").write_text("changed\n")
    _, read = records(context, tmp_path / "memo")  # learns README, keeps app.py
    assert read == ["README"]
    _, read = records(context, tmp_path / "memo")
    assert read == []
