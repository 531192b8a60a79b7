"""Where samples come from: ``--source replay:...`` (records replayed in-process) or an endpoint devices connect to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from monitor.errors import ConfigError, SourceError
from replay import RecordRef, check_data_dir, database_records, read_header, resolve_record

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

    def check_lead(self, lead: int | str | Sequence[int | str]) -> None:
        """Raise :class:`ConfigError` when a replayed record has none of the channels of ``lead``.

        ``lead`` is a channel index (counted from 0), a lead name, or a preference list of them.
        A list naming a lead never fails (a record without it is monitored on channel 0); a list
        of indices only fails on a record that has none of them.
        """
        prefs = (lead,) if isinstance(lead, (int, str)) else tuple(lead)
        indices = [want for want in prefs if isinstance(want, int)]
        if not indices or len(indices) < len(prefs):
            return
        shown = ",".join(str(want) for want in prefs)
        for ref in self.records:
            channels = read_header(ref).channels
            if min(indices) >= channels:
                raise ConfigError(
                    f"--lead {shown}: record {ref.name} ({ref.path}) has {channels} channel(s), "
                    f"so --lead must be 0..{channels - 1} or name a lead"
                )


def _check_endpoint(spec: str) -> None:
    """A tcp endpoint's port must be ``*`` or 0..65535 (ZeroMQ would take 99999 as another port)."""
    if not spec.startswith("tcp://"):
        return
    host, sep, port = spec[len("tcp://") :].rpartition(":")
    if not sep or not host:
        raise SourceError(f"--source {spec!r}: a tcp endpoint needs HOST:PORT, e.g. tcp://*:5555")
    if port != "*" and not (port.isdigit() and int(port) <= 65535):
        raise SourceError(f"--source {spec!r}: port {port!r} is not '*' or a number 0..65535")


def parse_source(spec: str, data_dir: str | Path | None = None, *, offline: bool | None = None) -> Source:
    """Parse ``--source``: ``replay:100``, ``replay:100,101``, ``replay:mitdb``,
    ``replay:PATH/TO/RECORD``, ``replay:DIR`` (its RECORDS), or an endpoint
    (``tcp://*:5555``, ``ipc:///tmp/ecg``) on which devices connect.

    Every replayed record's header is checked here (:func:`replay.read_header`),
    so a bad one is an error before the run, not a failed replay."""
    spec = (spec or "").strip()
    if spec.startswith("replay:"):
        body = spec[len("replay:") :].strip()
        if not body:
            raise SourceError("--source replay: needs record names, e.g. replay:100 or replay:100,101 or replay:mitdb")
        check_data_dir(data_dir)
        refs: list[RecordRef] = []
        for item in (s.strip() for s in body.split(",")):
            if not item:
                raise SourceError(f"--source {spec!r}: empty record name in the list")
            if item == "mitdb":
                refs.extend(database_records(data_dir, offline=offline))
            elif Path(item).is_dir():
                if not (Path(item) / "RECORDS").is_file():
                    raise SourceError(
                        f"--source {spec!r}: the folder {item} has no RECORDS file (one record name a line); "
                        "name its records instead, e.g. replay:DIR/100"
                    )
                refs.extend(database_records(item, offline=True))
            else:
                refs.append(resolve_record(item, data_dir, offline=offline))
        for ref in refs:
            read_header(ref)
        return Source(records=tuple(refs))
    if spec.startswith(_ENDPOINT_SCHEMES):
        _check_endpoint(spec)
        return Source(endpoint=spec)
    scheme = spec.split(":", 1)[0] if ":" in spec else spec
    raise SourceError(
        f"--source {spec!r}: unknown source {scheme!r}; use replay:RECORD[,RECORD...], replay:mitdb, "
        "replay:PATH, or an endpoint such as tcp://*:5555 or ipc:///tmp/ecg"
    )
