"""What the context's files hold: git blob hashes, read or vouched for.

A file's bytes are hashed as git hashes a blob (SHA-1 of ``blob SIZE\\0`` and the bytes,
read in 1 MiB pieces), so that for files git already knows unchanged the index's hash
is taken instead of reading them; files whose lstat is what it was when an earlier run
hashed them are not read either (:class:`Memo`). Nothing outside the context is ever
read, and nothing but regular files is ever opened. The paths come from
:mod:`bake.context`; a target's fingerprint is made of their records in
:mod:`bake.fingerprint`.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from bake.context import Entry, read_ignore, scan

if TYPE_CHECKING:
    from bake.engine.process import Runner


CHUNK = 1 << 20
WORKERS = 4


# -- hashing file content -----------------------------------------------------------------


def _blob_once(fd: int, size: int, first: bool) -> tuple[str, int]:
    h = hashlib.sha1(f"blob {size}\0".encode(), usedforsecurity=False)
    total = 0
    if not first:
        os.lseek(fd, 0, os.SEEK_SET)
    want = min(size + 1, CHUNK)  # a small file in one read, then the read that sees EOF
    while True:
        chunk = os.read(fd, want)
        if not chunk:
            break
        total += len(chunk)
        h.update(chunk)
        want = CHUNK
    return h.hexdigest(), total


def blob_hash(path: str | os.PathLike[str]) -> str:
    """The git blob hash of a regular file's bytes, read in bounded memory.

    The file is opened without following a symlink and without blocking (a FIFO put in
    its place is not waited on), and read only if it is still a regular file.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        return f"<unreadable: {errno.errorcode.get(exc.errno or 0, exc.errno)}>"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return "<not a regular file>"
        size = st.st_size
        for attempt in range(3):
            digest, total = _blob_once(fd, size, attempt == 0)
            if total == size:
                return digest
            size = os.fstat(fd).st_size
        return f"<changing while read: {total} bytes>"
    except OSError as exc:
        return f"<unreadable: {errno.errorcode.get(exc.errno or 0, exc.errno)}>"
    finally:
        os.close(fd)


def hash_files(context: Path, paths: Sequence[str], workers: int = WORKERS) -> dict[str, str]:
    """Blob hashes of regular files of the context, several at a time."""
    root = os.fspath(context)

    def one(path: str) -> str:
        return blob_hash(os.path.join(root, path))  # noqa: PTH118 - str paths: cheaper for 20k files

    def some(chunk: Sequence[str]) -> list[str]:
        return [one(p) for p in chunk]

    if len(paths) < 2 * workers:
        return {p: one(p) for p in paths}
    # ThreadPoolExecutor.map ignores chunksize: a future per file costs more than hashing
    # a small one, so each task hashes a slice of the files
    size = max(16, min(512, len(paths) // (4 * workers)))
    chunks = [paths[i : i + size] for i in range(0, len(paths), size)]
    from concurrent.futures import ThreadPoolExecutor  # here: only runs that read files need it

    with ThreadPoolExecutor(max_workers=workers) as pool:
        hashes = [h for part in pool.map(some, chunks) for h in part]
    return dict(zip(paths, hashes, strict=True))


def file_hashes(context: Path, paths: Iterable[str]) -> dict[str, str]:
    """Records of the given paths (type, mode, content), as the fingerprint holds them."""
    out: dict[str, str] = {}
    for path in sorted(paths):
        full = context / path
        try:
            entry = Entry.of(full, full.lstat())
        except OSError:
            out[path] = "<missing>"
            continue
        out[path] = entry.record(blob_hash(full) if entry.kind == "file" else None)
    return out


# -- what git already knows ----------------------------------------------------------------


def _git(runner: Runner, args: Sequence[str], cwd: Path) -> str:
    """``git ARGS`` in ``cwd``: its stdout (through the process runner)."""
    from bake.engine import git

    return git.output(runner, ["-c", "core.quotepath=off", *args], cwd=cwd)


def _in_git_checkout(path: Path) -> bool:
    return any((p / ".git").exists() for p in (path, *path.parents))


#: Below this size of git's index (about 700 tracked files) reading the files is cheaper
#: than the three git processes that would vouch for them.
GIT_WORTHWHILE = 64 * 1024


def git_worthwhile(path: Path) -> bool:
    """Whether ``path`` is in a git checkout whose index is large enough for
    :func:`git_blobs` to pay off (a ``.git`` file, as in worktrees, counts: git decides)."""
    for p in (path, *path.parents):
        dot_git = p / ".git"
        if dot_git.is_dir():
            try:
                return (dot_git / "index").stat().st_size >= GIT_WORTHWHILE
            except OSError:
                return False
        if dot_git.exists():
            return True
    return False


_U32 = 1 << 32
# `git ls-files --stage -v --debug -z`: "H": a plain cached entry (lowercase: assume-unchanged,
# "S": skip-worktree, others unmerged or being removed); regular files only, stage 0, SHA-1
_STAGED_RE = re.compile(
    r"H (?:100644|100755) ([0-9a-f]{40}) 0\t([^\0]*)\0"
    r"[ \t]*ctime: ([0-9]+):([0-9]+)\n[ \t]*mtime: ([0-9]+):([0-9]+)\n"
    r"[ \t]*dev: [0-9]+\tino: ([0-9]+)\n[ \t]*uid: [0-9]+\tgid: [0-9]+\n[ \t]*size: ([0-9]+)\t"
)
_TREE_RE = re.compile(r"[0-7]+ blob ([0-9a-f]{40}) +([0-9]+)\t[^\0]*\0")


class Known(NamedTuple):
    """What git's index says about one file: its blob, the blob's length, and the stat
    data of the file when git hashed it, as ``"MTIME CTIME INODE SIZE"`` with seconds,
    inode and size cut to 32 bits as the index keeps them."""

    blob: str
    blob_size: int
    stat: str

    def describes(self, entry: Entry) -> bool:
        """Whether the file is still what git hashed, with no conversion between its bytes
        and the blob (the blob is as long as the file)."""
        return entry.size == self.blob_size and _stat_key(entry) == self.stat


def _stat_key(entry: Entry) -> str:
    mtime_ns, ctime_ns, ino = entry.identity
    m, c = divmod(mtime_ns, 1_000_000_000), divmod(ctime_ns, 1_000_000_000)
    return f"{m[0] % _U32}:{m[1]} {c[0] % _U32}:{c[1]} {ino % _U32} {entry.size % _U32}"


def _index_mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def git_blobs(runner: Runner, context: Path) -> dict[str, Known]:
    """What git's index says about the context's tracked regular files whose content it
    can vouch for: not marked assume-unchanged or skip-worktree, and not "racily clean"
    (changed in the same instant the index was written). The caller trusts an entry only
    where the file's lstat still matches it (:meth:`Known.describes`), as git itself
    does, and hashes every other file itself, the same way, so the result is the same
    with or without git. Empty outside a git checkout or when git cannot answer."""
    if not _in_git_checkout(context):
        return {}
    from bake.engine.process import CommandFailed

    try:
        index = context / _git(runner, ["rev-parse", "--git-path", "index"], context).strip()
        written = _index_mtime(index)
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=2) as pool:
            staged, tree = pool.map(
                lambda c: _git(runner, c, context),
                (["ls-files", "--stage", "-v", "--debug", "-z"], ["ls-tree", "-r", "-l", "-z", "HEAD"]),
            )
    except (CommandFailed, UnicodeDecodeError, OSError):
        return {}
    if written is None or _index_mtime(index) != written:  # rewritten meanwhile: trust none of it
        return {}
    sizes = {blob: int(size) for blob, size in _TREE_RE.findall(tree)}
    found: dict[str, Known] = {}
    written_s = written // 1_000_000_000
    for blob, path, c_s, c_ns, m_s, m_ns, ino, size in _STAGED_RE.findall(staged):
        if blob not in sizes:
            continue
        if int(m_s) >= written_s - 1 and int(m_s) * 1_000_000_000 + int(m_ns) >= written:
            continue  # racily clean: changed in the instant the index was written
        found[path] = Known(blob, sizes[blob], f"{m_s}:{m_ns} {c_s}:{c_ns} {ino} {size}")
    return found


def content_records(
    context: Path,
    entries: Mapping[str, Entry],
    paths: Iterable[str],
    memo: Memo | None = None,
    runner: Runner | None = None,
) -> dict[str, str]:
    """Records of ``paths`` (entries of the context): files by their blob hash, from
    ``memo`` (what an earlier run hashed) where the file's lstat is still what it was
    then, else from git's index where it still describes the file (asked through
    ``runner`` when that pays off), else read here, several at a time. ``memo`` is updated with what this call
    learned."""
    wanted = list(paths)
    files = [p for p in wanted if entries[p].kind == "file"]
    blobs = memo.blobs(entries, files) if memo is not None else {}
    missing = [p for p in files if p not in blobs]
    pays_off = runner is not None and missing and _git_pays_off(context, entries, missing)
    known = git_blobs(runner, context) if runner is not None and pays_off else {}
    for p in missing:
        hit = known.get(p)
        if hit is not None and hit.describes(entries[p]):
            blobs[p] = hit.blob
    hashed = hash_files(context, [p for p in missing if p not in blobs])
    blobs.update(hashed)
    if memo is not None:
        memo.learn(entries, {p: blobs[p] for p in missing if p in blobs})
    file_records: dict[int, str] = {}  # a file's record up to its blob hash, by its mode
    records = {}
    for p in wanted:
        entry = entries[p]
        if entry.kind != "file":
            records[p] = entry.record()
            continue
        head = file_records.get(entry.mode)
        if head is None:
            head = file_records[entry.mode] = entry.record("")
        records[p] = head + blobs[p]
    return records


#: Fewer files to read than this, of fewer bytes than that, are read faster than git's
#: index is asked about them.
GIT_MIN_FILES = 64
GIT_MIN_BYTES = 8 * CHUNK


def _git_pays_off(context: Path, entries: Mapping[str, Entry], missing: Sequence[str]) -> bool:
    """Whether asking git's index for ``missing`` files beats reading them."""
    if len(missing) < GIT_MIN_FILES and sum(entries[p].size for p in missing) < GIT_MIN_BYTES:
        return False
    return git_worthwhile(context)


# -- what an earlier run hashed -------------------------------------------------------------

#: Files changed this long before a run began are not remembered by it: a later change
#: within the same timestamp tick would leave the same lstat (git's "racily clean").
SETTLED_NS = 2_000_000_000


class Memo:
    """The blob hashes an earlier run computed for the context's files, each with the
    file's lstat then (permission bits, size, mtime, ctime, inode), kept in the state
    folder. A file whose lstat is unchanged has the same bytes: any write changes its
    ctime, which no one can set (git trusts its index by the same data). A file that
    changed shortly before a run began is not remembered by that run."""

    HEADER = "bake-ci-blobs/1"

    def __init__(self, path: Path, context: Path, started: int | None = None) -> None:
        self.path = path
        self.origin = f"{self.HEADER} {os.fspath(context.resolve())}"
        #: path -> (lstat key, blob), as read
        self.found: dict[str, tuple[str, str]] = {}
        #: how many files the memo holds
        self.size = 0
        self.learned: dict[str, tuple[str, str]] = {}
        self.hits = 0
        #: when this run began reading the context (ns since the epoch)
        self.started = time.time_ns() if started is None else started
        self._read()

    def _read(self) -> None:
        try:
            fields = self.path.read_text(encoding="utf-8", errors="surrogateescape").split("\0")
        except (OSError, ValueError):
            return
        if fields[0] != self.origin or len(fields) % 3 != 2:
            return  # another context's, another version's, or cut short
        self.found = {fields[i]: (fields[i + 1], fields[i + 2]) for i in range(1, len(fields) - 1, 3)}
        self.size = len(self.found)

    @staticmethod
    def key(entry: Entry) -> str:
        mtime_ns, ctime_ns, ino = entry.identity
        return f"{entry.mode} {entry.size} {mtime_ns} {ctime_ns} {ino}"

    def blobs(self, entries: Mapping[str, Entry], files: Iterable[str]) -> dict[str, str]:
        """The remembered blobs of ``files`` whose lstat is what it was."""
        get, key = self.found.get, self.key
        out = {}
        for p in files:
            hit = get(p)
            if hit is not None and hit[0] == key(entries[p]):
                out[p] = hit[1]
        self.hits += len(out)
        return out

    def learn(self, entries: Mapping[str, Entry], blobs: Mapping[str, str]) -> None:
        """Remember ``blobs`` of files that had settled before this run began."""
        settled = self.started - SETTLED_NS
        for p, blob in blobs.items():
            entry = entries[p]
            if max(entry.identity[0], entry.identity[1]) < settled and not blob.startswith("<"):
                self.learned[p] = (self.key(entry), blob)

    def save(self, entries: Mapping[str, Entry]) -> str | None:
        """Write what was learned, with what is still true of the earlier runs' (files
        still there with the same lstat); nothing when that is what the file holds.
        A folder that cannot be written costs the next run time only: why, or None."""
        if not self.learned and self.hits == self.size:
            return None  # every file remembered was found as it was
        key = self.key
        kept = {
            p: hit
            for p, hit in self.found.items()
            if p not in self.learned and (e := entries.get(p)) is not None and e.kind == "file" and hit[0] == key(e)
        }
        if not self.learned and len(kept) == len(self.found):
            return None
        kept.update(self.learned)
        text = "\0".join([self.origin, *(f"{p}\0{k}\0{b}" for p, (k, b) in kept.items())]) + "\0"
        from bake.files import write_atomic

        try:
            write_atomic(self.path, text, errors="surrogateescape")
        except OSError as exc:
            return exc.strerror or str(exc)
        return None


# -- one read of the context --------------------------------------------------------------


class ContextScan(NamedTuple):
    """The build context as one scan saw it, and the memo of the hashes of its files."""

    entries: dict[str, Entry]
    memo: Memo | None


def scan_context(context: Path, dockerfile_path: Path, memo_file: Path | None) -> ContextScan:
    """Scan the context that the Dockerfile at ``dockerfile_path`` is built from (its
    ignore file applied), and read the memo in ``memo_file`` (before the scan: a file
    that changes meanwhile is not remembered)."""
    memo = Memo(memo_file, context) if memo_file is not None else None
    entries = scan(context, read_ignore(context, dockerfile_path))
    return ContextScan(entries, memo)
