"""The central station measured: sample-to-screen latency and frame rate in headless Chromium, and --web's CPU.

1. ``page``: ``--beds`` (32) simulated devices (``benchmarks/load.py --publish``: looping mitdb records in real
   time over TCP) into ``ecg-monitor --web``; the page is opened in headless Chromium (Debian's ``chromium``,
   driven by playwright) and, after ``--warmup`` s, read for ``--seconds``: the latency of every strip chunk
   from the monitor's publication stamp to the first frame that draws it (the page's own record,
   ``window.ecgCentral.stats``), and the frames drawn per second. A screenshot is kept.
2. ``cpu``: for each of ``--cpu-streams`` (250), that many devices into the monitor without and then with
   ``--web`` (a page open, or none with ``--no-page-in-cpu``: the browser then takes no CPU from the monitor's
   cores), each for ``--cpu-seconds`` after the warm-up: the monitor's CPU (utime + stime from /proc) in both
   runs, and the browser's; ``--repeat`` pairs, one after the other (the extra CPU is the difference of the
   means; runs differ by several points on this machine, so one pair says little).

Run: ``python benchmarks/central.py``; writes ``benchmarks/results/central.{json,png}`` (the screenshot) with
the machine named. Each part measured replaces its own entry in the JSON (``page``; ``cpu_page_open`` or
``cpu_no_page`` per stream count), with the command, date and revision that measured it; the others stay.
Goals (issue): p95 ≤ 500 ms, ≥ 20 fps at 32 beds, ≤ 10% extra monitor CPU at 250 streams.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from load import DATA, RESULTS, cpu_seconds, free_port, loadavg, machine

HERE = Path(__file__).resolve().parent


class Setup:
    """A monitor (``--web`` or not) and ``n`` simulated devices feeding it."""

    def __init__(self, n: int, seconds: float, data: Path, web: bool) -> None:
        port = free_port()
        exe = Path(sys.executable).parent / "ecg-monitor"
        cmd = [str(exe), "--source", f"tcp://127.0.0.1:{port}", "--view", "off", "--alarm-log", "off"]
        cmd += ["--web", "127.0.0.1:0"] if web else ["--alerts", f"tcp://127.0.0.1:{free_port()}"]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        self.monitor = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
        self.url = ""
        assert self.monitor.stderr is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = self.monitor.stderr.readline()
            if not line:
                break
            found = re.search(r"central station on (http://\S+)", line)
            if found:
                self.url = found.group(1)
            if "alerts published on" in line:
                break
        threading.Thread(target=self.monitor.stderr.read, daemon=True).start()
        pub = [sys.executable, str(HERE / "load.py"), "--publish", str(n), "--endpoint", f"tcp://127.0.0.1:{port}"]
        pub += ["--seconds", str(seconds), "--data", str(data)]
        self.publisher = subprocess.Popen(pub, stdout=subprocess.DEVNULL)

    def close(self) -> None:
        for p in (self.publisher, self.monitor):
            p.terminate()
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


def _browser_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-f", "chromium"], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid)
    return total


def page_run(args: argparse.Namespace, browser: Any) -> dict[str, Any]:
    setup = Setup(args.beds, args.warmup + args.seconds + 30, args.data, web=True)
    try:
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        page.goto(setup.url)
        time.sleep(args.warmup)
        page.evaluate("() => { const s = window.ecgCentral.stats; s.latencies = []; s.frames = 0; }")
        t0 = time.monotonic()
        time.sleep(args.seconds)
        stats = page.evaluate("() => window.ecgCentral.stats")
        wall = time.monotonic() - t0
        beds = page.locator(".tile").count()
        args.out.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out / "central.png"))
        page.close()
    finally:
        setup.close()
    lat = 1000 * np.array(stats["latencies"] or [np.nan])
    return {
        "beds": args.beds,
        "tiles_shown": beds,
        "seconds": round(wall, 1),
        "fps": round(stats["frames"] / wall, 1),
        "chunks_drawn": len(stats["latencies"]),
        **{f"latency_p{q}_ms": round(float(np.percentile(lat, q)), 1) for q in (50, 95, 99)},
        "latency_max_ms": round(float(np.max(lat)), 1),
    }


def cpu_run(args: argparse.Namespace, streams: int, web: bool, browser: Any) -> dict[str, Any]:
    setup = Setup(streams, args.warmup + args.cpu_seconds + 30, args.data, web=web)
    try:
        page = None
        if web and not args.no_page_in_cpu:
            page = browser.new_page(viewport={"width": 1920, "height": 1080})
            page.goto(setup.url)
        time.sleep(args.warmup)
        pids = _browser_pids()
        m0, b0, t0, l0 = cpu_seconds(setup.monitor.pid), _cpu(pids), time.monotonic(), loadavg()
        time.sleep(args.cpu_seconds)
        m1, b1, t1 = cpu_seconds(setup.monitor.pid), _cpu(pids), time.monotonic()
        if page is not None:
            page.close()
    finally:
        setup.close()
    return {
        "web": web,
        "page_open": web and not args.no_page_in_cpu,
        "streams": streams,
        "seconds": round(t1 - t0, 1),
        "monitor_cpu_pct": round(100 * (m1 - m0) / (t1 - t0), 1),
        "browser_cpu_pct": round(100 * (b1 - b0) / (t1 - t0), 1) if web else None,
        "loadavg_at_start": l0,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--beds", type=int, default=32)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--warmup", type=float, default=15.0)
    p.add_argument("--cpu-streams", type=int, nargs="+", default=[250])
    p.add_argument("--cpu-seconds", type=float, default=60.0)
    p.add_argument("--repeat", type=int, default=1, help="pairs of CPU runs (without, with --web) per stream count")
    p.add_argument("--skip-cpu", action="store_true", help="only the page measurement")
    p.add_argument("--skip-page", action="store_true", help="only the CPU measurement")
    p.add_argument(
        "--no-page-in-cpu",
        action="store_true",
        help="measure --web's CPU with no page open (the browser then takes no CPU from the monitor's cores)",
    )
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("ECG_MONITOR_CHROMIUM") or shutil.which("chromium")
    if chromium is None:
        sys.exit("central.py: no chromium executable (apt-get install chromium)")
    path = args.out / "central.json"
    result: dict[str, Any] = {"machine": machine()}
    with contextlib.suppress(OSError, ValueError):
        kept = json.loads(path.read_text())
        if kept.get("machine") == result["machine"]:  # parts measured on another machine are not kept
            result = {k: v for k, v in kept.items() if k in ("page", "cpu_page_open", "cpu_no_page")} | result
    stamp = {
        "date": time.strftime("%Y-%m-%d"),
        "revision": _revision(),
        "command": "python benchmarks/central.py " + " ".join(sys.argv[1:]),
        "browser": "headless " + subprocess.run([chromium, "--version"], capture_output=True, text=True).stdout.strip(),
    }
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        if not args.skip_page:
            result["page"] = {**stamp, **page_run(args, browser)}
            print("page", result["page"], flush=True)
        if not args.skip_cpu:
            key = "cpu_no_page" if args.no_page_in_cpu else "cpu_page_open"
            for streams in args.cpu_streams:
                runs = [cpu_run(args, streams, web, browser) for _ in range(args.repeat) for web in (False, True)]
                base = float(np.mean([r["monitor_cpu_pct"] for r in runs if not r["web"]]))
                web = float(np.mean([r["monitor_cpu_pct"] for r in runs if r["web"]]))
                cpu = [r["monitor_cpu_pct"] for r in runs]
                pairs = [b - a for a, b in zip(cpu[::2], cpu[1::2], strict=True)]
                result.setdefault(key, {})[str(streams)] = {
                    **stamp,
                    "runs": runs,
                    "monitor_cpu_pct_without_web": round(base, 1),
                    "monitor_cpu_pct_with_web": round(web, 1),
                    "web_extra_cpu_pct_points": round(web - base, 1),
                    "web_extra_cpu_relative_pct": round(100 * (web - base) / max(base, 1e-9), 1),
                    "pair_differences_pct_points": [round(d, 1) for d in pairs],
                }
                print("cpu", streams, result[key][str(streams)], flush=True)
        browser.close()
    args.out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")


def _revision() -> str:
    """The commit measured (``+changes`` when the code differs from it; results files do not count)."""
    git = ["git", "-C", str(HERE.parent)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    status = [*git, "status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/results"]
    dirty = subprocess.run(status, capture_output=True, text=True)
    return head + ("+changes" if dirty.stdout.strip() else "") if head else "unknown"


if __name__ == "__main__":
    main()
