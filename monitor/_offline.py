"""Running the monitor's detection stage over a whole signal held in memory."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from monitor._stream import Ingest, StreamConfig
from monitor._wire import encode_data, encode_eos

__all__ = ["detect_beats"]


def detect_beats(x: NDArray[np.floating], fs: float, config: StreamConfig | None = None) -> NDArray[np.int64]:
    """R peaks (sample indices) of one lead in mV, exactly as the monitor finds them.

    The signal goes through the ingest in 10 s frames (without ZeroMQ): detector
    bank, signal-quality gating and beat assembly, so the result equals what a
    stream of the same samples gives, at any chunking.
    """
    ingest = Ingest(config)
    kw = dict(channels=["ECG"], units=["mV"], gain=[1.0], baseline=[0.0])
    signal = np.asarray(x, dtype="<f4")
    step = max(1, int(10 * fs))
    peaks: list[int] = []
    k = -1
    for k, i in enumerate(range(0, signal.size, step)):
        frame = encode_data("offline", k, i, fs, signal[i : i + step, None], **kw)  # type: ignore[arg-type]
        peaks += [b.sample for b in ingest.feed(frame)]
    peaks += [b.sample for b in ingest.feed(encode_eos("offline", k + 1, signal.size))]
    return np.asarray(peaks, dtype=np.int64)
