"""Where samples come from: ``--source replay:...`` (records replayed in-process) or an endpoint devices connect to."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from monitor.errors import SourceError
from replay import RecordRef, database_records, resolve_record

__all__ = ["Source", "parse_source"]

_ENDPOINT_SCHEMES = ("tcp://", "ipc://", "inproc://")


@dataclass(frozen=True)
class Source:
    """Where samples come from: records to replay in-process, or an endpoint to bind."""

    records: tuple[RecordRef, ...] = ()
    endpoint: str | None = None

    @property
    def is_replay(self) -> bool:
        return bool(self.records)


def parse_source(spec: str, data_dir: str | Path | None = None, *, offline: bool | None = None) -> Source:
    """Parse ``--source``: ``replay:100``, ``replay:100,101``, ``replay:mitdb``,
    ``replay:PATH/TO/RECORD``, ``replay:DIR`` (its RECORDS), or an endpoint
    (``tcp://*:5555``, ``ipc:///tmp/ecg``) on which devices connect."""
    spec = (spec or "").strip()
    if spec.startswith("replay:"):
        body = spec[len("replay:") :].strip()
        if not body:
            raise SourceError("--source replay: needs record names, e.g. replay:100 or replay:100,101 or replay:mitdb")
        refs: list[RecordRef] = []
        for item in (s.strip() for s in body.split(",")):
            if not item:
                raise SourceError(f"--source {spec!r}: empty record name in the list")
            if item == "mitdb":
                refs.extend(database_records(data_dir, offline=offline))
            elif Path(item).is_dir():
                refs.extend(database_records(item, offline=True))
            else:
                refs.append(resolve_record(item, data_dir, offline=offline))
        return Source(records=tuple(refs))
    if spec.startswith(_ENDPOINT_SCHEMES):
        return Source(endpoint=spec)
    scheme = spec.split(":", 1)[0] if ":" in spec else spec
    raise SourceError(
        f"--source {spec!r}: unknown source {scheme!r}; use replay:RECORD[,RECORD...], replay:mitdb, "
        "replay:PATH, or an endpoint such as tcp://*:5555 or ipc:///tmp/ecg"
    )
