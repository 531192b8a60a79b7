"""Command-line entry points and the one option layer they share (flags with ``ECG_MONITOR_*`` fallbacks)."""

from monitor.cli._options import (
    ENV_PREFIX,
    LOG_LEVELS,
    OptionParser,
    env_value,
    field_default,
    non_negative,
    positive,
    setup_logging,
    speed,
    stop_on_signals,
)

__all__ = [
    "ENV_PREFIX",
    "LOG_LEVELS",
    "OptionParser",
    "env_value",
    "field_default",
    "non_negative",
    "positive",
    "setup_logging",
    "speed",
    "stop_on_signals",
]
