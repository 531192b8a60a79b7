"""Ingest: frames in, per-stream sequence tracking, unit conversion, ring buffers and stream processors.

Sample indices. The detector needs one monotonic clock per stream, so every
stream keeps a *stream index* that never goes back: it equals the device's own
``start`` indices until the stream's first new segment (a v2 reboot, a v1
restart, a gap over ``max_gap_s``), and each new segment continues at the
stream's next index. Beats (``Beat.sample``, ``window_start``), RR intervals,
technical alarms and ``StreamProcessor.samples_end`` are in stream indices, so
an unbroken stream's beats, RR and labels are exactly the device's.
``StreamProcessor.segments`` (a :class:`SegmentTable` of :class:`Segment`:
number, boot, first stream index, first device index, label) maps any stream
index back: ``proc.device_index(sample)`` is the device's own index and
``proc.segments.at(sample)`` its segment and boot. Outputs write device
indices with it; ``Segment.label`` names an index space in which device
indices only increase (``""`` for the stream's first; a new one after a reboot
or when the device's indices go back), e.g. one annotation file per label.
"""

from monitor.ingest._config import MAX_ABS_MV, RejectionCounter, StreamConfig, StreamStats
from monitor.ingest._offline import beats_of_signal, detect_beats
from monitor.ingest._processor import StreamProcessor
from monitor.ingest._rejections import RejectionLog
from monitor.ingest._ring import RingBuffer
from monitor.ingest._router import Ingest
from monitor.ingest._segments import Segment, SegmentTable
from monitor.ingest._sequence import SequenceTracker, SeqVerdict

__all__ = [
    "MAX_ABS_MV",
    "Ingest",
    "RejectionCounter",
    "RejectionLog",
    "RingBuffer",
    "Segment",
    "SegmentTable",
    "SeqVerdict",
    "SequenceTracker",
    "StreamConfig",
    "StreamProcessor",
    "StreamStats",
    "beats_of_signal",
    "detect_beats",
]
