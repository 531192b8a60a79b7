"""Helpers for testing code that uses the monitor: clocks, synthetic ECG, wire frames, misbehaving devices.

These are the pieces the project's own tests and benchmarks are built from,
public so that code outside the package (a device integration, a new sink, a
new alarm rule) can be tested the same way without reaching into private
modules. Everything here is deterministic: signals and fuzz devices take a seed
or a :class:`numpy.random.Generator`, time comes from an injected
:class:`FakeClock`.

* **Time**: :class:`FakeClock`, a callable clock for every ``clock=``
  parameter (``Ingest``, ``Monitor``, ``AlertBus``, ``Replayer``...).
* **Signals**: :func:`ecg` draws a one-lead ECG in mV with R peaks at known
  samples; :func:`write_record` stores it as a one-lead WFDB record (for
  ``replay:PATH`` sources).
* **Wire frames**: :func:`frames_of` cuts a signal into data messages and an
  end-of-stream message (:mod:`monitor.protocol`'s wire format);
  :func:`send_frames` and :func:`send_signal` send them over a connected
  ZeroMQ PUSH or DEALER socket.
* **Without sockets**: :func:`run_frames` runs messages through
  :class:`~monitor.ingest.Ingest` and returns the beats it hands to the
  engine; :func:`detect_in_signal` does the same for a signal.
* **Hostile input**: :class:`FuzzDevice` plays a device that misbehaves in
  every way the ingest rules name (:data:`FUZZ_KINDS`), :func:`fuzz_garbage`
  builds messages that are no frame at all, :func:`random_kind` draws a kind
  with the :data:`FUZZ_WEIGHTS`.
* **Outputs**: :class:`VitalsRecorder`, a live view that keeps every vitals
  record it is given.

The module imports numpy, wfdb and the monitor's own packages; never a test
framework.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import wfdb
import zmq
from numpy.typing import NDArray

from engine import Beat
from monitor.alarms import Vitals
from monitor.ingest import Ingest, StreamConfig, beats_of_signal
from monitor.outputs import Sink
from monitor.protocol import MAX_HEADER_BYTES, MAX_PAYLOAD_BYTES, encode_data, encode_eos

__all__ = [
    "FUZZ_KINDS",
    "FUZZ_WEIGHTS",
    "FakeClock",
    "FuzzDevice",
    "VitalsRecorder",
    "detect_in_signal",
    "ecg",
    "frames_of",
    "fuzz_ecg",
    "fuzz_garbage",
    "random_kind",
    "run_frames",
    "send_frames",
    "send_signal",
    "write_record",
]


# ------------------------------------------------------------------ time


class FakeClock:
    """A clock that moves only when told: ``clock()`` returns the current time in seconds.

    ``tick`` is added after every read (each read "costs" that much time, so
    code that reads the clock in a loop still sees it move); :meth:`advance`
    and :meth:`set` move it explicitly, :meth:`set` also backwards (a clock
    jump). :meth:`sleep` is :meth:`advance` under the name an injected
    ``sleep``/``wait`` function has.
    """

    def __init__(self, start: float = 0.0, tick: float = 0.0) -> None:
        self.now = float(start)
        self.tick = float(tick)
        self.reads = 0

    def __call__(self) -> float:
        now = self.now
        self.now += self.tick
        self.reads += 1
        return now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds``; returns the new time."""
        if seconds < 0:
            raise ValueError(f"a clock advances by a non-negative time, got {seconds} s")
        self.now += seconds
        return self.now

    def set(self, t: float) -> None:
        """Put the clock at ``t`` seconds (earlier or later than now)."""
        self.now = float(t)

    def sleep(self, seconds: float) -> None:
        """Advance by ``seconds`` at once, without waiting."""
        self.advance(seconds)


# ------------------------------------------------------------------ synthetic ECG


def _wave(t: np.ndarray, centre: float, width: float, amp: float) -> np.ndarray:
    return amp * np.exp(-0.5 * ((t - centre) / width) ** 2)


def ecg(
    rr: Sequence[float],
    fs: float = 250.0,
    *,
    r_mv: float = 1.0,
    t_mv: float = 0.3,
    wide: Sequence[bool] | None = None,
    noise_mv: float = 0.01,
    start_s: float = 0.8,
    tail_s: float = 2.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A one-lead ECG in mV with Gaussian P, QRS and T waves; returns (signal, R-peak samples).

    The first R peak is at ``start_s``, the next ones follow at the given RR
    intervals (seconds), and the signal goes on ``tail_s`` after the last. Every
    wave is placed relative to its beat's R peak, so the beat times are known
    exactly. ``wide[k]`` makes beat ``k`` a ventricular complex (wide, no P
    wave, discordant T); ``r_mv`` and ``t_mv`` scale the R and T waves. Seeded
    noise of ``noise_mv`` and a 0.2 Hz baseline wander are added.
    """
    peaks_s = start_s + np.concatenate(([0.0], np.cumsum(rr)))
    n = round((peaks_s[-1] + tail_s) * fs)
    t = np.arange(n) / fs
    x = np.zeros(n)
    kinds = list(wide) if wide is not None else [False] * len(peaks_s)
    for p, is_v in zip(peaks_s, kinds, strict=True):
        lo, hi = max(0, round((p - 0.4) * fs)), min(n, round((p + 0.6) * fs))
        seg = t[lo:hi]
        if is_v:
            w = _wave(seg, p, 0.04, 1.4 * r_mv) + _wave(seg, p + 0.07, 0.04, -0.6 * r_mv)
            w += _wave(seg, p + 0.3, 0.07, -0.5 * r_mv)
        else:
            w = _wave(seg, p - 0.16, 0.025, 0.12 * r_mv)
            w += _wave(seg, p - 0.025, 0.008, -0.1 * r_mv) + _wave(seg, p, 0.01, r_mv)
            w += _wave(seg, p + 0.025, 0.008, -0.2 * r_mv) + _wave(seg, p + 0.28, 0.045, t_mv)
        x[lo:hi] += w
    rng = np.random.default_rng(seed)
    x += noise_mv * rng.standard_normal(n) + 0.05 * np.sin(2 * np.pi * 0.2 * t)
    return x, np.round(peaks_s * fs).astype(np.int64)


def write_record(directory: Path, name: str, x: np.ndarray, fs: float) -> Path:
    """Write a one-lead WFDB record (lead MLII, 16-bit, 200 adu/mV); returns its path without extension."""
    directory.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(
        name,
        fs=fs,
        units=["mV"],
        sig_name=["MLII"],
        p_signal=x[:, None],
        fmt=["16"],
        adc_gain=[200.0],
        baseline=[0],
        write_dir=str(directory),
    )
    return directory / name


# ------------------------------------------------------------------ wire frames


def frames_of(
    samples: NDArray[Any],
    fs: float,
    *,
    stream: str = "s",
    chunk: int = 36,
    seq: int = 0,
    start: int = 0,
    eos: bool = True,
    channels: Sequence[str] = ("II",),
    units: Sequence[str] = ("mV",),
    gain: Sequence[float] = (1.0,),
    baseline: Sequence[float] = (0.0,),
    invalid: int | None = None,
    boot: str | int | None = None,
) -> list[list[bytes]]:
    """A signal as the wire messages a device sends: data frames of ``chunk`` samples, then end-of-stream.

    ``samples`` is (n,) or (n, channels); floating-point samples go out as
    ``<f4``, integer ones in their own type (``<i2``, ``<i4``). Frames are
    numbered from ``seq`` and sample ``start``; the end-of-stream message
    (left out with ``eos=False``) follows the last frame. The defaults
    describe one lead ``II`` in mV; with a ``boot`` id the messages are v2, without one v1.
    """
    x = np.asarray(samples)
    if x.ndim == 1:
        x = x[:, None]
    if x.dtype.kind == "f":
        x = x.astype("<f4")
    if chunk < 1:
        raise ValueError(f"frames hold at least one sample, got chunk={chunk}")
    out = [
        encode_data(
            stream, seq + k, start + i, fs, x[i : i + chunk],
            channels=channels, units=units, gain=gain, baseline=baseline, invalid=invalid, boot=boot,
        )
        for k, i in enumerate(range(0, x.shape[0], chunk))
    ]  # fmt: skip
    if eos:
        out.append(encode_eos(stream, seq + len(out), start + x.shape[0], boot=boot))
    return out


def send_frames(socket: zmq.Socket[bytes], messages: Iterable[Sequence[bytes]], *, flags: int = 0) -> int:
    """Send each message (its parts) over a connected PUSH or DEALER socket; returns how many were sent."""
    sent = 0
    for parts in messages:
        socket.send_multipart(list(parts), flags=flags)
        sent += 1
    return sent


def send_signal(socket: zmq.Socket[bytes], samples: NDArray[Any], fs: float, **frames: Any) -> int:
    """Send a signal as wire frames (:func:`frames_of` with the same keywords); returns the messages sent."""
    return send_frames(socket, frames_of(samples, fs, **frames))


# ------------------------------------------------------------------ ingest without sockets


def run_frames(
    messages: Iterable[Sequence[bytes]],
    config: StreamConfig | None = None,
    *,
    ingest: Ingest | None = None,
    flush: bool = True,
) -> list[Beat]:
    """Every beat the ingest hands to the engine for these messages, in order, without ZeroMQ.

    Each message goes through :meth:`Ingest.feed` (checks, ring buffers,
    detection, signal quality, beat assembly) as the monitor's receive loop
    would; with ``flush`` the streams still open are then ended as at shutdown.
    Pass ``ingest`` to run on an existing :class:`~monitor.ingest.Ingest` (and
    read its counters afterwards) instead of a new one built from ``config``.
    """
    if ingest is None:
        ingest = Ingest(config)
    elif config is not None:
        raise ValueError("give either an ingest or a config, not both")
    beats: list[Beat] = []
    for parts in messages:
        beats += ingest.feed(parts)
    if flush:
        beats += ingest.flush_all()
    return beats


def detect_in_signal(
    samples: NDArray[Any],
    fs: float,
    config: StreamConfig | None = None,
    *,
    chunk: int | None = None,
    stream: str = "s",
    channels: Sequence[str] = ("II",),
    units: Sequence[str] = ("mV",),
    gain: Sequence[float] = (1.0,),
    baseline: Sequence[float] = (0.0,),
    invalid: int | None = None,
) -> list[Beat]:
    """Every beat the ingest finds in a signal, as a device sending it would get them.

    With ``chunk=None`` the signal goes in the largest frames the wire format
    allows (:func:`monitor.ingest.beats_of_signal`); with a ``chunk`` it goes in
    frames of that many samples (:func:`frames_of`, :func:`run_frames`). The
    beats are the same at any chunking.
    """
    description: dict[str, Any] = dict(channels=channels, units=units, gain=gain, baseline=baseline, invalid=invalid)
    if chunk is None:
        return beats_of_signal(samples, fs, config, stream=stream, **description)
    return run_frames(frames_of(samples, fs, stream=stream, chunk=chunk, **description), config)


# ------------------------------------------------------------------ hostile devices

FUZZ_FS = 360.0
FUZZ_KINDS = ("valid", "duplicate", "reorder", "gap", "restart", "twin", "rogue", "format", "nan", "eos", "flip",
              "resize", "header", "garbage", "reboot", "oldboot")  # fmt: skip
"""What a fuzz message can be; every kind but ``garbage`` is played by a :class:`FuzzDevice`."""
FUZZ_WEIGHTS = np.array([50, 2, 2, 3, 0.5, 8, 3, 2, 3, 0.2, 5, 3, 5, 5, 0.5, 1], dtype=float)
"""How often :func:`random_kind` draws each of :data:`FUZZ_KINDS` (relative weights)."""
_ODD_VALUES: list[Any] = [
    None, True, -1, 0, 2**63, 2**62 + 1, 10**300, 1e308, -1e-308, float("nan"), float("inf"), "360", "", "ü" * 70,
    [], {}, [1, [2, [3]]], {"a": {"b": 1}}, 65537, 4097, ">i2", "<u2", 0.5, 2**64, "a b", "x" * 65, 2, 3,
]  # fmt: skip
_HEADER_KEYS = ["v", "type", "stream", "seq", "start", "fs", "n", "channels", "units", "gain", "baseline", "dtype",
                "invalid", "boot"]  # fmt: skip
_LEAD_NAMES = ["MLII", "II", "V5", "V1", "V2", "I", "III", "aVR", "aVL", "aVF", "V3", "V4", "V6", "ECG"]
_GAIN = {"<i2": 200.0, "<i4": 1000.0, "<f4": 1.0, "<f8": 1.0}  # units per mV, so that every dtype holds the signal


def fuzz_ecg(seconds: float, rng: np.random.Generator, fs: float = FUZZ_FS) -> np.ndarray:
    """Spiky beats 0.6 to 1 s apart on a wandering baseline with a little noise (mV)."""
    t = np.arange(round(seconds * fs)) / fs
    x = 0.1 * np.sin(2 * np.pi * 0.3 * t) + 0.02 * rng.standard_normal(t.size)
    for beat in np.cumsum(rng.uniform(0.6, 1.0, size=int(seconds / 0.6) + 2)):
        x += 1.2 * np.exp(-(((t - beat) / 0.012) ** 2)) - 0.2 * np.exp(-(((t - beat - 0.03) / 0.02) ** 2))
    return x


def random_kind(rng: np.random.Generator) -> str:
    """One of :data:`FUZZ_KINDS`, drawn with the :data:`FUZZ_WEIGHTS`."""
    return FUZZ_KINDS[int(rng.choice(len(FUZZ_KINDS), p=FUZZ_WEIGHTS / FUZZ_WEIGHTS.sum()))]


def fuzz_garbage(rng: np.random.Generator) -> list[bytes]:
    """A message that is no frame: random bytes, too many parts, deep nesting, a bad id, oversize parts, none."""
    choice = int(rng.integers(0, 8))
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
    if choice == 6:  # v2 without a valid boot id
        boot = [None, -1, 2**64, "", "a b", "x" * 65, [1], True][int(rng.integers(0, 8))]
        return [json.dumps({"v": 2, "type": "eos", "stream": "s.1", "seq": 0, "start": 0, "boot": boot}).encode()]
    return []


class FuzzDevice:
    """One stream's sender (360 Hz, frames of 1 to 1000 samples) that also misbehaves.

    Its format is drawn once: wire format v1 or v2 (a boot id, an integer up to
    2**63 or a string with dots and colons), 1 to 32 channels (lead names,
    channel 0 the signal), a first sequence number and sample index anywhere in
    the valid range; each frame's dtype is any of :data:`~monitor.protocol.DTYPES`
    (with a gain that holds the signal).

    :meth:`message` builds the messages of one of :data:`FUZZ_KINDS`, most
    often one, a few for ``reorder`` and ``restart``: ``valid`` frames in
    sequence; a ``duplicate`` of the last one; two frames swapped
    (``reorder``); a ``gap``; a ``restart`` at sequence 0; a ``twin`` (a second
    device sending consistently under the same id); a ``rogue`` frame at random
    positions; a ``format`` change (another rate); ``nan``, infinite and absurd
    samples; an ``eos`` that may go back (the device then goes on under a new
    id); bytes flipped (``flip``); a truncated or extended payload (``resize``);
    a ``header`` with wrong types and values, missing and extra keys; and
    ``garbage`` (:func:`fuzz_garbage`); a ``reboot`` (v2: a new boot id from
    sequence 0; v1: a restart) and a frame of the previous boot (``oldboot``). The signal is ``signal`` (mV), looped,
    or two minutes of :func:`fuzz_ecg`; every random choice comes from ``rng``.
    """

    def __init__(self, sid: str, rng: np.random.Generator, signal: NDArray[np.floating] | None = None) -> None:
        self.base, self.sid, self.rng = sid, sid, rng
        self.x = fuzz_ecg(120, rng) if signal is None else np.asarray(signal, dtype=np.float64)
        self.pos = 0
        self.seq = int(rng.integers(0, 1000))
        self.start = int(rng.integers(0, 10**6))
        self.twin = (int(rng.integers(0, 1000)), int(rng.integers(0, 10**6)))
        self.last: list[bytes] | None = None
        self.ended = 0
        far = rng.random() < 0.1  # near the top of the valid range
        if far:
            self.seq, self.start = 2**63 - 1 - int(rng.integers(10**5, 10**6)), 2**62 - int(rng.integers(10**8, 10**9))
        nch = int(rng.choice([1, 1, 1, 2, 3, 12, 32]))
        names = [_LEAD_NAMES[int(i) % len(_LEAD_NAMES)] for i in rng.permutation(nch)]
        self.channels = [f"{name}.{i}" if names.count(name) > 1 else name for i, name in enumerate(names)]
        self.mix = np.concatenate(([1.0], rng.uniform(-1, 1, size=nch - 1)))  # channel 0 is the signal
        self.boot: int | str | None = self.new_boot() if rng.random() < 0.6 else None
        self.old_boot: tuple[int | str | None, int, int] | None = None  # boot, seq, start before the last reboot
        self.twin_boot = self.new_boot() if self.boot is not None else None

    def new_boot(self) -> int | str:
        """A fresh boot id: a 63-bit number or a string with dots, colons and dashes."""
        rng = self.rng
        if rng.random() < 0.5:
            return int(rng.integers(0, 2**63, dtype=np.int64))
        return f"fw{int(rng.integers(0, 99))}.{int(rng.integers(0, 9))}:run-{int(rng.integers(0, 2**31)):x}"

    def chunk(self, n: int) -> np.ndarray:
        """The next ``n`` samples of the signal (from its start again when it runs out)."""
        if self.pos + n > self.x.size:
            self.pos = 0
        out = self.x[self.pos : self.pos + n]
        self.pos += n
        return out

    def data(
        self,
        x: np.ndarray,
        seq: int,
        start: int,
        fs: float = FUZZ_FS,
        dtype: str | None = None,
        boot: int | str | bool | None = True,
    ) -> list[bytes]:
        """A data frame of these samples (mV, channel 0; the others mixed from it) at this position,
        with a random sender time, in ``dtype`` (random when None; floats when ``x`` is not finite),
        under ``boot`` (True: the device's)."""
        rng = self.rng
        sent = float(rng.choice([0.0, 1.7e9, -1e9, 1e15]))
        if dtype is None:
            dtype = str(rng.choice(list(_GAIN))) if np.isfinite(x).all() else "<f4"
        gain = _GAIN[dtype]
        with np.errstate(over="ignore", invalid="ignore"):  # 1e300 as float32 is inf: meant
            values = x[:, None] * self.mix[None, :] * gain
            samples = np.round(values).astype(dtype) if dtype[1] == "i" else values.astype(dtype)
        nch = len(self.channels)
        return encode_data(
            self.sid, seq, start, fs, samples, sent=sent, channels=self.channels, units=["mV"] * nch,
            gain=[gain] * nch, baseline=[0.0] * nch, boot=self.boot if boot is True else boot,
        )  # fmt: skip

    def valid(self, n: int, x: np.ndarray | None = None, dtype: str | None = None) -> list[bytes]:
        """The next frame in sequence (of ``n`` samples of the signal, or of ``x``)."""
        parts = self.last = self.data(self.chunk(n) if x is None else x, self.seq, self.start, dtype=dtype)
        self.seq += 1
        self.start += n
        return parts

    def message(self, kind: str) -> list[list[bytes]]:
        """The messages of one ``kind`` (see the class docstring), in sending order."""
        rng = self.rng
        if kind == "garbage":
            return [fuzz_garbage(rng)]
        n = int(rng.choice([1, 36, 360, 1000]))
        if kind == "valid":
            return [self.valid(n)]
        if kind == "duplicate":
            return [self.last or self.valid(n)]
        if kind == "reorder":
            a, b = self.valid(n), self.valid(n)
            return [b, a]
        if kind == "gap":
            self.seq += int(rng.integers(1, 4))
            self.start += int(rng.integers(1, 40 * n + 2))
            return [self.valid(n)]
        if kind == "restart":
            self.seq, self.start = 0, int(rng.choice([0, 10**9]))
            return [self.valid(n) for _ in range(4)]
        if kind == "reboot":
            self.old_boot = (self.boot, self.seq, self.start)
            if self.boot is not None:
                self.boot = self.new_boot()
            self.seq, self.start = 0, int(rng.choice([0, 0, 10**6]))
            return [self.valid(n) for _ in range(int(rng.integers(1, 5)))]
        if kind == "oldboot":
            if self.old_boot is None:
                return [self.valid(n)]
            boot, seq, start = self.old_boot
            self.old_boot = (boot, seq + 1, start + n)
            return [self.data(self.chunk(n), seq, start, boot=boot)]
        if kind == "twin":
            seq, start = self.twin
            self.twin = (seq + 1, start + n)
            return [self.data(self.chunk(n)[::-1].copy(), seq, start, boot=self.twin_boot or True)]
        if kind == "rogue":
            return [self.data(self.chunk(n), int(rng.integers(0, 2**40)), int(rng.integers(0, 2**61)))]
        if kind == "format":
            return [self.data(self.chunk(n), self.seq, self.start, fs=float(rng.choice([250.0, 500.0, 5.0])))]
        if kind == "nan":
            x = self.chunk(n).copy()
            x[rng.random(n) < 0.5] = rng.choice([np.nan, np.inf, -np.inf, 1e30, 1e300])
            return [self.valid(n, x, dtype=str(rng.choice(["<f4", "<f8"])))]
        if kind == "eos":
            seq, start = self.seq + int(rng.integers(-1, 2)), self.start + int(rng.integers(-9, 9))
            parts = encode_eos(self.sid, seq, start, boot=self.boot)
            self.ended += 1
            self.sid = f"{self.base}-{self.ended}"
            return [parts]
        if kind == "flip":
            head, body = (bytearray(p) for p in self.data(self.chunk(n), self.seq, self.start))
            for _ in range(int(rng.integers(1, 5))):
                target = head if rng.random() < 0.7 else body
                target[int(rng.integers(0, len(target)))] = int(rng.integers(0, 256))
            return [[bytes(head), bytes(body)]]
        if kind == "resize":
            header, payload = self.data(self.chunk(n), self.seq, self.start)
            cut = int(rng.integers(-8, 9)) or 1
            return [[header, payload[:cut] if cut < 0 else payload + bytes(cut)]]
        if kind == "header":
            header, payload = self.data(self.chunk(n), self.seq, self.start)
            h = json.loads(header)
            for key in rng.choice(_HEADER_KEYS, size=int(rng.integers(1, 4))):
                if rng.random() < 0.3:
                    h.pop(str(key), None)
                else:
                    h[str(key)] = _ODD_VALUES[int(rng.integers(0, len(_ODD_VALUES)))]
            h[f"x{int(rng.integers(0, 99))}"] = _ODD_VALUES[int(rng.integers(0, len(_ODD_VALUES)))]
            return [[json.dumps(h).encode(), payload]]
        raise ValueError(f"unknown fuzz message kind {kind!r}; one of {FUZZ_KINDS}")


# ------------------------------------------------------------------ outputs


class VitalsRecorder(Sink):
    """A sink that keeps every vitals record in ``vitals`` (``monitor.add_sink(recorder)``)."""

    def __init__(self) -> None:
        self.vitals: list[Vitals] = []

    def on_vitals(self, vitals: Vitals) -> None:
        self.vitals.append(vitals)
