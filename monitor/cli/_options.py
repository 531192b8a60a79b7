"""The one option layer of every console script: flags that fall back to ``ECG_MONITOR_*`` variables.

Each option is declared once, with its default, through :class:`OptionParser`:

* ``parser.option("--lead", env="LEAD", type=int, default=0, help=...)``: the
  value of ``ECG_MONITOR_LEAD`` (when set and non-empty) replaces the default
  *as a string*, so argparse converts it with the option's own ``type``; a bad
  value is argparse's clean error naming the flag and the variable, and exit 2
  (``argument --lead (from ECG_MONITOR_LEAD): must be an integer >= 0, got 'x'``),
  never a traceback while the parser is built.
* ``parser.flag("--loop", env="LOOP", help=...)``: on/off; the variable reads
  ``1/true/yes/on`` or ``0/false/no/off``; anything else is an error naming the
  variable, reported when the command line is parsed.
* :func:`positive` and :func:`non_negative` build ``type`` functions whose errors
  name the unit: ``argument --latency-budget-ms: must be > 0 ms, got '0'``;
  :func:`speed` reads a replay speed (a multiple of real time, or ``max``).

Help shows every default once (``(default: 5; env ECG_MONITOR_X)``); a default
of None is described in words with ``default_text=``. No option repeats a
default that a settings dataclass also declares: pass the dataclass field's
default (:func:`field_default`).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import signal
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, NoReturn

__all__ = [
    "ENV_PREFIX",
    "LOG_LEVELS",
    "OptionParser",
    "env_value",
    "field_default",
    "host_port",
    "non_negative",
    "positive",
    "setup_logging",
    "speed",
    "stop_on_signals",
]

ENV_PREFIX = "ECG_MONITOR_"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def env_value(name: str) -> str | None:
    """The value of ``ECG_MONITOR_<NAME>`` if set and non-empty, else None."""
    value = os.environ.get(ENV_PREFIX + name)
    return value if value not in (None, "") else None


def field_default(settings: type[Any], name: str) -> Any:
    """The default a settings dataclass declares for ``name`` (so a flag never repeats it)."""
    for f in dataclasses.fields(settings):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
    raise KeyError(f"{settings.__name__} has no field {name!r} with a default")


def _number(value: float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _number_type(
    kind: Callable[[str], float], unit: str, allow_zero: bool, maximum: float | None
) -> Callable[[str], Any]:
    word = ">= 0" if allow_zero else "> 0"
    suffix = f" {unit}" if unit else ""
    bound = f"{word} and <= {_number(maximum)}{suffix}" if maximum is not None else f"{word}{suffix}"
    noun = "an integer" if kind is int else "a number"

    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"must be {noun} {bound}, got {text!r}") from None
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text!r}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text!r}")
        return value

    convert.__name__ = kind.__name__
    return convert


def positive(
    kind: Callable[[str], float] = float, unit: str = "", *, maximum: float | None = None
) -> Callable[[str], Any]:
    """An argparse ``type``: a finite number > 0 (``int`` or ``float``, at most ``maximum``), errors naming ``unit``."""
    return _number_type(kind, unit, allow_zero=False, maximum=maximum)


def non_negative(
    kind: Callable[[str], float] = float, unit: str = "", *, maximum: float | None = None
) -> Callable[[str], Any]:
    """An argparse ``type``: a finite number >= 0 (at most ``maximum``), errors naming ``unit``."""
    return _number_type(kind, unit, allow_zero=True, maximum=maximum)


def speed(text: str) -> float | None:
    """An argparse ``type`` for a replay speed: ``max`` (None: as fast as the receiver takes it) or a multiple > 0."""
    if text.strip().lower() == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a multiple of real time > 0, or 'max'; got {text!r}")
    return value


class _EnvText(str):
    """An option's value read from ``ECG_MONITOR_<env>``: errors converting it name the variable."""

    env: str


def _shown(default: Any) -> str:
    text = _number(default) if isinstance(default, float) else str(default)
    return text.replace("%", "%%")  # help strings are %-formatted by argparse


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks; option help is written with its default already in it."""


class OptionParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose options may fall back to ``ECG_MONITOR_*`` environment variables."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)
        self._env_errors: list[str] = []
        self._env_options = False  # some option falls back to an ECG_MONITOR_* variable

    def format_help(self) -> str:
        """argparse's help, saying once (when it is so) that options fall back to their variables."""
        help_text = super().format_help()
        if self._env_options:
            help_text += f"\nOptions fall back to the {ENV_PREFIX}* environment variable shown in their help.\n"
        return help_text

    def option(
        self,
        *flags: str,
        env: str | None = None,
        default: Any = None,
        help: str,
        group: argparse._ActionsContainer | None = None,
        default_text: str | None = None,
        **kwargs: Any,
    ) -> argparse.Action:
        """An option taking a value. ``env`` names the ``ECG_MONITOR_`` variable that replaces ``default``.

        ``default_text`` describes the default in words (e.g. a None default: "the shipped model").
        """
        raw = env_value(env) if env else None
        value: Any = default
        if raw is not None:
            value = _EnvText(raw)
            value.env = env or ""
        if default_text is None:
            default_text = "none" if default is None else _shown(default)
        text = f"{help} (default: {default_text}" + (f"; env {ENV_PREFIX}{env})" if env else ")")
        choices = kwargs.get("choices")
        if raw is not None and choices is not None and "type" not in kwargs and raw not in choices:
            allowed = ", ".join(map(str, choices))
            self._env_errors.append(f"{ENV_PREFIX}{env}: invalid choice {raw!r} for {flags[0]} (choose from {allowed})")
            value = default
        self._env_options = self._env_options or env is not None
        target = group if group is not None else self
        return target.add_argument(*flags, default=value, help=text, **kwargs)

    def flag(
        self, *flags: str, env: str | None = None, help: str, group: argparse._ActionsContainer | None = None
    ) -> argparse.Action:
        """An on/off flag, off by default, on when given or when ``ECG_MONITOR_<env>`` reads true."""
        on = False
        raw = os.environ.get(ENV_PREFIX + env) if env else None
        if raw is not None:
            word = raw.strip().lower()
            if word in _TRUE:
                on = True
            elif word not in _FALSE:
                self._env_errors.append(f"{ENV_PREFIX}{env}: expected 1/true/yes/on or 0/false/no/off, got {raw!r}")
        text = help + (f" (default: off; env {ENV_PREFIX}{env})" if env else " (default: off)")
        self._env_options = self._env_options or env is not None
        target = group if group is not None else self
        return target.add_argument(*flags, action="store_true", default=on, help=text)

    def logging_option(self, default: str = "warning") -> argparse.Action:
        return self.option("--log-level", env="LOG_LEVEL", default=default, choices=LOG_LEVELS, help="logging level")

    def _get_value(self, action: argparse.Action, arg_string: str) -> Any:
        try:
            value = super()._get_value(action, arg_string)
        except argparse.ArgumentError as exc:
            if isinstance(arg_string, _EnvText):
                raise argparse.ArgumentError(
                    None, f"argument {_name(action)} (from {ENV_PREFIX}{arg_string.env}): {exc.message}"
                ) from None
            raise
        if isinstance(arg_string, _EnvText) and action.choices is not None and value not in action.choices:
            allowed = ", ".join(map(repr, action.choices))
            message = f"invalid choice: {value!r} (choose from {allowed})"
            raise argparse.ArgumentError(
                None, f"argument {_name(action)} (from {ENV_PREFIX}{arg_string.env}): {message}"
            )
        return str(value) if isinstance(value, _EnvText) else value

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        ns = super().parse_args(args, namespace)
        if self._env_errors:
            self.error("; ".join(self._env_errors))
        return ns

    def error(self, message: str) -> NoReturn:
        """Usage and the message on stderr, exit status 2 (argparse's convention)."""
        super().error(message)


def _name(action: argparse.Action) -> str:
    return "/".join(action.option_strings) or action.dest


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(name)s: %(levelname)s: %(message)s")


def stop_on_signals(stop: Callable[[], object]) -> None:
    """Call ``stop`` on SIGINT and SIGTERM (a clean shutdown instead of a traceback)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def host_port(text: str) -> tuple[str, int]:
    """An argparse ``type``: ``HOST:PORT`` (``PORT`` alone: 127.0.0.1), as :func:`monitor.observe.parse_address`."""
    from monitor.errors import ConfigError
    from monitor.observe import parse_address

    try:
        return parse_address(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
