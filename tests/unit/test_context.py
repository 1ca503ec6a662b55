"""The build context as BuildKit sees it: types, modes, symlinks, empty directories,
special files, bounded memory, git's shortcut, and ``inputs`` that match nothing."""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from bake import bases, content, fingerprint, registry
from bake.context import Entry, Ignore, scan
from bake.errors import ConfigError

from .conftest import RunCli
from .helpers import fingerprints

MakeProject = Callable[..., Path]

TOML = """\
[tool.bake-ci]
image = "acme/app-ci"
python = ["3.12"]
registry = "localhost:5000/acme"
"""

COPY_ALL = "ARG BASE_IMAGE\nFROM ${BASE_IMAGE} AS ci\nCOPY . /app\n"


@pytest.fixture
def digests(monkeypatch: pytest.MonkeyPatch) -> dict[str, str | None]:
    """Image digests in place of the registry (a missing key resolves to a fixed digest)."""
    found: dict[str, str | None] = {}

    def resolve(client: object, runner: object, ref: str, platform: str | None = None) -> registry.Resolution:
        digest = found.get(ref, "sha256:" + "a" * 64)
        return registry.Resolution(ref, digest, () if digest else (registry.Answer(ref, "not found"),))

    monkeypatch.setattr(bases, "resolve_base", resolve)
    return found


def ci(root: Path) -> fingerprint.Fingerprint:
    fps = fingerprints(root)
    assert fps.missing == {}
    return fps.values["ci-py312"]


# -- what counts ----------------------------------------------------------------------------


def test_a_files_mode_counts(project: MakeProject, digests: dict[str, str | None]) -> None:
    root = project(TOML, dockerfile=COPY_ALL, files={"entrypoint.sh": "#!/bin/sh\n"})
    (root / "entrypoint.sh").chmod(0o644)
    before = ci(root)
    (root / "entrypoint.sh").chmod(0o755)
    after = ci(root)
    assert after.changed_since(before.parts) == ["entrypoint.sh"]
    assert after.parts["file:entrypoint.sh"].startswith("file 0755 ")


def test_a_symlinks_target_counts_not_what_it_points_to(project: MakeProject, digests: dict[str, str | None]) -> None:
    root = project(TOML, dockerfile=COPY_ALL, files={"a.txt": "same\n", "b.txt": "same\n", "dir/x": ""})
    (root / "dir" / "l").symlink_to("../a.txt")
    before = ci(root)
    (root / "dir" / "l").unlink()
    (root / "dir" / "l").symlink_to("../b.txt")  # same bytes behind it, another target
    after = ci(root)
    assert after.changed_since(before.parts) == ["dir/l"]
    assert after.parts["file:dir/l"] == "link -> ../b.txt"


def test_an_empty_directory_counts(project: MakeProject, digests: dict[str, str | None]) -> None:
    root = project(TOML, dockerfile=COPY_ALL, files={"src/a.py": ""})
    before = ci(root)
    (root / "src" / "empty").mkdir()
    after = ci(root)
    assert after.changed_since(before.parts) == ["src/empty"]
    (root / "src" / "empty").chmod(0o700)
    assert ci(root).changed_since(after.parts) == ["src/empty"]


def test_mtimes_do_not_count(project: MakeProject, digests: dict[str, str | None]) -> None:
    root = project(TOML, dockerfile=COPY_ALL, files={"a.txt": "x\n"})
    before = ci(root)
    os.utime(root / "a.txt", (1, 1))
    assert ci(root).value == before.value


def test_an_image_in_copy_from_counts_by_digest(project: MakeProject, digests: dict[str, str | None]) -> None:
    dockerfile = COPY_ALL + "COPY --from=localhost:5000/acme/tools:1 /t /t\nRUN --mount=from=busybox:1,target=/b true\n"
    root = project(TOML, dockerfile=dockerfile)
    before = ci(root)
    digests["localhost:5000/acme/tools:1"] = "sha256:" + "b" * 64  # re-pushed under the same tag
    assert ci(root).changed_since(before.parts) == ["external sources"]
    digests["busybox:1"] = None
    why = fingerprints(root).missing["ci-py312"]
    assert "busybox:1" in why


# -- special files: never read, never a hang or a traceback --------------------------------


@pytest.fixture
def special(tmp_path: Path) -> Iterator[Path]:
    """A context holding a dangling link, a FIFO, links to /dev/zero and to a secret
    outside the context, and a socket."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("do not read\n", encoding="utf-8")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "app.py").write_text("print()\n", encoding="utf-8")
    (ctx / ".#app.py").symlink_to("user@host.1234:1700000000")
    os.mkfifo(ctx / "fifo")
    (ctx / "zero").symlink_to("/dev/zero")
    (ctx / "secret").symlink_to(outside / "secret")
    (ctx / "loop").symlink_to("loop")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(os.fspath(ctx / "sock"))
    yield ctx
    sock.close()


def test_special_files_are_hashed_by_type_and_never_opened(special: Path) -> None:
    entries = scan(special, Ignore(()))
    records = content.content_records(special, entries, list(entries))
    assert records[".#app.py"] == "link -> user@host.1234:1700000000"
    assert records["zero"] == "link -> /dev/zero"
    assert records["secret"] == f"link -> {special.parent / 'outside' / 'secret'}"
    assert records["loop"] == "link -> loop"
    assert records["fifo"].startswith("fifo ")
    assert records["sock"].startswith("socket ")
    assert records["app.py"].startswith("file ")


def test_plan_with_special_files_finishes(
    special: Path, monkeypatch: pytest.MonkeyPatch, digests: dict[str, str | None], cli: RunCli
) -> None:
    (special / "pyproject.toml").write_text(TOML, encoding="utf-8")
    (special / "Dockerfile").write_text(COPY_ALL, encoding="utf-8")
    monkeypatch.chdir(special)
    run = cli("plan", "--push", "--branch", "main")
    assert run.rc == 0, run.err
    assert "Traceback" not in run.err


def test_a_file_swapped_for_a_fifo_is_not_waited_on(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "f")
    assert content.blob_hash(tmp_path / "f") == "<not a regular file>"
    (tmp_path / "l").symlink_to("/dev/zero")
    assert content.blob_hash(tmp_path / "l").startswith("<unreadable")  # O_NOFOLLOW


def test_a_large_file_is_hashed_in_bounded_memory(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with big.open("wb") as f:
        f.truncate(500 * 1024 * 1024)  # sparse: costs no disk
    # the child's own peak: VmHWM belongs to the new process image, where ru_maxrss keeps
    # the peak of the process it was forked from (a long pytest run), so it is used only
    # where there is no /proc
    script = textwrap.dedent(
        f"""
        import re, resource
        from pathlib import Path
        from bake import content
        print(content.blob_hash({os.fspath(big)!r}))
        status = Path("/proc/self/status")
        found = re.search(r"VmHWM:\\s+(\\d+) kB", status.read_text()) if status.exists() else None
        print(found[1] if found else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert len(out[0]) == 40
    assert int(out[1]) < 150 * 1024, f"peak RSS {int(out[1]) // 1024} MiB"


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_blob_hash_is_gits() -> None:
    assert (
        content.blob_hash(Path(__file__))
        == subprocess.run(
            ["git", "hash-object", "--no-filters", __file__], capture_output=True, text=True, check=True
        ).stdout.strip()
    )


# -- git's shortcut gives the same answer -----------------------------------------------------


def test_git_is_asked_only_where_it_pays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not content.git_worthwhile(tmp_path)  # no checkout
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "index").write_bytes(b"x" * 100)
    assert not content.git_worthwhile(tmp_path / "sub")  # a small index: reading files is cheaper
    (tmp_path / ".git" / "index").write_bytes(b"x" * content.GIT_WORTHWHILE)
    assert content.git_worthwhile(tmp_path / "sub")


def _git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_with_and_without_git_the_fingerprint_is_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, digests: dict[str, str | None]
) -> None:
    files = {
        "pyproject.toml": TOML,
        "Dockerfile": COPY_ALL,
        "src/app.py": "print('hi')\n",
        "src/run.sh": "#!/bin/sh\n",
        "crlf.txt": "a\r\nb\r\n",
        "data/blob.bin": "\0" * 5000,
        ".dockerignore": ".git\n",
    }
    plain = tmp_path / "plain"
    repo = tmp_path / "repo"
    for root in (plain, repo):
        for name, text in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(text.encode())
        (root / "src" / "run.sh").chmod(0o755)
        (root / "src" / "group-writable.txt").write_text("g\n", encoding="utf-8")
        (root / "src" / "group-writable.txt").chmod(0o664)  # git records 644: the real mode counts
        (root / "empty").mkdir()
        (root / "link").symlink_to("src/app.py")
    _git(repo, "init", "-q")
    (repo / ".gitattributes").write_text("*.txt text eol=crlf\n", encoding="utf-8")  # a conversion git applies
    (plain / ".gitattributes").write_text("*.txt text eol=crlf\n", encoding="utf-8")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "init")
    for small in ("GIT_WORTHWHILE", "GIT_MIN_FILES", "GIT_MIN_BYTES"):
        monkeypatch.setattr(content, small, 0)  # git is asked even for this small checkout
    monkeypatch.chdir(plain)
    without = ci(plain)
    monkeypatch.chdir(repo)
    assert ci(repo).parts == without.parts
    assert ci(repo).parts["file:src/group-writable.txt"].startswith("file 0664 ")

    # and git's answer is used: a tracked, unchanged file is not opened
    calls: list[str] = []
    real = content.blob_hash
    monkeypatch.setattr(content, "blob_hash", lambda p: calls.append(os.fspath(p)) or real(p))
    ci(repo)
    opened = sorted(Path(c).relative_to(repo).as_posix() for c in calls)
    assert opened == ["crlf.txt"]  # converted by git: its blob is not its bytes

    # a modified tracked file is read, not taken from the index: here with the same length
    # and its old mtime put back (as `cp -p` or an archive tool would); its ctime gives it away
    for root in (repo, plain):
        app = root / "src" / "app.py"
        old = app.stat()
        app.write_text("print('HI')\n", encoding="utf-8")
        os.utime(app, ns=(old.st_atime_ns, old.st_mtime_ns))
    changed = ci(repo)
    monkeypatch.chdir(plain)
    assert changed.parts == ci(plain).parts


# -- inputs that match nothing --------------------------------------------------------------


def test_an_inputs_glob_matching_nothing_is_a_config_error(
    project: MakeProject, digests: dict[str, str | None], cli: RunCli
) -> None:
    toml = TOML + '\n[tool.bake-ci.stages.ci]\ninputs = ["requirments.txt"]\n'
    root = project(toml, dockerfile=COPY_ALL, files={"requirements.txt": "requests\n"})
    with pytest.raises(ConfigError) as err:
        fingerprints(root)
    message = str(err.value)
    for part in ("tool.bake-ci.stages.ci.inputs[0]", "pyproject.toml", "'requirments.txt'", "'requirements.txt'"):
        assert part in message
    run = cli("plan", "--push", "--branch", "main")
    assert run.rc == 2
    assert "Did you mean 'requirements.txt'" in run.err
    assert "Traceback" not in run.err


def test_an_inputs_glob_matching_only_ignored_files_is_an_error(
    project: MakeProject, digests: dict[str, str | None]
) -> None:
    toml = TOML + '\n[tool.bake-ci.stages.ci]\ninputs = ["build/**"]\n'
    root = project(toml, dockerfile=COPY_ALL, files={"build/x.o": "", ".dockerignore": "build\n"})
    with pytest.raises(ConfigError, match=r"after \.dockerignore"):
        fingerprints(root)


def test_scan_keeps_an_ignored_directory_only_for_what_is_re_included(tmp_path: Path) -> None:
    for name in ("build/keep.txt", "build/drop.o", "docs/a.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("", encoding="utf-8")
    (tmp_path / "cache").mkdir()
    entries = scan(tmp_path, Ignore.parse("build\ncache\n!build/keep.txt\n"))
    assert sorted(entries) == ["build", "build/keep.txt", "docs", "docs/a.md"]
    assert entries["build"] == Entry("dir", entries["build"].mode)


# -- ADD <url> ----------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    headers_to_send: ClassVar[dict[str, str]] = {}
    requests: ClassVar[list[str]] = []

    def do_HEAD(self) -> None:
        type(self).requests.append(self.path)
        self.send_response(200)
        for key, value in self.headers_to_send.items():
            self.send_header(key, value)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Handler]]]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Handler.headers_to_send = {"ETag": '"v1"', "Content-Length": "3"}
    _Handler.requests = []
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler
    httpd.shutdown()
    httpd.server_close()


def test_add_url_counts_by_what_the_server_says(
    project: MakeProject, digests: dict[str, str | None], server: tuple[str, type[_Handler]]
) -> None:
    base, handler = server
    root = project(TOML, dockerfile=COPY_ALL + f"ADD {base}/tool.tgz /opt/\n")
    before = ci(root)
    assert ci(root).value == before.value
    handler.headers_to_send = {"ETag": '"v2"', "Content-Length": "3"}
    assert ci(root).changed_since(before.parts) == ["external sources"]
    handler.headers_to_send = {"Content-Length": "3"}  # nothing that tells a change
    why = fingerprints(root).missing["ci-py312"]
    assert "neither ETag nor Last-Modified" in why


def test_add_url_with_a_checksum_asks_no_server(
    project: MakeProject, digests: dict[str, str | None], server: tuple[str, type[_Handler]]
) -> None:
    base, handler = server
    root = project(TOML, dockerfile=COPY_ALL + f"ADD --checksum=sha256:{'0' * 64} {base}/tool.tgz /opt/\n")
    ci(root)
    assert handler.requests == []


def test_add_url_unreachable_means_no_fingerprint_and_no_credentials_shown(
    project: MakeProject, digests: dict[str, str | None]
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    root = project(TOML, dockerfile=COPY_ALL + f"ADD http://user:hunter2@127.0.0.1:{port}/x /x\n")
    why = fingerprints(root).missing["ci-py312"]
    assert "HEAD" in why
    assert "hunter2" not in why
