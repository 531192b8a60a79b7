"""Ingest: frames in, per-stream sequence tracking, unit conversion, ring buffers and stream processors."""

from monitor.ingest._offline import beats_of_signal, detect_beats
from monitor.ingest._ring import RingBuffer, SequenceTracker, SeqVerdict
from monitor.ingest._stream import MAX_ABS_MV, Ingest, StreamConfig, StreamProcessor, StreamStats

__all__ = [
    "MAX_ABS_MV",
    "Ingest",
    "RingBuffer",
    "SeqVerdict",
    "SequenceTracker",
    "StreamConfig",
    "StreamProcessor",
    "StreamStats",
    "beats_of_signal",
    "detect_beats",
]
