"""Running a plan: one bake call (fail-fast) or one call per target (keep-going).

Calls run in worker threads on the same builder, so BuildKit still shares the steps
that concurrent targets have in common. The main thread only waits, so Ctrl-C and
SIGTERM land there: every child process group is stopped, unstarted calls are
dropped, and the results say what finished. A call that fails for a transient
registry or network reason (never inside a ``RUN`` step) is retried on the schedule of
:mod:`bake.retry`. Giving a built image its later tags is not retried here: the registry
client retries each of its requests already (retries never nest).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from bake import logs, noise, report, retry
from bake.display import Display
from bake.engine import buildx, process
from bake.engine.process import CommandFailed
from bake.errors import StateFolderError
from bake.plan import Plan
from bake.progress import Tracker, Vertex, describe
from bake.redact import redact
from bake.registry import RegistryError
from bake.report import Result
from bake.state import RunFolder

log = logs.get_logger("bake")

#: Failures worth another attempt: the registry or the network, not the build itself.
#: Go's net/http says ``Head "URL": EOF`` when a registry closes the connection unanswered.
TRANSIENT_RE = re.compile(
    r"connection reset|connection refused|connection (?:closed|lost)|closed (?:idle|network) connection|"
    r"broken pipe|unexpected EOF|\": EOF\b|: EOF$|"
    r"i/o timeout|timed? ?out\b|time-out|deadline exceeded|"
    r"no such host|temporary failure in name resolution|server misbehaving|network is unreachable|no route to host|"
    r"too ?many ?requests|service unavailable|bad gateway|gateway timeout|internal server error|"
    r"status(?: code)?:?\s*(?:429|50[0234])\b",
    re.IGNORECASE | re.MULTILINE,
)

#: Failures that another attempt cannot fix, even when the network also hiccuped on the way:
#: credentials, permissions, TLS set-up, a name that does not exist, a broken Dockerfile.
PERMANENT_RE = re.compile(
    r"status(?: code)?:?\s*40[13]\b|unauthorized|forbidden|denied|authentication required|no basic auth credentials|"
    r"x509|certificate|does not look like a TLS handshake|HTTP response to HTTPS client|"
    r"manifest unknown|name unknown|not found|invalid reference format|parse error|unknown instruction",
    re.IGNORECASE,
)


#: A manifest the registry refused while the same call pushed a layer it names for another
#: target. Targets that share a layer (``COPY . .`` into the images of two Python versions)
#: push it to one repository at once, and a distribution registry on filesystem storage
#: rewrites the repository's link to a layer in place (truncate, then write): a manifest
#: checked in that instant is refused, "manifest blob unknown" (400). Worth one more attempt
#: (its steps come from cache, the layer is there by then); a 400 of another cause fails again.
PUSH_RACE_RE = re.compile(r"unexpected status from PUT request to \S+/manifests/\S+: 400 Bad Request", re.IGNORECASE)


def _final_error(failure: Vertex | None, messages: Sequence[str]) -> str:
    """The error a call failed with: the failed vertex's, else buildx's last error line
    (earlier lines can be BuildKit's own retries of something that then failed for good)."""
    if failure is not None and failure.error.strip():
        return failure.error.strip()
    lines = [line for m in messages for line in m.splitlines() if line.strip()]
    errors = [m for m in lines if "error" in m.lower()]
    return (errors[-1] if errors else "\n".join(lines)).strip()


def is_transient(failure: Vertex | None, messages: Sequence[str]) -> bool:
    """Whether a failed call is worth retrying, judged on its final error. A failing ``RUN``
    step never is."""
    if failure is not None and failure.instruction == "RUN":
        return False
    text = _final_error(failure, messages)
    return PERMANENT_RE.search(text) is None and TRANSIENT_RE.search(text) is not None


def is_push_race(failure: Vertex | None, messages: Sequence[str]) -> bool:
    """Whether a failed call's final error is a manifest refused as the shared-layer race
    (:data:`PUSH_RACE_RE`) may refuse one: worth a second attempt, not more."""
    if failure is not None and failure.instruction == "RUN":
        return False
    return PUSH_RACE_RE.search(_final_error(failure, messages)) is not None


@dataclass(frozen=True)
class Options:
    keep_going: bool = False
    jobs: int | None = None
    retries: int = retry.RETRIES
    backoff: float = retry.FIRST
    builder: str | None = None
    no_cache: bool = False
    pull: bool = False


#: Runs one bake call: the executor's only way to build (a fake one in unit tests).
Bake = Callable[..., buildx.BakeRun]
#: Gives a pushed image its later tags (the fingerprint tag last), by target and digest.
Publish = Callable[[str, str], None]


class Executor:
    def __init__(
        self,
        plan: Plan,
        *,
        root: Path,
        files: Sequence[Path],
        run_folder: RunFolder,
        options: Options,
        display: Display,
        runner: process.Runner,
        sleep: Callable[[float], object] | None = None,
        jitter: Callable[[], float] = random.random,
        bake: Bake | None = None,
        publish: Publish = lambda target, digest: None,
    ) -> None:
        self.plan = plan
        self.runner = runner
        self.root = root
        self.files = list(files)
        self.run_folder = run_folder
        self.options = options
        self.display = display
        self.bake: Bake = bake or functools.partial(buildx.bake, runner)
        self.publish = publish
        self.stopping = threading.Event()
        # a wait between attempts ends at once when the run is stopped
        self.clock = retry.Clock(sleep=sleep or self.stopping.wait, random=jitter)
        self.policy = retry.Policy(retries=options.retries, first=options.backoff, budget=retry.budget(runner.environ))
        self.interrupted = False
        #: buildx's metadata (digests, image names) of every target built in this run
        self.metadata: dict[str, Any] = {}
        #: BuildKit's benign messages, kept out of the display (said once as notes at the end)
        self.folded = noise.Folded()
        #: the first write into the state folder that failed (a log, buildx's metadata):
        #: the build goes on, and the run ends with this error once it is summarised
        self.state_error: StateFolderError | None = None
        self._state_lock = threading.Lock()
        self.log_dir = run_folder.logs
        with run_folder.state.writing("creating this run's folders for logs and metadata"):
            self.log_dir.mkdir(parents=True, exist_ok=True)
            run_folder.metadata_file("all").parent.mkdir(parents=True, exist_ok=True)

    def _cannot_write(self, reason: OSError | str, doing: str) -> None:
        with self._state_lock:
            if self.state_error is None:
                self.state_error = self.run_folder.state.error(reason, doing)
                log.warning("the state folder cannot be written", reason=str(self.state_error))

    # -- the whole run ------------------------------------------------------------------

    def run(self, targets: Sequence[str] | None = None) -> list[Result]:
        """Build ``targets`` (default: all of the plan's); results in plan order."""
        ids = [t for t in self.plan.ids if targets is None or t in targets]
        calls = [[t] for t in ids] if self.options.keep_going else [ids]
        workers = min(self.options.jobs or len(calls), len(calls))
        results: dict[str, Result] = {}
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bake")
        futures: dict[Future[list[Result]], list[str]] = {}
        try:  # a Ctrl-C can land anywhere in here, submitting included
            for call in calls:
                ctx = contextvars.copy_context()
                futures[pool.submit(ctx.run, self._call, call)] = call
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    for r in future.result():
                        results[r.target] = r
        except KeyboardInterrupt:
            self.interrupted = True
            self.stopping.set()
            for future in futures:
                future.cancel()
            self.runner.stop_all()
            for future in futures:
                if not future.cancelled():
                    for r in future.result():
                        results[r.target] = r
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        for target in ids:
            if target not in results:
                results[target] = self._not_run(target)
        return [results[t] for t in ids]

    def _not_run(self, target: str) -> Result:
        return Result(target=target, status="cancelled", image=self.plan[target].image)

    # -- one bake call, with retries ------------------------------------------------------

    def _call(self, ids: list[str]) -> list[Result]:
        if self.stopping.is_set():
            return [self._not_run(t) for t in ids]
        name = ids[0] if len(ids) == 1 else "all"
        logs = {t: _LogFile(self.log_dir / f"{t}.log", self._cannot_write) for t in ids}
        try:
            retries = retry.Retry(self.policy, self.clock)
            earlier: list[Tracker] = []
            while True:
                tracker, run, seconds = self._attempt(ids, name, retries.attempt, logs)
                failures = [tracker.targets[t].failure for t in ids]
                failure = next((f for f in failures if f is not None), None)
                again = run.returncode != 0 and not self.stopping.is_set()
                again = again and (
                    is_transient(failure, run.messages)
                    or (retries.attempt == 1 and is_push_race(failure, run.messages))
                )
                delay = retries.delay() if again else None
                if delay is None:
                    break
                reason = failure.error if failure else (run.messages[-1] if run.messages else "")
                log.warning("retry", targets=ids, attempt=retries.attempt, delay=round(delay, 2), reason=redact(reason))
                retries.wait(delay)
                earlier.append(tracker)
                if self.stopping.is_set():
                    break
            said = self.run_folder.state.named_in("\n".join([*run.messages, failure.error if failure else ""]))
            if said is not None:  # buildx could not write its metadata, or the local cache, there
                self._cannot_write(said, "buildx wrote into it")
            metadata_file = self.run_folder.metadata_file(name)
            meta = report.load_metadata(metadata_file.read_text()) if metadata_file.exists() else {}
            self.metadata.update({t: meta[t] for t in ids if t in meta})
            results = []
            blame = run.returncode != 0 and not self.stopping.is_set() and failure is None
            for t in ids:
                r = report.result(
                    t,
                    image=self.plan[t].image,
                    metadata=meta,
                    progress=tracker.targets[t],
                    succeeded=run.returncode == 0,
                    stopped=self.stopping.is_set(),
                    seconds=seconds,
                    earlier=[e.targets[t] for e in earlier],
                    log_file=str(self.log_dir / f"{t}.log"),
                )
                if blame and r.status != "built":
                    # failed outside any step (resolving, pushing): buildx only said so in text
                    r = _with_error(r, run.messages)
                if r.status == "built" and r.digest:
                    r = self._published(r)
                results.append(r)
                self.display.finished(r, tracker.targets[t])
            return results
        finally:
            for fh in logs.values():
                fh.close()

    def _published(self, r: Result) -> Result:
        """A built image with its later tags; failed if they cannot be added. Not retried
        here: ``publish`` retries each request on its own (bake/reuse.py)."""
        assert r.digest is not None
        try:
            self.publish(r.target, r.digest)
            return r
        except (CommandFailed, RegistryError) as exc:
            said = exc.output if isinstance(exc, CommandFailed) else str(exc)
            error = redact(f"pushed, but its tags could not be added: {said.strip()[-300:]}")
            return replace(r, status="failed", error=error, failed_step="tagging")

    def _attempt(
        self, ids: list[str], name: str, attempt: int, logs: Mapping[str, _LogFile]
    ) -> tuple[Tracker, buildx.BakeRun, float]:
        tracker = Tracker(ids)
        lock = threading.Lock()
        metadata_file = self.run_folder.metadata_file(name)
        metadata_file.unlink(missing_ok=True)
        for t in ids:
            if attempt > 1:
                logs[t].write(f"--- attempt {attempt} ---\n")
            self.display.started(t, attempt)

        def on_status(status: dict[str, Any]) -> None:
            for event in tracker.feed(status):
                with lock:
                    logs[event.target].write(describe(event) + "\n")
                self.display.event(event)

        def on_text(line: str) -> None:
            owner = _owner(line, ids)
            for t in [owner] if owner else ids:
                with lock:
                    logs[t].write(line + "\n")
            if not self.folded.take(line):
                self.display.text(owner or name, line)

        started = time.monotonic()
        run = self.bake(
            self.files,
            ids,
            cwd=self.root,
            metadata_file=metadata_file,
            builder=self.options.builder,
            no_cache=self.options.no_cache,
            pull=self.options.pull,
            on_status=on_status,
            on_text=on_text,
        )
        return tracker, run, time.monotonic() - started


class _LogFile:
    """A target's log in the run's folder. A folder that cannot be written loses the rest
    of the log, never the build: the failure is handed to ``cannot_write`` once."""

    def __init__(self, path: Path, cannot_write: Callable[[OSError, str], None]) -> None:
        self.path = path
        self.cannot_write = cannot_write
        self.fh: IO[str] | None = None
        try:
            self.fh = path.open("w", encoding="utf-8")
        except OSError as exc:
            cannot_write(exc, f"opening the log {path.name}")

    def write(self, text: str) -> None:
        if self.fh is None:
            return
        try:
            self.fh.write(text)
        except OSError as exc:
            self._lost(exc)

    def close(self) -> None:
        if self.fh is None:
            return
        try:
            self.fh.close()
        except OSError as exc:
            self._lost(exc)

    def _lost(self, exc: OSError) -> None:
        fh, self.fh = self.fh, None
        if fh is not None:
            with contextlib.suppress(OSError):
                fh.close()
        self.cannot_write(exc, f"writing the log {self.path.name}")


def _owner(line: str, ids: Sequence[str]) -> str | None:
    """The target a line of buildx's own text is about (``ERROR: target ci-py312: ...``)."""
    if len(ids) == 1:
        return ids[0]
    match = re.search(r"\btarget ([A-Za-z0-9_-]+)", line)
    return match[1] if match and match[1] in ids else None


def _with_error(r: Result, messages: Sequence[str]) -> Result:
    errors = [m for m in messages if ("ERROR" in m or "error" in m) and noise.kind_of(m) is None]
    errors = errors or list(messages) or ["docker buildx bake failed"]
    return replace(r, status="failed", error=redact(errors[-1]), log_tail=tuple(redact(m) for m in messages[-20:]))
