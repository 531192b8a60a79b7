"""The CNN beat classifier the monitor uses, and the weights that ship with it."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine._backends import make_backend
from engine._model import CLASSES, N_CONTEXT, ModelInputError, build_model, context_features, load_state
from engine._representation import RepresentationConfig, resample_windows
from engine._types import Beat, BeatClassifier, UnclassifiedClassifier

__all__ = ["DEFAULT_WEIGHTS", "CnnClassifier", "default_classifier"]

log = logging.getLogger(__name__)

DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "beatnet.pt"


class CnnClassifier:
    """Spectrogram (or scalogram) + context (rhythm and shape against the patient) -> AAMI class.

    Runs on a named backend (see ``engine._backends``).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        rep_cfg: RepresentationConfig,
        card: dict[str, Any] | None = None,
        backend: str = "cpu",
        threads: int = 0,
    ) -> None:
        self.rep_cfg = rep_cfg
        self.card = card or {}
        self.backend = make_backend(backend, model, rep_cfg, threads)
        self.name = f"cnn/{self.backend.name}"

    @classmethod
    def load(cls, path: str | Path, backend: str = "cpu", threads: int = 0) -> CnnClassifier:
        """Weights file plus its model card (same name, ``.json``); the card's hash is checked.

        Raises ValueError (:class:`engine.ModelInputError` for weights of another
        input width, e.g. an older model trained on RR features alone) with a
        message naming the file.
        """
        path = Path(path)
        card_path = path.with_suffix(".json")
        try:
            card = json.loads(card_path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"model card {card_path} cannot be read: {exc}") from None
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if card.get("weights_sha256") != digest:
            raise ValueError(f"{path}: weights do not match the hash in {card_path.name}")
        context = card.get("context_features") if isinstance(card, dict) else None
        width = context.get("width") if isinstance(context, dict) else None
        if width is None:
            raise ModelInputError(
                f"{path}: its card names no context features: an older model that took RR features alone; "
                f"this engine's model takes {N_CONTEXT} context features: retrain with ecg-train"
            )
        if width != N_CONTEXT:
            raise ModelInputError(
                f"{path}: trained for {width} context features; this engine's model takes {N_CONTEXT}"
            )
        try:
            model = build_model(card["model"])
            rep_cfg = RepresentationConfig(**card["representation"])
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (KeyError, TypeError, RuntimeError, EOFError, OSError) as exc:
            raise ValueError(f"{path}: cannot be loaded with its card {card_path.name}: {exc}") from None
        load_state(model, state, str(path))
        return cls(model, rep_cfg, card, backend, threads)

    def inputs(self, beats: Sequence[Beat]) -> tuple[np.ndarray, np.ndarray]:
        """What the backend takes: windows at the representation rate, and context features."""
        windows = resample_windows([b.window for b in beats], [b.fs for b in beats], self.rep_cfg)
        return windows, context_features(beats)

    def probabilities(self, beats: Sequence[Beat]) -> np.ndarray:
        if not beats:
            return np.empty((0, len(CLASSES)), dtype=np.float32)
        return self.backend.infer(*self.inputs(beats))

    def classify(self, beats: Sequence[Beat]) -> list[str]:
        return [CLASSES[i] for i in self.probabilities(beats).argmax(axis=1)]


def default_classifier(path: str | Path | None = None, backend: str = "cpu", threads: int = 0) -> BeatClassifier:
    """The CNN at ``path``, else the shipped one; ``Q`` for every beat if none ships."""
    if path is not None:
        if not Path(path).is_file():
            raise FileNotFoundError(f"no weights file {path}")
        return CnnClassifier.load(path, backend, threads)
    if not DEFAULT_WEIGHTS.is_file():
        log.warning("no classifier weights at %s: every beat is labelled Q (unclassified)", DEFAULT_WEIGHTS)
        return UnclassifiedClassifier()
    return CnnClassifier.load(DEFAULT_WEIGHTS, backend, threads)
