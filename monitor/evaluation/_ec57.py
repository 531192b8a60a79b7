"""``ecg-eval``: run the real monitor over records and score its beats the EC57 way.

The records are replayed through the whole streaming path (replay -> ZeroMQ ->
ingest -> detector -> engine -> ``.mon`` files) at ``--speed max``; the
annotation files are then compared with the reference ``.atr`` beats:

* QRS detection: a detection matches a reference beat within 150 ms.
* Classes: reference symbols map to AAMI N, S, V, F, Q; labels come from the
  ``.mon`` symbols (``A`` = S). The confusion matrix counts matched beats;
  missed reference beats (column ``-``) and unmatched detections (row ``-``)
  are listed too.
* VEB: TP = V labelled V; FN = V labelled otherwise or missed; FP = N or S
  labelled V, or a detection matching no reference beat labelled V (F and Q
  reference beats labelled V are not counted, as EC57 does); FPR = FP over
  the N and S reference beats.
* SVEB: TP = S labelled S; FN = S labelled otherwise or missed; FP = N or V
  labelled S, or an unmatched detection labelled S.
* Accuracy: matched beats of reference class N, S, V or F labelled correctly.

Gross statistics pool all beats; averages are the mean of the per-record
figures over the records where they are defined.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import wfdb

from engine.training import DS1, DS2
from monitor.vocabulary import AAMI_OF_SYMBOL, CLASSES

__all__ = ["RecordScore", "main", "score_record", "summarize"]


@dataclass
class RecordScore:
    record: str
    # rows: reference N S V F Q, then '-' (no reference: unmatched detection)
    # cols: labelled N S V F Q, then '-' (no detection: missed reference beat)
    confusion: np.ndarray = field(default_factory=lambda: np.zeros((6, 6), dtype=np.int64))

    @property
    def qrs(self) -> tuple[int, int, int]:
        c = self.confusion
        tp = int(c[:5, :5].sum())
        return tp, int(c[5, :5].sum()), int(c[:5, 5].sum())


def score_record(ref_dir: Path, ann_dir: Path, record: str, extension: str = "mon") -> RecordScore:
    from monitor.evaluation._scoring import pair_beats

    ref = wfdb.rdann(str(ref_dir / record), "atr")
    keep = [i for i, s in enumerate(ref.symbol) if s in AAMI_OF_SYMBOL]
    r_samp = np.asarray(ref.sample)[keep]
    r_cls = [CLASSES.index(AAMI_OF_SYMBOL[ref.symbol[i]]) for i in keep]
    test = wfdb.rdann(str(ann_dir / record), extension)
    tkeep = [i for i, s in enumerate(test.symbol) if s in AAMI_OF_SYMBOL]
    t_samp = np.asarray(test.sample)[tkeep]
    t_cls = [CLASSES.index(AAMI_OF_SYMBOL[test.symbol[i]]) for i in tkeep]
    window = round(0.150 * float(ref.fs or test.fs or 360))
    ri, di = pair_beats(r_samp, t_samp, window)
    out = RecordScore(record)
    c = out.confusion
    for i, j in zip(ri.tolist(), di.tolist(), strict=True):
        c[r_cls[i], t_cls[j]] += 1
    missed = np.ones(len(r_cls), dtype=bool)
    missed[ri] = False
    for i in np.flatnonzero(missed):
        c[r_cls[i], 5] += 1
    extra = np.ones(len(t_cls), dtype=bool)
    extra[di] = False
    for j in np.flatnonzero(extra):
        c[5, t_cls[j]] += 1
    return out


def _ratio(num: float, den: float) -> float | None:
    return 100.0 * num / den if den else None


def stats(c: np.ndarray) -> dict[str, float | None]:
    n, s, v, _f, _q, none = range(6)
    tp_q = c[:5, :5].sum()
    out: dict[str, float | None] = {
        "qrs_se": _ratio(tp_q, c[:5, :].sum()),
        "qrs_ppv": _ratio(tp_q, c[:, :5].sum()),
    }
    v_tp = c[v, v]
    v_fn = c[v, :].sum() - v_tp
    v_fp = c[n, v] + c[s, v] + c[none, v]
    out.update(
        veb_se=_ratio(v_tp, v_tp + v_fn),
        veb_ppv=_ratio(v_tp, v_tp + v_fp),
        veb_fpr=_ratio(c[n, v] + c[s, v], c[n, :5].sum() + c[s, :5].sum()),
    )
    s_tp = c[s, s]
    s_fn = c[s, :].sum() - s_tp
    s_fp = c[n, s] + c[v, s] + c[none, s]
    out.update(sveb_se=_ratio(s_tp, s_tp + s_fn), sveb_ppv=_ratio(s_tp, s_tp + s_fp))
    for k in ("veb", "sveb"):
        se, ppv = out[f"{k}_se"], out[f"{k}_ppv"]
        out[f"{k}_f1"] = 2 * se * ppv / (se + ppv) if se is not None and ppv is not None and se + ppv > 0 else None
    core = c[:4, :4]
    out["accuracy"] = _ratio(np.trace(core), c[:4, :5].sum())
    return out


def summarize(scores: Sequence[RecordScore]) -> dict[str, Any]:
    gross_c = sum((s.confusion for s in scores), np.zeros((6, 6), dtype=np.int64))
    gross = stats(gross_c)
    per = {s.record: stats(s.confusion) for s in scores}
    average: dict[str, float | None] = {}
    for key in gross:
        vals = [x for p in per.values() if (x := p[key]) is not None]
        average[key] = float(np.mean(vals)) if vals else None
    return {"gross": gross, "average": average, "per_record": per, "confusion": gross_c.tolist()}


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def markdown(summary: dict[str, Any], title: str) -> str:
    keys = ["accuracy", "qrs_se", "qrs_ppv", "veb_se", "veb_ppv", "veb_fpr", "veb_f1", "sveb_se", "sveb_ppv", "sveb_f1"]
    head = ["", "Acc", "QRS Se", "QRS +P", "VEB Se", "VEB +P", "VEB FPR", "VEB F1", "SVEB Se", "SVEB +P", "SVEB F1"]
    lines = [f"# {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in ("gross", "average"):
        lines.append(f"| {name} | " + " | ".join(_fmt(summary[name][k]) for k in keys) + " |")
    lines += ["", "Confusion matrix (rows: reference, columns: monitor label; '-' = none):", ""]
    cols = [*CLASSES, "-"]
    lines.append("| ref \\ label | " + " | ".join(cols) + " |")
    lines.append("|" + "---|" * (len(cols) + 1))
    for i, row in enumerate(summary["confusion"]):
        lines.append(f"| {cols[i]} | " + " | ".join(str(x) for x in row) + " |")
    lines += ["", "Per record:", "", "| record | " + " | ".join(head[1:]) + " |", "|" + "---|" * len(head)]
    for rec, st in summary["per_record"].items():
        lines.append(f"| {rec} | " + " | ".join(_fmt(st[k]) for k in keys) + " |")
    return "\n".join(lines) + "\n"


def plot_confusion(summary: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = np.asarray(summary["confusion"])[:5, :5].astype(float)
    norm = c / np.maximum(c.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(5):
        for j in range(5):
            ax.text(j, i, f"{int(c[i, j])}", ha="center", va="center", color="black" if norm[i, j] < 0.6 else "white")
    ax.set_xticks(range(5), CLASSES)
    ax.set_yticks(range(5), CLASSES)
    ax.set_xlabel("monitor label")
    ax.set_ylabel("reference")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ecg-eval", description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", required=True, type=Path, help="folder with the records and their .atr files")
    p.add_argument("--records", default="ds2", help="ds2, ds1, all (the RECORDS file), or a comma-separated list")
    p.add_argument("--model", default=None, help="weights file (default: the shipped model)")
    p.add_argument("--out", type=Path, default=Path("eval"), help="folder for report.md, report.json, confusion.png")
    p.add_argument("--annotations", type=Path, default=None, help="keep the .mon files here (default: a temp dir)")
    p.add_argument("--chunk-ms", type=float, default=100.0)
    p.add_argument(
        "--alarms",
        action="store_true",
        help="score rhythm alarm episodes against the reference rhythm annotations instead of beats "
        "(writes alarms.md and alarms.json)",
    )
    p.add_argument(
        "--min-episode-s",
        type=float,
        default=5.0,
        help="with --alarms: also report sensitivity over reference episodes at least this long",
    )
    return p


def _alarm_eval(args: argparse.Namespace, records: list[str], classifier: Any) -> int:
    from monitor.app import Monitor, MonitorConfig, parse_source
    from monitor.errors import EcgMonitorError
    from monitor.evaluation._alarms import score_alarms, write_alarm_report
    from replay._publisher import ReplayConfig

    try:
        source = parse_source("replay:" + ",".join(records), args.data_dir, offline=True)
    except EcgMonitorError as exc:
        print(f"ecg-eval: error: {exc}", file=sys.stderr)
        return 2
    config = MonitorConfig(
        replay=ReplayConfig(chunk_s=args.chunk_ms / 1000, speed=None),
        annotations=args.annotations,
        lockstep=True,
        keep_alarms=True,
    )
    monitor = Monitor(source, config, classifier=classifier)
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
    meta = {"records": records, "command": "ecg-eval --alarms " + " ".join(sys.argv[1:])}
    print(write_alarm_report(args.out, title, tables, meta))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from engine import default_classifier
    from monitor.app import Monitor, MonitorConfig, parse_source
    from monitor.errors import EcgMonitorError
    from replay._publisher import ReplayConfig

    args = build_parser().parse_args(argv)
    if args.records.lower() == "all":
        listing = args.data_dir / "RECORDS"
        if not listing.is_file():
            print(f"ecg-eval: error: --records all: {listing} not found", file=sys.stderr)
            return 2
        records = listing.read_text().split()
    else:
        records = {"ds2": DS2, "ds1": DS1}.get(args.records.lower()) or [
            r.strip() for r in args.records.split(",") if r.strip()
        ]
    try:
        # alarm scoring labels beats one message at a time: one thread is fastest for batches that small
        classifier = default_classifier(args.model, threads=1 if args.alarms else 0)
    except (OSError, ValueError) as exc:
        print(f"ecg-eval: error: --model: {exc}", file=sys.stderr)
        return 2
    if args.alarms:
        return _alarm_eval(args, records, classifier)
    with tempfile.TemporaryDirectory() as tmp:
        ann_dir = args.annotations or Path(tmp)
        try:
            source = parse_source("replay:" + ",".join(records), args.data_dir, offline=True)
        except EcgMonitorError as exc:
            print(f"ecg-eval: error: {exc}", file=sys.stderr)
            return 2
        config = MonitorConfig(replay=ReplayConfig(chunk_s=args.chunk_ms / 1000, speed=None), annotations=ann_dir)
        code = Monitor(source, config, classifier=classifier).run()
        if code != 0:
            print("ecg-eval: error: the monitor failed", file=sys.stderr)
            return code
        scores = [score_record(args.data_dir, ann_dir, rec) for rec in records]
    summary = summarize(scores)
    title = f"EC57 report: {args.records} ({len(records)} records), classifier {getattr(classifier, 'name', '?')}"
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"title": title, "records": records, "model": str(args.model or "shipped"), **summary}
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    md = markdown(summary, title)
    (args.out / "report.md").write_text(md)
    plot_confusion(summary, args.out / "confusion.png", title.split(",")[0])
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
