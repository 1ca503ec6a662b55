"""The benchmark harness (bench/run.py): its table and ratio code, without Docker.

Its runs on the engine (the smoke run, the raw bake files) are in
tests/engine/test_bench_harness.py.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest

from .helpers import BENCH, load_bench

ROOT = BENCH.parent

harness = load_bench("harness", "harness.py")
results = load_bench("results", "results.py")
bench_run = load_bench("bench_run", "run.py")
bench_context = load_bench("bench_context", "context.py")
Sample = results.Sample


def samples(scenario: str, contender: str, *seconds: float, note: str = "") -> list[object]:
    return [Sample(scenario, contender, rep, s, note) for rep, s in enumerate(seconds)]


# -- formatting and ratios (no Docker) ------------------------------------------------------------


def test_the_context_bench_rates_each_group_against_its_own_sha256sum() -> None:
    text = bench_context.table(
        [
            ("with git", {"sha256sum": [0.3, 0.2, 0.4, 0.2], "plan --push": [0.1, 0.15, 0.2, 0.1]}),
            ("without git", {"sha256sum": [0.5], "plan --push": [0.6]}),
        ]
    )
    rows = text.splitlines()
    assert rows[2] == "| **with git** | | | |"
    assert rows[3] == "| sha256sum | 0.250 s | 0.200–0.400 s | 1.00× |"  # median of four: the middle two's mean
    assert rows[4] == "| plan --push | 0.125 s | 0.100–0.200 s | 0.50× |"
    assert rows[7] == "| plan --push | 0.600 s | 0.600–0.600 s | 1.20× |"


def test_the_context_bench_fixture_is_a_committed_checkout_without_git_in_its_context(tmp_path: Path) -> None:
    bench_context.make_project(tmp_path, 30, "ns")
    assert len(list((tmp_path / "src").rglob("*.py"))) == 30
    assert (tmp_path / ".dockerignore").read_text() == ".git\n"
    status = subprocess.run(["git", "status", "--porcelain"], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert status.stdout == ""  # every file committed: git's index describes them all


def test_seconds_cell_shows_median_and_range() -> None:
    assert harness.seconds_cell([3.0, 1.0, 2.0]) == "2.00 s (1.00–3.00)"
    assert harness.seconds_cell([1.234]) == "1.23 s"
    assert harness.seconds_cell([]) == "–"


def test_ratio_is_median_over_median() -> None:
    assert harness.ratio([1.0, 2.0, 9.0], [4.0, 4.0, 5.0]) == pytest.approx(0.5)
    assert harness.ratio([], [1.0]) is None
    assert harness.ratio([1.0], []) is None
    assert harness.ratio([1.0], [0.0]) is None


def test_table_has_a_row_per_scenario_and_ratios_to_raw_bake() -> None:
    data = [
        *samples("hot", "bake-ci", 1.0, 1.2, 1.1, note="reused 4"),
        *samples("hot", "raw-bake", 2.0, 2.2, 2.4),
        *samples("hot", "sequential", 4.4, 4.0, 4.8),
        *samples("cold", "raw-bake", 10.0),
    ]
    text = results.table(data, ["cold", "hot"], ["bake-ci", "raw-bake", "sequential"])
    lines = text.splitlines()
    assert lines[0] == (
        "| scenario | n | bake-ci | bake-ci ÷ raw bake | raw bake | sequential | sequential ÷ raw bake | bake-ci did |"
    )
    assert lines[1] == "|---|---|---|---|---|---|---|---|"
    cold, hot = lines[2], lines[3]
    assert cold.startswith("| 1. cold")
    assert "| 10.00 s |" in cold
    assert "| – |" in cold
    assert hot.startswith("| 3. hot")
    assert "| 1.10 s (1.00–1.20) | 0.50× | 2.20 s (2.00–2.40) | 4.40 s (4.00–4.80) | 2.00× | reused 4 |" in hot


def test_table_without_raw_bake_has_no_ratio_columns() -> None:
    text = results.table(samples("hot", "bake-ci", 1.0), ["hot"], ["bake-ci"])
    assert "÷" not in text
    assert "| 3. hot (nothing changed, local cache present) | 1 | 1.00 s | – |" in text


def test_acceptance_pass_fail_and_not_measured() -> None:
    data = [
        *samples("hot", "bake-ci", 1.0),
        *samples("hot", "raw-bake", 1.0),
        *samples("warm", "bake-ci", 1.1),
        *samples("warm", "raw-bake", 1.0),
        *samples("cold", "bake-ci", 7.0),
        *samples("cold", "sequential", 10.0),
    ]
    found = {c.name: c for c in results.checks(data)}
    assert found["hot: bake-ci ≤ 1.05× raw bake"].verdict == "PASS"
    assert found["warm from registry: bake-ci ≤ 1.05× raw bake"].verdict == "FAIL"
    assert found["cold: bake-ci ≤ 0.75× sequential"].verdict == "PASS"
    assert found["no change, new branch: bake-ci (reuse path) ≤ 0.2× raw bake"].verdict == "not measured"
    text = results.acceptance(list(found.values()))
    assert "- FAIL: warm from registry: bake-ci ≤ 1.05× raw bake (measured 1.10×)" in text
    assert "- PASS: cold: bake-ci ≤ 0.75× sequential (measured 0.70×)" in text


def test_markdown_has_header_table_extras_and_acceptance() -> None:
    meta = results.Meta("2026-01-01 00:00 UTC", 2, 23.5, "26.1.5", "0.13.1", "python bench/run.py", 600.0, ("a note",))
    data = [*samples("hot", "bake-ci", 1.0), *samples("hot", "raw-bake", 2.0)]
    text = results.markdown(meta, data, ["hot"], ["bake-ci", "raw-bake"], [("plan", "0.20 s")])
    assert text.startswith(
        "Measured 2026-01-01 00:00 UTC on 2 cores, 23.5 GiB memory; dockerd 26.1.5, buildx 0.13.1; "
        "the whole run took 10.0 min. Command: `python bench/run.py`.\n"
    )
    assert "| 3. hot (nothing changed, local cache present) | 1 | 1.00 s | 0.50× | 2.00 s | – |" in text
    assert "- plan: 0.20 s" in text
    assert "- a note" in text
    assert "- PASS: hot: bake-ci ≤ 1.05× raw bake (measured 0.50×)" in text


def test_timeline_groups_the_commands_bake_ci_logs() -> None:
    def at(seconds: float) -> str:
        return f"2026-01-01T00:00:{seconds:09.6f}Z"

    events = [
        {"event": "run", "cmd": "git rev-parse --abbrev-ref HEAD", "timestamp": at(0.1)},
        {
            "event": "run",
            "cmd": "/usr/bin/docker buildx imagetools inspect localhost:5000/a:b --format x",
            "timestamp": at(0.2),
        },
        {"event": "run", "cmd": "/usr/bin/docker buildx imagetools inspect localhost:5000/a:c", "timestamp": at(0.21)},
        {
            "event": "run",
            "cmd": "/usr/bin/docker buildx bake --progress rawjson --file /x/bake.json",
            "timestamp": at(0.3),
        },
        {"event": "result", "target": "a", "timestamp": at(2.5)},
        {"event": "result", "target": "b", "timestamp": at(2.5)},
    ]
    spawned = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc).timestamp()
    assert results.timeline(events, spawned, spawned + 2.61) == (
        "git rev-parse at 0.10 s; docker buildx imagetools inspect ×2 at 0.20 s; docker buildx bake at 0.30 s; "
        "result ×2 at 2.50 s; exit at 2.61 s"
    )


def test_cpu_table_shows_the_median_cpu_of_each_contender() -> None:
    data = [
        Sample("cold", "bake-ci", 0, 10.0, cpu=1.0),
        Sample("cold", "bake-ci", 1, 10.0, cpu=3.0),
        Sample("cold", "raw-bake", 0, 9.0, cpu=0.25),
        Sample("hot", "raw-bake", 0, 2.0),
    ]
    assert results.cpu_table(data, ["cold", "hot"], ["bake-ci", "raw-bake"]).splitlines() == [
        "| scenario | bake-ci | raw bake |",
        "|---|---|---|",
        "| 1. cold | 2.00 s | 0.25 s |",
        "| 3. hot | – | – |",
    ]


def test_bake_call_start_reads_bake_cis_json_log() -> None:
    log = (
        "$ bake-ci build --push\n"
        '{"event": "not reused", "timestamp": "2026-01-01T00:00:00.100000Z"}\n'
        '{"event": "build", "targets": ["a"], "timestamp": "2026-01-01T00:00:00.500000Z"}\n'
        "TARGET  STATUS\n"
    )
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc).timestamp()
    assert bench_run.bake_call_start(log) == pytest.approx(start + 0.5)
    assert bench_run.bake_call_start("nothing was built\n") is None


def test_extras_split_the_cold_gap_and_list_the_overheads() -> None:
    data = [
        Sample("cold", "bake-ci", 0, 13.0, before_bake=0.5),
        Sample("cold", "raw-bake", 0, 12.0),
        Sample("hot", "bake-ci-no-reuse", 0, 2.2, before_bake=0.25),
        Sample("hot", "raw-bake", 0, 2.0),
    ]
    found = dict(bench_run.extras(data, [0.2, 0.3], [0.1], {"bake-ci": "git at 0.1 s; exit at 0.5 s"}))
    assert found["cold: bake-ci minus raw bake (medians)"].startswith("+1.00 s, of which 0.50 s pass before")
    assert found["`bake-ci build` (--no-reuse, build path) vs raw bake on hot"] == "1.10× (+0.20 s)"
    assert found["`bake-ci --no-reuse`: time from its start to its `docker buildx bake` call (median)"] == "hot 0.25 s"
    assert found["`bake-ci plan`, 6 stages × 5 Pythons, whole process, runs: 2"] == "0.25 s (0.20–0.30)"
    assert found["where the time of one `bake-ci` run on hot goes (`-v` log)"] == "git at 0.1 s; exit at 0.5 s"


def test_splice_replaces_only_the_marked_block() -> None:
    readme = f"# x\n\n## Benchmarks\n\n{results.START}\nold\n{results.END}\n\n## Next\n"
    once = results.splice(readme, "new table\n")
    assert once == f"# x\n\n## Benchmarks\n\n{results.START}\nnew table\n{results.END}\n\n## Next\n"
    assert results.splice(once, "newer\n") == once.replace("new table", "newer")
    with pytest.raises(ValueError, match="no <!-- bench:start -->"):
        results.splice("# x\n", "table")


def test_bench_readme_has_the_benchmark_blocks_and_the_readme_links_it() -> None:
    text = (ROOT / "bench" / "README.md").read_text(encoding="utf-8")
    for marker in (results.START, results.END, results.DEFINITIONS_START, results.DEFINITIONS_END):
        assert text.count(marker) == 1, marker
    assert "python bench/run.py" in text
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(bench/README.md)" in readme
    assert results.START not in readme


def test_busy_fraction_from_proc_stat_deltas() -> None:
    assert harness.busy_fraction((100, 1000), (150, 1100)) == pytest.approx(0.5)
    assert harness.busy_fraction((100, 1000), (100, 1000)) == 1.0


def test_smoke_arguments() -> None:
    args = bench_run.parse_args(["--smoke", "--out", "x.md"])
    assert (args.reps, args.scenarios, args.contenders) == (1, ["hot"], ["bake-ci", "raw-bake"])
    args = bench_run.parse_args(["--scenarios", "hot,cold", "--contenders", "sequential,bake-ci"])
    assert args.scenarios == ["cold", "hot"]
    assert args.contenders == ["bake-ci", "sequential"]
    with pytest.raises(SystemExit):
        bench_run.parse_args(["--scenarios", "lukewarm"])


@pytest.mark.skipif(shutil.which("git") is None, reason="the harness puts its fixture copy in a git repository")
def test_sequential_builds_each_stage_per_python_one_after_another(tmp_path: Path) -> None:
    project = bench_run.Project.create(tmp_path / "p", "bench-test")
    cmds, _ = bench_run.commands("sequential", project, tmp_path / "r.json")
    order = [(c[c.index("--target") + 1], next(a for a in c if a.startswith("PYTHON_VERSION="))) for c in cmds]
    assert order == [
        ("deps", "PYTHON_VERSION=3.11"),
        ("ci", "PYTHON_VERSION=3.11"),
        ("deps", "PYTHON_VERSION=3.13"),
        ("ci", "PYTHON_VERSION=3.13"),
    ]
    first = cmds[0]
    assert "--push" in first
    assert first[first.index("--cache-to") + 1] == (
        "type=registry,ref=localhost:5000/bench-test/bench/app-ci-cache:deps-py3.11-main,mode=max,ignore-error=true"
    )
