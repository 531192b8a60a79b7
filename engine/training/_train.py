"""``ecg-train``: train a beat classifier on DS1 only, with a patient-wise validation split.

DS2 is never read here: training, validation, early stopping and model
selection use DS1 records, and optionally a second database (``--select-dir``,
e.g. qtdb) for model selection; the qtdb records that are excerpts of DS2
records (``sel100``, ``sel103``, ...) are never read. By default the training
set is made robust (:mod:`engine.training._augment`): both leads, gains,
polarity, baseline wander, real nstdb noise and other rates, each through the
monitor's own detection path. The weights are written with a model card
(JSON) beside them: by default ``beatnet-trained.pt`` in the current
directory; the package's shipped weights are replaced only with ``--force``.
"""

from __future__ import annotations

import hashlib
import json
import platform
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engine import (
    CLASSES,
    CONTEXT_FEATURES,
    N_CONTEXT,
    RepresentationConfig,
    Representer,
    build_model,
    init_weights,
    load_imagenet,
)
from engine.training._augment import VARIANTS, _cached, _key, default_cache_dir, robust_beatset
from engine.training._dataset import DS1, DS2, BeatSet, beats_of_record, concat, load_beatset
from monitor.cli import OptionParser, non_negative, positive

__all__ = ["DEFAULT_OUT", "build_parser", "check_output", "main", "train"]

MAIN_CLASSES = (0, 1, 2)  # N, S, V: the classes model selection balances

#: qtdb records cut from mitdb DS2 records: never read by training or model selection.
QTDB_DS2_EXCERPTS = frozenset(f"sel{r}" for r in DS2)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def split_patients(records: Sequence[str], val_count: int, seed: int) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    order = list(rng.permutation(sorted(records)))
    return sorted(order[val_count:]), sorted(order[:val_count])


def macro_f1(confusion: np.ndarray, classes: Sequence[int] = MAIN_CLASSES) -> float:
    f1s = []
    for c in classes:
        tp = confusion[c, c]
        fp = confusion[:, c].sum() - tp
        fn = confusion[c, :].sum() - tp
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return float(np.mean(f1s))


def class_weights(data: BeatSet, min_patients: int = 3, min_beats: int = 20) -> np.ndarray:
    """Loss weight per class: 1/sqrt(frequency), relative to N.

    A class seen (with at least ``min_beats`` beats) in fewer than
    ``min_patients`` training patients cannot be learned across patients: it
    keeps N's weight instead of being boosted (in DS1 nearly all F beats come
    from one patient, 208, and boosting F turns normal beats of other patients
    into F).
    """
    counts = np.bincount(data.labels, minlength=len(CLASSES)).astype(np.float64)
    weights = np.sqrt(counts[0] / np.maximum(counts, 1))
    for c in range(len(CLASSES)):
        patients = {
            r
            for r in np.unique(data.records[data.labels == c])
            if np.sum((data.records == r) & (data.labels == c)) >= min_beats
        }
        if len(patients) < min_patients:
            weights[c] = 1.0
    return weights


def _progress(text: str, done: int, total: int) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    sys.stderr.write(f"\r{text} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def _images(rep: Representer, windows: np.ndarray, batch: int = 4096) -> torch.Tensor:
    return torch.cat([torch.from_numpy(rep(windows[i : i + batch])) for i in range(0, len(windows), batch)])


def evaluate(model: nn.Module, images: torch.Tensor, context: torch.Tensor, labels: np.ndarray) -> np.ndarray:
    """Confusion matrix (reference x predicted) over CLASSES."""
    model.eval()
    preds = []
    with torch.inference_mode():
        for i in range(0, len(images), 1024):
            preds.append(model(images[i : i + 1024], context[i : i + 1024]).argmax(1).numpy())
    pred = np.concatenate(preds) if preds else np.empty(0, dtype=np.int64)
    conf = np.zeros((len(CLASSES), len(CLASSES)), dtype=np.int64)
    np.add.at(conf, (labels, pred), 1)
    return conf


def train(
    data: BeatSet,
    val: BeatSet,
    *,
    arch: str = "beatnet",
    rep_cfg: RepresentationConfig | None = None,
    epochs: int = 12,
    batch: int = 256,
    lr: float = 2e-3,
    seed: int = 0,
    init: nn.Module | None = None,
    progress: bool = True,
    select: dict[str, BeatSet] | None = None,
    ema: float = 0.0,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train on ``data``; keep the epoch with the best selection score.

    The score is the macro-F1 (N, S, V) on ``val``, averaged with that on each
    beat set of ``select`` (other databases) when given. With ``ema`` > 0 the
    model scored and kept is the exponential moving average of the weights
    (and batch-norm statistics) with that decay per step (less during the first
    steps, so the random start soon stops counting), which is steadier
    from epoch to epoch across patients than the weights of the last step.
    """
    seed_everything(seed)
    rep = Representer(rep_cfg)
    model = init if init is not None else build_model(arch)
    if init is None:
        init_weights(model, seed)
    images = _images(rep, data.windows)
    rr = torch.from_numpy(data.context)
    y = torch.from_numpy(data.labels)
    sets = {"validation": val, **(select or {})}
    scored = {k: (_images(rep, v.windows), torch.from_numpy(v.context), v.labels) for k, v in sets.items() if len(v)}
    weights = class_weights(data)
    loss_fn = nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-3)
    steps = epochs * ((len(y) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1))
    gen = torch.Generator().manual_seed(seed)
    averaged = None
    if ema > 0:

        def ema_step(avg: torch.Tensor, cur: torch.Tensor, n: torch.Tensor | int) -> torch.Tensor:
            decay = min(ema, (1.0 + int(n)) / (10.0 + int(n)))  # warm-up: early steps weigh more
            return decay * avg + (1.0 - decay) * cur

        averaged = torch.optim.swa_utils.AveragedModel(model, avg_fn=ema_step, use_buffers=True)
    kept: nn.Module = averaged.module if averaged is not None else model
    best: dict[str, Any] = {"score": -1.0}
    history = []
    step = 0
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(y), generator=gen)
        total_loss = 0.0
        for i in range(0, len(y), batch):
            idx = order[i : i + batch]
            img = images[idx]
            img = img + 0.05 * torch.randn(img.shape, generator=gen)  # mild image noise
            loss = loss_fn(model(img, rr[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if averaged is not None:
                averaged.update_parameters(model)
            step += 1
            total_loss += loss.item() * len(idx)
            if progress and step % 20 == 0:
                _progress(f"epoch {epoch + 1}/{epochs}", min(i + batch, len(y)), len(y))
        confs = {k: evaluate(kept, *v) for k, v in scored.items()}
        f1 = {k: round(macro_f1(c), 4) for k, c in confs.items()}
        conf = confs["validation"]
        score = float(np.mean(list(f1.values())))
        history.append(
            {"epoch": epoch + 1, "loss": round(total_loss / len(y), 4), "macro_f1_nsv": f1, "score": round(score, 4)}
        )
        if progress:
            _progress(f"epoch {epoch + 1}/{epochs}", len(y), len(y))
            print(f"epoch {epoch + 1}: loss {total_loss / len(y):.4f}, macro-F1 (N,S,V) {f1}", file=sys.stderr)
        if score > best["score"]:
            best = {
                "score": score,
                "epoch": epoch + 1,
                "state": {k: v.clone() for k, v in kept.state_dict().items()},
                "confusion": conf.tolist(),
                "f1": f1,
                "confusions": {k: c.tolist() for k, c in confs.items() if k != "validation"},
            }
    model.load_state_dict(best["state"])
    model.eval()
    info = {
        "history": history,
        "best_epoch": best["epoch"],
        "selection_score": round(best["score"], 4),
        "macro_f1_nsv_at_best": best["f1"],
        "val_confusion": best["confusion"],
        "selection_confusions": best["confusions"],
        "class_weights": [round(float(w), 4) for w in weights],
    }
    return model, info


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save(model: nn.Module, path: Path, card: dict[str, Any]) -> dict[str, Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    card = {**card, "weights_file": path.name, "weights_sha256": sha256(path)}
    path.with_suffix(".json").write_text(json.dumps(card, indent=1))
    return card


#: Where ``ecg-train`` writes by default: the current directory, never the shipped weights.
DEFAULT_OUT = Path("beatnet-trained.pt")


def shipped_weights_dir() -> Path:
    """The package's own weights folder (the model the monitor ships with)."""
    from engine import DEFAULT_WEIGHTS

    return DEFAULT_WEIGHTS.parent


def check_output(path: Path, force: bool) -> str | None:
    """Why ``path`` must not be written (it lies in the shipped weights folder and ``force`` is off), else None."""
    target = path.expanduser().resolve()
    shipped = shipped_weights_dir().resolve()
    if not force and (target.parent == shipped or shipped in target.parents):
        return (
            f"--out {path}: refusing to write into the shipped weights folder {shipped}; pass --force to replace them"
        )
    return None


def build_parser() -> OptionParser:
    p = OptionParser(
        prog="ecg-train",
        description="Train a beat classifier on DS1 only, with a patient-wise validation split; the weights are "
        "written with their model card (JSON) beside them.",
    )
    p.option("--data-dir", required=True, type=Path, help="mitdb folder; only DS1 records are read")
    p.option("--out", type=Path, default=DEFAULT_OUT, help="weights file to write, its model card beside it")
    p.flag("--force", help="allow --out inside the package's shipped weights folder (replacing the shipped model)")
    p.option("--arch", choices=("beatnet", "resnet18"), default="beatnet", help="network")
    p.option("--representation", choices=("stft", "cwt"), default="stft", help="beat image")
    p.option("--epochs", type=positive(int), default=12, help="training epochs")
    p.option("--batch", type=positive(int), default=256, help="beats per optimizer step")
    p.option("--lr", type=positive(float), default=2e-3, help="peak learning rate of the one-cycle schedule")
    p.option("--seed", type=non_negative(int), default=0, help="seed of the split, the weights and the batches")
    p.option("--val-records", type=positive(int), default=4, help="DS1 patients held out for validation")
    p.option("--patients", type=positive(float), default=1.0, help="fraction of DS1 training patients used")
    p.option("--init", default="scratch", help="scratch, imagenet:PATH (resnet18 only) or pretrained:PATH")
    p.option("--threads", type=non_negative(int), default=0, help="torch CPU threads; 0: torch's default")
    p.flag("--no-robust", help="train on the clean lead-0 beats alone, without the robustness variants")
    p.option(
        "--noise-dir",
        type=Path,
        default=None,
        default_text="$ECG_MONITOR_SHARED_DATA/nstdb-noise when present",
        help="nstdb noise records (em, ma, bw) for the noisy variants; none found: those variants are skipped",
    )
    p.option("--keep-n", type=positive(float), default=0.05, help="fraction of N beats kept in each variant")
    p.option(
        "--ema",
        type=non_negative(float),
        default=0.0,
        help="decay per step of a moving average of the weights to score and keep instead of the raw weights "
        "(e.g. 0.999); 0: the raw weights (they scored higher on the selection databases)",
    )
    p.option(
        "--cache",
        type=Path,
        default=None,
        default_text="~/.cache/ecg-monitor/beatsets",
        help="folder of cached beat sets",
    )
    p.option(
        "--select-dir",
        type=Path,
        default=None,
        help="a second database (e.g. qtdb) whose beats join model selection; qtdb excerpts of DS2 records are "
        "never read",
    )
    return p


def _noise_dir(given: Path | None) -> Path | None:
    if given is not None:
        return given
    import os

    shared = os.environ.get("ECG_MONITOR_SHARED_DATA")
    found = Path(shared) / "nstdb-noise" if shared else None
    return found if found is not None and (found / "em.hea").is_file() else None


def selection_records(select_dir: Path) -> list[str]:
    """The records of ``select_dir`` (its RECORDS file) that model selection may read: no excerpt of a DS2 record."""
    listed = (select_dir / "RECORDS").read_text().split()
    return [r for r in listed if r not in QTDB_DS2_EXCERPTS and r not in DS2]


def selection_set(select_dir: Path, cfg: RepresentationConfig, cache: Path | None) -> BeatSet:
    parts = []
    for rec in selection_records(select_dir):
        path = select_dir / rec
        parts.append(_cached(cache, _key(path, "clean", cfg, 1.0, 0), lambda p=path: beats_of_record(p, cfg)))
    return concat(parts)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    refused = check_output(args.out, args.force)
    if refused is not None:
        print(f"ecg-train: error: {refused}", file=sys.stderr)
        return 2
    if args.patients > 1.0:
        print(f"ecg-train: error: --patients must be a fraction <= 1, got {args.patients}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.time()
    rep_cfg = RepresentationConfig(kind=args.representation)
    train_recs, val_recs = split_patients(DS1, args.val_records, args.seed)
    if args.patients < 1.0:
        rng = np.random.default_rng(args.seed + 1)
        k = max(1, round(args.patients * len(train_recs)))
        train_recs = sorted(rng.choice(train_recs, size=k, replace=False).tolist())
    if args.keep_n > 1.0:
        print(f"ecg-train: error: --keep-n must be a fraction <= 1, got {args.keep_n}", file=sys.stderr)
        return 2
    cache = args.cache or default_cache_dir()
    noise_dir = _noise_dir(args.noise_dir)
    if args.no_robust:
        data = load_beatset(args.data_dir, train_recs, rep_cfg)
    else:
        data = robust_beatset(
            args.data_dir, train_recs, rep_cfg, noise_dir=noise_dir, keep_n=args.keep_n, cache=cache, seed=args.seed
        )
    val = load_beatset(args.data_dir, val_recs, rep_cfg)
    select: dict[str, BeatSet] = {}
    if args.select_dir is not None:
        try:
            select[args.select_dir.name] = selection_set(args.select_dir, rep_cfg, cache)
        except OSError as exc:
            print(f"ecg-train: error: --select-dir {args.select_dir}: {exc}", file=sys.stderr)
            return 2
    seed_everything(args.seed)
    model: nn.Module = build_model(args.arch)
    init_weights(model, args.seed)
    if args.init.startswith("imagenet:"):
        if args.arch != "resnet18":
            print("ecg-train: error: --init imagenet: needs --arch resnet18", file=sys.stderr)
            return 2
        load_imagenet(model, args.init.split(":", 1)[1])  # type: ignore[arg-type]
    elif args.init.startswith("pretrained:"):
        # image layers from ecg-pretrain; the head is trained from scratch
        state = torch.load(args.init.split(":", 1)[1], map_location="cpu", weights_only=True)
        own = model.state_dict()
        picked = {k: v for k, v in state.items() if not k.startswith("head.") and k in own and own[k].shape == v.shape}
        if not picked:
            print(f"ecg-train: error: {args.init}: no layer fits the {args.arch} model", file=sys.stderr)
            return 2
        own.update(picked)
        model.load_state_dict(own)
    elif args.init != "scratch":
        print(f"ecg-train: error: --init {args.init!r}: use scratch, imagenet:PATH or pretrained:PATH", file=sys.stderr)
        return 2
    model, info = train(
        data,
        val,
        arch=args.arch,
        rep_cfg=rep_cfg,
        epochs=args.epochs,
        batch=args.batch,
        lr=args.lr,
        seed=args.seed,
        init=model,
        select=select,
        ema=args.ema,
    )
    variants = [] if args.no_robust else [v.name for v in VARIANTS if v.noise is None or noise_dir is not None]
    card = {
        "model": args.arch,
        "classes": list(CLASSES),
        "representation": asdict(rep_cfg),
        "context_features": {
            "width": N_CONTEXT,
            "names": list(CONTEXT_FEATURES),
            "meaning": "RR intervals against the stream's own running RR, then the beat against the stream's "
            "dominant beat (template learned from its first beats): QRS correlation, width and amplitude ratios, "
            "residual, atrial-part correlation, own QRS width (100 ms units), template learned",
        },
        "data": {
            "database": "mitdb",
            "train_records": train_recs,
            "validation_records": val_recs,
            "train_counts": data.counts(),
            "validation_counts": val.counts(),
            "beats": "detected by the monitor's own detector, labelled from the nearest .atr beat within 150 ms",
            "lead": 0,
            "robust_variants": variants,
            "robust": None
            if args.no_robust
            else "each training record also as the variants listed (engine/training/_augment.py: lead 1, polarity, "
            "gain + baseline wander, nstdb em/ma/bw noise at 12/6/0 dB, 128/250/500 Hz), each through the "
            f"monitor's detection path; all S/V/F/Q beats of a variant kept, N beats subsampled to {args.keep_n}",
            "noise": str(noise_dir) if noise_dir is not None and not args.no_robust else None,
        },
        "model_selection": {
            "score": "mean macro-F1 (N, S, V) over the DS1 validation patients"
            + (f" and {args.select_dir.name}" if select else ""),
            "databases": ["mitdb DS1 validation patients", *select],
            "selection_records": selection_records(args.select_dir) if select else [],
            "excluded": sorted(QTDB_DS2_EXCERPTS) if select else [],
            "note": "qtdb's sel1xx/sel2xx records are excerpts of mitdb records: those cut from DS2 records are "
            "excluded from model selection; those cut from DS1 records (sel114, sel116, sel223, sel230) "
            "overlap the training data"
            if select
            else None,
        },
        "split": "inter-patient: DS1 only (de Chazal); validation = DS1 patients held out; DS2 never read",
        "hyperparameters": {
            "epochs": args.epochs,
            "batch": args.batch,
            "lr": args.lr,
            "seed": args.seed,
            "optimizer": "AdamW(weight_decay=1e-3) + one-cycle",
            "ema": args.ema,
            "loss": "cross-entropy, 1/sqrt(freq)",
            "init": args.init,
            "patients_fraction": args.patients,
            "keep_n": None if args.no_robust else args.keep_n,
        },
        "metrics": info,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "train_seconds": round(time.time() - t0, 1),
        "command": "ecg-train " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    card = save(model, args.out, card)
    print(f"wrote {args.out} and {args.out.with_suffix('.json')} ({card['train_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
