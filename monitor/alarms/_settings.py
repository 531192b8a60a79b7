"""Rhythm alarm thresholds: :class:`RhythmConfig` per stream, :class:`RhythmSettings`, and their TOML file.

``monitor/alarms/rhythm.toml`` holds the adult defaults with a comment on each
threshold; ``--rhythm-config FILE`` reads a copy of it with
:func:`load_rhythm_settings`. Top-level keys are the defaults for every
stream, a ``[streams.<id>]`` table overrides them for one stream, and an
unknown key is an error.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.errors import ConfigError, require_positive
from monitor.vocabulary import CLINICAL_KINDS

__all__ = ["RhythmConfig", "RhythmSettings", "load_rhythm_settings"]


@dataclass(frozen=True)
class RhythmConfig:
    """Alarm thresholds for one stream (adult defaults; each alarm's module documents its condition)."""

    asystole_s: float = 4.0
    pause_s: float = 2.5
    vf_on_blocks: int = 4
    vf_window_blocks: int = 5
    vt_beats: int = 8
    vt_bpm: float = 120.0
    vt_irregularity: float = 0.2
    run_beats: int = 3
    run_bpm: float = 100.0
    svt_beats: int = 5
    svt_bpm: float = 100.0
    bigeminy_cycles: int = 4
    trigeminy_cycles: int = 4
    pvc_per_min: float = 10.0
    brady_bpm: float = 50.0
    brady_extreme_bpm: float = 40.0
    tachy_bpm: float = 120.0
    tachy_extreme_bpm: float = 140.0
    rate_on_s: float = 5.0
    rate_hysteresis_bpm: float = 5.0
    af_window: int = 24
    af_irregularity: float = 0.10
    af_on_beats: int = 24
    af_p_corr: float = 0.6
    hr_window_s: float = 4.0
    hr_max_beats: int = 16
    clear_s: float = 5.0
    hold_s: float = 10.0
    update_s: float = 5.0
    update_bpm: float = 5.0
    disabled: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = sorted(set(self.disabled) - set(CLINICAL_KINDS))
        if unknown:
            raise ConfigError(f"rhythm disabled: unknown alarm kind(s) {unknown}; known: {sorted(CLINICAL_KINDS)}")
        numbers = [f for f in dataclasses.fields(self) if f.name != "disabled"]
        require_positive(self, *(f.name for f in numbers), prefix="rhythm ")
        for f in numbers:
            if f.type == "int" and not isinstance(getattr(self, f.name), int):
                raise ConfigError(f"rhythm {f.name} must be a whole number, got {getattr(self, f.name)!r}")
        if self.pause_s >= self.asystole_s:
            raise ConfigError(f"rhythm pause_s={self.pause_s} must be shorter than asystole_s={self.asystole_s}")
        if self.run_beats >= self.vt_beats:
            raise ConfigError(f"rhythm run_beats={self.run_beats} must be below vt_beats={self.vt_beats}")
        if self.vf_on_blocks > self.vf_window_blocks:
            raise ConfigError("rhythm vf_on_blocks must not exceed vf_window_blocks")
        if not self.brady_extreme_bpm < self.brady_bpm < self.tachy_bpm < self.tachy_extreme_bpm:
            raise ConfigError("rhythm rates must satisfy brady_extreme_bpm < brady_bpm < tachy_bpm < tachy_extreme_bpm")


@dataclass(frozen=True)
class RhythmSettings:
    """Defaults for every stream plus per-stream overrides."""

    default: RhythmConfig = field(default_factory=RhythmConfig)
    streams: Mapping[str, RhythmConfig] = field(default_factory=dict)

    def for_stream(self, stream: str) -> RhythmConfig:
        return self.streams.get(stream, self.default)


def _config_from(table: Mapping[str, Any], base: RhythmConfig, where: str) -> RhythmConfig:
    known = {f.name: f for f in dataclasses.fields(RhythmConfig)}
    changes: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown setting {key!r}; known settings: {', '.join(sorted(known))}")
        if key == "disabled":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where}: disabled must be a list of alarm kinds, got {value!r}")
            value = tuple(value)
        elif known[key].type == "float" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        changes[key] = value
    try:
        return dataclasses.replace(base, **changes)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def load_rhythm_settings(path: str | Path | None) -> RhythmSettings:
    """Read a TOML file: top-level settings are the defaults, ``[streams.<id>]`` tables override them.

    Unknown keys are an error (a misspelt threshold must not fall back to a default silently).
    """
    if path is None:
        return RhythmSettings()
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--rhythm-config {p}: no such file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"--rhythm-config {p}: cannot read it ({exc})") from None
    streams_table = data.pop("streams", {})
    if not isinstance(streams_table, dict):
        raise ConfigError(f"{p}: [streams] must be a table of per-stream tables")
    default = _config_from(data, RhythmConfig(), str(p))
    streams = {}
    for sid, table in streams_table.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{p}: [streams.{sid}] must be a table")
        streams[sid] = _config_from(table, default, f"{p} [streams.{sid}]")
    return RhythmSettings(default, streams)
