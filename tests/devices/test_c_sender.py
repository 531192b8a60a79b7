"""A device written in C (libzmq only, tests/devices/ecg_sender.c) against a real monitor on TCP loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import zmq

from engine import LabeledBeat
from monitor import Monitor, MonitorConfig, Source
from monitor.outputs import Sink
from monitor.testing import ecg

HERE = Path(__file__).resolve().parent
BOOT1, BOOT2 = 2**64 - 1, 1234567890123456789
FS = 360


class _Beats(Sink):
    def __init__(self) -> None:
        self.samples: list[int] = []

    def on_beats(self, beats: Sequence[LabeledBeat], now: float) -> None:
        self.samples += [lb.beat.sample for lb in beats]


def _zmq_header() -> bool:
    return any(Path(d, "zmq.h").exists() for d in ("/usr/include", "/usr/local/include"))


def _missing(what: str) -> None:
    message = f"{what} is not installed (.ci/run installs it: apt-get install gcc libzmq3-dev)"
    if os.environ.get("ECG_MONITOR_REQUIRE_C_SENDER"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def sender(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None:
        _missing("gcc")
    if not _zmq_header():
        _missing("zmq.h")
    exe = tmp_path_factory.mktemp("c-sender") / "ecg_sender"
    cmd = ["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(exe), str(HERE / "ecg_sender.c"), "-lzmq"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return exe


def test_a_c_device_sends_data_a_gap_a_reboot_and_its_end(
    sender: Path, ctx: zmq.Context[zmq.Socket[bytes]], tmp_path: Path
) -> None:
    x, peaks = ecg([0.8] * 40, FS, seed=11, start_s=0.5, tail_s=0.4)  # 32.5 s; no R peak at a gap edge
    samples = tmp_path / "lead.i16"
    np.round(x * 200).astype("<i2").tofile(samples)
    monitor = Monitor(Source(endpoint="tcp://127.0.0.1:*"), MonitorConfig(), context=ctx)
    beats = _Beats()
    monitor.add_sink(beats)
    thread = threading.Thread(target=monitor.run)
    thread.start()
    try:
        assert monitor.ready.wait(5) and monitor.bound_endpoint is not None
        done = subprocess.run(
            [str(sender), monitor.bound_endpoint, "bed.c-1", str(BOOT1), str(BOOT2), str(samples)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        proc = None
        for _ in range(1000):
            proc = monitor.ingest.streams.get("bed.c-1")
            if proc is not None and proc.stats.ended:
                break
            threading.Event().wait(0.01)
    finally:
        monitor.stop()
        thread.join(10)
    assert not thread.is_alive()
    assert proc is not None and proc.stats.ended and proc.stats.error is None
    st = proc.stats
    # 18 frames of the first boot (2 lost), 15 of the second, one end-of-stream, nothing rejected
    assert (st.frames, st.eos_received, st.samples) == (33, 1, 33 * FS)
    assert not st.rejected and not monitor.ingest.rejected and st.eos_early == 0
    assert (st.reboots, st.restarts, st.long_gaps) == (1, 1, 0)
    assert proc.tracker.frames_missing == 2 and proc.tracker.samples_missing == 2 * FS
    assert (proc.lead, proc.lead_name, proc.channels) == (0, "MLII", ("MLII", "V5"))
    # the stream's indices run on across the reboot; the segment table gives the device's back
    first, second = proc.segments.segments
    assert (first.boot, first.start, first.device_start) == (str(BOOT1), 0, 0)
    assert (second.boot, second.start, second.device_start) == (str(BOOT2), 20 * FS, 0)
    assert proc.samples_end == 35 * FS and proc.boot == str(BOOT2)
    assert proc.device_index(20 * FS + 400) == 400 and proc.device_index(5 * FS) == 5 * FS
    # every beat, in the device's own indices and boot, is one of the file's R peaks
    by_boot: dict[str | None, list[int]] = {}
    for sample in beats.samples:
        if 12 * FS <= sample < 12 * FS + FS // 10:
            continue  # the detector may take the step where the signal resumes after a gap for a QRS
        by_boot.setdefault(proc.segments.at(sample).boot, []).append(proc.device_index(sample))
    assert set(by_boot) == {str(BOOT1), str(BOOT2)}, by_boot
    for found in by_boot.values():
        off = [s for s in found if np.min(np.abs(peaks - s)) > 5]
        assert not off, (off, found)
    assert len(by_boot[str(BOOT1)]) >= 18 and len(by_boot[str(BOOT2)]) >= 15
