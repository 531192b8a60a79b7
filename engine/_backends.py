"""Inference backends: where images are made and the CNN runs.

``cpu``: NumPy/SciPy images, PyTorch on the CPU. ``cuda``: windows go to the
GPU once, CuPy makes the images on PyTorch's current CUDA stream and hands them
over through DLPack (no copy), eager PyTorch. ``compiled``: as ``cuda`` with
``torch.compile`` (CUDA graphs), batches padded to a few fixed sizes so the
graphs are recorded once. ``tensorrt``: as ``cuda`` with a Torch-TensorRT
program (dynamo IR, dynamic batch, FP16 by casting), cached on disk keyed by
the Torch-TensorRT and TensorRT versions, the GPU's compute capability and the
model's hash.

``compiled-cpu``: as ``cpu`` with ``torch.compile`` (inductor's C++ kernels;
needs a C++ compiler), batches padded to the same fixed sizes; never chosen by
``auto`` (compiling takes tens of seconds at start), asked for by name.

``make_backend("auto")`` takes the first present of :data:`AUTO_ORDER`:
``tensorrt``, ``cuda``, ``cpu``. ``compiled`` is asked for by name: on an H200
it did not beat ``cuda`` where batches are large (0.80-0.97x at 256-1,024
beats, both about 2 ms a batch: launch-bound) and its batches stalled up to a
second when the batcher's first sizes came after other GPU work, so 20% of
beats missed a 50 ms budget that ``cuda`` met for 99.97%
(``benchmarks/results/engine_gpu.json``).
Asking for one that is not present falls back, with a warning, to ``cuda``
and then ``cpu``. GPU libraries are imported only when a GPU backend is built.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from engine._model import N_CONTEXT
from engine._representation import RepresentationConfig, Representer, import_cupy_signal

__all__ = ["AUTO_ORDER", "BACKENDS", "EXTRA_BACKENDS", "Backend", "discover", "make_backend"]

log = logging.getLogger(__name__)

BACKENDS = ("tensorrt", "compiled", "cuda", "cpu")
#: What ``auto`` tries, in order.
AUTO_ORDER = ("tensorrt", "cuda", "cpu")
#: Backends only built when asked for by name (``auto`` never picks them).
EXTRA_BACKENDS = ("compiled-cpu",)
BUCKETS = (16, 64, 256, 1024)


class Backend:
    """CPU backend; the base of the GPU ones. ``infer`` returns class probabilities."""

    name = "cpu"

    def __init__(self, model: torch.nn.Module, rep_cfg: RepresentationConfig, threads: int = 0) -> None:
        if threads:
            torch.set_num_threads(threads)
        self.model = model.eval()
        self.rep = Representer(rep_cfg)

    def infer(self, windows: NDArray[np.float32], context: NDArray[np.float32]) -> NDArray[np.float32]:
        """windows (B, n_samples) at the representation rate, context (B, N_CONTEXT) -> probabilities (B, classes)."""
        if len(windows) == 0:
            return np.empty((0, 5), dtype=np.float32)
        with torch.inference_mode():
            logits = self.model(torch.from_numpy(self.rep(windows)), torch.from_numpy(context))
            return torch.softmax(logits, dim=1).numpy()


class CudaBackend(Backend):
    name = "cuda"

    def __init__(self, model: torch.nn.Module, rep_cfg: RepresentationConfig, threads: int = 0) -> None:
        import cupy

        self.cupy = cupy
        # float32 means float32 (no TF32 convolutions or products): the labels must be the CPU backend's
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        self.device = torch.device("cuda")
        self.model = model.to(self.device).eval()
        self.rep = Representer(rep_cfg, device="cuda")

    def _forward(self, images: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.model(images, context)

    def infer(self, windows: NDArray[np.float32], context: NDArray[np.float32]) -> NDArray[np.float32]:
        if len(windows) == 0:
            return np.empty((0, 5), dtype=np.float32)
        with _cupy_stream(self.cupy, torch.cuda.current_stream().cuda_stream), torch.inference_mode():
            images = torch.from_dlpack(self.rep(self.cupy.asarray(windows)))  # made on the GPU, no copy
            ctx_t = torch.from_numpy(context).to(self.device, non_blocking=True)
            probs = torch.softmax(self._forward(images, ctx_t).float(), dim=1)
            return probs.cpu().numpy()


class _StreamRef:
    """A raw CUDA stream handle in the CUDA stream protocol (``__cuda_stream__``)."""

    def __init__(self, ptr: int) -> None:
        self.ptr = ptr

    def __cuda_stream__(self) -> tuple[int, int]:
        return (0, self.ptr)


def _cupy_stream(cupy: Any, ptr: int) -> Any:
    """CuPy's handle on PyTorch's stream ``ptr``, so the images are made in order with the CNN."""
    from_external = getattr(cupy.cuda.Stream, "from_external", None)
    if from_external is not None:
        try:
            return from_external(_StreamRef(ptr))
        except (TypeError, ValueError, AttributeError):
            pass
    with warnings.catch_warnings():  # the older interface, deprecated where the protocol exists
        warnings.simplefilter("ignore", DeprecationWarning)
        return cupy.cuda.ExternalStream(ptr)


def _pad(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[0] == size:
        return x
    pad = torch.zeros((size - x.shape[0], *x.shape[1:]), dtype=x.dtype, device=x.device)
    return torch.cat((x, pad))


class CompiledCpuBackend(Backend):
    """``torch.compile`` on the CPU (inductor): batches padded to :data:`BUCKETS`, each size compiled once."""

    name = "compiled-cpu"

    def __init__(self, model: torch.nn.Module, rep_cfg: RepresentationConfig, threads: int = 0) -> None:
        super().__init__(model, rep_cfg, threads)
        self.compiled = torch.compile(self.model, dynamic=False)

    def infer(self, windows: NDArray[np.float32], context: NDArray[np.float32]) -> NDArray[np.float32]:
        n = len(windows)
        if n == 0:
            return np.empty((0, 5), dtype=np.float32)
        images = torch.from_numpy(self.rep(windows))
        ctx = torch.from_numpy(context)
        out = []
        with torch.inference_mode():
            for start in range(0, n, BUCKETS[-1]):
                part = slice(start, min(start + BUCKETS[-1], n))
                size = next(b for b in BUCKETS if b >= part.stop - part.start)
                logits = self.compiled(_pad(images[part], size), _pad(ctx[part], size))
                out.append(torch.softmax(logits[: part.stop - part.start], dim=1))
        return torch.cat(out).numpy()


class CompiledBackend(CudaBackend):
    name = "compiled"

    def __init__(self, model: torch.nn.Module, rep_cfg: RepresentationConfig, threads: int = 0) -> None:
        super().__init__(model, rep_cfg)
        self.compiled = torch.compile(self.model, mode="reduce-overhead", dynamic=False)

    def _forward(self, images: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        n = images.shape[0]
        out = []
        for start in range(0, n, BUCKETS[-1]):
            part = slice(start, min(start + BUCKETS[-1], n))
            size = next(b for b in BUCKETS if b >= part.stop - part.start)
            logits = self.compiled(_pad(images[part], size), _pad(context[part], size))
            out.append(logits[: part.stop - part.start].clone())
        return torch.cat(out)


class TensorRTBackend(CudaBackend):
    name = "tensorrt"

    def __init__(
        self, model: torch.nn.Module, rep_cfg: RepresentationConfig, threads: int = 0, cache_dir: Path | None = None
    ) -> None:
        import torch_tensorrt

        super().__init__(model, rep_cfg)
        self.model = self.model.half()
        shape = rep_cfg.image_shape
        example = [
            torch.zeros(64, 1, *shape, dtype=torch.half, device="cuda"),
            torch.zeros(64, N_CONTEXT, dtype=torch.half, device="cuda"),
        ]
        cache = (cache_dir or _cache_dir()) / f"{self._key(torch_tensorrt, rep_cfg)}.ep"
        if cache.is_file():
            self.program = torch_tensorrt.load(str(cache)).module()
            log.info("loaded TensorRT program %s", cache)
        else:
            inputs = [
                torch_tensorrt.Input(
                    min_shape=(1, 1, *shape),
                    opt_shape=(256, 1, *shape),
                    max_shape=(BUCKETS[-1], 1, *shape),
                    dtype=torch.half,
                ),
                torch_tensorrt.Input(
                    min_shape=(1, N_CONTEXT),
                    opt_shape=(256, N_CONTEXT),
                    max_shape=(BUCKETS[-1], N_CONTEXT),
                    dtype=torch.half,
                ),
            ]
            self.program = torch_tensorrt.compile(self.model, ir="dynamo", inputs=inputs)
            cache.parent.mkdir(parents=True, exist_ok=True)
            torch_tensorrt.save(self.program, str(cache), arg_inputs=example)
            log.info("compiled TensorRT program, cached at %s", cache)

    def _key(self, trt_mod: Any, rep_cfg: RepresentationConfig) -> str:
        import tensorrt

        buf = io.BytesIO()
        torch.save(self.model.state_dict(), buf)
        cap = torch.cuda.get_device_capability()
        parts = [
            trt_mod.__version__,
            tensorrt.__version__,
            f"sm{cap[0]}{cap[1]}",
            repr(rep_cfg),
            hashlib.sha256(buf.getvalue()).hexdigest()[:16],
        ]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]

    def _forward(self, images: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        out = []
        for start in range(0, images.shape[0], BUCKETS[-1]):
            part = slice(start, start + BUCKETS[-1])
            out.append(self.program(images[part].half(), context[part].half()))
        return torch.cat(out)


def _cache_dir() -> Path:
    """``$XDG_CACHE_HOME/ecg-monitor/tensorrt`` (default ``~/.cache/ecg-monitor/tensorrt``): the per-user cache."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ecg-monitor" / "tensorrt"


def _cpp_compiler() -> str:
    import shutil

    return "available" if shutil.which("g++") or shutil.which("c++") else "no C++ compiler (g++) for inductor"


def discover() -> dict[str, str]:
    """Each backend -> 'available', or why not (the backends of ``auto``; :data:`EXTRA_BACKENDS` too)."""
    found = {"cpu": "available", "compiled-cpu": _cpp_compiler()}
    if not torch.cuda.is_available():
        why = "no CUDA device visible to PyTorch"
        return {"tensorrt": why, "compiled": why, "cuda": why, **found}
    try:
        import cupy

        cuda = "available" if cupy.cuda.is_available() else "CuPy sees no GPU"
        import_cupy_signal()  # raises without cuBLAS/cuFFT
    except Exception as exc:
        cuda = f"CuPy unusable: {type(exc).__name__}: {exc}"
    found["cuda"] = cuda
    found["compiled"] = cuda
    try:
        import torch_tensorrt  # noqa: F401

        found["tensorrt"] = cuda
    except Exception as exc:
        found["tensorrt"] = f"torch_tensorrt unusable: {type(exc).__name__}: {exc}"
    return {name: found[name] for name in (*BACKENDS, *EXTRA_BACKENDS)}


_CLASSES: dict[str, type[Backend]] = {
    "cpu": Backend,
    "cuda": CudaBackend,
    "compiled": CompiledBackend,
    "tensorrt": TensorRTBackend,
    "compiled-cpu": CompiledCpuBackend,
}


def make_backend(name: str, model: torch.nn.Module, rep_cfg: RepresentationConfig, threads: int = 0) -> Backend:
    """Build the named backend (``auto``: the first present of :data:`AUTO_ORDER`); fall back, with a warning."""
    if name != "auto" and name not in _CLASSES:
        raise ValueError(f"--backend must be auto, {', '.join((*BACKENDS, *EXTRA_BACKENDS))}; got {name!r}")
    found = discover()
    if name == "auto":
        order = list(AUTO_ORDER)
    elif name in EXTRA_BACKENDS:
        order = [name, "cpu"]
    else:
        order = [name, *(b for b in AUTO_ORDER if BACKENDS.index(b) > BACKENDS.index(name))]
    for candidate in order:
        if found[candidate] != "available":
            if candidate == name:
                log.warning("backend %r not available (%s); falling back", name, found[candidate])
            continue
        try:
            return _CLASSES[candidate](model, rep_cfg, threads)
        except Exception as exc:  # a GPU library that imports but fails to build
            log.warning("backend %r failed to start (%s: %s); falling back", candidate, type(exc).__name__, exc)
    raise RuntimeError("no inference backend could be started")
