"""Replay of WFDB records (MIT-BIH and others) as ZeroMQ device streams."""

from replay._publisher import MAX_CHUNK_S, ReplayConfig, Replayer, parse_speed, stream_ids
from replay._records import (
    DATA_ENV,
    LoadedRecord,
    RecordRef,
    cache_dir,
    database_records,
    load_record,
    resolve_record,
)

__all__ = [
    "DATA_ENV",
    "MAX_CHUNK_S",
    "LoadedRecord",
    "RecordRef",
    "ReplayConfig",
    "Replayer",
    "cache_dir",
    "database_records",
    "load_record",
    "parse_speed",
    "resolve_record",
    "stream_ids",
]
