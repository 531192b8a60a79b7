"""2-D CNNs over beat images, fused with rhythm context.

``BeatNet`` is the default, small enough for thousands of beats per second on
two CPU cores. ``ResNet18Beat`` follows torchvision's ResNet-18 parameter names
(``conv1``, ``bn1``, ``layer1.0.conv1``, ... ``fc``) so a torchvision checkpoint
file loads into it (:func:`load_imagenet`); its ``fc`` is left out, as the head
differs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from engine._types import CLASSES, Beat

__all__ = ["CLASSES", "N_RR", "BeatNet", "ResNet18Beat", "build_model", "load_imagenet", "rr_features"]

N_RR = 5


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


class _RRHead(nn.Module):
    """Image features + RR features -> class logits."""

    def __init__(self, image_features: int, n_classes: int) -> None:
        super().__init__()
        self.rr = nn.Sequential(nn.Linear(N_RR, 32), nn.ReLU(inplace=True))
        self.out = nn.Sequential(
            nn.Linear(image_features + 32, 64), nn.ReLU(inplace=True), nn.Dropout(0.2), nn.Linear(64, n_classes)
        )

    def forward(self, feats: Tensor, rr: Tensor) -> Tensor:
        return self.out(torch.cat((feats, self.rr(rr)), dim=1))


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class BeatNet(nn.Module):
    """Default model: four 3x3 conv layers over the image, global pooling, RR fusion."""

    def __init__(self, n_classes: int = len(CLASSES), width: int = 16) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _conv(1, w), _conv(w, 2 * w, 2), _conv(2 * w, 4 * w, 2), _conv(4 * w, 4 * w), nn.AdaptiveAvgPool2d(1)
        )
        self.head = _RRHead(4 * w, n_classes)
        self.embedding_size = 4 * w

    def embed(self, image: Tensor) -> Tensor:
        return torch.flatten(self.features(image), 1)

    def forward(self, image: Tensor, rr: Tensor) -> Tensor:
        return self.head(self.embed(image), rr)


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
    """ResNet-18 (torchvision layout and names) over the image, RR fusion head.

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
        self.head = _RRHead(512, n_classes)
        self.embedding_size = 512

    def embed(self, image: Tensor) -> Tensor:
        x = nn.functional.interpolate(image, size=(self.size, self.size), mode="bilinear", align_corners=False)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, image: Tensor, rr: Tensor) -> Tensor:
        return self.head(self.embed(image), rr)


def build_model(arch: str) -> BeatNet | ResNet18Beat:
    if arch == "beatnet":
        return BeatNet()
    if arch == "resnet18":
        return ResNet18Beat()
    raise ValueError(f"arch must be 'beatnet' or 'resnet18', got {arch!r}")


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
