"""Helpers shared by several unit-test modules: buildx's rawjson vertexes, a project's
fingerprints, and the bench's scripts loaded as modules."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from bake import config, config_load, fingerprint, reuse
from bake.engine import process
from bake.plan import Target, build_args, matrix

BENCH = Path(__file__).resolve().parents[2] / "bench"


def ts(seconds: float) -> str:
    """A Go RFC 3339 timestamp with nanoseconds, ``seconds`` after 12:00:00 UTC."""
    whole, frac = divmod(round(seconds * 1_000_000_000), 1_000_000_000)
    return f"2026-03-01T12:{whole // 60:02d}:{whole % 60:02d}.{frac:09d}Z"


def vertex(
    digest: str,
    name: str,
    started: float | None = None,
    completed: float | None = None,
    *,
    cached: bool = False,
    error: str = "",
) -> dict[str, Any]:
    """A vertex as buildx prints it (empty fields are left out)."""
    out: dict[str, Any] = {"digest": f"sha256:{digest}", "inputs": [], "name": name}
    if started is not None:
        out["started"] = ts(started)
    if completed is not None:
        out["completed"] = ts(completed)
    if cached:
        out["cached"] = True
    if error:
        out["error"] = error
    return out


def fingerprints(root: Path) -> fingerprint.TargetFingerprints:
    """What ``bake-ci`` computes for every target of the project at ``root``."""
    project = config_load.load(root / "pyproject.toml", {})
    targets = matrix(project)
    return compute(project, targets, {t.id: build_args(project, t) for t in targets})


def compute(
    project: config.Project, targets: Sequence[Target], args: Mapping[str, Mapping[str, str]]
) -> fingerprint.TargetFingerprints:
    """``fingerprint.of_targets`` as a run of this process's environment makes it."""
    runner = process.Runner(os.environ)
    return fingerprint.of_targets(project, targets, args, client=reuse.client(runner), runner=runner)


def load_bench(name: str, file: str) -> ModuleType:
    """``bench/FILE`` as the module ``name`` (bench/ is a folder of scripts, not a package;
    its scripts import each other, so it goes on sys.path)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / file)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
