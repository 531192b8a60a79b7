"""Long fuzz run of the ingest loop: valid streams mixed with hostile and garbage messages.

A seeded generator plays several devices (synthetic ECG, 360 Hz, frames of 1 to
1000 samples; wire format v1 or v2 with boot ids; ids with dots; 1 to 32
channels; every dtype; sequence numbers and sample indices anywhere in the
valid range) that also misbehave: reboots, frames of an earlier boot, duplicates, gaps, restarts, a second device
under the same stream id, rate changes, NaN/inf/absurd samples, flipped bytes,
truncated or extended payloads, headers with wrong types, huge, negative or
non-finite numbers, deep nesting, unicode ids, extra parts, oversize payloads,
random bytes, early or backward end-of-stream messages (the devices and
messages of :mod:`monitor.testing`: ``FuzzDevice``, ``fuzz_garbage``). Every message goes
through ``Ingest.on_message``; ``Ingest.step`` runs every few messages.

Any exception escaping ``on_message`` or ``step`` is a crash: recorded with its
traceback, and the run continues. The ingest's rate-limited rejection log
lines are counted (``log_lines``), not printed. After every step the count identity is
checked: messages = accepted + held + rejected (per stream and unattributed),
i.e. ``Ingest.unaccounted() == 0``. Run:
``python benchmarks/fuzz.py [--frames 200000] [--seed 0]``; writes
``benchmarks/results/fuzz.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from monitor import Ingest, StreamConfig
from monitor.testing import FuzzDevice, fuzz_garbage, random_kind

ROOT = Path(__file__).resolve().parent.parent


class _LineCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200_000, help="messages to send (default 200000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--streams", type=int, default=6, help="devices (default 6)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fuzz.json")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    devices = [FuzzDevice(f"bed.{i}" if i % 2 else f"bed-{i}", rng) for i in range(args.streams)]
    log_lines = _LineCounter()
    ingest_log = logging.getLogger("monitor.ingest")
    ingest_log.addHandler(log_lines)
    ingest_log.propagate = False
    config = StreamConfig()
    ingest = Ingest(config)
    crashes: list[dict[str, Any]] = []
    identity_failures = 0
    kinds: Counter[str] = Counter()
    beats = 0
    sent = 0
    t0 = time.perf_counter()
    while sent < args.frames:
        kind = random_kind(rng)
        kinds[kind] += 1
        batch = [fuzz_garbage(rng)] if kind == "garbage" else devices[int(rng.integers(0, len(devices)))].message(kind)
        for parts in batch[: args.frames - sent]:
            sent += 1
            try:
                ingest.on_message(parts)
            except Exception as exc:
                crashes.append({"message": sent, "kind": kind, "where": "on_message", "error": repr(exc),
                                "traceback": traceback.format_exc()})  # fmt: skip
        if rng.random() < 0.2:
            try:
                beats += len(ingest.step())
            except Exception as exc:
                crashes.append({"message": sent, "kind": kind, "where": "step", "error": repr(exc),
                                "traceback": traceback.format_exc()})  # fmt: skip
            if ingest.unaccounted() != 0:
                identity_failures += 1
    try:
        beats += len(ingest.flush_all())
    except Exception as exc:
        crashes.append({"message": sent, "kind": "flush_all", "where": "flush_all", "error": repr(exc),
                        "traceback": traceback.format_exc()})  # fmt: skip
    wall = time.perf_counter() - t0

    streams = ingest.streams.values()
    per_stream: Counter[str] = Counter()
    for proc in streams:
        per_stream.update(proc.stats.rejected)
    accepted = sum(p.stats.frames + p.stats.eos_received for p in streams)
    held = sum(p.stats.held for p in streams)
    rejected = sum(ingest.rejected.values()) + sum(per_stream.values())
    result = {
        "frames": sent,
        "seed": args.seed,
        "crashes": len(crashes),
        "crash_details": crashes[:20],
        "identity_holds": ingest.unaccounted() == 0 and identity_failures == 0 and accepted + held + rejected == sent,
        "accepted": accepted,
        "held_at_end": held,
        "rejected": rejected,
        "rejected_unattributed": dict(sorted(ingest.rejected.items())),
        "rejected_per_stream": dict(sorted(per_stream.items())),
        "streams": len(ingest.streams),
        "failed_streams": sum(p.stats.error is not None for p in streams),
        "restarts": sum(p.stats.restarts for p in streams),
        "conflicts": sum(p.stats.conflicts for p in streams),
        "reboots": sum(p.stats.reboots for p in streams),
        "long_gaps": sum(p.stats.long_gaps for p in streams),
        "v2_streams": sum(p.boot is not None for p in streams),
        "log_lines": log_lines.count,
        "beats": beats,
        "message_kinds": dict(sorted(kinds.items())),
        "wall_s": round(wall, 2),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "command": "python benchmarks/fuzz.py" + "".join(f" {a}" for a in (sys.argv[1:] if argv is None else argv)),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"fuzz: {sent} messages in {wall:.1f} s, {len(crashes)} crashes, {accepted} accepted, {rejected} rejected, "
        f"{held} held; identity {'holds' if result['identity_holds'] else 'BROKEN'}; "
        f"{result['restarts']} restarts ({result['reboots']} reboots), {result['conflicts']} conflicts, "
        f"{result['long_gaps']} long gaps, {beats} beats, {log_lines.count} log lines, "
        f"{result['failed_streams']} failed streams"
    )
    print("rejected (unattributed):", result["rejected_unattributed"])
    print("rejected (per stream):  ", result["rejected_per_stream"])
    print(f"wrote {args.out}")
    return 1 if crashes or not result["identity_holds"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
