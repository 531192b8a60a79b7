"""``ecg-pretrain``: pretrain the CNN on synthetic ECG from neurokit2's ECGSYN.

Each synthetic record gets random generator settings: heart rate and its
variability, and the amplitudes and widths of the P, Q, R, S and T waves of
the ECGSYN model (McSharry et al. 2003), including wide, tall QRS complexes
like ventricular ectopics. The monitor's own detector finds the beats; the
network learns to regress the settings that generated each beat (heart rate,
R amplitude, QRS width, T amplitude, P amplitude) from the beat's image and
context features (RR and shape against the record's dominant beat). Only the
image layers (``features.*``) are kept for fine-tuning on DS1 (``ecg-train
--init pretrained:PATH``). No real record is read.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from engine import RepresentationConfig, Representer, build_model, context_features, init_weights, resample_windows
from monitor.cli import OptionParser, non_negative, positive

__all__ = ["main", "synthetic_beats"]


def _simulate(
    nk: object, seconds: float, fs: float, hr: float, hr_std: float, state: int, ai: np.ndarray, bi: np.ndarray
) -> np.ndarray:
    x = nk.ecg_simulate(  # type: ignore[attr-defined]
        duration=seconds,
        sampling_rate=int(fs),
        heart_rate=hr,
        heart_rate_std=hr_std,
        method="ecgsyn",
        random_state=state,
        ti=_TI,
        ai=tuple(ai),
        bi=tuple(bi),
    )
    return np.asarray(x)


_TI = (-70.0, -15.0, 0.0, 15.0, 100.0)
_AI = np.array([1.2, -5.0, 30.0, -7.5, 0.75])
_BI = np.array([0.25, 0.1, 0.1, 0.1, 0.4])


class _Timeout(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Interrupt the body after ``seconds`` (main thread only; elsewhere no limit)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise _Timeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def synthetic_beats(
    n_records: int, seconds: float, cfg: RepresentationConfig, seed: int, fs: float = 360.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows, context features and regression targets of beats from random ECGSYN records.

    ECGSYN's integrator can stall on some settings (wide QRS at high rates):
    a record that takes over 10 s is dropped and counted.
    """
    import neurokit2 as nk

    from monitor import StreamConfig, beats_of_signal

    rng = np.random.default_rng(seed)
    windows, rrs, targets = [], [], []
    dropped = 0
    for k in range(n_records):
        hr = float(rng.uniform(45, 150))
        ai = _AI * rng.uniform(0.6, 1.4, 5)
        bi = _BI * rng.uniform(0.7, 1.3, 5)
        if rng.random() < 0.25:  # wide, tall QRS: ventricular-looking beats, at most 110 bpm
            bi[1:4] *= rng.uniform(1.8, 3.0)
            ai[2] *= rng.uniform(1.0, 1.6)
            hr = min(hr, 110.0)
        hr_std = float(rng.uniform(0.5, 8))
        state = int(rng.integers(2**31))
        scale = float(rng.uniform(0.5, 2.0))
        try:
            with _time_limit(10.0):
                x = _simulate(nk, seconds, fs, hr, hr_std, state, ai, bi)
        except _Timeout:
            dropped += 1
            continue
        x = np.asarray(x, dtype=np.float32) * scale
        config = StreamConfig(window_pre_s=cfg.pre_s, window_post_s=cfg.post_s)
        beats = beats_of_signal(x, fs, config)[1:-1]  # edge beats have padded windows
        if not beats:
            continue
        windows.append(resample_windows([b.window for b in beats], [b.fs for b in beats], cfg))
        rrs.append(context_features(beats))
        target = [hr / 100.0, ai[2] / 30.0, bi[2] / 0.1, ai[4] / 0.75, ai[0] / 1.2]
        targets.append(np.tile(np.asarray(target, dtype=np.float32), (len(beats), 1)))
        if (k + 1) % 20 == 0:
            print(f"\rsynthetic records: {k + 1}/{n_records}", end="", file=sys.stderr, flush=True)
    print(f"\n{dropped} synthetic record(s) dropped (generator too slow)", file=sys.stderr)
    return np.concatenate(windows), np.concatenate(rrs), np.concatenate(targets)


def build_parser() -> OptionParser:
    p = OptionParser(
        prog="ecg-pretrain",
        description="Pretrain the CNN's image layers on synthetic ECG (neurokit2's ECGSYN); no real record is read.",
    )
    p.option("--out", type=Path, default=Path("engine/weights/synthetic.pt"), help="image-layer weights to write")
    p.option("--records", type=positive(int), default=400, help="synthetic records generated")
    p.option("--seconds", type=positive(float, "s"), default=30.0, help="length of each synthetic record")
    p.option("--epochs", type=positive(int), default=6, help="training epochs")
    p.option("--seed", type=non_negative(int), default=0, help="seed of the generator settings and the weights")
    p.option("--arch", choices=("beatnet", "resnet18"), default="beatnet", help="network")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.time()
    cfg = RepresentationConfig()
    windows, rr, target = synthetic_beats(args.records, args.seconds, cfg, args.seed)
    rep = Representer(cfg)
    images = torch.cat([torch.from_numpy(rep(windows[i : i + 4096])) for i in range(0, len(windows), 4096)])
    rr_t, y = torch.from_numpy(rr), torch.from_numpy(target)
    torch.manual_seed(args.seed)
    model = build_model(args.arch)
    init_weights(model, args.seed)
    reg = nn.Linear(model.embedding_size + rr.shape[1], y.shape[1])
    opt = torch.optim.AdamW([*model.parameters(), *reg.parameters()], lr=2e-3, weight_decay=1e-3)
    gen = torch.Generator().manual_seed(args.seed)
    history = []
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(y), generator=gen)
        total = 0.0
        for i in range(0, len(y), 256):
            idx = order[i : i + 256]
            pred = reg(torch.cat((model.embed(images[idx]), rr_t[idx]), dim=1))
            loss = nn.functional.mse_loss(pred, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        history.append(round(total / len(y), 5))
        print(f"epoch {epoch + 1}/{args.epochs}: mse {total / len(y):.5f}", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
    torch.save(state, args.out)
    card = {
        "task": "regress ECGSYN settings (HR, R amplitude, QRS width, T amplitude, P amplitude) per beat",
        "records": args.records,
        "seconds": args.seconds,
        "beats": len(y),
        "epochs": args.epochs,
        "seed": args.seed,
        "mse_per_epoch": history,
        "arch": args.arch,
        "seconds_taken": round(time.time() - t0, 1),
    }
    args.out.with_suffix(".json").write_text(json.dumps(card, indent=1))
    print(f"wrote {args.out} ({len(y)} synthetic beats, {card['seconds_taken']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
