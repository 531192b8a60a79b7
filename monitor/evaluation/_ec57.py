"""EC57 beat scoring: the monitor's ``.mon`` beats against the reference ``.atr`` beats.

``ecg-eval`` (:mod:`monitor.cli._eval`) replays records through the whole
streaming path and writes the ``.mon`` files; they are compared with the
reference beats here:

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

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import wfdb

from monitor.outputs import annotation_name
from monitor.vocabulary import AAMI_OF_SYMBOL, CLASSES

__all__ = ["RecordScore", "has_beat_annotations", "markdown", "score_record", "summarize", "write_report"]


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


def has_beat_annotations(ref_dir: Path, record: str) -> bool:
    """Whether the reference ``.atr`` of ``record`` marks any beat (vfdb's hold rhythm annotations only)."""
    return any(s in AAMI_OF_SYMBOL for s in wfdb.rdann(str(ref_dir / record), "atr").symbol)


def score_record(ref_dir: Path, ann_dir: Path, record: str, extension: str = "mon", start: int = 0) -> RecordScore:
    """Score one record's ``.mon`` beats against its ``.atr`` beats.

    With ``start`` > 0 only reference beats from that sample on count, and the
    detections that could match them (from ``start`` less the match window):
    the learning period that noise stress tests leave out."""
    from monitor.evaluation._scoring import pair_beats

    ref = wfdb.rdann(str(ref_dir / record), "atr")
    test = wfdb.rdann(str(ann_dir / annotation_name(record)), extension)
    window = round(0.150 * float(ref.fs or test.fs or 360))
    keep = [i for i, s in enumerate(ref.symbol) if s in AAMI_OF_SYMBOL and ref.sample[i] >= start]
    r_samp = np.asarray(ref.sample)[keep]
    r_cls = [CLASSES.index(AAMI_OF_SYMBOL[ref.symbol[i]]) for i in keep]
    tkeep = [i for i, s in enumerate(test.symbol) if s in AAMI_OF_SYMBOL and test.sample[i] >= start - window]
    t_samp = np.asarray(test.sample)[tkeep]
    t_cls = [CLASSES.index(AAMI_OF_SYMBOL[test.symbol[i]]) for i in tkeep]
    ri, di = pair_beats(r_samp, t_samp, window)
    out = RecordScore(record)
    c = out.confusion
    for i, j in zip(ri.tolist(), di.tolist(), strict=True):
        c[r_cls[i], t_cls[j]] += 1
    missed = np.ones(len(r_cls), dtype=bool)
    missed[ri] = False
    for i in np.flatnonzero(missed):
        c[r_cls[i], 5] += 1
    extra = t_samp >= start  # an unmatched detection before the start counts for nothing
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


def write_report(out: Path, summary: dict[str, Any], title: str, meta: dict[str, Any]) -> Path:
    """Write ``report.json``, ``report.md`` and ``confusion.png`` into ``out``; returns the Markdown file."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps({"title": title, **meta, **summary}, indent=1))
    path = out / "report.md"
    path.write_text(markdown(summary, title))
    plot_confusion(summary, out / "confusion.png", title.split(",")[0])
    return path
