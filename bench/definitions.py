"""What each thing bake-ci adds to a bake definition costs, measured by editing the definition.

Starting from ``bake-ci plan --push --no-reuse`` (the JSON that ``bake-ci build`` hands to
``docker buildx bake``) this builds variants and runs each with raw ``docker buildx bake``,
side by side with ``bake-ci build --push --no-reuse`` itself, on the second engine
(ci/engine-up --second: its builder can be pruned without touching anyone else's cache):

  raw          1 tag (the branch tag), 1 cache source (the branch's ref), registry cache export
  raw-noexport the same without any cache export
  raw-min      the same exporting mode=min (the target's own stage) instead of mode=max
  raw+inline   plus inline cache in the pushed image
  raw+tags     plus the commit and fingerprint tags
  raw+sources  plus the fallback branch's ref and the default branch's image as cache sources
  full         all of it: bake-ci's own definition (plus its fingerprint tag and label)
  rules        full, cut by the proposed rules: cache sources that exist and are distinct (by
               manifest digest; the default branch's image only when no cache ref exists, one
               HEAD per ref, in parallel), the branch tag in the definition and the other tags
               put through the registry API after the build, and no registry cache export when
               the cache repository already holds a manifest tagged with the target's
               fingerprint (the branch's ref is pointed at it instead); the look-ups and
               the tagging are timed with the build
  bake-ci      ``bake-ci build --push --no-reuse``: full, plus everything bake-ci does around it

Scenarios, on a feature branch whose cache and images were pushed once before (after the
default branch's): warm (the engine's builder pruned and its images removed), hot (nothing
changed, the builder holding what the set-up built: measured before the warm runs, whose
cache imported from the registry makes the next run slower for every contender), and
cold (a new registry namespace, pruned builder, on the default branch). Contenders
alternate their order between repetitions; the machine is left to settle before every
timed run (run.Settler).

    .venv/bin/python bench/definitions.py [--fixture small,large] [--reps 3] [--scenarios warm,hot,cold]
        [--contenders raw,full,rules,bake-ci] [--out bench/definitions.md]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import copy
import datetime as dt
import functools
import hashlib
import json
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anatomy  # bench/ is not a package
import results
from harness import BASE_IMAGE, REGISTRY, SecondEngine, Settler, bake_ci_command, clean_env, say, seconds_cell, sh
from run import pin_bake_ci

from bake.registry import Client, Manifest, RegistryError

BENCH = Path(__file__).resolve().parent
FIXTURES = {"small": BENCH / "fixture", "large": BENCH / "fixture-large"}
DEFAULT_BRANCH = "main"
FEATURE = "feature"
CONTENDERS = {
    "raw": "1 tag, 1 cache source, registry cache export",
    "raw-noexport": "… without any cache export",
    "raw-min": "… exporting mode=min instead of mode=max",
    "raw+inline": "… plus inline cache",
    "raw+tags": "… plus commit and fingerprint tags",
    "raw+sources": "… plus fallback ref and default branch's image as sources",
    "full": "bake-ci's definition, run by raw bake",
    "rules": "bake-ci's definition cut by the proposed rules (look-ups and tagging timed)",
    "bake-ci": "`bake-ci build --push --no-reuse`",
    "bake-ci-main": "`bake-ci build --push --no-reuse`, the main branch's bake-ci (before the rules)",
}
SCENARIOS = ("cold", "warm", "hot")
Definition = dict[str, Any]


def fingerprint(target: str, sha: str) -> str:
    """A stand-in for bake-ci's input fingerprint: one per target and commit."""
    return hashlib.sha256(f"{target}@{sha}".encode()).hexdigest()


@dataclass
class Parts:
    """One target's pieces of bake-ci's definition."""

    tags: list[str]
    fp_tag: str
    sources: list[str]  # cache-from entries: branch ref, fallback ref(s), default branch's image
    export: str  # type=registry cache-to entry
    inline: bool

    @classmethod
    def of(cls, tid: str, target: Definition, sha: str) -> Parts:
        tags = list(target["tags"])
        image = tags[0].rpartition(":")[0]
        prefix = target["target"] + "-py" + target["args"]["PYTHON_VERSION"]
        registry = [c for c in target["cache-to"] if c.startswith("type=registry")]
        return cls(
            tags=tags,
            fp_tag=f"{image}:{prefix}-fp-{fingerprint(tid, sha)[:12]}",
            sources=list(target["cache-from"]),
            export=registry[0],
            inline="type=inline" in target["cache-to"],
        )


def ref_of(entry: str) -> str:
    """``type=registry,ref=R,mode=max`` -> R."""
    return next(p[4:] for p in entry.split(",") if p.startswith("ref="))


def variant(plan: Definition, sha: str, name: str) -> Definition:
    """bake-ci's definition edited into the variant ``name`` (not ``rules``, see Rules)."""
    out = copy.deepcopy(plan)
    for tid, target in out["target"].items():
        parts = Parts.of(tid, target, sha)
        if name == "full":
            target["tags"] = [*parts.tags, parts.fp_tag]
            target["labels"]["dev.bake-ci.fingerprint"] = fingerprint(tid, sha)
            continue
        target["tags"] = parts.tags[:1] + ([*parts.tags[1:], parts.fp_tag] if name == "raw+tags" else [])
        target["cache-from"] = parts.sources if name == "raw+sources" else parts.sources[:1]
        cache_to = [] if name == "raw-noexport" else [parts.export]
        if name == "raw-min":
            cache_to = [parts.export.replace("mode=max", "mode=min")]
        if name == "raw+inline":
            cache_to.append("type=inline")
        target["cache-to"] = cache_to
    return out


@dataclass
class Rules:
    """The proposed definition rules, applied with registry look-ups around one raw bake call."""

    client: Client = field(default_factory=lambda: Client(lambda host: None))

    def head(self, ref: str) -> Manifest | None:
        try:
            return self.client.manifest(ref)
        except RegistryError:
            return None

    def plan(self, plan: Definition, sha: str) -> tuple[Definition, list[tuple[str, str]], list[str]]:
        """(definition, tags to put after the build as (source ref, new ref), cache refs to record).

        Look-ups (all in parallel): every cache source, and each target's fingerprint cache tag.
        """
        out = copy.deepcopy(plan)
        parts = {tid: Parts.of(tid, t, sha) for tid, t in out["target"].items()}
        refs = {ref_of(s) for p in parts.values() for s in p.sources}
        fp_caches = {tid: self.fp_cache(p) for tid, p in parts.items()}
        refs |= set(fp_caches.values())
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            found = dict(zip(refs, pool.map(self.head, refs), strict=True))
        after: list[tuple[str, str]] = []
        record: list[str] = []
        for tid, target in out["target"].items():
            p = parts[tid]
            seen: set[str] = set()
            sources = []
            for entry in p.sources:
                manifest = found[ref_of(entry)]
                if manifest is None or manifest.digest in seen:
                    continue
                is_image = "-cache:" not in ref_of(entry)
                if is_image and sources:  # an image's inline cache holds no more than a cache ref
                    continue
                seen.add(manifest.digest)
                sources.append(entry)
            target["cache-from"] = sources
            fp_cache = found[fp_caches[tid]]
            branch_ref = ref_of(p.export)
            if fp_cache is not None:  # this fingerprint's cache is there already: no export
                target["cache-to"] = ["type=inline"] if p.inline else []
                if found.get(branch_ref) is None or found[branch_ref].digest != fp_cache.digest:  # type: ignore[union-attr]
                    after.append((fp_caches[tid], branch_ref))
            else:
                target["cache-to"] = [p.export] + (["type=inline"] if p.inline else [])
                record.append(tid)
            target["tags"] = p.tags[:1]
            after += [(p.tags[0], t) for t in [*p.tags[1:], p.fp_tag]]
            target["labels"]["dev.bake-ci.fingerprint"] = fingerprint(tid, sha)
        after += [(ref_of(parts[tid].export), self.fp_cache(parts[tid])) for tid in record]
        return out, after, record

    @staticmethod
    def fp_cache(p: Parts) -> str:
        image = ref_of(p.export).rpartition(":")[0]
        return f"{image}:{p.fp_tag.rpartition(':')[2]}"

    def tag(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Put each source's manifest under the new ref, all sources fetched once, in parallel."""
        sources = sorted({s for s, _ in pairs})
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            manifests = dict(zip(sources, pool.map(self.client.manifest, sources), strict=True))
            missing = [s for s, m in manifests.items() if m is None]
            if missing:
                raise RuntimeError(f"not in the registry after the build: {missing[:3]}")
            list(pool.map(lambda pair: self.client.tag(manifests[pair[0]], pair[1]), pairs))  # type: ignore[arg-type]


@dataclass
class Project:
    path: Path
    sha: str

    @classmethod
    def create(cls, fixture: Path, path: Path) -> Project:
        shutil.copytree(fixture, path, ignore=shutil.ignore_patterns(".bake-ci", ".git", "__pycache__"))
        git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
        for step in (["init", "-q", "-b", DEFAULT_BRANCH], ["add", "-A"], ["commit", "-q", "-m", "fixture"]):
            sh(*git, *step, cwd=path)
        return cls(path, sh("git", "rev-parse", "HEAD", cwd=path).strip())

    def env(self, engine: SecondEngine, namespace: str) -> dict[str, str]:
        return engine.env(clean_env(BAKE_CI_REGISTRY=f"{REGISTRY}/{namespace}", BAKE_CI_BASE_IMAGE=BASE_IMAGE))

    def plan(self, engine: SecondEngine, namespace: str, branch: str) -> Definition:
        text = sh(*bake_ci_command(), "plan", "--push", "--no-reuse", "--branch", branch, cwd=self.path,
                  env=self.env(engine, namespace))  # fmt: skip
        return json.loads(text)  # type: ignore[no-any-return]


@dataclass
class Bench:
    engine: SecondEngine
    workdir: Path
    settle: Settler
    samples: dict[tuple[str, str, str], list[float]] = field(default_factory=dict)
    #: per (fixture, scenario, contender): anatomy.summary of each raw bake call
    anatomies: dict[tuple[str, str, str], list[dict[str, tuple[float, int]]]] = field(default_factory=dict)
    last_log: Path | None = None
    notes: list[str] = field(default_factory=list)
    runs: int = 0

    def run(self, project: Project, namespace: str, branch: str, contender: str) -> float:
        """One build of ``contender``; returns its wall time (look-ups and tagging of ``rules`` included)."""
        self.runs += 1
        env = project.env(self.engine, namespace)
        plan = project.plan(self.engine, namespace, branch)
        log = self.workdir / f"{self.runs:03d}-{contender}.log"
        self.last_log = None if contender.startswith("bake-ci") else log
        definition = self.workdir / f"{self.runs:03d}-{contender}.json"
        if contender.startswith("bake-ci"):
            if contender == "bake-ci-main":
                env["PYTHONPATH"] = str(self.workdir / "bake-ci-main")
            cmd = [*bake_ci_command(), "build", "--push", "--no-reuse", "--progress", "quiet", "--branch", branch]
            started = time.perf_counter()
            self.execute(cmd, project, env, log)
            return time.perf_counter() - started
        bake = ["docker", "buildx", "bake", "-f", str(definition), "--progress", "rawjson"]  # as bake-ci runs it
        if contender != "rules":
            definition.write_text(json.dumps(variant(plan, project.sha, contender), indent=1))
            started = time.perf_counter()
            self.execute(bake, project, env, log)
            return time.perf_counter() - started
        rules = Rules()
        started = time.perf_counter()
        edited, after, _ = rules.plan(plan, project.sha)
        definition.write_text(json.dumps(edited, indent=1))
        self.execute(bake, project, env, log)
        rules.tag(after)
        return time.perf_counter() - started

    def execute(self, cmd: list[str], project: Project, env: Mapping[str, str], log: Path) -> None:
        with log.open("w") as fh:
            fh.write(f"$ {shlex.join(cmd)}\n")
            fh.flush()
            code = subprocess.run(cmd, cwd=project.path, env=dict(env), stdout=fh, stderr=subprocess.STDOUT).returncode
        if code != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            raise RuntimeError(f"{shlex.join(cmd[:4])} failed ({code}), log {log}:\n{tail}")

    def attempt(self, what: str, fn: Callable[[], float], before: Callable[[], None] = lambda: None) -> float:
        """``fn()``, run again (twice at most) after a failure: the shared registry answers 500 under load."""
        for attempt in range(1, 4):
            before()
            try:
                return fn()
            except RuntimeError as exc:
                if attempt == 3:
                    raise
                last = [line for line in str(exc).splitlines() if "ERROR" in line][-1:] or [str(exc)[:200]]
                self.notes.append(f"{what}: attempt {attempt} failed ({last[0].strip()[:200]}), run again")
                say(self.notes[-1])
        raise AssertionError("unreachable")

    def timed(
        self, fixture: str, scenario: str, contender: str, fn: Callable[[], float], before: Callable[[], None]
    ) -> None:
        seconds = self.attempt(f"{fixture} {scenario} {contender}", fn, lambda: (before(), self.settle()))
        self.samples.setdefault((fixture, scenario, contender), []).append(seconds)
        if self.last_log is not None:
            found = anatomy.intervals(self.last_log.read_text(errors="replace"))
            self.anatomies.setdefault((fixture, scenario, contender), []).append(anatomy.summary(found))
        say(f"{fixture:5} {scenario:4} {contender:12} {seconds:6.2f} s")

    def rep(
        self,
        fixture: str,
        rep: int,
        contenders: Sequence[str],
        scenarios: Sequence[str],
        cold: Sequence[str],
        warm: Sequence[str],
    ) -> None:
        project = Project.create(FIXTURES[fixture], self.workdir / f"{fixture}-r{rep}")
        order = list(contenders) if rep % 2 == 0 else list(contenders)[::-1]
        tag = uuid.uuid4().hex[:6]
        if "cold" in scenarios:
            for contender in [c for c in order if c in cold]:
                namespace = f"bench-defs-{tag}-{fixture}-cold-{contender.replace('+', '-')}"
                run = functools.partial(self.run, project, namespace, DEFAULT_BRANCH, contender)
                self.timed(fixture, "cold", contender, run, self.engine.forget)
        if "warm" in scenarios or "hot" in scenarios:
            namespace = f"bench-defs-{tag}-{fixture}"
            for branch, seed in ((DEFAULT_BRANCH, "bake-ci"), (FEATURE, "rules")):  # untimed: pushed once before
                seeding = functools.partial(self.run, project, namespace, branch, seed)
                self.attempt(f"{fixture} set-up {branch}", seeding)
            runs = {c: functools.partial(self.run, project, namespace, FEATURE, c) for c in order}
            if "hot" in scenarios:  # before any warm run: the builder holds what the set-up built
                for contender in order:
                    self.timed(fixture, "hot", contender, runs[contender], lambda: None)
            if "warm" in scenarios:
                for contender in [c for c in order if c in warm]:
                    self.timed(fixture, "warm", contender, runs[contender], self.engine.forget)


def markdown(bench: Bench, fixtures: Sequence[str], contenders: Sequence[str], scenarios: Sequence[str]) -> str:
    parts = []
    for fixture in fixtures:
        head = ["contender", "what"]
        for sc in scenarios:
            head += [sc, f"{sc} ÷ raw"]
        if "cold" in scenarios and "hot" in scenarios:
            head.append("hot ÷ own cold")
        lines = [f"**{fixture} fixture** (`bench/{FIXTURES[fixture].name}`)", "", "| " + " | ".join(head) + " |",
                 "|" + "---|" * len(head)]  # fmt: skip
        for c in contenders:
            if not any((fixture, sc, c) in bench.samples for sc in scenarios):
                continue  # not run on this fixture
            row = [f"`{c}`", CONTENDERS[c]]
            for sc in scenarios:
                xs = bench.samples.get((fixture, sc, c), [])
                base = bench.samples.get((fixture, sc, "raw"), [])
                row.append(seconds_cell(xs))
                row.append(f"{statistics.median(xs) / statistics.median(base):.2f}×" if xs and base else "–")
            if "cold" in scenarios and "hot" in scenarios:
                hot, cold = bench.samples.get((fixture, "hot", c)), bench.samples.get((fixture, "cold", c))
                row.append(f"{statistics.median(hot) / statistics.median(cold):.2f}×" if hot and cold else "–")
            lines.append("| " + " | ".join(row) + " |")
        parts.append("\n".join(lines) + "\n")
        for sc in scenarios:
            parts.append(anatomy_table(bench, fixture, sc, contenders))
    return "\n".join(parts)


def anatomy_table(bench: Bench, fixture: str, scenario: str, contenders: Sequence[str]) -> str:
    """Median wall time per category (union over targets) of the raw bake calls of one scenario."""
    labels = [*(c for c, _ in anatomy.CATEGORIES), "span"]
    rows = []
    for c in contenders:
        found = bench.anatomies.get((fixture, scenario, c))
        if not found:
            continue
        cells = []
        for label in labels:
            xs = [a[label][0] for a in found if label in a]
            ns = [a[label][1] for a in found if label in a]
            cells.append(f"{statistics.median(xs):.2f} s ({max(ns)})" if xs else "–")
        rows.append(f"| `{c}` | " + " | ".join(cells) + " |")
    if not rows:
        return ""
    head = "| contender | " + " | ".join(labels) + " |\n|" + "---|" * (len(labels) + 1)
    intro = (
        f"Where the time of the {fixture} fixture's {scenario} bake calls goes (`bench/anatomy.py`: wall time "
        "of each category, union over all targets, median; in brackets the number of vertices or statuses):"
    )
    return intro + "\n\n" + head + "\n" + "\n".join(rows) + "\n"


def document(
    bench: Bench,
    reps: int,
    done: int,
    revision: str,
    started: float,
    command: str,
    fixtures: Sequence[str],
    contenders: Sequence[str],
    scenarios: Sequence[str],
) -> str:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    notes = "".join(f"- {note}\n" for note in bench.notes)
    return (
        f"Measured {stamp}, {done} of {reps} repetitions, on the second engine "
        f"(ci/engine-up --second), bake-ci at {revision}; the whole run took {(time.monotonic() - started) / 60:.1f} "
        f"min. Command: `{command}`. Median (min–max) wall time.\n\n"
        + markdown(bench, fixtures, contenders, scenarios)
        + (f"\n**Notes**\n\n{notes}" if notes else "")
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fixture", default="small,large")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--cold-contenders", default="raw,full,rules,bake-ci,bake-ci-main", help="measured cold")
    parser.add_argument("--warm-contenders", default="raw,full,rules,bake-ci,bake-ci-main", help="measured warm")
    parser.add_argument("--settle-timeout", type=float, default=10.0)
    parser.add_argument("--small-contenders", help="only these on the small fixture (default: --contenders)")
    parser.add_argument("--small-scenarios", help="only these on the small fixture (default: --scenarios)")
    parser.add_argument("--out", type=Path, help="splice the results into this file (e.g. bench/results.md)")
    parser.add_argument("--readme", action="store_true", help="also into bench/README.md (definitions block)")
    args = parser.parse_args(argv)
    fixtures = [f for f in args.fixture.split(",") if f]
    contenders = [c for c in args.contenders.split(",") if c]
    scenarios = [s for s in SCENARIOS if s in args.scenarios.split(",")]
    for c in contenders:
        if c not in CONTENDERS:
            parser.error(f"unknown contender {c}: choose from {', '.join(CONTENDERS)}")
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="bake-ci-bench-defs-"))
    say(f"work directory {workdir}")
    revision = pin_bake_ci(workdir / "bake-ci")  # a snapshot: commits landing mid-run do not mix in
    say(f"measuring bake-ci at {revision}")
    main_bake = workdir / "bake-ci-main"
    main_bake.mkdir()
    archive = subprocess.run(["git", "archive", "main", "bake"], cwd=BENCH.parent, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(main_bake)], input=archive.stdout, check=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # empty the second engine on the way out
    command = "python bench/definitions.py " + shlex.join(sys.argv[1:] if argv is None else list(argv))
    with SecondEngine.start() as engine:
        bench = Bench(engine, workdir, Settler(timeout=args.settle_timeout))
        for rep in range(args.reps):
            for fixture in fixtures if rep % 2 == 0 else fixtures[::-1]:
                cold, warm = args.cold_contenders.split(","), args.warm_contenders.split(",")
                mine, where = contenders, scenarios
                if fixture == "small":
                    mine = [c for c in contenders if c in (args.small_contenders or ",".join(contenders)).split(",")]
                    where = [s for s in scenarios if s in (args.small_scenarios or ",".join(scenarios)).split(",")]
                bench.rep(fixture, rep, mine, where, cold, warm)
            # after every repetition: what is measured so far survives an interrupted run
            text = document(bench, args.reps, rep + 1, revision, started, command, fixtures, contenders, scenarios)
            if args.out:
                args.out.write_text(results.with_definitions(args.out.read_text() if args.out.is_file() else "", text))
            if args.readme:
                readme = BENCH / "README.md"
                block = results.splice(readme.read_text(), text, results.DEFINITIONS_START, results.DEFINITIONS_END)
                readme.write_text(block)
    print(text)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
