"""The outputs carry the device's own sample indices after a long gap, a reboot and a v1 restart.

The monitor keeps one monotonic stream clock per stream (what the rhythm logic
sees, recorded here as the events reach the sinks); the bus, the alarm log and
the annotation files write the device's own indices, computed here from the
frames sent, with the device's run (``boot``) and index space (``segment``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import wfdb
import zmq

from engine import LabeledBeat
from monitor.app import Monitor, MonitorConfig, Source
from monitor.detect import TechnicalAlarm
from monitor.outputs import ANNOTATION_EXT, AlarmLog, AnnotationWriter, Sink, annotation_name, decode_message
from monitor.testing import FakeClock, ecg, frames_of

FS = 250.0
CHUNK = 25  # 0.1 s frames
GAP = round(90 * FS)  # over max_gap_s (60 s): a new segment in the same index space
R_TOLERANCE = round(0.05 * FS)


def sinus(beats: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    return ecg([0.8] * beats, FS, tail_s=0.6, seed=seed)


def asystole(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """20 s of sinus rhythm, then 8 s without beats (low noise, not flat); and the R peaks."""
    x, peaks = ecg([0.8] * 24, FS, tail_s=0.6, seed=seed)
    rng = np.random.default_rng(seed + 1)
    pause = 0.03 * rng.standard_normal(round(8 * FS)) + 0.05 * np.sin(2 * np.pi * 0.3 * np.arange(8 * FS) / FS)
    return np.concatenate((x, pause)), peaks


@dataclass(frozen=True)
class Sent:
    """One segment as sent: its device start, run and signal; ``label`` the index space it must land in."""

    boot: str | None
    seq: int
    device_start: int
    x: np.ndarray
    peaks: np.ndarray  # R peaks, relative to the segment's first sample
    label: str


class Device:
    """A stream's segments as the device sent them, and what each stream index is on the device."""

    def __init__(self, stream: str, segments: Sequence[Sent]) -> None:
        self.stream = stream
        self.segments = list(segments)
        self.starts = np.cumsum([0] + [len(s.x) for s in self.segments[:-1]])  # stream index of each segment

    def messages(self) -> list[list[bytes]]:
        out: list[list[bytes]] = []
        for k, s in enumerate(self.segments):
            last = k == len(self.segments) - 1
            out += frames_of(
                s.x, FS, stream=self.stream, chunk=CHUNK, seq=s.seq, start=s.device_start, eos=last, boot=s.boot
            )
        return out

    def place(self, sample: int) -> tuple[int, str | None, str]:
        """(device index, boot, segment label) of stream index ``sample``."""
        k = int(np.searchsorted(self.starts, sample, side="right")) - 1
        s = self.segments[k]
        return sample - int(self.starts[k]) + s.device_start, s.boot, s.label

    @property
    def broken(self) -> bool:
        return len(self.segments) > 1

    def r_peaks(self, label: str) -> np.ndarray:
        """The device indices of every R peak sent in index space ``label``."""
        return np.concatenate([s.peaks + s.device_start for s in self.segments if s.label == label])


def devices() -> list[Device]:
    a, pa = sinus(25, seed=1)
    b, pb = sinus(25, seed=2)
    c, pc = asystole(seed=6)
    d, pd = sinus(25, seed=4)
    e, pe = sinus(25, seed=5)
    f, pf = asystole(seed=1)
    frames_a = -(-len(a) // CHUNK)
    return [
        Device(  # a v2 device: a gap of 90 s in one run, then a reboot (its indices start again at 0)
            "bed.1",
            [
                Sent("7", 0, 0, a, pa, ""),
                Sent("7", frames_a, len(a) + GAP, b, pb, ""),
                Sent("8", 0, 0, c, pc, "b8"),
            ],
        ),
        Device("bed-2", [Sent(None, 0, 0, d, pd, ""), Sent(None, 0, 0, e, pe, "s1")]),  # a v1 device restarts
        Device("100", [Sent("3", 0, 0, f, pf, "")]),  # unbroken: every output as before
    ]


class Seen(Sink):
    """What reaches the sinks, in the stream's own indices."""

    name = "seen"

    def __init__(self) -> None:
        self.beats: list[LabeledBeat] = []
        self.rhythm: list[tuple[str, float, int, str]] = []
        self.technical: list[tuple[TechnicalAlarm, float]] = []
        self.started: list[tuple[str, float]] = []

    def on_stream_start(self, stream: str, fs: float) -> None:
        self.started.append((stream, fs))

    def on_beats(self, beats: Sequence[LabeledBeat], now: float) -> None:
        self.beats.extend(beats)

    def on_rhythm(self, stream: str, fs: float, sample: int, aux: str) -> None:
        self.rhythm.append((stream, fs, sample, aux))

    def on_technical(self, alarm: TechnicalAlarm, fs: float) -> None:
        self.technical.append((alarm, fs))


def receive(sub: zmq.Socket[bytes]) -> Iterator[dict[str, Any]]:
    while sub.poll(0):
        yield decode_message(sub.recv_multipart())[1]


def run_devices(ctx: zmq.Context[zmq.Socket[bytes]], tmp_path: Path) -> tuple[Monitor, Seen, list[dict[str, Any]]]:
    clock = FakeClock()
    config = MonitorConfig(
        annotations=tmp_path / "ann",
        alarm_log=tmp_path / "alarms.db",
        alerts="inproc://device-indices-bus",
        wave=True,
        engine_thread=False,
    )
    monitor = Monitor(
        Source(endpoint="inproc://unused"), config, clock=clock, context=ctx, lockstep=True, record_alarms=True
    )
    seen = Seen()
    monitor.add_sink(seen)
    monitor._open_outputs()  # the bus and the alarm log as run() opens them (process() runs without sockets)
    assert monitor.bus is not None
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.connect(monitor.bus.endpoint)
    sub.subscribe(b"")
    try:
        for _ in range(200):  # the subscription reaches the bus before anything is published
            if monitor.bus.serve_subscriptions():
                break
            sub.poll(10)
        bodies: list[dict[str, Any]] = []
        queues = [d.messages() for d in devices()]
        while any(queues):
            batch = [m for q in queues for m in q[:10]]  # one second of each stream per turn
            queues = [q[10:] for q in queues]
            monitor.process(batch)
            clock.advance(1.0)
            bodies += receive(sub)
        monitor.process()
        bodies += receive(sub)
    finally:
        sub.close(linger=0)
        monitor.sinks.close()
        monitor.bus.close()
    return monitor, seen, bodies


def test_every_output_carries_the_devices_own_index(ctx: zmq.Context[zmq.Socket[bytes]], tmp_path: Path) -> None:
    monitor, seen, bodies = run_devices(ctx, tmp_path)
    by_stream = {d.stream: d for d in devices()}
    for proc in monitor.ingest.streams.values():  # the ingest agrees with the segments sent
        expected = by_stream[proc.stream]
        assert [s.label for s in proc.segments.segments] == [s.label for s in expected.segments]
        assert [s.start for s in proc.segments.segments] == expected.starts.tolist()

    # beats: every bus message is the device's index of the beat the rhythm logic saw, near an R peak sent there
    beats = [b for b in bodies if b["type"] == "beat"]
    assert [(b["stream"], b["label"]) for b in beats] == [(lb.beat.stream, lb.label) for lb in seen.beats]
    assert len(beats) > 150
    for body, lb in zip(beats, seen.beats, strict=True):
        device = by_stream[lb.beat.stream]
        sample, boot, label = device.place(lb.beat.sample)
        assert body["sample"] == sample
        if "segment" in body:
            assert (body["boot"], body["segment"]) == (boot, label)
        else:  # only before the stream's second segment began
            assert label == "" and device.segments[0].boot == boot
            assert not device.broken or lb.beat.sample < device.starts[-1]
        assert np.min(np.abs(device.r_peaks(label) - sample)) <= R_TOLERANCE
    for device in by_stream.values():
        mine = [b for b in beats if b["stream"] == device.stream]
        tagged = ["segment" in b for b in mine]
        if device.broken:  # named from the second segment on, and every index space has its beats
            first = tagged.index(True)
            assert all(tagged[first:]) and not any(tagged[:first])
            assert {b.get("segment", "") for b in mine} == {s.label for s in device.segments}
        else:  # unbroken: no new field
            assert not any(tagged) and not any("boot" in b for b in mine)

    # alarms: bus and log carry the device's index of the onset and of the transition, alarm_id the stream clock's
    events = monitor.alarm_events
    alarms = [b for b in bodies if b["type"] == "alarm" and not b["snapshot"]]
    assert [(a["stream"], a["kind"], a["state"], a["alarm_id"]) for a in alarms] == [
        (e.stream, e.kind, e.state, e.alarm_id) for e in events
    ]
    reader = AlarmLog.reader(tmp_path / "alarms.db")
    rows = list(reversed(reader.history(limit=None)))
    reader.close()
    assert [(r["stream"], r["kind"], r["state"], r["alarm_id"]) for r in rows] == [
        (e.stream, e.kind, e.state, e.alarm_id) for e in events
    ]
    asystoles = [e for e in events if e.kind == "asystole" and e.state == "onset"]
    assert {e.stream for e in asystoles} == {"bed.1", "100"}
    for event, body, row in zip(events, alarms, rows, strict=True):
        device = by_stream[event.stream]
        sample, boot, label = device.place(event.sample)
        onset, onset_boot, onset_label = device.place(event.onset_sample)
        assert (body["sample"], body["onset_sample"]) == (row["sample"], row["onset_sample"]) == (sample, onset)
        placed = {k: body[k] for k in ("boot", "segment", "onset_boot", "onset_segment") if k in body}
        if placed:
            assert placed == {"boot": boot, "segment": label, "onset_boot": onset_boot, "onset_segment": onset_label}
        else:
            assert not device.broken or (label == onset_label == "" and event.sample < device.starts[-1])
        assert row["details"] == dict(body["details"], **placed)  # the log keeps them in details
    reboot_asystole = next(e for e in asystoles if e.stream == "bed.1")
    onset_body = next(a for a in alarms if a["alarm_id"] == reboot_asystole.alarm_id and a["state"] == "onset")
    assert onset_body["segment"] == onset_body["onset_segment"] == "b8" and onset_body["boot"] == "8"
    assert onset_body["onset_sample"] < len(by_stream["bed.1"].segments[2].x)  # the new run's own indices

    # vitals: the device's index too
    vitals = [b for b in bodies if b["type"] == "vitals"]
    assert vitals
    for body in vitals:
        device = by_stream[body["stream"]]
        if "segment" in body:
            assert body["segment"] in {s.label for s in device.segments}
        else:
            assert not device.broken or body["sample"] <= device.starts[-1]  # not yet past the first segment

    # annotation files: one per index space, each the device's own indices, increasing
    ann = tmp_path / "ann"
    names = {
        annotation_name("bed.1"): ("bed.1", ""),
        annotation_name("bed.1", "b8"): ("bed.1", "b8"),
        annotation_name("bed-2"): ("bed-2", ""),
        annotation_name("bed-2", "s1"): ("bed-2", "s1"),
        annotation_name("100"): ("100", ""),
    }
    assert sorted(p.stem for p in ann.glob(f"*.{ANNOTATION_EXT}")) == sorted(names)
    assert {"_bed_2e1__b8", "_bed-2__s1"} <= set(names)
    for name, (stream, label) in names.items():
        record = wfdb.rdann(str(ann / name), ANNOTATION_EXT)
        device = by_stream[stream]
        expected = sorted(
            device.place(lb.beat.sample)[0]
            for lb in seen.beats
            if lb.beat.stream == stream and device.place(lb.beat.sample)[2] == label
        )
        got = [int(s) for s, sym in zip(record.sample, record.symbol, strict=True) if sym not in ("~", "+", '"')]
        assert got == expected and len(got) > 10, name
        assert np.all(np.diff(record.sample) >= 0)
        assert record.fs == FS

    # the unbroken stream's file is exactly the one the stream indices make
    plain = AnnotationWriter(tmp_path / "plain")
    plain.register("100", FS)
    plain.add([lb for lb in seen.beats if lb.beat.stream == "100"])
    for stream, fs, sample, aux in seen.rhythm:
        if stream == "100":
            plain.add_rhythm(stream, fs, sample, aux)
    for alarm, fs in seen.technical:
        if alarm.stream == "100":
            plain.add_technical(alarm, fs)
    assert plain.write("100").read_bytes() == (ann / "100.mon").read_bytes()


def test_waveform_strips_follow_each_device_in_its_own_indices(
    ctx: zmq.Context[zmq.Socket[bytes]], tmp_path: Path
) -> None:
    _monitor, _seen, bodies = run_devices(ctx, tmp_path)
    waves = [b for b in bodies if b["type"] == "wave"]
    by_stream = {d.stream: d for d in devices()}
    assert {w["stream"] for w in waves} == set(by_stream)
    for stream in by_stream:
        mine = [w for w in waves if w["stream"] == stream]
        fs = mine[0]["source_fs"]
        assert all(len(w["values"]) == 31 and w["fs"] == 125.0 for w in mine)
        spaces: dict[str, list[int]] = {}
        for w in mine:
            spaces.setdefault(w.get("segment", ""), []).append(w["sample"])
        for samples in spaces.values():  # within one index space the strips follow each other
            steps = np.diff(samples)
            assert (steps > 0).all() and (np.abs(steps - 31 * fs / 125.0) <= 1).mean() > 0.9
        assert len(spaces) == len({s.label for s in by_stream[stream].segments})
