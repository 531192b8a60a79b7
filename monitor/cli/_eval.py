"""``ecg-eval``: run the real monitor over records and score its beats the EC57 way.

The records are replayed through the whole streaming path (replay -> ZeroMQ ->
ingest -> detector -> engine -> ``.mon`` files) as fast as the monitor takes
them; :mod:`monitor.evaluation` scores the annotation files against the
reference ones and writes the report.

With ``--db`` (repeated) it scores several databases in one run, beats and
alarm episodes together: one lockstep pass of the monitor per database gives
both the ``.mon`` files and the alarm events (:func:`cross_eval`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import wfdb

from engine import BeatClassifier, default_classifier
from engine.training import DS1, DS2
from monitor.app import Monitor, MonitorConfig, Source, parse_source
from monitor.cli._monitor import writable_folder
from monitor.cli._options import OptionParser, field_default, non_negative, positive, setup_logging
from monitor.errors import EcgMonitorError
from monitor.evaluation import (
    NST_START_S,
    DatabaseResult,
    DatabaseSpec,
    has_beat_annotations,
    parse_database,
    score_alarms,
    score_record,
    summarize,
    write_alarm_report,
    write_cross_report,
    write_nst_record,
    write_report,
)
from replay import MAX_CHUNK_S, ReplayConfig, check_data_dir

__all__ = ["build_parser", "main"]


def build_parser() -> OptionParser:
    p = OptionParser(
        prog="ecg-eval",
        description="Run the monitor over records and score its beats the EC57 way (or, with --alarms, "
        "its rhythm alarms; or, with --db, both over several databases in one report).",
    )
    p.option(
        "--data-dir",
        env="DATA",
        type=Path,
        help="folder with the records and their reference .atr files (with --db: the folder that relative "
        "database folders are in)",
        default_text="none, required",
    )
    p.option(
        "--records",
        help="ds2 or ds1 (the inter-patient split), all (the RECORDS file), or a comma-separated list",
        default_text="ds2",
    )
    p.option(
        "--db",
        action="append",
        metavar="[NAME=]SOURCE",
        help="score this database, beats and alarm episodes, into one cross-database report (repeat it for "
        "each database): "
        "DIR[:RECORDS] (a folder of records; RECORDS as for --records, default all; a relative DIR is under "
        "--data-dir when one is given) or nst:NOISE:SNR[:RECORDS] (noise stress mixes of --nst-clean records, "
        "default 118,119, with the --nst-noise record NOISE (em, ma, bw) at SNR dB); NAME names its table",
        default_text="none: the one database of --data-dir and --records",
    )
    p.option(
        "--nst-clean",
        type=Path,
        help="with --db nst:...: the folder of the clean records the noise is added to",
        default_text="DATA_DIR/mitdb",
    )
    p.option(
        "--nst-noise",
        type=Path,
        help="with --db nst:...: the folder of the noise records (nstdb's bw, em, ma)",
        default_text="DATA_DIR/nstdb-noise",
    )
    p.option("--model", help="classifier weights file", default_text="the shipped model")
    p.option("--out", type=Path, default=Path("eval"), help="folder for report.md, report.json and confusion.png")
    p.option(
        "--annotations",
        type=Path,
        help="keep the monitor's .mon files in this folder (with --db: in a folder per database)",
        default_text="a temporary folder, removed afterwards",
    )
    p.option(
        "--chunk-ms",
        type=positive(float, "ms", maximum=MAX_CHUNK_S * 1000),
        default=field_default(ReplayConfig, "chunk_s") * 1000,
        help="replay chunk length, in ms of signal",
    )
    p.flag(
        "--alarms",
        help="score rhythm alarm episodes against the reference rhythm annotations instead of beats, "
        "into alarms.md and alarms.json",
    )
    p.option(
        "--min-episode-s",
        type=non_negative(float, "s"),
        default=5.0,
        help="with --alarms or --db: also report sensitivity over reference episodes at least this long; "
        "0: no such table",
    )
    p.logging_option()
    return p


def record_names(data_dir: Path, spec: str, what: str = "--records") -> list[str]:
    """The records ``spec`` names in ``data_dir``: all (its RECORDS file), ds1, ds2, or a comma-separated list."""
    if spec.lower() == "all":
        listing = data_dir / "RECORDS"
        if not listing.is_file():
            raise EcgMonitorError(f"{what} all: {listing} not found")
        names = listing.read_text(errors="replace").split()
    else:
        preset = {"ds2": DS2, "ds1": DS1}.get(spec.lower())
        names = list(preset) if preset else [r.strip() for r in spec.split(",") if r.strip()]
    if not names:
        raise EcgMonitorError(f"{what} {spec!r} names no records")
    return names


def check_references(data_dir: Path, records: list[str]) -> None:
    """Every record is scored against its reference annotations: each needs ``DATA_DIR/<record>.atr``."""
    missing = [r for r in records if not (data_dir / f"{r}.atr").is_file()]
    if missing:
        raise EcgMonitorError(
            f"no reference annotations {data_dir / (missing[0] + '.atr')}"
            + (f" (nor for {', '.join(missing[1:])})" if len(missing) > 1 else "")
            + ": ecg-eval scores the monitor against them"
        )


def replay_config(args: argparse.Namespace) -> ReplayConfig:
    return ReplayConfig(chunk_s=args.chunk_ms / 1000, speed=None)


def _alarm_eval(args: argparse.Namespace, source: Source, records: list[str], classifier: BeatClassifier) -> int:
    config = MonitorConfig(replay=replay_config(args), annotations=args.annotations)
    monitor = Monitor(source, config, classifier=classifier, lockstep=True, record_alarms=True)
    code = monitor.run()
    if code != 0:
        print("ecg-eval: error: the monitor failed", file=sys.stderr)
        return code
    tables = {0.0: score_alarms(args.data_dir, records, monitor.alarm_events)}
    if args.min_episode_s > 0:
        tables[args.min_episode_s] = score_alarms(
            args.data_dir, records, monitor.alarm_events, min_episode_s=args.min_episode_s
        )
    title = f"Rhythm alarm episodes: {args.data_dir.name} ({len(records)} records)"
    meta = {"records": records, "command": "ecg-eval " + " ".join(args.argv)}
    print(write_alarm_report(args.out, title, tables, meta))
    print(f"ecg-eval: report written to {args.out / 'alarms.md'} and alarms.json", file=sys.stderr)
    return 0


def _beat_eval(args: argparse.Namespace, source: Source, records: list[str], classifier: BeatClassifier) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        ann_dir = args.annotations or Path(tmp)
        config = MonitorConfig(replay=replay_config(args), annotations=ann_dir)
        # lockstep: every beat labelled before the next message, so the labels never depend on machine load
        code = Monitor(source, config, classifier=classifier, lockstep=True).run()
        if code != 0:
            print("ecg-eval: error: the monitor failed", file=sys.stderr)
            return code
        scores = [score_record(args.data_dir, ann_dir, rec) for rec in records]
    summary = summarize(scores)
    title = f"EC57 report: {args.records} ({len(records)} records), classifier {getattr(classifier, 'name', '?')}"
    meta = {"records": records, "model": str(args.model or "shipped")}
    path = write_report(args.out, summary, title, meta)
    print(path.read_text())
    print(f"ecg-eval: report written to {path}, report.json and confusion.png", file=sys.stderr)
    return 0


# ------------------------------------------------------------------ several databases in one report


@dataclass(frozen=True)
class _Database:
    spec: DatabaseSpec
    folder: Path  # the records (for a noise mix: the clean ones)
    records: list[str]
    noise: Path | None = None  # a noise mix: the noise record


def _nst_folder(args: argparse.Namespace, flag: str, given: Path | None, default: str) -> Path:
    if given is not None:
        folder = given
    elif args.data_dir is not None:
        folder = args.data_dir / default
    else:
        raise EcgMonitorError(f"a noise mix needs {flag} (or --data-dir holding {default}/)")
    if not folder.is_dir():
        raise EcgMonitorError(f"{flag} {folder} {_not_a_folder(folder)}")
    return folder


def _not_a_folder(path: Path) -> str:
    return "is a file, not a folder" if path.exists() else "does not exist"


def _database(args: argparse.Namespace, spec: DatabaseSpec) -> _Database:
    """Check a database before any run: its folder, records, headers, reference annotations (and noise)."""
    if spec.folder is not None:
        folder, noise = spec.folder, None
        if not folder.is_dir():
            raise EcgMonitorError(f"the folder {folder} {_not_a_folder(folder)}")
    else:
        folder = _nst_folder(args, "--nst-clean", args.nst_clean, "mitdb")
        noise_dir = _nst_folder(args, "--nst-noise", args.nst_noise, "nstdb-noise")
        noise = noise_dir / str(spec.noise)
        if not noise.with_name(noise.name + ".hea").is_file():
            have = sorted(p.stem for p in noise_dir.glob("*.hea"))
            raise EcgMonitorError(f"no noise record {spec.noise!r} in {noise_dir} (there: {', '.join(have) or 'none'})")
    records = record_names(folder, spec.records, "records")
    parse_source("replay:" + ",".join(records), folder, offline=True)
    check_references(folder, records)
    return _Database(spec, folder, records, noise)


def _run_database(args: argparse.Namespace, db: _Database, classifier: BeatClassifier) -> DatabaseResult | None:
    """One lockstep pass of the monitor over a database, scored on beats and alarm episodes."""
    spec = db.spec
    with tempfile.TemporaryDirectory() as tmp:
        folder, records = db.folder, db.records
        notes: list[str] = []
        if db.noise is not None:
            folder = Path(tmp) / "records"
            records = [write_nst_record(db.folder / r, db.noise, int(spec.snr_db or 0), folder) for r in db.records]
            notes.append(
                f"records {', '.join(records)}: {db.folder} + {db.noise}; beats scored from minute "
                f"{NST_START_S / 60:g} (the clean learning period left out), alarms over whole records"
            )
            if set(db.records) & set(DS1):
                notes.append(
                    f"{', '.join(r for r in db.records if r in DS1)} in DS1, the inter-patient training split: "
                    "this table measures noise robustness, not patients unseen in training"
                )
        ann_dir = args.annotations / spec.name if args.annotations is not None else Path(tmp) / "annotations"
        source = parse_source("replay:" + ",".join(records), folder, offline=True)
        config = MonitorConfig(replay=replay_config(args), annotations=ann_dir)
        monitor = Monitor(source, config, classifier=classifier, lockstep=True, record_alarms=True)
        if monitor.run() != 0:
            return None
        headers = {r: wfdb.rdheader(str(folder / r)) for r in records}
        hours = sum(h.sig_len / h.fs for h in headers.values()) / 3600.0
        beat_records = [r for r in records if has_beat_annotations(folder, r)]
        if not beat_records:
            notes.append("no beat annotations in the reference (rhythm annotations only): beats not scored")
        elif len(beat_records) < len(records):
            skipped = [r for r in records if r not in beat_records]
            notes.append(f"no beat annotations, not scored on beats: {', '.join(skipped)}")
        start = {r: round(NST_START_S * headers[r].fs) if db.noise is not None else 0 for r in records}
        scores = [score_record(folder, ann_dir, r, start=start[r]) for r in beat_records]
        events = monitor.alarm_events
        tables = {0.0: score_alarms(folder, records, events)}
        if args.min_episode_s > 0:
            tables[args.min_episode_s] = score_alarms(folder, records, events, min_episode_s=args.min_episode_s)
    beats = summarize(scores) if scores else None
    return DatabaseResult(spec, records, hours, beats, beat_records, tables, notes)


def _check_outputs(args: argparse.Namespace) -> None:
    """``--out`` and ``--annotations`` (when given) are folders this user can write (``EcgMonitorError`` if not)."""
    writable_folder("--out", args.out)
    if args.annotations is not None:
        writable_folder("--annotations", args.annotations)


def _classifier(args: argparse.Namespace, threads: int) -> BeatClassifier | None:
    """The ``--model`` classifier, or ``None`` after printing why it cannot be loaded."""
    try:
        return default_classifier(args.model, threads=threads)
    except (OSError, ValueError) as exc:
        print(f"ecg-eval: error: --model: {exc}", file=sys.stderr)
        return None


def cross_eval(args: argparse.Namespace) -> int:
    """``ecg-eval --db ... [--db ...]``: every database checked first, then each run and scored in turn."""
    dbs: list[_Database] = []
    try:
        if args.data_dir is not None:
            check_data_dir(args.data_dir)
        for text in args.db:
            spec = parse_database(text, args.data_dir)
            if any(d.spec.name == spec.name for d in dbs):
                raise EcgMonitorError(f"--db {text!r}: a second database named {spec.name!r}; give it NAME=...")
            try:
                dbs.append(_database(args, spec))
            except EcgMonitorError as exc:
                raise EcgMonitorError(f"--db {spec.name}: {exc}") from None
        _check_outputs(args)
    except EcgMonitorError as exc:
        print(f"ecg-eval: error: {exc}", file=sys.stderr)
        return 2
    classifier = _classifier(args, threads=1)
    if classifier is None:
        return 2
    results = []
    for db in dbs:
        t0 = time.monotonic()
        print(f"ecg-eval: {db.spec.name}: {len(db.records)} records ...", file=sys.stderr, flush=True)
        result = _run_database(args, db, classifier)
        if result is None:
            print(f"ecg-eval: error: the monitor failed on {db.spec.name}", file=sys.stderr)
            return 1
        results.append(result)
        print(f"ecg-eval: {db.spec.name}: done in {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
    meta = {
        "command": "ecg-eval " + " ".join(args.argv),
        "model": str(args.model or "shipped"),
        "classifier": getattr(classifier, "name", "?"),
    }
    title = f"Cross-database report: {', '.join(d.spec.name for d in dbs)}"
    path = write_cross_report(args.out, results, title, meta)
    print(path.read_text())
    print(f"ecg-eval: report written to {path}, report.json and one folder per database", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    setup_logging(args.log_level)
    if args.model is not None and not args.model.strip():
        parser.error("--model is empty: give a weights file, or leave it out for the shipped model")
    if args.db:
        if args.alarms:
            parser.error("--alarms: the cross-database report (--db) scores beats and alarms together; leave it out")
        if args.records is not None:
            parser.error("--records: with --db, name the records in each database, e.g. --db mitdb=DIR:ds2")
        return cross_eval(args)
    if args.data_dir is None:
        parser.error("--data-dir is required (or set ECG_MONITOR_DATA): the folder with the records and .atr files")
    args.records = args.records or "ds2"
    try:
        check_data_dir(args.data_dir)
        records = record_names(args.data_dir, args.records)
        source = parse_source("replay:" + ",".join(records), args.data_dir, offline=True)
        check_references(args.data_dir, records)
        _check_outputs(args)
    except EcgMonitorError as exc:
        print(f"ecg-eval: error: {exc}", file=sys.stderr)
        return 2
    # alarm scoring labels beats one message at a time: one thread is fastest for batches that small
    classifier = _classifier(args, threads=1 if args.alarms else 0)
    if classifier is None:
        return 2
    if args.alarms:
        return _alarm_eval(args, source, records, classifier)
    return _beat_eval(args, source, records, classifier)


if __name__ == "__main__":
    sys.exit(main())
