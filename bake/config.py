"""``[tool.bake-ci]``: what it may contain (the models and their validators), and :class:`Project`.

The models are strict (no coercion), reject unknown keys and use the kebab-case keys
users write in TOML. Every validation failure becomes one :class:`ConfigError`
paragraph naming the file, the key path, the value and the fix: a validator's message
says what is wrong with the value and how to fix it, bake/config_explain.py adds the
file, the key and the value. bake/config_load.py reads the file and checks it against
the project's other files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from bake import reference
from bake.config_errors import cut, did_you_mean, summarise
from bake.naming import PythonVersion

TABLE = "tool.bake-ci"

_REPO_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_RE = re.compile(rf"{_REPO_COMPONENT}(?:/{_REPO_COMPONENT})*")
_REGISTRY_RE = re.compile(rf"[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(/{_REPO_COMPONENT})*")
#: an "@" with a "/" after it: a login in front of the host (a digest, "@sha256:...", has no "/")
_USERINFO_IN_IMAGE_RE = re.compile(r"@[^@]*/")
_PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")
_ARG_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: A docker repository name (registry host and path) is at most this long.
MAX_NAME = 255
#: What bake-ci appends to ``image`` for the registry cache repository.
CACHE_SUFFIX = "-cache"
#: Build args bake-ci sets itself, and what to write instead.
RESERVED_ARGS = {
    "BASE_IMAGE": (
        "bake-ci sets BASE_IMAGE itself, from base-image, for each Python version: remove it from args "
        'and write base-image = "..." with {python} where the version goes, e.g. base-image = "python:{python}-slim"'
    ),
    "PYTHON_VERSION": (
        "bake-ci sets PYTHON_VERSION itself, to each version in python: remove it from args "
        'and list the versions in python instead, e.g. python = ["3.12", "3.13"]'
    ),
}
#: Operating systems and architectures of OCI platforms (Go's GOOS and GOARCH names).
PLATFORM_OS = (
    "linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "dragonfly", "illumos",
    "solaris", "aix", "plan9", "android", "ios", "js", "wasip1",
)  # fmt: skip
PLATFORM_ARCH = (
    "amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64", "mips64le", "loong64",
    "ppc64", "mips64", "mips", "mipsle", "wasm", "sparc64",
)  # fmt: skip
_OS_ALIASES = {"macos": "darwin", "osx": "darwin", "mac": "darwin", "win": "windows", "win32": "windows"}
_ARCH_ALIASES = {
    "x86_64": "amd64", "x86-64": "amd64", "x64": "amd64", "aarch64": "arm64", "armhf": "arm/v7",
    "armel": "arm/v6", "armv7": "arm/v7", "armv6": "arm/v6", "armv7l": "arm/v7", "i386": "386",
    "i686": "386", "x86": "386", "ppc64el": "ppc64le", "riscv": "riscv64",
}  # fmt: skip
_VARIANTS = {
    "arm": (r"v[5-8]", "v5, v6, v7 or v8"),
    "arm64": (r"v8(\.[0-9])?|v9(\.[0-9])?", "v8, v8.1 ... v9.5"),
    "amd64": (r"v[1-4]", "v1, v2, v3 or v4"),
}


def kebab(name: str) -> str:
    return name.replace("_", "-")


class StrictModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        alias_generator=kebab,
        frozen=True,
        strict=True,
    )


def _image(value: str) -> str:
    if len(value) > MAX_NAME:
        raise ValueError(
            f"a docker repository name is at most {MAX_NAME} characters, registry included: "
            'shorten it, e.g. image = "acme/app-ci"'
        )
    first = value.split("/", 1)[0]
    if "/" in value and ("." in first or ":" in first or first == "localhost"):
        raise ValueError(
            f'starts with the registry host {first!r}: move it to registry = "{first}..." '
            'and keep only the repository here, e.g. image = "acme/app-ci"'
        )
    if not _IMAGE_RE.fullmatch(value):
        raise ValueError(
            "not a repository name: use lowercase path components separated by '/', "
            'with no registry host and no tag, e.g. image = "acme/app-ci"'
        )
    return value


def _registry(value: str) -> str:
    value = value.rstrip("/")
    if "://" in value:
        raise ValueError('drop the scheme: write the host and path only, e.g. "ghcr.io/acme"')
    if "@" in value:
        raise ValueError(
            "credentials do not belong in the registry name; log in with `docker login` "
            "(or docker/login-action in GitHub Actions) instead"
        )
    if not _REGISTRY_RE.fullmatch(value):
        raise ValueError(
            "not a registry: write a lowercase host with optional :port and path, "
            'e.g. "ghcr.io/acme" or "localhost:5000"'
        )
    return value


def _python(value: str) -> str:
    try:
        PythonVersion.parse(value)
    except ValueError:
        raise ValueError('not a Python version of the form X.Y: write e.g. "3.12"') from None
    return value


def _base_image(value: str) -> str:
    unknown = [p for p in _PLACEHOLDER_RE.findall(value) if p != "python"]
    if unknown:
        raise ValueError(
            f"unknown placeholder {{{cut(unknown[0], 20)}}}: the only placeholder is {{python}}, "
            'e.g. "python:{python}-slim"'
        )
    if not value.strip():
        raise ValueError('must name an image, e.g. "python:{python}-slim"')
    if value != value.strip():
        raise ValueError("has spaces or a newline around it (a CI variable's trailing newline?): remove them")
    if _USERINFO_IN_IMAGE_RE.search(value):
        raise ValueError(
            "credentials do not belong in an image reference (docker cannot pull an image named with a login); "
            "log in with `docker login HOST` (or docker/login-action in GitHub Actions) and name the image "
            'without them, e.g. "registry.example.com/python:{python}-slim"'
        )
    try:
        reference.split(value.replace("{python}", "3.12"))
    except reference.InvalidReference as exc:
        raise ValueError(
            f"not an image reference: {exc}; write [HOST[:PORT]/]NAME[:TAG][@sha256:DIGEST], "
            'e.g. "python:{python}-slim"'
        ) from None
    return value


def _arg_name(value: str) -> str:
    if value in RESERVED_ARGS:
        raise ValueError(RESERVED_ARGS[value])
    if not _ARG_NAME_RE.fullmatch(value):
        raise ValueError(
            "not a build arg name: use letters, digits and '_', not starting with a digit "
            "([A-Za-z_][A-Za-z0-9_]*), e.g. PIP_INDEX_URL"
        )
    return value


def _branch(value: str) -> str:
    if not value.strip():
        raise ValueError('blank: name the branch, e.g. "main"')
    if value != value.strip():
        raise ValueError(
            f"has spaces around it: write {value.strip()!r}" if len(value) < 80 else "has spaces around it"
        )
    return value


def _fallback_branch(value: str) -> str:
    if not value.strip():
        raise ValueError('blank: name a branch, e.g. "main", or remove the entry')
    return _branch(value)


def _platform(value: str) -> str:
    example = 'e.g. "linux/amd64" or "linux/arm/v7" (platforms = [] builds for the engine\'s own platform)'
    if not value.strip():
        raise ValueError(f"empty: write os/arch[/variant], {example}, or remove the entry")
    parts = value.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"not os/arch[/variant]: write {example}")
    if value != value.lower():
        try:
            _platform(value.lower())
        except ValueError:
            pass
        else:
            raise ValueError(f'platforms are lowercase: write "{value.lower()}"')
    os_name, arch, variant = parts[0], parts[1], parts[2] if len(parts) == 3 else None
    if os_name in _OS_ALIASES:
        fixed = cut("/".join([_OS_ALIASES[os_name], *parts[1:]]), 40)
        raise ValueError(f'the os is called {_OS_ALIASES[os_name]!r} in platforms: write "{fixed}"')
    if os_name not in PLATFORM_OS:
        hint = did_you_mean(os_name, list(PLATFORM_OS))
        raise ValueError(f"unknown os {cut(os_name, 20)!r}.{hint} Known: {summarise(PLATFORM_OS, 6)}")
    if arch in _ARCH_ALIASES and variant is None:
        canonical = _ARCH_ALIASES[arch]
        raise ValueError(f'the architecture is called {canonical!r} in platforms: write "{os_name}/{canonical}"')
    if arch not in PLATFORM_ARCH:
        hint = did_you_mean(arch, list(PLATFORM_ARCH))
        raise ValueError(f"unknown architecture {cut(arch, 20)!r}.{hint} Known: {summarise(PLATFORM_ARCH, 9)}")
    if variant is not None:
        pattern, known = _VARIANTS.get(arch, (r"[a-z0-9][a-z0-9.]{0,31}", "up to 32 lowercase letters and digits"))
        if not re.fullmatch(pattern, variant):
            raise ValueError(f"{arch} has no variant {cut(variant, 20)!r}: use {known}, or drop the variant")
    return value


MAX_STAGE = 64


def _stage_name(value: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9._-]*", value):
        raise ValueError("a stage name is lowercase letters, digits, '.', '_' and '-'")
    if len(value) > MAX_STAGE:
        raise ValueError(f"stage names longer than {MAX_STAGE} characters leave no room for tags; shorten it")
    return value


def _unique(values: list[str]) -> list[str]:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{cut(value, 40)!r} is listed twice; list each once")
        seen.add(value)
    return values


Image = Annotated[str, AfterValidator(_image)]
ArgName = Annotated[str, AfterValidator(_arg_name)]
Branch = Annotated[str, AfterValidator(_branch)]
FallbackBranch = Annotated[str, AfterValidator(_fallback_branch)]
Platform = Annotated[str, AfterValidator(_platform)]
Registry = Annotated[str, AfterValidator(_registry)]
PythonStr = Annotated[str, AfterValidator(_python)]
StageName = Annotated[str, AfterValidator(_stage_name)]
BaseImage = Annotated[str, AfterValidator(_base_image)]


class StageConfig(StrictModel):
    """``[tool.bake-ci.stages.NAME]``."""

    #: Globs relative to the context whose content defines the stage (for fingerprints).
    inputs: list[str] | None = None


def _stages_table(value: Any) -> Any:
    """``stages = ["deps", "ci"]`` is shorthand for empty ``[tool.bake-ci.stages.NAME]`` tables."""
    if isinstance(value, list):
        names = [v for v in value if isinstance(v, str)]
        if len(names) == len(value):
            _unique(names)
            return {name: {} for name in names}
    return value


class CacheConfig(StrictModel):
    """``[tool.bake-ci.cache]``."""

    mode: Literal["max", "min"] = "max"
    inline: bool = True
    fallback_branches: list[FallbackBranch] | None = None
    image_manifest: bool = False
    ignore_error: bool = True


_DURATION_RE = re.compile(r"(?:([0-9]+(?:\.[0-9]+)?)([smhd]))+|0")
_DURATION_PART_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(text: str) -> float:
    """A duration such as ``1h``, ``30m``, ``1h30m``, ``2d`` or ``0``, in seconds (ValueError if not one)."""
    if not _DURATION_RE.fullmatch(text.strip()):
        raise ValueError(f"{cut(text, 20)!r} is not a duration: write a number and a unit, e.g. 1h, 30m, 2d, or 0")
    return sum(float(n) * _UNIT[u] for n, u in _DURATION_PART_RE.findall(text))


def _duration(value: str) -> str:
    seconds(value)
    return value


def _days(value: float) -> float:
    if value <= 0:
        raise ValueError("must be a number of days above 0, e.g. 14")
    return value


def _count(value: int) -> int:
    if value < 0:
        raise ValueError("must be 0 or more, e.g. 5")
    return value


class RetentionConfig(StrictModel):
    """``[tool.bake-ci.retention]``: what ``bake-ci gc`` keeps (see docs/retention.md)."""

    branch_days: Annotated[float, AfterValidator(_days)] = 14
    pr_days: Annotated[float, AfterValidator(_days)] = 14
    commit_days: Annotated[float, AfterValidator(_days)] = 30
    keep_fingerprints: Annotated[int, AfterValidator(_count)] = 5
    grace: Annotated[str, AfterValidator(_duration)] = "1h"


class Config(StrictModel):
    """``[tool.bake-ci]``."""

    image: Image
    registry: Registry | None = None
    python: Annotated[list[PythonStr], AfterValidator(_unique)] = Field(min_length=1)
    stages: Annotated[dict[StageName, StageConfig], BeforeValidator(_stages_table)] | None = Field(
        default=None, min_length=1
    )
    dockerfile: str = "Dockerfile"
    context: str = "."
    platforms: Annotated[list[Platform], AfterValidator(_unique)] = []
    args: dict[ArgName, str] = {}
    labels: dict[str, str] = {}
    base_image: BaseImage = "python:{python}-slim"
    default_branch: Branch = "main"
    cache: CacheConfig = CacheConfig()
    retention: RetentionConfig = RetentionConfig()

    @property
    def pythons(self) -> list[PythonVersion]:
        return [PythonVersion.parse(p) for p in self.python]

    @property
    def fallback_branches(self) -> list[str]:
        if self.cache.fallback_branches is None:
            return [self.default_branch]
        return self.cache.fallback_branches


@dataclass(frozen=True)
class Project:
    """A validated configuration together with the facts read from the project's files."""

    root: Path
    config_file: Path
    config: Config
    #: Stages to build, in order (the configured ones, or the Dockerfile's last).
    stages: list[str]
    #: Configured ``inputs`` per stage (stages without any are derived from the Dockerfile).
    inputs: dict[str, list[str]]
    #: The Dockerfile's text (for fingerprints).
    dockerfile_text: str
    #: ``docker-bake.hcl`` next to the config, if the project has one.
    bake_file: Path | None
    #: Whether that file defines a target ``bake-ci`` for generated targets to inherit.
    inherits_base: bool
