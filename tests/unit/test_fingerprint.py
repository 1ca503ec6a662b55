"""Input fingerprints: .dockerignore, choosing input files, the hash, and a project's fingerprints.

Nothing here talks to Docker: base image digests come from a fake resolver, and any
attempt to start a process fails the test.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bake import bases, config_load, context, fingerprint, registry
from bake.context import Ignore
from bake.naming import PythonVersion
from bake.plan import Target, build_args

from . import helpers
from .helpers import fingerprints

MakeProject = Callable[..., Path]  # the `project` fixture of conftest.py

# -- .dockerignore --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "path", "ignored"),
    [
        # comments and blank lines are not patterns
        ("# secrets\n\n*.pyc\n", "a.pyc", True),
        ("# secrets\n", "# secrets", False),
        # `*` and `?` stay within one path component, patterns are anchored at the root
        ("*.pyc", "a.pyc", True),
        ("*.pyc", "src/a.pyc", False),
        ("src/*.pyc", "src/a.pyc", True),
        ("src/*.pyc", "src/sub/a.pyc", False),
        ("file?.txt", "file1.txt", True),
        ("file?.txt", "file10.txt", False),
        ("file?.txt", "file/.txt", False),
        ("src/*/gen", "src/a/gen/x.py", True),
        ("src/*/gen", "src/a/b/gen/x.py", False),
        ("[ab].txt", "a.txt", True),
        ("[ab].txt", "c.txt", False),
        ("[^ab].txt", "c.txt", True),
        ("[^ab].txt", "a.txt", False),
        # `**` spans any number of directories, including none
        ("**/*.pyc", "a.pyc", True),
        ("**/*.pyc", "src/pkg/a.pyc", True),
        ("**/*.pyc", "src/pkg/a.py", False),
        ("**/__pycache__", "src/pkg/__pycache__/m.pyc", True),
        ("docs/**", "docs/a/b/c.md", True),
        ("docs/**", "docsx/a.md", False),
        ("**", "anything/at/all", True),
        # a directory pattern covers everything below it, and only that directory
        ("build", "build", True),
        ("build", "build/lib/x.o", True),
        ("build/", "build/x.o", True),
        ("build", "builder/x.o", False),
        ("build", "src/build/x.o", False),
        # a leading `/` or `./` is the context's root
        ("/secrets", "secrets/key", True),
        ("/secrets", "app/secrets/key", False),
        ("./tmp", "tmp/x", True),
        # `!` re-includes; the last matching rule wins
        ("*.md\n!README.md", "README.md", False),
        ("*.md\n!README.md", "CHANGES.md", True),
        ("!README.md\n*.md", "README.md", True),
        ("docs\n!docs/keep.md", "docs/keep.md", False),
        ("docs\n!docs/keep.md", "docs/drop.md", True),
        ("*\n!src", "src/pkg/a.py", False),
        ("*\n!src", "setup.py", True),
        ("*\n!src\nsrc/**/*.pyc", "src/pkg/a.pyc", True),
        ("  *.log  \n! keep.log ", "keep.log", False),
    ],
)
def test_ignore_rules(rules: str, path: str, ignored: bool) -> None:
    assert Ignore.parse(rules).ignored(path) is ignored


def test_no_rules_ignore_nothing() -> None:
    assert not Ignore.parse("").ignored("a")
    assert not Ignore.parse("# only a comment\n\n").ignored("a/b")


component = st.from_regex(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,8}", fullmatch=True).filter(lambda c: c not in (".", ".."))
paths = st.lists(component, min_size=1, max_size=4).map("/".join)


@settings(max_examples=50)
@given(paths, component)
def test_ignore_a_path_its_contents_and_exceptions(path: str, child: str) -> None:
    assert Ignore.parse(path).ignored(path)
    assert Ignore.parse(path).ignored(f"{path}/{child}")
    assert Ignore.parse(f"/{path}").ignored(f"{path}/{child}")
    assert not Ignore.parse(path).ignored(f"{path}x")
    assert not Ignore.parse(path).ignored(f"~{child}/{path}")  # anchored at the root
    assert not Ignore.parse(f"{path}\n!{path}").ignored(path)
    assert Ignore.parse(f"!{path}\n{path}").ignored(path)
    assert not Ignore.parse(f"{path}\n!{path}/{child}").ignored(f"{path}/{child}")


def write(root: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


TREE = {
    "app.py": "print()",
    "app.log": "log",
    "README.md": "readme",
    "build/out.o": "o",
    "build/deep/x.o": "o",
    "build/keep.txt": "keep",
    ".git/HEAD": "ref",
    "src/pkg/__init__.py": "",
    "src/pkg/mod.py": "x = 1",
    "src/pkg/__pycache__/mod.cpython-312.pyc": "pyc",
    "docs/a b.md": "spaces",
}


def test_context_files_are_sorted_relative_posix_paths_minus_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, {**TREE, ".dockerignore": "# local junk\n*.log\nbuild\n.git\n**/__pycache__\n"})
    listed: list[str] = []
    real_scandir = os.scandir

    def spy(path: Any) -> Any:
        listed.append(Path(os.fsdecode(path)).relative_to(tmp_path).as_posix())
        return real_scandir(path)

    monkeypatch.setattr(context.os, "scandir", spy)
    files = context.context_files(tmp_path, context.read_ignore(tmp_path, tmp_path / "Dockerfile"))
    assert files == [".dockerignore", "README.md", "app.py", "docs/a b.md", "src/pkg/__init__.py", "src/pkg/mod.py"]
    # ignored directories are not even listed; the others are
    assert {".", "docs", "src", "src/pkg"} <= set(listed)
    assert not [d for d in listed if d.split("/")[0] in ("build", ".git") or "__pycache__" in d]


def test_context_files_honour_exceptions_below_an_ignored_directory(tmp_path: Path) -> None:
    write(tmp_path, TREE)
    files = context.context_files(tmp_path, Ignore.parse("build\n!build/keep.txt\n.git\n**/__pycache__\n*.log"))
    assert files == ["README.md", "app.py", "build/keep.txt", "docs/a b.md", "src/pkg/__init__.py", "src/pkg/mod.py"]


def test_context_files_without_dockerignore_is_everything(tmp_path: Path) -> None:
    write(tmp_path, TREE)
    assert context.context_files(tmp_path, context.read_ignore(tmp_path, tmp_path / "Dockerfile")) == sorted(TREE)


def test_read_ignore_prefers_the_dockerfiles_own_ignore_file(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            ".dockerignore": "*.txt\n",
            "ci.Dockerfile.dockerignore": "*.md\n",
            "docker/other.Dockerfile.dockerignore": "*.py\n",
        },
    )
    own = context.read_ignore(tmp_path, tmp_path / "ci.Dockerfile")
    assert own.ignored("a.md")
    assert not own.ignored("a.txt")
    nested = context.read_ignore(tmp_path, tmp_path / "docker" / "other.Dockerfile")
    assert nested.ignored("a.py")
    assert not nested.ignored("a.txt")
    shared = context.read_ignore(tmp_path, tmp_path / "Dockerfile")
    assert shared.ignored("a.txt")
    assert not shared.ignored("a.md")
    (tmp_path / ".dockerignore").unlink()
    assert not context.read_ignore(tmp_path, tmp_path / "Dockerfile").ignored("a.txt")


# -- select(): COPY semantics ------------------------------------------------------------------

FILES = [
    "Dockerfile",
    "docs/b.txt",
    "pyproject.toml",
    "requirements.txt",
    "requirements.txt.bak",
    "requirements-dev.txt",
    "src/a.py",
    "src/sub/b.py",
    "srcx/c.py",
    "sub/requirements.txt",
]


@pytest.mark.parametrize(
    ("patterns", "expected"),
    [
        (["requirements.txt"], ["requirements.txt"]),
        (["./requirements.txt"], ["requirements.txt"]),
        (["/requirements.txt"], ["requirements.txt"]),
        (["src"], ["src/a.py", "src/sub/b.py"]),
        (["src/"], ["src/a.py", "src/sub/b.py"]),
        (["./src/sub"], ["src/sub/b.py"]),
        (["sr?"], ["src/a.py", "src/sub/b.py"]),
        (["*.toml"], ["pyproject.toml"]),
        (["requirements*.txt"], ["requirements.txt", "requirements-dev.txt"]),
        (["**/*.py"], ["src/a.py", "src/sub/b.py", "srcx/c.py"]),
        (["**/requirements.txt"], ["requirements.txt", "sub/requirements.txt"]),
        (["src/**"], ["src/a.py", "src/sub/b.py"]),
        (["."], FILES),
        (["./"], FILES),
        (["requirements.txt", "src/sub", "requirements.txt"], ["requirements.txt", "src/sub/b.py"]),
        (["nothing-here"], []),
        ([], []),
    ],
)
def test_select(patterns: list[str], expected: list[str]) -> None:
    assert context.select(FILES, patterns) == expected


def test_select_glob_star_stays_within_a_directory() -> None:
    # COPY *.txt copies the context's top-level .txt files only (Go filepath.Match)
    assert context.select(FILES, ["*.txt"]) == ["requirements.txt", "requirements-dev.txt"]
    assert context.select(FILES, ["src/*.py"]) == ["src/a.py"]


# -- compute(): the hash ----------------------------------------------------------------------

hexdigest = st.binary(min_size=1, max_size=8).map(lambda b: hashlib.sha256(b).hexdigest())
names = st.from_regex(r"[A-Z][A-Z0-9_]{0,8}", fullmatch=True)


@st.composite
def inputs(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "stage_texts": draw(st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=3)),
        "args": draw(st.dictionaries(names, st.text(max_size=10), max_size=4)),
        "base_digests": draw(st.dictionaries(st.sampled_from(["python:3.12-slim", "debian:12"]), hexdigest)),
        "files": draw(st.dictionaries(paths, hexdigest, max_size=6)),
        "platforms": draw(st.lists(st.sampled_from(["linux/amd64", "linux/arm64", "linux/s390x"]), unique=True)),
    }


@settings(max_examples=50)
@given(inputs(), st.data())
def test_compute_is_deterministic_and_independent_of_mapping_order(kw: dict[str, Any], data: st.DataObject) -> None:
    first = fingerprint.compute(**kw)
    again = fingerprint.compute(**{k: (dict(v) if isinstance(v, dict) else list(v)) for k, v in kw.items()})
    assert (again.value, again.parts) == (first.value, first.parts)
    assert len(first.value) == 64
    assert first.short == first.value[:12]
    shuffled = {
        **kw,
        "files": dict(data.draw(st.permutations(list(kw["files"].items())))),
        "args": dict(data.draw(st.permutations(list(kw["args"].items())))),
        "base_digests": dict(reversed(kw["base_digests"].items())),
        "platforms": list(reversed(kw["platforms"])),
    }
    assert fingerprint.compute(**shuffled).value == first.value
    assert first.changed_since(fingerprint.compute(**shuffled).parts) == []


@settings(max_examples=50)
@given(inputs(), st.data())
def test_compute_changes_with_any_single_part(kw: dict[str, Any], data: st.DataObject) -> None:
    old = fingerprint.compute(**kw)
    what = data.draw(st.sampled_from(["edit file", "add file", "remove file", "arg", "dockerfile", "base", "platform"]))
    new = {k: (dict(v) if isinstance(v, dict) else list(v)) for k, v in kw.items()}
    if what == "edit file" and kw["files"]:
        path = data.draw(st.sampled_from(sorted(kw["files"])))
        new["files"][path] = data.draw(hexdigest.filter(lambda h: h != kw["files"][path]))
        expected = [path]
    elif what == "remove file" and kw["files"]:
        path = data.draw(st.sampled_from(sorted(kw["files"])))
        del new["files"][path]
        expected = [path]
    elif what in ("add file", "edit file", "remove file"):
        path = data.draw(paths.filter(lambda p: p not in kw["files"]))
        new["files"][path] = data.draw(hexdigest)
        expected = [path]
    elif what == "arg":
        name = data.draw(names)
        new["args"][name] = data.draw(st.text(max_size=10).filter(lambda v: v != kw["args"].get(name)))
        expected = ["build args"]
    elif what == "dockerfile":
        i = data.draw(st.integers(0, len(kw["stage_texts"]) - 1))
        new["stage_texts"][i] += "\nRUN true"
        expected = ["dockerfile"]
    elif what == "base":
        ref = data.draw(st.sampled_from(["python:3.12-slim", "debian:12"]))
        new["base_digests"][ref] = data.draw(hexdigest.filter(lambda h: h != kw["base_digests"].get(ref)))
        expected = ["base image"]
    else:
        platform = data.draw(st.sampled_from(["linux/amd64", "linux/arm64", "linux/s390x", "linux/riscv64"]))
        if platform in new["platforms"]:
            new["platforms"].remove(platform)
        else:
            new["platforms"].append(platform)
        expected = ["platforms"]
    changed = fingerprint.compute(**new)
    assert changed.value != old.value
    assert changed.changed_since(old.parts) == expected
    assert old.changed_since(changed.parts) == expected


def test_changed_since_names_file_paths_without_prefix() -> None:
    base = {"stage_texts": ["FROM python"], "args": {}, "base_digests": {}, "platforms": []}
    old = fingerprint.compute(**base, files={"requirements.txt": "1" * 64, "src/app.py": "2" * 64})
    new = fingerprint.compute(**base, files={"requirements.txt": "3" * 64, "src/app.py": "2" * 64})
    assert new.changed_since(old.parts) == ["requirements.txt"]
    assert new.changed_since(new.parts) == []


# -- fingerprint.of_targets(): a project's fingerprints ---------------------------------------

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64

TOML = """\
[tool.bake-ci]
image = "acme/app-ci"
python = ["3.11", "3.12"]
stages = ["base", "deps", "ci"]
"""

FILES_OF_PROJECT = {
    "requirements.txt": "requests==2.32.3\n",
    "src/app/__init__.py": "",
    "src/app/main.py": "print('hi')\n",
    "tests/test_app.py": "def test(): pass\n",
    ".dockerignore": "# not for the image\n*.log\nbuild\n",
    "debug.log": "noise\n",
    "build/lib/app.so": "binary\n",
}


@dataclass
class FakeResolver:
    """Digests per image reference (None: unresolvable), and who asked for what."""

    digests: dict[str, str | None] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def __call__(self, client: object, runner: object, ref: str, platform: str | None = None) -> registry.Resolution:
        self.asked.append(ref)
        digest = self.digests.get(ref, DIGEST_A)
        return registry.Resolution(ref, digest, () if digest else (registry.Answer(ref, "not found"),))


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> FakeResolver:
    """The fake resolver in place of ``resolve_base``, and no process may be started."""

    def refuse(*args: object, **kwargs: object) -> Any:
        raise AssertionError(f"a process was started: {args!r}")

    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)
    fake = FakeResolver()
    monkeypatch.setattr(bases, "resolve_base", fake)
    return fake


def values(fps: fingerprint.TargetFingerprints) -> dict[str, str]:
    assert fps.missing == {}
    return {target: fp.value for target, fp in fps.values.items()}


ALL = ["base-py311", "base-py312", "ci-py311", "ci-py312", "deps-py311", "deps-py312"]


def changed(before: fingerprint.TargetFingerprints, after: fingerprint.TargetFingerprints) -> dict[str, list[str]]:
    """Which targets' fingerprints changed, and which parts of them."""
    return {
        target: fp.changed_since(before.values[target].parts)
        for target, fp in sorted(after.values.items())
        if fp.value != before.values[target].value
    }


def test_fingerprints_are_stable_and_independent_of_where_and_how_files_were_made(
    project: MakeProject, resolver: FakeResolver, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = project(TOML, files=FILES_OF_PROJECT)
    first = values(fingerprints(root))
    assert sorted(first) == ALL
    assert len(set(first.values())) == len(ALL)  # every stage and Python has its own
    assert values(fingerprints(root)) == first
    assert sorted(set(resolver.asked)) == ["python:3.11-slim", "python:3.12-slim"]

    # the same files, made in the opposite order (directories too), somewhere else
    other = tmp_path_factory.mktemp("elsewhere") / "checkout"
    for path in sorted(root.rglob("*"), reverse=True):
        if path.is_file():
            copy = other / path.relative_to(root)
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_bytes(path.read_bytes())
    assert values(fingerprints(other)) == first


def test_editing_requirements_changes_deps_and_ci(project: MakeProject, resolver: FakeResolver) -> None:
    root = project(TOML, files=FILES_OF_PROJECT)
    before = fingerprints(root)
    (root / "requirements.txt").write_text("requests==2.32.4\n", encoding="utf-8")
    after = fingerprints(root)
    assert changed(before, after) == {t: ["requirements.txt"] for t in ALL if not t.startswith("base")}


def test_editing_a_test_file_changes_only_ci(project: MakeProject, resolver: FakeResolver) -> None:
    root = project(TOML, files=FILES_OF_PROJECT)
    before = fingerprints(root)
    (root / "tests" / "test_app.py").write_text("def test(): assert True\n", encoding="utf-8")
    (root / "tests" / "test_new.py").write_text("", encoding="utf-8")
    after = fingerprints(root)
    expected = ["tests/test_app.py", "tests/test_new.py"]
    assert changed(before, after) == {"ci-py311": expected, "ci-py312": expected}


def test_dockerignored_files_change_nothing(project: MakeProject, resolver: FakeResolver) -> None:
    root = project(TOML, files=FILES_OF_PROJECT)
    before = fingerprints(root)
    (root / "debug.log").write_text("more noise\n", encoding="utf-8")
    (root / "build" / "lib" / "app.so").write_text("rebuilt\n", encoding="utf-8")
    (root / "build" / "new.o").write_text("new\n", encoding="utf-8")
    (root / "src" / "app" / "trace.log").write_text("nested log: not ignored by *.log\n", encoding="utf-8")
    after = fingerprints(root)
    # only the nested log is an input (dockerignore's *.log is anchored at the root)
    assert changed(before, after) == {"ci-py311": ["src/app/trace.log"], "ci-py312": ["src/app/trace.log"]}
    assert not [p for p in after.values["ci-py312"].parts if p.startswith(("file:build/", "file:debug.log"))]


DEPS_COPIES_ALL = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE} AS base
FROM base AS deps
COPY . /src
RUN pip install -r /src/requirements.txt -r /src/requirements-dev.txt
FROM deps AS ci
COPY . .
"""

CONFIGURED = """\
[tool.bake-ci]
image = "acme/app-ci"
python = ["3.12"]

[tool.bake-ci.stages.deps]
inputs = ["requirements*.txt"]

[tool.bake-ci.stages.ci]
"""


@pytest.mark.parametrize("configured", [True, False])
def test_configured_inputs_never_narrow_what_a_stage_copies(
    project: MakeProject, resolver: FakeResolver, configured: bool
) -> None:
    # deps copies the whole context: inputs = ["requirements*.txt"] cannot take files away,
    # BuildKit rebuilds deps when any of them changes
    toml = CONFIGURED if configured else CONFIGURED.replace('inputs = ["requirements*.txt"]', "")
    root = project(toml, dockerfile=DEPS_COPIES_ALL, files={**FILES_OF_PROJECT, "requirements-dev.txt": "pytest\n"})
    before = fingerprints(root)
    deps_files = sorted(p for p in before.values["deps-py312"].parts if p.startswith("file:"))
    assert "file:src/app/main.py" in deps_files
    assert "file:requirements-dev.txt" in deps_files

    (root / "src" / "app" / "main.py").write_text("print('changed')\n", encoding="utf-8")
    after_code = fingerprints(root)
    code = ["src/app/main.py"]
    assert changed(before, after_code) == {"ci-py312": code, "deps-py312": code}

    (root / "requirements-dev.txt").write_text("pytest==8\n", encoding="utf-8")
    dev = ["requirements-dev.txt"]
    assert changed(after_code, fingerprints(root)) == {"ci-py312": dev, "deps-py312": dev}


DEPS_COPIES_TWO = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE} AS deps
COPY requirements.txt constraints.txt /app/
RUN pip install -r /app/requirements.txt -c /app/constraints.txt
"""

DEPS_COPIES_A_VARIABLE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE} AS deps
ARG REQS=requirements.txt
COPY ${REQS} constraints.txt /app/
"""

DECLARED = """\
[tool.bake-ci]
image = "acme/app-ci"
python = ["3.12"]

[tool.bake-ci.stages.deps]
inputs = ["requirements.txt", "tests/*.py"]
"""


def test_a_copied_file_counts_though_declared_inputs_leave_it_out(project: MakeProject, resolver: FakeResolver) -> None:
    files = {**FILES_OF_PROJECT, "constraints.txt": "idna<4\n"}
    root = project(DECLARED, dockerfile=DEPS_COPIES_TWO, files=files)
    before = fingerprints(root)
    deps_files = sorted(p for p in before.values["deps-py312"].parts if p.startswith("file:"))
    # what COPY names, plus what inputs adds (tests/*.py), nothing else
    assert deps_files == ["file:constraints.txt", "file:requirements.txt", "file:tests/test_app.py"]
    (root / "constraints.txt").write_text("idna<3\n", encoding="utf-8")
    assert changed(before, fingerprints(root)) == {"deps-py312": ["constraints.txt"]}


def test_declared_inputs_stand_in_only_for_a_source_with_a_variable(
    project: MakeProject, resolver: FakeResolver
) -> None:
    files = {**FILES_OF_PROJECT, "constraints.txt": "idna<4\n"}
    root = project(DECLARED, dockerfile=DEPS_COPIES_A_VARIABLE, files=files)
    deps_files = sorted(p for p in fingerprints(root).values["deps-py312"].parts if p.startswith("file:"))
    assert deps_files == ["file:constraints.txt", "file:requirements.txt", "file:tests/test_app.py"]
    # without inputs, the source with a variable stands for the whole context
    root = project(
        DECLARED.replace('inputs = ["requirements.txt", "tests/*.py"]', ""),
        dockerfile=DEPS_COPIES_A_VARIABLE,
        files=files,
    )
    assert "file:src/app/main.py" in fingerprints(root).values["deps-py312"].parts


def test_another_base_image_digest_changes_every_target(project: MakeProject, resolver: FakeResolver) -> None:
    root = project(TOML, files=FILES_OF_PROJECT)
    before = fingerprints(root)
    resolver.digests["python:3.12-slim"] = DIGEST_B
    after = fingerprints(root)
    assert changed(before, after) == {t: ["base image"] for t in ALL if t.endswith("py312")}
    resolver.digests["python:3.11-slim"] = DIGEST_B
    assert changed(before, fingerprints(root)) == {t: ["base image"] for t in ALL}


def test_unresolvable_base_image_means_no_fingerprint(project: MakeProject, resolver: FakeResolver) -> None:
    root = project(TOML, files=FILES_OF_PROJECT)
    resolver.digests["python:3.11-slim"] = None
    fps = fingerprints(root)
    assert sorted(fps.values) == ["base-py312", "ci-py312", "deps-py312"]
    assert sorted(fps.missing) == ["base-py311", "ci-py311", "deps-py311"]
    assert all("python:3.11-slim" in why for why in fps.missing.values())


def test_from_scratch_needs_no_base_image(project: MakeProject, resolver: FakeResolver) -> None:
    dockerfile = (
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE} AS ci\nCOPY . .\nFROM scratch AS export\nCOPY --from=ci /app /app\n"
    )
    toml = TOML.replace('stages = ["base", "deps", "ci"]', 'stages = ["ci", "export"]')
    # like the real engine: `scratch` is reserved, no registry or engine has such an image
    resolver.digests["scratch"] = None
    fps = fingerprints(project(toml, dockerfile=dockerfile, files=FILES_OF_PROJECT))
    assert fps.missing == {}
    assert sorted(fps.values) == ["ci-py311", "ci-py312", "export-py311", "export-py312"]


def test_targets_can_be_fingerprinted_one_python_at_a_time(project: MakeProject, resolver: FakeResolver) -> None:
    root = project(TOML, files=FILES_OF_PROJECT)
    everything = values(fingerprints(root))
    proj = config_load.load(root / "pyproject.toml", {})
    only = [Target("ci", PythonVersion.parse("3.12"))]
    args = {t.id: build_args(proj, t) for t in only}
    assert values(helpers.compute(proj, only, args)) == {"ci-py312": everything["ci-py312"]}
