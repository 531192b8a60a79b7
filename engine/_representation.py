"""Beat windows to time-frequency images: STFT log-spectrograms or CWT scalograms.

One code path serves NumPy/SciPy on a CPU and CuPy on a GPU: the array module
(``xp``) and the signal module (``scipy.signal`` or ``cupyx.scipy.signal``) are
swapped, nothing else. CuPy is imported only when a GPU representation is asked
for.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy import signal as sp_signal

__all__ = ["RepresentationConfig", "Representer", "resample_windows"]


@dataclass(frozen=True)
class RepresentationConfig:
    """How a beat becomes an image. Times in seconds around the R peak."""

    kind: Literal["stft", "cwt"] = "stft"
    fs: float = 128.0  # internal rate every window is resampled to
    pre_s: float = 0.35
    post_s: float = 0.45
    nperseg: int = 32  # STFT segment (0.25 s at 128 Hz)
    hop: int = 4  # STFT hop
    cwt_scales: int = 24  # CWT: Morlet wavelets from 2 to 40 Hz, log-spaced
    cwt_hop: int = 4

    @property
    def n_samples(self) -> int:
        return round((self.pre_s + self.post_s) * self.fs)

    @property
    def image_shape(self) -> tuple[int, int]:
        n = self.n_samples
        if self.kind == "stft":
            frames = (n - self.nperseg) // self.hop + 1
            return (self.nperseg // 2 + 1, frames)
        return (self.cwt_scales, (n + self.cwt_hop - 1) // self.cwt_hop)


def resample_windows(
    windows: Sequence[NDArray[np.floating]], fs: Sequence[float], cfg: RepresentationConfig
) -> NDArray[np.float32]:
    """Resample each beat window to ``cfg.fs`` and cut it to ``cfg.n_samples``.

    Windows are expected to start ``cfg.pre_s`` before the R peak; windows of the
    same rate and length are resampled together (``resample_poly``).
    """
    out = np.zeros((len(windows), cfg.n_samples), dtype=np.float32)
    groups: dict[tuple[float, int], list[int]] = {}
    for i, (w, f) in enumerate(zip(windows, fs, strict=True)):
        groups.setdefault((float(f), len(w)), []).append(i)
    for (f, _), idx in groups.items():
        block = np.stack([np.asarray(windows[i], dtype=np.float64) for i in idx])
        if abs(f - cfg.fs) > 1e-9:
            up, down = _ratio(f, cfg.fs)
            block = sp_signal.resample_poly(block, up, down, axis=1)
        n = min(block.shape[1], cfg.n_samples)
        out[idx, :n] = block[:, :n]
        if n < cfg.n_samples:
            out[idx, n:] = block[:, n - 1 : n]
    return out


@lru_cache(maxsize=64)
def _ratio(src: float, dst: float) -> tuple[int, int]:
    from fractions import Fraction

    frac = Fraction(dst / src).limit_denominator(1000)
    return frac.numerator, frac.denominator


class Representer:
    """Batches of beat windows (B, n_samples at ``cfg.fs``) to images (B, 1, F, T).

    Each window is centred on its median and scaled by its largest deviation,
    so amplitude and baseline do not matter; the image is the log magnitude.
    ``device="cuda"`` computes with CuPy and returns a CuPy array.
    """

    def __init__(self, cfg: RepresentationConfig | None = None, device: str = "cpu") -> None:
        self.cfg = cfg or RepresentationConfig()
        self.device = device
        self.xp, self.sig = _modules(device)
        self._wavelets: Any = None

    def __call__(self, x: Any) -> Any:
        xp = self.xp
        x = xp.asarray(x, dtype=xp.float32)
        x = x - xp.median(x, axis=1, keepdims=True)
        scale = xp.max(xp.abs(x), axis=1, keepdims=True)
        x = x / xp.maximum(scale, 1e-3)
        img = self._stft(x) if self.cfg.kind == "stft" else self._cwt(x)
        return xp.log(img + 1e-3).astype(xp.float32)[:, None, :, :]

    def _stft(self, x: Any) -> Any:
        cfg = self.cfg
        _, _, z = self.sig.stft(
            x,
            fs=cfg.fs,
            window="hann",
            nperseg=cfg.nperseg,
            noverlap=cfg.nperseg - cfg.hop,
            boundary=None,
            padded=False,
            axis=-1,
        )
        return self.xp.abs(z)

    def _cwt(self, x: Any) -> Any:
        xp = self.xp
        cfg = self.cfg
        n = x.shape[1]
        if self._wavelets is None:
            self._wavelets = xp.asarray(_morlet_bank(cfg, n))
        spec = xp.fft.fft(x, n=2 * n, axis=1)  # (B, 2n)
        conv = xp.fft.ifft(spec[:, None, :] * self._wavelets[None, :, :], n=2 * n, axis=2)
        half = n // 2
        return xp.abs(conv[:, :, half : half + n : cfg.cwt_hop])


def _morlet_bank(cfg: RepresentationConfig, n: int) -> NDArray[np.complex64]:
    """Frequency responses (S, 2n) of complex Morlet wavelets (w0 = 6), unit energy, centred at n // 2."""
    freqs = np.geomspace(2.0, min(40.0, 0.45 * cfg.fs), cfg.cwt_scales)
    w0 = 6.0
    t = (np.arange(n) - n // 2) / cfg.fs
    bank = np.empty((cfg.cwt_scales, 2 * n), dtype=np.complex64)
    for i, f in enumerate(freqs):
        s = w0 / (2 * math.pi * f)
        wave = np.exp(1j * w0 * t / s) * np.exp(-0.5 * (t / s) ** 2)
        wave /= np.sqrt(np.sum(np.abs(wave) ** 2))
        bank[i] = np.fft.fft(wave, n=2 * n)
    return bank


def import_cupy_signal() -> ModuleType:
    """``cupyx.scipy.signal``, without the warning its import gives (its JIT kernels are marked experimental)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"cupyx\.jit\.rawkernel is experimental", category=FutureWarning)
        import cupyx.scipy.signal as cu_signal
    return cu_signal


def _modules(device: str) -> tuple[ModuleType, ModuleType]:
    if device == "cpu":
        return np, sp_signal
    if device == "cuda":
        import cupy

        return cupy, import_cupy_signal()
    raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
