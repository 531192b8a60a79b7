"""``ecg-eval``: run the real monitor over records and score its beats the EC57 way.

The records are replayed through the whole streaming path (replay -> ZeroMQ ->
ingest -> detector -> engine -> ``.mon`` files) as fast as the monitor takes
them; :mod:`monitor.evaluation` scores the annotation files against the
reference ones and writes the report.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from engine import BeatClassifier, default_classifier
from engine.training import DS1, DS2
from monitor.app import Monitor, MonitorConfig, Source, parse_source
from monitor.cli._monitor import writable_folder
from monitor.cli._options import OptionParser, field_default, non_negative, positive, setup_logging
from monitor.errors import EcgMonitorError
from monitor.evaluation import score_alarms, score_record, summarize, write_alarm_report, write_report
from replay import MAX_CHUNK_S, ReplayConfig, check_data_dir

__all__ = ["build_parser", "main"]


def build_parser() -> OptionParser:
    p = OptionParser(
        prog="ecg-eval",
        description="Run the monitor over records and score its beats the EC57 way (or, with --alarms, "
        "its rhythm alarms).",
    )
    p.option(
        "--data-dir",
        env="DATA",
        type=Path,
        help="folder with the records and their reference .atr files",
        default_text="none, required",
    )
    p.option(
        "--records",
        default="ds2",
        help="ds2 or ds1 (the inter-patient split), all (the RECORDS file), or a comma-separated list",
    )
    p.option("--model", help="classifier weights file", default_text="the shipped model")
    p.option("--out", type=Path, default=Path("eval"), help="folder for report.md, report.json and confusion.png")
    p.option(
        "--annotations",
        type=Path,
        help="keep the monitor's .mon files in this folder",
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
        help="with --alarms: also report sensitivity over reference episodes at least this long; 0: no such table",
    )
    p.logging_option()
    return p


def _records(args: argparse.Namespace) -> list[str]:
    if args.records.lower() == "all":
        listing = args.data_dir / "RECORDS"
        if not listing.is_file():
            raise EcgMonitorError(f"--records all: {listing} not found")
        names = listing.read_text(errors="replace").split()
    else:
        preset = {"ds2": DS2, "ds1": DS1}.get(args.records.lower())
        names = list(preset) if preset else [r.strip() for r in args.records.split(",") if r.strip()]
    if not names:
        raise EcgMonitorError(f"--records {args.records!r} names no records")
    return names


def _check_references(data_dir: Path, records: list[str]) -> None:
    """Every record is scored against its reference annotations: each needs ``DATA_DIR/<record>.atr``."""
    missing = [r for r in records if not (data_dir / f"{r}.atr").is_file()]
    if missing:
        raise EcgMonitorError(
            f"no reference annotations {data_dir / (missing[0] + '.atr')}"
            + (f" (nor for {', '.join(missing[1:])})" if len(missing) > 1 else "")
            + ": ecg-eval scores the monitor against them"
        )


def _replay(args: argparse.Namespace) -> ReplayConfig:
    return ReplayConfig(chunk_s=args.chunk_ms / 1000, speed=None)


def _alarm_eval(args: argparse.Namespace, source: Source, records: list[str], classifier: BeatClassifier) -> int:
    config = MonitorConfig(replay=_replay(args), annotations=args.annotations)
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
        config = MonitorConfig(replay=_replay(args), annotations=ann_dir)
        code = Monitor(source, config, classifier=classifier).run()
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    setup_logging(args.log_level)
    if args.model is not None and not args.model.strip():
        parser.error("--model is empty: give a weights file, or leave it out for the shipped model")
    if args.data_dir is None:
        parser.error("--data-dir is required (or set ECG_MONITOR_DATA): the folder with the records and .atr files")
    try:
        check_data_dir(args.data_dir)
        records = _records(args)
        source = parse_source("replay:" + ",".join(records), args.data_dir, offline=True)
        _check_references(args.data_dir, records)
        writable_folder("--out", args.out)
        if args.annotations is not None:
            writable_folder("--annotations", args.annotations)
    except EcgMonitorError as exc:
        print(f"ecg-eval: error: {exc}", file=sys.stderr)
        return 2
    try:
        # alarm scoring labels beats one message at a time: one thread is fastest for batches that small
        classifier = default_classifier(args.model, threads=1 if args.alarms else 0)
    except (OSError, ValueError) as exc:
        print(f"ecg-eval: error: --model: {exc}", file=sys.stderr)
        return 2
    if args.alarms:
        return _alarm_eval(args, source, records, classifier)
    return _beat_eval(args, source, records, classifier)


if __name__ == "__main__":
    sys.exit(main())
