"""``[tool.bake-ci]``: reading, validating and explaining what is wrong with it.

The models are strict (no coercion), reject unknown keys and use the kebab-case keys
users write in TOML. Every validation failure becomes one :class:`ConfigError`
paragraph naming the file, the key path, the value and the fix.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from bake import dockerfile, dockerfile_check, redact, reference
from bake.config_errors import cut, did_you_mean, display_path, error, joined, short_path, show, summarise
from bake.naming import PythonVersion, target_id

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

TABLE = "tool.bake-ci"
#: Environment variables that override a key of the file.
ENV_OVERRIDES = {"registry": "BAKE_CI_REGISTRY", "base-image": "BAKE_CI_BASE_IMAGE"}

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


# -- loading ----------------------------------------------------------------------------


def read_table(path: Path) -> dict[str, Any]:
    """The raw ``[tool.bake-ci]`` table of a TOML file."""
    shown = display_path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(
            f"{shown}: no such file. bake-ci reads [{TABLE}] from pyproject.toml in the "
            "current directory; run it from the project's root or pass --config FILE."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{shown}: cannot be read ({exc}). Fix the file's permissions or encoding.") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(
            f"{shown}: not valid TOML: {exc}. Fix the syntax at that line and column (bake-ci reads TOML 1.0)."
        ) from None
    table = data.get("tool", {}).get("bake-ci") if isinstance(data.get("tool"), dict) else None
    if table is None:
        raise error(
            f"{shown}: there is no [{TABLE}] table. Add one, at least:\n"
            f'[{TABLE}]\nimage = "OWNER/NAME-ci"\npython = ["3.12"]'
        )
    if not isinstance(table, dict):
        raise error(f"{shown}: {TABLE} must be a table, not {type(table).__name__}. Write it as [{TABLE}].")
    return table


def parse(table: Mapping[str, Any], path: Path, environ: Mapping[str, str]) -> Config:
    """Validate a raw table, with environment overrides applied first."""
    data = dict(table)
    overridden: dict[str, str] = {}
    for key, var in ENV_OVERRIDES.items():
        if var in environ:
            overridden[key] = var
            if environ[var]:
                data[key] = environ[var]
            else:  # set but empty: explicitly unset (e.g. a fork's CI without secrets)
                data.pop(key, None)
    _register_secrets(data)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise error(explain(exc, path, overridden)) from None
    problems = _cross_checks(config, overridden)
    if problems:
        raise error(joined(problems, f"{display_path(path)}: "))
    return config


def _register_secrets(data: Mapping[str, Any]) -> None:
    """Credentials in configured values are hidden from every message and log from now on."""
    values = [data.get("registry"), data.get("base-image")]
    args = data.get("args")
    if isinstance(args, Mapping):
        values += list(args.values())
    for value in values:
        if isinstance(value, str):
            redact.register_value(value)
    for value in (data.get("registry"), data.get("base-image")):
        if isinstance(value, str) and (login := _login(value)):
            redact.register(login)


_DIGEST_AFTER_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}")


def _login(value: str) -> str | None:
    """What comes before an "@" in a registry or an image reference, other than a digest's:
    a login, a bare token included (``TOKEN@ghcr.io/acme``), which redact cannot tell from
    an e-mail address in free text."""
    ats = [i for i, c in enumerate(value) if c == "@" and not _DIGEST_AFTER_RE.match(value, i + 1)]
    if not ats:
        return None
    login = value[: ats[-1]]
    return login.partition("://")[2] or login


def _cross_checks(config: Config, overridden: Mapping[str, str]) -> list[str]:
    """Problems that involve more than one key (each one sentence naming every key involved)."""

    def key(name: str) -> str:
        return f"{overridden[name]} (overrides {TABLE}.{name})" if name in overridden else f"{TABLE}.{name}"

    problems: list[str] = []
    if config.registry:
        name = f"{config.registry}/{config.image}{CACHE_SUFFIX}"
        if len(name) > MAX_NAME:
            problems.append(
                f"{key('registry')} = {show(config.registry)} and {key('image')} = {show(config.image)} "
                f"make the cache repository {show(name)}: a docker repository name, registry host "
                f"included, is at most {MAX_NAME} characters. Shorten image or registry."
            )
    elif "/" not in config.image and len(f"library/{config.image}") > MAX_NAME:
        problems.append(
            f"{key('image')} = {show(config.image)}: docker names it library/{cut(config.image, 12)}, "
            f"{len(config.image) + 8} characters, over the {MAX_NAME} a repository name may have. "
            'Shorten it or give it an owner, e.g. image = "acme/app-ci".'
        )
    versions = config.python
    if len(versions) > 1 and "{python}" not in config.base_image:
        base = config.base_image
        found = next((v for v in versions if v in base), None)
        suggestion = base.replace(found, "{python}") if found else "python:{python}-slim"
        problems.append(
            f"{key('base-image')} = {show(base)} has no {{python}} placeholder, but {key('python')} lists "
            f"{len(versions)} versions ({summarise(versions)}): every target would be built on that one "
            f"image, whatever its Python. Write base-image = {show(suggestion)}, with {{python}} where "
            "the version goes."
        )
    groups: dict[str, str] = {}
    for version in versions:
        group = PythonVersion.parse(version).group
        other = groups.setdefault(group, version)
        if other != version:
            problems.append(
                f"{key('python')} lists {show(other)} and {show(version)}, which give the same target "
                f"names (...-{group}). Remove the one that is not a Python version you build."
            )
            break
    return problems


def load(config_file: Path | None, environ: Mapping[str, str]) -> Project:
    """Read, validate and check the configuration against the project's files."""
    path = config_file if config_file is not None else Path("pyproject.toml")
    config = parse(read_table(path), path, environ)
    root = path.resolve().parent
    shown = display_path(path)

    for name, value, example in (
        ("context", config.context, 'context = "."'),
        ("dockerfile", config.dockerfile, 'dockerfile = "Dockerfile"'),
    ):
        resolved = (root / value).resolve()
        if resolved != root and root not in resolved.parents:
            raise error(
                f"{shown}: {TABLE}.{name} = {show(value)} resolves to {short_path(resolved)}, outside the "
                f"project ({short_path(root)}). bake-ci builds only from the project's own files: point "
                f"{name} inside it, relative to the config file, e.g. {example}."
            )
    context = root / config.context
    if not context.is_dir():
        raise error(
            f"{shown}: {TABLE}.context = {show(config.context)}: no such directory under "
            f"{short_path(root)}. Set context to the build context, relative to the config file."
        )
    dockerfile_path = root / config.dockerfile
    try:
        text = dockerfile_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(
            f"{shown}: {TABLE}.dockerfile = {show(config.dockerfile)}: no such file "
            f"({short_path(dockerfile_path)}). Create it or point dockerfile at the Dockerfile, "
            "relative to the config file."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{shown}: {TABLE}.dockerfile = {show(config.dockerfile)}: cannot be read ({exc}).") from None

    found = dockerfile.stages(text)
    named = [s.name for s in found if s.name]
    listed = summarise([cut(n, 40) for n in named], 8) if named else ""
    dockerfile_name = cut(config.dockerfile, 60)
    if not found:
        raise error(
            f"{shown}: {TABLE}.dockerfile = {show(config.dockerfile)} has no FROM instruction. "
            "Point dockerfile at a Dockerfile with named stages (FROM IMAGE AS NAME)."
        )
    if config.stages is None:
        last = found[-1].name
        if last is not None and len(last) > MAX_STAGE:
            raise error(
                f"{shown}: the last stage of {dockerfile_name}, {last[:20]!r}..., is longer than "
                f"{MAX_STAGE} characters, which leaves no room for tags. Shorten its name."
            )
        if last is None:
            raise error(
                f"{shown}: {TABLE}.stages is not set and the last stage of "
                f"{dockerfile_name} has no name. Name it (FROM ... AS ci) or set "
                f"stages = [...] to some of: {listed or '(no named stages)'}."
            )
        stage_list = [last]
    else:
        for i, stage in enumerate(config.stages):
            if stage not in named:
                hint = did_you_mean(stage, named)
                raise error(
                    f"{shown}: {TABLE}.stages[{i}] = {show(stage)}: {dockerfile_name} has no "
                    f"such stage.{hint} Its stages are: {listed or '(none named)'}."
                )
        stage_list = list(config.stages)
    ids: dict[str, str] = {}
    for stage in stage_list:
        other = ids.setdefault(target_id(stage, config.pythons[0]), stage)
        if other != stage:
            raise error(
                f"{shown}: {TABLE}.stages: stages {other!r} and {stage!r} give the same target "
                f"names ({target_id(stage, config.pythons[0])}); rename one of them in {dockerfile_name}."
            )

    _check_dockerfile(text, config, stage_list, display_path(dockerfile_path), root)
    bake_file = root / "docker-bake.hcl"
    has_bake = bake_file.is_file()
    inherits = has_bake and bool(
        re.search(r'^\s*target\s+"bake-ci"\s*\{', bake_file.read_text(encoding="utf-8"), re.MULTILINE)
    )
    return Project(
        root=root,
        config_file=path,
        config=config,
        stages=stage_list,
        inputs={name: s.inputs for name, s in (config.stages or {}).items() if s.inputs is not None},
        dockerfile_text=text,
        bake_file=bake_file if has_bake else None,
        inherits_base=inherits,
    )


def _check_dockerfile(text: str, config: Config, stages: list[str], shown: str, root: Path) -> None:
    """What BuildKit would refuse in the Dockerfile, before anything is built (exit 2)."""
    args = [
        {**config.args, "BASE_IMAGE": config.base_image.replace("{python}", p), "PYTHON_VERSION": p}
        for p in config.python
    ]
    facts = dockerfile_check.Facts(stages, args, other_args=(root / "docker-bake.hcl").is_file())
    try:
        dockerfile_check.check(text, facts, config.python)
    except dockerfile_check.DockerfileProblem as exc:
        end = "" if "\n" in exc.message else "."  # a message ending in lines of code ends there
        raise error(f"{shown}:{exc.line}: {exc.message}{end}") from None


# -- explaining validation errors ------------------------------------------------------


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = TABLE
    for part in loc:
        if part != "[key]":  # pydantic's marker for a dict key's own error
            out += f"[{part}]" if isinstance(part, int) else f".{cut(str(part), 40)}"
    return out


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model whose keys live at ``loc`` (for listing and suggesting keys)."""
    model: type[BaseModel] = Config
    for part in loc:
        field = next((f for name, f in model.model_fields.items() if part in (name, kebab(name))), None)
        annotation = field.annotation if field else None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            return None
    return model


def _explain_one(err: Mapping[str, Any], overridden: Mapping[str, str]) -> tuple[str, str]:
    """``(subject, reason)``: "KEY = VALUE" and what is wrong and how to fix it.

    Errors with the same reason are reported together (see :func:`explain`). A reason
    that is a sentence of its own has an empty subject.
    """
    loc: tuple[int | str, ...] = tuple(err["loc"])
    is_key = bool(loc) and loc[-1] == "[key]"
    key = _key_path(loc[:-2] if is_key else loc)
    if loc and loc[0] in overridden:
        key = f"{overridden[str(loc[0])]} (overrides {key})"
    value = err.get("input")
    shown = show(value)
    kind = err["type"]
    msg = str(err["msg"]).removeprefix("Value error, ")
    if is_key:
        return f"{key} key {shown}", msg
    if kind == "missing":
        examples = {"image": 'image = "OWNER/NAME-ci"', "python": 'python = ["3.12"]'}
        example = examples.get(str(loc[-1]), f"{loc[-1]} = ...")
        return "", f"{key} is required but missing. Add {example} to [{TABLE}]"
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        known = sorted(kebab(n) for n in model.model_fields) if model else []
        hint = did_you_mean(str(loc[-1]), known)
        listing = f" Known keys here: {', '.join(known)}." if known else ""
        return "", f"{key} is not a known key.{hint}{listing} Remove or rename it"
    if kind == "string_type" and isinstance(value, (int, float)) and not isinstance(value, bool):
        if loc[:1] == ("python",):
            return f"{key} = {shown}", (
                "a TOML number, not a string (TOML reads 3.10 as 3.1). "
                'Quote every version, e.g. python = ["3.10", "3.12"]'
            )
        return "", f'{key} = {shown} is a number; quote it: "{cut(str(value), 30)}"'
    if kind.endswith("_type"):
        return f"{key} = {shown}", f"{msg.lower()}. Write it as the documented type"
    if kind == "too_short":
        return "", f"{key} must not be empty. Give at least one entry"
    return f"{key} = {shown}", msg


def explain(exc: ValidationError, path: Path, overridden: Mapping[str, str] | None = None) -> str:
    """One paragraph for all the errors of a validation, naming file, keys, values and fixes.

    Errors that share a reason are grouped (the first few subjects, then how many more);
    groups are explained while they fit in :data:`MAX_MESSAGE`, the rest are counted.
    """
    groups: dict[str, list[str]] = {}
    for err in exc.errors(include_url=False):
        subject, reason = _explain_one(err, overridden or {})
        groups.setdefault(reason, []).append(subject)
    parts: list[str] = []
    for reason, subjects in groups.items():
        if not subjects[0]:
            parts.append(f"{reason}.")
        else:
            parts.append(f"{summarise(subjects, 2)}: {reason}.")
    return joined(parts, f"{display_path(path)}: ")
