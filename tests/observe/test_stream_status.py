"""A stream's status row from its processor: the lead chosen, its boot and segment, reboots and long gaps."""

from __future__ import annotations

import numpy as np

from monitor import Ingest, StreamConfig
from monitor.app import stream_status_of
from monitor.observe import StatusSnapshot, attach, retire
from monitor.testing import FakeClock, ecg, frames_of

FS = 360.0


def _signal(seconds: float, seed: int = 0, channels: int = 1) -> np.ndarray:
    x, _ = ecg([0.8] * (int(seconds / 0.8) + 2), FS, seed=seed, start_s=0.4, tail_s=0.4)
    x = x[: int(seconds * FS)]
    return np.repeat(x[:, None], channels, axis=1)


def _ingest(messages: list[list[bytes]], config: StreamConfig | None = None) -> Ingest:
    ingest = Ingest(config, clock=FakeClock())
    for parts in messages:
        ingest.feed(parts)
    return ingest


def test_the_row_names_the_lead_chosen_from_the_preference_list() -> None:
    x = _signal(5, channels=2)
    two = dict(channels=("V5", "mlii"), units=("mV", "mV"), gain=(1.0, 1.0), baseline=(0.0, 0.0))
    ingest = _ingest(frames_of(x, FS, chunk=360, **two), StreamConfig(lead=("MLII", "II", 0)))  # type: ignore[arg-type]
    st = stream_status_of(ingest.streams["s"], 0.0)
    assert (st.lead, st.lead_fallback, st.boot, st.segment) == ("mlii", False, None, "")
    assert (st.restarts, st.reboots, st.long_gaps) == (0, 0, 0)


def test_a_stream_without_a_preferred_lead_shows_the_fallback_to_channel_0() -> None:
    ingest = _ingest(frames_of(_signal(3)[:, 0], FS, chunk=360, channels=("V1",)), StreamConfig(lead=("MLII", "II")))
    st = stream_status_of(ingest.streams["s"], 0.0)
    assert (st.lead, st.lead_fallback) == ("V1", True)


def test_reboots_and_long_gaps_reach_the_row_the_totals_and_the_metrics() -> None:
    x = _signal(20, seed=1)[:, 0]
    first = frames_of(x[: 5 * 360], FS, chunk=360, boot="a1", eos=False)
    jump = 100 * 360  # a gap of 100 s in the same boot (max_gap_s is 60): a new segment, no restart
    later = frames_of(x[5 * 360 : 10 * 360], FS, chunk=360, boot="a1", seq=20, start=5 * 360 + jump, eos=False)
    rebooted = frames_of(x[10 * 360 :], FS, chunk=360, boot="b2", eos=False)  # a new run from seq 0, sample 0
    proc = _ingest(first + later + rebooted).streams["s"]
    st = stream_status_of(proc, 0.0)
    assert (st.boot, st.segment) == ("b2", "bb2")
    assert (st.restarts, st.reboots, st.long_gaps) == (1, 1, 1)

    live = StatusSnapshot(streams=(st,))
    forgotten = StatusSnapshot(retired=retire(StatusSnapshot().retired, st), streams_forgotten=1)
    for snap in (live, forgotten):  # a forgotten stream's reboots and gaps stay in the totals
        assert (snap.device_restarts, snap.device_reboots, snap.long_gaps) == (1, 1, 1)
        assert snap.to_status()["device_reboots"] == 1
        registry = attach(Fixed(snap), process=False)
        assert registry.get_sample_value("ecg_monitor_device_reboots_total") == 1


def test_per_stream_rejections_by_reason_from_a_real_stream() -> None:
    frames = frames_of(_signal(3)[:, 0], FS, chunk=360, eos=False)
    proc = _ingest([*frames, frames[1], frames[2]]).streams["s"]  # two frames again: duplicates
    st = stream_status_of(proc, 0.0)
    assert dict(st.rejected) == {"duplicate": 2}
    registry = attach(Fixed(StatusSnapshot(streams=(st,))), per_stream=True, process=False)
    labels = {"stream": "s", "reason": "duplicate"}
    assert registry.get_sample_value("ecg_monitor_stream_frames_rejected_total", labels) == 2


class Fixed:
    def __init__(self, snap: StatusSnapshot) -> None:
        self.snap = snap

    def snapshot(self) -> StatusSnapshot:
        return self.snap
