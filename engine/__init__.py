"""Inference engine: turns batches of beats into beat labels.

The beat types, errors and batcher load at once; the CNN parts (PyTorch), the
ZeroMQ service and the supervisor load on first use. The engine imports
nothing from the monitor or the replayer.
"""

from typing import TYPE_CHECKING, Any

from engine._batcher import Batcher, BatcherConfig, BatcherStats, ServiceTimeModel
from engine._errors import EngineConfigError, EngineError, EngineUnavailable, require_positive
from engine._template import N_SHAPE, SHAPE_FEATURES, BeatShape, TemplateConfig, TemplateTracker
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
    "BACKENDS",
    "BEAT_SYMBOLS",
    "CLASSES",
    "CONTEXT_FEATURES",
    "DEFAULT_WEIGHTS",
    "EXTRA_BACKENDS",
    "N_CONTEXT",
    "N_RR",
    "N_SHAPE",
    "SHAPE_FEATURES",
    "Backend",
    "Batcher",
    "BatcherConfig",
    "BatcherStats",
    "Beat",
    "BeatClassifier",
    "BeatNet",
    "BeatShape",
    "CnnClassifier",
    "EngineConfigError",
    "EngineError",
    "EngineResult",
    "EngineServer",
    "EngineSupervisor",
    "EngineUnavailable",
    "EngineWorker",
    "FallbackClassifier",
    "LabeledBeat",
    "ModelInputError",
    "RemoteClassifier",
    "RepresentationConfig",
    "Representer",
    "ResNet18Beat",
    "ServiceTimeModel",
    "TemplateConfig",
    "TemplateTracker",
    "UnclassifiedClassifier",
    "WorkerResult",
    "build_model",
    "context_features",
    "default_classifier",
    "discover",
    "init_weights",
    "load_imagenet",
    "load_state",
    "make_backend",
    "require_positive",
    "resample_windows",
    "rr_features",
]

_LAZY = {
    "BeatNet": "engine._model",
    "ResNet18Beat": "engine._model",
    "build_model": "engine._model",
    "init_weights": "engine._model",
    "load_imagenet": "engine._model",
    "rr_features": "engine._model",
    "context_features": "engine._model",
    "load_state": "engine._model",
    "ModelInputError": "engine._model",
    "N_CONTEXT": "engine._model",
    "N_RR": "engine._model",
    "CONTEXT_FEATURES": "engine._model",
    "CnnClassifier": "engine._classifier",
    "DEFAULT_WEIGHTS": "engine._classifier",
    "default_classifier": "engine._classifier",
    "RepresentationConfig": "engine._representation",
    "Representer": "engine._representation",
    "resample_windows": "engine._representation",
    "BACKENDS": "engine._backends",
    "EXTRA_BACKENDS": "engine._backends",
    "Backend": "engine._backends",
    "discover": "engine._backends",
    "make_backend": "engine._backends",
    "EngineServer": "engine._service",
    "FallbackClassifier": "engine._fallback",
    "RemoteClassifier": "engine._service",
    "EngineResult": "engine._supervisor",
    "EngineSupervisor": "engine._supervisor",
    "EngineWorker": "engine._supervisor",
    "WorkerResult": "engine._supervisor",
}

if TYPE_CHECKING:
    from engine._backends import BACKENDS, EXTRA_BACKENDS, Backend, discover, make_backend
    from engine._classifier import DEFAULT_WEIGHTS, CnnClassifier, default_classifier
    from engine._fallback import FallbackClassifier
    from engine._model import (
        CONTEXT_FEATURES,
        N_CONTEXT,
        N_RR,
        BeatNet,
        ModelInputError,
        ResNet18Beat,
        build_model,
        context_features,
        init_weights,
        load_imagenet,
        load_state,
        rr_features,
    )
    from engine._representation import RepresentationConfig, Representer, resample_windows
    from engine._service import EngineServer, RemoteClassifier
    from engine._supervisor import EngineResult, EngineSupervisor, EngineWorker, WorkerResult


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
