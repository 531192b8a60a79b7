"""Wire format v1: how devices (and the replayer) send ECG samples over ZeroMQ.

One message is one ZeroMQ multipart message:

* part 0: a UTF-8 JSON object, the header (at most :data:`MAX_HEADER_BYTES`);
* part 1 (``"type": "data"`` only): the samples, ``n`` rows of ``len(channels)``
  values, row-major (all channels of sample 0, then of sample 1, ...), in the
  NumPy dtype named by ``dtype`` (explicit little-endian: ``<i2``, ``<i4``,
  ``<f4``, ``<f8``).

Physical value in ``units`` = (raw - baseline) / gain, per channel. The README's
"Wire format" section is the contract for device makers; this module is its
reference implementation.

Every message is untrusted. :func:`decode_frame` either returns a valid frame
or raises :class:`FrameError` with a short ``reason`` (the counter key), never
any other exception, whatever the bytes:

* ``parts``: not 1 or 2 parts, a part that is not bytes, or the wrong number of
  parts for the message type;
* ``header_size``: a header over :data:`MAX_HEADER_BYTES`; ``oversize``: a
  payload over :data:`MAX_PAYLOAD_BYTES` (the largest any valid header allows),
  refused before the header is parsed;
* ``json``: not UTF-8 JSON, or nested too deeply to parse;
* ``header``, ``range``, ``version``, ``stream``, ``type``, ``dtype``: a field of
  the wrong type or out of range (numbers must be finite; booleans are not
  numbers; a stream id has no trailing newline);
* ``size``: a payload that is not exactly ``n x channels x itemsize`` bytes.

Physical conversion (:meth:`DataFrame.physical`) never warns or raises on odd
values: NaN and infinite raw floats, ``invalid`` raw values and results that
overflow are NaN (missing samples).
"""

from __future__ import annotations

import json
import math
import re
import reprlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor._errors import FrameError

__all__ = [
    "DTYPES",
    "FORMAT_VERSION",
    "MAX_CHANNELS",
    "MAX_FRAME_SECONDS",
    "MAX_HEADER_BYTES",
    "MAX_PAYLOAD_BYTES",
    "MAX_SAMPLES_PER_FRAME",
    "DataFrame",
    "EndOfStream",
    "Frame",
    "decode_frame",
    "encode_data",
    "encode_eos",
]

FORMAT_VERSION = 1
MAX_HEADER_BYTES = 4096
MAX_SAMPLES_PER_FRAME = 65536
MAX_FRAME_SECONDS = 10.0
MAX_CHANNELS = 32
MAX_FS = 100_000.0
DTYPES = ("<i2", "<i4", "<f4", "<f8")
MAX_PAYLOAD_BYTES = MAX_SAMPLES_PER_FRAME * MAX_CHANNELS * 8
_STREAM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # used with fullmatch
_UNIT_SCALE_TO_MV = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3}


@dataclass(frozen=True)
class DataFrame:
    """A chunk of samples from one stream."""

    stream: str
    seq: int
    start: int
    fs: float
    channels: tuple[str, ...]
    units: tuple[str, ...]
    gain: tuple[float, ...]
    baseline: tuple[float, ...]
    dtype: str
    samples: NDArray[Any]  # shape (n, channels), raw values
    invalid: int | None = None
    sent: float | None = None

    @property
    def n(self) -> int:
        return int(self.samples.shape[0])

    def physical(self, channel: int = 0) -> NDArray[np.float64]:
        """One channel in physical units; ``invalid`` raw values become NaN."""
        raw = self.samples[:, channel]
        with np.errstate(all="ignore"):  # overflow and inf - inf give inf/NaN, made NaN below
            out = (raw.astype(np.float64) - self.baseline[channel]) / self.gain[channel]
        out[~np.isfinite(out)] = np.nan
        if self.invalid is not None:
            out[raw == self.invalid] = np.nan
        return out

    def millivolts(self, channel: int = 0) -> NDArray[np.float64]:
        """One channel in mV (units must be V, mV or uV)."""
        scale = _UNIT_SCALE_TO_MV.get(self.units[channel].strip().lower())
        if scale is None:
            raise FrameError("units", f"cannot convert {self.units[channel]!r} to mV")
        with np.errstate(over="ignore"):
            out = self.physical(channel) * scale
        out[~np.isfinite(out)] = np.nan
        return out


@dataclass(frozen=True)
class EndOfStream:
    """The stream ends after ``start`` samples; ``seq`` continues the data frames'."""

    stream: str
    seq: int
    start: int
    sent: float | None = None


Frame = DataFrame | EndOfStream


def encode_data(
    stream: str,
    seq: int,
    start: int,
    fs: float,
    samples: NDArray[Any],
    *,
    channels: Sequence[str],
    units: Sequence[str],
    gain: Sequence[float],
    baseline: Sequence[float],
    invalid: int | None = None,
    sent: float | None = None,
) -> list[bytes]:
    """Build the two parts of a data message. ``samples`` has shape (n, channels)."""
    arr = np.asarray(samples)
    if arr.ndim == 1:
        arr = arr[:, None]
    dtype = arr.dtype.newbyteorder("<").str
    if dtype not in DTYPES:
        raise FrameError("dtype", f"samples of dtype {arr.dtype} cannot be sent; use one of {DTYPES}")
    header: dict[str, Any] = {
        "v": FORMAT_VERSION,
        "type": "data",
        "stream": stream,
        "seq": int(seq),
        "start": int(start),
        "fs": float(fs),
        "n": int(arr.shape[0]),
        "channels": list(channels),
        "units": list(units),
        "gain": [float(g) for g in gain],
        "baseline": [float(b) for b in baseline],
        "dtype": dtype,
    }
    if invalid is not None:
        header["invalid"] = int(invalid)
    if sent is not None:
        header["sent"] = float(sent)
    payload = np.ascontiguousarray(arr, dtype=dtype).tobytes()
    return [json.dumps(header, separators=(",", ":")).encode(), payload]


def encode_eos(stream: str, seq: int, start: int, sent: float | None = None) -> list[bytes]:
    """Build the single part of an end-of-stream message."""
    header: dict[str, Any] = {
        "v": FORMAT_VERSION,
        "type": "eos",
        "stream": stream,
        "seq": int(seq),
        "start": int(start),
    }
    if sent is not None:
        header["sent"] = float(sent)
    return [json.dumps(header, separators=(",", ":")).encode()]


def _show(value: Any) -> str:
    """A short repr for messages: bounded in length and nesting, whatever the value."""
    return reprlib.repr(value)


def _int(header: dict[str, Any], key: str, lo: int, hi: int) -> int:
    value = header.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise FrameError("header", f"{key!r} must be an integer, got {_show(value)}")
    if not lo <= value <= hi:
        raise FrameError("range", f"{key!r}={value} is outside [{lo}, {hi}]")
    return value


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FrameError("header", f"{key!r} must be a finite number, got {_show(value)}")
    try:
        number = float(value)  # an integer beyond the float range raises OverflowError
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise FrameError("header", f"{key!r} must be a finite number, got {_show(value)}")
    return number


def _strings(header: dict[str, Any], key: str, count: int) -> tuple[str, ...]:
    value = header.get(key)
    if not isinstance(value, list) or len(value) != count:
        raise FrameError("header", f"{key!r} must be a list of {count} strings")
    if not all(isinstance(v, str) and len(v) <= 64 for v in value):
        raise FrameError("header", f"{key!r} must hold strings of at most 64 characters")
    return tuple(value)


def _numbers(header: dict[str, Any], key: str, count: int) -> tuple[float, ...]:
    value = header.get(key)
    if not isinstance(value, list) or len(value) != count:
        raise FrameError("header", f"{key!r} must be a list of {count} numbers")
    return tuple(_number(v, key) for v in value)


def decode_frame(parts: Sequence[bytes]) -> Frame:
    """Parse and validate one message; raise :class:`FrameError` if it is malformed."""
    if not parts or len(parts) > 2:
        raise FrameError("parts", f"expected 1 or 2 message parts, got {len(parts)}")
    if not all(isinstance(p, (bytes, bytearray, memoryview)) for p in parts):
        raise FrameError("parts", "message parts must be bytes")
    if len(parts[0]) > MAX_HEADER_BYTES:
        raise FrameError("header_size", f"header of {len(parts[0])} bytes > {MAX_HEADER_BYTES}")
    if len(parts) == 2 and len(parts[1]) > MAX_PAYLOAD_BYTES:
        raise FrameError("oversize", f"payload of {len(parts[1])} bytes > {MAX_PAYLOAD_BYTES}")
    raw_header = bytes(parts[0])
    try:
        header = json.loads(raw_header)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FrameError("json", f"header is not UTF-8 JSON ({exc})") from None
    except RecursionError:
        raise FrameError("json", "header is nested too deeply") from None
    if not isinstance(header, dict):
        raise FrameError("header", "header must be a JSON object")
    version = header.get("v")
    if type(version) is not int or version != FORMAT_VERSION:
        raise FrameError("version", f"format version {_show(version)} is not supported (expected {FORMAT_VERSION})")
    stream = header.get("stream")
    if not isinstance(stream, str) or not _STREAM_ID.fullmatch(stream):
        raise FrameError("stream", f"stream id {_show(stream)} must match {_STREAM_ID.pattern}")
    seq = _int(header, "seq", 0, 2**63 - 1)
    start = _int(header, "start", 0, 2**62)
    sent = header.get("sent")
    sent_f = None if sent is None else _number(sent, "sent")
    kind = header.get("type")
    if kind == "eos":
        if len(parts) != 1:
            raise FrameError("parts", "an eos message has exactly one part")
        return EndOfStream(stream=stream, seq=seq, start=start, sent=sent_f)
    if kind != "data":
        raise FrameError("type", f"message type {_show(kind)} is neither 'data' nor 'eos'")
    if len(parts) != 2:
        raise FrameError("parts", "a data message has exactly two parts")
    fs = _number(header.get("fs"), "fs")
    if not 0 < fs <= MAX_FS:
        raise FrameError("range", f"'fs'={fs} is outside (0, {MAX_FS:g}]")
    n = _int(header, "n", 1, min(MAX_SAMPLES_PER_FRAME, max(1, math.ceil(MAX_FRAME_SECONDS * fs))))
    channels = header.get("channels")
    if not isinstance(channels, list) or not 1 <= len(channels) <= MAX_CHANNELS:
        raise FrameError("header", f"'channels' must be a list of 1 to {MAX_CHANNELS} names")
    nch = len(channels)
    names = _strings(header, "channels", nch)
    units = _strings(header, "units", nch)
    gain = _numbers(header, "gain", nch)
    if any(g == 0 for g in gain):
        raise FrameError("range", "'gain' must be non-zero")
    baseline = _numbers(header, "baseline", nch)
    dtype = header.get("dtype")
    if dtype not in DTYPES:
        raise FrameError("dtype", f"dtype {_show(dtype)} is not one of {DTYPES}")
    invalid = header.get("invalid")
    if invalid is not None and (isinstance(invalid, bool) or not isinstance(invalid, int)):
        raise FrameError("header", f"'invalid' must be an integer or absent, got {_show(invalid)}")
    if invalid is not None and not -(2**63) <= invalid < 2**63:
        raise FrameError("range", f"'invalid'={invalid} is outside the 64-bit integer range")
    payload = parts[1]
    expected = n * nch * np.dtype(dtype).itemsize
    if len(payload) != expected:
        raise FrameError("size", f"payload of {len(payload)} bytes; n={n} x {nch} channels of {dtype} needs {expected}")
    samples = np.frombuffer(payload, dtype=dtype).reshape(n, nch)
    return DataFrame(
        stream=stream,
        seq=seq,
        start=start,
        fs=fs,
        channels=names,
        units=units,
        gain=gain,
        baseline=baseline,
        dtype=dtype,
        samples=samples,
        invalid=invalid,
        sent=sent_f,
    )
