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

from engine._model import CLASSES, build_model, rr_features
from engine._representation import RepresentationConfig, Representer
from engine._types import Beat, BeatClassifier, UnclassifiedClassifier

__all__ = ["DEFAULT_WEIGHTS", "CnnClassifier", "default_classifier"]

log = logging.getLogger(__name__)

DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "beatnet.pt"


class CnnClassifier:
    """Spectrogram (or scalogram) + RR context -> AAMI class, with a PyTorch CNN on the CPU."""

    name = "cnn"

    def __init__(
        self, model: torch.nn.Module, rep_cfg: RepresentationConfig, card: dict[str, Any] | None = None
    ) -> None:
        self.model = model.eval()
        self.rep = Representer(rep_cfg)
        self.card = card or {}

    @classmethod
    def load(cls, path: str | Path) -> CnnClassifier:
        """Weights file plus its model card (same name, ``.json``); the card's hash is checked."""
        path = Path(path)
        card_path = path.with_suffix(".json")
        try:
            card = json.loads(card_path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"model card {card_path} cannot be read: {exc}") from None
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if card.get("weights_sha256") != digest:
            raise ValueError(f"{path}: weights do not match the hash in {card_path.name}")
        model = build_model(card["model"])
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return cls(model, RepresentationConfig(**card["representation"]), card)

    def probabilities(self, beats: Sequence[Beat]) -> np.ndarray:
        if not beats:
            return np.empty((0, len(CLASSES)), dtype=np.float32)
        images = torch.from_numpy(self.rep.beats(beats))
        rr = torch.from_numpy(rr_features(beats))
        with torch.inference_mode():
            return torch.softmax(self.model(images, rr), dim=1).numpy()

    def classify(self, beats: Sequence[Beat]) -> list[str]:
        return [CLASSES[i] for i in self.probabilities(beats).argmax(axis=1)]


def default_classifier(path: str | Path | None = None) -> BeatClassifier:
    """The CNN at ``path``, else the shipped one; ``Q`` for every beat if none ships."""
    if path is not None:
        if not Path(path).is_file():
            raise FileNotFoundError(f"no weights file {path}")
        return CnnClassifier.load(path)
    if not DEFAULT_WEIGHTS.is_file():
        log.warning("no classifier weights at %s: every beat is labelled Q (unclassified)", DEFAULT_WEIGHTS)
        return UnclassifiedClassifier()
    return CnnClassifier.load(DEFAULT_WEIGHTS)
