"""The engine's own exceptions, and the check its settings use.

The engine sits below the monitor and imports nothing from it: the monitor's
errors may build on these (``monitor.errors`` can reuse :func:`require_positive`).
"""

from __future__ import annotations

import math

__all__ = ["EngineConfigError", "EngineError", "EngineUnavailable", "require_positive"]


class EngineError(Exception):
    """Base class of every error raised on purpose by the engine."""


class EngineConfigError(EngineError, ValueError):
    """An engine setting has a bad value; the message names it."""


class EngineUnavailable(EngineError):
    """The remote engine did not answer in time, or refused the request."""


def require_positive(
    settings: object, *names: str, prefix: str = "", error: type[Exception] = EngineConfigError
) -> None:
    """Raise ``error`` naming the first of ``names`` that is not a positive finite number."""
    for name in names:
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
            raise error(f"{prefix}{name} must be a positive number, got {value!r}")
