"""The replay options that ``ecg-replay`` and ``ecg-monitor --source replay:...`` share, declared once."""

from __future__ import annotations

from monitor.cli import OptionParser, field_default, positive, speed
from replay._publisher import MAX_CHUNK_S, ReplayConfig

__all__ = ["add_replay_options"]


def add_replay_options(p: OptionParser) -> None:
    """The options of a replay that ``ecg-replay`` and ``ecg-monitor --source replay:...`` share."""
    p.option(
        "--data-dir",
        env="DATA",
        help="folder of WFDB records",
        default_text="the per-user cache, downloading missing records",
    )
    p.option(
        "--speed",
        env="SPEED",
        type=speed,
        default=field_default(ReplayConfig, "speed"),
        help="replay speed: multiple of real time, or 'max'",
    )
    p.option(
        "--chunk-ms",
        env="CHUNK_MS",
        type=positive(float, "ms", maximum=MAX_CHUNK_S * 1000),
        default=field_default(ReplayConfig, "chunk_s") * 1000,
        help="samples sent per frame, in ms of signal",
    )
    p.flag("--loop", env="LOOP", help="replay the records in a loop (sample indices keep growing)")
