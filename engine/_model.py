"""2-D CNNs over beat images, fused with the beat's context in its own patient.

``BeatNet`` is the default, small enough for thousands of beats per second on
two CPU cores. ``ResNet18Beat`` follows torchvision's ResNet-18 parameter names
(``conv1``, ``bn1``, ``layer1.0.conv1``, ... ``fc``) so a torchvision checkpoint
file loads into it (:func:`load_imagenet`); its ``fc`` is left out, as the head
differs.

The head fuses the image features with :func:`context_features`: the beat's
rhythm (RR intervals against the stream's own running RR) and its shape against
the stream's dominant beat (:class:`engine.BeatShape`). Both are relative to the
patient, which is what carries over to leads, rates and people never seen in
training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from engine._template import N_SHAPE, BeatShape
from engine._types import CLASSES, Beat

__all__ = [
    "CLASSES",
    "CONTEXT_FEATURES",
    "N_CONTEXT",
    "N_RR",
    "BeatNet",
    "ModelInputError",
    "ResNet18Beat",
    "build_model",
    "context_features",
    "load_imagenet",
    "load_state",
    "rr_features",
]

N_RR = 5
#: Names of the context columns the head takes, in order: rhythm, then shape against the dominant beat.
CONTEXT_FEATURES: tuple[str, ...] = (
    "rr_prev/rr_local",
    "rr_next/rr_local",
    "rr_prev/rr_mean",
    "rr_next/rr_prev",
    "rr_prev_s",
    "qrs_corr",
    "width_ratio",
    "amp_ratio",
    "residual",
    "p_corr",
    "width_100ms",
    "template_learned",
)
N_CONTEXT = N_RR + N_SHAPE
_NEUTRAL_SHAPE = BeatShape()


def rr_features(beats: Sequence[Beat]) -> NDArray[np.float32]:
    """Rhythm context per beat: RR before and after, normalised by the recent and running means.

    Columns: rr_prev/rr_local, rr_next/rr_local, rr_prev/rr_mean, rr_next/rr_prev,
    rr_prev in seconds. A missing interval counts as the mean (ratio 1).
    """
    out = np.ones((len(beats), N_RR), dtype=np.float32)
    for i, b in enumerate(beats):
        local = b.rr_local or b.rr_mean or b.rr_prev or 1.0
        mean = b.rr_mean or local
        prev = b.rr_prev if b.rr_prev is not None else local
        nxt = b.rr_next if b.rr_next is not None else local
        out[i] = (prev / local, nxt / local, prev / mean, nxt / prev, prev)
    return np.clip(out, 0.0, 5.0)


def shape_features(beats: Sequence[Beat]) -> NDArray[np.float32]:
    """Each beat against its stream's dominant beat (:class:`engine.BeatShape`), scaled to about 0..1.

    A beat with no shape measured counts as the neutral shape (like the
    dominant beat, template not learned). QRS width is in units of 100 ms.
    """
    out = np.empty((len(beats), N_SHAPE), dtype=np.float32)
    for i, b in enumerate(beats):
        out[i] = (b.shape or _NEUTRAL_SHAPE).as_array()
    out[:, 5] *= 10.0  # width_s -> width in 100 ms
    out[:, 0] = np.clip(out[:, 0], -1.0, 1.0)
    out[:, 4] = np.clip(out[:, 4], -1.0, 1.0)
    out[:, 1:4] = np.clip(out[:, 1:4], 0.0, 5.0)
    out[:, 5] = np.clip(out[:, 5], 0.0, 5.0)
    return np.nan_to_num(out, nan=0.0, posinf=5.0, neginf=-1.0)


def context_features(beats: Sequence[Beat]) -> NDArray[np.float32]:
    """What the head takes beside the image, (B, :data:`N_CONTEXT`): :func:`rr_features` then :func:`shape_features`.

    Column names: :data:`CONTEXT_FEATURES`.
    """
    return np.concatenate((rr_features(beats), shape_features(beats)), axis=1)


class ModelInputError(ValueError):
    """A weights file that does not fit this engine's model (an older input width, another architecture)."""


class _ContextHead(nn.Module):
    """Image features + context features (rhythm and shape against the patient's own beats) -> class logits."""

    def __init__(self, image_features: int, n_classes: int) -> None:
        super().__init__()
        self.context = nn.Sequential(nn.Linear(N_CONTEXT, 32), nn.ReLU(inplace=True))
        self.out = nn.Sequential(
            nn.Linear(image_features + 32, 64), nn.ReLU(inplace=True), nn.Dropout(0.2), nn.Linear(64, n_classes)
        )

    def forward(self, feats: Tensor, context: Tensor) -> Tensor:
        return self.out(torch.cat((feats, self.context(context)), dim=1))


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class BeatNet(nn.Module):
    """Default model: four 3x3 conv layers over the image, global pooling, context fusion."""

    def __init__(self, n_classes: int = len(CLASSES), width: int = 16) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _conv(1, w), _conv(w, 2 * w, 2), _conv(2 * w, 4 * w, 2), _conv(4 * w, 4 * w), nn.AdaptiveAvgPool2d(1)
        )
        self.head = _ContextHead(4 * w, n_classes)
        self.embedding_size = 4 * w

    def embed(self, image: Tensor) -> Tensor:
        return torch.flatten(self.features(image), 1)

    def forward(self, image: Tensor, context: Tensor) -> Tensor:
        return self.head(self.embed(image), context)


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18Beat(nn.Module):
    """ResNet-18 (torchvision layout and names) over the image, context fusion head.

    The image is resized to ``size`` x ``size`` first; ``conv1`` takes one
    channel (ImageNet's three are summed when loading).
    """

    def __init__(self, n_classes: int = len(CLASSES), size: int = 64) -> None:
        super().__init__()
        self.size = size
        self.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        chans = [(64, 64, 1), (64, 128, 2), (128, 256, 2), (256, 512, 2)]
        for i, (cin, cout, stride) in enumerate(chans, start=1):
            setattr(self, f"layer{i}", nn.Sequential(_BasicBlock(cin, cout, stride), _BasicBlock(cout, cout, 1)))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.head = _ContextHead(512, n_classes)
        self.embedding_size = 512

    def embed(self, image: Tensor) -> Tensor:
        x = nn.functional.interpolate(image, size=(self.size, self.size), mode="bilinear", align_corners=False)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, image: Tensor, context: Tensor) -> Tensor:
        return self.head(self.embed(image), context)


def build_model(arch: str) -> BeatNet | ResNet18Beat:
    if arch == "beatnet":
        return BeatNet()
    if arch == "resnet18":
        return ResNet18Beat()
    raise ValueError(f"arch must be 'beatnet' or 'resnet18', got {arch!r}")


def load_state(model: nn.Module, state: object, source: str) -> None:
    """Load a classifier's weights into ``model``; a file that does not fit raises :class:`ModelInputError`.

    Weights of the older head that took only the five RR features
    (``head.rr.*``) are named as such, so the message says to retrain rather
    than showing a shape mismatch.
    """
    if not isinstance(state, dict):
        raise ModelInputError(f"{source}: not a weights file (state dict)")
    if any(str(k).startswith("head.rr.") for k in state):
        raise ModelInputError(
            f"{source}: these weights were trained for {N_RR} RR inputs; this engine's model takes {N_CONTEXT} "
            "context features (RR and shape against the patient's dominant beat): retrain with ecg-train"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise ModelInputError(f"{source}: weights do not fit the model: {' '.join(first[:3])}") from None


def load_imagenet(model: ResNet18Beat, path: str | Path) -> list[str]:
    """Load a torchvision ResNet-18 checkpoint file (state dict) into ``model``.

    ``conv1`` weights are summed over the RGB channels (one-channel images);
    ``fc`` is skipped. Returns the names loaded. Raises ValueError when the file
    is not a ResNet-18 state dict.
    """
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict) or "conv1.weight" not in state or "layer4.1.bn2.running_var" not in state:
        raise ValueError(f"{path}: not a torchvision ResNet-18 state dict")
    own = model.state_dict()
    loaded = []
    for name, tensor in state.items():
        if name.startswith("fc."):
            continue
        if name == "conv1.weight" and tensor.shape[1] == 3:
            tensor = tensor.sum(dim=1, keepdim=True)
        if name not in own or own[name].shape != tensor.shape:
            raise ValueError(f"{path}: parameter {name} of shape {tuple(tensor.shape)} does not fit ResNet-18")
        own[name] = tensor
        loaded.append(name)
    model.load_state_dict(own)
    return loaded


def init_weights(model: nn.Module, seed: int) -> None:
    torch.manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.uniform_(m.weight, -1 / math.sqrt(m.in_features), 1 / math.sqrt(m.in_features))
            nn.init.zeros_(m.bias)
