"""A per-stream ring buffer of samples addressed by absolute sample index."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from monitor.errors import ConfigError

__all__ = ["RingBuffer"]


class RingBuffer:
    """A preallocated circular buffer of samples addressed by absolute sample index.

    ``append`` costs O(chunk) (at most two slice copies); nothing ever copies or
    rolls the whole buffer. ``read(start, stop)`` returns the samples with
    absolute indices ``start..stop-1`` while they are still held.
    """

    def __init__(self, capacity: int, channels: int = 1, dtype: type = np.float32) -> None:
        if capacity < 1:
            raise ConfigError(f"capacity must be >= 1, got {capacity!r}")
        if channels < 1:
            raise ConfigError(f"channels must be >= 1, got {channels!r}")
        self._buf: NDArray[np.floating] = np.zeros((capacity, channels), dtype=dtype)
        self._col = self._buf[:, 0]  # a view of the first channel
        self.capacity = capacity
        self.end = 0  # absolute index one past the newest sample

    @property
    def start(self) -> int:
        """Absolute index of the oldest sample still held."""
        return max(0, self.end - self.capacity)

    def append(self, samples: NDArray[np.floating]) -> None:
        """Append samples, shape (n, channels), or (n,) for a one-channel buffer; cast to the buffer's dtype."""
        x = samples if type(samples) is np.ndarray else np.asarray(samples)
        buf = self._buf
        if x.ndim == 1:
            if buf.shape[1] == 1:
                buf = self._col  # the one column: no reshaping of small chunks
            else:
                x = x[:, None]
        n = x.shape[0]
        cap = self.capacity
        if n >= cap:  # only the newest `capacity` samples survive
            x = x[-cap:]
            self.end += n - cap
            n = cap
        pos = self.end % cap
        first = min(n, cap - pos)
        if first == n:
            buf[pos : pos + n] = x
        else:
            buf[pos : pos + first] = x[:first]
            buf[: n - first] = x[first:]
        self.end += n

    def read(self, start: int, stop: int) -> NDArray[np.floating]:
        """Copy of samples ``start..stop-1``; raises IndexError if not all held."""
        if start < self.start or stop > self.end or start > stop:
            raise IndexError(f"samples [{start}, {stop}) not held; buffer holds [{self.start}, {self.end})")
        a = start % self.capacity
        n = stop - start
        if a + n <= self.capacity:
            return self._buf[a : a + n].copy()
        first = self.capacity - a
        return np.concatenate((self._buf[a:], self._buf[: n - first]))
