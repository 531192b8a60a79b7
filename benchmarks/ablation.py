"""Ablation of the beat classifier: start, inputs, share of training patients, and the split, over seeds.

Rows (every one BeatNet on the STFT image, trained on the clean lead-0 beats
the monitor's own detection path finds, ``--epochs`` epochs, several seeds,
mean ± sd):

* ``scratch`` / ``synthetic`` start (image layers from ``ecg-pretrain``, made
  once per run with ``--pretrain-records`` synthetic records);
* ``rr`` inputs (the 5 RR features, the shape columns held at the neutral
  "like the dominant beat" values) vs ``adaptive`` inputs (RR and the beat's
  shape against the patient's own dominant beat: :data:`engine.CONTEXT_FEATURES`);
* 100% vs 10% of the DS1 training patients;
* split: ``inter-patient`` (train on DS1, validation on held-out DS1
  patients, scored on DS2 and on qtdb without its excerpts of DS2 records)
  vs ``random beats``: one fold of a random 90/10 split over the beats of all
  44 non-paced mitdb records (train and test beats from the same patients, the
  protocol behind the high accuracies of random-split papers), scored on its
  held-out 10%.

Scores are gross VEB and SVEB Se/+P over the detected beats matched to a
reference beat (within 150 ms), not the full EC57 report (which also counts
missed and extra beats); the shipped model's full EC57 figures come from
``ecg-eval``. DS2 is read here only to score (and in the random-split row,
which by design mixes all patients). Run: ``python benchmarks/ablation.py``;
writes ``benchmarks/results/ablation.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine import CLASSES, N_RR, BeatShape, RepresentationConfig, build_model, init_weights
from engine.training import DS1, DS2, BeatSet, concat, default_cache_dir
from engine.training._augment import _cached, _key
from engine.training._dataset import beats_of_record
from engine.training._train import _images, evaluate, selection_records, split_patients, train

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
NEUTRAL = BeatShape().as_array() * np.array([1, 1, 1, 1, 1, 10, 1], np.float32)  # as context_features scales it


def clean(data_dir: Path, records: list[str], cfg: RepresentationConfig, cache: Path) -> BeatSet:
    parts = []
    for rec in records:
        path = data_dir / rec
        parts.append(_cached(cache, _key(path, "clean", cfg, 1.0, 0), lambda p=path: beats_of_record(p, cfg)))
    return concat(parts)


def rr_only(data: BeatSet) -> BeatSet:
    """The same beats with the shape columns at the neutral values (no patient template)."""
    ctx = data.context.copy()
    ctx[:, N_RR:] = NEUTRAL
    return BeatSet(data.windows, ctx, data.labels, data.records)


def scores(conf: np.ndarray) -> dict[str, float | None]:
    def ratio(a: float, b: float) -> float | None:
        return round(100.0 * a / b, 2) if b else None

    s, v = CLASSES.index("S"), CLASSES.index("V")
    return {
        "veb_se": ratio(conf[v, v], conf[v].sum()),
        "veb_ppv": ratio(conf[v, v], conf[:, v].sum()),
        "sveb_se": ratio(conf[s, s], conf[s].sum()),
        "sveb_ppv": ratio(conf[s, s], conf[:, s].sum()),
        "accuracy": ratio(np.trace(conf), conf.sum()),
    }


def run(
    train_set: BeatSet, val: BeatSet, tests: dict[str, BeatSet], start: str, synthetic: Path, epochs: int, seed: int
) -> dict[str, Any]:
    cfg = RepresentationConfig()
    model: torch.nn.Module = build_model("beatnet")
    init_weights(model, seed)
    if start == "synthetic":
        state = torch.load(synthetic, map_location="cpu", weights_only=True)
        own = model.state_dict()
        own.update({k: v for k, v in state.items() if k in own and own[k].shape == v.shape})
        model.load_state_dict(own)
    model, _ = train(train_set, val, rep_cfg=cfg, epochs=epochs, seed=seed, init=model, progress=False)
    from engine import Representer

    rep = Representer(cfg)
    out = {}
    for name, t in tests.items():
        conf = evaluate(model, _images(rep, t.windows), torch.from_numpy(t.context), t.labels)
        out[name] = scores(conf)
    return out


def summarize(values: list[float | None]) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "-"
    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{statistics.mean(vals):.1f} ± {sd:.1f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mitdb", type=Path, default=SHARED / "mitdb")
    p.add_argument("--qtdb", type=Path, default=SHARED / "qtdb")
    p.add_argument("--work", type=Path, default=Path("/tmp/ecg-ablation"))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--pretrain-records", type=int, default=120)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args()
    t_start = time.time()
    torch.set_num_threads(2)
    args.work.mkdir(parents=True, exist_ok=True)
    cfg = RepresentationConfig()
    cache = default_cache_dir()
    synthetic = args.work / "synthetic.pt"
    if not synthetic.is_file():
        from engine.training._pretrain import main as pretrain

        pretrain(["--out", str(synthetic), "--records", str(args.pretrain_records), "--seconds", "30"])
    ds2 = clean(args.mitdb, list(DS2), cfg, cache)
    qt = clean(args.qtdb, selection_records(args.qtdb), cfg, cache)
    rows: list[dict[str, Any]] = []
    configs = [
        ("scratch", "rr", 1.0),
        ("synthetic", "rr", 1.0),
        ("scratch", "adaptive", 1.0),
        ("synthetic", "adaptive", 1.0),
        ("scratch", "rr", 0.1),
        ("synthetic", "rr", 0.1),
        ("scratch", "adaptive", 0.1),
        ("synthetic", "adaptive", 0.1),
    ]
    for start, inputs, share in configs:
        per_seed = []
        for seed in range(args.seeds):
            train_recs, val_recs = split_patients(DS1, 4, seed)
            if share < 1.0:
                rng = np.random.default_rng(seed + 1)
                train_recs = sorted(rng.choice(train_recs, size=max(2, round(share * len(train_recs))), replace=False))
            tr, val = clean(args.mitdb, train_recs, cfg, cache), clean(args.mitdb, val_recs, cfg, cache)
            tests = {"mitdb DS2": ds2, "qtdb": qt}
            if inputs == "rr":
                tr, val, tests = rr_only(tr), rr_only(val), {k: rr_only(v) for k, v in tests.items()}
            per_seed.append(run(tr, val, tests, start, synthetic, args.epochs, seed))
            print(start, inputs, share, seed, per_seed[-1], flush=True)
        rows.append({"split": "inter-patient", "start": start, "inputs": inputs, "patients": share, "seeds": per_seed})
    pool = clean(args.mitdb, [*DS1, *DS2], cfg, cache)
    per_seed = []
    for seed in range(args.seeds):
        rng = np.random.default_rng(100 + seed)
        test = rng.random(len(pool)) < 0.1
        tr, te = pool.subset(~test), pool.subset(test)
        hold = rng.random(len(tr)) < 0.05
        per_seed.append(run(tr.subset(~hold), tr.subset(hold), {"random 10% of beats": te}, "scratch", synthetic,
                            args.epochs, seed))  # fmt: skip
        print("random split", seed, per_seed[-1], flush=True)
    rows.append({"split": "random beats", "start": "scratch", "inputs": "adaptive", "patients": 1.0, "seeds": per_seed})
    write(args, rows, time.time() - t_start)


KEYS = ("veb_se", "veb_ppv", "sveb_se", "sveb_ppv")


def write(args: argparse.Namespace, rows: list[dict[str, Any]], seconds: float) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "command": "python benchmarks/ablation.py " + f"--seeds {args.seeds} --epochs {args.epochs}",
        "epochs": args.epochs,
        "seeds": args.seeds,
        "note": f"short training ({args.epochs} epochs; the shipped model trains longer and on the robust "
        "variants): figures compare the rows, they are not the shipped model's. Gross Se/+P over detected beats "
        "matched to a reference beat, not the full EC57 report",
        "minutes": round(seconds / 60, 1),
    }
    (args.out / "ablation.json").write_text(json.dumps({**meta, "rows": rows}, indent=1))
    lines = [
        f"Ablation, {args.seeds} seeds (mean ± sd), {args.epochs} epochs, BeatNet on the STFT image; "
        "gross Se/+P over matched beats. Command: `python benchmarks/ablation.py`.",
        "",
        "| split | start | inputs | DS1 patients | scored on | VEB Se | VEB +P | SVEB Se | SVEB +P |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for db in r["seeds"][0]:
            vals = " | ".join(summarize([s[db][k] for s in r["seeds"]]) for k in KEYS)
            share = "-" if r["split"] == "random beats" else f"{round(100 * r['patients'])}%"
            lines.append(f"| {r['split']} | {r['start']} | {r['inputs']} | {share} | {db} | {vals} |")
    (args.out / "ablation.md").write_text("\n".join(lines) + "\n")
    plot(args.out / "ablation.png", rows)
    print("\n".join(lines))


def plot(path: Path, rows: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    for ax, (se, ppv, title) in zip(axes, [("veb_se", "veb_ppv", "VEB"), ("sveb_se", "sveb_ppv", "SVEB")], strict=True):
        labels, means, sds = [], [], []
        for r in rows:
            for db in r["seeds"][0]:
                share = "" if r["split"] == "random beats" else f" {round(100 * r['patients'])}%"
                for k, kind in ((se, "Se"), (ppv, "+P")):
                    vals = [s[db][k] for s in r["seeds"] if s[db][k] is not None]
                    labels.append(f"{r['split'][:6]} {r['start'][:3]} {r['inputs'][:3]}{share} {db[:6]} {kind}")
                    means.append(float(np.mean(vals)) if vals else 0.0)
                    sds.append(float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0)
        y = np.arange(len(labels))
        ax.barh(y, means, xerr=sds, color=["tab:blue" if "Se" in lab else "tab:orange" for lab in labels])
        ax.set_yticks(y, labels, fontsize=6)
        ax.set_xlim(0, 100)
        ax.set_title(f"{title} (mean ± sd over seeds)")
        ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
