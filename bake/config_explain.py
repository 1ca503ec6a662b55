"""Explaining pydantic's validation errors of ``[tool.bake-ci]`` in one paragraph.

Each error becomes "KEY = VALUE: what is wrong and how to fix it"; errors that share a
reason are grouped, and the paragraph names the file first. How values and lists are
written is bake/config_errors.py's.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from bake.config import TABLE, Config, kebab
from bake.config_errors import cut, did_you_mean, display_path, joined, show, summarise


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
