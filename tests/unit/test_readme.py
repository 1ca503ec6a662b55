"""The README a user reads first: short, user-first, and its links lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def test_readme_is_short_and_starts_with_the_user() -> None:
    assert len(README.splitlines()) < 600
    names = list(sections(README))
    assert names[0] == "Quick start"
    assert names[-1] == "Development"
    quick = sections(README)["Quick start"]
    for command in ("pip install ./bake-ci", "bake-ci build", "bake-ci status", "bake-ci shell", "bake-ci doctor"):
        assert command in quick, command
    assert "[tool.bake-ci]" in quick
    assert "ci/templates/github-build.yml" in quick


def test_development_keeps_the_two_commands_exactly() -> None:
    development = sections(README)["Development"]
    assert (
        "ci/setup   # engine (if needed) + bake-ci in .venv + this repo's own CI images, built by bake-ci\n"
        "ci/test    # the whole test suite: ruff, mypy, unit tests, engine tests\n"
    ) in development
    assert "ci/setup" not in README.split("## Development")[0]


def test_exit_codes_have_a_section() -> None:
    rows = re.findall(r"^\| (\d+|any) \|", sections(README)["Exit codes"], flags=re.M)
    assert rows[:5] == ["0", "1", "2", "3", "130"]


def test_benchmark_summary_is_short_and_links_the_tables() -> None:
    bench = sections(README)["Benchmarks"].strip()
    assert len(bench.splitlines()) <= 15
    assert "(bench/README.md)" in bench


def test_one_naming_example_without_a_doubled_owner() -> None:
    """What users copy (code blocks, templates) never repeats the registry's owner in ``image``."""
    for path in [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "ci" / "templates").glob("*.yml")]:
        text = path.read_text(encoding="utf-8")
        copied = text if path.suffix == ".yml" else "\n".join(re.findall(r"```.*?```", text, flags=re.S))
        assert 'image = "acme/app-ci"' not in copied, path
        assert "acme/acme" not in copied, path
        assert not re.search(r"pip install bake-ci\s*$", text, flags=re.M), f"{path}: bake-ci is on no index yet"


def test_local_links_resolve() -> None:
    for path in [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), ROOT / "bench" / "README.md"]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text(encoding="utf-8")):
            if "://" in target:
                continue
            assert (path.parent / target).exists(), f"{path.name}: broken link {target}"
