"""Exception hierarchy shared by every ecg-monitor package."""

from __future__ import annotations

from engine import require_positive as _require_positive

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
    _require_positive(settings, *names, prefix=prefix, error=ConfigError)
