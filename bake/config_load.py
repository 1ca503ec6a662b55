"""Loading ``[tool.bake-ci]`` into a :class:`~bake.config.Project`, and the checks across files.

:func:`load` reads the TOML file, applies the environment overrides, validates the table
against the models of bake/config.py, then checks what involves more than one key or
more than the config file: the registry and image names together, ``base-image`` against
``python``, the context and the Dockerfile on disk, the configured stages against the
Dockerfile's, what BuildKit would refuse in the Dockerfile, and whether
``docker-bake.hcl`` defines a ``bake-ci`` target to inherit.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bake import dockerfile, dockerfile_check, redact
from bake.config import CACHE_SUFFIX, MAX_NAME, MAX_STAGE, TABLE, Config, Project
from bake.config_errors import cut, did_you_mean, display_path, error, joined, short_path, show, summarise
from bake.config_explain import explain
from bake.naming import PythonVersion, target_id

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


#: Environment variables that override a key of the file.
ENV_OVERRIDES = {"registry": "BAKE_CI_REGISTRY", "base-image": "BAKE_CI_BASE_IMAGE"}


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
