"""``[tool.bake-ci]``: reading, validating and explaining what is wrong with it.

The models are strict (no coercion), reject unknown keys and use the kebab-case keys
users write in TOML. Every validation failure becomes one :class:`ConfigError`
paragraph naming the file, the key path, the value and the fix.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from bake import dockerfile
from bake.errors import ConfigError
from bake.naming import PythonVersion, target_id
from bake.redact import redact

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
_PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")


def _kebab(name: str) -> str:
    return name.replace("_", "-")


class StrictModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        alias_generator=_kebab,
        frozen=True,
        strict=True,
    )


def _image(value: str) -> str:
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
    PythonVersion.parse(value)
    return value


def _base_image(value: str) -> str:
    unknown = [p for p in _PLACEHOLDER_RE.findall(value) if p != "python"]
    if unknown:
        raise ValueError(
            f'unknown placeholder {{{unknown[0]}}}: the only placeholder is {{python}}, e.g. "python:{{python}}-slim"'
        )
    if not value.strip():
        raise ValueError('must name an image, e.g. "python:{python}-slim"')
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
            raise ValueError(f"{value!r} is listed twice; list each once")
        seen.add(value)
    return values


Image = Annotated[str, AfterValidator(_image)]
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
    fallback_branches: list[str] | None = None
    image_manifest: bool = False
    ignore_error: bool = True


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
    platforms: list[str] = []
    args: dict[str, str] = {}
    labels: dict[str, str] = {}
    base_image: BaseImage = "python:{python}-slim"
    default_branch: str = Field(default="main", min_length=1)
    cache: CacheConfig = CacheConfig()

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
    shown = _shown(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{shown}: no such file. bake-ci reads [{TABLE}] from pyproject.toml in the "
            "current directory; run it from the project's root or pass --config FILE."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{shown}: cannot be read ({exc}). Fix the file's permissions or encoding.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{shown}: not valid TOML: {exc}. Fix the syntax at that line and column (bake-ci reads TOML 1.0)."
        ) from None
    table = data.get("tool", {}).get("bake-ci") if isinstance(data.get("tool"), dict) else None
    if table is None:
        raise ConfigError(
            f"{shown}: there is no [{TABLE}] table. Add one, at least:\n"
            f'[{TABLE}]\nimage = "OWNER/NAME-ci"\npython = ["3.12"]'
        )
    if not isinstance(table, dict):
        raise ConfigError(f"{shown}: {TABLE} must be a table, not {type(table).__name__}. Write it as [{TABLE}].")
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
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(explain(exc, path, overridden)) from None


def load(config_file: Path | None, environ: Mapping[str, str]) -> Project:
    """Read, validate and check the configuration against the project's files."""
    path = config_file if config_file is not None else Path("pyproject.toml")
    config = parse(read_table(path), path, environ)
    root = path.resolve().parent
    shown = _shown(path)

    context = root / config.context
    if not context.is_dir():
        raise ConfigError(
            f"{shown}: {TABLE}.context = {config.context!r}: no such directory under "
            f"{_shown(root)}. Set context to the build context, relative to the config file."
        )
    dockerfile_path = root / config.dockerfile
    try:
        text = dockerfile_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{shown}: {TABLE}.dockerfile = {config.dockerfile!r}: no such file "
            f"({_shown(dockerfile_path)}). Create it or point dockerfile at the Dockerfile, "
            "relative to the config file."
        ) from None
    except OSError as exc:
        raise ConfigError(f"{shown}: {TABLE}.dockerfile = {config.dockerfile!r}: cannot be read ({exc}).") from None

    found = dockerfile.stages(text)
    named = [s.name for s in found if s.name]
    if not found:
        raise ConfigError(
            f"{shown}: {TABLE}.dockerfile = {config.dockerfile!r} has no FROM instruction. "
            "Point dockerfile at a Dockerfile with named stages (FROM IMAGE AS NAME)."
        )
    if config.stages is None:
        last = found[-1].name
        if last is not None and len(last) > MAX_STAGE:
            raise ConfigError(
                f"{shown}: the last stage of {config.dockerfile}, {last[:20]!r}..., is longer than "
                f"{MAX_STAGE} characters, which leaves no room for tags. Shorten its name."
            )
        if last is None:
            raise ConfigError(
                f"{shown}: {TABLE}.stages is not set and the last stage of "
                f"{config.dockerfile} has no name. Name it (FROM ... AS ci) or set "
                f"stages = [...] to some of: {', '.join(named) or '(no named stages)'}."
            )
        stage_list = [last]
    else:
        for i, stage in enumerate(config.stages):
            if stage not in named:
                hint = _did_you_mean(stage, named)
                raise ConfigError(
                    f"{shown}: {TABLE}.stages[{i}] = {stage!r}: {config.dockerfile} has no "
                    f"such stage.{hint} Its stages are: {', '.join(named) or '(none named)'}."
                )
        stage_list = list(config.stages)
    ids: dict[str, str] = {}
    for stage in stage_list:
        other = ids.setdefault(target_id(stage, config.pythons[0]), stage)
        if other != stage:
            raise ConfigError(
                f"{shown}: {TABLE}.stages: stages {other!r} and {stage!r} give the same target "
                f"names ({target_id(stage, config.pythons[0])}); rename one of them in {config.dockerfile}."
            )

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


# -- explaining validation errors ------------------------------------------------------


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = TABLE
    for part in loc:
        if part != "[key]":  # pydantic's marker for a dict key's own error
            out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model whose keys live at ``loc`` (for listing and suggesting keys)."""
    model: type[BaseModel] = Config
    for part in loc:
        field = next((f for name, f in model.model_fields.items() if part in (name, _kebab(name))), None)
        annotation = field.annotation if field else None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            return None
    return model


def _explain_one(err: Mapping[str, Any], overridden: Mapping[str, str]) -> str:
    loc: tuple[int | str, ...] = tuple(err["loc"])
    key = _key_path(loc)
    if loc and loc[0] in overridden:
        key = f"{overridden[str(loc[0])]} (overrides {key})"
    value = err.get("input")
    if isinstance(value, str):
        value = redact(value)
    kind = err["type"]
    if kind == "missing":
        examples = {"image": 'image = "OWNER/NAME-ci"', "python": 'python = ["3.12"]'}
        example = examples.get(str(loc[-1]), f"{loc[-1]} = ...")
        return f"{key} is required but missing. Add {example} to [{TABLE}]."
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        known = sorted(_kebab(n) for n in model.model_fields) if model else []
        hint = _did_you_mean(str(loc[-1]), known)
        listing = f" Known keys here: {', '.join(known)}." if known else ""
        return f"{key} is not a known key.{hint}{listing} Remove or rename it."
    if kind == "string_type" and isinstance(value, (int, float)) and not isinstance(value, bool):
        if loc[:1] == ("python",):
            return (
                f"{key} = {value!r} is a TOML number, not a string (TOML reads 3.10 as 3.1). "
                'Quote every version, e.g. python = ["3.10", "3.12"].'
            )
        return f'{key} = {value!r} is a number; quote it: "{value}".'
    if kind.endswith("_type"):
        return f"{key} = {value!r}: {err['msg'].lower()}. Write it as the documented type."
    if kind == "too_short":
        return f"{key} must not be empty. Give at least one entry."
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{key} = {value!r}: {msg}."


def explain(exc: ValidationError, path: Path, overridden: Mapping[str, str] | None = None) -> str:
    """One paragraph for all the errors of a validation, naming file, keys, values and fixes."""
    parts = [_explain_one(err, overridden or {}) for err in exc.errors(include_url=False)]
    return f"{_shown(path)}: " + " ".join(parts)
