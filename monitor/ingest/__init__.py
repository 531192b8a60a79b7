"""Ingest: frames in, per-stream sequence tracking, unit conversion, ring buffers and stream processors."""

from monitor.ingest._config import MAX_ABS_MV, StreamConfig, StreamStats
from monitor.ingest._offline import beats_of_signal, detect_beats
from monitor.ingest._processor import StreamProcessor
from monitor.ingest._ring import RingBuffer
from monitor.ingest._router import Ingest
from monitor.ingest._sequence import SequenceTracker, SeqVerdict

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
