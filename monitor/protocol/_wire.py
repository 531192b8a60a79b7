"""Wire format v2 (v1 still accepted): how devices (and the replayer) send ECG samples over ZeroMQ.

One message is one ZeroMQ multipart message:

* part 0: a UTF-8 JSON object, the header (at most :data:`MAX_HEADER_BYTES`);
* part 1 (``"type": "data"`` only): the samples, ``n`` rows of ``len(channels)``
  values, row-major (all channels of sample 0, then of sample 1, ...), in the
  NumPy dtype named by ``dtype`` (explicit little-endian: ``<i2``, ``<i4``,
  ``<f4``, ``<f8``).

Physical value in ``units`` = (raw - baseline) / gain, per channel. The README's
"Wire format" section is the contract for device makers; this module is its
reference implementation.

Header fields (data and eos: ``v``, ``type``, ``stream``, ``seq``, ``start``,
``boot`` from v2, optional ``sent``; data only: the rest):

=============  ==============================================================
``v``          1 or 2 (an integer). v2 requires ``boot``; v1 has none.
``type``       ``"data"`` or ``"eos"``.
``stream``     the stream id: 1-64 characters of ``A-Z a-z 0-9 . _ -``, not
               starting with ``.``, ``_`` or ``-``.
``boot``       (v2) the device's current run: chosen afresh each time the
               device starts (a random 64-bit number, or a boot counter). An
               integer 0 to 2**64-1, or a string of 1-64 characters of
               ``A-Z a-z 0-9 . _ : -``; compared as text (``42`` equals
               ``"42"``). A new ``boot`` on a stream is a reboot, at any frame.
``seq``        frame counter, 0 to 2**63-1, +1 per message (data and eos)
               within one boot.
``start``      the device's index of the frame's first sample, 0 to 2**62;
               the next data frame's ``start`` is ``start + n``. In an eos:
               the next sample index (last data ``start`` + ``n``), i.e. one
               past the last sample sent.
``fs``         sampling rate in Hz, a finite number in (0, 100000].
``n``          samples per channel in the payload: 1 to
               min(65536, ceil(10 s x fs)) (:data:`MAX_SAMPLES_PER_FRAME`,
               :data:`MAX_FRAME_SECONDS`); e.g. at most 3600 at 360 Hz.
``channels``   lead names, a list of 1 to 32 strings of at most 64 characters
               (e.g. ``"MLII"``, ``"V5"``); ``units``, ``gain``, ``baseline``
               are lists of the same length (strings; finite non-zero
               numbers; finite numbers).
``dtype``      ``"<i2"``, ``"<i4"``, ``"<f4"`` or ``"<f8"``.
``invalid``    optional integer (64-bit range): a raw value meaning "missing".
``sent``       optional finite number, the sender's clock (never used by ingest).
=============  ==============================================================

Every message is untrusted. :func:`decode_frame` either returns a valid frame
or raises :class:`FrameError` with a short ``reason`` (the counter key), never
any other exception, whatever the bytes:

* ``parts``: not 1 or 2 parts, a part that is not bytes, or the wrong number of
  parts for the message type;
* ``header_size``: a header over :data:`MAX_HEADER_BYTES` (4096 bytes); ``oversize``:
  a payload over :data:`MAX_PAYLOAD_BYTES` (the largest any valid header allows),
  refused before the header is parsed;
* ``json``: not UTF-8 JSON, or nested too deeply to parse;
* ``header``, ``range``, ``version``, ``stream``, ``type``, ``dtype``, ``boot``: a
  field of the wrong type or out of range (numbers must be finite; booleans are
  not numbers; a stream id has no trailing newline; a v2 message without a
  valid ``boot``);
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.errors import FrameError

__all__ = [
    "DTYPES",
    "FORMAT_VERSION",
    "FORMAT_VERSIONS",
    "MAX_BOOT_CHARS",
    "MAX_CHANNELS",
    "MAX_FRAME_SECONDS",
    "MAX_FS",
    "MAX_HEADER_BYTES",
    "MAX_PAYLOAD_BYTES",
    "MAX_SAMPLES_PER_FRAME",
    "UNIT_SCALE_TO_MV",
    "DataFrame",
    "EndOfStream",
    "Frame",
    "decode_frame",
    "encode_data",
    "encode_eos",
]

FORMAT_VERSION = 2  # the version encode_data and encode_eos write when given a boot id
FORMAT_VERSIONS = (1, 2)  # versions decode_frame accepts
MAX_BOOT_CHARS = 64
MAX_HEADER_BYTES = 4096
MAX_SAMPLES_PER_FRAME = 65536
MAX_FRAME_SECONDS = 10.0
MAX_CHANNELS = 32
MAX_FS = 100_000.0
DTYPES = ("<i2", "<i4", "<f4", "<f8")
MAX_PAYLOAD_BYTES = MAX_SAMPLES_PER_FRAME * MAX_CHANNELS * 8
_STREAM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # used with fullmatch
_BOOT = re.compile(r"[A-Za-z0-9._:-]{1,64}")  # used with fullmatch
_BOOT_MAX = 2**64 - 1
# millivolts per unit, by unit name in lower case (a frame's units are matched stripped and case-insensitively)
UNIT_SCALE_TO_MV = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3}


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
    boot: str | None = None  # the device's run (v2); None for v1

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

    def mv_scale(self, channel: int = 0) -> float | None:
        """Millivolts per physical unit of one channel; None when its units are not V, mV or uV."""
        return UNIT_SCALE_TO_MV.get(self.units[channel].strip().lower())

    def millivolts(self, channel: int = 0) -> NDArray[np.float64]:
        """One channel in mV (units must be V, mV or uV)."""
        scale = self.mv_scale(channel)
        if scale is None:
            raise FrameError("units", f"cannot convert {self.units[channel]!r} to mV")
        with np.errstate(over="ignore"):
            out = self.physical(channel) * scale
        out[~np.isfinite(out)] = np.nan
        return out


@dataclass(frozen=True)
class EndOfStream:
    """The stream ends; ``start`` is the next sample index (one past the last sample sent),
    ``seq`` continues the data frames'."""

    stream: str
    seq: int
    start: int
    sent: float | None = None
    boot: str | None = None  # the device's run (v2); None for v1


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
    boot: str | int | None = None,
) -> list[bytes]:
    """Build the two parts of a data message. ``samples`` has shape (n, channels).

    With a ``boot`` id the message is v2, without one v1."""
    arr = np.asarray(samples)
    if arr.ndim == 1:
        arr = arr[:, None]
    dtype = arr.dtype.newbyteorder("<").str
    if dtype not in DTYPES:
        raise FrameError("dtype", f"samples of dtype {arr.dtype} cannot be sent; use one of {DTYPES}")
    header: dict[str, Any] = {
        "v": 1 if boot is None else FORMAT_VERSION,
        "type": "data",
        "stream": stream,
        "seq": int(seq),
        "start": int(start),
        **({} if boot is None else {"boot": boot}),
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


def encode_eos(
    stream: str, seq: int, start: int, sent: float | None = None, boot: str | int | None = None
) -> list[bytes]:
    """Build the single part of an end-of-stream message: ``start`` is the next sample index
    (one past the last sample sent). With a ``boot`` id the message is v2, without one v1."""
    header: dict[str, Any] = {
        "v": 1 if boot is None else FORMAT_VERSION,
        "type": "eos",
        "stream": stream,
        "seq": int(seq),
        "start": int(start),
        **({} if boot is None else {"boot": boot}),
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


def _boot(header: dict[str, Any]) -> str:
    """A v2 message's ``boot``, as text."""
    boot = header.get("boot")
    if type(boot) is int and 0 <= boot <= _BOOT_MAX:
        return str(boot)
    if type(boot) is str and _BOOT.fullmatch(boot):
        return boot
    raise FrameError(
        "boot", f"'boot' must be an integer 0 to 2**64-1 or 1-64 characters of [A-Za-z0-9._:-], got {_show(boot)}"
    )


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


# the parser json.loads runs (on a str, default options), without its per-call set-up
_scan_once: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_ITEMSIZE = {d: np.dtype(d).itemsize for d in DTYPES}
_INT_MAX = 2**63 - 1
_START_MAX = 2**62
_NEW = object.__new__
_stream_ok: dict[str, bool] = {}  # valid stream ids seen (at most 65536 of at most 64 characters)


def _fast_float(value: Any) -> float | None:
    """A finite JSON number as a float, or None where the full checks must decide."""
    t = type(value)
    if t is float:
        return value if value - value == 0.0 else None  # inf - inf and NaN - NaN are NaN
    if t is int and -(2**53) <= value <= 2**53:
        return float(value)
    return None


def _fast_data(header: Any, payload: bytes) -> DataFrame | None:
    """The checks of :func:`_checked` for a data header, straight-line, on what a well-formed one holds.

    Returns None as soon as anything is out of the ordinary; the full checks
    then decide (and name the problem). JSON gives exact types, so ``type(v) is
    int`` is the integer-not-boolean test.
    """
    if type(header) is not dict:
        return None
    get = header.get
    version = get("v")
    if type(version) is not int or get("type") != "data":
        return None
    if version == 2:
        boot = get("boot")
        if type(boot) is str:
            if _BOOT.fullmatch(boot) is None:
                return None
        elif type(boot) is int and 0 <= boot <= _BOOT_MAX:
            boot = str(boot)
        else:
            return None
    elif version == 1:
        boot = None
    else:
        return None
    stream = get("stream")
    if type(stream) is not str:
        return None
    if stream not in _stream_ok:
        if _STREAM_ID.fullmatch(stream) is None:
            return None
        if len(_stream_ok) >= 65536:
            _stream_ok.clear()
        _stream_ok[stream] = True
    seq = get("seq")
    start = get("start")
    if type(seq) is not int or type(start) is not int or not (0 <= seq <= _INT_MAX and 0 <= start <= _START_MAX):
        return None
    sent = get("sent")
    if sent is not None:
        sent = _fast_float(sent)
        if sent is None:
            return None
    fs = _fast_float(get("fs"))
    if fs is None or not 0 < fs <= MAX_FS:
        return None
    n = get("n")
    if type(n) is not int or not 1 <= n <= min(MAX_SAMPLES_PER_FRAME, max(1, math.ceil(MAX_FRAME_SECONDS * fs))):
        return None
    channels, units, gain, baseline = get("channels"), get("units"), get("gain"), get("baseline")
    if type(channels) is not list or type(units) is not list or type(gain) is not list or type(baseline) is not list:
        return None
    nch = len(channels)
    if not 1 <= nch <= MAX_CHANNELS or len(units) != nch or len(gain) != nch or len(baseline) != nch:
        return None
    for name in channels:
        if type(name) is not str or len(name) > 64:
            return None
    for name in units:
        if type(name) is not str or len(name) > 64:
            return None
    gains = []
    for g in gain:
        g = _fast_float(g)
        if g is None or g == 0:
            return None
        gains.append(g)
    bases = []
    for b in baseline:
        b = _fast_float(b)
        if b is None:
            return None
        bases.append(b)
    dtype = get("dtype")
    itemsize = _ITEMSIZE.get(dtype) if type(dtype) is str else None
    if itemsize is None:
        return None
    invalid = get("invalid")
    if invalid is not None and (type(invalid) is not int or not -(2**63) <= invalid < 2**63):
        return None
    if len(payload) != n * nch * itemsize:
        return None
    frame: DataFrame = _NEW(DataFrame)
    # a frozen dataclass: fill its fields at once instead of one object.__setattr__ each
    frame.__dict__.update(
        stream=stream,
        seq=seq,
        start=start,
        fs=fs,
        channels=tuple(channels),
        units=tuple(units),
        gain=tuple(gains),
        baseline=tuple(bases),
        dtype=dtype,
        samples=np.frombuffer(payload, dtype=dtype).reshape(n, nch),
        invalid=invalid,
        sent=sent,
        boot=boot,
    )
    return frame


def decode_frame(parts: Sequence[bytes]) -> Frame:
    """Parse and validate one message; raise :class:`FrameError` if it is malformed."""
    if len(parts) == 2:
        # the common case, a well-formed data message, checked in one pass; anything
        # unusual (or wrong) goes through the full checks, which name the problem
        head, payload = parts[0], parts[1]
        if (
            type(head) is bytes
            and type(payload) is bytes
            and len(head) <= MAX_HEADER_BYTES
            and len(payload) <= MAX_PAYLOAD_BYTES
            and head[:1] == b"{"
            and head[1:2] != b"\x00"  # json.loads would read UTF-16/32
        ):
            try:
                text = head.decode("utf-8", "surrogatepass")
                header, end = _scan_once(text, 0)
            except RecursionError:
                raise FrameError("json", "header is nested too deeply") from None
            except (StopIteration, ValueError):
                pass  # not JSON: json.loads below gives the error
            else:
                if end == len(text):  # else trailing text: json.loads below decides
                    frame = _fast_data(header, payload)
                    return frame if frame is not None else _checked(header, parts)
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
    return _checked(header, parts)


def _checked(header: Any, parts: Sequence[bytes]) -> Frame:
    """Validate a parsed header field by field, raising the first problem found."""
    if not isinstance(header, dict):
        raise FrameError("header", "header must be a JSON object")
    version = header.get("v")
    if type(version) is not int or version not in FORMAT_VERSIONS:
        raise FrameError("version", f"format version {_show(version)} is not supported (expected 1 or 2)")
    stream = header.get("stream")
    if not isinstance(stream, str) or not _STREAM_ID.fullmatch(stream):
        raise FrameError("stream", f"stream id {_show(stream)} must match {_STREAM_ID.pattern}")
    seq = _int(header, "seq", 0, 2**63 - 1)
    start = _int(header, "start", 0, 2**62)
    sent = header.get("sent")
    sent_f = None if sent is None else _number(sent, "sent")
    boot = _boot(header) if version >= 2 else None
    kind = header.get("type")
    if kind == "eos":
        if len(parts) != 1:
            raise FrameError("parts", "an eos message has exactly one part")
        return EndOfStream(stream=stream, seq=seq, start=start, sent=sent_f, boot=boot)
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
        boot=boot,
    )
