"""What the cluster keeps in JetStream: names, subjects, the frame envelope, and creating the streams and buckets.

- ``ECG_FRAMES`` (stream): gateways publish each accepted device frame to ``ecg.frames.<stream>``; the stream's
  subject transform files it under ``ecg.part.<p>.<stream>`` with ``p = {{partition(P,1)}}`` (a hash of the
  stream id, so one bed always lands in one partition). Message id ``<stream>/<boot>/<seq>`` (the gateway's
  ``Nats-Msg-Id``): a frame published twice within the duplicate window is stored once. Kept ``max_age`` (the
  replay window a new owner rebuilds from, and more), memory or file storage, replicated.
- ``ECG_ALARMS`` (stream): every alarm transition as JSON on ``ecg.alarms.<stream>``, message id
  ``<alarm_id>/<state>/<sample>``, file storage, replicated, fsynced (the servers run ``sync_interval: always``).
- ``ecg-owners`` (KV): one key per partition (``p<N>``), the owner's lease and checkpoint (compare-and-swap).
- ``ecg-open`` (KV): the open alarms, one key per alarm (``p<N>.<alarm key>``): what a new owner adopts.

Stream ids may hold ``.``, a subject separator: on subjects it is written ``=2E`` (``=`` is not allowed in a
stream id, so the writing is unambiguous).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import (
    KeyValueConfig,
    StorageType,
    StreamConfig,
    SubjectTransform,
)
from nats.js.errors import BadRequestError
from nats.js.kv import KeyValue

from monitor.errors import FrameError

__all__ = [
    "ALARMS_STREAM",
    "FRAMES_STREAM",
    "OPEN_BUCKET",
    "OWNERS_BUCKET",
    "ClusterLayout",
    "alarm_subject",
    "bucket_keys",
    "decode_envelope",
    "encode_envelope",
    "ensure_layout",
    "frame_subject",
    "partition_subject",
    "subject_token",
    "token_stream",
    "wait_jetstream",
]

FRAMES_STREAM = "ECG_FRAMES"
ALARMS_STREAM = "ECG_ALARMS"
OWNERS_BUCKET = "ecg-owners"
OPEN_BUCKET = "ecg-open"


def subject_token(stream: str) -> str:
    """A stream id as one subject token."""
    return stream.replace(".", "=2E")


def token_stream(token: str) -> str:
    return token.replace("=2E", ".")


def frame_subject(stream: str) -> str:
    return f"ecg.frames.{subject_token(stream)}"


def partition_subject(partition: int) -> str:
    """Every frame of one partition."""
    return f"ecg.part.{partition}.*"


def alarm_subject(stream: str) -> str:
    return f"ecg.alarms.{subject_token(stream)}"


_LEN = struct.Struct(">I")


def encode_envelope(parts: Sequence[bytes]) -> bytes:
    """A device message's one or two parts as one NATS payload: the first part's length, then the parts."""
    head = bytes(parts[0])
    rest = b"".join(bytes(p) for p in parts[1:])
    return _LEN.pack(len(head)) + head + rest if len(parts) > 1 else _LEN.pack(0xFFFFFFFF) + head


def decode_envelope(payload: bytes) -> list[bytes]:
    """The device message's parts back (``FrameError`` for a payload no gateway wrote)."""
    if len(payload) < _LEN.size:
        raise FrameError("envelope", f"cluster frame of {len(payload)} bytes has no length prefix")
    (n,) = _LEN.unpack_from(payload)
    body = payload[_LEN.size :]
    if n == 0xFFFFFFFF:
        return [body]
    if n > len(body):
        raise FrameError("envelope", f"cluster frame header of {n} bytes > the {len(body)} bytes carried")
    return [body[:n], body[n:]]


@dataclass(frozen=True)
class ClusterLayout:
    """How the streams are made: partitions, replicas, how long frames are kept, the duplicate window."""

    partitions: int = 8
    replicas: int = 3
    frames_max_age_s: float = 600.0
    duplicate_window_s: float = 120.0
    frames_in_memory: bool = False
    alarms_max_age_s: float = 7 * 24 * 3600.0


async def _add_or_update(js: JetStreamContext, config: StreamConfig) -> None:
    try:
        await js.add_stream(config)
    except BadRequestError as exc:  # exists with another config: bring it in line
        if exc.err_code != 10058:  # "stream name already in use with a different configuration"
            raise
        await js.update_stream(config)


async def wait_jetstream(js: JetStreamContext, timeout: float = 30.0) -> None:
    """Until JetStream answers (a new cluster elects its meta leader first)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            await js.account_info()
            return
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.js.errors.ServiceUnavailableError):
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.25)


async def ensure_layout(js: JetStreamContext, layout: ClusterLayout) -> tuple[KeyValue, KeyValue]:
    """Create (or bring in line) both streams and both buckets; return the owners and open-alarm buckets."""
    await wait_jetstream(js)
    await _add_or_update(
        js,
        StreamConfig(
            name=FRAMES_STREAM,
            subjects=["ecg.frames.*"],
            subject_transform=SubjectTransform(
                src="ecg.frames.*", dest=f"ecg.part.{{{{partition({layout.partitions},1)}}}}.{{{{wildcard(1)}}}}"
            ),
            storage=StorageType.MEMORY if layout.frames_in_memory else StorageType.FILE,
            num_replicas=layout.replicas,
            max_age=layout.frames_max_age_s,
            duplicate_window=layout.duplicate_window_s,
        ),
    )
    await _add_or_update(
        js,
        StreamConfig(
            name=ALARMS_STREAM,
            subjects=["ecg.alarms.*"],
            storage=StorageType.FILE,
            num_replicas=layout.replicas,
            max_age=layout.alarms_max_age_s,
            duplicate_window=layout.duplicate_window_s,
        ),
    )
    owners = await _bucket(js, OWNERS_BUCKET, layout.replicas)
    open_alarms = await _bucket(js, OPEN_BUCKET, layout.replicas)
    return owners, open_alarms


async def bucket_keys(js: JetStreamContext, bucket: str, prefix: str) -> list[str]:
    """The keys of ``bucket`` under ``prefix`` (``prefix.>``), deleted ones included (their value is empty).
    (From the bucket stream's per-subject state: one request, where a key watcher takes a consumer.)"""
    pre = f"$KV.{bucket}."
    info = await js.stream_info(f"KV_{bucket}", subjects_filter=f"{pre}{prefix}.>")
    return sorted(subject[len(pre) :] for subject in (info.state.subjects or {}))


async def _bucket(js: JetStreamContext, name: str, replicas: int) -> KeyValue:
    try:
        return await js.key_value(name)
    except Exception:
        return await js.create_key_value(
            KeyValueConfig(bucket=name, history=1, storage=StorageType.FILE, replicas=replicas)
        )
