"""Exception hierarchy shared by every ecg-monitor package."""

from __future__ import annotations

import math

__all__ = [
    "ConfigError",
    "EcgMonitorError",
    "FrameError",
    "RecordError",
    "RecordNotFoundError",
    "SourceError",
    "require_positive",
]


class EcgMonitorError(Exception):
    """Base class of every error raised on purpose by ecg-monitor."""


class ConfigError(EcgMonitorError, ValueError):
    """A setting, flag or argument has a bad value; the message names both."""


class SourceError(ConfigError):
    """A ``--source`` specification cannot be understood."""


class RecordError(EcgMonitorError):
    """A WFDB record exists but cannot be read (corrupt header or signal)."""


class RecordNotFoundError(RecordError, FileNotFoundError):
    """A record could not be found in any searched place."""


class FrameError(EcgMonitorError, ValueError):
    """A wire frame is malformed; ``reason`` is a short counter key."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def require_positive(settings: object, *names: str, prefix: str = "") -> None:
    """Raise :class:`ConfigError` naming the first of ``names`` that is not a positive finite number."""
    for name in names:
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{prefix}{name} must be a positive number, got {value!r}")
