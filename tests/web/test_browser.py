"""The central station in a real headless Chromium (playwright driving Debian's ``chromium``).

Skipped where playwright or chromium is missing, unless ``ECG_MONITOR_REQUIRE_BROWSER`` is set (CI sets it).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from monitor.testing import ecg, frames_of
from monitor.web import Station

CHROMIUM = os.environ.get("ECG_MONITOR_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
TOKEN = "a-station-token-0123456789"


def _require_browser() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    missing = "playwright is not installed" if sync_playwright is None else None
    if CHROMIUM is None:
        missing = "no chromium executable"
    if missing:
        if os.environ.get("ECG_MONITOR_REQUIRE_BROWSER"):
            pytest.fail(f"browser tests required here: {missing}")
        pytest.skip(missing)
    return sync_playwright


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_playwright = _require_browser()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MonitorProcess:
    """``ecg-monitor ... --web 127.0.0.1:0`` in a subprocess; :attr:`url` once it serves the page."""

    def __init__(self, *args: str) -> None:
        cmd = [sys.executable, "-c", "import sys; from monitor.cli._monitor import main; sys.exit(main())"]
        cmd += ["--web", "127.0.0.1:0", "--view", "off", "--alarm-log", "off", "--log-level", "warning", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.url = ""
        deadline = time.monotonic() + 60
        assert self.proc.stderr is not None
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            found = re.search(r"central station on (http://\S+)", line)
            if found:
                self.url = found.group(1)
                break
        if not self.url:
            self.stop()
            raise AssertionError("the monitor did not serve its page")
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()  # keep the pipe drained

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


@pytest.fixture
def replay(mitdb: Path) -> Iterator[MonitorProcess]:
    mon = MonitorProcess("--source", "replay:100,208", "--data-dir", str(mitdb), "--speed", "2", "--offline")
    yield mon
    mon.stop()


def test_two_replayed_beds_are_live_with_rates_moving_strips_and_208s_ectopy_alarms(
    browser: Any, replay: MonitorProcess
) -> None:
    page = browser.new_page(viewport={"width": 1300, "height": 700})
    page.goto(replay.url)
    for bed in ("100", "208"):
        page.wait_for_selector(f'.tile[data-stream="{bed}"]', timeout=20_000)
        rated = page.locator(f'.tile[data-stream="{bed}"]:not([data-hr="---"])')  # a measured rate
        rated.wait_for(timeout=20_000)
    rates = {bed: int(page.get_attribute(f'.tile[data-stream="{bed}"]', "data-hr") or 0) for bed in ("100", "208")}
    assert all(30 < hr < 200 for hr in rates.values()), rates
    strip = page.locator('.tile[data-stream="100"] canvas.trace')
    first = strip.screenshot()
    page.wait_for_timeout(700)
    assert strip.screenshot() != first  # the sweep moves
    ectopy = page.locator('.tile[data-stream="208"] .alarm', has=None)
    ectopy.first.wait_for(timeout=30_000)
    kinds = {ectopy.nth(i).get_attribute("data-kind") for i in range(ectopy.count())}
    assert kinds & {"pvc_frequent", "couplet", "bigeminy", "trigeminy", "vt", "run"}, kinds
    # acknowledge: who is shown, the alarm stays until it ends
    alarm = page.locator('.tile[data-stream="208"] .alarm:not(.acked)').first
    alarm_id = alarm.get_attribute("data-alarm-id")
    alarm.locator("button.ack").click()
    acked = page.locator(f'.tile[data-stream="208"] .alarm[data-alarm-id="{alarm_id}"].acked')
    acked.wait_for(timeout=5_000)
    assert "acknowledged by local user" in acked.inner_text()
    # audio pause: two minutes, shown counting down
    assert page.is_hidden("#paused")
    page.click("#pause")
    page.locator("#paused:not([hidden])").wait_for(timeout=5_000)
    assert re.match(r"Sound paused (2:00|1:5\d)$", page.inner_text("#paused"))
    stats = page.evaluate("window.ecgCentral.stats")
    assert stats["drawnChunks"] > 0 and stats["frames"] > 10
    # the bed view: both leads live, the heart-rate trend, the alarm history with each alarm's strip
    page.click('.tile[data-stream="208"] button.bed')
    view = page.locator('#bedview[data-bed="208"][data-state="shown"]')
    view.wait_for(timeout=5_000)
    page.locator('#bedview[data-second="V1"] .lead.second:not([hidden])').wait_for(timeout=5_000)  # 208's V1
    for lead in ("first", "second"):  # both leads sweep
        live = page.locator(f"#bedview .lead.{lead} canvas.trace")
        before = live.screenshot()
        page.wait_for_timeout(500)
        assert live.screenshot() != before, lead
    page.locator('#bedview canvas.trend[data-points]:not([data-points="0"])').wait_for(timeout=20_000)  # a point
    rows = page.locator("#bedview .history tbody tr")
    kinds = {rows.nth(i).get_attribute("data-kind") for i in range(rows.count())}
    assert kinds & {"pvc_frequent", "couplet", "bigeminy", "trigeminy", "vt", "run"}, kinds
    row_id = rows.first.get_attribute("data-alarm-id")
    rows.first.locator("button.review").click()
    page.locator(f'#review[data-alarm-id="{row_id}"]:not([hidden])').wait_for(timeout=5_000)
    page.click("#review .close")
    page.click("#bedview .close")
    assert page.is_hidden("#bedview")
    page.close()


def _flat_line_device(endpoint: str, stop: threading.Event) -> None:
    """A device: 12 s of sinus rhythm, then no beats (low noise, not flat): asystole. Sent at 4x real time."""
    fs = 250.0
    x, _ = ecg([0.8] * 14, fs, tail_s=0.6, seed=4)
    rng = np.random.default_rng(5)
    pause = 0.03 * rng.standard_normal(round(20 * fs)) + 0.05 * np.sin(2 * np.pi * 0.3 * np.arange(20 * fs) / fs)
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        for frame in frames_of(np.concatenate((x, pause)), fs, stream="bed-9", chunk=25, eos=False, boot="b1"):
            if stop.wait(0.025):
                return
            sock.send_multipart(frame)
        stop.wait(30)
    finally:
        sock.close()


def test_an_asystole_alarm_from_a_flat_line_device_appears_in_red_within_2_s_with_its_strip(
    browser: Any, tmp_path: Path
) -> None:
    port = _free_port()
    log = str(tmp_path / "alarms.sqlite")
    mon = MonitorProcess("--source", f"tcp://127.0.0.1:{port}", "--model", "none", "--alarm-log", log)
    stop = threading.Event()
    device = threading.Thread(target=_flat_line_device, args=(f"tcp://127.0.0.1:{port}", stop), daemon=True)
    try:
        page = browser.new_page()
        page.goto(mon.url)
        device.start()
        alarm = page.locator('.tile[data-stream="bed-9"] .alarm[data-kind="asystole"]')
        alarm.wait_for(timeout=30_000)
        assert "high" in (alarm.get_attribute("class") or "")
        colour = alarm.evaluate("e => getComputedStyle(e).backgroundColor")
        assert colour.startswith("rgb(255, 43, 43") or colour.startswith("rgba(255, 43, 43"), colour
        tile_priority = page.get_attribute('.tile[data-stream="bed-9"]', "data-priority")
        assert tile_priority == "high"
        alarm_id = alarm.get_attribute("data-alarm-id")
        latency = page.evaluate(f"window.ecgCentral.stats.alarmLatency[{alarm_id!r}]")
        assert latency is not None and latency < 2.0, latency
        # its review strip, once the 10 s after the onset are in (the device sends at 4x real time)
        review = page.locator(f'#review[data-alarm-id="{alarm_id}"][data-state="shown"]')
        for _ in range(20):
            alarm.locator("button.review").click()
            page.locator('#review:not([data-state="loading"])').wait_for(timeout=5_000)
            if review.count():
                break
            page.wait_for_timeout(500)
        assert review.count() == 1 and "asystole" in page.inner_text("#review .note")
        page.close()
    finally:
        stop.set()
        device.join(5)
        mon.stop()


def test_beyond_loopback_the_page_asks_for_the_token_and_refuses_a_wrong_one(browser: Any) -> None:
    station = Station([], "127.0.0.1", 0, token=TOKEN).start()
    try:
        page = browser.new_page()
        page.goto(station.url)
        assert page.url.endswith("/login")
        page.fill("input[name=name]", "ann")
        page.fill("input[name=token]", "wrong-token-0000000000")
        page.click("button[type=submit]")
        assert "wrong token" in page.content()
        page.goto(station.url)
        page.fill("input[name=name]", "ann")
        page.fill("input[name=token]", TOKEN)
        page.click("button[type=submit]")
        page.wait_for_selector('#connection[data-state="open"]', timeout=10_000)
        assert station.server.login_failures == 1 and list(station.server.sessions.values()) == ["ann"]
        page.close()
    finally:
        station.close()


def test_the_alarm_tones_follow_iec_60601_1_8(browser: Any) -> None:
    station = Station([], "127.0.0.1", 0).start()
    try:
        page = browser.new_page()
        page.goto(station.url)
        page.wait_for_selector('#connection[data-state="open"]', timeout=10_000)
        tones = page.evaluate("window.ecgCentral.tones")
        page.close()
    finally:
        station.close()
    for priority, tone in tones.items():  # Table 4: the pulse
        td = tone["td"]
        assert (0.075 <= td <= 0.2) if priority == "high" else (0.125 <= td <= 0.25), priority
        assert 150 <= tone["freq"] <= 1000
        odd = [k * tone["freq"] for k in range(1, 40, 2)]  # a square wave's components
        assert sum(300 <= f <= 4000 for f in odd) >= 4, priority
    high, medium, low = (tones[p] for p in ("high", "medium", "low"))
    gaps = [b - a - high["td"] for a, b in zip(high["pulses"], high["pulses"][1:], strict=False)]
    assert len(high["pulses"]) == 10  # Table 3: the burst
    x = gaps[0]
    assert 0.05 <= x <= 0.125
    for i, gap in enumerate(gaps, start=1):  # the gap after pulse i
        want = 2 * x + high["td"] if i in (3, 8) else None if i == 5 else x
        assert (0.35 <= gap <= 1.3) if want is None else gap == pytest.approx(want), (i, gap)
    assert len(medium["pulses"]) == 3 and len(low["pulses"]) in (1, 2)
    for tone in (medium, low):
        y = [b - a - tone["td"] for a, b in zip(tone["pulses"], tone["pulses"][1:], strict=False)]
        assert all(0.125 <= g <= 0.25 for g in y)
    assert 2.5 <= high["tb"] <= 15 and 2.5 <= medium["tb"] <= 30 and low["tb"] > 15
