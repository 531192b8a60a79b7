"""Replay of WFDB records (MIT-BIH and others) as ZeroMQ device streams."""

from replay._options import add_replay_options
from replay._publisher import MAX_CHUNK_S, ReplayConfig, Replayer, parse_speed, stream_ids
from replay._records import (
    DATA_ENV,
    LoadedRecord,
    RecordHeader,
    RecordRef,
    cache_dir,
    check_data_dir,
    database_records,
    load_record,
    read_header,
    resolve_record,
)

__all__ = [
    "DATA_ENV",
    "MAX_CHUNK_S",
    "LoadedRecord",
    "RecordHeader",
    "RecordRef",
    "ReplayConfig",
    "Replayer",
    "add_replay_options",
    "cache_dir",
    "check_data_dir",
    "database_records",
    "load_record",
    "parse_speed",
    "read_header",
    "resolve_record",
    "stream_ids",
]
