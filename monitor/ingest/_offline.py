"""Running the monitor's detection stage over a whole signal held in memory."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine import Beat
from monitor.ingest._config import StreamConfig
from monitor.ingest._router import Ingest
from monitor.protocol import MAX_FRAME_SECONDS, encode_data, encode_eos

__all__ = ["beats_of_signal", "detect_beats"]


def beats_of_signal(
    samples: NDArray[Any],
    fs: float,
    config: StreamConfig | None = None,
    *,
    channels: Sequence[str] = ("ECG",),
    units: Sequence[str] = ("mV",),
    gain: Sequence[float] = (1.0,),
    baseline: Sequence[float] = (0.0,),
    invalid: int | None = None,
    stream: str = "offline",
) -> list[Beat]:
    """Every beat the monitor hands to the engine for this signal, in order.

    ``samples`` (n, channels) or (n,) goes through the ingest in frames of
    ``MAX_FRAME_SECONDS`` (without ZeroMQ): detector bank, signal-quality gating
    and beat assembly, so the result equals what a stream of the same samples
    gives, at any chunking. Defaults: one lead in mV.
    """
    x = np.asarray(samples)
    if x.ndim == 1:
        x = x[:, None]
    if x.dtype.kind == "f":
        x = x.astype("<f4")
    ingest = Ingest(config)
    kw = dict(channels=channels, units=units, gain=gain, baseline=baseline, invalid=invalid)
    step = max(1, int(MAX_FRAME_SECONDS * fs))
    beats: list[Beat] = []
    k = -1
    for k, i in enumerate(range(0, x.shape[0], step)):
        beats += ingest.feed(encode_data(stream, k, i, fs, x[i : i + step], **kw))  # type: ignore[arg-type]
    beats += ingest.feed(encode_eos(stream, k + 1, x.shape[0]))
    return beats


def detect_beats(x: NDArray[np.floating], fs: float, config: StreamConfig | None = None) -> NDArray[np.int64]:
    """R peaks (sample indices) of one lead in mV, exactly as the monitor finds them."""
    return np.asarray([b.sample for b in beats_of_signal(x, fs, config)], dtype=np.int64)
