"""An output that fails for one stream costs that stream's output only: counted, alarmed, the rest goes on."""

from __future__ import annotations

from collections.abc import Sequence

from engine import LabeledBeat
from monitor.app import Monitor, MonitorConfig, Source
from monitor.outputs import Sink
from monitor.testing import ecg, frames_of

FS = 250.0


class Broken(Sink):
    """Fails on every beat of one stream, as a full disk or a refused file name would."""

    name = "broken"

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self.beats: dict[str, int] = {}

    def on_beats(self, beats: Sequence[LabeledBeat], now: float) -> None:
        for lb in beats:
            if lb.beat.stream == self.stream:
                raise OSError("No space left on device")
            self.beats[lb.beat.stream] = self.beats.get(lb.beat.stream, 0) + 1


def test_a_failing_output_raises_output_failed_on_its_stream_only() -> None:
    x, _ = ecg([0.8] * 30, FS, seed=1)
    monitor = Monitor(Source(endpoint="inproc://contained"), MonitorConfig(alarm_log=None), lockstep=True,
                      record_alarms=True)  # fmt: skip
    broken = Broken("bed.1")
    monitor.add_sink(broken)
    for stream in ("bed.1", "bed-2"):
        for parts in frames_of(x, FS, stream=stream, chunk=250):
            monitor.process([parts])
    failed = [e for e in monitor.alarm_events if e.kind == "output_failed"]
    assert [(e.stream, e.state, e.category) for e in failed][:1] == [("bed.1", "onset", "technical")]
    assert all(e.stream == "bed.1" for e in failed)
    assert monitor.sinks.failures[("broken", "bed.1")] > 0
    assert broken.beats["bed-2"] == monitor.ingest.streams["bed-2"].stats.beats > 20  # the other stream is whole
