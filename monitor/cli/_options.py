"""argparse helpers: flags that fall back to ``ECG_MONITOR_*`` environment variables."""

from __future__ import annotations

import argparse
import os
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

__all__ = ["env_default", "setup_logging", "stop_on_signals"]


def env_default(name: str, default: Any = None) -> Any:
    """The value of ``ECG_MONITOR_<NAME>`` if set and non-empty, else ``default``."""
    value = os.environ.get(f"ECG_MONITOR_{name}")
    return value if value not in (None, "") else default


def env_flag(name: str) -> bool:
    return str(env_default(name, "")).strip().lower() in ("1", "true", "yes", "on")


def setup_logging(level: str) -> None:
    import logging

    logging.basicConfig(level=level.upper(), format="%(name)s: %(levelname)s: %(message)s")


class EnvHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    pass


def stop_on_signals(stop: Callable[[], object]) -> None:
    """Call ``stop`` on SIGINT and SIGTERM (a clean shutdown instead of a traceback)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
