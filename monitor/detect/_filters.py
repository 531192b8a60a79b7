"""Filtering many signals at once with their state carried across calls (shared by detection and quality)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import signal

try:  # SciPy's own compiled kernel behind sosfilt, without the per-call checks
    from scipy.signal._sosfilt import _sosfilt as _sosfilt_kernel
except ImportError:  # pragma: no cover - other SciPy layouts use the public API
    _sosfilt_kernel = None

__all__ = ["sosfilt_rows"]


def sosfilt_rows(sos: NDArray[np.float64], x: NDArray[np.float64], zi: NDArray[np.float64]) -> NDArray[np.float64]:
    """Filter each row of ``x`` (S, n); ``zi`` (S, sections, 2) is updated in place."""
    if _sosfilt_kernel is None:
        y, zf = signal.sosfilt(sos, x, axis=-1, zi=zi.transpose(1, 0, 2))
        zi[...] = zf.transpose(1, 0, 2)
        return np.asarray(y)
    y = np.array(x, dtype=np.float64, order="C")
    _sosfilt_kernel(sos, y, zi)
    return y
