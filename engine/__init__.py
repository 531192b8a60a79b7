"""Inference engine: turns batches of beats into beat labels.

The beat types load at once; the CNN parts (PyTorch) load on first use.
"""

from typing import TYPE_CHECKING, Any

from engine._types import (
    AAMI_OF_SYMBOL,
    AAMI_SYMBOLS,
    BEAT_SYMBOLS,
    CLASSES,
    Beat,
    BeatClassifier,
    LabeledBeat,
    UnclassifiedClassifier,
)

__all__ = [
    "AAMI_OF_SYMBOL",
    "AAMI_SYMBOLS",
    "BEAT_SYMBOLS",
    "CLASSES",
    "DEFAULT_WEIGHTS",
    "Beat",
    "BeatClassifier",
    "BeatNet",
    "CnnClassifier",
    "LabeledBeat",
    "RepresentationConfig",
    "Representer",
    "ResNet18Beat",
    "UnclassifiedClassifier",
    "default_classifier",
    "load_imagenet",
    "resample_windows",
    "rr_features",
]

_LAZY = {
    "BeatNet": "engine._model",
    "ResNet18Beat": "engine._model",
    "load_imagenet": "engine._model",
    "rr_features": "engine._model",
    "CnnClassifier": "engine._classifier",
    "DEFAULT_WEIGHTS": "engine._classifier",
    "default_classifier": "engine._classifier",
    "RepresentationConfig": "engine._representation",
    "Representer": "engine._representation",
    "resample_windows": "engine._representation",
}

if TYPE_CHECKING:
    from engine._classifier import DEFAULT_WEIGHTS, CnnClassifier, default_classifier
    from engine._model import BeatNet, ResNet18Beat, load_imagenet, rr_features
    from engine._representation import RepresentationConfig, Representer, resample_windows


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
