"""Transfer-learning ablation on DS2: from scratch vs synthetic-pretrained (vs ImageNet-initialised).

For each DS1 share (all training patients, and 10% of them) and each start
(``scratch``; ``synthetic``: image layers from ``ecg-pretrain``; ``imagenet``:
a torchvision ResNet-18 checkpoint given with ``--imagenet PATH``, trained as
the ResNet-18 variant), a model is trained with ``ecg-train`` on DS1 only and
scored by ``ecg-eval`` on DS2 through the whole streaming monitor. Run:
``python benchmarks/ablation.py``; writes ``benchmarks/results/ablation.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from engine.training._pretrain import main as pretrain
from engine.training._train import main as train
from monitor.cli._eval import main as evaluate

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "mitdb"
KEYS = ("accuracy", "veb_se", "veb_ppv", "veb_f1", "sveb_se", "sveb_ppv", "sveb_f1")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--work", type=Path, default=Path("/tmp/ecg-ablation"))
    p.add_argument("--imagenet", type=Path, default=None, help="torchvision ResNet-18 checkpoint file")
    p.add_argument("--shares", type=float, nargs="*", default=[1.0, 0.1])
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    synthetic = args.work / "synthetic.pt"
    if not synthetic.is_file():
        pretrain(["--out", str(synthetic)])
    starts = [("scratch", "beatnet", "scratch"), ("synthetic", "beatnet", f"pretrained:{synthetic}")]
    if args.imagenet is not None:
        starts.append(("imagenet", "resnet18", f"imagenet:{args.imagenet}"))
    rows = []
    for share in args.shares:
        for name, arch, init in starts:
            tag = f"{name}_{int(share * 100)}"
            weights = args.work / f"{tag}.pt"
            t0 = time.time()
            code = train(
                [
                    "--data-dir",
                    str(args.data),
                    "--out",
                    str(weights),
                    "--arch",
                    arch,
                    "--init",
                    init,
                    "--patients",
                    str(share),
                    "--epochs",
                    str(args.epochs),
                ]
            )
            if code:
                raise SystemExit(f"training {tag} failed")
            evaluate(
                [
                    "--data-dir",
                    str(args.data),
                    "--records",
                    "ds2",
                    "--model",
                    str(weights),
                    "--out",
                    str(args.work / tag),
                    "--chunk-ms",
                    "1000",
                ]
            )
            gross = json.loads((args.work / tag / "report.json").read_text())["gross"]
            card = json.loads(weights.with_suffix(".json").read_text())
            rows.append(
                {
                    "ds1_patients": f"{int(share * 100)}%",
                    "start": name,
                    "arch": arch,
                    "train_records": card["data"]["train_records"],
                    **{k: None if gross[k] is None else round(gross[k], 2) for k in KEYS},
                    "minutes": round((time.time() - t0) / 60, 1),
                }
            )
            print(rows[-1], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "command": "python benchmarks/ablation.py",
        "epochs": args.epochs,
        "imagenet": str(args.imagenet) if args.imagenet else "no checkpoint file supplied: row not run",
    }
    (args.out / "ablation.json").write_text(json.dumps({**meta, "rows": rows}, indent=1))
    head = "| DS1 patients | start | Acc | VEB Se | VEB +P | VEB F1 | SVEB Se | SVEB +P | SVEB F1 |"
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        vals = " | ".join("-" if r[k] is None else f"{r[k]:.2f}" for k in KEYS)
        lines.append(f"| {r['ds1_patients']} | {r['start']} | {vals} |")
    (args.out / "ablation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
