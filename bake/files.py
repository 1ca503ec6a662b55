"""Writing files so that nothing half-written is ever left behind."""

from __future__ import annotations

import tempfile
from pathlib import Path


def write_atomic(path: Path, text: str, errors: str = "strict") -> None:
    """Write a file so that readers see the old content or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=f".{path.name}.", delete=False, encoding="utf-8", errors=errors
    ) as tmp:
        tmp.write(text)
    Path(tmp.name).replace(path)
