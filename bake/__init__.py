"""bake-ci: bake Python CI images per Dockerfile stage and Python version with docker buildx bake."""

__version__ = "0.1.0"

# structlog imports rich at its own import whenever rich is installed (for its console
# tracebacks, which bake-ci does not use); only the live board needs rich, and it imports
# it itself. Hiding it during structlog's import keeps ~30 ms off every other command.
import sys as _sys

if "rich" not in _sys.modules and "structlog" not in _sys.modules:
    _sys.modules["rich"] = None  # type: ignore[assignment]
    try:
        import structlog as _structlog  # noqa: F401
    finally:
        del _sys.modules["rich"]
