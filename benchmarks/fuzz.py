"""Long fuzz run of the ingest loop: valid streams mixed with hostile and garbage messages.

A seeded generator plays several devices (synthetic ECG, 360 Hz, frames of 1 to
1000 samples) that also misbehave: duplicates, gaps, restarts, a second device
under the same stream id, rate changes, NaN/inf/absurd samples, flipped bytes,
truncated or extended payloads, headers with wrong types, huge, negative or
non-finite numbers, deep nesting, unicode ids, extra parts, oversize payloads,
random bytes, early or backward end-of-stream messages. Every message goes
through ``Ingest.on_message``; ``Ingest.step`` runs every few messages.

Any exception escaping ``on_message`` or ``step`` is a crash: recorded with its
traceback, and the run continues. After every step the count identity is
checked: messages = accepted + held + rejected (per stream and unattributed),
i.e. ``Ingest.unaccounted() == 0``. Run:
``python benchmarks/fuzz.py [--frames 200000] [--seed 0]``; writes
``benchmarks/results/fuzz.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from monitor import Ingest, StreamConfig, encode_data, encode_eos
from monitor.protocol import MAX_HEADER_BYTES, MAX_PAYLOAD_BYTES

ROOT = Path(__file__).resolve().parent.parent
FS = 360.0


def synthetic_ecg(seconds: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(round(seconds * FS)) / FS
    x = 0.1 * np.sin(2 * np.pi * 0.3 * t) + 0.02 * rng.standard_normal(t.size)
    for beat in np.cumsum(rng.uniform(0.6, 1.0, size=int(seconds / 0.6) + 2)):
        x += 1.2 * np.exp(-(((t - beat) / 0.012) ** 2)) - 0.2 * np.exp(-(((t - beat - 0.03) / 0.02) ** 2))
    return x


KW: dict[str, Any] = dict(channels=["II"], units=["mV"], gain=[1.0], baseline=[0.0])
ODD_VALUES: list[Any] = [
    None, True, -1, 0, 2**63, 2**62 + 1, 10**300, 1e308, -1e-308, float("nan"), float("inf"), "360", "", "ü" * 70,
    [], {}, [1, [2, [3]]], {"a": {"b": 1}}, 65537, 4097, ">i2", "<u2", 0.5,
]  # fmt: skip
KEYS = ["v", "type", "stream", "seq", "start", "fs", "n", "channels", "units", "gain", "baseline", "dtype", "invalid"]


class Device:
    """One stream's sender; ``message(kind)`` builds its next message of that kind."""

    def __init__(self, sid: str, rng: np.random.Generator) -> None:
        self.base, self.sid, self.rng = sid, sid, rng
        self.x = synthetic_ecg(120, rng)
        self.pos = 0
        self.seq = int(rng.integers(0, 1000))
        self.start = int(rng.integers(0, 10**6))
        self.twin = (int(rng.integers(0, 1000)), int(rng.integers(0, 10**6)))
        self.last: list[bytes] | None = None
        self.ended = 0

    def chunk(self, n: int) -> np.ndarray:
        if self.pos + n > self.x.size:
            self.pos = 0
        out = self.x[self.pos : self.pos + n]
        self.pos += n
        return out

    def data(self, x: np.ndarray, seq: int, start: int, fs: float = FS, dtype: str = "<f4") -> list[bytes]:
        sent = float(self.rng.choice([0.0, 1.7e9, -1e9, 1e15]))
        with np.errstate(over="ignore"):  # 1e300 as float32 is inf: meant
            samples = x[:, None].astype(dtype)
        return encode_data(self.sid, seq, start, fs, samples, sent=sent, **KW)

    def valid(self, n: int, x: np.ndarray | None = None, dtype: str = "<f4") -> list[bytes]:
        parts = self.last = self.data(self.chunk(n) if x is None else x, self.seq, self.start, dtype=dtype)
        self.seq += 1
        self.start += n
        return parts

    def message(self, kind: str) -> list[list[bytes]]:
        rng = self.rng
        n = int(rng.choice([1, 36, 360, 1000]))
        if kind == "valid":
            return [self.valid(n)]
        if kind == "duplicate":
            return [self.last or self.valid(n)]
        if kind == "reorder":  # two frames swapped
            a, b = self.valid(n), self.valid(n)
            return [b, a]
        if kind == "gap":
            self.seq += int(rng.integers(1, 4))
            self.start += int(rng.integers(1, 40 * n + 2))
            return [self.valid(n)]
        if kind == "restart":
            self.seq, self.start = 0, int(rng.choice([0, 10**9]))
            return [self.valid(n) for _ in range(4)]
        if kind == "twin":
            seq, start = self.twin
            self.twin = (seq + 1, start + n)
            return [self.data(self.chunk(n)[::-1].copy(), seq, start)]
        if kind == "rogue":
            return [self.data(self.chunk(n), int(rng.integers(0, 2**40)), int(rng.integers(0, 2**61)))]
        if kind == "format":
            return [self.data(self.chunk(n), self.seq, self.start, fs=float(rng.choice([250.0, 500.0, 5.0])))]
        if kind == "nan":
            x = self.chunk(n).copy()
            x[rng.random(n) < 0.5] = rng.choice([np.nan, np.inf, -np.inf, 1e30, 1e300])
            return [self.valid(n, x, dtype=str(rng.choice(["<f4", "<f8"])))]
        if kind == "eos":
            parts = encode_eos(self.sid, self.seq + int(rng.integers(-1, 2)), self.start + int(rng.integers(-9, 9)))
            self.ended += 1
            self.sid = f"{self.base}-{self.ended}"
            return [parts]
        if kind == "flip":
            header, payload = (bytearray(p) for p in self.data(self.chunk(n), self.seq, self.start))
            for _ in range(int(rng.integers(1, 5))):
                target = header if rng.random() < 0.7 else payload
                target[int(rng.integers(0, len(target)))] = int(rng.integers(0, 256))
            return [[bytes(header), bytes(payload)]]
        if kind == "resize":  # truncated or extended payload
            header, payload = self.data(self.chunk(n), self.seq, self.start)
            cut = int(rng.integers(-8, 9)) or 1
            return [[header, payload[:cut] if cut < 0 else payload + bytes(cut)]]
        if kind == "header":  # wrong types and values, missing and extra keys
            header, payload = self.data(self.chunk(n), self.seq, self.start)
            h = json.loads(header)
            for key in rng.choice(KEYS, size=int(rng.integers(1, 4))):
                if rng.random() < 0.3:
                    h.pop(str(key), None)
                else:
                    h[str(key)] = ODD_VALUES[int(rng.integers(0, len(ODD_VALUES)))]
            h[f"x{int(rng.integers(0, 99))}"] = ODD_VALUES[int(rng.integers(0, len(ODD_VALUES)))]
            return [[json.dumps(h).encode(), payload]]
        raise AssertionError(kind)


def garbage(rng: np.random.Generator) -> list[bytes]:
    choice = int(rng.integers(0, 7))
    if choice == 0:
        return [bytes(rng.integers(0, 256, size=int(rng.integers(0, 300)), dtype=np.uint8))]
    if choice == 1:
        return [b"{}"] * int(rng.integers(3, 50))
    if choice == 2:
        depth = int(rng.integers(500, 2000))
        return [b'{"v":1,"stream":' + b"[" * depth + b"]" * depth + b"}"]
    if choice == 3:
        return [b'{"v":1,"type":"data","stream":"' + "bett-ü".encode() + b'","seq":0,"start":0}', b"\0" * 8]
    if choice == 4:
        return [b"{" * (MAX_HEADER_BYTES + 1)]
    if choice == 5:
        return [b"{}", bytes(MAX_PAYLOAD_BYTES + 1)]
    return []


KINDS = ["valid", "duplicate", "reorder", "gap", "restart", "twin", "rogue", "format", "nan", "eos", "flip", "resize",
         "header", "garbage"]  # fmt: skip
WEIGHTS = np.array([50, 2, 2, 3, 0.5, 8, 3, 2, 3, 0.2, 5, 3, 5, 5], dtype=float)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200_000, help="messages to send (default 200000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--streams", type=int, default=6, help="devices (default 6)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fuzz.json")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    devices = [Device(f"bed-{i}", rng) for i in range(args.streams)]
    config = StreamConfig()
    ingest = Ingest(config)
    p = WEIGHTS / WEIGHTS.sum()
    crashes: list[dict[str, Any]] = []
    identity_failures = 0
    kinds: Counter[str] = Counter()
    beats = 0
    sent = 0
    t0 = time.perf_counter()
    while sent < args.frames:
        kind = KINDS[int(rng.choice(len(KINDS), p=p))]
        kinds[kind] += 1
        batch = [garbage(rng)] if kind == "garbage" else devices[int(rng.integers(0, len(devices)))].message(kind)
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
        f"{result['restarts']} restarts, {result['conflicts']} conflicts, {beats} beats, "
        f"{result['failed_streams']} failed streams"
    )
    print("rejected (unattributed):", result["rejected_unattributed"])
    print("rejected (per stream):  ", result["rejected_per_stream"])
    print(f"wrote {args.out}")
    return 1 if crashes or not result["identity_holds"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
