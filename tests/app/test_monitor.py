from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import wfdb
import zmq

from monitor import Monitor, MonitorConfig, Source, encode_data, encode_eos, match_beats, parse_source
from monitor.cli._monitor import main
from monitor.errors import SourceError
from replay import load_record, resolve_record
from tests.conftest import ROOT, reference


def test_replay_100_end_to_end_through_zeromq(mitdb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ann"
    code = main(
        [
            "--source",
            "replay:100",
            "--speed",
            "max",
            "--data-dir",
            str(mitdb),
            "--annotations",
            str(out),
            "--view",
            "plain",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "100: " in text and "Se " in text and "x real time" in text
    ann = wfdb.rdann(str(out / "100"), "mon")
    assert ann.fs == 360 and set(ann.symbol) <= {"N", "A", "V", "F", "Q"}
    assert ann.symbol.count("N") > 0.9 * len(ann.symbol)  # record 100: 2239 N, 33 A, 1 V
    m = match_beats(reference(mitdb, "100"), ann.sample, 54)
    assert m.f1 >= 99.0, m


def test_source_specs(mitdb: Path) -> None:
    assert [r.name for r in parse_source("replay:100,101", mitdb).records] == ["100", "101"]
    assert len(parse_source("replay:mitdb", mitdb).records) == 48
    assert parse_source(f"replay:{mitdb / '102'}").records[0].name == "102"
    assert parse_source("tcp://*:5555").endpoint == "tcp://*:5555"
    for bad in ("udp://x", "replay:", "replay:100,,101", "", "hello"):
        with pytest.raises(SourceError):
            parse_source(bad, mitdb)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--source", "serial:/dev/ttyS0"], "unknown source"),
        (["--source", "replay:no-such-record"], "not found"),
    ],
)
def test_bad_flags_get_a_clear_message(
    mitdb: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--data-dir", str(mitdb)]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--speed", "-3"], "argument --speed: must be a multiple of real time > 0"),
        (["--chunk-ms", "0"], "argument --chunk-ms: must be > 0 and <= 10000 ms"),
    ],
)
def test_bad_flag_values_are_rejected_naming_the_flag_and_unit(
    mitdb: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--source", "replay:100", *argv, "--data-dir", str(mitdb)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_devices_over_tcp_with_a_rogue_sender(ctx: zmq.Context[zmq.Socket[bytes]], mitdb: Path, tmp_path: Path) -> None:
    monitor = Monitor(Source(endpoint="tcp://127.0.0.1:*"), MonitorConfig(annotations=tmp_path), context=ctx)
    thread = threading.Thread(target=monitor.run)
    thread.start()
    assert monitor.ready.wait(5)
    assert monitor.bound_endpoint is not None
    rec = load_record(resolve_record("100", mitdb))
    n = 60 * 360
    device = ctx.socket(zmq.PUSH)
    device.setsockopt(zmq.LINGER, 0)
    device.connect(monitor.bound_endpoint)
    rogue = ctx.socket(zmq.PUSH)
    rogue.setsockopt(zmq.LINGER, 0)
    rogue.connect(monitor.bound_endpoint)
    kw = rec.signal_description()
    seq = 0
    for start in range(0, n, 36):
        device.send_multipart(encode_data("bed-7", seq, start, 360.0, rec.samples[start : start + 36], **kw))
        seq += 1
        if seq % 50 == 0:
            rogue.send_multipart([b"garbage", b"x"])
            rogue.send_multipart(
                encode_data(
                    "bed-9",
                    0,
                    0,
                    360.0,
                    np.zeros((4, 1), "<i2"),
                    channels=["I", "II"],
                    units=["mV"],
                    gain=[1.0],
                    baseline=[0.0],
                )
            )
    device.send_multipart(encode_eos("bed-7", seq, n))
    proc = None
    for _ in range(500):
        proc = monitor.ingest.streams.get("bed-7")
        if proc is not None and proc.stats.ended:
            break
        threading.Event().wait(0.01)
    monitor.stop()
    thread.join(10)
    assert not thread.is_alive()
    assert proc is not None and proc.stats.ended and proc.stats.frames == seq
    assert sum(monitor.ingest.rejected.values()) >= 2 * (seq // 50) - 2
    ann = wfdb.rdann(str(tmp_path / "bed-7"), "mon")
    m = match_beats(reference(mitdb, "100", sampto=n), ann.sample, 54)
    assert m.f1 > 99.5
    device.close()
    rogue.close()


def _read_line(proc: subprocess.Popen[str], sel: selectors.BaseSelector, timeout: float) -> str:
    assert proc.stdout is not None
    if not sel.select(timeout):
        raise AssertionError("no output from ecg-monitor")
    return proc.stdout.readline()


def test_sigterm_stops_cleanly_and_writes_annotations(mitdb: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "ECG_MONITOR_DATA": str(mitdb)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "monitor.cli._monitor",
            "--source",
            "replay:100",
            "--speed",
            "20",
            "--view",
            "plain",
            "--beats",
            "--annotations",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    sel = selectors.DefaultSelector()
    assert proc.stdout is not None
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        beats = 0
        while beats < 5:
            line = _read_line(proc, sel, 30)
            beats += " beat " in line
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        sel.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    ann = wfdb.rdann(str(tmp_path / "100"), "mon")
    assert ann.sample.size >= 5


def test_annotation_file_is_complete_when_its_stream_ends(
    ctx: zmq.Context[zmq.Socket[bytes]], mitdb: Path, tmp_path: Path
) -> None:
    """A device stream that ends while the monitor goes on has its whole .mon file at once."""
    monitor = Monitor(Source(endpoint="tcp://127.0.0.1:*"), MonitorConfig(annotations=tmp_path), context=ctx)
    thread = threading.Thread(target=monitor.run)
    thread.start()
    assert monitor.ready.wait(5)
    rec = load_record(resolve_record("100", mitdb))
    device = ctx.socket(zmq.PUSH)
    device.setsockopt(zmq.LINGER, 0)
    device.connect(monitor.bound_endpoint or "")
    n = 30 * 360
    for seq, start in enumerate(range(0, n, 360)):
        device.send_multipart(
            encode_data("bed-3", seq, start, 360.0, rec.samples[start : start + 360], **rec.signal_description())
        )
    device.send_multipart(encode_eos("bed-3", n // 360, n))
    path = tmp_path / "bed-3.mon"
    for _ in range(500):
        if path.exists():
            break
        threading.Event().wait(0.01)
    ann = wfdb.rdann(str(tmp_path / "bed-3"), "mon")  # read while the monitor still runs
    monitor.stop()
    thread.join(10)
    device.close()
    assert ann.sample.size == monitor.ingest.streams["bed-3"].stats.beats
    assert match_beats(reference(mitdb, "100", sampto=n), ann.sample, 54).f1 > 99
