"""How a configuration error reads: one paragraph, short, free of secrets.

Every :class:`ConfigError` names the file, the key, the value and the fix. These helpers
write the values, lists and paths in it (cut, summarised, redacted) and cap the whole
paragraph at :data:`MAX_MESSAGE` characters. They know nothing of the models, so the
validators (bake/config.py), the explanation of pydantic's errors (bake/config_explain.py)
and the cross-checks (bake/config_load.py) all write their messages with them.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bake import redact
from bake.errors import ConfigError

#: No config error paragraph is longer than this: values and lists in it are summarised.
MAX_MESSAGE = 560


def error(message: str) -> ConfigError:
    """A :class:`ConfigError` whose paragraph is at most :data:`MAX_MESSAGE` characters.

    Every message is built short (values and lists summarised); this cut is the last
    resort, keeping the start (file, key, value) and the end (the fix).
    """
    return ConfigError(_capped(redact.redact(message)))


def _capped(message: str) -> str:
    if len(message) <= MAX_MESSAGE:
        return message
    head = MAX_MESSAGE * 2 // 3
    tail = MAX_MESSAGE - head - 5
    return f"{message[:head]} ... {message[-tail:]}"


def cut(text: str, limit: int) -> str:
    """``text``, or its first ``limit`` characters and ``...``."""
    return text if len(text) <= limit else text[:limit] + "..."


def show(value: Any, limit: int = 60) -> str:
    """A value as a message shows it: credentials hidden, long values cut, with their length."""
    if isinstance(value, str):
        value = redact.redact_value(value)
        if len(value) > limit:
            return f"{value[: limit - 20]!r}... ({len(value):,} characters)"
        return repr(value)
    text = repr(value)
    if isinstance(value, (list, tuple, dict)) and len(text) > limit:
        return f"{text[: limit - 20]}... ({len(value):,} entries)"
    return cut(text, limit)


def summarise(items: Sequence[str], first: int = 3) -> str:
    """``a, b, c and 1,997 more``: a list as a message shows it."""
    items = list(items)
    if len(items) <= first + 1:
        return ", ".join(items)
    return f"{', '.join(items[:first])} and {len(items) - first:,} more"


def short_path(path: Path) -> str:
    text = str(path)
    return text if len(text) <= 80 else "..." + text[-77:]


def display_path(path: Path) -> str:
    """``path`` as a message names it: relative to the working directory when inside it, cut to 80 characters."""
    try:
        text = str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        text = str(path)
    return text if len(text) <= 80 else "..." + text[-77:]


def did_you_mean(word: str, choices: list[str]) -> str:
    if len(word) > 100:
        return ""
    close = difflib.get_close_matches(word, choices, n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def joined(parts: list[str], prefix: str) -> str:
    """``prefix`` and as many whole problems as fit in a message, then how many more there are."""
    out = [prefix + parts[0]]
    for i, part in enumerate(parts[1:], start=2):
        room = MAX_MESSAGE - (0 if i == len(parts) else 60)  # keep room to count the rest
        if len(" ".join([*out, part])) > room:
            break
        out.append(part)
    rest = len(parts) - len(out)
    if rest:
        out.append(f"And {rest:,} more {'problem' if rest == 1 else 'problems'}: fix these and run again.")
    return " ".join(out)
