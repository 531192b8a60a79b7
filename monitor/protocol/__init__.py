"""Wire formats: device frames (ingest) and alert-bus messages."""

from monitor.protocol._wire import (
    DTYPES,
    FORMAT_VERSION,
    MAX_CHANNELS,
    MAX_FRAME_SECONDS,
    MAX_HEADER_BYTES,
    MAX_PAYLOAD_BYTES,
    MAX_SAMPLES_PER_FRAME,
    DataFrame,
    EndOfStream,
    Frame,
    decode_frame,
    encode_data,
    encode_eos,
)

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
